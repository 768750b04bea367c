/* cpu_tile.h — register-tiled microkernels for the attention tiles (private to
 * kernels/cpu/), one set per vector instruction set, picked at run time.
 *
 * A tile is mr rows by nr columns of two vectors each: 6 x 16 with AVX2 (12 of its 16
 * registers), 12 x 32 with AVX-512 (24 of 32), held in registers while the inner
 * dimension streams through; the three shapes of blockwise attention are made of them:
 *
 *   nt: C (mr, nr) = alpha A (mr, K) B^T          S = q k^T, dP = dO v^T
 *       A rows straight from q / dO (stride lda), B packed once per key block by
 *       pack into panels of nr keys, each (K, nr) contiguous;
 *   nn: C (mr, nr) += alpha A (mr, n) B (n, nr)    acc += P v, dq += dS k
 *       A rows of P / dS (stride lda), B rows of nr floats (stride ldb: a strip);
 *   tn: C (mc, nr) += alpha A^T (mc, n) B (n, nr)  dv += P^T dO, dk += dS^T q
 *       column i of A^T is A[r][i], read as mr consecutive floats of row r.
 *
 * nn and tn cover nr columns of C, so a caller walks Dh in strips of nr (Dh % nr == 0).
 * Rows past a short mr of nt and nn are read from row 0 and not stored; tn reads mr
 * columns of each row of A whatever mc (so A's rows need mr readable floats from the
 * first column; the extra ones only meet tile rows that are not stored). No operand
 * needs alignment. Every set runs the same source (cpu_tile_body.h), so "avx2-w16", the
 * 12 x 32 code compiled for AVX2, runs the AVX-512 kernels' logic on any AVX2 CPU. */
#ifndef BPT_KERNELS_CPU_TILE_H
#define BPT_KERNELS_CPU_TILE_H

typedef struct {
    const char *name;   /* "avx512", "avx2", "avx2-w16" */
    int mr;             /* rows of a tile: 6 (AVX2's 16 registers), 12 (AVX-512's 32) */
    int nr;             /* columns of a tile */
    /* Bp <- the n rows (K floats each, stride ldb) of B as ceil(n/nr) panels of (K, nr),
     * zero-padded to a whole panel */
    void (*pack)(float *Bp, const float *B, long ldb, int n, int K);
    void (*nt)(int mr, int K, const float *A, long lda, const float *Bp, float alpha, float *C, long ldc);
    void (*nn)(int mr, int n, const float *A, long lda, const float *B, long ldb, float alpha, float *C, long ldc);
    void (*tn)(int mc, int n, const float *A, long lda, const float *B, long ldb, float alpha, float *C, long ldc);
} bpt_cpu_tile;

/* The microkernels for this CPU: AVX-512F's, else NULL (the attention then runs its
 * tiles as sgemm calls: on AVX2 alone OpenBLAS's kernels measured faster than ours).
 * BPT_CPU_TILE=avx512|avx2|avx2-w16|off overrides the choice (tests, benchmarks); a
 * set this CPU lacks is refused with a note on stderr and the default is kept. Decided
 * once per process. */
const bpt_cpu_tile *bpt_cpu_tile_get(void);

/* Switch the set bpt_cpu_tile_get returns from now on (tests; not thread-safe against
 * running kernels): "avx512", "avx2", "avx2-w16" or "off". 0 on success, -1 when the
 * name is unknown or this CPU lacks the set (the choice is then unchanged). */
int bpt_cpu_tile_use(const char *name);

#endif
