/* presets.c — named model shapes for load_llama_config.
 *
 * The reference's table (debug, 1b ... 65b) plus our small and benchmark shapes.
 * A preset sets the shape fields below; every other llama field keeps the default
 * (docs/config.md), exactly as the reference builds LLaMAConfig(**preset).
 */
#include <string.h>
#include <strings.h>

#include "bpt/config.h"

typedef struct preset {
    const char *name;
    int V, D, F, L, H, KVH;   /* vocab, hidden, ffn, layers, heads, kv heads (0 = H) */
    int max_seq;              /* max_sequence_length */
    double eps;               /* rms_norm_eps */
} preset;

static const preset presets[] = {
    /* the reference's presets */
    { "debug", 32000,  128,   256,  2,  4, 0, 2048, 1e-6 },
    { "1b",    32000, 2048,  5504, 22, 16, 0, 2048, 1e-6 },
    { "3b",    32000, 3200,  8640, 26, 32, 0, 2048, 1e-6 },
    { "7b",    32000, 4096, 11008, 32, 32, 0, 2048, 1e-6 },
    { "13b",   32000, 5120, 13824, 40, 40, 0, 2048, 1e-6 },
    { "30b",   32000, 6656, 17920, 60, 52, 0, 2048, 1e-6 },
    { "65b",   32000, 8192, 22016, 80, 64, 0, 2048, 1e-5 },
    /* ours: byte-level toy models and a long-context benchmark shape */
    { "tiny",       256,   64,   176,  2,  4, 2,     512, 1e-6 },
    { "demo",       256,  128,   352,  4,  4, 0,    1024, 1e-6 },
    { "bench512", 32000,  512,  1408,  8,  8, 0, 1048576, 1e-6 },
};

int bpt_llama_preset(bpt_llama_config *l, const char *name) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const preset *p = &presets[i];
        if (strcasecmp(p->name, name) != 0) continue;
        bpt_config d;                       /* the llama defaults come from the key table */
        bpt_config_defaults(&d);
        *l = d.llama;
        l->vocab_size = p->V;
        l->hidden_size = p->D;
        l->intermediate_size = p->F;
        l->num_hidden_layers = p->L;
        l->num_attention_heads = p->H;
        l->num_key_value_heads = p->KVH;
        l->max_sequence_length = p->max_seq;
        l->rms_norm_eps = p->eps;
        l->initializer_range = 0.02;
        l->tie_word_embeddings = 0;
        return 0;
    }
    return -1;
}

const char *bpt_llama_preset_names(void) {
    return "debug, 1b, 3b, 7b, 13b, 30b, 65b, tiny, demo, bench512";
}
