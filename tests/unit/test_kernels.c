/* test_kernels.c — every kernel of the CPU backend against plain double-precision
 * references written here, and every backward also against central finite differences
 * of a scalar loss L = sum(out * W) (W random) evaluated in double with the reference
 * forward. Odd sizes throughout; attention over many (Bq, Bk) pairs and GQA layouts.
 * One TAP line per check (tests/unit/unit_test.h); exit status 0 iff all pass.
 *
 * Error measure: max |got - ref| / max |ref| over the tensor (normwise relative).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_tile.h"
#include "unit_test.h"

static const bpt_kernels *K;  // the backend under test

/* tolerances: fp32 kernel vs double reference; kernel vs finite differences */
#define TOL_FWD 1e-5
#define TOL_BWD 3e-5
#define TOL_FD 1e-3
#define FD_H 1e-3

/* check(what, err, tol): err <= tol (false for NaN); check_true(what, cond) */
static void check_at(const char *what, double err, double tol, int line) {
    tap_check(err <= tol, __FILE__, line, "%s (err %.2e, tol %.0e)", what, err, tol);
}
#define check(what, err, tol) check_at((what), (err), (tol), __LINE__)
#define check_true(what, cond) CHECK((cond), "%s", (what))

/* ------------------------------------------------------------------------- */
/* helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {  // splitmix64 -> [0,1)
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z >> 11) * (1.0 / 9007199254740992.0);
}
static float *frand(size_t n, double lo, double hi) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * urand());
    return x;
}
static float *fnan(size_t n) {  // an output buffer that must be fully overwritten
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}
static float *fdup(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}
static double *todbl(const float *x, size_t n) {
    double *y = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}
static double *dzeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

// max |a - ref| / max |ref|; infinite if a has a NaN or inf
static double relerr(const float *a, const double *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = fabs(a[i] - ref[i]);
        if (d > num) num = d;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / (den > 0.0 ? den : 1e-300);
}
static double relerr_ff(const float *a, const float *b, size_t n) {
    double *bd = todbl(b, n);
    double e = relerr(a, bd, n);
    free(bd);
    return e;
}
static double relerr_dd(const double *a, const double *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        if (fabs(a[i] - ref[i]) > num) num = fabs(a[i] - ref[i]);
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / (den > 0.0 ? den : 1e-300);
}
static double maxabs(const double *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* Finite differences. loss(ctx) reads x (double). fd_err compares the kernel's gradient
 * g (float) and the reference's analytic gradient gref (double) with central differences
 * at nidx entries of x (the first, the last and random ones; all if nidx >= n), as
 * max |g - fd| / max |gref|; the errors are max-ed into *ek (kernel) and *er (reference). */
typedef double (*loss_fn)(void *ctx);
static void fd_err(loss_fn loss, void *ctx, double *x, size_t n, const float *g, const double *gref,
                   size_t nidx, double *ek, double *er) {
    double scale = maxabs(gref, n);
    if (scale == 0.0) scale = 1.0;
    size_t cnt = nidx < n ? nidx : n;
    for (size_t c = 0; c < cnt; c++) {
        size_t i = nidx < n ? (c == 0 ? 0 : c == 1 ? n - 1 : (size_t)(urand() * n)) : c;
        double x0 = x[i];
        x[i] = x0 + FD_H; double lp = loss(ctx);
        x[i] = x0 - FD_H; double lm = loss(ctx);
        x[i] = x0;
        double fdv = (lp - lm) / (2.0 * FD_H);
        double dk = isfinite(g[i]) ? fabs(g[i] - fdv) / scale : INFINITY;
        double dr = fabs(gref[i] - fdv) / scale;
        if (dk > *ek) *ek = dk;
        if (dr > *er) *er = dr;
    }
}
/* Reports "<name> kernel vs FD" and "<name> reference vs FD". */
static void fd_report(const char *name, double ek, double er) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s kernel vs FD", name);
    check(buf, ek, TOL_FD);
    snprintf(buf, sizeof buf, "%s reference vs FD", name);
    check(buf, er, TOL_FD);
}
static void fd_check(const char *name, loss_fn loss, void *ctx, double *x, size_t n,
                     const float *g, const double *gref, size_t nidx) {
    double ek = 0.0, er = 0.0;
    fd_err(loss, ctx, x, n, g, gref, nidx, &ek, &er);
    fd_report(name, ek, er);
}

/* ------------------------------------------------------------------------- */
/* memory, lookup, null backend */

static void test_memory(void) {
    size_t n = 100003;
    float *d = K->alloc(n * sizeof(float)), *e = K->alloc(n * sizeof(float));
    check_true("alloc returns memory", d != NULL && e != NULL);
    if (!d || !e) return;
    float *h = frand(n, -1, 1), *back = fnan(n);
    K->copy_h2d(d, h, n * sizeof(float));
    K->copy_d2d(e, d, n * sizeof(float));
    K->copy_d2h(back, e, n * sizeof(float));
    K->sync();
    check_true("copy_h2d/d2d/d2h round trip", memcmp(back, h, n * sizeof(float)) == 0);
    K->zero(e + 5, (n - 10) * sizeof(float));
    int ok = e[4] == h[4] && e[n - 5] == h[n - 5];
    for (size_t i = 5; i < n - 5; i++) ok &= e[i] == 0.0f;
    check_true("zero clears exactly the range", ok);
    K->free(d, n * sizeof(float));
    K->free(e, n * sizeof(float));
    free(h); free(back);

    const bpt_kernels *nk = bpt_kernels_get("null");
    check_true("bpt_kernels_get(cpu/null/bogus)", bpt_kernels_get("cpu") == &bpt_kernels_cpu &&
               nk == &bpt_kernels_null && bpt_kernels_get("bogus") == NULL && bpt_kernels_get(NULL) == NULL);
    const char *list = bpt_kernels_list();
    check_true("bpt_kernels_list has cpu, not null",
               list && strncmp(list, "cpu", 3) == 0 && strstr(list, "null") == NULL);
    // null: address space only; every kernel must leave it untouched (a touch faults)
    size_t big = (size_t)1 << 34;  // 16 GiB of address space
    float *p = nk->alloc(big);
    check_true("null alloc reserves 16 GiB of address space", p != NULL);
    if (p) {
        int32_t *ip = (int32_t *)p;
        double *dp = (double *)p;
        nk->copy_h2d(p, p, 1024); nk->copy_d2h(p, p, 1024); nk->copy_d2d(p, p, 1024);
        nk->zero(p, 1024); nk->sync();
        nk->gemm(0, 0, 8, 8, 8, 1, p, 8, p, 8, 0, p, 8);
        nk->rmsnorm_fwd(p, p, p, p, 4, 4, 1e-5f); nk->rmsnorm_bwd(p, p, p, p, p, p, 4, 4, 0);
        nk->rope_fwd(p, p, p, 1, 4, 1, 4); nk->rope_bwd(p, p, p, 1, 4, 1, 4);
        nk->swiglu_fwd(p, p, p, 16); nk->swiglu_bwd(p, p, p, p, p, 16);
        nk->embed_fwd(p, ip, p, 4, 4, 0, 4); nk->embed_bwd(p, p, ip, 4, 4, 0, 4);
        nk->attn_fwd(p, p, p, p, p, 1, 8, 2, 1, 4, 4, 4);
        nk->attn_bwd(p, p, p, p, p, p, p, p, p, 1, 8, 2, 1, 4, 4, 4);
        nk->attn_vanilla_fwd(p, p, p, p, p, 1, 8, 2, 1, 4);
        nk->attn_vanilla_bwd(p, p, p, p, p, p, p, p, 1, 8, 2, 1, 4);
        nk->xent_fwd_bwd(p, dp, ip, p, 4, 4, 1.0f);
        nk->adamw(p, p, p, p, 16, 1, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.05f, 1.0f);
        nk->sumsq(dp, p, 16); nk->axpy(p, 1.0f, p, 16);
        nk->free(p, big);
        check_true("null kernels touch nothing", 1);
    }
}

/* ------------------------------------------------------------------------- */
/* gemm */

static void test_gemm_case(int tA, int tB, int M, int N, int Kd, const char *tag) {
    float alpha = 0.7f, beta = 0.3f;
    int lda = (tA ? M : Kd) + 3, ldb = (tB ? Kd : N) + 2, ldc = N + 5;
    int arows = tA ? Kd : M, brows = tB ? N : Kd;
    float *A = frand((size_t)arows * lda, -1, 1), *Bm = frand((size_t)brows * ldb, -1, 1);
    float *C = frand((size_t)M * ldc, -1, 1), *C0 = fdup(C, (size_t)M * ldc);
    K->gemm(tA, tB, M, N, Kd, alpha, A, lda, Bm, ldb, beta, C, ldc);
    double *ref = dzeros((size_t)M * N);
    float *got = malloc(sizeof(float) * M * N);
    int pad_ok = 1;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < Kd; k++) {
                double a = tA ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                double b = tB ? Bm[(size_t)n * ldb + k] : Bm[(size_t)k * ldb + n];
                s += a * b;
            }
            ref[(size_t)m * N + n] = alpha * s + beta * (double)C0[(size_t)m * ldc + n];
            got[(size_t)m * N + n] = C[(size_t)m * ldc + n];
        }
        for (int n = N; n < ldc; n++) pad_ok &= C[(size_t)m * ldc + n] == C0[(size_t)m * ldc + n];
    }
    char buf[160];
    snprintf(buf, sizeof buf, "gemm %s transA=%d transB=%d M=%d N=%d K=%d", tag, tA, tB, M, N, Kd);
    check(buf, relerr(got, ref, (size_t)M * N), TOL_FWD);
    snprintf(buf, sizeof buf, "gemm %s transA=%d transB=%d leaves C padding (ldc) alone", tag, tA, tB);
    check_true(buf, pad_ok);
    free(A); free(Bm); free(C); free(C0); free(ref); free(got);
}

static void test_gemm(void) {
    for (int t = 0; t < 4; t++) test_gemm_case(t >> 1, t & 1, 13, 17, 37, "small");
    // big enough for the threaded split: rows (M >= N) and columns (N > M)
    for (int t = 0; t < 4; t++) test_gemm_case(t >> 1, t & 1, 203, 151, 101, "split-rows");
    for (int t = 0; t < 4; t++) test_gemm_case(t >> 1, t & 1, 91, 301, 103, "split-cols");
    // determinism of the threaded path
    int M = 203, N = 151, Kd = 101;
    float *A = frand((size_t)M * Kd, -1, 1), *Bm = frand((size_t)Kd * N, -1, 1);
    float *C1 = fnan((size_t)M * N), *C2 = fnan((size_t)M * N);
    K->gemm(0, 0, M, N, Kd, 1.0f, A, Kd, Bm, N, 0.0f, C1, N);
    K->gemm(0, 0, M, N, Kd, 1.0f, A, Kd, Bm, N, 0.0f, C2, N);
    check_true("gemm deterministic (bit-identical rerun), beta=0 ignores NaN in C",
               memcmp(C1, C2, sizeof(float) * M * N) == 0 && isfinite(C1[0]));
    free(A); free(Bm); free(C1); free(C2);
}

/* ------------------------------------------------------------------------- */
/* RMSNorm */

typedef struct { int N, D; double eps; double *x, *w, *W; } rms_ctx;
// out = x * rstd * w
static void rms_ref(double *out, double *rstd, const double *x, const double *w, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0.0;
        for (int d = 0; d < D; d++) ss += x[(size_t)n * D + d] * x[(size_t)n * D + d];
        double r = 1.0 / sqrt(ss / D + eps);
        if (rstd) rstd[n] = r;
        for (int d = 0; d < D; d++) out[(size_t)n * D + d] = x[(size_t)n * D + d] * r * w[d];
    }
}
static double rms_loss(void *p) {
    rms_ctx *c = p;
    double *out = dzeros((size_t)c->N * c->D), L = 0.0;
    rms_ref(out, NULL, c->x, c->w, c->N, c->D, c->eps);
    for (size_t i = 0; i < (size_t)c->N * c->D; i++) L += out[i] * c->W[i];
    free(out);
    return L;
}

static void test_rmsnorm(void) {
    int N = 13, D = 37;
    float eps = 1e-5f;
    size_t nd = (size_t)N * D;
    float *x = frand(nd, -2, 2), *w = frand(D, 0.5, 1.5), *W = frand(nd, -1, 1);
    float *out = fnan(nd), *rstd = fnan(N);
    K->rmsnorm_fwd(out, rstd, x, w, N, D, eps);
    rms_ctx c = {N, D, eps, todbl(x, nd), todbl(w, D), todbl(W, nd)};
    double *oref = dzeros(nd), *rref = dzeros(N);
    rms_ref(oref, rref, c.x, c.w, N, D, eps);
    check("rmsnorm_fwd out", relerr(out, oref, nd), TOL_FWD);
    check("rmsnorm_fwd rstd", relerr(rstd, rref, N), TOL_FWD);

    // analytic reference gradient of L = sum(out * W)
    double *dx = dzeros(nd), *dw = dzeros(D);
    for (int n = 0; n < N; n++) {
        const double *xr = c.x + (size_t)n * D, *g = c.W + (size_t)n * D;
        double r = rref[n], dot = 0.0;
        for (int d = 0; d < D; d++) { dot += g[d] * c.w[d] * xr[d]; dw[d] += g[d] * xr[d] * r; }
        for (int d = 0; d < D; d++) dx[(size_t)n * D + d] = r * g[d] * c.w[d] - xr[d] * r * r * r * dot / D;
    }
    // overwrite mode; dw accumulates onto a prefilled buffer
    float *dinp = fnan(nd), *dwk = frand(D, -1, 1), *dw0 = fdup(dwk, D);
    K->rmsnorm_bwd(dinp, dwk, W, x, w, rstd, N, D, 0);
    check("rmsnorm_bwd dinp (accumulate=0)", relerr(dinp, dx, nd), TOL_BWD);
    double *dwt = dzeros(D);
    for (int d = 0; d < D; d++) dwt[d] = dw0[d] + dw[d];
    check("rmsnorm_bwd dw += (prefilled)", relerr(dwk, dwt, D), TOL_BWD);
    // accumulate mode
    float *dacc = frand(nd, -1, 1), *dacc0 = fdup(dacc, nd), *dw2 = calloc(D, sizeof(float));
    K->rmsnorm_bwd(dacc, dw2, W, x, w, rstd, N, D, 1);
    double *dxt = dzeros(nd);
    for (size_t i = 0; i < nd; i++) dxt[i] = dacc0[i] + dx[i];
    check("rmsnorm_bwd dinp (accumulate=1)", relerr(dacc, dxt, nd), TOL_BWD);
    // finite differences
    float *dwz = calloc(D, sizeof(float));
    K->rmsnorm_bwd(dinp, dwz, W, x, w, rstd, N, D, 0);
    fd_check("rmsnorm_bwd dinp", rms_loss, &c, c.x, nd, dinp, dx, nd);
    fd_check("rmsnorm_bwd dw", rms_loss, &c, c.w, D, dwz, dw, D);
    // determinism of dw
    float *dwa = calloc(D, sizeof(float)), *dwb = calloc(D, sizeof(float));
    float *big = frand((size_t)301 * D, -1, 1), *bigW = frand((size_t)301 * D, -1, 1);
    float *bigo = fnan((size_t)301 * D), *bigr = fnan(301), *bigd = fnan((size_t)301 * D);
    K->rmsnorm_fwd(bigo, bigr, big, w, 301, D, eps);
    K->rmsnorm_bwd(bigd, dwa, bigW, big, w, bigr, 301, D, 0);
    K->rmsnorm_bwd(bigd, dwb, bigW, big, w, bigr, 301, D, 0);
    check_true("rmsnorm_bwd dw deterministic", memcmp(dwa, dwb, sizeof(float) * D) == 0);
    free(x); free(w); free(W); free(out); free(rstd); free(c.x); free(c.w); free(c.W);
    free(oref); free(rref); free(dx); free(dw); free(dinp); free(dwk); free(dw0); free(dwt);
    free(dacc); free(dacc0); free(dw2); free(dxt); free(dwz); free(dwa); free(dwb);
    free(big); free(bigW); free(bigo); free(bigr); free(bigd);
}

/* ------------------------------------------------------------------------- */
/* RoPE */

typedef struct { int B, T, nh, Dh; const float *cos, *sin; double *x, *W; } rope_ctx;
// (x1, x2) = (x[i], x[i+Dh/2]) -> (x1 c - x2 s, x2 c + x1 s), sign = -1 rotates back
static void rope_ref(double *out, const double *x, const float *cs, const float *sn,
                     int B, int T, int nh, int Dh, double sign) {
    int half = Dh / 2;
    for (int b = 0; b < B; b++) for (int t = 0; t < T; t++) for (int h = 0; h < nh; h++) {
        size_t base = (((size_t)b * T + t) * nh + h) * Dh;
        for (int i = 0; i < half; i++) {
            double c = cs[(size_t)t * half + i], s = sign * sn[(size_t)t * half + i];
            double x1 = x[base + i], x2 = x[base + i + half];
            out[base + i] = x1 * c - x2 * s;
            out[base + i + half] = x2 * c + x1 * s;
        }
    }
}
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->nh * c->Dh;
    double *out = dzeros(n), L = 0.0;
    rope_ref(out, c->x, c->cos, c->sin, c->B, c->T, c->nh, c->Dh, 1.0);
    for (size_t i = 0; i < n; i++) L += out[i] * c->W[i];
    free(out);
    return L;
}

static void test_rope(void) {
    int B = 2, T = 13, nh = 3, Dh = 10, half = Dh / 2;
    size_t n = (size_t)B * T * nh * Dh;
    float *cs = malloc(sizeof(float) * T * half), *sn = malloc(sizeof(float) * T * half);
    for (int t = 0; t < T; t++) for (int i = 0; i < half; i++) {
        double ang = (t + 1000.0) * pow(10000.0, -2.0 * i / Dh);  // large positions too
        cs[t * half + i] = (float)cos(ang);
        sn[t * half + i] = (float)sin(ang);
    }
    float *x = frand(n, -1, 1), *y = fdup(x, n), *W = frand(n, -1, 1);
    rope_ctx c = {B, T, nh, Dh, cs, sn, todbl(x, n), todbl(W, n)};
    double *ref = dzeros(n), *gref = dzeros(n);
    K->rope_fwd(y, cs, sn, B, T, nh, Dh);
    rope_ref(ref, c.x, cs, sn, B, T, nh, Dh, 1.0);
    check("rope_fwd", relerr(y, ref, n), TOL_FWD);
    // L = sum(rope(x) * W): dL/dx = rope^T(W), the rotation by the negative angle
    float *g = fdup(W, n);
    K->rope_bwd(g, cs, sn, B, T, nh, Dh);
    rope_ref(gref, c.W, cs, sn, B, T, nh, Dh, -1.0);
    check("rope_bwd", relerr(g, gref, n), TOL_BWD);
    fd_check("rope_bwd", rope_loss, &c, c.x, n, g, gref, n);
    K->rope_bwd(y, cs, sn, B, T, nh, Dh);
    check("rope_bwd(rope_fwd(x)) == x", relerr_ff(y, x, n), TOL_FWD);
    free(cs); free(sn); free(x); free(y); free(W); free(c.x); free(c.W); free(ref); free(gref); free(g);
}

/* ------------------------------------------------------------------------- */
/* SwiGLU */

typedef struct { size_t n; double *g, *u, *W; } swiglu_ctx;
static double silu(double g) { return g / (1.0 + exp(-g)); }
static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    double L = 0.0;
    for (size_t i = 0; i < c->n; i++) L += silu(c->g[i]) * c->u[i] * c->W[i];
    return L;
}

static void test_swiglu(void) {
    size_t n = 2501;  // several internal blocks of 1024 and a tail
    float *g = frand(n, -12, 12), *u = frand(n, -2, 2), *W = frand(n, -1, 1);
    g[0] = -90.0f; g[1] = 90.0f; g[2] = 0.0f;  // saturated sigmoids, and zero
    float *h = fnan(n), *dg = fnan(n), *du = fnan(n);
    swiglu_ctx c = {n, todbl(g, n), todbl(u, n), todbl(W, n)};
    double *href = dzeros(n), *dgref = dzeros(n), *duref = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-c.g[i]));
        href[i] = c.g[i] * s * c.u[i];
        dgref[i] = c.W[i] * c.u[i] * (s + c.g[i] * s * (1.0 - s));
        duref[i] = c.W[i] * c.g[i] * s;
    }
    K->swiglu_fwd(h, g, u, n);
    check("swiglu_fwd", relerr(h, href, n), TOL_FWD);
    K->swiglu_bwd(dg, du, W, g, u, n);
    check("swiglu_bwd dg", relerr(dg, dgref, n), TOL_BWD);
    check("swiglu_bwd du", relerr(du, duref, n), TOL_BWD);
    fd_check("swiglu_bwd dg", swiglu_loss, &c, c.g, n, dg, dgref, 300);
    fd_check("swiglu_bwd du", swiglu_loss, &c, c.u, n, du, duref, 300);
    free(g); free(u); free(W); free(h); free(dg); free(du);
    free(c.g); free(c.u); free(c.W); free(href); free(dgref); free(duref);
}

/* ------------------------------------------------------------------------- */
/* Embedding */

typedef struct { int N, D; const int32_t *tok; double *wte, *W; } embed_ctx;
static double embed_loss(void *p) {
    embed_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int d = 0; d < c->D; d++) L += c->wte[(size_t)c->tok[n] * c->D + d] * c->W[(size_t)n * c->D + d];
    return L;
}

static void test_embed(void) {
    int N = 13, D = 37, V = 11;
    int32_t tok[13] = {3, 0, 10, 3, 7, 7, 7, 1, 10, 0, 5, 3, 9};  // repeats, both ends
    float *wte = frand((size_t)V * D, -1, 1), *out = fnan((size_t)N * D), *W = frand((size_t)N * D, -1, 1);
    K->embed_fwd(out, tok, wte, N, D, 0, V);
    int ok = 1;
    for (int n = 0; n < N; n++) ok &= memcmp(out + (size_t)n * D, wte + (size_t)tok[n] * D, sizeof(float) * D) == 0;
    check_true("embed_fwd exact rows", ok);
    float *dwte = frand((size_t)V * D, -1, 1), *dw0 = fdup(dwte, (size_t)V * D);
    K->embed_bwd(dwte, W, tok, N, D, 0, V);
    double *ref = todbl(dw0, (size_t)V * D), *gref = dzeros((size_t)V * D);
    for (int n = 0; n < N; n++) for (int d = 0; d < D; d++) {
        ref[(size_t)tok[n] * D + d] += W[(size_t)n * D + d];
        gref[(size_t)tok[n] * D + d] += W[(size_t)n * D + d];
    }
    check("embed_bwd dwte += (prefilled, repeated tokens)", relerr(dwte, ref, (size_t)V * D), TOL_BWD);
    float *g = calloc((size_t)V * D, sizeof(float));
    K->embed_bwd(g, W, tok, N, D, 0, V);
    embed_ctx c = {N, D, tok, todbl(wte, (size_t)V * D), todbl(W, (size_t)N * D)};
    fd_check("embed_bwd dwte", embed_loss, &c, c.wte, (size_t)V * D, g, gref, (size_t)V * D);
    free(wte); free(out); free(W); free(dwte); free(dw0); free(ref); free(gref); free(g); free(c.wte); free(c.W);
}

/* ------------------------------------------------------------------------- */
/* attention */

typedef struct { int B, T, H, KVH, Dh; double *q, *k, *v, *W; } attn_ctx;

// q (B,T,H,Dh), k, v (B,T,KVH,Dh) -> o (B,T,H,Dh), lse (B,H,T), P (B,H,T,T) (optional)
static void attn_ref(double *o, double *lse, double *P, const double *q, const double *k,
                     const double *v, int B, int T, int H, int KVH, int Dh) {
    double scale = 1.0 / sqrt((double)Dh), *s = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int t = 0; t < T; t++) {
        int kvh = h / (H / KVH);
        const double *qr = q + (((size_t)b * T + t) * H + h) * Dh;
        double m = -INFINITY, l = 0.0;
        for (int u = 0; u <= t; u++) {
            const double *kr = k + (((size_t)b * T + u) * KVH + kvh) * Dh;
            double d = 0.0;
            for (int i = 0; i < Dh; i++) d += qr[i] * kr[i];
            s[u] = d * scale;
            if (s[u] > m) m = s[u];
        }
        for (int u = 0; u <= t; u++) { s[u] = exp(s[u] - m); l += s[u]; }
        double *orow = o + (((size_t)b * T + t) * H + h) * Dh;
        for (int i = 0; i < Dh; i++) orow[i] = 0.0;
        for (int u = 0; u <= t; u++) {
            const double *vr = v + (((size_t)b * T + u) * KVH + kvh) * Dh;
            for (int i = 0; i < Dh; i++) orow[i] += s[u] / l * vr[i];
        }
        if (lse) lse[((size_t)b * H + h) * T + t] = m + log(l);
        if (P) for (int u = 0; u < T; u++) P[(((size_t)b * H + h) * T + t) * T + u] = u <= t ? s[u] / l : 0.0;
    }
    free(s);
}

// analytic gradients of L = sum(o * dout)
static void attn_ref_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q,
                         const double *k, const double *v, int B, int T, int H, int KVH, int Dh) {
    double scale = 1.0 / sqrt((double)Dh);
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * KVH * Dh;
    memset(dq, 0, sizeof(double) * nq);
    memset(dk, 0, sizeof(double) * nk);
    memset(dv, 0, sizeof(double) * nk);
    double *P = malloc(sizeof(double) * (size_t)B * H * T * T), *o = malloc(sizeof(double) * nq);
    double *dP = malloc(sizeof(double) * T);
    attn_ref(o, NULL, P, q, k, v, B, T, H, KVH, Dh);
    for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int t = 0; t < T; t++) {
        int kvh = h / (H / KVH);
        const double *p = P + (((size_t)b * H + h) * T + t) * T;
        size_t qi = (((size_t)b * T + t) * H + h) * Dh;
        double D = 0.0;
        for (int u = 0; u <= t; u++) {
            size_t ki = (((size_t)b * T + u) * KVH + kvh) * Dh;
            // o = sum_u P v_u: dP = dO . v_u, dv_u += P dO
            double d = 0.0;
            for (int i = 0; i < Dh; i++) { d += dout[qi + i] * v[ki + i]; dv[ki + i] += p[u] * dout[qi + i]; }
            dP[u] = d;
            D += p[u] * d;
        }
        for (int u = 0; u <= t; u++) {
            size_t ki = (((size_t)b * T + u) * KVH + kvh) * Dh;
            // P = softmax(S), S = q . k_u * scale
            double dS = p[u] * (dP[u] - D);
            for (int i = 0; i < Dh; i++) {
                dq[qi + i] += dS * k[ki + i] * scale;
                dk[ki + i] += dS * q[qi + i] * scale;
            }
        }
    }
    free(P); free(o); free(dP);
}

static double attn_loss(void *p) {
    attn_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->H * c->Dh;
    double *o = dzeros(n), L = 0.0;
    attn_ref(o, NULL, NULL, c->q, c->k, c->v, c->B, c->T, c->H, c->KVH, c->Dh);
    for (size_t i = 0; i < n; i++) L += o[i] * c->W[i];
    free(o);
    return L;
}

/* One (B,T,H,KVH,Dh) problem: the references once, then blockwise attention for each
 * (Bq,Bk) pair in chunks[] and vanilla attention, each against the references and FD. */
static void test_attn_config(int B, int T, int H, int KVH, int Dh, const int (*chunks)[2], int nchunks,
                             int fd_entries) {
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * KVH * Dh, nl = (size_t)B * H * T;
    float *q = frand(nq, -2, 2), *k = frand(nk, -2, 2), *v = frand(nk, -1, 1), *W = frand(nq, -1, 1);
    attn_ctx c = {B, T, H, KVH, Dh, todbl(q, nq), todbl(k, nk), todbl(v, nk), todbl(W, nq)};
    double *oref = dzeros(nq), *lref = dzeros(nl), *Pref = dzeros(nl * T);
    double *dqr = dzeros(nq), *dkr = dzeros(nk), *dvr = dzeros(nk);
    attn_ref(oref, lref, Pref, c.q, c.k, c.v, B, T, H, KVH, Dh);
    attn_ref_bwd(dqr, dkr, dvr, c.W, c.q, c.k, c.v, B, T, H, KVH, Dh);
    char tag[96], buf[192];
    snprintf(tag, sizeof tag, "B=%d T=%d H=%d KVH=%d Dh=%d", B, T, H, KVH, Dh);

    // vanilla
    float *ov = fnan(nq), *Pv = fnan(nl * T), *dqv = fnan(nq), *dkv = fnan(nk), *dvv = fnan(nk);
    K->attn_vanilla_fwd(ov, Pv, q, k, v, B, T, H, KVH, Dh);
    K->attn_vanilla_bwd(dqv, dkv, dvv, W, q, k, v, Pv, B, T, H, KVH, Dh);
    snprintf(buf, sizeof buf, "attn_vanilla_fwd o %s", tag);      check(buf, relerr(ov, oref, nq), TOL_FWD);
    snprintf(buf, sizeof buf, "attn_vanilla_fwd probs %s", tag);  check(buf, relerr(Pv, Pref, nl * T), TOL_FWD);
    int zeros = 1;
    for (size_t r = 0; r < nl; r++) for (int u = (int)(r % T) + 1; u < T; u++) zeros &= Pv[r * T + u] == 0.0f;
    snprintf(buf, sizeof buf, "attn_vanilla_fwd probs exactly 0 above the diagonal %s", tag);
    check_true(buf, zeros);
    snprintf(buf, sizeof buf, "attn_vanilla_bwd dq %s", tag); check(buf, relerr(dqv, dqr, nq), TOL_BWD);
    snprintf(buf, sizeof buf, "attn_vanilla_bwd dk %s", tag); check(buf, relerr(dkv, dkr, nk), TOL_BWD);
    snprintf(buf, sizeof buf, "attn_vanilla_bwd dv %s", tag); check(buf, relerr(dvv, dvr, nk), TOL_BWD);
    if (fd_entries) {
        double ek = 0.0, er = 0.0;
        fd_err(attn_loss, &c, c.q, nq, dqv, dqr, fd_entries, &ek, &er);
        fd_err(attn_loss, &c, c.k, nk, dkv, dkr, fd_entries, &ek, &er);
        fd_err(attn_loss, &c, c.v, nk, dvv, dvr, fd_entries, &ek, &er);
        snprintf(buf, sizeof buf, "attn_vanilla_bwd dq,dk,dv %s", tag);
        fd_report(buf, ek, er);
    }

    // blockwise, every chunk pair
    for (int ci = 0; ci < nchunks; ci++) {
        int Bq = chunks[ci][0], Bk = chunks[ci][1];
        float *o = fnan(nq), *lse = fnan(nl), *dq = fnan(nq), *dk = fnan(nk), *dv = fnan(nk);
        K->attn_fwd(o, lse, q, k, v, B, T, H, KVH, Dh, Bq, Bk);
        K->attn_bwd(dq, dk, dv, W, q, k, v, o, lse, B, T, H, KVH, Dh, Bq, Bk);
        double e[5] = {relerr(o, oref, nq), relerr(lse, lref, nl), relerr(dq, dqr, nq),
                       relerr(dk, dkr, nk), relerr(dv, dvr, nk)};
        snprintf(buf, sizeof buf, "attn_fwd o,lse vs reference %s Bq=%d Bk=%d", tag, Bq, Bk);
        check(buf, fmax(e[0], e[1]), TOL_FWD);
        snprintf(buf, sizeof buf, "attn_bwd dq,dk,dv vs reference %s Bq=%d Bk=%d", tag, Bq, Bk);
        check(buf, fmax(e[2], fmax(e[3], e[4])), TOL_BWD);
        double ev = fmax(fmax(relerr_ff(o, ov, nq), relerr_ff(dq, dqv, nq)),
                         fmax(relerr_ff(dk, dkv, nk), relerr_ff(dv, dvv, nk)));
        snprintf(buf, sizeof buf, "attn blockwise == vanilla (o,dq,dk,dv) %s Bq=%d Bk=%d", tag, Bq, Bk);
        check(buf, ev, TOL_BWD);
        if (fd_entries) {  // the reference line repeats per pair: FD entries are redrawn
            double ek = 0.0, er = 0.0;
            fd_err(attn_loss, &c, c.q, nq, dq, dqr, fd_entries, &ek, &er);
            fd_err(attn_loss, &c, c.k, nk, dk, dkr, fd_entries, &ek, &er);
            fd_err(attn_loss, &c, c.v, nk, dv, dvr, fd_entries, &ek, &er);
            snprintf(buf, sizeof buf, "attn_bwd dq,dk,dv %s Bq=%d Bk=%d", tag, Bq, Bk);
            fd_report(buf, ek, er);
        }
        free(o); free(lse); free(dq); free(dk); free(dv);
    }
    free(q); free(k); free(v); free(W); free(c.q); free(c.k); free(c.v); free(c.W);
    free(oref); free(lref); free(Pref); free(dqr); free(dkr); free(dvr);
    free(ov); free(Pv); free(dqv); free(dkv); free(dvv);
}

static void test_attn_determinism(void) {
    int B = 2, T = 200, H = 6, KVH = 2, Dh = 16, Bq = 40, Bk = 100;
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * KVH * Dh, nl = (size_t)B * H * T;
    float *q = frand(nq, -2, 2), *k = frand(nk, -2, 2), *v = frand(nk, -1, 1), *W = frand(nq, -1, 1);
    float *o[2], *lse[2], *dq[2], *dk[2], *dv[2];
    for (int r = 0; r < 2; r++) {
        o[r] = fnan(nq); lse[r] = fnan(nl); dq[r] = fnan(nq); dk[r] = fnan(nk); dv[r] = fnan(nk);
        K->attn_fwd(o[r], lse[r], q, k, v, B, T, H, KVH, Dh, Bq, Bk);
        K->attn_bwd(dq[r], dk[r], dv[r], W, q, k, v, o[r], lse[r], B, T, H, KVH, Dh, Bq, Bk);
    }
    check_true("attn_fwd deterministic (bit-identical rerun)",
               memcmp(o[0], o[1], nq * 4) == 0 && memcmp(lse[0], lse[1], nl * 4) == 0);
    check_true("attn_bwd deterministic (bit-identical rerun)",
               memcmp(dq[0], dq[1], nq * 4) == 0 && memcmp(dk[0], dk[1], nk * 4) == 0 &&
               memcmp(dv[0], dv[1], nk * 4) == 0);
    for (int r = 0; r < 2; r++) { free(o[r]); free(lse[r]); free(dq[r]); free(dk[r]); free(dv[r]); }
    free(q); free(k); free(v); free(W);
}

/* The microkernel path of the blockwise attention (cpu_tile.h) for every set this CPU
 * runs, the 16-wide kernels compiled for AVX2 included (the AVX-512 kernels' source),
 * and the sgemm path ("off"): head dims that are whole tiles, row counts that are not
 * multiples of 6, forward tiles of more than one packed key chunk (Bk > 256), GQA, the
 * one-pass and the two-pass backward. */
static void test_attention_tiles(void) {
    const bpt_cpu_tile *was = bpt_cpu_tile_get();
    static const char *sets[] = { "off", "avx2", "avx2-w16", "avx512" };
    static const int c64[][2] = {{64, 64}, {20, 32}, {64, 13}, {7, 64}};
    static const int c600[][2] = {{600, 600}, {128, 512}, {300, 290}};
    int nt = omp_get_max_threads();
    for (int i = 0; i < 4; i++) {
        if (bpt_cpu_tile_use(sets[i]) != 0) {
            tap_note("attention microkernels %s: this CPU lacks them", sets[i]);
            continue;
        }
        tap_note("attention microkernels: %s", sets[i]);
        test_attn_config(2, 64, 4, 2, 32, c64, 4, 12);
        test_attn_config(1, 64, 2, 1, 64, c64, 4, 0);
        test_attn_config(1, 600, 2, 2, 32, c600, 3, 0);
        omp_set_num_threads(3);   /* 2 (b, kv head) units on 3 threads: the two-pass backward */
        test_attn_config(1, 64, 4, 2, 32, c64, 4, 0);
        omp_set_num_threads(nt);
    }
    bpt_cpu_tile_use(was ? was->name : "off");
}

static void test_attention(void) {
    static const int c24[][2] = {{4, 8}, {8, 8}, {8, 4}, {12, 4}, {4, 12}, {3, 8}, {8, 3}, {24, 24}};
    static const int heads[][2] = {{4, 4}, {4, 2}, {6, 1}};
    for (int i = 0; i < 3; i++) test_attn_config(2, 24, heads[i][0], heads[i][1], 8, c24, 8, 24);
    static const int c40[][2] = {{8, 20}, {20, 8}, {5, 8}, {10, 10}, {40, 40}, {12, 16}};  // last: ragged
    test_attn_config(2, 40, 4, 2, 16, c40, 6, 24);
    // chunks larger than the kernel's internal row blocks (64 query rows, 64 key rows, 256)
    static const int c320[][2] = {{320, 80}, {80, 320}, {160, 64}, {64, 160}, {320, 320}, {32, 32}};
    test_attn_config(2, 320, 4, 2, 16, c320, 6, 0);
    /* the backward in one pass (a unit per (b, kv head): 1 thread) and in two (4 (b, kv
     * head) units do not fill 3 threads evenly), whatever the machine's thread count */
    int nt = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads += 2) {
        tap_note("attention with %d OpenMP thread(s): the %s backward", threads, threads == 1 ? "one-pass" : "two-pass");
        omp_set_num_threads(threads);
        test_attn_config(2, 40, 4, 2, 16, c40, 6, 24);
    }
    omp_set_num_threads(nt);
    test_attn_determinism();
    test_attention_tiles();
}

/* ------------------------------------------------------------------------- */
/* cross-entropy */

typedef struct { int N, V; const int32_t *tgt; const float *mask; double scale; double *x; } xent_ctx;
static double xent_loss(void *p) {  // scale * sum mask * nll
    xent_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++) {
        if (c->mask[n] == 0.0f) continue;
        const double *x = c->x + (size_t)n * c->V;
        double m = x[0], s = 0.0;
        for (int i = 1; i < c->V; i++) if (x[i] > m) m = x[i];
        for (int i = 0; i < c->V; i++) s += exp(x[i] - m);
        L += c->mask[n] * (m + log(s) - x[c->tgt[n]]);
    }
    return c->scale * L;
}

/* A cross-entropy case before its special rows: N x V logits uniform in [-a, a) (returned),
 * and in every row a random target (*tgt) of weight 1 (*mask); all three malloc'd. */
static float *xent_case(int N, int V, double a, int32_t **tgt, float **mask) {
    float *x = frand((size_t)N * V, -a, a);
    *tgt = malloc(sizeof(int32_t) * N);
    *mask = malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++) { (*tgt)[n] = (int32_t)(urand() * V); (*mask)[n] = 1.0f; }
    return x;
}

static void test_xent(void) {
    int N = 13, V = 37;
    float scale = 1.0f / 7.0f;
    int32_t *tgt;
    float *mask, *x = xent_case(N, V, 4, &tgt, &mask);
    mask[2] = 0.0f; mask[7] = 0.0f; tgt[7] = -1;  // masked rows (one with a padding target)
    mask[9] = 0.5f;                               // a fractional weight
    for (int i = 0; i < V; i++) x[3 * V + i] += 1000.0f;  // large logits: needs max subtraction
    // ties for the max: row 4 target is the lower id (correct), row 5 the higher (wrong)
    x[4 * V + 5] = x[4 * V + 20] = 9.0f; tgt[4] = 5;
    x[5 * V + 6] = x[5 * V + 30] = 9.0f; tgt[5] = 30;
    x[6 * V + 11] = 9.0f; tgt[6] = 11;  // a plain correct prediction
    double *xd = todbl(x, (size_t)N * V), *gref = dzeros((size_t)N * V);
    double nll = 0.0, hits = 0.0;
    for (int n = 0; n < N; n++) {
        const double *r = xd + (size_t)n * V;
        double m = r[0], s = 0.0;
        int am = 0;
        for (int i = 1; i < V; i++) if (r[i] > m) { m = r[i]; am = i; }
        for (int i = 0; i < V; i++) s += exp(r[i] - m);
        if (mask[n] != 0.0f) {
            nll += mask[n] * (m + log(s) - r[tgt[n]]);
            hits += mask[n] * (am == tgt[n]);
        }
        for (int i = 0; i < V; i++)
            gref[(size_t)n * V + i] = mask[n] == 0.0f ? 0.0
                : scale * mask[n] * (exp(r[i] - m) / s - (i == tgt[n]));
    }
    double out[2] = {1.5, 2.0};
    float *g = fdup(x, (size_t)N * V);
    K->xent_fwd_bwd(g, out, tgt, mask, N, V, scale);
    double want[2] = {1.5 + nll, 2.0 + hits};
    check("xent_fwd_bwd out[0] += sum mask*nll", relerr_dd(out, want, 1), TOL_FWD);
    check_true("xent_fwd_bwd out[1] += sum mask*correct", out[1] == want[1]);
    // the tie rows alone: row 4 (target = lower id of the tie) counts, row 5 does not
    double o4[2] = {0, 0}, o5[2] = {0, 0};
    float *r4 = fdup(x + 4 * V, V), *r5 = fdup(x + 5 * V, V);
    K->xent_fwd_bwd(r4, o4, tgt + 4, mask + 4, 1, V, scale);
    K->xent_fwd_bwd(r5, o5, tgt + 5, mask + 5, 1, V, scale);
    check_true("xent_fwd_bwd argmax ties go to the lowest id", o4[1] == 1.0 && o5[1] == 0.0);
    free(r4); free(r5);
    check("xent_fwd_bwd dlogits", relerr(g, gref, (size_t)N * V), TOL_BWD);
    int zero = 1;
    for (int i = 0; i < V; i++) zero &= g[2 * V + i] == 0.0f && g[7 * V + i] == 0.0f;
    check_true("xent_fwd_bwd masked rows get zero gradient", zero);
    // finite differences (in double the +1000 row is harmless for FD)
    xent_ctx c = {N, V, tgt, mask, scale, xd};
    fd_check("xent_fwd_bwd dlogits", xent_loss, &c, xd, (size_t)N * V, g, gref, (size_t)N * V);
    // a wide row: the max is searched in blocks, the argmax must still be the first index
    {
        int Vw = 601;
        float *w = frand((size_t)4 * Vw, -3, 3);
        int32_t tw[4] = {300, 500, 599, 3};
        float mw[4] = {1, 1, 1, 1};
        w[0 * Vw + 300] = w[0 * Vw + 500] = 7.0f;  // tie across blocks: 300 wins
        w[1 * Vw + 500] = w[1 * Vw + 520] = 7.0f;  // tie within a block: 500 wins
        w[2 * Vw + 599] = 7.0f;                    // max in the last, partial block
        w[3 * Vw + 2] = w[3 * Vw + 3] = 7.0f;      // tie in the first block, target the later id
        double ow[2] = {0, 0}, nw = 0.0;
        for (int n = 0; n < 4; n++) {
            double m = -INFINITY, sum = 0.0;
            for (int i = 0; i < Vw; i++) m = fmax(m, w[n * Vw + i]);
            for (int i = 0; i < Vw; i++) sum += exp(w[n * Vw + i] - m);
            nw += m + log(sum) - w[n * Vw + tw[n]];
        }
        K->xent_fwd_bwd(w, ow, tw, mw, 4, Vw, 1.0f);
        check("xent_fwd_bwd V=601 nll", fabs(ow[0] - nw) / fabs(nw), TOL_FWD);
        check_true("xent_fwd_bwd V=601 argmax across blocks (3 of 4 correct)", ow[1] == 3.0);
        free(w);
    }
    // determinism of the sums
    double o1[2] = {0, 0}, o2[2] = {0, 0};
    int Nb = 301;
    int32_t *tb;
    float *mb, *xb = xent_case(Nb, V, 3, &tb, &mb), *xb2 = fdup(xb, (size_t)Nb * V);
    K->xent_fwd_bwd(xb, o1, tb, mb, Nb, V, 1.0f);
    K->xent_fwd_bwd(xb2, o2, tb, mb, Nb, V, 1.0f);
    check_true("xent_fwd_bwd deterministic", o1[0] == o2[0] && o1[1] == o2[1] &&
               memcmp(xb, xb2, sizeof(float) * Nb * V) == 0);
    free(x); free(tgt); free(mask); free(xd); free(gref); free(g); free(xb); free(xb2); free(tb); free(mb);
}

/* ------------------------------------------------------------------------- */
/* optimizer helpers */

static void test_adamw(void) {
    size_t n = 1001;
    float *p = frand(n, -1, 1), *g = frand(n, -3, 3), *m = frand(n, -0.1, 0.1), *v = frand(n, 0, 0.01);
    float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gscale = 0.37f;
    int t = 3;
    float bc1 = 1.0f - powf(b1, t), bc2 = 1.0f - powf(b2, t);
    double *pr = dzeros(n), *mr = dzeros(n), *vr = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        double gi = (double)g[i] * gscale;
        mr[i] = b1 * (double)m[i] + (1.0 - b1) * gi;
        vr[i] = b2 * (double)v[i] + (1.0 - b2) * gi * gi;
        pr[i] = p[i] - lr * ((mr[i] / bc1) / (sqrt(vr[i] / bc2) + eps) + wd * (double)p[i]);
    }
    K->adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2, gscale);
    check("adamw p", relerr(p, pr, n), TOL_FWD);
    check("adamw m", relerr(m, mr, n), TOL_FWD);
    check("adamw v", relerr(v, vr, n), TOL_FWD);
    free(p); free(g); free(m); free(v); free(pr); free(mr); free(vr);
}

static void test_sumsq_axpy(void) {
    size_t n = 200003;  // several fixed blocks plus a tail
    float *x = frand(n, -3, 3), *y = frand(n, -1, 1);
    double ref = 0.0, out[1] = {NAN}, out2[1] = {NAN};
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    K->sumsq(out, x, n);
    check("sumsq (double)", fabs(out[0] - ref) / ref, 1e-12);
    K->sumsq(out2, x, n);
    check_true("sumsq deterministic", out[0] == out2[0]);
    K->sumsq(out2, x, 0);
    check_true("sumsq of nothing is 0", out2[0] == 0.0);
    double *yr = dzeros(n);
    float a = -0.71f;
    for (size_t i = 0; i < n; i++) yr[i] = y[i] + (double)a * x[i];
    K->axpy(y, a, x, n);
    check("axpy", relerr(y, yr, n), TOL_FWD);
    free(x); free(y); free(yr);
}

/* ------------------------------------------------------------------------- */

/* The vocabulary-parallel cross-entropy: the logits split into P column pieces, the
 * three steps with the all-reduces done by hand, must equal the fused kernel (loss,
 * accuracy with ties across pieces, every gradient); and embeddings over ranges. */
static void test_xent_vocab_parallel(void) {
    int N = 11, V = 60;
    float scale = 1.0f / 9.0f;
    int32_t *tgt;
    float *mask, *x = xent_case(N, V, 4, &tgt, &mask);
    mask[3] = 0.0f;
    x[5 * V + 9] = x[5 * V + 41] = 9.0f; tgt[5] = 9;    // tie across pieces: the lower id wins
    x[6 * V + 19] = x[6 * V + 50] = 9.0f; tgt[6] = 50;  // ... so this one is wrong
    tgt[8] = V + 3; tgt[9] = -1;   // unmasked targets outside the vocabulary: nll = lse on both paths
    for (int i = 0; i < V; i++) x[2 * V + i] += 500.0f;
    float *gf = fdup(x, (size_t)N * V);
    double of[2] = {0, 0};
    K->xent_fwd_bwd(gf, of, tgt, mask, N, V, scale);
    const int pieces[] = {2, 3, 5};
    for (int pi = 0; pi < 3; pi++) {
        int P = pieces[pi], Vl = V / P;
        float *g = malloc(sizeof(float) * (size_t)N * V);
        float *rmax = malloc(sizeof(float) * N * P), *tl = malloc(sizeof(float) * N * P);
        float *av = malloc(sizeof(float) * N * P), *se = malloc(sizeof(float) * N * P);
        int32_t *ai = malloc(sizeof(int32_t) * N * P);
        float **loc = malloc(sizeof(float *) * P);
        for (int p = 0; p < P; p++) {   // piece p: columns [p*Vl, (p+1)*Vl)
            loc[p] = malloc(sizeof(float) * (size_t)N * Vl);
            for (int n = 0; n < N; n++) memcpy(loc[p] + (size_t)n * Vl, x + (size_t)n * V + p * Vl, sizeof(float) * Vl);
            K->xent_partial(loc[p], tgt, N, Vl, p * Vl, rmax + p * N, tl + p * N, av + p * N, ai + p * N);
        }
        float *gm = malloc(sizeof(float) * N), *gt = malloc(sizeof(float) * N), *gs = malloc(sizeof(float) * N);
        int32_t *ga = malloc(sizeof(int32_t) * N);
        for (int n = 0; n < N; n++) {   // the all-reduces: max, sum, maxloc (first piece wins ties)
            gm[n] = -INFINITY; gt[n] = 0; gs[n] = 0; ga[n] = 0;
            float best = -INFINITY;
            for (int p = 0; p < P; p++) {
                gm[n] = fmaxf(gm[n], rmax[p * N + n]);
                gt[n] += tl[p * N + n];
                if (av[p * N + n] > best) { best = av[p * N + n]; ga[n] = ai[p * N + n]; }
            }
        }
        for (int p = 0; p < P; p++) K->xent_sumexp(loc[p], gm, N, Vl, se + p * N);
        for (int n = 0; n < N; n++) for (int p = 0; p < P; p++) gs[n] += se[p * N + n];
        double o[2] = {0, 0};
        for (int p = 0; p < P; p++) {
            double ok[2] = {0, 0};
            K->xent_finish(loc[p], ok, tgt, mask, gm, gs, gt, ga, N, Vl, p * Vl, scale);
            if (p == 0) { o[0] = ok[0]; o[1] = ok[1]; }
            for (int n = 0; n < N; n++) memcpy(g + (size_t)n * V + p * Vl, loc[p] + (size_t)n * Vl, sizeof(float) * Vl);
        }
        char name[96];
        snprintf(name, sizeof name, "xent vocab-parallel over %d pieces: loss", P);
        check(name, fabs(o[0] - of[0]) / fabs(of[0]), TOL_FWD);
        snprintf(name, sizeof name, "xent vocab-parallel over %d pieces: accuracy (ties across pieces)", P);
        check_true(name, o[1] == of[1]);
        snprintf(name, sizeof name, "xent vocab-parallel over %d pieces: dlogits", P);
        check(name, relerr_ff(g, gf, (size_t)N * V), TOL_FWD);
        for (int p = 0; p < P; p++) free(loc[p]);
        free(loc); free(g); free(rmax); free(tl); free(av); free(se); free(ai); free(gm); free(gt); free(gs); free(ga);
    }
    free(x); free(tgt); free(mask); free(gf);

    // embedding over a vocabulary range: rows outside are zero, gradients land only in range
    int D = 5, Ve = 12, n = 7;
    int32_t tok[7] = {0, 5, 6, 11, 6, 3, 8};
    float *wte = frand((size_t)Ve * D, -1, 1), *out = fnan((size_t)n * D);
    int v0 = 4, Vl = 4;   // rows 4..7
    K->embed_fwd(out, tok, wte + (size_t)v0 * D, n, D, v0, Vl);
    int good = 1;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) {
            float want = (tok[i] >= v0 && tok[i] < v0 + Vl) ? wte[(size_t)tok[i] * D + d] : 0.0f;
            good &= out[(size_t)i * D + d] == want;
        }
    check_true("embed_fwd over rows [4,8): own rows copied, others zero", good);
    float *dw = calloc((size_t)Vl * D, sizeof(float)), *dy = frand((size_t)n * D, -1, 1);
    K->embed_bwd(dw, dy, tok, n, D, v0, Vl);
    good = 1;
    for (int r = 0; r < Vl; r++)
        for (int d = 0; d < D; d++) {
            float want = 0.0f;
            for (int i = 0; i < n; i++) if (tok[i] == v0 + r) want += dy[(size_t)i * D + d];
            good &= fabsf(dw[(size_t)r * D + d] - want) <= 1e-6f;
        }
    check_true("embed_bwd over rows [4,8): only tokens in range", good);
    free(wte); free(out); free(dw); free(dy);
}

/* bf16 storage against a reference that never looks at bit patterns: the multiples of
 * the bf16 spacing around x (8 significant bits; below 2^-126 the fixed subnormal spacing
 * 2^-133), the nearer one, ties to the even multiple. */
static float bf16_ref(float x) {
    if (isnan(x) || isinf(x) || x == 0.0f) return x;
    int e;
    frexp((double)x, &e);                          /* |x| in [2^(e-1), 2^e) */
    int q = e - 8 < -133 ? -133 : e - 8;           /* the spacing 2^q */
    double scaled = ldexp((double)x, -q);
    double lo = floor(scaled), hi = lo + 1.0, r;
    if (scaled - lo < hi - scaled) r = lo;
    else if (scaled - lo > hi - scaled) r = hi;
    else r = fmod(lo, 2.0) == 0.0 ? lo : hi;
    double v = ldexp(r, q);
    if (v == 0.0) return signbit(x) ? -0.0f : 0.0f;
    return v > 3.3895313892515355e38 ? INFINITY : v < -3.3895313892515355e38 ? -INFINITY : (float)v;
}

static void test_bf16(void) {
    size_t n = 200003;
    float *x = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    uint16_t *h = malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i << 7);
        u &= 0xbfffffffu;                          /* finite, normal-range exponents mostly */
        memcpy(&x[i], &u, 4);
        if (i % 7 == 0) x[i] = (float)((double)(i % 1000) - 500.0) / 64.0f;   /* exact in bf16 or ties */
    }
    x[0] = 1.0f + 1.0f / 256;                    /* tie between 1 and 1+2^-7: to even, 1 */
    x[1] = 1.0f + 3.0f / 256;                    /* tie: to even, 1 + 2^-6 */
    x[2] = INFINITY; x[3] = -0.0f; x[4] = 3.4e38f;  /* rounds past the largest bf16: inf */
    K->to_bf16(h, x, n);
    K->from_bf16(back, h, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float r = bf16_ref(x[i]);
        if (memcmp(&r, &back[i], 4) != 0 && !(isnan(r) && isnan(back[i]))) bad++;
    }
    check_true("bf16 round to nearest even, through the 16-bit pattern and back (200003 values: subnormals, ties, inf, -0)", bad == 0);
    float nan = NAN;
    uint16_t hn;
    K->to_bf16(&hn, &nan, 1);
    float bn;
    K->from_bf16(&bn, &hn, 1);
    check_true("bf16 keeps NaN a NaN", isnan(bn));
    free(x); free(back); free(h);
}

int main(void) {
    K = &bpt_kernels_cpu;
    double t0 = omp_get_wtime();
    tap_note("test_kernels: backend %s, %d OpenMP threads", K->name, omp_get_max_threads());
    test_memory();
    test_gemm();
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_embed();
    test_attention();
    test_xent();
    test_xent_vocab_parallel();
    test_adamw();
    test_sumsq_axpy();
    test_bf16();
    tap_note("test_kernels: %.1f s", omp_get_wtime() - t0);
    return tap_done();
}
