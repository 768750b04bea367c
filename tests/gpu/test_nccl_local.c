/* test_nccl_local.c — the NCCL layer on one GPU.
 *
 * bpt_nccl_init_axes(single) gives every axis a one-rank NCCL communicator, so each
 * collective, data type and request, the comm streams and their events, and the
 * watchdog's queue run through NCCL without MPI (and without mpirun, which a lent GPU
 * machine may lack). One rank cannot show that ranks agree — tests/gpu/test_nccl.sh
 * does that where two GPUs exist — but it shows the calls are well formed, ordered
 * against the compute stream both ways, and complete, and that the queue survives more
 * collectives in flight than it has slots.
 */
#include "gpu_test.h"

#ifdef BPT_HAVE_CUDA
#include "mesh/comm_nccl.h"

#include <unistd.h>

static const bpt_kernels *G = &bpt_kernels_cuda;
static bpt_arena ar;   /* which also hands the backend its workspace (maxloc's scratch) */

static void *dev(size_t bytes) { return bpt_arena_alloc(&ar, bytes, "test"); }
static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev(bytes);
    G->copy_h2d(d, h, bytes);
    return d;
}
/* d (device) holds the bytes of h; read back on the compute stream */
static int holds(const void *d, const void *h, size_t bytes) {
    void *b = malloc(bytes);
    G->copy_d2h(b, d, bytes);
    int same = !memcmp(b, h, bytes);
    free(b);
    return same;
}
static bpt_request fresh(void) {
    bpt_request r = {MPI_REQUEST_NULL, NULL, NULL, BPT_AXIS_WORLD, 0, MPI_REQUEST_NULL};
    return r;
}
#endif

int main(void) {
    gpu_or_skip();
#ifdef BPT_HAVE_CUDA
    if (bpt_arena_init(&ar, G, (size_t)1 << 29) != 0) tap_bail("cannot allocate 512 MiB on the GPU");
    bpt_comm c;
    bpt_comm_single(&c);
    char err[512] = "";
    int rc = bpt_nccl_init_axes(&c, 1, err, sizeof err);
    CHECK(rc == 0, "one-rank NCCL communicators on every axis %s", err);
    if (rc) return tap_done();
    bpt_watchdog_start(60);   /* its thread polls the queue while the collectives run */

    /* 64 MiB, so that a collective not waiting for the copy before it would read stale data */
    const size_t n = (size_t)1 << 24, fb = n * sizeof(float);
    float *h1 = host_randn(n, 1), *h2 = host_randn(n, 1);
    float *in = dev_copy(h1, fb), *out = dev(fb);
    G->sync();
    G->zero(out, fb);
    G->copy_h2d(in, h2, fb);                                           /* compute stream */
    bpt_nccl_allgather(&c, BPT_AXIS_FSDP, out, in, n, BPT_DT_F32, NULL); /* fsdp's stream */
    CHECK(holds(out, h2, fb), "all-gather f32 (blocking) sees the copy before it; the compute stream sees its result");

    /* non-blocking, then bpt_nccl_wait: out of place f32, in place bf16 */
    bpt_request r = fresh();
    G->zero(out, fb);
    bpt_nccl_allgather(&c, BPT_AXIS_FSDP, out, in, n, BPT_DT_F32, &r);
    bpt_nccl_wait(&c, &r);
    CHECK(r.ev == NULL && holds(out, h2, fb), "all-gather f32 with a request, then wait");
    uint16_t *h16 = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h16[i] = (uint16_t)(i * 2654435761u >> 16);
    uint16_t *b16 = dev_copy(h16, n * 2);
    r = fresh();
    bpt_nccl_allgather(&c, BPT_AXIS_FSDP, b16, b16, n, BPT_DT_BF16, &r);   /* in place: rank 0's part is all */
    bpt_nccl_wait(&c, &r);
    CHECK(holds(b16, h16, n * 2), "all-gather bf16 in place with a request");

    /* reduce-scatter (the sum over one rank is the input) */
    r = fresh();
    G->zero(out, fb);
    bpt_nccl_reduce_scatter(&c, BPT_AXIS_FSDP, out, in, n, BPT_DT_F32, &r);
    bpt_nccl_wait(&c, &r);
    CHECK(holds(out, h2, fb), "reduce-scatter f32 with a request");
    G->zero(out, fb);
    bpt_nccl_reduce_scatter(&c, BPT_AXIS_FSDP, out, in, n, BPT_DT_F32, NULL);
    CHECK(holds(out, h2, fb), "reduce-scatter f32, blocking");

    /* all-reduces on every axis, in every type and operation the layer uses */
    const size_t m = 4099;
    double *hd = malloc(m * sizeof(double));
    int32_t *hi = malloc(m * sizeof(int32_t));
    for (size_t i = 0; i < m; i++) { hd[i] = h1[i] * 1e10; hi[i] = (int32_t)(i * 7919u) - 1000; }
    float *f = dev_copy(h1, m * 4);
    double *d = dev_copy(hd, m * sizeof(double));
    int32_t *iv = dev_copy(hi, m * sizeof(int32_t));
    for (int a = 0; a < BPT_NAXES; a++) {
        bpt_nccl_allreduce(&c, (bpt_axis)a, f, m, BPT_DT_F32, BPT_OP_SUM);
        bpt_nccl_allreduce(&c, (bpt_axis)a, f, m, BPT_DT_F32, BPT_OP_MAX);
        bpt_nccl_allreduce(&c, (bpt_axis)a, d, m, BPT_DT_F64, BPT_OP_SUM);
        bpt_nccl_allreduce(&c, (bpt_axis)a, iv, m, BPT_DT_I32, BPT_OP_MIN);
        CHECK(holds(f, h1, m * 4) && holds(d, hd, m * sizeof(double)) && holds(iv, hi, m * sizeof(int32_t)),
              "all-reduce f32 sum and max, f64 sum, i32 min on axis %s", bpt_axis_name((bpt_axis)a));
    }

    /* maxloc (two all-reduces and the marking kernel) and broadcast */
    bpt_nccl_maxloc(&c, BPT_AXIS_TP, f, iv, m);
    CHECK(holds(f, h1, m * 4) && holds(iv, hi, m * sizeof(int32_t)), "maxloc keeps the values and their indices");
    bpt_nccl_broadcast(&c, BPT_AXIS_DP, in, fb, 0);
    CHECK(holds(in, h2, fb), "broadcast of %zu bytes", fb);

    /* more collectives in flight than the watchdog's queue has slots */
    for (int i = 0; i < 3000; i++) bpt_nccl_allreduce(&c, (bpt_axis)(i % 3), f, m, BPT_DT_F32, BPT_OP_SUM);
    CHECK(holds(f, h1, m * 4), "3000 all-reduces queued back to back");
    sleep(2);   /* the watchdog has polled the queue at least once: it found nothing late */
    CHECK(1, "the watchdog polled without complaint");

    bpt_comm_nccl_free(&c);
    CHECK(c.nccl == NULL, "communicators, streams and events freed");
    bpt_arena_destroy(&ar);
    free(h1); free(h2); free(h16); free(hd); free(hi);
#endif
    return tap_done();
}
