/* comm.h — collectives over one axis of the device mesh.
 *
 * One implementation per memory kind: MPI for host buffers (the CPU backend), NCCL
 * for device buffers (the CUDA backend, after bpt_comm_nccl_init; the choice is made
 * per call from where the buffer lives). Every call names the axis
 * it runs on; the comm layer counts the bytes each axis moved, which the training
 * loop reports as comm_bytes. All calls are collective over the axis.
 */
#ifndef BPT_COMM_H
#define BPT_COMM_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

typedef enum { BPT_AXIS_DP = 0, BPT_AXIS_FSDP, BPT_AXIS_TP, BPT_AXIS_SP, BPT_AXIS_BATCH, BPT_AXIS_WORLD,
               BPT_NAXES } bpt_axis;

typedef struct bpt_comm {
    MPI_Comm comm[BPT_NAXES];     /* sub-communicator per axis (BATCH = dp x fsdp) */
    int size[BPT_NAXES], rank[BPT_NAXES];
    uint64_t bytes[BPT_NAXES];    /* bytes sent by this rank per axis, cumulative */
    int dry;                      /* count bytes only, touch nothing (plans on the null backend) */
    struct bpt_nccl *nccl;        /* NCCL communicators per axis, NULL until bpt_comm_nccl_init */
} bpt_comm;

/* A pending non-blocking collective: an MPI request, or (NCCL) the event that marks
 * its completion on the comm stream; `what` names it for the watchdog. */
typedef struct bpt_request {
    MPI_Request r;
    void *ev;
    const char *what;
    bpt_axis axis;
    int paired;        /* a ring exchange: r2 (the receive) is pending too */
    MPI_Request r2;
} bpt_request;

/* ---- start-up and agreement on failure ------------------------------------------ */

/* MPI_Init_thread asking for MPI_THREAD_MULTIPLE (the watchdog's thread may call
 * MPI_Abort while the main thread is inside a collective). A library that gives less than
 * MPI_THREAD_FUNNELED stops the process with one line; the level given is returned. */
int bpt_mpi_init(int *argc, char ***argv);
int bpt_mpi_thread_level(void);     /* what MPI_Init_thread gave (-1 before bpt_mpi_init) */

/* MPI_Finalize and exit(rc): the end of every path out of bpt once MPI is up. A rank
 * on which a library was left in a state its finalizer would crash on (HDF5 after a
 * failed close of a file being written, see bpt_mpi_finalize_unsafe) skips the
 * finalizers and ends with _exit(rc); its message was printed before. */
void bpt_mpi_exit(int rc) __attribute__((noreturn));
void bpt_mpi_finalize_unsafe(void);

/* The one agreement primitive. Collective over MPI_COMM_WORLD: every rank calls it at the
 * same point, with rc its own status (0: fine) and msg its one-line message (read only
 * when rc != 0). Returns the status of the lowest failing world rank, 0 when none failed,
 * and leaves that rank's message in msg (n bytes) on every rank. Without MPI or on one
 * rank it returns rc. Called before every point where ranks could diverge (files each
 * rank opens, allocations, what rank 0 alone decides), so a failure seen by one rank is
 * seen by all before any collective could wait for it forever. */
int bpt_agree(int rc, char *msg, size_t n);

/* bpt_agree, and when some rank failed: "bpt: <its message>" on stderr once (by world
 * rank 0), MPI finalized (bpt_mpi_finalize), and every rank exits with that status. */
void bpt_agree_or_exit(int rc, const char *msg);

/* A dry communicator for a dp x fsdp x tp x sp mesh, seen from rank 0 of every axis:
 * collectives only count their bytes. No MPI calls. */
void bpt_comm_dry(bpt_comm *c, int dp, int fsdp, int tp, int sp);
/* One rank, no MPI communicators needed (all sizes 1). */
void bpt_comm_single(bpt_comm *c);

const char *bpt_axis_name(bpt_axis a);   /* "dp", "fsdp", "tp", "sp", "batch", "world" */

/* Device collectives for the CUDA backend: one NCCL communicator per mesh axis (dp,
 * fsdp, tp) of size > 1 (batch and world carry host buffers only),
 * its ncclUniqueId broadcast over the axis's MPI sub-communicator (collective over the
 * world; call after the backend picked the GPU). From then on collectives on device
 * buffers go through NCCL on their own stream; host buffers stay on MPI.
 * 0, or -1 with a one-line message (a build without CUDA always fails). */
int  bpt_comm_nccl_init(bpt_comm *c, char *err, size_t errlen);
void bpt_comm_nccl_free(bpt_comm *c);

/* The hang watchdog. Every blocking collective of this layer is announced (its name,
 * axis and the training step); a thread checks once a second, and when one has waited
 * longer than timeout_s it prints "bpt: watchdog: rank R waited S s in <collective> on
 * axis <axis> at step N; aborting" and calls MPI_Abort, ending the job on every rank
 * rather than burning the allocation. timeout_s <= 0 turns it off. */
void bpt_watchdog_start(double timeout_s);
void bpt_watchdog_set_step(int64_t step);
int64_t bpt_watchdog_step(void);
/* An extra check the watchdog runs every second (the NCCL layer's queue of collectives
 * in flight): returns 1 with a message when the job must abort. */
void bpt_watchdog_set_poll(int (*poll)(double timeout_s, char *msg, size_t n));
/* Bracket a blocking call made outside this layer (e.g. MPI in the checkpointer). */
void bpt_watchdog_enter(const char *what, bpt_axis a);
void bpt_watchdog_leave(void);

/* In-place sum over the axis. */
void bpt_allreduce_f32(bpt_comm *c, bpt_axis a, float *buf, size_t n);
void bpt_allreduce_f64(bpt_comm *c, bpt_axis a, double *buf, size_t n);
/* In-place max / min of ints (agreement on errors: any rank failing -> all know). */
int  bpt_allreduce_max_int(bpt_comm *c, bpt_axis a, int v);
/* In-place max of floats. */
void bpt_allreduce_max_f32(bpt_comm *c, bpt_axis a, float *buf, size_t n);
/* In-place (value, index) max; equal values keep the lowest index (MPI_MAXLOC). */
void bpt_allreduce_maxloc(bpt_comm *c, bpt_axis a, float *val, int32_t *idx, size_t n);
/* Max of an unsigned 64-bit value over the axis (returned). */
uint64_t bpt_allreduce_max_u64(bpt_comm *c, bpt_axis a, uint64_t v);
/* out (size*n) = concatenation of every rank's in (n), in axis-rank order. */
void bpt_allgather_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n);
/* The same, non-blocking: complete with bpt_wait before touching out or in. */
void bpt_iallgather_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n, bpt_request *req);
/* bf16 (16-bit patterns), in place: out (size*n) already holds this rank's n elements
 * at out + rank*n; the others' arrive around them (FSDP gathers of bf16 weights). */
void bpt_allgather_bf16(bpt_comm *c, bpt_axis a, uint16_t *out, size_t n);
void bpt_iallgather_bf16(bpt_comm *c, bpt_axis a, uint16_t *out, size_t n, bpt_request *req);
void bpt_wait(bpt_comm *c, bpt_request *req);
/* out (n) = sum over ranks of in[rank*n : (rank+1)*n]. */
void bpt_reduce_scatter_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n);
/* The same, non-blocking (the FSDP gradients of a layer, overlapping the backward of the
 * next): complete with bpt_wait before touching out or in. */
void bpt_ireduce_scatter_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n, bpt_request *req);
/* The ring step of axis a (sequence parallelism): send n floats to the next rank of
 * the axis ((rank + 1) % size) and receive n floats from the previous one into recv,
 * non-blocking; complete with bpt_wait before touching either. send and recv do not
 * overlap. On a one-rank axis recv = send. Host buffers on MPI (Irecv + Isend); device
 * buffers on NCCL (ncclSend + ncclRecv in one group on the axis's comm stream). */
void bpt_ring_shift_f32(bpt_comm *c, bpt_axis a, float *recv, const float *send, size_t n, bpt_request *req);
void bpt_broadcast(bpt_comm *c, bpt_axis a, void *buf, size_t bytes, int root);
void bpt_barrier(bpt_comm *c, bpt_axis a);

#endif
