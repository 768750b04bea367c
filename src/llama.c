/* llama.c — the LLaMA tensor layout (include/bpt/llama.h). */
#include "bpt/llama.h"
#include "bpt/util.h"

#include <stdio.h>

static const char *const layer_names[BPT_T_PER_LAYER] = {
    "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
    "mlp.down_proj",
};
static const bpt_split layer_split[BPT_T_PER_LAYER] = {
    BPT_SPLIT_REP, BPT_SPLIT_COL, BPT_SPLIT_COL, BPT_SPLIT_COL, BPT_SPLIT_ROW,
    BPT_SPLIT_REP, BPT_SPLIT_COL, BPT_SPLIT_COL, BPT_SPLIT_ROW,
};

static void add(bpt_llama_tensor *t, int *n, const char *name, int layer, int64_t d0, int64_t d1, bpt_split s) {
    bpt_llama_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->layer = layer;
    x->ndim = d1 ? 2 : 1;
    x->shape[0] = d0;
    x->shape[1] = d1 ? d1 : 1;
    x->split = s;
}

int bpt_llama_tensors(const bpt_llama_config *c, bpt_llama_tensor **out) {
    int64_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t Dh = bpt_head_dim(c), qd = (int64_t)c->num_attention_heads * Dh, kvd = (int64_t)bpt_kv_heads(c) * Dh;
    int L = c->num_hidden_layers, n = 0;
    bpt_llama_tensor *t = bpt_xcalloc((size_t)L * BPT_T_PER_LAYER + 3, sizeof *t);
    add(t, &n, "model.embed_tokens.weight", -1, V, D, BPT_SPLIT_COL);
    for (int l = 0; l < L; l++) {
        const int64_t shapes[BPT_T_PER_LAYER][2] = {
            {D, 0}, {qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {D, 0}, {F, D}, {F, D}, {D, F},
        };
        for (int j = 0; j < BPT_T_PER_LAYER; j++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, layer_names[j]);
            add(t, &n, name, l, shapes[j][0], shapes[j][1], layer_split[j]);
        }
    }
    add(t, &n, "model.norm.weight", -1, D, 0, BPT_SPLIT_REP);
    if (!c->tie_word_embeddings) add(t, &n, "lm_head.weight", -1, V, D, BPT_SPLIT_COL);
    *out = t;
    return n;
}
