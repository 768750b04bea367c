/* cpu_attention.c — causal attention on the CPU: blockwise (flash-style) and vanilla.
 *
 * Layouts: q, o (B,T,H,Dh); k, v (B,T,KVH,Dh); lse (B,H,T); probs (B,H,T,T).
 * GQA: query head h reads kv head h / G, G = H / KVH.
 *
 * Blockwise forward (reference §5.1): query chunk i holds positions [i*Bq, (i+1)*Bq),
 * key chunk j [j*Bk, (j+1)*Bk). Tile (i,j) is skipped iff j*Bk >= (i+1)*Bq (its first
 * key is after its last query); other tiles run one online-softmax step
 *     S = q_i k_j^T / sqrt(Dh);  m' = max(m, rowmax S);  P = exp(S - m')
 *     acc = acc * exp(m - m') + P v_j;  l = l * exp(m - m') + rowsum P;  m = m'
 * with scores of keys after the query masked out. Only o = acc / l and
 * lse = m + log l are kept.
 *
 * Rows of a query chunk are independent, so a work unit is a block of at most RQ rows
 * of one query chunk of one head (a whole query chunk on the microkernels, when the
 * chunks alone fill the threads), the longest first; within a tile a unit drops the
 * trailing keys that are masked for all its rows (they would add exact zeros). The tile
 * products run on the register-tiled microkernels of cpu_tile.h where this CPU has
 * them (fwd_tile, bwd_tile: k and v packed once per key chunk, scores kept in L1 or L2
 * between the products, each group of rows stopping at the last key it sees), else as
 * single-threaded sgemm calls on per-thread scratch; exp is a vectorised polynomial.
 *
 * Backward (reference §5.2). Each work unit owns what it writes, so there are no races
 * and the result does not depend on scheduling. When the (b, kv head) pairs can keep
 * every thread busy (their count a multiple of the threads, or at least four per
 * thread), one pass: a unit is one (b, kv head) with its query heads, and for each
 * block of key rows, each query head and each unskipped query chunk, in order, it
 * recomputes P = exp(S - lse), dP = dO v^T, dS = P (dP - D) once (D = rowsum(dO o)) and
 * adds all three products: dv += P^T dO, dk += dS^T q / sqrt(Dh), dq += dS k / sqrt(Dh)
 * (5 products per tile). Otherwise (few kv heads: MQA, many threads) two passes over
 * finer units, which recompute P and dS twice (7 products per tile):
 *   pass 1, per (b, h, query rows):   D; for each tile P, dP, dS;  dq += dS k_j / sqrt(Dh)
 *   pass 2, per (b, kv head, key rows): for each query head of the group and each
 *       unskipped query chunk, in order, P, dS again;  dv += P^T dO;  dk += dS^T q / sqrt(Dh)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_tile.h"
#include "bpt/util.h"   /* bpt_xmalloc: kernel scratch; failure is an internal error */


#define RQ 128   /* query rows per work unit (forward, backward pass 1, vanilla) */
#define RK 128   /* key rows per work unit (backward pass 2) */
#define RQ2 256  /* query rows per step of a pass-2 unit */
#define KC 256   /* keys per packed chunk of a forward tile (microkernel path) */
#define RB 96    /* query rows per forward block (microkernels): a multiple of every mr */

/* The element-wise loops are also compiled for x86-64-v4 (AVX-512) and x86-64-v3 (AVX2,
 * FMA), the best one this CPU runs picked at load time. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__)
#define VEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VEC_CLONES
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static void sgemm(int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* exp(x) with relative error < 1e-7 on [-87, 88]; 0 below -87.3 (and for -inf), exp(88)
 * above 88 (and for +inf), NaN stays NaN. Branch-free (integer selects only), so loops
 * over it vectorise. Cephes expf: x = n ln2 + r, exp(x) = 2^n poly(r). */
static inline float exp_sm(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    // clamp x to [-88, 88] on the bit patterns: -88 .. -inf are 0xC2B00000 .. 0xFF800000,
    // 88 .. +inf are 0x42B00000 .. 0x7F800000. Masks, not ?:, which gcc -O2 would not
    // if-convert here.
    uint32_t lo = -(uint32_t)(u - 0xC2B00001u <= 0xFF800000u - 0xC2B00001u);
    uint32_t hi = -(uint32_t)(u - 0x42B00001u <= 0x7F800000u - 0x42B00001u);
    u ^= (u ^ 0xC2B00000u) & lo;
    u ^= (u ^ 0x42B00000u) & hi;
    memcpy(&x, &u, 4);
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
    float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = (int32_t)kf + 127;                           // biased exponent of 2^n
    e = e < 0 ? 0 : e;                                       // 2^-127 -> 0
    e = e > 254 ? 254 : e;
    uint32_t bits = (uint32_t)e << 23;
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}

/* One row of a forward tile: s (n) scaled scores, the first nv unmasked; m, l the
 * running max and sum. s <- P = exp(s - m') (0 where masked); returns exp(m - m'). */
VEC_CLONES
static float fwd_row(float *s, int nv, int n, float *m, float *l) {
    float mx = -INFINITY;
    #pragma omp simd reduction(max:mx)
    for (int c = 0; c < nv; c++) mx = s[c] > mx ? s[c] : mx;
    float mnew = mx > *m ? mx : *m;
    if (mnew == -INFINITY) {  // nothing unmasked yet: keep m = -inf, never -inf - -inf
        memset(s, 0, sizeof(float) * n);
        return 1.0f;
    }
    float alpha = exp_sm(*m - mnew);
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int c = 0; c < nv; c++) {
        float p = exp_sm(s[c] - mnew);
        s[c] = p;
        sum += p;
    }
    if (nv < n) memset(s + nv, 0, sizeof(float) * (n - nv));
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

/* One row of a backward tile: s (n) scaled scores, dp (n) = dO v^T, the first nv
 * unmasked. s <- P = exp(s - lse), dp <- dS = P (dp - D); both 0 where masked. */
VEC_CLONES
static void bwd_row(float *s, float *dp, int nv, int n, float lse, float D) {
    #pragma omp simd
    for (int c = 0; c < nv; c++) {
        float p = exp_sm(s[c] - lse);
        s[c] = p;
        dp[c] = p * (dp[c] - D);
    }
    if (nv < n) {
        memset(s + nv, 0, sizeof(float) * (n - nv));
        memset(dp + nv, 0, sizeof(float) * (n - nv));
    }
}

/* y (n) *= a */
VEC_CLONES
static void scale_row(float *y, float a, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] *= a;
}

/* sum x (n) * y (n) */
VEC_CLONES
static float dot_row(const float *x, const float *y, int n) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* y (n) = exp(a x + b), returns sum y in double (fixed order). Shared with cpu_ops.c
 * (cross-entropy, SwiGLU) so that one vectorised exp serves the whole backend. */
VEC_CLONES
double bpt_cpu_vexp(float *y, const float *x, size_t n, float a, float b) {
    double sum = 0.0;
    #pragma omp simd reduction(+:sum)
    for (size_t i = 0; i < n; i++) {
        float e = exp_sm(a * x[i] + b);
        y[i] = e;
        sum += e;
    }
    return sum;
}

/* ------------------------------------------------------------------------- */
/* blockwise forward */

/* Visible keys of a row: key c of the segment is visible to query r iff c <= r + delta,
 * delta = q_pos - k_pos; the count among n keys from c0, clamped to [0, n]. */
static inline int visible(long r, long delta, long c0, int n) {
    long v = r + delta - c0 + 1;
    return v < 0 ? 0 : v > n ? n : (int)v;
}

/* The tiling of a segment pair: chunk sizes clamped to the segments, chunk counts,
 * row strides, the causal offset. 0 when there is nothing to compute. */
typedef struct {
    int B, Tq, Tk, H, KVH, Dh, Bq, Bk, G, nI, nJ, ldq, ldk;
    long delta, qld, kld;
    float scale;
} tiling;

static int tiling_of(const bpt_attn_seg *sg, tiling *t) {
    if (sg->B <= 0 || sg->Tq <= 0 || sg->Tk <= 0 || sg->H <= 0) return 0;
    bpt_cpu_blas_single_thread();
    int Bq = sg->Bq <= 0 || sg->Bq > sg->Tq ? sg->Tq : sg->Bq, Bk = sg->Bk <= 0 || sg->Bk > sg->Tk ? sg->Tk : sg->Bk;
    *t = (tiling){ sg->B, sg->Tq, sg->Tk, sg->H, sg->KVH, sg->Dh, Bq, Bk, sg->H / sg->KVH,
                   (sg->Tq + Bq - 1) / Bq, (sg->Tk + Bk - 1) / Bk, sg->H * sg->Dh, sg->KVH * sg->Dh,
                   (long)(sg->q_pos - sg->k_pos), sg->q_ld, sg->k_ld, 1.0f / sqrtf((float)sg->Dh) };
    return 1;
}

/* The microkernels (cpu_tile.h) when they cover head dimension Dh, else NULL: sgemm. */
static const bpt_cpu_tile *tile_for(int Dh) {
    const bpt_cpu_tile *tl = bpt_cpu_tile_get();
    return tl && Dh % tl->nr == 0 ? tl : NULL;
}

/* dst <- the n rows (Dh floats, stride ld) of src as Dh / nr strips, strip s holding
 * columns s*nr .. s*nr+nr-1 of every row, (n, nr) contiguous: the B operand of nn and tn
 * streams through memory instead of striding rows that alias in L1. */
static void pack_strips(float *dst, const float *src, long ld, int n, int Dh, int nr) {
    for (int s = 0; s < Dh / nr; s++)
        for (int c = 0; c < n; c++)
            memcpy(dst + ((size_t)s * n + c) * nr, src + (size_t)c * ld + (size_t)s * nr, sizeof(float) * nr);
}

/* One forward tile on the microkernels: nr query rows (qp, stride ldq) against nc keys
 * (kp, vp, stride ldk), query row r seeing keys c <= r + off. Per chunk of KC keys, k is
 * packed once into panels (for nt) and v into strips (for nn); then per block of RB
 * rows: S = q k^T scale panel by panel (a panel of k stays in L1 while the block's rows
 * pass it), the online softmax, and acc += P v strip by strip of v. Each group of MR
 * rows stops at the last key its last row sees. */
static void fwd_tile(const bpt_cpu_tile *tl, float *S, float *Kp, float *Vs, float *acc, float *m, float *l,
                     const float *qp, int ldq, const float *kp, const float *vp, int ldk,
                     int nr, int nc, int Dh, float scale, long off) {
    int NR = tl->nr, MR = tl->mr;
    for (int c0 = 0; c0 < nc; c0 += KC) {
        int n = imin(KC, nc - c0);
        tl->pack(Kp, kp + (size_t)c0 * ldk, ldk, n, Dh);
        pack_strips(Vs, vp + (size_t)c0 * ldk, ldk, n, Dh, NR);
        for (int b0 = 0; b0 < nr; b0 += RB) {
            int b1 = imin(b0 + RB, nr);
            int nvb = visible(b1 - 1, off, c0, n);     // keys the block's last row sees
            if (nvb <= 0) continue;                    // none: m, l, acc unchanged
            for (int p = 0; p * NR < nvb; p++)
                for (int r0 = b0; r0 < b1; r0 += MR) {
                    int mr = imin(MR, b1 - r0);
                    if (p * NR < visible(r0 + mr - 1, off, c0, n))
                        tl->nt(mr, Dh, qp + (size_t)r0 * ldq, ldq, Kp + (size_t)p * Dh * NR, scale,
                               S + (size_t)(r0 - b0) * KC + p * NR, KC);
                }
            for (int r0 = b0; r0 < b1; r0 += MR) {
                int mr = imin(MR, b1 - r0), nvg = visible(r0 + mr - 1, off, c0, n);
                for (int r = r0; r < r0 + mr && nvg > 0; r++) {
                    float alpha = fwd_row(S + (size_t)(r - b0) * KC, visible(r, off, c0, nvg), nvg, &m[r], &l[r]);
                    if (alpha != 1.0f) scale_row(acc + (size_t)r * Dh, alpha, Dh);
                }
            }
            for (int d = 0; d < Dh; d += NR)
                for (int r0 = b0; r0 < b1; r0 += MR) {
                    int mr = imin(MR, b1 - r0), nvg = visible(r0 + mr - 1, off, c0, n);
                    if (nvg > 0)
                        tl->nn(mr, nvg, S + (size_t)(r0 - b0) * KC, KC, Vs + (size_t)d * n, NR, 1.0f,
                               acc + (size_t)r0 * Dh + d, Dh);
                }
        }
    }
}

// q (B,Tq,H,Dh), k, v (B,Tk,KVH,Dh) rows strided by q_ld / k_ld tokens per batch ->
// o (B,Tq,H,Dh), lse (B,H,q_ld); merge: combine with the o, lse already there
static void attn_fwd_core(float *o, float *lse, const float *q, const float *k, const float *v,
                          const bpt_attn_seg *sg, int merge) {
    tiling t;
    if (!tiling_of(sg, &t)) return;
    int B = t.B, Tq = t.Tq, Tk = t.Tk, H = t.H, KVH = t.KVH, Dh = t.Dh, Bq = t.Bq, Bk = t.Bk, G = t.G;
    int nI = t.nI, nJ = t.nJ, ldq = t.ldq, ldk = t.ldk;
    long delta = t.delta;
    float scale = t.scale;
    const bpt_cpu_tile *tl = tile_for(Dh);
    // work units of RQ rows; on the microkernels whole query chunks (k packed once per
    // chunk, not once per RQ rows) when those alone keep every thread busy
    int rq = imin(RQ, Bq);
    if (tl && (long)B * H * nI >= 4L * omp_get_max_threads()) rq = Bq;
    int nsub = (Bq + rq - 1) / rq;
    long units = (long)B * H * nI * nsub;
    // sgemm path: S (rq,Bk); microkernels: S (RB,KC), k packed (KC rounded up, Dh), v in strips (KC, Dh)
    size_t nS = tl ? (size_t)RB * KC + (size_t)(2 * KC + tl->nr) * Dh : (size_t)rq * Bk;
    #pragma omp parallel
    {
        float *S = bpt_xmalloc(sizeof(float) * (nS + (size_t)rq * Dh + 2 * rq));
        float *acc = S + nS, *m = acc + (size_t)rq * Dh, *l = m + rq;
        float *Kp = S + (size_t)RB * KC, *Vs = Kp + (size_t)(KC + (tl ? tl->nr : 0)) * Dh;
        // the longest units first (query chunk i sees i + 1 key chunks), each to the next
        // free thread: the causal work balances whatever the unit count; each unit writes
        // only its own rows, so the result does not depend on which thread ran it
        #pragma omp for schedule(dynamic, 1)
        for (long u = 0; u < units; u++) {
            int sub = (int)(u % nsub), i = nI - 1 - (int)(u / nsub / H / B);
            int h = (int)(u / nsub % H), b = (int)(u / nsub / H % B);
            int qend = imin((i + 1) * Bq, Tq);     // end of query chunk i
            int q0 = i * Bq + sub * rq, q1 = imin(q0 + rq, qend), nr = q1 - q0;
            if (nr <= 0) continue;
            int kvh = h / G;
            const float *qp = q + ((size_t)((long)b * sg->q_ld + q0) * H + h) * Dh;
            for (int r = 0; r < nr; r++) { m[r] = -INFINITY; l[r] = 0.0f; }
            memset(acc, 0, sizeof(float) * nr * Dh);
            for (int j = 0; j < nJ; j++) {
                int k0 = j * Bk;
                if (k0 >= qend + delta) break;     // tile (i,j) in the future: skip (and all after)
                int nc = visible(q1 - 1, delta, k0, imin(Bk, Tk - k0));  // keys after q1-1: masked
                if (nc <= 0) break;
                size_t krow = (size_t)((long)b * sg->k_ld + k0) * KVH + kvh;
                const float *kp = k + krow * Dh, *vp = v + krow * Dh;
                if (tl) {
                    fwd_tile(tl, S, Kp, Vs, acc, m, l, qp, ldq, kp, vp, ldk, nr, nc, Dh, scale, q0 + delta - k0);
                    continue;
                }
                // S (nr,nc) = q_i (nr,Dh) k_j^T (Dh,nc) / sqrt(Dh)
                sgemm(0, 1, nr, nc, Dh, scale, qp, ldq, kp, ldk, 0.0f, S, nc);
                for (int r = 0; r < nr; r++) {
                    int nv = visible(q0 + r, delta, k0, nc);   // keys <= query position
                    float alpha = fwd_row(S + (size_t)r * nc, nv, nc, &m[r], &l[r]);
                    if (alpha != 1.0f) scale_row(acc + (size_t)r * Dh, alpha, Dh);
                }
                // acc (nr,Dh) += P (nr,nc) v_j (nc,Dh)
                sgemm(0, 0, nr, Dh, nc, 1.0f, S, nc, vp, ldk, 1.0f, acc, Dh);
            }
            for (int r = 0; r < nr; r++) {
                float *orow = o + ((size_t)((long)b * sg->q_ld + q0 + r) * H + h) * Dh;
                float *lrow = lse + ((size_t)b * H + h) * sg->q_ld + q0 + r;
                const float *arow = acc + (size_t)r * Dh;
                float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
                float part = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
                if (!merge || *lrow == -INFINITY) {
                    for (int d = 0; d < Dh; d++) orow[d] = arow[d] * inv;
                    *lrow = part;
                } else if (part != -INFINITY) {
                    // o = (e^lse_o o + e^part o_part) / e^lse, lse = log(e^lse_o + e^part), in fp32
                    float mx = fmaxf(*lrow, part);
                    float tot = mx + logf(expf(*lrow - mx) + expf(part - mx));
                    float wo = expf(*lrow - tot), wp = expf(part - tot) * inv;
                    for (int d = 0; d < Dh; d++) orow[d] = orow[d] * wo + arow[d] * wp;
                    *lrow = tot;
                }
            }
        }
        free(S);
    }
}

// q (B,T,H,Dh), k, v (B,T,KVH,Dh) -> o (B,T,H,Dh), lse (B,H,T)
void bpt_cpu_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                      int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    bpt_attn_seg sg = { B, H, KVH, Dh, Bq, Bk, T, T, T, T, 0, 0 };
    attn_fwd_core(o, lse, q, k, v, &sg, 0);
}

void bpt_cpu_attn_fwd_seg(float *o, float *lse, const float *q, const float *k, const float *v,
                          const bpt_attn_seg *sg, int merge) {
    attn_fwd_core(o, lse, q, k, v, sg, merge);
}

/* ------------------------------------------------------------------------- */
/* blockwise backward */

// One tile of the backward, recomputed: for nr query rows from query index r_first
// (q, dout rows at qp, dop) and nc keys from key index c_first (kp, vp),
//   S = q k^T / sqrt(Dh), P = exp(S - lse) (masked), dP = dO v^T, dS = P (dP - D)
// leaving P in S and dS in dP (nr,nc); lse_r, D_r the rows' lse and D.
static void tile_dS(float *S, float *dP, const float *qp, const float *dop, const float *kp, const float *vp,
                    int nr, int nc, int Dh, int ldq, int ldk, float scale, long r_first, long delta, long c_first,
                    const float *lse_r, const float *D_r) {
    sgemm(0, 1, nr, nc, Dh, scale, qp, ldq, kp, ldk, 0.0f, S, nc);
    sgemm(0, 1, nr, nc, Dh, 1.0f, dop, ldq, vp, ldk, 0.0f, dP, nc);
    for (int r = 0; r < nr; r++) {
        int nv = visible(r_first + r, delta, c_first, nc);
        bwd_row(S + (size_t)r * nc, dP + (size_t)r * nc, nv, nc, lse_r[r], D_r[r]);
    }
}

/* What a backward work unit reads and writes (attn_bwd_core). */
typedef struct {
    const tiling *t;
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v, *lse;
    const float *D;        // rowsum(dO o), (B,H,Tq)
    int rk, overwrite;     // key rows per block; set dk, dv (else add to them)
    const bpt_cpu_tile *tl; // the microkernels, or NULL: sgemm
    int ldS;               // row stride of S, dP on the microkernels
} bwd_ctx;

// One backward tile on the microkernels: nq query rows (qp, dop, dqp; stride ldq) against
// the block's nk keys (kp, stride ldk; Kp, Vp packed k, v), query row r seeing keys
// c <= r + off. Per group of MR rows, S = q k^T scale and dP = dO v^T over the panels its
// last row sees, P and dS in place, and dq += dS k scale while the group's rows are in
// L1; then dv += P^T dO and dk += dS^T q scale, each group of MR keys from the first row
// that sees it.
static void bwd_tile(const bwd_ctx *c, float *S, float *dP, const float *Kp, const float *Vp, const float *Ks,
                     float *Qs, float *dOs, const float *qp, const float *dop, float *dqp, float *dkp, float *dvp,
                     int nq, int nk, long off, const float *lse_r, const float *D_r) {
    const bpt_cpu_tile *tl = c->tl;
    int NR = tl->nr, MR = tl->mr, Dh = c->t->Dh, ldq = c->t->ldq, ldk = c->t->ldk, ldS = c->ldS;
    float scale = c->t->scale;
    pack_strips(Qs, qp, ldq, nq, Dh, NR);
    pack_strips(dOs, dop, ldq, nq, Dh, NR);
    for (int g0 = 0; g0 < nq; g0 += MR) {
        int mr = imin(MR, nq - g0), nvg = visible(g0 + mr - 1, off, 0, nk);
        float *Sg = S + (size_t)g0 * ldS, *dPg = dP + (size_t)g0 * ldS;
        for (int p = 0; p * NR < nvg; p++) {
            tl->nt(mr, Dh, qp + (size_t)g0 * ldq, ldq, Kp + (size_t)p * Dh * NR, scale, Sg + p * NR, ldS);
            tl->nt(mr, Dh, dop + (size_t)g0 * ldq, ldq, Vp + (size_t)p * Dh * NR, 1.0f, dPg + p * NR, ldS);
        }
        for (int r = 0; r < mr; r++)
            bwd_row(Sg + (size_t)r * ldS, dPg + (size_t)r * ldS, visible(g0 + r, off, 0, nk), nk, lse_r[g0 + r], D_r[g0 + r]);
        for (int d = 0; d < Dh && dqp && nvg > 0; d += NR)
            tl->nn(mr, nvg, dPg, ldS, Ks + (size_t)d * nk, NR, scale, dqp + (size_t)g0 * ldq + d, ldq);
    }
    for (int k0 = 0; k0 < nk; k0 += MR) {
        int mc = imin(MR, nk - k0);
        long first = k0 - off;                      // the first query row that sees key k0
        int rs = first <= 0 ? 0 : first >= nq ? nq : (int)first;
        if (rs >= nq) continue;
        for (int d = 0; d < Dh; d += NR) {
            tl->tn(mc, nq - rs, S + (size_t)rs * ldS + k0, ldS, dOs + ((size_t)d * nq + (size_t)rs * NR), NR, 1.0f,
                   dvp + (size_t)k0 * ldk + d, ldk);
            tl->tn(mc, nq - rs, dP + (size_t)rs * ldS + k0, ldS, Qs + ((size_t)d * nq + (size_t)rs * NR), NR, scale,
                   dkp + (size_t)k0 * ldk + d, ldk);
        }
    }
}

// The backward of key block `sub` (rk rows) of key chunk j of kv head kvh of batch row b:
// for each query head of the group and each unskipped query chunk, in order, P and dS of
// the query rows that see the block, once; dv += P^T dO, dk += dS^T q / sqrt(Dh), and
// with_dq also dq += dS k / sqrt(Dh).
static void key_block_bwd(const bwd_ctx *c, int b, int kvh, int j, int sub, float *S, float *dP,
                          float *Kp, int with_dq) {
    // the microkernels' scratch from Kp (sized in attn_bwd_core): k, v panels, k strips,
    // q and dO strips of RQ2 query rows
    float *Vp = Kp + (size_t)c->ldS * c->t->Dh, *Ks = Vp + (size_t)c->ldS * c->t->Dh;
    float *Qs = Ks + (size_t)c->rk * c->t->Dh, *dOs = Qs + (size_t)RQ2 * c->t->Dh;
    const tiling *t = c->t;
    int Bq = t->Bq, Bk = t->Bk, Dh = t->Dh, H = t->H, KVH = t->KVH, G = t->G, ldq = t->ldq, ldk = t->ldk;
    long delta = t->delta, qld = t->qld, kld = t->kld;
    int kend = imin((j + 1) * Bk, t->Tk);
    int c0 = j * Bk + sub * c->rk, c1 = imin(c0 + c->rk, kend), nk = c1 - c0;
    if (nk <= 0) return;
    size_t krow0 = (size_t)(b * kld + c0) * KVH + kvh;
    const float *kp = c->k + krow0 * Dh, *vp = c->v + krow0 * Dh;
    float *dkp = c->dk + krow0 * Dh, *dvp = c->dv + krow0 * Dh;
    for (int r = 0; r < nk && c->overwrite; r++) {
        memset(dkp + (size_t)r * ldk, 0, sizeof(float) * Dh);
        memset(dvp + (size_t)r * ldk, 0, sizeof(float) * Dh);
    }
    if (c->tl) {   // k, v of the block packed once for all its tiles
        c->tl->pack(Kp, kp, ldk, nk, Dh);
        c->tl->pack(Vp, vp, ldk, nk, Dh);
        pack_strips(Ks, kp, ldk, nk, Dh, c->tl->nr);
    }
    for (int g = 0; g < G; g++) {
        int h = kvh * G + g;
        const float *lseh = c->lse + ((size_t)b * H + h) * qld, *Dvec = c->D + ((size_t)b * H + h) * t->Tq;
        for (int i = 0; i < t->nI; i++) {
            int qend = imin((i + 1) * Bq, t->Tq);
            if (j * Bk >= qend + delta) continue;  // skipped tile, as in the forward
            // query rows of chunk i that see at least one of keys c0..c1-1
            long first = (long)c0 - delta;
            for (int r0 = first > i * Bq ? (int)(first < qend ? first : qend) : i * Bq; r0 < qend; r0 += RQ2) {
                int r1 = imin(r0 + RQ2, qend), nq = r1 - r0;
                size_t row0 = (size_t)(b * qld + r0) * H + h;
                const float *qp = c->q + row0 * Dh, *dop = c->dout + row0 * Dh;
                if (c->tl) {
                    bwd_tile(c, S, dP, Kp, Vp, Ks, Qs, dOs, qp, dop, with_dq ? c->dq + row0 * Dh : NULL, dkp, dvp, nq, nk,
                             r0 + delta - c0, lseh + r0, Dvec + r0);
                    continue;
                }
                // P, dS (nq,nk) of these query rows and keys c0..c1-1
                tile_dS(S, dP, qp, dop, kp, vp, nq, nk, Dh, ldq, ldk, t->scale, r0, delta, c0, lseh + r0, Dvec + r0);
                // o = P v  =>  dv (nk,Dh) += P^T (nk,nq) dO (nq,Dh)
                sgemm(1, 0, nk, Dh, nq, 1.0f, S, nk, dop, ldq, 1.0f, dvp, ldk);
                // S = q k^T / sqrt(Dh)  =>  dk (nk,Dh) += dS^T (nk,nq) q (nq,Dh) / sqrt(Dh)
                sgemm(1, 0, nk, Dh, nq, t->scale, dP, nk, qp, ldq, 1.0f, dkp, ldk);
                //                         and dq (nq,Dh) += dS (nq,nk) k (nk,Dh) / sqrt(Dh)
                if (with_dq) sgemm(0, 0, nq, Dh, nk, t->scale, dP, nk, kp, ldk, 1.0f, c->dq + row0 * Dh, ldq);
            }
        }
    }
}

// dout (B,Tq,H,Dh) -> dq (B,Tq,H,Dh), dk, dv (B,Tk,KVH,Dh), strided as in the forward;
// overwrite: they are set, else this pair's contributions are added to them
static void attn_bwd_core(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *o, const float *lse, const bpt_attn_seg *sg, int overwrite) {
    tiling t;
    if (!tiling_of(sg, &t)) return;
    int B = t.B, Tq = t.Tq, Tk = t.Tk, H = t.H, KVH = t.KVH, Dh = t.Dh, Bq = t.Bq, Bk = t.Bk, G = t.G;
    int nI = t.nI, nJ = t.nJ, ldq = t.ldq, ldk = t.ldk;
    long delta = t.delta, qld = t.qld, kld = t.kld;
    float scale = t.scale;
    int rq = imin(RQ, Bq), nsubq = (Bq + rq - 1) / rq;
    int rk = imin(RK, Bk), nsubk = (Bk + rk - 1) / rk;
    float *Dbuf = bpt_xmalloc(sizeof(float) * (size_t)B * H * Tq);  // D = rowsum(dO o), (B,H,Tq)
    long units1 = (long)B * H * nI * nsubq, units2 = (long)B * KVH * nJ * nsubk, heads = (long)B * KVH;
    const bpt_cpu_tile *tl = tile_for(Dh);
    // microkernels: S, dP rows padded to whole panels plus one (tn reads mr <= nr columns
    // from any key), and the packed operands key_block_bwd lays out in `packed`
    int ldS = tl ? (rk + tl->nr - 1) / tl->nr * tl->nr + tl->nr : 0;
    size_t scratch = (size_t)imax(imax(rq * Bk, RQ2 * rk), RQ2 * ldS);
    size_t packed = tl ? (size_t)(2 * ldS + rk + 2 * RQ2) * Dh : 0;   // k, v panels; k, q, dO strips
    int nt = omp_get_max_threads();
    int one_pass = heads % nt == 0 || heads >= 4L * nt;
    if (one_pass) units1 = units2 = 0;   /* the two passes below have nothing to do */
    bwd_ctx ctx = { &t, dq, dk, dv, dout, q, k, v, lse, Dbuf, rk, overwrite, tl, ldS };
    #pragma omp parallel
    {
        float *S = bpt_xcalloc(2 * scratch + packed, sizeof(float)), *dP = S + scratch, *Kp = dP + scratch;

        // one pass: a unit is (b, kv head) and its query heads, every key block in order
        #pragma omp for schedule(static, 1)
        for (long u = 0; u < (one_pass ? heads : 0); u++) {
            int kvh = (int)(u % KVH), b = (int)(u / KVH);
            for (int g = 0; g < G; g++) {
                int h = kvh * G + g;
                for (int r = 0; r < Tq; r++) {
                    size_t row = (size_t)(b * qld + r) * H + h;
                    Dbuf[((size_t)b * H + h) * Tq + r] = dot_row(dout + row * Dh, o + row * Dh, Dh);
                    if (overwrite) memset(dq + row * Dh, 0, sizeof(float) * Dh);
                }
            }
            for (int j = 0; j < nJ; j++)
                for (int sub = 0; sub < nsubk; sub++) key_block_bwd(&ctx, b, kvh, j, sub, S, dP, Kp, 1);
        }
        // pass 1: dq, and D for pass 2
        #pragma omp for schedule(static, 1)
        for (long u = 0; u < units1; u++) {
            int sub = (int)(u % nsubq), i = (int)(u / nsubq % nI);
            int h = (int)(u / nsubq / nI % H), b = (int)(u / nsubq / nI / H);
            int qend = imin((i + 1) * Bq, Tq);
            int q0 = i * Bq + sub * rq, q1 = imin(q0 + rq, qend), nr = q1 - q0;
            if (nr <= 0) continue;
            int kvh = h / G;
            size_t row0 = (size_t)(b * qld + q0) * H + h;  // (b, q0, h) row of q, o, dout, dq
            const float *qp = q + row0 * Dh, *dop = dout + row0 * Dh;
            float *dqp = dq + row0 * Dh;
            const float *lsep = lse + ((size_t)b * H + h) * qld + q0;
            float *Dp = Dbuf + ((size_t)b * H + h) * Tq + q0;
            for (int r = 0; r < nr; r++) {
                // D = rowsum(dO * o)
                Dp[r] = dot_row(dop + (size_t)r * ldq, o + (row0 + (size_t)r * H) * Dh, Dh);
                if (overwrite) memset(dqp + (size_t)r * ldq, 0, sizeof(float) * Dh);
            }
            for (int j = 0; j < nJ; j++) {
                int k0 = j * Bk;
                if (k0 >= qend + delta) break;     // skipped tile, as in the forward
                int nc = visible(q1 - 1, delta, k0, imin(Bk, Tk - k0));
                if (nc <= 0) break;
                size_t krow = (size_t)(b * kld + k0) * KVH + kvh;
                const float *kp = k + krow * Dh, *vp = v + krow * Dh;
                // P, dS (nr,nc) of tile (q_i, k_j)
                tile_dS(S, dP, qp, dop, kp, vp, nr, nc, Dh, ldq, ldk, scale, q0, delta, k0, lsep, Dp);
                // S = q k^T / sqrt(Dh)  =>  dq_i (nr,Dh) += dS (nr,nc) k_j (nc,Dh) / sqrt(Dh)
                sgemm(0, 0, nr, Dh, nc, scale, dP, nc, kp, ldk, 1.0f, dqp, ldq);
            }
        }
        // (implicit barrier: D is complete)

        // pass 2: dk, dv
        #pragma omp for schedule(static, 1)
        for (long u = 0; u < units2; u++) {
            int sub = (int)(u % nsubk), j = (int)(u / nsubk % nJ);
            int kvh = (int)(u / nsubk / nJ % KVH), b = (int)(u / nsubk / nJ / KVH);
            key_block_bwd(&ctx, b, kvh, j, sub, S, dP, Kp, 0);
        }
        free(S);
    }
    free(Dbuf);
}

// dout (B,T,H,Dh) -> dq (B,T,H,Dh), dk, dv (B,T,KVH,Dh)
void bpt_cpu_attn_bwd(float *dq, float *dk, float *dv, const float *dout,
                      const float *q, const float *k, const float *v,
                      const float *o, const float *lse,
                      int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    bpt_attn_seg sg = { B, H, KVH, Dh, Bq, Bk, T, T, T, T, 0, 0 };
    attn_bwd_core(dq, dk, dv, dout, q, k, v, o, lse, &sg, 1);
}

void bpt_cpu_attn_bwd_seg(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *o, const float *lse, const bpt_attn_seg *sg) {
    attn_bwd_core(dq, dk, dv, dout, q, k, v, o, lse, sg, 0);
}

/* ------------------------------------------------------------------------- */
/* vanilla attention: the full (T,T) probabilities per head */

// q (B,T,H,Dh), k, v (B,T,KVH,Dh) -> o (B,T,H,Dh), probs (B,H,T,T)
void bpt_cpu_attn_vanilla_fwd(float *o, float *probs, const float *q, const float *k,
                              const float *v, int B, int T, int H, int KVH, int Dh) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    bpt_cpu_blas_single_thread();
    int G = H / KVH, nsub = (T + RQ - 1) / RQ;
    int ldq = H * Dh, ldk = KVH * Dh;
    float scale = 1.0f / sqrtf((float)Dh);
    long units = (long)B * H * nsub;
    #pragma omp parallel for schedule(static, 1)
    for (long u = 0; u < units; u++) {
        int sub = (int)(u % nsub), h = (int)(u / nsub % H), b = (int)(u / nsub / H);
        int q0 = sub * RQ, q1 = imin(q0 + RQ, T), nr = q1 - q0, kvh = h / G;
        size_t row0 = (size_t)(b * T + q0) * H + h;
        const float *kp = k + ((size_t)b * T * KVH + kvh) * Dh;
        const float *vp = v + ((size_t)b * T * KVH + kvh) * Dh;
        float *P = probs + (((size_t)b * H + h) * T + q0) * T;
        // S (nr, q1) = q k^T / sqrt(Dh), written straight into the probs rows
        sgemm(0, 1, nr, q1, Dh, scale, q + row0 * Dh, ldq, kp, ldk, 0.0f, P, T);
        for (int r = 0; r < nr; r++) {
            // P = softmax(S) over keys 0..q0+r, 0 above the diagonal
            float m = -INFINITY, l = 0.0f, *p = P + (size_t)r * T;
            fwd_row(p, q0 + r + 1, T, &m, &l);
            scale_row(p, 1.0f / l, q0 + r + 1);
        }
        // o (nr,Dh) = P (nr,q1) v (q1,Dh)
        sgemm(0, 0, nr, Dh, q1, 1.0f, P, T, vp, ldk, 0.0f, o + row0 * Dh, ldq);
    }
}

// dout (B,T,H,Dh) -> dq (B,T,H,Dh), dk, dv (B,T,KVH,Dh)
void bpt_cpu_attn_vanilla_bwd(float *dq, float *dk, float *dv, const float *dout,
                              const float *q, const float *k, const float *v,
                              const float *probs, int B, int T, int H, int KVH, int Dh) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    bpt_cpu_blas_single_thread();
    int G = H / KVH, nsub = (T + RQ - 1) / RQ;
    int ldq = H * Dh, ldk = KVH * Dh;
    float scale = 1.0f / sqrtf((float)Dh);
    float *Dbuf = bpt_xmalloc(sizeof(float) * (size_t)B * H * T);  // D = rowsum(P dP), (B,H,T)
    long units1 = (long)B * H * nsub, units2 = (long)B * KVH * nsub;
    #pragma omp parallel
    {
        float *dS = bpt_xmalloc(sizeof(float) * (size_t)RQ * T);

        // pass 1: dq, per (b, h, query rows)
        #pragma omp for schedule(static, 1)
        for (long u = 0; u < units1; u++) {
            int sub = (int)(u % nsub), h = (int)(u / nsub % H), b = (int)(u / nsub / H);
            int q0 = sub * RQ, q1 = imin(q0 + RQ, T), nr = q1 - q0, kvh = h / G;
            size_t row0 = (size_t)(b * T + q0) * H + h;
            const float *kp = k + ((size_t)b * T * KVH + kvh) * Dh;
            const float *vp = v + ((size_t)b * T * KVH + kvh) * Dh;
            const float *P = probs + (((size_t)b * H + h) * T + q0) * T;
            float *Dp = Dbuf + ((size_t)b * H + h) * T + q0;
            // o = P v  =>  dP (nr,q1) = dO (nr,Dh) v^T (Dh,q1)
            sgemm(0, 1, nr, q1, Dh, 1.0f, dout + row0 * Dh, ldq, vp, ldk, 0.0f, dS, q1);
            for (int r = 0; r < nr; r++) {
                // P = softmax(S)  =>  dS = P (dP - sum(P dP))
                const float *p = P + (size_t)r * T;
                float *ds = dS + (size_t)r * q1;
                int n = q0 + r + 1;
                float D = dot_row(p, ds, n);
                Dp[r] = D;
                for (int c = 0; c < n; c++) ds[c] = p[c] * (ds[c] - D);
                for (int c = n; c < q1; c++) ds[c] = 0.0f;
            }
            // S = q k^T / sqrt(Dh)  =>  dq (nr,Dh) = dS (nr,q1) k (q1,Dh) / sqrt(Dh)
            sgemm(0, 0, nr, Dh, q1, scale, dS, q1, kp, ldk, 0.0f, dq + row0 * Dh, ldq);
        }

        // pass 2: dk, dv, per (b, kv head, key rows), query heads of the group in order
        #pragma omp for schedule(static, 1)
        for (long u = 0; u < units2; u++) {
            int sub = (int)(u % nsub), kvh = (int)(u / nsub % KVH), b = (int)(u / nsub / KVH);
            int c0 = sub * RQ, c1 = imin(c0 + RQ, T), nk = c1 - c0;
            size_t krow0 = (size_t)(b * T + c0) * KVH + kvh;
            float *dkp = dk + krow0 * Dh, *dvp = dv + krow0 * Dh;
            for (int c = 0; c < nk; c++) {
                memset(dkp + (size_t)c * ldk, 0, sizeof(float) * Dh);
                memset(dvp + (size_t)c * ldk, 0, sizeof(float) * Dh);
            }
            for (int g = 0; g < G; g++) {
                int h = kvh * G + g;
                for (int r0 = c0; r0 < T; r0 += RQ) {  // query rows that see these keys
                    int r1 = imin(r0 + RQ, T), nq = r1 - r0;
                    size_t row0 = (size_t)(b * T + r0) * H + h;
                    const float *P = probs + (((size_t)b * H + h) * T + r0) * T + c0;
                    const float *Dp = Dbuf + ((size_t)b * H + h) * T + r0;
                    // dP (nq,nk) = dO (nq,Dh) v^T (Dh,nk);  dS = P (dP - D)
                    sgemm(0, 1, nq, nk, Dh, 1.0f, dout + row0 * Dh, ldq, v + krow0 * Dh, ldk, 0.0f, dS, nk);
                    for (int r = 0; r < nq; r++)
                        for (int c = 0; c < nk; c++)
                            dS[(size_t)r * nk + c] = P[(size_t)r * T + c] * (dS[(size_t)r * nk + c] - Dp[r]);
                    // o = P v  =>  dv (nk,Dh) += P^T (nk,nq) dO (nq,Dh)
                    sgemm(1, 0, nk, Dh, nq, 1.0f, P, T, dout + row0 * Dh, ldq, 1.0f, dvp, ldk);
                    // S = q k^T / sqrt(Dh)  =>  dk (nk,Dh) += dS^T (nk,nq) q (nq,Dh) / sqrt(Dh)
                    sgemm(1, 0, nk, Dh, nq, scale, dS, nk, q + row0 * Dh, ldq, 1.0f, dkp, ldk);
                }
            }
        }
        free(dS);
    }
    free(Dbuf);
}
