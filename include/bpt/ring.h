/* ring.h — ring attention over the sequence-parallel axis (sp): the causal attention of
 * a sequence whose tokens are spread over the sp ranks (Ring Attention, Liu, Zaharia and
 * Abbeel 2023, the successor of BPT), built from the backend's segment kernels
 * (kernels.h: attn_fwd_seg, attn_bwd_seg) and the comm layer's ring step
 * (bpt_ring_shift_f32).
 *
 * Layout (zig-zag, which balances the causal work): a sequence of T tokens is cut into
 * 2*sp chunks of C = T / (2 sp) tokens; sp rank r holds chunks r and 2sp-1-r, in that
 * order, as its T_local = 2C tokens. q, o, dq are (B, T_local, H, Dh), k, v, dk, dv
 * (B, T_local, KVH, Dh), lse (B, H, T_local), all this rank's tokens only.
 *
 * Forward: the K/V block (only the KVH heads: GQA blocks are never replicated) goes
 * round the ring; at each of the sp hops the rank posts the send of the block it holds
 * and the receive of the next, computes its queries against the block it holds (pairs
 * of chunks whose keys are all in the queries' future are skipped), then completes the
 * exchange. Partial outputs merge through their log-sum-exp in fp32.
 * Backward: recomputed from the final o and lse; dq stays local; K/V go round as in
 * the forward, and each block's fp32 dK/dV accumulator travels one hop behind it:
 * the contributions of a hop are added to the accumulator arriving from the previous
 * rank, which then moves on; the last hop hands it back to the block's owner.
 *
 * Every call is collective over the sp axis. */
#ifndef BPT_RING_H
#define BPT_RING_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"

struct bpt_kernels;

typedef struct {
    bpt_comm *comm;                 /* its BPT_AXIS_SP: size sp, this rank's place r */
    const struct bpt_kernels *k;    /* a backend with attn_fwd_seg / attn_bwd_seg */
    int B, T_local, H, KVH, Dh;     /* T_local = 2C tokens of this rank */
    int Bq, Bk;                     /* attention chunk sizes, as for attn_fwd */
    float *work;                    /* bpt_ring_work_floats(...) floats, backend memory */
    int compute_only;               /* bench/bench_ring: every hop's work on the local block, no
                                       message (wrong results; the time of the compute alone) */
    int contiguous;                 /* bench/bench_ring: rank r holds chunks 2r and 2r+1 (the
                                       contiguous layout, whose causal work grows with r) instead
                                       of the zig-zag r and 2sp-1-r; the model never sets it */
} bpt_ring;

/* Floats of work space the ring needs: two K/V blocks for the forward, and for the
 * backward also three dK/dV blocks (computing, arriving, leaving), so 10 x
 * B * T_local * KVH * Dh. */
size_t bpt_ring_work_floats(int B, int T_local, int KVH, int Dh);

/* The global position of local token t (0 <= t < T_local) of sp rank r. */
int64_t bpt_ring_position(int sp, int r, int T_local, int t);

/* o, lse of this rank's queries against every key of the sequence. */
void bpt_ring_attn_fwd(const bpt_ring *g, float *o, float *lse, const float *q, const float *k, const float *v);

/* dq, dk, dv (overwritten) of this rank's tokens, given dout and the forward's o, lse. */
void bpt_ring_attn_bwd(const bpt_ring *g, float *dq, float *dk, float *dv, const float *dout,
                       const float *q, const float *k, const float *v, const float *o, const float *lse);

#endif
