/* cpu.h — what the CPU backend's files share (private to kernels/cpu/): the blockwise
 * and vanilla attention of cpu_attention.c, its vectorised exp, and the BLAS threading
 * rule of cpu_ops.c; the attention's microkernels have their own header, cpu_tile.h.
 * The backend's public face is bpt_kernels_cpu (kernels/kernels.h). */
#ifndef BPT_KERNELS_CPU_H
#define BPT_KERNELS_CPU_H

#include <stddef.h>

#include "kernels/kernels.h"

/* Blockwise causal attention, forward (o, and one log-sum-exp per row) and backward;
 * q (B,T,H,Dh), k and v (B,T,KVH,Dh); query and key chunks of Bq and Bk rows. */
void bpt_cpu_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                      int B, int T, int H, int KVH, int Dh, int Bq, int Bk);
void bpt_cpu_attn_bwd(float *dq, float *dk, float *dv, const float *dout,
                      const float *q, const float *k, const float *v,
                      const float *o, const float *lse,
                      int B, int T, int H, int KVH, int Dh, int Bq, int Bk);
/* One segment pair of a sharded sequence (kernels.h: attn_fwd_seg, attn_bwd_seg). */
void bpt_cpu_attn_fwd_seg(float *o, float *lse, const float *q, const float *k, const float *v,
                          const bpt_attn_seg *sg, int merge);
void bpt_cpu_attn_bwd_seg(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *o, const float *lse, const bpt_attn_seg *sg);
/* The same materialising the (B,H,T,T) probabilities (llama.scan_attention: false). */
void bpt_cpu_attn_vanilla_fwd(float *o, float *probs, const float *q, const float *k,
                              const float *v, int B, int T, int H, int KVH, int Dh);
void bpt_cpu_attn_vanilla_bwd(float *dq, float *dk, float *dv, const float *dout,
                              const float *q, const float *k, const float *v,
                              const float *probs, int B, int T, int H, int KVH, int Dh);

/* y = exp(a x + b) elementwise; returns the sum of y. */
double bpt_cpu_vexp(float *y, const float *x, size_t n, float a, float b);

/* OpenBLAS runs single-threaded inside the backend's OpenMP regions (once per process). */
void bpt_cpu_blas_single_thread(void);

#endif
