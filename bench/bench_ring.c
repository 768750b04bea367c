/* bench_ring — ring attention (mesh/ring.c) on the CPU: how much of the ring's
 * communication hides behind its compute, and what a second rank buys.
 *
 *   mpirun -np 2 bench/bench_ring [--t 8192] [--heads 8] [--kvh 8] [--dh 64] [--reps 5]
 *
 * Run with sp ranks (one OpenMP thread each). Side by side in one run, interleaved
 * A B C D A B C D ..., each the forward plus backward of one attention layer, batch 1,
 * the slowest rank's time, median of reps:
 *   A  t_ring      the ring attention of T tokens over the sp ranks
 *   B  t_compute   the same hops' compute with no message (compute_only)
 *   C  t_comm      the ring's messages alone (the same sizes, no compute)
 *   D  t_one       one rank alone computing all T tokens with sp threads (the other
 *                  ranks wait without spinning): sp = 1 on the same cores
 *   E  t_contig    the ring in the contiguous layout (rank r holds chunks 2r, 2r+1 of
 *                  2sp: the last rank has most of the causal work, and every hop waits
 *                  for it) instead of the zig-zag one
 * and prints overlap = 1 - (t_ring - t_compute) / t_comm (1: all hidden), the
 * throughput sp retains, t_one / t_ring (1: as fast per token as one rank on all cores),
 * and what the zig-zag layout gains over the contiguous one, t_contig / t_ring.
 */
#include "bpt/bpt.h"
#include "bpt/ring.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* the slowest rank's seconds */
static double slowest(double t) {
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

/* wait for the other ranks without spinning a core (MPI_Barrier would) */
static void quiet_barrier(void) {
    MPI_Request r;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    while (!done) {
        MPI_Test(&r, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 200000}, NULL);
    }
}

int main(int argc, char **argv) {
    int T = 8192, H = 8, KVH = 8, Dh = 64, reps = 5, Bq = 512, Bk = 512;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--t") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) H = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kvh") && i + 1 < argc) KVH = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dh") && i + 1 < argc) Dh = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "bench_ring: unknown argument %s\n", argv[i]); return 2; }
    }
    MPI_Init(&argc, &argv);
    int world, me;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    char mesh_dim[64], err[512];
    snprintf(mesh_dim, sizeof mesh_dim, "1,1,1,%d", world);
    bpt_mesh mesh;
    if (bpt_mesh_init(&mesh, mesh_dim, err, sizeof err) != 0 || T % (2 * world) != 0 || H % KVH != 0) {
        if (me == 0) fprintf(stderr, "bench_ring: %s\n", err[0] ? err : "T must be divisible by 2*ranks, H by KVH");
        MPI_Finalize();
        return 2;
    }
    const bpt_kernels *K = &bpt_kernels_cpu;
    int sp = world, Tl = T / sp;
    size_t lk = (size_t)Tl * KVH * Dh, nq = (size_t)T * H * Dh, nk = (size_t)T * KVH * Dh;
    /* this rank's tokens, and (rank 0) the whole sequence for D */
    float *q = calloc(nq, 4), *k = calloc(nk, 4), *v = calloc(nk, 4), *dO = calloc(nq, 4);
    float *o = calloc(nq, 4), *lse = calloc((size_t)H * T, 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
    for (size_t i = 0; i < nq; i++) { q[i] = bpt_randn(1, "q", i); dO[i] = bpt_randn(1, "do", i); }
    for (size_t i = 0; i < nk; i++) { k[i] = bpt_randn(1, "k", i); v[i] = bpt_randn(1, "v", i); }
    size_t nw = bpt_ring_work_floats(1, Tl, KVH, Dh);
    bpt_ring g = { &mesh.comm, K, 1, Tl, H, KVH, Dh, Bq, Bk, calloc(nw, 4), 0, 0 };
    float *msg = calloc(4 * lk, 4);
    double *t[5];
    for (int j = 0; j < 5; j++) t[j] = calloc((size_t)reps, sizeof(double));
    omp_set_num_threads(1);
    for (int rep = -1; rep < reps; rep++) {   /* rep -1 warms up */
        double s;
        for (int mode = 0; mode < 2; mode++) {   /* A, B */
            g.compute_only = mode;
            MPI_Barrier(MPI_COMM_WORLD);
            s = bpt_now();
            bpt_ring_attn_fwd(&g, o, lse, q, k, v);
            bpt_ring_attn_bwd(&g, dq, dk, dv, dO, q, k, v, o, lse);
            s = slowest(bpt_now() - s);
            if (rep >= 0) t[mode][rep] = s;
        }
        /* C: the messages of one forward and backward: (sp-1) K/V hops twice, sp dK/dV hops */
        MPI_Barrier(MPI_COMM_WORLD);
        s = bpt_now();
        for (int h = 0; h < 3 * sp - 2; h++) {
            bpt_request req;
            bpt_ring_shift_f32(&mesh.comm, BPT_AXIS_SP, msg + 2 * lk, msg, 2 * lk, &req);
            bpt_wait(&mesh.comm, &req);
        }
        s = slowest(bpt_now() - s);
        if (rep >= 0) t[2][rep] = s;
        /* D: rank 0 alone, all T tokens, on all the ranks' cores */
        MPI_Barrier(MPI_COMM_WORLD);
        s = bpt_now();
        if (me == 0) {
            omp_set_num_threads(sp);
            K->attn_fwd(o, lse, q, k, v, 1, T, H, KVH, Dh, Bq, Bk);
            K->attn_bwd(dq, dk, dv, dO, q, k, v, o, lse, 1, T, H, KVH, Dh, Bq, Bk);
            omp_set_num_threads(1);
        }
        s = bpt_now() - s;
        quiet_barrier();
        MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rep >= 0) t[3][rep] = s;
        /* E: the contiguous layout */
        g.contiguous = 1;
        MPI_Barrier(MPI_COMM_WORLD);
        s = bpt_now();
        bpt_ring_attn_fwd(&g, o, lse, q, k, v);
        bpt_ring_attn_bwd(&g, dq, dk, dv, dO, q, k, v, o, lse);
        s = slowest(bpt_now() - s);
        if (rep >= 0) t[4][rep] = s;
        g.contiguous = 0;
    }
    double ring = median(t[0], reps), comp = median(t[1], reps), comm = median(t[2], reps), one = median(t[3], reps);
    double contig = median(t[4], reps);
    if (me == 0) {
        printf("| sp | T | H | KVH | Dh | t_ring ms | t_compute ms | t_comm ms | overlap | t_one (sp threads) ms | retained "
               "| t_contig ms | zig-zag gain |\n");
        printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        printf("| %d | %d | %d | %d | %d | %.1f | %.1f | %.1f | %.0f%% | %.1f | %.0f%% | %.1f | %.2fx |\n", sp, T, H, KVH,
               Dh, 1e3 * ring, 1e3 * comp, 1e3 * comm, comm > 0 ? 100 * (1 - (ring - comp) / comm) : 100.0, 1e3 * one,
               100 * one / ring, 1e3 * contig, contig / ring);
    }
    bpt_mesh_free(&mesh);
    MPI_Finalize();
    return 0;
}
