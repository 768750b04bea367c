/* cuda.h — the CUDA backend's entry points behind the kernel table (C linkage).
 *
 * Storage at the table's interface stays fp32 (the model and the comm layer are
 * dtype-free); the compute is bf16 on tensor cores with fp32 accumulation:
 *   - GEMMs run in cuBLASLt with CUBLAS_COMPUTE_32F_FAST_16BF: operands are rounded
 *     to bf16 inside the library, products accumulate in fp32;
 *   - attention rounds its q, k, v, dO and probability tiles to bf16 in shared memory
 *     and multiplies them with WMMA (m16n16k16, fp32 accumulators); softmax, the
 *     log-sum-exp and every rescaling stay fp32;
 *   - norms, RoPE, SwiGLU, the loss and AdamW are fp32 (AdamW updates the fp32 master
 *     weights, which the next forward reads as bf16 through the above).
 *
 * One GPU per rank: bpt_cuda_init picks device local_rank % device_count. Every kernel
 * runs on one compute stream; copies to the host synchronise it. The backend needs a
 * fixed workspace (cuBLASLt scratch and reduction partials) which the arena hands it
 * (bpt_kernels.workspace, set_workspace), so peak_memory_bytes stays exact.
 *
 * Determinism: no float atomics. Reductions have a fixed shape (grid-stride partials,
 * then one block in order), the attention backward computes dK/dV per key tile and dQ
 * per query tile in two kernels, and the embedding backward sorts the tokens by row
 * (a stable radix sort) and adds each row's gradients in token order, as the CPU does.
 */
#ifndef BPT_KERNELS_CUDA_H
#define BPT_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Select the device for this rank and create the stream and the cuBLASLt handle.
 * 0, or -1 with a one-line reason in err (no device, driver too old, ...). */
int bpt_cuda_init(int local_rank, char *err, size_t errlen);
/* Number of usable GPUs (0 when there is no driver or no device). Never fails. */
int bpt_cuda_device_count(void);
/* "NVIDIA H200 (GPU 0 of 1, sm_90, 139.8 GiB)" for the selected device. */
const char *bpt_cuda_device_name(void);
/* The compute stream, as a void * (a cudaStream_t) for the comm layer. */
void *bpt_cuda_stream(void);
/* Bytes of the fixed workspace, and of its tail that the comm layer may use. */
#define BPT_CUDA_WORKSPACE ((size_t)48 << 20)
#define BPT_CUDA_WORKSPACE_COMM ((size_t)4 << 20)
void *bpt_cuda_comm_scratch(void);

/* memory */
void *bpt_cu_alloc(size_t bytes);
void bpt_cu_free(void *p, size_t bytes);
void bpt_cu_copy_h2d(void *dst, const void *src, size_t bytes);
void bpt_cu_copy_d2h(void *dst, const void *src, size_t bytes);
void bpt_cu_copy_d2d(void *dst, const void *src, size_t bytes);
void bpt_cu_zero(void *dst, size_t bytes);
void bpt_cu_sync(void);
void bpt_cu_set_workspace(void *p, size_t bytes);

/* gemm (cuBLASLt) */
void bpt_cu_gemm(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* element-wise and row kernels */
void bpt_cu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int D, float eps);
void bpt_cu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                        const float *w, const float *rstd, int N, int D, int accumulate);
void bpt_cu_rope_fwd(float *x, const float *cos, const float *sin, int B, int T, int nh, int Dh);
void bpt_cu_rope_bwd(float *dx, const float *cos, const float *sin, int B, int T, int nh, int Dh);
void bpt_cu_swiglu_fwd(float *h, const float *g, const float *u, size_t n);
void bpt_cu_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);
void bpt_cu_embed_fwd(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V);
void bpt_cu_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int D, int v0, int V);
/* Tests: sort at most `tokens` tokens at a time in embed_bwd (0: as many as fit). */
void bpt_cu_set_embed_chunk(int tokens);
void bpt_cu_xent_fwd_bwd(float *logits, double *out, const int32_t *targets, const float *mask,
                         int N, int V, float scale);
void bpt_cu_xent_partial(const float *logits, const int32_t *targets, int N, int V, int v0,
                         float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx);
void bpt_cu_xent_sumexp(const float *logits, const float *rmax, int N, int V, float *sumexp);
void bpt_cu_xent_finish(float *logits, double *out, const int32_t *targets, const float *mask,
                        const float *rmax, const float *sumexp, const float *tlogit,
                        const int32_t *amax_idx, int N, int V, int v0, float scale);
void bpt_cu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, float bc1, float bc2, float gscale);
void bpt_cu_sumsq(double *out, const float *x, size_t n);
void bpt_cu_to_bf16(uint16_t *dst, const float *src, size_t n);
void bpt_cu_from_bf16(float *dst, const uint16_t *src, size_t n);
void bpt_cu_axpy(float *y, float a, const float *x, size_t n);

/* attention */
void bpt_cu_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                     int B, int T, int H, int KVH, int Dh, int Bq, int Bk);
void bpt_cu_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                     const float *k, const float *v, const float *o, const float *lse,
                     int B, int T, int H, int KVH, int Dh, int Bq, int Bk);
/* ring attention's segment pairs (kernels.h: attn_fwd_seg, attn_bwd_seg) */
void bpt_cu_attn_fwd_seg(float *o, float *lse, const float *q, const float *k, const float *v,
                         const bpt_attn_seg *s, int merge);
void bpt_cu_attn_bwd_seg(float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, const float *o, const float *lse, const bpt_attn_seg *s);
void bpt_cu_attn_vanilla_fwd(float *o, float *probs, const float *q, const float *k, const float *v,
                             int B, int T, int H, int KVH, int Dh);
/* Tests: 32 runs the flash kernels on their 32-row tiles (the ones GPUs with less shared
 * memory than sm_80/sm_90 get) even where the 64-row ones fit; 0 restores the choice. */
void bpt_cu_set_attn_tile_rows(int rows);
void bpt_cu_attn_vanilla_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *probs,
                             int B, int T, int H, int KVH, int Dh);

/* For the NCCL comm layer: after an all-reduce max of val over ranks, idx[i] becomes
 * this rank's idx[i] where its own value equals the maximum, else INT32_MAX; an
 * all-reduce min of idx then gives MPI_MAXLOC's answer (lowest index on ties).
 * mine holds this rank's values from before the max. */
void bpt_cu_maxloc_mark(int32_t *idx, const float *mine, const float *gmax, size_t n);

#ifdef __cplusplus
}
#endif
#endif
