/* test_ring — ring attention (mesh/ring.c) on sp ranks against the one-rank blockwise
 * kernel on the whole sequence: o, lse, dq, dk, dv of every rank's zig-zag tokens, fp32,
 * within 1e-5 of the largest reference value. Cases: GQA 1:1, 4:1 and 8:1, Bq != Bk,
 * chunks that do not divide the zig-zag halves. Run under mpirun with any number of
 * ranks that divides 48 (tests/mpi/test_ring.sh: 1, 2, 3, 4, 8); rank 0 prints TAP. */
#include "bpt/mesh.h"
#include "bpt/ring.h"
#include "bpt/util.h"
#include "kernels/kernels.h"
#include "../unit/unit_test.h"

#include <math.h>

static void fill(float *x, size_t n, const char *name, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * bpt_randn(7, name, i);
}

/* max |a - b| over the rows of this rank, relative to max |ref| over the whole tensor */
static double rel_err(const float *full, const float *local, int B, int T, int Tl, size_t row, int sp, int r,
                      int lse_layout, int H) {
    double err = 0.0, big = 0.0;
    for (size_t i = 0; i < (size_t)B * T * row; i++) big = fmax(big, fabs(full[i]));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tl; t++) {
            int64_t g = bpt_ring_position(sp, r, Tl, t);
            if (lse_layout) {   /* (B, H, T) */
                for (int h = 0; h < H; h++)
                    err = fmax(err, fabs(full[((size_t)b * H + h) * T + g] - local[((size_t)b * H + h) * Tl + t]));
            } else {
                for (size_t e = 0; e < row; e++)
                    err = fmax(err, fabs(full[((size_t)b * T + g) * row + e] - local[((size_t)b * Tl + t) * row + e]));
            }
        }
    return big > 0 ? err / big : err;
}

static void local_rows(float *dst, const float *full, int B, int T, int Tl, size_t row, int sp, int r) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tl; t++)
            memcpy(dst + ((size_t)b * Tl + t) * row, full + ((size_t)b * T + bpt_ring_position(sp, r, Tl, t)) * row,
                   row * sizeof(float));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int world, me;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me != 0) freopen("/dev/null", "w", stdout);
    char mesh_dim[64], err[512];
    snprintf(mesh_dim, sizeof mesh_dim, "1,1,1,%d", world);
    bpt_mesh mesh;
    if (bpt_mesh_init(&mesh, mesh_dim, err, sizeof err) != 0) tap_bail("%s", err);
    int sp = mesh.sp, r = mesh.sp_rank;
    const bpt_kernels *K = &bpt_kernels_cpu;
    static const struct { int B, T, H, KVH, Dh, Bq, Bk; } cases[] = {
        {2, 48, 4, 4, 16, 8, 8}, {1, 96, 8, 2, 16, 4, 8}, {2, 96, 8, 1, 8, 16, 4}, {1, 48, 8, 8, 32, 5, 7},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int B = cases[ci].B, T = cases[ci].T, H = cases[ci].H, KVH = cases[ci].KVH, Dh = cases[ci].Dh;
        int Bq = cases[ci].Bq, Bk = cases[ci].Bk, Tl = T / sp;
        if (T % (2 * sp) != 0) tap_bail("T=%d is not divisible by 2*sp=%d", T, 2 * sp);
        size_t qrow = (size_t)H * Dh, krow = (size_t)KVH * Dh;
        size_t nq = (size_t)B * T * qrow, nk = (size_t)B * T * krow, nl = (size_t)B * H * T;
        float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dO = malloc(nq * 4);
        float *o = malloc(nq * 4), *lse = malloc(nl * 4), *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
        fill(q, nq, "q", 1.0f); fill(k, nk, "k", 1.0f); fill(v, nk, "v", 1.0f); fill(dO, nq, "do", 1.0f);
        K->attn_fwd(o, lse, q, k, v, B, T, H, KVH, Dh, Bq, Bk);
        K->attn_bwd(dq, dk, dv, dO, q, k, v, o, lse, B, T, H, KVH, Dh, Bq, Bk);

        size_t lq = (size_t)B * Tl * qrow, lk = (size_t)B * Tl * krow;
        float *q_ = malloc(lq * 4), *k_ = malloc(lk * 4), *v_ = malloc(lk * 4), *dO_ = malloc(lq * 4);
        float *o_ = malloc(lq * 4), *lse_ = malloc((size_t)B * H * Tl * 4), *dq_ = malloc(lq * 4);
        float *dk_ = malloc(lk * 4), *dv_ = malloc(lk * 4);
        local_rows(q_, q, B, T, Tl, qrow, sp, r);
        local_rows(k_, k, B, T, Tl, krow, sp, r);
        local_rows(v_, v, B, T, Tl, krow, sp, r);
        local_rows(dO_, dO, B, T, Tl, qrow, sp, r);
        bpt_ring g = { &mesh.comm, K, B, Tl, H, KVH, Dh, Bq, Bk,
                       malloc(bpt_ring_work_floats(B, Tl, KVH, Dh) * sizeof(float)), 0, 0 };
        bpt_ring_attn_fwd(&g, o_, lse_, q_, k_, v_);
        bpt_ring_attn_bwd(&g, dq_, dk_, dv_, dO_, q_, k_, v_, o_, lse_);
        double e[5] = {
            rel_err(o, o_, B, T, Tl, qrow, sp, r, 0, H), rel_err(lse, lse_, B, T, Tl, 1, sp, r, 1, H),
            rel_err(dq, dq_, B, T, Tl, qrow, sp, r, 0, H), rel_err(dk, dk_, B, T, Tl, krow, sp, r, 0, H),
            rel_err(dv, dv_, B, T, Tl, krow, sp, r, 0, H),
        };
        MPI_Allreduce(MPI_IN_PLACE, e, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        const char *what[5] = {"o", "lse", "dq", "dk", "dv"};
        for (int i = 0; i < 5; i++)
            CHECK(e[i] <= 1e-5, "sp=%d B=%d T=%d H=%d KVH=%d Dh=%d Bq=%d Bk=%d: ring %s = one rank (rel err %.2e)",
                  sp, B, T, H, KVH, Dh, Bq, Bk, what[i], e[i]);
        free(g.work);
        free(q); free(k); free(v); free(dO); free(o); free(lse); free(dq); free(dk); free(dv);
        free(q_); free(k_); free(v_); free(dO_); free(o_); free(lse_); free(dq_); free(dk_); free(dv_);
    }
    bpt_mesh_free(&mesh);
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
