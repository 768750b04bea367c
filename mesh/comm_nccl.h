/* comm_nccl.h — the NCCL half of the comm layer (private to mesh/).
 *
 * Once bpt_comm_nccl_init has run, comm_mpi.c hands every collective whose buffers are
 * device memory to these functions; host buffers stay on MPI. Each mesh axis (dp, fsdp,
 * tp, sp) of size > 1 has its own NCCL communicator (batch and world, whose collectives
 * are all on host buffers, have none) and its own comm stream (so a tp all-reduce does not
 * queue behind an fsdp prefetch): the comm stream first waits for the compute stream
 * (an event), and a blocking call makes the compute stream wait for the collective in
 * turn, so the host never blocks and a prefetch (bpt_iallgather_*, bpt_ireduce_scatter_f32) overlaps the
 * compute until bpt_wait. Every
 * collective is also queued for the watchdog, which reports one that has not completed
 * comm_timeout_s after its stream reached it, and any asynchronous NCCL error, with its
 * axis.
 */
#ifndef BPT_COMM_NCCL_H
#define BPT_COMM_NCCL_H

#include "bpt/comm.h"

typedef enum { BPT_DT_F32, BPT_DT_F64, BPT_DT_I32, BPT_DT_BF16, BPT_DT_BYTE } bpt_wire_type;
typedef enum { BPT_OP_SUM, BPT_OP_MAX, BPT_OP_MIN } bpt_redop;

/* bpt_comm_nccl_init, but with `single` also for the axes of size 1 (one-rank NCCL
 * communicators: how tests/gpu/test_nccl_local puts every collective through NCCL on
 * one GPU, without MPI). */
int  bpt_nccl_init_axes(bpt_comm *c, int single, char *err, size_t errlen);
/* 1 if p points to device memory (and NCCL is up). */
int  bpt_nccl_on_device(const bpt_comm *c, const void *p);
/* 1 if p points to device memory (0 until the CUDA backend is initialised). */
int  bpt_cuda_is_device_ptr(const void *p);
void bpt_nccl_allreduce(bpt_comm *c, bpt_axis a, void *buf, size_t n, bpt_wire_type t, bpt_redop op);
void bpt_nccl_maxloc(bpt_comm *c, bpt_axis a, float *val, int32_t *idx, size_t n);
/* req NULL: blocking (stream-ordered) */
void bpt_nccl_allgather(bpt_comm *c, bpt_axis a, void *out, const void *in, size_t n, bpt_wire_type t, bpt_request *req);
void bpt_nccl_wait(bpt_comm *c, bpt_request *req);
void bpt_nccl_reduce_scatter(bpt_comm *c, bpt_axis a, void *out, const void *in, size_t n, bpt_wire_type t,
                             bpt_request *req);
void bpt_nccl_broadcast(bpt_comm *c, bpt_axis a, void *buf, size_t bytes, int root);
/* The ring step of bpt_ring_shift_f32 on device buffers (req: its completion). */
void bpt_nccl_ring_shift(bpt_comm *c, bpt_axis a, float *recv, const float *send, size_t n, bpt_request *req);
void bpt_nccl_copy(void *dst, const void *src, size_t bytes);

#endif
