/* model.h — the LLaMA model: parameters, blockwise forward and backward.
 *
 * Parameters live in one flat fp32 buffer (backend memory), a table of named tensors
 * pointing into it. Names and shapes are Hugging Face LlamaForCausalLM's:
 *   model.embed_tokens.weight                      [V, D]
 *   model.layers.{l}.input_layernorm.weight        [D]
 *   model.layers.{l}.self_attn.q_proj.weight       [H*Dh, D]
 *   model.layers.{l}.self_attn.k_proj.weight       [KVH*Dh, D]
 *   model.layers.{l}.self_attn.v_proj.weight       [KVH*Dh, D]
 *   model.layers.{l}.self_attn.o_proj.weight       [D, H*Dh]
 *   model.layers.{l}.post_attention_layernorm.weight [D]
 *   model.layers.{l}.mlp.gate_proj.weight          [F, D]
 *   model.layers.{l}.mlp.up_proj.weight            [F, D]
 *   model.layers.{l}.mlp.down_proj.weight          [D, F]
 *   model.norm.weight                              [D]
 *   lm_head.weight                                 [V, D]   (absent when tied)
 * A layer's tensors are contiguous in the buffer, in the order above. Gradients and
 * the AdamW moments mirror the parameter buffer element for element.
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
#include "arena.h"

typedef struct bpt_tensor {
    char name[96];
    int ndim;              /* 1 or 2 */
    int64_t shape[2];      /* Hugging Face shape */
    size_t offset;         /* element offset in the flat buffers */
    size_t numel;
    int layer;             /* -1 for embedding, final norm, lm_head */
    int decay;             /* 1: AdamW weight decay applies (matrices and embeddings) */
} bpt_tensor;

typedef enum { BPT_BUF_PARAM = 0, BPT_BUF_GRAD, BPT_BUF_M, BPT_BUF_V } bpt_buf;

typedef struct bpt_model {
    bpt_llama_config cfg;
    int B, T;                       /* micro-batch rows on this rank, sequence length */
    const bpt_kernels *k;
    bpt_arena *arena;
    bpt_tensor *tensors;
    int ntensors;
    size_t nparams;                 /* total elements */
    float *buf[4];                  /* params, grads, m, v: backend memory */
    float *rope_cos, *rope_sin;     /* (max_sequence_length, Dh/2) */
    int32_t *d_tokens;              /* (2, B*T): inputs, targets, backend memory */
    float *d_mask;                  /* (B*T) */
    double *d_stats;                /* (4) backend scratch for reductions */
} bpt_model;

/* Lay out the tensors and take params, grads and moments from the arena
 * (moments only if with_optimizer). Weights are not initialised. */
bpt_model *bpt_model_create(const bpt_llama_config *cfg, const bpt_kernels *k, bpt_arena *a,
                            int B, int T, int with_optimizer);
void bpt_model_free(bpt_model *m);

/* Initialise weights: normal(0, initializer_range) for matrices and embeddings,
 * 1 for norms, from the counter-based generator keyed by (seed, name, index). */
void bpt_model_init_weights(bpt_model *m, uint64_t seed);

/* Index of the tensor called name, or -1. */
int bpt_model_find(const bpt_model *m, const char *name);
/* Copy tensor i of buffer which to / from host memory (numel floats). */
void bpt_model_get(const bpt_model *m, bpt_buf which, int i, float *host);
void bpt_model_set(bpt_model *m, bpt_buf which, int i, const float *host);

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
/* Sum of squares of a whole buffer (double). */
double bpt_model_sumsq(const bpt_model *m, bpt_buf which);

/* Parameter counts. */
size_t bpt_llama_num_params(const bpt_llama_config *cfg);
/* Training FLOPs per token: 6*N + 12*L*D*T (N = parameter count). */
double bpt_llama_flops_per_token(const bpt_llama_config *cfg, int T);

#endif
