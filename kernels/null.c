/* null.c — the null backend: alloc reserves address space (PROT_NONE, so a touch
 * faults), every kernel does nothing. A training step on it walks the real code path
 * and gives the arena's exact peak for any configuration in milliseconds. */
#include <sys/mman.h>

#include "kernels/kernels.h"

static void *null_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
static void null_free(void *p, size_t bytes) { if (p) munmap(p, bytes ? bytes : 1); }
static void null_copy(void *dst, const void *src, size_t bytes) {}
static void null_zero(void *dst, size_t bytes) {}
static void null_sync(void) {}
static void null_gemm(int transA, int transB, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) {}
static void null_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w,
                             int N, int D, float eps) {}
static void null_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, int N, int D, int accumulate) {}
static void null_rope(float *x, const float *cos, const float *sin, int B, int T, int nh, int Dh) {}
static void null_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {}
static void null_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                            size_t n) {}
static void null_embed_fwd(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V) {}
static void null_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int D, int v0, int V) {}
static void null_xent_partial(const float *logits, const int32_t *targets, int N, int V, int v0,
                              float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx) {}
static void null_xent_sumexp(const float *logits, const float *rmax, int N, int V, float *sumexp) {}
static void null_xent_finish(float *logits, double *out, const int32_t *targets, const float *mask,
                             const float *rmax, const float *sumexp, const float *tlogit,
                             const int32_t *amax_idx, int N, int V, int v0, float scale) {}
static void null_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                          int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {}
static void null_attn_bwd(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *o, const float *lse,
                          int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {}
static void null_attn_fwd_seg(float *o, float *lse, const float *q, const float *k, const float *v,
                              const bpt_attn_seg *s, int merge) {}
static void null_attn_bwd_seg(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const float *o, const float *lse,
                              const bpt_attn_seg *s) {}
static void null_attn_vanilla_fwd(float *o, float *probs, const float *q, const float *k,
                                  const float *v, int B, int T, int H, int KVH, int Dh) {}
static void null_attn_vanilla_bwd(float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v,
                                  const float *probs, int B, int T, int H, int KVH, int Dh) {}
static void null_xent_fwd_bwd(float *logits, double *out, const int32_t *targets,
                              const float *mask, int N, int V, float scale) {}
static void null_adamw(float *p, const float *g, float *m, float *v, size_t n,
                       float lr, float b1, float b2, float eps, float wd,
                       float bc1, float bc2, float gscale) {}
static void null_sumsq(double *out, const float *x, size_t n) {}
static void null_to_bf16(uint16_t *dst, const float *src, size_t n) {}
static void null_from_bf16(float *dst, const uint16_t *src, size_t n) {}
static void null_axpy(float *y, float a, const float *x, size_t n) {}

const bpt_kernels bpt_kernels_null = {
    .name = "null",
    .alloc = null_alloc,
    .free = null_free,
    .copy_h2d = null_copy,
    .copy_d2h = null_copy,
    .copy_d2d = null_copy,
    .zero = null_zero,
    .sync = null_sync,
    .gemm = null_gemm,
    .rmsnorm_fwd = null_rmsnorm_fwd,
    .rmsnorm_bwd = null_rmsnorm_bwd,
    .rope_fwd = null_rope,
    .rope_bwd = null_rope,
    .swiglu_fwd = null_swiglu_fwd,
    .swiglu_bwd = null_swiglu_bwd,
    .embed_fwd = null_embed_fwd,
    .embed_bwd = null_embed_bwd,
    .attn_fwd = null_attn_fwd,
    .attn_bwd = null_attn_bwd,
    .attn_fwd_seg = null_attn_fwd_seg,
    .attn_bwd_seg = null_attn_bwd_seg,
    .attn_vanilla_fwd = null_attn_vanilla_fwd,
    .attn_vanilla_bwd = null_attn_vanilla_bwd,
    .xent_fwd_bwd = null_xent_fwd_bwd,
    .xent_partial = null_xent_partial,
    .xent_sumexp = null_xent_sumexp,
    .xent_finish = null_xent_finish,
    .adamw = null_adamw,
    .to_bf16 = null_to_bf16,
    .from_bf16 = null_from_bf16,
    .sumsq = null_sumsq,
    .axpy = null_axpy,
};
