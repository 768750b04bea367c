/* kernels.h — the compute backend: one table of functions that model.c calls.
 *
 * Every pointer argument named like a tensor is backend memory (host memory on the
 * CPU backend, device memory on CUDA); only bpt_kernels.copy_* move data across.
 * All tensors are fp32, row-major, contiguous unless a leading dimension is given;
 * a backend may compute in lower precision inside a kernel (cuda: bf16 tensor-core
 * products with fp32 accumulation, see kernels/cuda/cuda.h).
 * Shapes use the project's names: B batch, T sequence, D hidden, H heads, KVH kv heads,
 * Dh head dim, F ffn width, V vocab, N = rows (usually B*T), Bq/Bk attention chunks.
 *
 * Activations inside attention are laid out (B, T, H, Dh): exactly the output of the
 * q/k/v projections, so no transpose is ever needed. GQA: query head h reads kv head
 * h / (H / KVH); K and V are never copied per query head.
 *
 * Reductions run in a fixed order (static schedules, no float atomics), so a backend
 * gives bit-identical results for the same inputs and thread count.
 */
#ifndef BPT_KERNELS_H
#define BPT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* The shape of an attention segment pair (attn_fwd_seg, attn_bwd_seg). Token t of
 * batch row b is row b*q_ld + t of q, o, dout, dq and column b*q_ld + t of lse's
 * (B, H, q_ld) layout (per head h: lse + (b*H + h)*q_ld + t), and row b*k_ld + t of k,
 * v, dk, dv: a segment is Tq (Tk) tokens inside rows of q_ld (k_ld). */
typedef struct {
    int B, H, KVH, Dh, Bq, Bk;      /* as for attn_fwd */
    int Tq, Tk;                     /* tokens of the query and the key segment */
    int q_ld, k_ld;                 /* tokens per batch row of the arrays they sit in */
    int64_t q_pos, k_pos;           /* global position of the first query and key */
} bpt_attn_seg;

typedef struct bpt_kernels {
    const char *name;            /* "cpu", "cuda", "null" */

    /* --- setup (NULL / 0 where a backend needs none) --- */
    /* Bind this rank to its device (cuda: GPU local_rank % count). 0, or -1 with a
     * one-line reason in err. Called once before anything else. */
    int (*init)(int local_rank, char *err, size_t errlen);
    /* Bytes of backend memory the backend keeps for itself (GEMM scratch, reduction
     * partials); the arena hands them over first, so its peak stays exact. */
    size_t workspace;
    void (*set_workspace)(void *p, size_t bytes);
    /* The bf16 dense tensor-core peak of the device in FLOP/s (0: unknown; the CPU
     * backend's MFU is taken against a measured sgemm instead). */
    double (*peak_flops)(void);

    /* --- memory (the arena calls these once; model code never does) --- */
    void *(*alloc)(size_t bytes);              /* NULL on failure */
    void  (*free)(void *p, size_t bytes);
    void  (*copy_h2d)(void *dst, const void *src, size_t bytes);
    void  (*copy_d2h)(void *dst, const void *src, size_t bytes);
    void  (*copy_d2d)(void *dst, const void *src, size_t bytes);
    void  (*zero)(void *dst, size_t bytes);
    void  (*sync)(void);

    /* C (M,N) = alpha * op(A) * op(B) + beta * C, row-major, op = transpose if trans*.
     * op(A) is (M,K), op(B) is (K,N). lda/ldb/ldc are the row strides as stored. */
    void (*gemm)(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

    /* RMSNorm. inp (N,D), w (D) -> out (N,D), rstd (N) = 1/sqrt(mean(inp^2)+eps). */
    void (*rmsnorm_fwd)(float *out, float *rstd, const float *inp, const float *w,
                        int N, int D, float eps);
    /* dinp (N,D) = (or +=, if accumulate) d/dinp; dw (D) += d/dw. */
    void (*rmsnorm_bwd)(float *dinp, float *dw, const float *dout, const float *inp,
                        const float *w, const float *rstd, int N, int D, int accumulate);

    /* RoPE, Hugging Face rotate_half convention, in place on x (B,T,nh,Dh):
     * for i < Dh/2, (x[i], x[i+Dh/2]) is rotated by angle pos(t)*inv_freq[i], with
     * cos/sin tables (T,Dh/2) precomputed in double and stored in fp32.
     * rope_bwd rotates by the negative angle (the transpose of the forward). */
    void (*rope_fwd)(float *x, const float *cos, const float *sin, int B, int T, int nh, int Dh);
    void (*rope_bwd)(float *dx, const float *cos, const float *sin, int B, int T, int nh, int Dh);

    /* SwiGLU. h (n) = silu(g) * u. */
    void (*swiglu_fwd)(float *h, const float *g, const float *u, size_t n);
    /* dg, du (n) from dh (n). */
    void (*swiglu_bwd)(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

    /* Embedding over vocabulary rows [v0, v0+V): wte (V,D) holds those rows.
     * out (N,D) = wte[tok[n] - v0], or zeros when tok[n] is outside the range. */
    void (*embed_fwd)(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V);
    /* dwte[tok[n] - v0] += dout[n] for tokens in range, in token order (deterministic). */
    void (*embed_bwd)(float *dwte, const float *dout, const int32_t *tok, int N, int D, int v0, int V);

    /* Blockwise (flash-style) causal attention.
     * q (B,T,H,Dh), k,v (B,T,KVH,Dh) -> o (B,T,H,Dh), lse (B,H,T) = log-sum-exp of the
     * scaled scores of each row. Query chunks of Bq rows and key chunks of Bk rows;
     * a (query chunk, key chunk) tile is skipped iff its first key position is after
     * its last query position; tiles that straddle the diagonal are element-masked. */
    void (*attn_fwd)(float *o, float *lse, const float *q, const float *k, const float *v,
                     int B, int T, int H, int KVH, int Dh, int Bq, int Bk);
    /* dq (B,T,H,Dh), dk, dv (B,T,KVH,Dh) are overwritten. Tiles are recomputed from
     * q, k, v and lse; o is used only for D = rowsum(do * o). */
    void (*attn_bwd)(float *dq, float *dk, float *dv, const float *dout,
                     const float *q, const float *k, const float *v,
                     const float *o, const float *lse,
                     int B, int T, int H, int KVH, int Dh, int Bq, int Bk);

    /* The same for one (query segment, key segment) pair of a sequence sharded over
     * ranks (ring attention, mesh/ring.c): the queries are global positions
     * q_pos .. q_pos+Tq-1, the keys k_pos .. k_pos+Tk-1, and a key is visible to a
     * query iff its position is not after the query's. Pointers are at the segment's
     * first token; see bpt_attn_seg for the strides. attn_fwd_seg with merge = 0 sets
     * o and lse (a row that sees no key: o = 0, lse = -inf); merge = 1 combines this
     * pair with the o, lse already there through their log-sum-exp, in fp32.
     * attn_bwd_seg adds the pair's contributions to dq, dk, dv, given the final o and
     * lse (over all keys). NULL where a backend has no ring attention yet. */
    void (*attn_fwd_seg)(float *o, float *lse, const float *q, const float *k, const float *v,
                         const bpt_attn_seg *s, int merge);
    void (*attn_bwd_seg)(float *dq, float *dk, float *dv, const float *dout,
                         const float *q, const float *k, const float *v,
                         const float *o, const float *lse, const bpt_attn_seg *s);

    /* Vanilla causal attention: materialises probs (B,H,T,T) (upper triangle zero). */
    void (*attn_vanilla_fwd)(float *o, float *probs, const float *q, const float *k, const float *v,
                             int B, int T, int H, int KVH, int Dh);
    /* dq, dk, dv overwritten; scratch (T) per thread is internal. */
    void (*attn_vanilla_bwd)(float *dq, float *dk, float *dv, const float *dout,
                             const float *q, const float *k, const float *v, const float *probs,
                             int B, int T, int H, int KVH, int Dh);

    /* Cross-entropy on one chunk of logits, fused forward and backward.
     * logits (N,V) are replaced by dloss/dlogits = scale * mask[n] * (softmax - onehot).
     * out[0] += sum_n mask[n] * nll[n]; out[1] += sum_n mask[n] * (argmax == target).
     * out lives in backend memory (2 doubles). Ties in argmax go to the lowest id. A
     * target outside [0, V) has no one-hot and no target logit: nll = logsumexp, the
     * same as the vocabulary-parallel path gives. */
    void (*xent_fwd_bwd)(float *logits, double *out, const int32_t *targets, const float *mask,
                         int N, int V, float scale);

    /* The same, for logits split over tensor-parallel ranks: this rank holds vocabulary
     * columns [v0, v0+V) of each row. Three steps with all-reduces over tp in between:
     * 1. per row: rmax = local max, tlogit = logit of the target if local else 0,
     *    (amax_val, amax_idx) = local max and its global id (lowest on ties);
     *    [all-reduce: max of rmax, sum of tlogit, maxloc of (amax_val, amax_idx)]
     * 2. sumexp = sum of exp(logit - rmax) over the local columns;  [all-reduce: sum]
     * 3. logits <- scale*mask*(softmax - onehot) on the local columns, and on every tp
     *    rank alike out[0] += mask*(log(sumexp) + rmax - tlogit),
     *    out[1] += mask*(amax_idx == target). */
    void (*xent_partial)(const float *logits, const int32_t *targets, int N, int V, int v0,
                         float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx);
    void (*xent_sumexp)(const float *logits, const float *rmax, int N, int V, float *sumexp);
    void (*xent_finish)(float *logits, double *out, const int32_t *targets, const float *mask,
                        const float *rmax, const float *sumexp, const float *tlogit,
                        const int32_t *amax_idx, int N, int V, int v0, float scale);

    /* AdamW on a flat range, decoupled weight decay, bias-corrected:
     * g' = g * gscale; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
     * p -= lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * p ). */
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n,
                  float lr, float b1, float b2, float eps, float wd,
                  float bc1, float bc2, float gscale);

    /* bf16 storage: dst (n) = src rounded to bfloat16 (nearest, ties to even; NaN stays
     * NaN), stored as its 16-bit pattern; and back, exactly. */
    void (*to_bf16)(uint16_t *dst, const float *src, size_t n);
    void (*from_bf16)(float *dst, const uint16_t *src, size_t n);

    /* out[0] = sum of x[i]^2 in double (fixed order). out in backend memory. */
    void (*sumsq)(double *out, const float *x, size_t n);
    /* y += a * x */
    void (*axpy)(float *y, float a, const float *x, size_t n);
} bpt_kernels;

/* The CPU backend (C, OpenMP, CBLAS); always built. */
extern const bpt_kernels bpt_kernels_cpu;
/* The null backend: address space only, kernels do nothing. Running a step on it
 * gives the exact arena peak of any configuration in milliseconds (bpt plan, bench). */
extern const bpt_kernels bpt_kernels_null;
#ifdef BPT_HAVE_CUDA
extern const bpt_kernels bpt_kernels_cuda;
#endif

/* The backend called NAME ("cpu", "cuda", "null"), or NULL when not compiled in. */
const bpt_kernels *bpt_kernels_get(const char *name);
/* Space-separated list of the compiled backends, e.g. "cpu cuda". */
const char *bpt_kernels_list(void);

#endif
