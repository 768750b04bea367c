/* hf_config.c — the config.json of a Hugging Face LlamaForCausalLM and the llama config
 * of bpt, both ways (docs/checkpoint-tools.md): written for ckpt export, read and
 * checked for ckpt import (what bpt cannot run — biases, another activation, rope
 * scaling — is an error naming the key), and the llama section an import prints as
 * YAML. Declared in src/ckpt_tools.h.
 */
#include "ckpt_tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bpt/util.h"

/* The fewest significant digits that read back as the same double. */
static int shortest_digits(double x) {
    char buf[64];
    for (int prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return prec;
    }
    return 17;
}

/* x in its shortest round-trip form: 1e-06, not 9.9999999999999995e-07. */
static void fmt_double(char *buf, size_t len, double x) {
    snprintf(buf, len, "%.*g", shortest_digits(x), x);
}

/* config.json of a Hugging Face LlamaForCausalLM with the dimensions of l. */
static json_t *hf_config_json(const bpt_llama_config *l) {
    json_t *o = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("LlamaForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "vocab_size", json_integer(l->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(l->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(l->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(l->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(l->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(bpt_kv_heads(l)));
    json_object_set_new(o, "head_dim", json_integer(bpt_head_dim(l)));
    json_object_set_new(o, "max_position_embeddings", json_integer(l->max_sequence_length));
    json_object_set_new(o, "rms_norm_eps", json_real(l->rms_norm_eps));
    json_object_set_new(o, "rope_theta", json_real(l->rope_theta));
    json_object_set_new(o, "rope_scaling", json_null());
    json_t *rope = json_object();                  /* the transformers >= 5 spelling */
    json_object_set_new(rope, "rope_type", json_string("default"));
    json_object_set_new(rope, "rope_theta", json_real(l->rope_theta));
    json_object_set_new(o, "rope_parameters", rope);
    json_object_set_new(o, "tie_word_embeddings", json_boolean(l->tie_word_embeddings));
    json_object_set_new(o, "bos_token_id", json_integer(l->bos_token_id));
    json_object_set_new(o, "eos_token_id", json_integer(l->eos_token_id));
    json_object_set_new(o, "initializer_range", json_real(l->initializer_range));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "pretraining_tp", json_integer(1));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    return o;
}

int hf_config_write(const bpt_llama_config *l, const char *out) {
    json_t *o = hf_config_json(l);
    char *tmp = ckpt_path_suffix(out, ".tmp");
    /* jansson prints every real with one precision: the fewest digits that keep all exact */
    int digits = shortest_digits(l->rms_norm_eps);
    if (shortest_digits(l->rope_theta) > digits) digits = shortest_digits(l->rope_theta);
    if (shortest_digits(l->initializer_range) > digits) digits = shortest_digits(l->initializer_range);
    int rc = json_dump_file(o, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(digits));
    json_decref(o);
    if (rc != 0) bpt_error(-1, "%s: cannot write the file: %s", tmp, bpt_write_failure(tmp));
    return ckpt_finish_file(tmp, out, rc == 0);
}


/* An integer field; missing -> def (or an error if required). */
static int json_int_field(const char *path, json_t *o, const char *key, int required, long long def,
                          long long *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return bpt_error(-1, "%s: missing %s", path, key);
        *out = def;
        return 0;
    }
    if (json_is_integer(v)) { *out = json_integer_value(v); return 0; }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    return bpt_error(-1, "%s: %s must be an integer", path, key);
}

static int json_num_field(const char *path, json_t *o, const char *key, double def, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_number(v)) return bpt_error(-1, "%s: %s must be a number", path, key);
    *out = json_number_value(v);
    return 0;
}

static int json_bool_field(const char *path, json_t *o, const char *key, int def, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) return bpt_error(-1, "%s: %s must be true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

/* A token id: an integer, the first of a list (Llama 3 lists several EOS ids), or
 * null/missing (-1: keep bpt's default). */
static int json_token_field(const char *path, json_t *o, const char *key, long long *out) {
    json_t *v = json_object_get(o, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!v || json_is_null(v)) { *out = -1; return 0; }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bpt_error(-1, "%s: %s must be a non-negative integer", path, key);
    *out = json_integer_value(v);
    return 0;
}

/* The rope section: only plain RoPE. rope_theta from the top level or from
 * rope_parameters (transformers >= 5). */
static int json_rope(const char *path, json_t *o, double *theta) {
    json_t *scaling = json_object_get(o, "rope_scaling");
    if (scaling && !json_is_null(scaling)) {
        json_t *type = json_object_get(scaling, "rope_type");
        if (!type) type = json_object_get(scaling, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "default") != 0)
            return bpt_error(-1, "%s: rope_scaling is not supported (bpt implements plain RoPE; expected null)", path);
    }
    if (json_num_field(path, o, "rope_theta", 10000.0, theta) != 0) return -1;
    json_t *params = json_object_get(o, "rope_parameters");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) return bpt_error(-1, "%s: rope_parameters must be an object", path);
        json_t *type = json_object_get(params, "rope_type");
        if (type && (!json_is_string(type) || strcmp(json_string_value(type), "default") != 0))
            return bpt_error(-1, "%s: rope_parameters.rope_type '%s' is not supported (bpt implements plain "
                              "RoPE; expected default)", path, json_is_string(type) ? json_string_value(type) : "?");
        json_t *th = json_object_get(params, "rope_theta");
        if (th && !json_is_number(th)) return bpt_error(-1, "%s: rope_parameters.rope_theta must be a number", path);
        if (th) *theta = json_number_value(th);
    }
    return 0;
}

/* One "key=value" of the config being built from config.json. */
typedef struct key_value { const char *key; char value[64]; } key_value;

static void kv_int(key_value *kv, int *n, const char *key, long long x) {
    kv[*n].key = key;
    snprintf(kv[*n].value, sizeof kv[*n].value, "%lld", x);
    (*n)++;
}

static void kv_double(key_value *kv, int *n, const char *key, double x) {
    kv[*n].key = key;
    fmt_double(kv[*n].value, sizeof kv[*n].value, x);
    (*n)++;
}

/* The bpt config of a Hugging Face config.json. */
int hf_config_read(const char *path, bpt_config *cfg) {
    json_error_t jerr;
    if (!ckpt_file_exists(path)) return bpt_error(-1, "%s: no such file", path);
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) return bpt_error(-1, "%s: bad JSON: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(o)) { json_decref(o); return bpt_error(-1, "%s: not a JSON object", path); }
    int rc = 0;
    json_t *mt = json_object_get(o, "model_type");
    json_t *act = json_object_get(o, "hidden_act");
    int abias = 0, mbias = 0;
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "llama") != 0))
        rc = bpt_error(-1, "%s: model_type '%s' is not supported (expected llama)", path,
                        json_is_string(mt) ? json_string_value(mt) : "?");
    if (rc == 0 && act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        rc = bpt_error(-1, "%s: hidden_act '%s' is not supported (bpt's feed-forward is SwiGLU: expected silu)", path,
                        json_is_string(act) ? json_string_value(act) : "?");
    if (rc == 0) rc = json_bool_field(path, o, "attention_bias", 0, &abias);
    if (rc == 0 && abias) rc = bpt_error(-1, "%s: attention_bias true is not supported (bpt's projections have no bias)", path);
    if (rc == 0) rc = json_bool_field(path, o, "mlp_bias", 0, &mbias);
    if (rc == 0 && mbias) rc = bpt_error(-1, "%s: mlp_bias true is not supported (bpt's projections have no bias)", path);

    long long V = 0, D = 0, F = 0, L = 0, H = 0, KVH = 0, maxpos = 0, bos = -1, eos = -1, hd = 0;
    double eps = 0, theta = 0, init = 0;
    int tie = 0;
    if (rc == 0) rc = json_int_field(path, o, "vocab_size", 1, 0, &V);
    if (rc == 0) rc = json_int_field(path, o, "hidden_size", 1, 0, &D);
    if (rc == 0) rc = json_int_field(path, o, "intermediate_size", 1, 0, &F);
    if (rc == 0) rc = json_int_field(path, o, "num_hidden_layers", 1, 0, &L);
    if (rc == 0) rc = json_int_field(path, o, "num_attention_heads", 1, 0, &H);
    if (rc == 0) rc = json_int_field(path, o, "num_key_value_heads", 0, H, &KVH);
    if (rc == 0) rc = json_int_field(path, o, "max_position_embeddings", 0, 2048, &maxpos);
    if (rc == 0) rc = json_num_field(path, o, "rms_norm_eps", 1e-6, &eps);
    if (rc == 0) rc = json_num_field(path, o, "initializer_range", 0.02, &init);
    if (rc == 0) rc = json_bool_field(path, o, "tie_word_embeddings", 0, &tie);
    if (rc == 0) rc = json_token_field(path, o, "bos_token_id", &bos);
    if (rc == 0) rc = json_token_field(path, o, "eos_token_id", &eos);
    if (rc == 0) rc = json_rope(path, o, &theta);
    if (rc == 0 && H > 0) rc = json_int_field(path, o, "head_dim", 0, D / H, &hd);
    if (rc == 0 && H > 0 && hd * H != D)
        rc = bpt_error(-1, "%s: head_dim %lld with %lld heads does not match hidden_size %lld (bpt needs "
                        "head_dim = hidden_size / num_attention_heads)", path, hd, H, D);
    json_decref(o);
    if (rc != 0) return -1;

    /* the bpt config: defaults, the llama.* keys, then validation */
    key_value kv[20];
    int n = 0;
    kv_int(kv, &n, "llama.vocab_size", V);
    kv_int(kv, &n, "llama.hidden_size", D);
    kv_int(kv, &n, "llama.intermediate_size", F);
    kv_int(kv, &n, "llama.num_hidden_layers", L);
    kv_int(kv, &n, "llama.num_attention_heads", H);
    kv_int(kv, &n, "llama.num_key_value_heads", KVH);
    kv_int(kv, &n, "llama.max_sequence_length", maxpos);
    kv_double(kv, &n, "llama.rms_norm_eps", eps);
    kv_double(kv, &n, "llama.rope_theta", theta);
    kv_double(kv, &n, "llama.initializer_range", init);
    kv_int(kv, &n, "llama.tie_word_embeddings", tie);
    if (bos >= 0) kv_int(kv, &n, "llama.bos_token_id", bos);
    if (eos >= 0) kv_int(kv, &n, "llama.eos_token_id", eos);
    /* the default sequence lengths must fit the RoPE table, or nothing validates */
    bpt_config_defaults(cfg);
    if (cfg->train_dataset.hdf5.seq_length > maxpos) {
        kv_int(kv, &n, "train_dataset.hdf5_dataset.seq_length", maxpos);
        kv_int(kv, &n, "train_dataset.text_dataset.seq_length", maxpos);
        kv_int(kv, &n, "eval_dataset.hdf5_dataset.seq_length", maxpos);
        kv_int(kv, &n, "eval_dataset.text_dataset.seq_length", maxpos);
    }
    char err[1024];
    for (int i = 0; i < n; i++)
        if (bpt_config_set(cfg, kv[i].key, kv[i].value, err, sizeof err) != 0)
            return bpt_error(-1, "%s: %s", path, err);
    if (bpt_config_finalize(cfg, err, sizeof err) != 0) return bpt_error(-1, "%s: %s", path, err);
    return 0;
}

/* The llama section a user needs to run the imported checkpoint, as YAML. */
void hf_print_llama_yaml(const char *dir, const char *out, const bpt_llama_config *l, size_t nparams) {
    char eps[64], theta[64], init[64];
    fmt_double(eps, sizeof eps, l->rms_norm_eps);
    fmt_double(theta, sizeof theta, l->rope_theta);
    fmt_double(init, sizeof init, l->initializer_range);
    printf("# %s -> %s: %zu parameters. The model config to use with it\n", dir, out, nparams);
    printf("# (put it in your --config YAML, with load_llama_config: ''):\n");
    printf("llama:\n");
    printf("  vocab_size: %d\n", l->vocab_size);
    printf("  hidden_size: %d\n", l->hidden_size);
    printf("  intermediate_size: %d\n", l->intermediate_size);
    printf("  num_hidden_layers: %d\n", l->num_hidden_layers);
    printf("  num_attention_heads: %d\n", l->num_attention_heads);
    printf("  num_key_value_heads: %d\n", bpt_kv_heads(l));
    printf("  max_sequence_length: %d\n", l->max_sequence_length);
    printf("  rms_norm_eps: %s\n", eps);
    printf("  rope_theta: %s\n", theta);
    printf("  tie_word_embeddings: %s\n", l->tie_word_embeddings ? "true" : "false");
    printf("  bos_token_id: %d\n", l->bos_token_id);
    printf("  eos_token_id: %d\n", l->eos_token_id);
    printf("  initializer_range: %s\n", init);
}
