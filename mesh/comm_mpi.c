/* comm_mpi.c — the collectives of comm.h over MPI, for host buffers.
 *
 * Byte counts are what this rank sends under ring algorithms: all-reduce 2(p-1)/p·n,
 * all-gather and reduce-scatter (p-1)·n for n elements per rank, broadcast n (root).
 * A dry communicator (plans) counts the same bytes and calls nothing.
 */
#include "bpt/comm.h"
#include "bpt/util.h"
#include "bpt/testhooks.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BPT_HAVE_CUDA
#include "mesh/comm_nccl.h"
#define DEV(c, p) bpt_nccl_on_device(c, p)
#define DEVPTR(p) bpt_cuda_is_device_ptr(p)
#else
/* Without CUDA there is no device memory: everything is MPI. */
#define DEV(c, p) 0
#define DEVPTR(p) 0
#define bpt_nccl_allreduce(c, a, buf, n, t, op) ((void)0)
#define bpt_nccl_maxloc(c, a, v, i, n) ((void)0)
#define bpt_nccl_allgather(c, a, o, i, n, t, r) ((void)0)
#define bpt_nccl_wait(c, r) ((void)(c))
#define bpt_nccl_reduce_scatter(c, a, o, i, n, t, r) ((void)0)
#define bpt_nccl_broadcast(c, a, b, n, r) ((void)0)
#define bpt_nccl_copy(d, s, n) ((void)0)
#define bpt_nccl_ring_shift(c, a, r, s, n, q) ((void)0)
int bpt_comm_nccl_init(bpt_comm *c, char *err, size_t errlen) {
    (void)c;
    if (err && errlen) snprintf(err, errlen, "NCCL: this build has no CUDA (HINT: ./configure --with-cuda)");
    return -1;
}
void bpt_comm_nccl_free(bpt_comm *c) { (void)c; }
#endif

/* ------------------------------------------------ start-up and agreement -- */

static int thread_level = -1;

int bpt_mpi_init(int *argc, char ***argv) {
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level);
    if (thread_level < MPI_THREAD_FUNNELED) {
        char msg[256];
        snprintf(msg, sizeof msg, "the MPI library gives thread level %d, bpt needs at least MPI_THREAD_FUNNELED "
                 "(%d: OpenMP threads run between MPI calls)", thread_level, MPI_THREAD_FUNNELED);
        bpt_agree_or_exit(1, msg);
    }
    return thread_level;
}

int bpt_mpi_thread_level(void) { return thread_level; }

/* MPI that is up and not yet finalized: the only state in which agreement can run. */
static int mpi_live(void) {
    int up = 0, fin = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&fin);
    return up && !fin;
}

static int unsafe_finalize = 0;

void bpt_mpi_finalize_unsafe(void) { unsafe_finalize = 1; }

void bpt_mpi_exit(int rc) {
    fflush(NULL);
    /* every rank agreed to stop before it got here: skipping MPI_Finalize only costs
     * mpirun's note that this rank did; HDF5's atexit and MPI-finalize hooks must not run */
    if (unsafe_finalize) _exit(rc);
    if (mpi_live()) MPI_Finalize();
    exit(rc);
}

int bpt_agree(int rc, char *msg, size_t n) {
    if (!mpi_live()) return rc;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return rc;
    /* the lowest failing rank, then its status and message from it */
    int who = rc ? rank : INT_MAX;
    bpt_watchdog_enter("error-agreement", BPT_AXIS_WORLD);   /* one word: log parsers split on spaces */
    MPI_Allreduce(MPI_IN_PLACE, &who, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (who != INT_MAX) {
        MPI_Bcast(&rc, 1, MPI_INT, who, MPI_COMM_WORLD);
        if (msg && n) {
            if (rank == who) msg[n - 1] = 0;
            MPI_Bcast(msg, (int)(n < INT_MAX ? n : INT_MAX), MPI_CHAR, who, MPI_COMM_WORLD);
        }
    }
    bpt_watchdog_leave();
    return who == INT_MAX ? 0 : rc;
}

void bpt_agree_or_exit(int rc, const char *msg) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", rc && msg ? msg : "");
    rc = bpt_agree(rc, buf, sizeof buf);
    if (rc == 0) return;
    int rank = 0;
    if (mpi_live()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) bpt_error(rc, "%s", buf);
    bpt_mpi_exit(rc);
}

static void count(bpt_comm *c, bpt_axis a, double bytes) { c->bytes[a] += (uint64_t)(bytes + 0.5); }

void bpt_comm_dry(bpt_comm *c, int dp, int fsdp, int tp, int sp) {
    memset(c, 0, sizeof *c);
    c->dry = 1;
    int sizes[BPT_NAXES] = {dp, fsdp * sp, tp, sp, dp * fsdp * sp, dp * fsdp * tp * sp};   /* as mesh.h */
    for (int a = 0; a < BPT_NAXES; a++) { c->size[a] = sizes[a]; c->comm[a] = MPI_COMM_NULL; }
}

void bpt_comm_single(bpt_comm *c) { bpt_comm_dry(c, 1, 1, 1, 1); c->dry = 0; }

/* Nothing to do on a one-rank axis; a dry comm only counts. */
static int skip(bpt_comm *c, bpt_axis a, double bytes) {
    if (c->size[a] == 1) return 1;
    count(c, a, bytes);
    return c->dry;
}

/* MPI counts are int: an all-reduce of more elements (a tp all-reduce of N x D at long
 * context: 1M tokens x D 4096 is 2^32) goes in pieces of at most 2^28 elements, which
 * changes no sum (an all-reduce is elementwise); a test hook (testhooks.h) makes the
 * pieces small. */
static size_t piece(size_t left) {   /* the next piece of `left` elements */
    size_t test = bpt_test_hooks_get()->mpi_chunk;
    size_t chunk = test > 0 && test < ((size_t)1 << 28) ? test : (size_t)1 << 28;
    return left < chunk ? left : chunk;
}

static void allreduce_host(bpt_comm *c, bpt_axis a, void *buf, size_t n, MPI_Datatype t, size_t size, MPI_Op op) {
    bpt_watchdog_enter("all-reduce", a);
    for (size_t i = 0, m; i < n; i += m) {
        m = piece(n - i);
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * size, (int)m, t, op, c->comm[a]);
    }
    bpt_watchdog_leave();
}

/* The other collectives move one shard per rank, which never nears 2^31 elements. */
static void int_count_or_die(size_t n, const char *what) {
    if (n > (size_t)INT_MAX)
        bpt_panic(__FILE__, __LINE__, "%s of %zu elements per rank: over MPI's int count (shard the tensor more)", what, n);
}

void bpt_allreduce_f32(bpt_comm *c, bpt_axis a, float *buf, size_t n) {
    int p = c->size[a];
    if (skip(c, a, 2.0 * (p - 1) / p * n * sizeof(float))) return;
    if (DEV(c, buf)) { bpt_nccl_allreduce(c, a, buf, n, BPT_DT_F32, BPT_OP_SUM); return; }
    allreduce_host(c, a, buf, n, MPI_FLOAT, sizeof(float), MPI_SUM);
}

void bpt_allreduce_f64(bpt_comm *c, bpt_axis a, double *buf, size_t n) {
    int p = c->size[a];
    if (skip(c, a, 2.0 * (p - 1) / p * n * sizeof(double))) return;
    if (DEV(c, buf)) { bpt_nccl_allreduce(c, a, buf, n, BPT_DT_F64, BPT_OP_SUM); return; }
    allreduce_host(c, a, buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM);
}

void bpt_allreduce_max_f32(bpt_comm *c, bpt_axis a, float *buf, size_t n) {
    int p = c->size[a];
    if (skip(c, a, 2.0 * (p - 1) / p * n * sizeof(float))) return;
    if (DEV(c, buf)) { bpt_nccl_allreduce(c, a, buf, n, BPT_DT_F32, BPT_OP_MAX); return; }
    allreduce_host(c, a, buf, n, MPI_FLOAT, sizeof(float), MPI_MAX);
}

void bpt_allreduce_maxloc(bpt_comm *c, bpt_axis a, float *val, int32_t *idx, size_t n) {
    int p = c->size[a];
    if (skip(c, a, 2.0 * (p - 1) / p * n * (sizeof(float) + sizeof(int32_t)))) return;
    if (DEV(c, val)) { bpt_nccl_maxloc(c, a, val, idx, n); return; }
    struct { float v; int i; } *buf = malloc(n * sizeof *buf);
    for (size_t j = 0; j < n; j++) { buf[j].v = val[j]; buf[j].i = idx[j]; }
    allreduce_host(c, a, buf, n, MPI_FLOAT_INT, sizeof *buf, MPI_MAXLOC);
    for (size_t j = 0; j < n; j++) { val[j] = buf[j].v; idx[j] = buf[j].i; }
    free(buf);
}

/* *out = the maximum over axis a of one host value of MPI type t */
static void allreduce_max1(bpt_comm *c, bpt_axis a, const void *v, void *out, MPI_Datatype t) {
    bpt_watchdog_enter("all-reduce", a);
    MPI_Allreduce(v, out, 1, t, MPI_MAX, c->comm[a]);
    bpt_watchdog_leave();
}

int bpt_allreduce_max_int(bpt_comm *c, bpt_axis a, int v) {
    int out = v;
    if (c->size[a] > 1 && !c->dry) allreduce_max1(c, a, &v, &out, MPI_INT);
    return out;
}

uint64_t bpt_allreduce_max_u64(bpt_comm *c, bpt_axis a, uint64_t v) {
    uint64_t out = v;
    if (c->size[a] > 1 && !c->dry) allreduce_max1(c, a, &v, &out, MPI_UINT64_T);
    return out;
}

/* out = in on a one-rank axis, in whichever memory they live */
static void copy_local(bpt_comm *c, void *out, const void *in, size_t bytes) {
    if (out == in || c->dry) return;
    if (DEVPTR(out)) bpt_nccl_copy(out, in, bytes);   /* device memory, NCCL or not (one rank) */
    else memcpy(out, in, bytes);
}

/* All-gather of n elements of `size` bytes per rank; in == NULL: in place (this rank's
 * part already sits at out + rank*n). req == NULL: blocking. */
static void allgather(bpt_comm *c, bpt_axis a, void *out, const void *in, size_t n, size_t size,
                      bpt_request *req) {
    int p = c->size[a];
    if (req) { req->r = MPI_REQUEST_NULL; req->ev = NULL; req->what = "all-gather (prefetched)"; req->axis = a; req->paired = 0; }
    if (p == 1) { if (in) copy_local(c, out, in, n * size); return; }
    if (skip(c, a, (double)(p - 1) * n * size)) return;
    if (DEV(c, out)) {
        if (!in) in = (const char *)out + (size_t)c->rank[a] * n * size;
        bpt_nccl_allgather(c, a, out, in, n, size == 2 ? BPT_DT_BF16 : BPT_DT_F32, req);
        return;
    }
    int_count_or_die(n, "all-gather");
    MPI_Datatype t = size == 2 ? MPI_UINT16_T : MPI_FLOAT;
    const void *send = in ? in : MPI_IN_PLACE;
    if (req) {
        MPI_Iallgather(send, (int)n, t, out, (int)n, t, c->comm[a], &req->r);
        return;
    }
    bpt_watchdog_enter("all-gather", a);
    MPI_Allgather(send, (int)n, t, out, (int)n, t, c->comm[a]);
    bpt_watchdog_leave();
}

void bpt_allgather_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n) {
    allgather(c, a, out, in, n, sizeof(float), NULL);
}

void bpt_iallgather_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n, bpt_request *req) {
    allgather(c, a, out, in, n, sizeof(float), req);
}

void bpt_allgather_bf16(bpt_comm *c, bpt_axis a, uint16_t *out, size_t n) {
    allgather(c, a, out, NULL, n, sizeof(uint16_t), NULL);
}

void bpt_iallgather_bf16(bpt_comm *c, bpt_axis a, uint16_t *out, size_t n, bpt_request *req) {
    allgather(c, a, out, NULL, n, sizeof(uint16_t), req);
}

void bpt_wait(bpt_comm *c, bpt_request *req) {
    if (req->ev) bpt_nccl_wait(c, req);
    if (req->r != MPI_REQUEST_NULL || req->paired) {
        bpt_watchdog_enter(req->what ? req->what : "non-blocking collective", req->axis);
        MPI_Wait(&req->r, MPI_STATUS_IGNORE);
        if (req->paired) MPI_Wait(&req->r2, MPI_STATUS_IGNORE);
        bpt_watchdog_leave();
    }
    req->r = MPI_REQUEST_NULL;
    req->paired = 0;
}

void bpt_ring_shift_f32(bpt_comm *c, bpt_axis a, float *recv, const float *send, size_t n, bpt_request *req) {
    *req = (bpt_request){ MPI_REQUEST_NULL, NULL, "ring send/receive", a, 0, MPI_REQUEST_NULL };
    int p = c->size[a];
    if (p == 1 || c->dry) {
        if (p == 1) copy_local(c, recv, send, n * sizeof(float));
        else count(c, a, (double)n * sizeof(float));
        return;
    }
    count(c, a, (double)n * sizeof(float));
    if (DEV(c, recv)) { bpt_nccl_ring_shift(c, a, recv, send, n, req); return; }
    BPT_CHECK(n <= INT_MAX, "ring message of %zu floats", n);
    int me = c->rank[a], next = (me + 1) % p, prev = (me + p - 1) % p;
    MPI_Irecv(recv, (int)n, MPI_FLOAT, prev, 0, c->comm[a], &req->r2);
    MPI_Isend(send, (int)n, MPI_FLOAT, next, 0, c->comm[a], &req->r);
    req->paired = 1;
}

static void reduce_scatter(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n, bpt_request *req) {
    int p = c->size[a];
    if (req) { req->r = MPI_REQUEST_NULL; req->ev = NULL; req->what = "reduce-scatter (overlapped)"; req->axis = a; req->paired = 0; }
    if (p == 1) { copy_local(c, out, in, n * sizeof(float)); return; }
    if (skip(c, a, (double)(p - 1) * n * sizeof(float))) return;
    if (DEV(c, in)) { bpt_nccl_reduce_scatter(c, a, out, in, n, BPT_DT_F32, req); return; }
    int_count_or_die(n, "reduce-scatter");
    if (req) {
        MPI_Ireduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, c->comm[a], &req->r);
        return;
    }
    bpt_watchdog_enter("reduce-scatter", a);
    MPI_Reduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, c->comm[a]);
    bpt_watchdog_leave();
}

void bpt_reduce_scatter_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n) {
    reduce_scatter(c, a, out, in, n, NULL);
}

void bpt_ireduce_scatter_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n, bpt_request *req) {
    reduce_scatter(c, a, out, in, n, req);
}

void bpt_broadcast(bpt_comm *c, bpt_axis a, void *buf, size_t bytes, int root) {
    if (skip(c, a, c->rank[a] == root ? (double)bytes : 0.0)) return;
    if (DEV(c, buf)) { bpt_nccl_broadcast(c, a, buf, bytes, root); return; }
    bpt_watchdog_enter("broadcast", a);
    for (size_t i = 0, m; i < bytes; i += m) {   /* in pieces, as the all-reduces */
        m = piece(bytes - i);
        MPI_Bcast((char *)buf + i, (int)m, MPI_BYTE, root, c->comm[a]);
    }
    bpt_watchdog_leave();
}

void bpt_barrier(bpt_comm *c, bpt_axis a) {
    if (c->size[a] == 1 || c->dry) return;
    bpt_watchdog_enter("barrier", a);
    MPI_Barrier(c->comm[a]);
    bpt_watchdog_leave();
}
