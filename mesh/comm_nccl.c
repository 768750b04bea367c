/* comm_nccl.c — device collectives over NCCL (see comm_nccl.h). */
#include "mesh/comm_nccl.h"
#include "bpt/util.h"
#include "kernels/cuda/cuda.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QCAP 1024   /* collectives in flight the watchdog tracks */

typedef struct pending {
    cudaEvent_t start;   /* recorded before the collective: done once the stream reached it */
    cudaEvent_t ev;      /* recorded after it: done once it completed */
    const char *what;
    bpt_axis axis;
    double since;        /* when the watchdog first saw it started; 0 until then */
    int64_t step;
} pending;

struct bpt_nccl {
    ncclComm_t comm[BPT_NAXES];   /* NULL for axes of size 1 */
    cudaStream_t stream[BPT_NAXES];   /* one comm stream per axis: a tp all-reduce need not
                                         queue behind the fsdp prefetch */
    cudaStream_t compute;
    cudaEvent_t ready;
    int device;
    pthread_mutex_t lock;         /* the queue below, shared with the watchdog thread */
    pending q[QCAP];
    int head, count;
};

static struct bpt_nccl *active;   /* the watchdog's view */
static int polling;               /* the watchdog poll is registered */

#define CU(call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) bpt_panic(__FILE__, __LINE__, "CUDA: %s: %s", #call, cudaGetErrorString(e_)); } while (0)

/* NCCL's own account of the last failure ("Duplicate GPU detected ..."), after its code */
static const char *nccl_why(void) {
    const char *w = ncclGetLastError(NULL);
    return w && *w ? w : "no detail (NCCL_DEBUG=WARN says more)";
}

static void nccl_check(ncclResult_t r, const char *what, bpt_axis a) {
    if (r != ncclSuccess)
        bpt_panic(__FILE__, __LINE__, "NCCL %s on axis %s failed: %s: %s", what, bpt_axis_name(a),
                  ncclGetErrorString(r), nccl_why());
}

static ncclDataType_t nccl_type(bpt_wire_type t) {
    switch (t) {
    case BPT_DT_F32: return ncclFloat32;
    case BPT_DT_F64: return ncclFloat64;
    case BPT_DT_I32: return ncclInt32;
    case BPT_DT_BF16: return ncclBfloat16;
    case BPT_DT_BYTE: break;
    }
    return ncclInt8;
}
static ncclRedOp_t nccl_op(bpt_redop op) { return op == BPT_OP_MAX ? ncclMax : op == BPT_OP_MIN ? ncclMin : ncclSum; }

/* Everything of n: its communicators destroyed (after their streams drained) or, when
 * setting up failed, aborted. */
static void teardown(struct bpt_nccl *n, int abort_comms) {
    for (int a = 0; a < BPT_NAXES; a++) cudaStreamSynchronize(n->stream[a]);
    for (int a = 0; a < BPT_NAXES; a++)
        if (n->comm[a]) (abort_comms ? ncclCommAbort : ncclCommDestroy)(n->comm[a]);
    for (int i = 0; i < QCAP; i++) { cudaEventDestroy(n->q[i].start); cudaEventDestroy(n->q[i].ev); }
    cudaEventDestroy(n->ready);
    for (int a = 0; a < BPT_NAXES; a++) cudaStreamDestroy(n->stream[a]);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

/* NCCL connects peers on their first send/receive; the sp ring's are made here, at
 * start-up, with a one-float hop (a hang here is timed by the watchdog as setup). */
static void ring_connect(struct bpt_nccl *n, const bpt_comm *c) {
    bpt_axis a = BPT_AXIS_SP;
    int p = c->size[a], me = c->rank[a];
    float *buf = NULL;   /* two floats of its own: the arena (and its comm scratch) comes later */
    CU(cudaMalloc((void **)&buf, 2 * sizeof(float)));
    bpt_watchdog_enter("NCCL ring setup", a);
    nccl_check(ncclGroupStart(), "ring setup", a);
    nccl_check(ncclSend(buf, 1, ncclFloat32, (me + 1) % p, n->comm[a], n->stream[a]), "ring setup", a);
    nccl_check(ncclRecv(buf + 1, 1, ncclFloat32, (me + p - 1) % p, n->comm[a], n->stream[a]), "ring setup", a);
    nccl_check(ncclGroupEnd(), "ring setup", a);
    CU(cudaStreamSynchronize(n->stream[a]));
    bpt_watchdog_leave();
    CU(cudaFree(buf));
}

int bpt_nccl_init_axes(bpt_comm *c, int single, char *err, size_t errlen) {
    if (c->nccl) return 0;
    struct bpt_nccl *n = bpt_xcalloc(1, sizeof *n);
    pthread_mutex_init(&n->lock, NULL);
    CU(cudaGetDevice(&n->device));
    n->compute = (cudaStream_t)bpt_cuda_stream();
    if (!n->compute) { free(n); return bpt_err(err, errlen, "NCCL: the CUDA backend is not initialised"); }
    for (int a = 0; a < BPT_NAXES; a++) CU(cudaStreamCreateWithFlags(&n->stream[a], cudaStreamNonBlocking));
    CU(cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming));
    for (int i = 0; i < QCAP; i++) {
        CU(cudaEventCreateWithFlags(&n->q[i].start, cudaEventDisableTiming));
        CU(cudaEventCreateWithFlags(&n->q[i].ev, cudaEventDisableTiming));
    }
    /* axes in one fixed order on every rank, so the blocking inits cannot cross; after
     * each, the world agrees that it worked, so a rank whose init failed cannot leave
     * the others waiting in the next axis's (the watchdog times the init itself) */
    for (int a = 0; a < BPT_NAXES; a++) {
        /* the mesh axes; batch and world carry host buffers only (loss statistics, the
         * agreements), which stay on MPI, so their NCCL buffers would be GPU memory spent
         * for nothing */
        int mesh_axis = a == BPT_AXIS_DP || a == BPT_AXIS_FSDP || a == BPT_AXIS_TP || a == BPT_AXIS_SP;
        if (!single && (c->size[a] == 1 || !mesh_axis)) continue;
        const char *name = bpt_axis_name((bpt_axis)a);
        struct { int ok; ncclUniqueId id; } h;
        memset(&h, 0, sizeof h);
        if (c->rank[a] == 0) h.ok = ncclGetUniqueId(&h.id) == ncclSuccess;
        if (c->size[a] > 1) {
            MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, c->comm[a]);
            MPI_Barrier(c->comm[a]);   /* the broadcast complete everywhere before the blocking init (some
                                          collective libraries leave it in flight otherwise) */
        }
        ncclResult_t r = ncclSystemError;
        if (h.ok) {
            bpt_watchdog_enter("NCCL setup", (bpt_axis)a);
            r = ncclCommInitRank(&n->comm[a], c->size[a], h.id, c->rank[a]);
            bpt_watchdog_leave();
        }
        if (r != ncclSuccess) {
            n->comm[a] = NULL;
            if (h.ok)
                bpt_err(err, errlen, "NCCL: cannot create the communicator of axis %s (%d ranks): %s: %s (HINT: one "
                        "GPU per rank)", name, c->size[a], ncclGetErrorString(r), nccl_why());
            else
                bpt_err(err, errlen, "NCCL: ncclGetUniqueId failed on rank 0 of axis %s: %s", name, nccl_why());
        }
        if (bpt_allreduce_max_int(c, BPT_AXIS_WORLD, r != ncclSuccess)) {
            if (r == ncclSuccess)
                bpt_err(err, errlen, "NCCL: the communicator of axis %s could not be made on another rank", name);
            teardown(n, 1);
            return -1;
        }
    }
    if (!single && n->comm[BPT_AXIS_SP]) ring_connect(n, c);
    c->nccl = n;
    active = n;
    return 0;
}

int bpt_comm_nccl_init(bpt_comm *c, char *err, size_t errlen) { return bpt_nccl_init_axes(c, 0, err, errlen); }

void bpt_comm_nccl_free(bpt_comm *c) {
    struct bpt_nccl *n = c->nccl;
    if (!n) return;
    bpt_watchdog_set_poll(NULL);   /* returns once no poll is running */
    polling = 0;
    if (active == n) active = NULL;
    c->nccl = NULL;
    teardown(n, 0);
}

int bpt_cuda_is_device_ptr(const void *p) {
    if (!p || !bpt_cuda_stream()) return 0;   /* no CUDA backend in use: no device memory (and no context made) */
    struct cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, p) != cudaSuccess) { cudaGetLastError(); return 0; }
    return at.type == cudaMemoryTypeDevice;
}

int bpt_nccl_on_device(const bpt_comm *c, const void *p) { return c->nccl && bpt_cuda_is_device_ptr(p); }

void bpt_nccl_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src)
        CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)bpt_cuda_stream()));
}

/* ---- the watchdog's queue ---- */

/* Drop completed collectives from the front (the oldest incomplete one stays first).
 * Called with the lock held; never waits. */
static void reap(struct bpt_nccl *n) {
    while (n->count) {
        pending *p = &n->q[n->head];
        if (cudaEventQuery(p->ev) != cudaSuccess) return;   /* not ready, or an error the poll reports */
        n->head = (n->head + 1) % QCAP;
        n->count--;
    }
}

/* Before a collective on axis a: its comm stream waits for the compute stream's work
 * so far, and the next queue slot is taken (waiting, outside the lock, for the oldest
 * collective while the queue is full) and its start event recorded, so the watchdog
 * times the collective from when the stream reaches it, not from when the host queued
 * it: a host running ahead of the GPU does not count compute against comm_timeout_s.
 * Only this (the main) thread adds entries; the watchdog only drops them from the
 * front, which keeps head + count, the slot taken here, unchanged. Nothing waits under
 * the lock, so the watchdog can always look, and abort. */
static pending *begin(struct bpt_nccl *n, bpt_axis a) {
    if (!n->comm[a])
        bpt_panic(__FILE__, __LINE__, "a collective on device memory over axis %s, which has no NCCL communicator "
                  "(only dp, fsdp, tp and sp do)", bpt_axis_name(a));
    CU(cudaEventRecord(n->ready, n->compute));
    CU(cudaStreamWaitEvent(n->stream[a], n->ready, 0));
    pthread_mutex_lock(&n->lock);
    reap(n);
    while (n->count == QCAP) {
        cudaEvent_t oldest = n->q[n->head].ev;
        pthread_mutex_unlock(&n->lock);
        CU(cudaEventSynchronize(oldest));
        pthread_mutex_lock(&n->lock);
        reap(n);
    }
    pending *p = &n->q[(n->head + n->count) % QCAP];
    pthread_mutex_unlock(&n->lock);
    CU(cudaEventRecord(p->start, n->stream[a]));
    return p;
}

/* After it: the slot is filled in and handed to the watchdog; returns the completion
 * event. */
static cudaEvent_t end(struct bpt_nccl *n, pending *p, const char *what, bpt_axis a) {
    p->what = what;
    p->axis = a;
    p->since = 0.0;
    p->step = bpt_watchdog_step();
    CU(cudaEventRecord(p->ev, n->stream[a]));
    pthread_mutex_lock(&n->lock);
    n->count++;
    pthread_mutex_unlock(&n->lock);
    return p->ev;
}

/* A blocking collective: the compute stream continues after it. */
static void end_blocking(struct bpt_nccl *n, pending *p, const char *what, bpt_axis a) {
    cudaEvent_t ev = end(n, p, what, a);
    CU(cudaStreamWaitEvent(n->compute, ev, 0));
}

static int nccl_poll(double timeout, char *msg, size_t len) {
    struct bpt_nccl *n = active;
    if (!n) return 0;
    cudaSetDevice(n->device);   /* this thread's runtime context */
    for (int a = 0; a < BPT_NAXES; a++) {
        ncclResult_t ae = ncclSuccess;
        if (n->comm[a] && ncclCommGetAsyncError(n->comm[a], &ae) == ncclSuccess && ae != ncclSuccess) {
            snprintf(msg, len, "NCCL error on axis %s: %s: %s", bpt_axis_name((bpt_axis)a), ncclGetErrorString(ae),
                     nccl_why());
            return 1;
        }
    }
    pthread_mutex_lock(&n->lock);
    reap(n);
    /* the collectives in flight, oldest first, up to the first unfinished one of each
     * axis (a stream runs its collectives in order, so only that one can be running): a
     * started one on one axis may hang while an older one on another has not started */
    int late = 0, seen[BPT_NAXES] = {0}, axes = 0;
    double now = bpt_now();
    for (int i = 0; i < n->count && !late && axes < BPT_NAXES; i++) {
        pending *p = &n->q[(n->head + i) % QCAP];
        if (seen[p->axis]) continue;
        cudaError_t e = cudaEventQuery(p->ev);
        if (e == cudaSuccess) continue;
        if (e == cudaErrorCudartUnloading) break;   /* the process is exiting */
        seen[p->axis] = 1;
        axes++;
        if (e == cudaErrorNotReady && p->since == 0.0) {
            e = cudaEventQuery(p->start);
            if (e == cudaErrorNotReady) continue;   /* its stream has not reached it */
            if (e == cudaErrorCudartUnloading) break;
            if (e == cudaSuccess) p->since = now;
        }
        if (e != cudaSuccess && e != cudaErrorNotReady) {
            snprintf(msg, len, "%s (NCCL) on axis %s at step %lld: CUDA error %s (this or earlier work on the GPU)", p->what,
                     bpt_axis_name(p->axis), (long long)p->step, cudaGetErrorString(e));
            late = 1;
        } else if (now - p->since > timeout) {
            snprintf(msg, len, "%s (NCCL) on axis %s at step %lld has not completed %.0f s after it started",
                     p->what, bpt_axis_name(p->axis), (long long)p->step, now - p->since);
            late = 1;
        }
    }
    pthread_mutex_unlock(&n->lock);
    /* no ncclCommAbort here: the main thread may be using the communicators, and the
     * watchdog's MPI_Abort, right after its message, ends the process and frees the GPU */
    return late;
}

/* ---- collectives ---- */

static struct bpt_nccl *up(bpt_comm *c) {
    if (!polling) { bpt_watchdog_set_poll(nccl_poll); polling = 1; }
    return c->nccl;
}

void bpt_nccl_allreduce(bpt_comm *c, bpt_axis a, void *buf, size_t n, bpt_wire_type t, bpt_redop op) {
    struct bpt_nccl *nc = up(c);
    pending *q = begin(nc, a);
    nccl_check(ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), nc->comm[a], nc->stream[a]), "all-reduce", a);
    end_blocking(nc, q, "all-reduce", a);
}

/* MPI_MAXLOC from two all-reduces: the max of the values, then the min of the indices
 * of the ranks that hold it (lowest index on ties, as MPI). */
void bpt_nccl_maxloc(bpt_comm *c, bpt_axis a, float *val, int32_t *idx, size_t n) {
    size_t chunk = BPT_CUDA_WORKSPACE_COMM / sizeof(float);
    float *mine = bpt_cuda_comm_scratch();
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        bpt_nccl_copy(mine, val + i0, m * sizeof(float));
        bpt_nccl_allreduce(c, a, val + i0, m, BPT_DT_F32, BPT_OP_MAX);
        bpt_cu_maxloc_mark(idx + i0, mine, val + i0, m);
        bpt_nccl_allreduce(c, a, idx + i0, m, BPT_DT_I32, BPT_OP_MIN);
    }
}

/* The collective just enqueued: blocking (the compute stream waits for it), or with a
 * request, whose own event bpt_wait joins (the queue's event may be reused first). */
static void finish(struct bpt_nccl *nc, pending *q, const char *what, bpt_axis a, bpt_request *req) {
    if (!req) { end_blocking(nc, q, what, a); return; }
    cudaEvent_t ev;
    CU(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    end(nc, q, req->what ? req->what : what, a);
    CU(cudaEventRecord(ev, nc->stream[a]));
    req->ev = ev;
}

void bpt_nccl_allgather(bpt_comm *c, bpt_axis a, void *out, const void *in, size_t n, bpt_wire_type t, bpt_request *req) {
    struct bpt_nccl *nc = up(c);
    pending *q = begin(nc, a);
    nccl_check(ncclAllGather(in, out, n, nccl_type(t), nc->comm[a], nc->stream[a]), "all-gather", a);
    finish(nc, q, "all-gather", a, req);
}

void bpt_nccl_wait(bpt_comm *c, bpt_request *req) {
    if (!req->ev) return;
    CU(cudaStreamWaitEvent(c->nccl->compute, (cudaEvent_t)req->ev, 0));
    CU(cudaEventDestroy((cudaEvent_t)req->ev));
    req->ev = NULL;
}

void bpt_nccl_reduce_scatter(bpt_comm *c, bpt_axis a, void *out, const void *in, size_t n, bpt_wire_type t,
                             bpt_request *req) {
    struct bpt_nccl *nc = up(c);
    pending *q = begin(nc, a);
    nccl_check(ncclReduceScatter(in, out, n, nccl_type(t), ncclSum, nc->comm[a], nc->stream[a]), "reduce-scatter", a);
    finish(nc, q, "reduce-scatter", a, req);
}

/* The ring step: send to the next rank of the axis, receive from the previous one, one
 * NCCL group on the axis's comm stream (so the compute stream runs the hop's attention
 * meanwhile, and bpt_wait joins the two). */
void bpt_nccl_ring_shift(bpt_comm *c, bpt_axis a, float *recv, const float *send, size_t n, bpt_request *req) {
    struct bpt_nccl *nc = up(c);
    pending *q = begin(nc, a);
    int p = c->size[a], me = c->rank[a];
    nccl_check(ncclGroupStart(), "ring send/receive", a);
    nccl_check(ncclSend(send, n, ncclFloat32, (me + 1) % p, nc->comm[a], nc->stream[a]), "ring send", a);
    nccl_check(ncclRecv(recv, n, ncclFloat32, (me + p - 1) % p, nc->comm[a], nc->stream[a]), "ring receive", a);
    nccl_check(ncclGroupEnd(), "ring send/receive", a);
    finish(nc, q, "ring send/receive", a, req);
}

void bpt_nccl_broadcast(bpt_comm *c, bpt_axis a, void *buf, size_t bytes, int root) {
    struct bpt_nccl *nc = up(c);
    pending *q = begin(nc, a);
    nccl_check(ncclBroadcast(buf, buf, bytes, ncclInt8, root, nc->comm[a], nc->stream[a]), "broadcast", a);
    end_blocking(nc, q, "broadcast", a);
}
