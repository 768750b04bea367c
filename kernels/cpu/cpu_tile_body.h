/* cpu_tile_body.h — the microkernels of cpu_tile.h for one vector width, included by
 * cpu_tile.c once per instruction set with VW (floats per vector), MRV (rows of a tile),
 * TGT (the target attribute), SFX (the name suffix) and NAME defined (undefined again at
 * the end). Plain C on GCC vector types: the compiler emits the set's loads, broadcasts
 * and FMAs (contraction is on in GNU C). */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(x) CAT(x, SFX)
#define VT FN(vf)
#define NR (2 * VW)

typedef float VT __attribute__((vector_size(VW * 4), aligned(4), may_alias));

#define LD(p) (*(const VT *)(p))
#define ST(p, x) (*(VT *)(p) = (x))

__attribute__((target(TGT)))
static void FN(pack)(float *Bp, const float *B, long ldb, int n, int K) {
    for (int c0 = 0; c0 < n; c0 += NR) {
        float *dst = Bp + (size_t)c0 * K;   // panel c0 / NR: (K, NR)
        int w = n - c0 < NR ? n - c0 : NR;
        const float *src = B + (size_t)c0 * ldb;
        for (int d = 0; d < K; d++) {
            for (int c = 0; c < w; c++) dst[(size_t)d * NR + c] = src[(size_t)c * ldb + d];
            for (int c = w; c < NR; c++) dst[(size_t)d * NR + c] = 0.0f;
        }
    }
}

__attribute__((target(TGT)))
static void FN(nt)(int mr, int K, const float *A, long lda, const float *Bp, float alpha, float *C, long ldc) {
    const float *a[MRV];
    for (int r = 0; r < MRV; r++) a[r] = A + (r < mr ? r : 0) * lda;
    VT c0[MRV] = { 0 }, c1[MRV] = { 0 };
    for (int d = 0; d < K; d++) {
        VT b0 = LD(Bp + (size_t)d * NR), b1 = LD(Bp + (size_t)d * NR + VW);
#pragma GCC unroll 12
        for (int r = 0; r < MRV; r++) {
            float x = a[r][d];
            c0[r] += x * b0;
            c1[r] += x * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        ST(C + r * ldc, alpha * c0[r]);
        ST(C + r * ldc + VW, alpha * c1[r]);
    }
}

__attribute__((target(TGT)))
static void FN(nn)(int mr, int n, const float *A, long lda, const float *B, long ldb, float alpha, float *C, long ldc) {
    const float *a[MRV];
    for (int r = 0; r < MRV; r++) a[r] = A + (r < mr ? r : 0) * lda;
    VT c0[MRV] = { 0 }, c1[MRV] = { 0 };
    for (int c = 0; c < n; c++) {
        VT b0 = LD(B + c * ldb), b1 = LD(B + c * ldb + VW);
#pragma GCC unroll 12
        for (int r = 0; r < MRV; r++) {
            float x = a[r][c];
            c0[r] += x * b0;
            c1[r] += x * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        ST(C + r * ldc, LD(C + r * ldc) + alpha * c0[r]);
        ST(C + r * ldc + VW, LD(C + r * ldc + VW) + alpha * c1[r]);
    }
}

__attribute__((target(TGT)))
static void FN(tn)(int mc, int n, const float *A, long lda, const float *B, long ldb, float alpha, float *C, long ldc) {
    VT c0[MRV] = { 0 }, c1[MRV] = { 0 };
    for (int r = 0; r < n; r++) {
        const float *ar = A + r * lda;
        VT b0 = LD(B + r * ldb), b1 = LD(B + r * ldb + VW);
#pragma GCC unroll 12
        for (int i = 0; i < MRV; i++) {
            float x = ar[i];
            c0[i] += x * b0;
            c1[i] += x * b1;
        }
    }
    for (int i = 0; i < mc; i++) {
        ST(C + i * ldc, LD(C + i * ldc) + alpha * c0[i]);
        ST(C + i * ldc + VW, LD(C + i * ldc + VW) + alpha * c1[i]);
    }
}

static const bpt_cpu_tile FN(tile) = { NAME, MRV, NR, FN(pack), FN(nt), FN(nn), FN(tn) };

#undef VT
#undef NR
#undef LD
#undef ST
#undef FN
#undef CAT
#undef CAT_
#undef VW
#undef MRV
#undef TGT
#undef SFX
#undef NAME
