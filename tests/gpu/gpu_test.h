/* gpu_test.h — shared by the GPU tests: skip rules, host/device helpers; the checks are
 * tests/unit/unit_test.h's (TAP).
 *
 * A GPU test skips, with the plan "1..0 # SKIP no GPU: ..." (and exit 77, automake's
 * SKIP, when run by hand), when the build has no CUDA backend or the machine has no
 * GPU, so CI without a GPU stays green while the tests still compile there. */
#ifndef BPT_GPU_TEST_H
#define BPT_GPU_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpt/bpt.h"
#include "kernels/kernels.h"
#ifdef BPT_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif
#include "../unit/unit_test.h"

/* Skip (tap_skip_all) unless a GPU is usable; then bind GPU 0. */
static inline void gpu_or_skip(void) {
#ifndef BPT_HAVE_CUDA
    tap_skip_all("no GPU: this build has no CUDA backend (./configure --with-cuda)");
#else
    if (bpt_cuda_device_count() == 0) {
        tap_skip_all("no GPU: the CUDA backend is built but no device is visible");
    }
    char err[512];
    if (bpt_cuda_init(0, err, sizeof err) != 0) {
        tap_skip_all("no usable GPU: %s", err);
    }
    tap_note("GPU: %s", bpt_cuda_device_name());
#endif
}

/* Relative L2 error of a against the reference b. */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; num += d * d; den += (double)b[i] * b[i]; }
    return sqrt(num / (den + 1e-300));
}

/* Largest |a - b| relative to the largest |b|. */
static inline double rel_max(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d;   /* NaN propagates */
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den + 1e-300);
}

static uint64_t rng_state = 88172645463325252ull;
static inline double urand(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static inline float nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static inline float *host_randn(size_t n, float scale) {
    float *h = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) h[i] = scale * nrand();
    return h;
}

#endif
