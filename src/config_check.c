/* config_check.c — the model config assembled (preset, explicit llama.* keys,
 * update_llama_config) and everything validated: bpt_config_finalize. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "bpt/config.h"
#include "bpt/util.h"
#include "config_internal.h"

/* ---- assembling the model config ------------------------------------------------------------ */

static const keydef *cfg_find_llama_field(const char *field) {
    char full[sizeof LLAMA + 256];
    snprintf(full, sizeof full, LLAMA "%s", field);
    const keydef *k = cfg_find_key(full);
    return k && cfg_is_llama(k) ? k : NULL;
}

/* Apply one update_llama_config entry. */
static int update_field(bpt_config *c, const char *field, const char *value, char *err, size_t n) {
    const keydef *k = cfg_find_llama_field(field);
    if (!k) {
        const char *cand[CFG_MAX_KEYS];
        int nc = 0;
        for (int i = 0; i < cfg_nkeys; i++)
            if (cfg_is_llama(&cfg_keys[i])) cand[nc++] = cfg_keys[i].name + strlen(LLAMA);
        const char *best = cfg_closest(field, cand, nc);
        if (best)
            return bpt_err(err, n, "unknown llama field '%s' in update_llama_config (did you mean '%s'?)", field, best);
        return bpt_err(err, n, "unknown llama field '%s' in update_llama_config", field);
    }
    if (cfg_set_value(c, k, value, 1, err, n) != 0) return cfg_prefix_err(err, n, "update_llama_config");
    return 0;
}

/* dict(a=1, b='x', c=True) */
static int apply_update_dict(bpt_config *c, const char *s, char *err, size_t n) {
    const char *p = s + 5;
    const char *shown = c->update_llama_config;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == ')') break;
        char name[128], value[BPT_STR];
        size_t len = 0;
        while ((isalnum((unsigned char)*p) || *p == '_') && len + 1 < sizeof name) name[len++] = *p++;
        name[len] = 0;
        while (isspace((unsigned char)*p)) p++;
        if (!len || *p != '=')
            return bpt_err(err, n, "bad value for update_llama_config: '%.200s' (expected dict(name=value, ...))", shown);
        p++;
        while (isspace((unsigned char)*p)) p++;
        len = 0;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q && len + 1 < sizeof value) value[len++] = *p++;
            if (*p != q)
                return bpt_err(err, n, "bad value for update_llama_config: '%.200s' (unterminated string)", shown);
            p++;
        } else {
            while (*p && *p != ',' && *p != ')' && len + 1 < sizeof value) value[len++] = *p++;
            while (len > 0 && isspace((unsigned char)value[len - 1])) len--;
        }
        value[len] = 0;
        if (update_field(c, name, value, err, n) != 0) return -1;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') { p++; continue; }
        if (*p == ')') break;
        return bpt_err(err, n, "bad value for update_llama_config: '%.200s' (expected ',' or ')' in dict(...))", shown);
    }
    p++;
    while (isspace((unsigned char)*p)) p++;
    if (*p) return bpt_err(err, n, "bad value for update_llama_config: '%.200s' (text after dict(...))", shown);
    return 0;
}

/* {a: 1, b: x} (any YAML mapping of scalars) */
static int apply_update_yaml(bpt_config *c, const char *s, char *err, size_t n) {
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)s, strlen(s));
    int rc = 0;
    if (!yaml_parser_load(&p, &doc)) {
        rc = bpt_err(err, n, "bad value for update_llama_config: '%.200s' (YAML error at column %zu: %s)", s,
                  p.problem_mark.column + 1, p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = bpt_err(err, n, "bad value for update_llama_config: '%.200s' (expected a mapping like "
                  "{max_sequence_length: 4096} or dict(max_sequence_length=4096))", s);
    } else {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; rc == 0 && pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
            if (kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE)
                rc = bpt_err(err, n, "bad value for update_llama_config: '%.200s' (expected name: value pairs)", s);
            else
                rc = update_field(c, (const char *)kn->data.scalar.value, cfg_scalar_text(vn), err, n);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return rc;
}

static int cfg_apply_update(bpt_config *c, char *err, size_t n) {
    char s[sizeof c->update_llama_config];
    cfg_trim(c->update_llama_config, s, sizeof s);
    if (!s[0]) return 0;
    if (strncmp(s, "dict(", 5) == 0) return apply_update_dict(c, s, err, n);
    return apply_update_yaml(c, s, err, n);
}

/* The llama.* keys of c->llama_set take their values from before the preset (kept). */
static void cfg_apply_explicit(bpt_config *c, const bpt_llama_config *kept) {
    for (int i = 0; i < cfg_nkeys; i++) {
        if (!(c->llama_set[i / 64] >> (i % 64) & 1)) continue;
        size_t off = cfg_keys[i].off - offsetof(bpt_config, llama);
        memcpy((char *)&c->llama + off, (const char *)kept + off, cfg_keys[i].size);
    }
}

/* ---- validation ------------------------------------------------------------------------------- */

/* Re-check the current value of every key (fields may have been edited directly). */
static int cfg_check_keys(const bpt_config *c, int llama, char *err, size_t n) {
    for (int i = 0; i < cfg_nkeys; i++) {
        const keydef *k = &cfg_keys[i];
        if ((k->flags & F_IGN) || cfg_is_llama(k) != llama) continue;
        char v[4 * BPT_STR + 64];
        cfg_fmt_value(c, k, v, sizeof v);
        if (cfg_set_value((bpt_config *)c, k, v, 0, err, n) != 0) return -1;
    }
    return 0;
}

static int cfg_check_model(const bpt_config *c, char *err, size_t n) {
    const bpt_llama_config *l = &c->llama;
    int H = l->num_attention_heads, KVH = bpt_kv_heads(l);
    if (l->hidden_size % H != 0)
        return bpt_err(err, n, "llama.hidden_size (%d) must be divisible by llama.num_attention_heads (%d)",
                    l->hidden_size, H);
    if (bpt_head_dim(l) % 2 != 0)
        return bpt_err(err, n, "head dim llama.hidden_size / llama.num_attention_heads = %d / %d = %d must be even "
                    "(RoPE rotates pairs)", l->hidden_size, H, bpt_head_dim(l));
    if (H % KVH != 0)
        return bpt_err(err, n, "llama.num_attention_heads (%d) must be divisible by llama.num_key_value_heads (%d)",
                    H, KVH);
    if (l->bos_token_id >= l->vocab_size)
        return bpt_err(err, n, "llama.bos_token_id (%d) must be < llama.vocab_size (%d)", l->bos_token_id, l->vocab_size);
    if (l->eos_token_id >= l->vocab_size)
        return bpt_err(err, n, "llama.eos_token_id (%d) must be < llama.vocab_size (%d)", l->eos_token_id, l->vocab_size);
    static const char *drop[] = { "resid_pdrop", "embd_pdrop", "attn_pdrop", "fcm_min_ratio", "fcm_max_ratio" };
    const double vals[] = { l->resid_pdrop, l->embd_pdrop, l->attn_pdrop, l->fcm_min_ratio, l->fcm_max_ratio };
    for (int i = 0; i < 5; i++)
        if (vals[i] != 0)
            return bpt_err(err, n, "llama.%s = %g: %s is not supported (must be 0)", drop[i], vals[i],
                        i < 3 ? "dropout" : "the forgetful causal mask");
    if (c->optimizer.adamw.bf16_momentum)
        return bpt_err(err, n, "optimizer.adamw_optimizer.bf16_momentum = true is not supported (must be false)");
    if (c->optimizer.adamw.multiply_by_parameter_scale)
        return bpt_err(err, n, "optimizer.adamw_optimizer.multiply_by_parameter_scale = true is not supported "
                    "(must be false)");
    return 0;
}

/* Chunk check: the chunk, clamped to T, must divide T. */
static int check_chunk(int T, const char *tkey, int chunk, const char *ckey, const char *flag,
                       char *err, size_t n) {
    int eff = chunk < T ? chunk : T;
    if (T % eff != 0)
        return bpt_err(err, n, "%s (%d) must be divisible by llama.%s (%d) when llama.%s is true",
                    tkey, T, ckey, chunk, flag);
    return 0;
}

static int cfg_check_dataset(const bpt_config *c, const bpt_dataset_config *d, const char *name,
                         char *err, size_t n) {
    const bpt_llama_config *l = &c->llama;
    const bpt_source_config *s = bpt_dataset_source(d);
    char tkey[128];
    snprintf(tkey, sizeof tkey, "%s.%s_dataset.seq_length", name, s == &d->hdf5 ? "hdf5" : "text");
    int T = s->seq_length;
    if (T > l->max_sequence_length)
        return bpt_err(err, n, "%s (%d) exceeds llama.max_sequence_length (%d): the RoPE table would not cover "
                    "every position; raise llama.max_sequence_length", tkey, T, l->max_sequence_length);
    if (l->scan_attention) {
        if (check_chunk(T, tkey, l->scan_query_chunk_size, "scan_query_chunk_size", "scan_attention", err, n) ||
            check_chunk(T, tkey, l->scan_key_chunk_size, "scan_key_chunk_size", "scan_attention", err, n))
            return -1;
    }
    if (l->scan_mlp && check_chunk(T, tkey, l->scan_mlp_chunk_size, "scan_mlp_chunk_size", "scan_mlp", err, n))
        return -1;
    if (l->scan_loss && check_chunk(T, tkey, l->scan_loss_chunk_size, "scan_loss_chunk_size", "scan_loss", err, n))
        return -1;
    if (d->type == BPT_DATA_TEXT && l->vocab_size < 256)
        return bpt_err(err, n, "llama.vocab_size (%d) is smaller than the byte-level tokenizer's 256 tokens "
                    "(%s.type is text)", l->vocab_size, name);
    return 0;
}

int bpt_config_finalize(bpt_config *c, char *err, size_t errlen) {
    if (cfg_check_keys(c, 0, err, errlen) != 0) return -1;
    /* a. the preset replaces the whole model config; without one, the llama.* values stand */
    bpt_llama_config kept = c->llama;
    if (c->load_llama_config[0] && bpt_llama_preset(&c->llama, c->load_llama_config) != 0)
        return bpt_err(err, errlen, "unknown preset '%s' for load_llama_config (valid: %s)",
                    c->load_llama_config, bpt_llama_preset_names());
    /* b. explicit llama.* keys; c. update_llama_config */
    cfg_apply_explicit(c, &kept);
    if (cfg_apply_update(c, err, errlen) != 0) return -1;
    if (cfg_check_keys(c, 1, err, errlen) != 0) return -1;
    if (cfg_check_model(c, err, errlen) != 0) return -1;
    if (!c->eval_only && cfg_check_dataset(c, &c->train_dataset, "train_dataset", err, errlen) != 0) return -1;
    if ((c->eval_steps > 0 || c->eval_only) && cfg_check_dataset(c, &c->eval_dataset, "eval_dataset", err, errlen) != 0)
        return -1;
    return 0;
}

