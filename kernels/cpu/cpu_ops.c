/* cpu_ops.c — the CPU backend: memory, gemm (CBLAS), and every non-attention kernel.
 *
 * Threads come from OpenMP only. BLAS is kept single-threaded (a pthreads OpenBLAS
 * would otherwise start its own pool and fight OpenMP for the cores); gemm splits C
 * into one block per OpenMP thread instead. Every reduction has a fixed order that
 * depends at most on the thread count: static schedules, per-row or per-block
 * partial sums reduced serially, no float atomics.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cblas.h>
#include <omp.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu.h"
#include "kernels/elementwise.h"
#include "bpt/util.h"   /* bpt_xmalloc: kernel scratch; failure is an internal error */


/* ------------------------------------------------------------------------- */
/* BLAS threading */

/* OpenBLAS built with pthreads runs its own thread pool inside every call, also when
 * called from an OpenMP thread; switch it off once. Weak, so any other CBLAS links. */
extern void openblas_set_num_threads(int n) __attribute__((weak));
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { if (openblas_set_num_threads) openblas_set_num_threads(1); }
void bpt_cpu_blas_single_thread(void) { pthread_once(&blas_once, blas_init); }

/* ------------------------------------------------------------------------- */
/* memory */

static void *cpu_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
static void cpu_free(void *p, size_t bytes) { if (p) munmap(p, bytes ? bytes : 1); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { if (bytes) memcpy(dst, src, bytes); }
static void cpu_zero(void *dst, size_t bytes) { if (bytes) memset(dst, 0, bytes); }
static void cpu_sync(void) {}

/* ------------------------------------------------------------------------- */
/* gemm */

static void sgemm(int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C
// Split C into one block of rows (or of columns, when N > M) per thread; each block is
// one single-threaded sgemm, so every element is computed by one call in one order.
static void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    bpt_cpu_blas_single_thread();
    int nt = omp_get_max_threads();
    if (nt == 1 || omp_in_parallel() || 2.0 * M * N * K < 4e6) {
        sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int rows = M >= N;
    int len = rows ? M : N;
    int bs = (len + nt - 1) / nt;
    bs = (bs + 15) / 16 * 16;  // whole register tiles
    int nb = (len + bs - 1) / bs;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int i0 = blk * bs;
        int n = len - i0 < bs ? len - i0 : bs;
        if (rows) {  // rows i0.. of op(A) and C
            const float *Ab = transA ? A + i0 : A + (size_t)i0 * lda;
            sgemm(transA, transB, n, N, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)i0 * ldc, ldc);
        } else {     // columns i0.. of op(B) and C
            const float *Bb = transB ? B + (size_t)i0 * ldb : B + i0;
            sgemm(transA, transB, M, n, K, alpha, A, lda, Bb, ldb, beta, C + i0, ldc);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* RMSNorm */

// inp (N,D), w (D) -> out (N,D), rstd (N)
static void cpu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w,
                            int N, int D, float eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int d = 0; d < D; d++) ss += x[d] * x[d];
        float r = 1.0f / sqrtf(ss / D + eps);
        // out = x * rstd * w
        #pragma omp simd
        for (int d = 0; d < D; d++) y[d] = x[d] * r * w[d];
        rstd[n] = r;
    }
}

// dout (N,D) -> dinp (N,D) (= or +=), dw (D) +=
static void cpu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int N, int D, int accumulate) {
    // out[d] = x[d] * r * w[d],  r = (mean(x^2) + eps)^-1/2,  dr/dx[d] = -r^3 x[d] / D
    // => dx[d] = r * (dout[d] w[d] - x[d] * r^2 * mean(dout * w * x))
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        float r = rstd[n], dot = 0.0f;
        #pragma omp simd reduction(+:dot)
        for (int d = 0; d < D; d++) dot += dy[d] * w[d] * x[d];
        float c = r * r * dot / D;
        if (accumulate) {
            #pragma omp simd
            for (int d = 0; d < D; d++) dx[d] += r * (dy[d] * w[d] - x[d] * c);
        } else {
            #pragma omp simd
            for (int d = 0; d < D; d++) dx[d] = r * (dy[d] * w[d] - x[d] * c);
        }
    }
    // dw[d] += sum_n dout[n,d] * x[n,d] * r[n]: columns in parallel, rows in order
    int cb = 64, nb = (D + cb - 1) / cb;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int d0 = blk * cb, d1 = d0 + cb < D ? d0 + cb : D;
        double acc[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
            float r = rstd[n];
            #pragma omp simd
            for (int d = d0; d < d1; d++) acc[d - d0] += (double)(dy[d] * x[d] * r);
        }
        for (int d = d0; d < d1; d++) dw[d] += (float)acc[d - d0];
    }
}

/* ------------------------------------------------------------------------- */
/* RoPE (rotate_half): (x1, x2) = (x[i], x[i+Dh/2]) -> (x1 c - x2 s, x2 c + x1 s) */

// x (B,T,nh,Dh), cos/sin (T,Dh/2), in place, by the angle times sign: +1 is the
// forward rotation, -1 its transpose, the backward (y1 = x1 c - x2 s, y2 = x2 c + x1 s
// => dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s)
static void rope_rotate(float *x, const float *cos, const float *sin, float sign, int B, int T, int nh,
                        int Dh) {
    int half = Dh / 2;
    #pragma omp parallel for schedule(static)
    for (long bt = 0; bt < (long)B * T; bt++) {
        int t = (int)(bt % T);
        const float *c = cos + (size_t)t * half, *s = sin + (size_t)t * half;
        for (int h = 0; h < nh; h++) {
            float *x1 = x + ((size_t)bt * nh + h) * Dh, *x2 = x1 + half;
            #pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i], si = sign * s[i];
                x1[i] = a * c[i] - b * si;
                x2[i] = b * c[i] + a * si;
            }
        }
    }
}

static void cpu_rope_fwd(float *x, const float *cos, const float *sin, int B, int T, int nh, int Dh) {
    rope_rotate(x, cos, sin, 1.0f, B, T, nh, Dh);
}

static void cpu_rope_bwd(float *dx, const float *cos, const float *sin, int B, int T, int nh, int Dh) {
    rope_rotate(dx, cos, sin, -1.0f, B, T, nh, Dh);
}

/* ------------------------------------------------------------------------- */
/* SwiGLU; blocks of SW_BLK elements, exp(-g) vectorised into a stack buffer */

#define SW_BLK 1024

// g, u (n) -> h (n) = silu(g) * u = g * sigmoid(g) * u
static void cpu_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {
    size_t nb = (n + SW_BLK - 1) / SW_BLK;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        float e[SW_BLK];
        size_t i0 = b * SW_BLK, m = n - i0 < SW_BLK ? n - i0 : SW_BLK;
        bpt_cpu_vexp(e, g + i0, m, -1.0f, 0.0f);  // e = exp(-g)
        #pragma omp simd
        for (size_t i = 0; i < m; i++) {
            float sig = 1.0f / (1.0f + e[i]);
            h[i0 + i] = g[i0 + i] * sig * u[i0 + i];
        }
    }
}

// dh (n) -> dg, du (n)
static void cpu_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    size_t nb = (n + SW_BLK - 1) / SW_BLK;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        float e[SW_BLK];
        size_t i0 = b * SW_BLK, m = n - i0 < SW_BLK ? n - i0 : SW_BLK;
        bpt_cpu_vexp(e, g + i0, m, -1.0f, 0.0f);
        #pragma omp simd
        for (size_t i = 0; i < m; i++) {
            // h = g * sig(g) * u;  d(g sig(g))/dg = sig (1 + g (1 - sig))
            float sig = 1.0f / (1.0f + e[i]);
            float x = g[i0 + i], d = dh[i0 + i];
            dg[i0 + i] = d * u[i0 + i] * sig * (1.0f + x * (1.0f - sig));
            du[i0 + i] = d * x * sig;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Embedding */

// tok (N), wte (V,D) rows [v0, v0+V) -> out (N,D); zeros for tokens of other rows
static void cpu_embed_fwd(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        int t = tok[n] - v0;
        if (t >= 0 && t < V) memcpy(out + (size_t)n * D, wte + (size_t)t * D, (size_t)D * sizeof(float));
        else memset(out + (size_t)n * D, 0, (size_t)D * sizeof(float));
    }
}

// dout (N,D) -> dwte (V,D) +=. Columns in parallel, tokens in order; a token outside
// [v0,v0+V) (another rank's vocabulary slice) contributes nothing.
static void cpu_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int D, int v0, int V) {
    int cb = 64, nb = (D + cb - 1) / cb;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int d0 = blk * cb, d1 = d0 + cb < D ? d0 + cb : D;
        for (int n = 0; n < N; n++) {
            int t = tok[n] - v0;
            if (t < 0 || t >= V) continue;
            // out[n] = wte[tok[n]]
            float *dw = dwte + (size_t)t * D;
            const float *dy = dout + (size_t)n * D;
            #pragma omp simd
            for (int d = d0; d < d1; d++) dw[d] += dy[d];
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Cross-entropy, fused forward and backward on one chunk */

/* What a cross-entropy row needs: the fused one (one shard holds all V) or the
 * vocabulary-parallel finish (this shard's V logits from v0, and the row statistics
 * agreed over tp). */
typedef struct {
    float *logits;
    const int32_t *targets;
    const float *mask, *rmax, *sumexp, *tlogit;
    const int32_t *amax_idx;
    int N, V, v0;
    float scale;
} xent_args;

/* One row x of weight mk > 0: its mask-weighted nll and hit, and x <- dloss/dx. */
typedef void (*xent_row_fn)(const xent_args *a, int n, float *x, float mk, double *nll, double *hit);

// Every row through row (a masked row: zero gradient, no loss), in parallel; out[0] +=
// sum mask*nll, out[1] += sum mask*correct, added in row order.
static void xent_rows(const xent_args *a, xent_row_fn row, double *out) {
    int N = a->N;
    double *nll = bpt_xmalloc(sizeof(double) * 2 * (size_t)(N > 0 ? N : 1));
    double *hit = nll + N;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = a->logits + (size_t)n * a->V;
        float mk = a->mask ? a->mask[n] : 1.0f;
        nll[n] = 0.0; hit[n] = 0.0;
        if (mk == 0.0f) { memset(x, 0, (size_t)a->V * sizeof(float)); continue; }
        row(a, n, x, mk, &nll[n], &hit[n]);
    }
    double s0 = 0.0, s1 = 0.0;
    for (int n = 0; n < N; n++) { s0 += nll[n]; s1 += hit[n]; }
    out[0] += s0;
    out[1] += s1;
    free(nll);
}

static void xent_fused_row(const xent_args *a, int n, float *x, float mk, double *nll, double *hit) {
    int V = a->V, tgt = a->targets[n];
    float scale = a->scale;
    // max, vectorised per block of 256; argmax = first index of the max (ties: lowest id)
    float mx = -INFINITY;
    int blk = 0, am;
    for (int b0 = 0; b0 < V; b0 += 256) {
        int b1 = b0 + 256 < V ? b0 + 256 : V;
        float bm = -INFINITY;
        #pragma omp simd reduction(max:bm)
        for (int i = b0; i < b1; i++) bm = x[i] > bm ? x[i] : bm;
        if (bm > mx) { mx = bm; blk = b0; }
    }
    for (am = blk; am < V - 1 && x[am] != mx; am++) {}
    int valid = tgt >= 0 && tgt < V;
    float xt = valid ? x[tgt] : 0.0f;   /* no target logit: nll = lse, as over tp */
    // x <- e = exp(x - max)
    double sum = bpt_cpu_vexp(x, x, (size_t)V, 1.0f, -mx);
    double lse = mx + log(sum);
    // nll = logsumexp - x[target]
    *nll = mk * (lse - xt);
    *hit = mk * (am == tgt);
    // dloss/dx = scale * mask * (softmax - onehot)
    float c = (float)(scale * mk / sum);
    #pragma omp simd
    for (int i = 0; i < V; i++) x[i] *= c;
    if (valid) x[tgt] -= scale * mk;
}

// logits (N,V) -> dlogits (N,V) in place; out[0] += sum mask*nll, out[1] += sum mask*correct.
// mask may be NULL (all ones). Rows are independent; their sums are added in row order.
static void cpu_xent_fwd_bwd(float *logits, double *out, const int32_t *targets, const float *mask,
                             int N, int V, float scale) {
    xent_args a = { .logits = logits, .targets = targets, .mask = mask, .N = N, .V = V, .scale = scale };
    xent_rows(&a, xent_fused_row, out);
}

/* ---- the vocabulary-parallel cross-entropy, in three steps (see kernels.h) ---- */

static void cpu_xent_partial(const float *logits, const int32_t *targets, int N, int V, int v0,
                             float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float mx = -INFINITY;
        int am = 0;
        for (int i = 0; i < V; i++)
            if (x[i] > mx) { mx = x[i]; am = i; }   // first index of the max
        int t = targets[n] - v0;
        rmax[n] = mx;
        amax_val[n] = mx;
        amax_idx[n] = v0 + am;
        tlogit[n] = (t >= 0 && t < V) ? x[t] : 0.0f;
    }
}

static void cpu_xent_sumexp(const float *logits, const float *rmax, int N, int V, float *sumexp) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        double s = 0.0;
        for (int i = 0; i < V; i++) s += exp((double)x[i] - rmax[n]);
        sumexp[n] = (float)s;
    }
}

static void xent_finish_row(const xent_args *a, int n, float *x, float mk, double *nll, double *hit) {
    int V = a->V;
    float rmax = a->rmax[n], sumexp = a->sumexp[n], scale = a->scale;
    // nll = log(sum exp) + max - x[target]
    *nll = mk * (log((double)sumexp) + rmax - a->tlogit[n]);
    *hit = mk * (a->amax_idx[n] == a->targets[n]);
    // dloss/dx = scale * mask * (softmax - onehot)
    float c = scale * mk / sumexp;
    for (int i = 0; i < V; i++) x[i] = c * expf(x[i] - rmax);
    int t = a->targets[n] - a->v0;
    if (t >= 0 && t < V) x[t] -= scale * mk;
}

static void cpu_xent_finish(float *logits, double *out, const int32_t *targets, const float *mask,
                            const float *rmax, const float *sumexp, const float *tlogit,
                            const int32_t *amax_idx, int N, int V, int v0, float scale) {
    xent_args a = { logits, targets, mask, rmax, sumexp, tlogit, amax_idx, N, V, v0, scale };
    xent_rows(&a, xent_finish_row, out);
}

/* ------------------------------------------------------------------------- */
/* optimizer helpers */

// p, g, m, v (n): AdamW with bias corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t
static void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n,
                      float lr, float b1, float b2, float eps, float wd,
                      float bc1, float bc2, float gscale) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) bpt_adamw_elem(&p[i], g[i], &m[i], &v[i], lr, b1, b2, eps, wd, bc1, bc2, gscale);
}

// x (n) -> out[0] = sum x^2: fixed 64K blocks in parallel, block sums added in order,
// so the result does not even depend on the thread count.
#define SUMSQ_BLOCK 65536
static void cpu_sumsq(double *out, const float *x, size_t n) {
    size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    double *part = bpt_xmalloc(sizeof(double) * (nb ? nb : 1));
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * SUMSQ_BLOCK, i1 = i0 + SUMSQ_BLOCK < n ? i0 + SUMSQ_BLOCK : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    out[0] = s;
    free(part);
}

// bf16: the top 16 bits of the fp32 pattern, rounded to nearest even
static void cpu_to_bf16(uint16_t *dst, const float *src, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) dst[i] = (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
        else dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

static void cpu_from_bf16(float *dst, const uint16_t *src, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, 4);
    }
}

// y (n) += a * x (n)
static void cpu_axpy(float *y, float a, const float *x, size_t n) {
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ------------------------------------------------------------------------- */

const bpt_kernels bpt_kernels_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .copy_d2d = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .embed_fwd = cpu_embed_fwd,
    .embed_bwd = cpu_embed_bwd,
    .attn_fwd = bpt_cpu_attn_fwd,
    .attn_bwd = bpt_cpu_attn_bwd,
    .attn_fwd_seg = bpt_cpu_attn_fwd_seg,
    .attn_bwd_seg = bpt_cpu_attn_bwd_seg,
    .attn_vanilla_fwd = bpt_cpu_attn_vanilla_fwd,
    .attn_vanilla_bwd = bpt_cpu_attn_vanilla_bwd,
    .xent_fwd_bwd = cpu_xent_fwd_bwd,
    .xent_partial = cpu_xent_partial,
    .xent_sumexp = cpu_xent_sumexp,
    .xent_finish = cpu_xent_finish,
    .adamw = cpu_adamw,
    .to_bf16 = cpu_to_bf16,
    .from_bf16 = cpu_from_bf16,
    .sumsq = cpu_sumsq,
    .axpy = cpu_axpy,
};
