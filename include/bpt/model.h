/* model.h — the LLaMA model: parameters, blockwise forward and backward.
 *
 * Parameters live in one flat fp32 buffer (backend memory), a table of named tensors
 * pointing into it: the tensors of the LLaMA layout (llama.h: Hugging Face names and
 * shapes), in its order. A layer's tensors are contiguous in the buffer. Gradients and
 * the AdamW moments mirror the parameter buffer element for element.
 *
 * Sharding over the mesh (docs/mesh.md). Tensor parallelism splits each tensor along
 * one dimension: q/k/v, gate/up, the embedding and lm_head by output rows (column
 * parallel: whole heads, whole kv heads, F/tp, V/tp), o and down by input columns (row
 * parallel); norms are replicated. FSDP then splits the tp-local piece along dim 0 into
 * fsdp shards of ceil(rows/fsdp) rows (the last padded with zeros), so every shard is a
 * plain hyperslab of the logical tensor. The flat buffers hold this rank's shards only.
 * A layer's weights are all-gathered over fsdp just before use (the next layer's gather
 * is started early, non-blocking; the backward starts with the last layer, whose
 * weights are still at hand) and its gradients reduce-scattered right after its
 * backward (non-blocking, overlapping the next layer's backward; two full-gradient
 * buffers take turns); the model knows the mesh only through this plan and its bpt_comm.
 *
 * A training step is bpt_model_forward_backward per micro-batch (gradients
 * accumulate) and one bpt_optim_step. What the forward keeps for the backward is
 * decided by the remat policies and nothing else (see docs/design.md).
 */
#ifndef BPT_MODEL_H
#define BPT_MODEL_H

#include <stdint.h>
#include <stddef.h>
#include "config.h"
#include "llama.h"
#include "arena.h"
#include "comm.h"

typedef struct bpt_tensor {
    char name[96];
    int ndim;              /* 1 or 2 */
    int64_t shape[2];      /* Hugging Face (logical) shape; shape[1] = 1 when 1-D */
    bpt_split split;       /* COL: dim 0 over tp, ROW: dim 1 over tp, REP: replicated */
    int64_t local[2];      /* tp-local shape */
    int64_t rows;          /* rows of this rank's fsdp shard (padded): ceil(local[0]/fsdp) */
    size_t offset;         /* element offset of the shard in the flat buffers */
    size_t numel;          /* shard elements: rows * local[1] */
    size_t full_offset;    /* offset of the gathered, padded tp-local tensor in its group */
    int layer;             /* -1 for embedding, final norm, lm_head */
    int decay;             /* 1: AdamW weight decay applies (matrices and embeddings) */
} bpt_tensor;

typedef enum { BPT_BUF_PARAM = 0, BPT_BUF_GRAD, BPT_BUF_M, BPT_BUF_V } bpt_buf;

typedef struct bpt_model {
    bpt_llama_config cfg;
    int B, T;                       /* micro-batch rows on this rank, sequence length */
    const bpt_kernels *k;
    bpt_arena *arena;
    bpt_comm *comm;                 /* collectives of the mesh (a one-rank comm if none given) */
    int tp, tp_rank, fsdp, fsdp_rank, dp_rank;
    bpt_tensor *tensors;
    int ntensors;
    size_t nparams;                 /* elements of this rank's shards */
    size_t layer_full;              /* elements of one gathered layer */
    float *buf[4];                  /* params, grads, m, v: backend memory */
    float *rope_cos, *rope_sin;     /* (max_sequence_length, Dh/2) */
    int32_t *d_tokens;              /* (2, B*T): inputs, targets, backend memory */
    float *d_mask;                  /* (B*T) */
    double *d_stats;                /* (4) backend scratch for reductions */
    bpt_comm own_comm;              /* used when bpt_model_create got comm == NULL */
    size_t kept_bytes;              /* arena bytes the last training forward kept */
    int bf16_weights;               /* compute copies of the weights in bf16 (bpt_model_set_dtype) */
} bpt_model;

/* Lay out the tensors and take params, grads and moments from the arena
 * (moments only if with_optimizer). Weights are not initialised. comm gives the tp and
 * fsdp sizes and ranks (NULL: one rank). B is this rank's micro-batch rows. */
bpt_model *bpt_model_create(const bpt_llama_config *cfg, const bpt_kernels *k, bpt_arena *a,
                            int B, int T, int with_optimizer, bpt_comm *comm);
void bpt_model_free(bpt_model *m);

/* The compute dtype (the config's `dtype`): "fp32" (the default) computes with the fp32
 * master weights; "bf16" with bf16 compute copies of them, made for each use: each rank
 * rounds its shard to bf16, the FSDP all-gather moves bf16 (half the bytes), and the
 * gathered weights are widened to fp32 for the kernels, so every backend multiplies by
 * exactly the bf16 values. Master weights, gradients (and their reduce-scatter) and the
 * optimizer stay fp32. The result is independent of the mesh. */
void bpt_model_set_dtype(bpt_model *m, bpt_dtype dtype);

/* Initialise weights: normal(0, initializer_range) for matrices and embeddings,
 * 1 for norms, from the counter-based generator keyed by (seed, name, index). */
void bpt_model_init_weights(bpt_model *m, uint64_t seed);

/* Index of the tensor called name, or -1. */
int bpt_model_find(const bpt_model *m, const char *name);
/* Elements of the logical tensor i. */
size_t bpt_tensor_logical_numel(const bpt_tensor *t);
/* Copy the whole logical tensor i of buffer which to host memory (shape[0]*shape[1]
 * floats). Collective over tp and fsdp: every rank of the mesh must call it. */
void bpt_model_get(const bpt_model *m, bpt_buf which, int i, float *host);
/* Take this rank's shard of tensor i from the whole logical tensor in host memory. */
void bpt_model_set(bpt_model *m, bpt_buf which, int i, const float *host);
/* This rank's shard of tensor i in buffer which (backend memory, numel elements). */
float *bpt_model_shard(const bpt_model *m, bpt_buf which, int i);
/* The shard's valid rows as a hyperslab of the logical tensor: rows [start[0],
 * start[0]+count[0]), columns [start[1], start[1]+count[1]); they are the first
 * count[0] rows of the shard. count[0] is 0 for an all-padding shard. */
void bpt_model_shard_slab(const bpt_model *m, int i, int64_t start[2], int64_t count[2]);
/* 1 if this rank holds the copy of tensor i's shard that is saved: dp rank 0, and tp
 * rank 0 for tensors replicated over tp. */
int bpt_model_shard_owner(const bpt_model *m, int i);

/* One micro-batch: inputs, targets (B,T) token ids and mask (B,T) in host memory.
 * Forward, blockwise loss and backward; gradients are ADDED to the grad buffer,
 * with the loss scaled by `scale` (1 / total unmasked targets of the global batch).
 * out[0] += masked NLL sum, out[1] += correct predictions (unscaled). */
void bpt_model_forward_backward(bpt_model *m, const int32_t *inputs, const int32_t *targets,
                                const float *mask, float scale, double out[2]);
/* Forward and loss only (evaluation); out as above. */
void bpt_model_forward(bpt_model *m, const int32_t *inputs, const int32_t *targets,
                       const float *mask, double out[2]);

void bpt_model_zero_grad(bpt_model *m);
/* All-reduce the gradient shards over dp (after the last micro-batch of a step); under
 * sequence parallelism over tp, first the replicated tensors' over tp (shard.h). */
void bpt_model_reduce_grads(bpt_model *m);
/* Squared global L2 norm of the logical tensors of buffer which: shards summed over
 * fsdp and tp, replicated tensors counted once. Identical on every rank. */
double bpt_model_sumsq(const bpt_model *m, bpt_buf which);

/* Parameter counts. */
size_t bpt_llama_num_params(const bpt_llama_config *cfg);
/* Training FLOPs per token: 6*N + 12*L*D*T (N = parameter count). */
double bpt_llama_flops_per_token(const bpt_llama_config *cfg, int T);

#endif
