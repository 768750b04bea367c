/* llama.h — the LLaMA tensor layout: which tensors a model config has, their Hugging
 * Face LlamaForCausalLM names and logical shapes, and how tensor parallelism splits
 * each. One table, used by the model (src/model.c), the checkpointer and the checkpoint
 * tools; the order is the model's buffer order:
 *   model.embed_tokens.weight                        [V, D]       column (V/tp rows)
 *   model.layers.{l}.input_layernorm.weight          [D]          replicated
 *   model.layers.{l}.self_attn.q_proj.weight         [H*Dh, D]    column (whole heads)
 *   model.layers.{l}.self_attn.k_proj.weight         [KVH*Dh, D]  column (whole kv heads)
 *   model.layers.{l}.self_attn.v_proj.weight         [KVH*Dh, D]  column
 *   model.layers.{l}.self_attn.o_proj.weight         [D, H*Dh]    row (input columns)
 *   model.layers.{l}.post_attention_layernorm.weight [D]          replicated
 *   model.layers.{l}.mlp.gate_proj.weight            [F, D]       column
 *   model.layers.{l}.mlp.up_proj.weight              [F, D]       column
 *   model.layers.{l}.mlp.down_proj.weight            [D, F]       row
 *   model.norm.weight                                [D]          replicated
 *   lm_head.weight                                   [V, D]       column (absent when tied)
 */
#ifndef BPT_LLAMA_H
#define BPT_LLAMA_H

#include <stdint.h>
#include "config.h"

/* How tensor parallelism splits a tensor: COL dim 0 over tp, ROW dim 1, REP not at all. */
typedef enum { BPT_SPLIT_REP = 0, BPT_SPLIT_COL, BPT_SPLIT_ROW } bpt_split;

/* The tensors of one decoder layer, in buffer order. */
enum { BPT_T_NORM1, BPT_T_Q, BPT_T_K, BPT_T_V, BPT_T_O, BPT_T_NORM2, BPT_T_GATE, BPT_T_UP, BPT_T_DOWN,
       BPT_T_PER_LAYER };

/* The index of tensor j (BPT_T_*) of layer l in the layout (the embedding is 0). */
static inline int bpt_llama_layer_tensor(int l, int j) { return 1 + l * BPT_T_PER_LAYER + j; }

typedef struct bpt_llama_tensor {
    char name[96];         /* Hugging Face name */
    int layer;             /* its decoder layer, -1 for embedding, final norm, lm_head */
    int ndim;              /* 1 or 2 */
    int64_t shape[2];      /* logical shape; shape[1] = 1 when 1-D */
    bpt_split split;
} bpt_llama_tensor;

/* The tensors of config l in the order above: their number, the array (malloc'd) in *out. */
int bpt_llama_tensors(const bpt_llama_config *l, bpt_llama_tensor **out);

#endif
