/* shard.h — the parallel layer: which slice of each tensor a rank holds, and every
 * collective the model's math needs, each forward collective written next to its
 * backward. src/model.c is math and calls to this API only; the collectives underneath
 * are comm.h's (MPI or NCCL), on the mesh axes of docs/mesh.md.
 *
 * Holding. Tensor parallelism splits a tensor as llama.h says (column: dim 0 over tp,
 * row: dim 1, replicated: not at all); FSDP then splits the tp-local piece along dim 0
 * into fsdp shards of ceil(rows/fsdp) rows, the last padded with zeros, so a shard is a
 * plain hyperslab of the logical tensor. The model's flat buffers hold this rank's
 * shards only; dp ranks hold identical copies.
 *
 * The step, and where each collective is (fwd: forward, bwd: backward):
 *
 *   what                           forward                       backward
 *   a layer's weights              all-gather over fsdp          (the same gather, again:
 *                                  (start: non-blocking, the       the backward starts with
 *                                  next layer's in flight;         the last layer, still at
 *                                  ready: waited, widened from     hand, and prefetches the
 *                                  bf16 under dtype bf16)          one below)
 *   a layer's gradients            -                             reduce-scatter over fsdp
 *                                                                  (commit: non-blocking,
 *                                                                  overlapping the next
 *                                                                  layer's backward)
 *   embedding, final norm, lm_head all-gather (blocking)         reduce-scatter (blocking)
 *   copy to the tp region          identity                      all-reduce over tp
 *     (input of q/k/v, gate/up, lm_head: column-parallel products)
 *   reduce from the tp region      all-reduce over tp            identity
 *     (output of o, down: row-parallel products; the vocabulary-parallel embedding)
 *   vocabulary-parallel loss       max, sum, maxloc, sum over tp (its gradient is local)
 *   (sequence parallelism over tp: the two tp regions move rows, below)
 *   after the last micro-batch     -                             all-reduce over dp
 *
 * These are Megatron-LM's f and g operators; FSDP is ZeRO-3's gather-before-use.
 */
#ifndef BPT_SHARD_H
#define BPT_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* ---- holding ---------------------------------------------------------------------- */

/* t's tp-local shape, its fsdp shard's rows and elements, from its logical shape and
 * split, for a mesh of tp x fsdp. */
void bpt_shard_place(bpt_tensor *t, int tp, int fsdp);
/* The logical element index of element e of this rank's shard of t, or -1 for padding. */
int64_t bpt_shard_to_logical(const bpt_model *m, const bpt_tensor *t, size_t e);
/* (bpt_model_get, _set, _shard_slab, _shard_owner, _reduce_grads and _sumsq of model.h
 * are implemented in mesh/shard.c too: they are the holding, seen from outside.) */

/* ---- a layer's weights: gathered over fsdp before use ------------------------------ */

/* A layer's tp-local weights (or their gradients), by role. */
typedef struct bpt_layer_w { float *norm1, *wq, *wk, *wv, *wo, *norm2, *wg, *wu, *wd; } bpt_layer_w;

/* Where a step gathers its layers' weights. fp32: two gathered layers (the one in use
 * and the next one in flight) when fsdp > 1, nothing when fsdp == 1 (a shard is then the
 * whole tp-local layer). bf16: two gathered bf16 layers (one when fsdp == 1: nothing is
 * in flight) and the fp32 layer in use, widened from them. */
typedef struct bpt_layer_weights {
    float *w32[2];
    uint16_t *w16[2];
    float *cur;
    bpt_request req[2][BPT_T_PER_LAYER];
} bpt_layer_weights;

void bpt_weights_alloc(bpt_model *m, bpt_layer_weights *b);
/* Start the all-gather of layer l's weights (non-blocking, one per tensor). */
void bpt_weights_start(bpt_model *m, bpt_layer_weights *b, int l);
/* Layer l's weights, ready for the kernels (waits for its gather). */
bpt_layer_w bpt_weights_ready(bpt_model *m, bpt_layer_weights *b, int l);

/* ---- a layer's gradients: reduce-scattered over fsdp after its backward ------------- */

/* Where layer l's backward accumulates its gradients: the shards themselves when
 * fsdp == 1; else one of two full-layer buffers, whose reduce-scatter (non-blocking)
 * then overlaps the backward of the next layer down. The reduced shard is added to the
 * gradient buffer when the slot comes round again, or at bpt_grads_finish. */
typedef struct bpt_layer_grads {
    float *full[2];      /* a layer's full gradients */
    float *shard[2];     /* their reduce-scattered shard, until added to the grad buffer */
    int layer[2];        /* the layer whose reduce-scatter is in flight in the slot, or -1 */
    bpt_request req[2][BPT_T_PER_LAYER];
} bpt_layer_grads;

void bpt_grads_alloc(bpt_model *m, bpt_layer_grads *b, int train);
/* Where layer l's backward writes its (zeroed) gradients. */
bpt_layer_w bpt_grads_begin(bpt_model *m, bpt_layer_grads *b, int l);
/* Layer l's backward is done: start the reduce-scatter of its gradients. */
void bpt_grads_commit(bpt_model *m, bpt_layer_grads *b, int l);
/* Complete every reduce-scatter in flight and add the shards to the gradient buffer. */
void bpt_grads_finish(bpt_model *m, bpt_layer_grads *b);

/* ---- tensors outside the layers: embedding, final norm, lm_head -------------------- */

/* Tensor i gathered for use (in bf16: rounded, gathered as bf16 and widened, like a
 * layer); from the arena unless fsdp == 1 in fp32 (then the shard itself). */
float *bpt_tensor_fetch(bpt_model *m, int i, const char *what);
/* Where tensor i's full gradient accumulates (zeroed), and its reduce-scatter into the
 * shard's gradient once complete. */
float *bpt_tensor_grad_begin(bpt_model *m, int i, const char *what);
void bpt_tensor_grad_commit(bpt_model *m, int i, const float *full);

/* ---- tensor-parallel regions --------------------------------------------------------- */

/* Copy to the tp region: x (n floats) enters column-parallel products. Forward: every
 * tp rank already holds all of x. Backward: dx is this rank's partial sum (its heads,
 * its F or V slice): completed over tp. */
static inline void bpt_tp_copy_fwd(bpt_model *m, const float *x, size_t n) { (void)m; (void)x; (void)n; }
void bpt_tp_copy_bwd(bpt_model *m, float *dx, size_t n);

/* Reduce from the tp region: out (n floats) collects row-parallel products' partial
 * sums. Forward: bpt_tp_reduce_begin sets out = residual on tp rank 0 and zeros
 * elsewhere (out may be residual itself; residual NULL: zeros everywhere), the products
 * add in, bpt_tp_reduce_fwd completes the sum. Backward: dy is whole on every rank. */
void bpt_tp_reduce_begin(bpt_model *m, float *out, const float *residual, size_t n);
void bpt_tp_reduce_fwd(bpt_model *m, float *out, size_t n);
static inline void bpt_tp_reduce_bwd(bpt_model *m, const float *dy, size_t n) { (void)m; (void)dy; (void)n; }

/* ---- sequence parallelism over tp (llama.sequence_parallel) ------------------------- */

/* Megatron-LM's sequence parallelism: with it on (bpt_tp_seq), every (N, D) activation
 * outside the tp regions (the residual stream, the norms and their outputs, the loss's
 * input) holds on tp rank r only rows [r*N/tp, (r+1)*N/tp) of the micro-batch's N rows,
 * so it takes tp times less memory. The two region pairs above then move rows instead
 * of summing whole tensors, the same bytes as the all-reduce they replace:
 *
 *   what                            forward                      backward
 *   enter the tp region             all-gather the rows          reduce-scatter the rows
 *     (norm outputs into q/k/v, gate/up, lm_head; the embedding's gradient)
 *   leave the tp region             reduce-scatter the rows      all-gather the rows
 *     (o and down products, the vocabulary-parallel embedding)
 *
 * A replicated tensor's gradient (the norms') is then a partial sum over the rows of
 * each tp rank: bpt_model_reduce_grads completes it over tp. `local` is n = N/tp * D
 * floats, `full` tp * n. */
static inline int bpt_tp_seq(const bpt_model *m) { return m->tp > 1 && m->cfg.sequence_parallel; }
void bpt_sp_enter_fwd(bpt_model *m, float *full, const float *local, size_t n);
void bpt_sp_enter_bwd(bpt_model *m, float *dlocal, const float *dfull, size_t n);
void bpt_sp_leave_fwd(bpt_model *m, float *local, const float *full, size_t n);
void bpt_sp_leave_bwd(bpt_model *m, float *dfull, const float *dlocal, size_t n);

/* The vocabulary-parallel cross-entropy of `rows` rows of logits, each tp rank holding
 * its V/tp columns: the per-row maxima, target logits and argmax (value, global index)
 * of the slices become those of the whole vocabulary; then the sums of exp. Its
 * gradient is each rank's own slice: no backward collective. */
void bpt_tp_xent_stats(bpt_model *m, float *rmax, float *tlogit, float *amaxv, int32_t *amaxi, size_t rows);
void bpt_tp_xent_sumexp(bpt_model *m, float *sumexp, size_t rows);

#endif
