/* elementwise.h — per-element math that the CPU (C) and CUDA backends share, so the two
 * compute the same expression in the same order. Private to kernels/. */
#ifndef BPT_KERNELS_ELEMENTWISE_H
#define BPT_KERNELS_ELEMENTWISE_H

#include <math.h>

#ifdef __CUDACC__
#define BPT_ELEM static inline __host__ __device__
#else
#define BPT_ELEM static inline
#endif

/* One AdamW update of parameter *p with gradient g (scaled by gscale, the clipping
 * factor): moments *m, *v; bias corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t; decoupled
 * weight decay wd. */
BPT_ELEM void bpt_adamw_elem(float *p, float g, float *m, float *v, float lr, float b1, float b2, float eps,
                             float wd, float bc1, float bc2, float gscale) {
    float gi = g * gscale;
    float mi = b1 * *m + (1.0f - b1) * gi;
    float vi = b2 * *v + (1.0f - b2) * gi * gi;
    *m = mi;
    *v = vi;
    *p -= lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * *p);
}

#endif
