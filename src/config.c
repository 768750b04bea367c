/* config.c — experiment configuration: the key table, defaults, values, the command line.
 * The YAML side is config_yaml.c, the assembly and validation of the model config
 * config_check.c; what they share of this file is src/config_internal.h.
 *
 * One table (cfg_keys[] below) drives everything: each entry is a dotted key name, its
 * kind, where it lives in struct bpt_config, its default text, its range or choices
 * and a one-line help. Parsing, printing (bpt_config_to_yaml), the per-key checks in
 * bpt_config_finalize and docs/config.md all follow the table.
 *
 * Values always travel as text: the YAML loader flattens nested mappings into dotted
 * keys and hands scalars to the same setter the command line uses.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* strtok_r, strcasecmp, mkstemp under -std=c11 */
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

/* ---- errors -------------------------------------------------------------------- */

/* Format a one-line message into err (control characters become spaces). Returns -1. */

/* Prefix an existing message in err with "where: ". */
int cfg_prefix_err(char *err, size_t n, const char *where) {
    if (!err || n == 0) return -1;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", err);
    return bpt_err(err, n, "%s: %s", where, tmp);
}

/* ---- the key table ----------------------------------------------------------------- */


static int check_mesh_dim(const char *v, char *why, size_t n);
static int check_dtype(const char *v, char *why, size_t n);
static int check_optimizer(const char *v, char *why, size_t n);
static int check_preset(const char *v, char *why, size_t n);

#define F(m) .off = offsetof(bpt_config, m), .size = sizeof(((bpt_config *)0)->m)
#define IGN .off = 0, .size = 0, .flags = F_IGN
#define NONNEG .flags = F_MIN, .lo = 0
#define POS .flags = F_MIN, .lo = 1
#define FPOS .flags = F_MIN | F_GT, .lo = 0
#define PROB .flags = F_MIN | F_MAX | F_LT, .lo = 0, .hi = 1

#define SOURCE_KEYS(P, M)                                                                   \
    { P ".path", K_STR, F(M.path), "", .help = "file to read" },                            \
    { P ".seq_length", K_INT, F(M.seq_length), "1024", POS,                                 \
      .help = "tokens per row (T); must be <= llama.max_sequence_length" },                 \
    { P ".batch_size", K_INT, F(M.batch_size), "8", POS,                                    \
      .help = "rows per global batch, split over the dp x fsdp ranks" }

#define DATASET_KEYS(P, M)                                                                  \
    { P ".type", K_ENUM, F(M.type), "hdf5", .choices = "hdf5|text|json",                    \
      .help = "hdf5: prepared token file; text: plain text or JSONL tokenized at open; "     \
              "json: JSONL streamed and tokenized on the fly (json_dataset.* = text_dataset.*)" }, \
    SOURCE_KEYS(P ".hdf5_dataset", M.hdf5),                                                 \
    { P ".shuffle", K_BOOL, F(M.shuffle), "false",                                          \
      .help = "read sequence windows in a seeded permuted order, a new one each epoch" },   \
    { P ".shuffle_seed", K_I64, F(M.shuffle_seed), "0", NONNEG,                           \
      .help = "seed of the window permutation (0: the top-level seed)" },                  \
    { P ".weights", K_STR, F(M.weights), "",                                                \
      .help = "sampling weights of the comma-separated files in path ('' = equal)" },      \
    SOURCE_KEYS(P ".text_dataset", M.text),                                                 \
    { P ".text_dataset.tokenizer_processes", K_INT, F(M.tokenizer_processes), "1", POS,     \
      .help = "threads tokenizing a streamed json dataset" },                               \
    { P ".text_processor.fields", K_STR, F(M.fields), "text", F_LIST,                       \
      .help = "JSONL keys concatenated per line (comma list)" },                            \
    { P ".text_processor.add_bos_token", K_BOOL, F(M.add_bos_token), "false",               \
      .help = "put llama.bos_token_id before each JSONL document" },                        \
    { P ".text_processor.add_eos_token", K_BOOL, F(M.add_eos_token), "false",               \
      .help = "put llama.eos_token_id after each JSONL document" },                         \
    { P ".text_processor.subfield_separator", K_STR, F(M.subfield_separator), " ",          \
      .help = "joins the subfields of a+b" },                                               \
    { P ".text_processor.prepend_text", K_STR, F(M.prepend_text), "",                       \
      .help = "text put before the first field of each document" },                         \
    { P ".text_processor.fields_from_example", K_STR, F(M.fields_from_example), "",         \
      .help = "a key whose string value lists that line's fields (instead of fields)" }

#define REMAT_HELP "'' (no remat) or a policy name"

const keydef cfg_keys[] = {
    /* top level */
    { "seed", K_I64, F(seed), "42", NONNEG, .help = "random seed (weights, data order)" },
    { "mesh_dim", K_STR, F(mesh_dim), "1,-1,1", F_LIST, .check = check_mesh_dim,
      .help = "dp,fsdp,tp[,sp] mesh (one may be -1), or dp:1,fsdp:-1,tp:1[,sp:4]" },
    { "dtype", K_ENUM, F(dtype), "bf16", .choices = "fp32|float32>fp32|bf16|bfloat16>bf16",
      .check = check_dtype, .help = "compute dtype; master weights are always fp32" },
    { "device", K_ENUM, F(device), "cpu", .choices = "cpu|cuda", .help = "compute backend" },
    { "total_steps", K_I64, F(total_steps), "10000", NONNEG,
      .help = "train steps start_step ... total_steps-1" },
    { "log_freq", K_I64, F(log_freq), "50", POS, .help = "log (and eval) every N steps" },
    { "save_model_freq", K_I64, F(save_model_freq), "0", NONNEG,
      .help = ">0: save the latest checkpoint every N steps and at the end" },
    { "save_milestone_freq", K_I64, F(save_milestone_freq), "0", NONNEG,
      .help = ">0: keep a step-numbered checkpoint every N steps" },
    { "eval_steps", K_I64, F(eval_steps), "0", NONNEG, .help = "eval batches per log step (0 = no eval)" },
    { "load_llama_config", K_STR, F(load_llama_config), "", .check = check_preset,
      .help = "model preset name ('' = the llama.* keys alone)" },
    { "update_llama_config", K_STR, F(update_llama_config), "",
      .help = "llama field overrides: {a: 1} or dict(a=1)" },
    { "load_checkpoint", K_STR, F(load_checkpoint), "", .help = "checkpoint to start from" },
    { "load_dataset_state", K_STR, F(load_dataset_state), "", .help = "saved loader state" },
    { "autoresume", K_BOOL, F(autoresume), "false",
      .help = "resume from the latest complete checkpoint in logger.output_dir" },
    { "log_all_worker", K_BOOL, F(log_all_worker), "false", .help = "log from every rank" },
    { "peak_flops", K_F64, F(peak_flops), "0", NONNEG, .help = "per-rank peak FLOP/s for MFU (0 = measure at start)" },
    { "arena_bytes", K_BYTES, F(arena_bytes), "0", NONNEG,
      .help = "per-rank arena size (0 = exactly the planned peak)" },
    { "num_threads", K_INT, F(num_threads), "0", NONNEG,
      .help = "OpenMP threads per rank (0 = OpenMP's default)" },
    { "comm_timeout_s", K_F64, F(comm_timeout_s), "600", NONNEG,
      .help = "a collective waiting longer than this aborts the job with a message naming it (0 = never)" },

    /* llama.* */
    { "llama.vocab_size", K_INT, F(llama.vocab_size), "32000", POS, .help = "V" },
    { "llama.hidden_size", K_INT, F(llama.hidden_size), "4096", POS, .help = "D" },
    { "llama.intermediate_size", K_INT, F(llama.intermediate_size), "11008", POS,
      .help = "F, SwiGLU width" },
    { "llama.num_hidden_layers", K_INT, F(llama.num_hidden_layers), "32", POS, .help = "L" },
    { "llama.num_attention_heads", K_INT, F(llama.num_attention_heads), "32", POS,
      .help = "H; head dim D/H must be even" },
    { "llama.num_key_value_heads", K_INT, F(llama.num_key_value_heads), "0", NONNEG,
      .help = "KVH for grouped-query attention (0 = H)" },
    { "llama.max_sequence_length", K_INT, F(llama.max_sequence_length), "2048", POS,
      .help = "RoPE table length; must be >= every seq_length" },
    { "llama.rms_norm_eps", K_F64, F(llama.rms_norm_eps), "1e-6", FPOS, .help = "RMSNorm epsilon" },
    { "llama.initializer_range", K_F64, F(llama.initializer_range), "0.02", NONNEG,
      .help = "std of the normal init of matrices and embeddings" },
    { "llama.rope_theta", K_F64, F(llama.rope_theta), "10000", FPOS, .help = "RoPE base" },
    { "llama.tie_word_embeddings", K_BOOL, F(llama.tie_word_embeddings), "false",
      .help = "lm_head shares the embedding" },
    { "llama.bos_token_id", K_INT, F(llama.bos_token_id), "0", NONNEG, .help = "BOS id" },
    { "llama.eos_token_id", K_INT, F(llama.eos_token_id), "1", NONNEG, .help = "EOS id" },
    { "llama.resid_pdrop", K_F64, F(llama.resid_pdrop), "0", PROB, .help = "must be 0" },
    { "llama.embd_pdrop", K_F64, F(llama.embd_pdrop), "0", PROB, .help = "must be 0" },
    { "llama.attn_pdrop", K_F64, F(llama.attn_pdrop), "0", PROB, .help = "must be 0" },
    { "llama.fcm_min_ratio", K_F64, F(llama.fcm_min_ratio), "0", .flags = F_MIN | F_MAX,
      .lo = 0, .hi = 1, .help = "forgetful causal mask; must be 0" },
    { "llama.fcm_max_ratio", K_F64, F(llama.fcm_max_ratio), "0", .flags = F_MIN | F_MAX,
      .lo = 0, .hi = 1, .help = "forgetful causal mask; must be 0" },
    { "llama.use_cache", K_BOOL, F(llama.use_cache), "true", .help = "accepted; no effect on training" },
    { "llama.remat_block", K_REMAT, F(llama.remat_block), "", .help = REMAT_HELP " for the whole block" },
    { "llama.remat_attention", K_REMAT, F(llama.remat_attention), "", .help = REMAT_HELP " for attention" },
    { "llama.remat_mlp", K_REMAT, F(llama.remat_mlp), "", .help = REMAT_HELP " for the feed-forward" },
    { "llama.residual_dtype", K_ENUM, F(llama.residual_dtype), "fp32", .choices = "fp32|float32>fp32|bf16|bfloat16>bf16",
      .help = "dtype of the layer inputs x_l kept for the backward: fp32, or bf16 (half their memory; the "
              "backward recomputes each layer from its rounded input)" },
    { "llama.scan_attention", K_BOOL, F(llama.scan_attention), "false", .help = "blockwise attention" },
    { "llama.scan_mlp", K_BOOL, F(llama.scan_mlp), "false", .help = "blockwise feed-forward" },
    { "llama.scan_loss", K_BOOL, F(llama.scan_loss), "false", .help = "blockwise LM head + loss" },
    { "llama.scan_query_chunk_size", K_INT, F(llama.scan_query_chunk_size), "1024", POS, .help = "Bq" },
    { "llama.scan_key_chunk_size", K_INT, F(llama.scan_key_chunk_size), "1024", POS, .help = "Bk" },
    { "llama.scan_mlp_chunk_size", K_INT, F(llama.scan_mlp_chunk_size), "1024", POS, .help = "Bf" },
    { "llama.scan_loss_chunk_size", K_INT, F(llama.scan_loss_chunk_size), "1024", POS,
      .help = "tokens per loss chunk" },
    { "llama.sequence_parallel", K_BOOL, F(llama.sequence_parallel), "true",
      .help = "with tp > 1, Megatron's sequence parallelism: the residual stream, norms and loss input "
              "sharded over tp along the tokens (tp times less of their memory; the same bytes moved)" },
    { "llama.scan_layers", K_BOOL, F(llama.scan_layers), "true", .help = "accepted; no effect" },
    { "llama.param_scan_axis", K_INT, F(llama.param_scan_axis), "0", .flags = F_MIN | F_MAX,
      .lo = 0, .hi = 1, .help = "accepted; no effect" },

    /* optimizer.* */
    { "optimizer.type", K_ENUM, F(optimizer.type), "adamw", .choices = "adamw",
      .check = check_optimizer, .help = "only adamw" },
    { "optimizer.accumulate_gradient_steps", K_INT, F(optimizer.accumulate_gradient_steps), "1", POS,
      .help = "micro-batches per update" },
    { "optimizer.adamw_optimizer.init_lr", K_F64, F(optimizer.adamw.init_lr), "0", NONNEG,
      .help = "learning rate at step 0" },
    { "optimizer.adamw_optimizer.lr", K_F64, F(optimizer.adamw.lr), "0.01", NONNEG,
      .help = "peak learning rate, reached after the warmup" },
    { "optimizer.adamw_optimizer.end_lr", K_F64, F(optimizer.adamw.end_lr), "0.001", NONNEG,
      .help = "learning rate after lr_decay_steps" },
    { "optimizer.adamw_optimizer.lr_warmup_steps", K_INT, F(optimizer.adamw.lr_warmup_steps), "2000",
      NONNEG, .help = "linear warmup steps" },
    { "optimizer.adamw_optimizer.lr_decay_steps", K_INT, F(optimizer.adamw.lr_decay_steps), "500000",
      NONNEG, .help = "end of the cosine decay (counts the warmup)" },
    { "optimizer.adamw_optimizer.b1", K_F64, F(optimizer.adamw.b1), "0.9", PROB, .help = "Adam beta1" },
    { "optimizer.adamw_optimizer.b2", K_F64, F(optimizer.adamw.b2), "0.95", PROB, .help = "Adam beta2" },
    { "optimizer.adamw_optimizer.eps", K_F64, F(optimizer.adamw.eps), "1e-8", NONNEG, .help = "Adam epsilon" },
    { "optimizer.adamw_optimizer.clip_gradient", K_F64, F(optimizer.adamw.clip_gradient), "1.0", FPOS,
      .help = "global gradient-norm clip" },
    { "optimizer.adamw_optimizer.weight_decay", K_F64, F(optimizer.adamw.weight_decay), "1e-4", NONNEG,
      .help = "decoupled weight decay" },
    { "optimizer.adamw_optimizer.bf16_momentum", K_BOOL, F(optimizer.adamw.bf16_momentum), "false",
      .help = "must be false" },
    { "optimizer.adamw_optimizer.multiply_by_parameter_scale", K_BOOL,
      F(optimizer.adamw.multiply_by_parameter_scale), "false", .help = "must be false" },

    /* datasets, tokenizer */
    DATASET_KEYS("train_dataset", train_dataset),
    DATASET_KEYS("eval_dataset", eval_dataset),
    { "tokenizer.vocab_file", K_STR, F(tokenizer_vocab_file), "",
      .help = "'' or bytes: the built-in byte-level tokenizer; a SentencePiece .model; a Hugging Face tokenizer.json" },

    /* checkpointer.* */
    { "checkpointer.float_dtype", K_ENUM, F(ckpt_float_dtype), "fp32",
      .choices = "fp32|float32>fp32|bf16|bfloat16>bf16",
      .help = "dtype of saved tensors: fp32, or bf16 (stored as uint16 bit patterns; lossy, so resume is not exact)" },
    { "checkpointer.keep", K_INT, F(ckpt_keep), "1", NONNEG,
      .help = "regular checkpoints (step_N.h5) to keep, newest first; 0 keeps all; milestones are never deleted" },
    { "checkpointer.save_optimizer_state", K_BOOL, F(ckpt_save_optimizer_state), "false",
      .help = "also save the AdamW moments and the step (needed to resume)" },

    /* logger.* */
    { "logger.output_dir", K_STR, F(output_dir), "/tmp/bpt",
      .help = "run directory: logs, checkpoints" },
    { "logger.tensorboard", K_BOOL, F(tensorboard), "true",
      .help = "write TensorBoard event files to logger.output_dir/tensorboard (rank 0; the scalars of metrics.jsonl)" },
    { "logger.experiment_id", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.append_uuid", K_BOOL, IGN, .def = "true", .help = "ignored" },
    { "logger.online", K_BOOL, IGN, .def = "false", .help = "ignored" },
    { "logger.project_id", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.project_entity", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.experiment_note", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.wandb_dir", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.profile_dir", K_STR, IGN, .def = "", .help = "ignored" },
    { "logger.reinit", K_BOOL, IGN, .def = "false", .help = "ignored" },
    { "logger.resume", K_STR, IGN, .def = "allow", .help = "ignored" },
};

#define NKEYS ((int)(sizeof cfg_keys / sizeof cfg_keys[0]))
const int cfg_nkeys = NKEYS;
_Static_assert(sizeof cfg_keys / sizeof cfg_keys[0] <= CFG_MAX_KEYS, "CFG_MAX_KEYS holds every key");

static const char *remat_names[] = { "", "everything_saveable", "nothing_saveable",
                                     "dots_saveable", "dots_with_no_batch_dims_saveable" };

const char *bpt_remat_name(bpt_remat r) {
    return (unsigned)r < 5 ? remat_names[r] : "?";
}

int cfg_is_llama(const keydef *k) { return strncmp(k->name, LLAMA, strlen(LLAMA)) == 0; }

/* Find a key by its dotted name (with the json_dataset -> text_dataset alias). */
const keydef *cfg_find_key(const char *name) {
    char buf[256];
    const char *alias = strstr(name, ".json_dataset.");
    if (alias && strlen(name) < sizeof buf) {
        size_t pre = (size_t)(alias - name);
        snprintf(buf, sizeof buf, "%.*s.text_dataset.%s", (int)pre, name, alias + 14);
        name = buf;
    }
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(cfg_keys[i].name, name) == 0) return &cfg_keys[i];
    return NULL;
}

int cfg_unknown_key(const char *name, const char *const *extra, int nextra, char *err, size_t n);

/* ---- describing the keys (bpt help config) --------------------------------------------- */

static void fmt_num(char *b, size_t n, double v) { snprintf(b, n, "%.15g", v); }

/* The type as docs/config.md writes it: "int, >= 0", "float, in (0, 1)", "bool",
 * "string", "bytes", "remat", "enum (a, b)". */
static void key_type(const keydef *k, char *b, size_t n) {
    const char *base = k->kind == K_INT || k->kind == K_I64 ? "int" : k->kind == K_F64 ? "float"
                     : k->kind == K_BOOL ? "bool" : k->kind == K_BYTES ? "bytes" : k->kind == K_REMAT ? "remat"
                     : k->kind == K_ENUM ? "enum" : "string";
    if (k->kind == K_ENUM) {   /* the canonical choices, without aliases */
        char list[256] = "", tmp[256];
        snprintf(tmp, sizeof tmp, "%s", k->choices);
        for (char *sv = NULL, *c = strtok_r(tmp, "|", &sv); c; c = strtok_r(NULL, "|", &sv)) {
            if (strchr(c, '>')) continue;
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", c);
        }
        snprintf(b, n, "enum (%s)", list);
        return;
    }
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, k->lo);
    fmt_num(hi, sizeof hi, k->hi);
    unsigned f = k->flags & (F_MIN | F_MAX);
    if (f == (F_MIN | F_MAX))
        snprintf(b, n, "%s, in %s%s, %s%s", base, k->flags & F_GT ? "(" : "[", lo, hi, k->flags & F_LT ? ")" : "]");
    else if (f == F_MIN) snprintf(b, n, "%s, %s %s", base, k->flags & F_GT ? ">" : ">=", lo);
    else if (f == F_MAX) snprintf(b, n, "%s, %s %s", base, k->flags & F_LT ? "<" : "<=", hi);
    else snprintf(b, n, "%s", base);
}

static int enum_name(const char *choices, int i, char *out, size_t n);

/* the names of the enums of config.h, from the table's own choices */
static const char *name_of(const char *key, int v) {
    static char names[4][8][32];   /* per key and value: stable pointers */
    static const char *const enum_cfg_keys[4] = {"dtype", "device", "train_dataset.type", "optimizer.type"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(enum_cfg_keys[i], key)) continue;
        if (v < 0 || v >= 8) return "?";
        if (!names[i][v][0] && enum_name(cfg_find_key(key)->choices, v, names[i][v], sizeof names[i][v]) != 0) return "?";
        return names[i][v];
    }
    return "?";
}
const char *bpt_dtype_name(bpt_dtype d) { return name_of("dtype", (int)d); }
const char *bpt_device_name(bpt_device d) { return name_of("device", (int)d); }
const char *bpt_data_type_name(bpt_data_type t) { return name_of("train_dataset.type", (int)t); }

_Static_assert(sizeof cfg_keys / sizeof cfg_keys[0] <= 64 * sizeof(((bpt_config *)0)->llama_set) / sizeof(uint64_t),
               "bpt_config.llama_set has a bit per key");

int bpt_config_nkeys(void) { return NKEYS; }

int bpt_config_key_info(int i, bpt_key_info *out) {
    if (i < 0 || i >= NKEYS) return -1;
    const keydef *k = &cfg_keys[i];
    out->name = k->name;
    key_type(k, out->type, sizeof out->type);
    out->def = k->def ? k->def : "";
    out->help = k->help ? k->help : "";
    out->ignored = (k->flags & F_IGN) != 0;
    return 0;
}

int bpt_config_key_find(const char *name, bpt_key_info *out, char *err, size_t errlen) {
    const keydef *k = cfg_find_key(name);
    if (!k) return cfg_unknown_key(name, NULL, 0, err, errlen);
    return bpt_config_key_info((int)(k - cfg_keys), out);
}

/* ---- "did you mean" ------------------------------------------------------------------ */

/* Weighted edit distance (optimal string alignment) from what was typed (a) to a valid
 * name (b): a missing character costs 1, an extra one 2, a wrong one 2, two swapped
 * neighbours 1. Forgetting letters ("scan_attn") is thus cheaper than a different word. */
static int edit_distance(const char *a, const char *b) {
    enum { ADD = 1, DEL = 2, SUB = 2, SWAP = 1, MAXL = 128 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXL) la = MAXL;
    if (lb > MAXL) lb = MAXL;
    int rows[3][MAXL + 1];                 /* rows i-2, i-1, i (indices mod 3) */
    for (size_t j = 0; j <= lb; j++) rows[0][j] = (int)j * ADD;
    for (size_t i = 1; i <= la; i++) {
        int *cur = rows[i % 3], *up = rows[(i - 1) % 3], *up2 = rows[(i + 1) % 3];
        cur[0] = (int)i * DEL;
        for (size_t j = 1; j <= lb; j++) {
            int best = up[j - 1] + (a[i - 1] == b[j - 1] ? 0 : SUB);
            if (up[j] + DEL < best) best = up[j] + DEL;
            if (cur[j - 1] + ADD < best) best = cur[j - 1] + ADD;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && up2[j - 2] + SWAP < best)
                best = up2[j - 2] + SWAP;
            cur[j] = best;
        }
    }
    return rows[la % 3][lb];
}

static const char *leaf(const char *s) {
    const char *d = strrchr(s, '.');
    return d ? d + 1 : s;
}

/* Closest of the candidates to name, or NULL if nothing is reasonably close. A match on
 * the last component alone (a forgotten or wrong prefix) scores its distance plus 1. */
const char *cfg_closest(const char *name, const char *const *cand, int ncand) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < ncand; i++) {
        int d = edit_distance(name, cand[i]);
        int dl = edit_distance(leaf(name), leaf(cand[i])) + 1;
        if (dl < d) d = dl;
        if (d < bestd) { bestd = d; best = cand[i]; }
    }
    if (!best) return NULL;
    int limit = 3 + (int)strlen(leaf(best)) / 2;
    return bestd <= limit ? best : NULL;
}

/* Error for an unknown key; extra are more valid names (command-line options). */
int cfg_unknown_key(const char *name, const char *const *extra, int nextra, char *err, size_t n) {
    const char *cand[NKEYS + 8];
    int nc = 0;
    for (int i = 0; i < NKEYS; i++) cand[nc++] = cfg_keys[i].name;
    for (int i = 0; i < nextra && nc < NKEYS + 8; i++) cand[nc++] = extra[i];
    size_t len = strlen(name);
    for (int i = 0; i < NKEYS; i++)         /* a section name such as "llama" */
        if (len && strncmp(cfg_keys[i].name, name, len) == 0 && cfg_keys[i].name[len] == '.')
            return bpt_err(err, n, "unknown config key '%s' (it is a section: set its keys, e.g. '%s')",
                        name, cfg_keys[i].name);
    const char *best = cfg_closest(name, cand, nc);
    if (best) return bpt_err(err, n, "unknown config key '%s' (did you mean '%s'?)", name, best);
    return bpt_err(err, n, "unknown config key '%s' (see docs/config.md for the list)", name);
}

/* Whether s can be printed as a YAML string (the config is printed as YAML by
 * --print_config and into checkpoints, and must load again): well-formed UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF) of YAML's printable
 * characters (no control character but tab, no U+007F..U+009F but U+0085, no U+FFFE,
 * U+FFFF). 0 if it can; else -1 with the reason in why. */
static int yaml_printable(const char *s, char *why, size_t n) {
    size_t len = strlen(s), bad;
    uint32_t cp;
    for (size_t i = 0, k; i < len; i += k) {
        if ((k = (size_t)bpt_utf8_decode((const unsigned char *)s + i, len - i, &cp, &bad)) == 0)
            return bpt_err(why, n, "not valid UTF-8");
        if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f && cp != 0x85) || cp == 0xfffe || cp == 0xffff)
            return bpt_err(why, n, "control character U+%04X", (unsigned)cp);
    }
    return 0;
}

/* ---- parsing values ------------------------------------------------------------------ */

void cfg_trim(const char *s, char *out, size_t n) {
    while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    if (len >= n) len = n - 1;
    memcpy(out, s, len);
    out[len] = 0;
}

/* Integer: decimal, or a number in exponent form that is an exact integer (1e6). */
static int parse_i64(const char *s, int64_t *out) {
    char t[128];
    if (strlen(s) >= sizeof t) return -1;
    cfg_trim(s, t, sizeof t);
    if (!t[0]) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (*end == 0 && errno == 0) { *out = v; return 0; }
    errno = 0;
    double d = strtod(t, &end);
    if (*end || errno || !isfinite(d) || d != floor(d) || fabs(d) > 9.2e18) return -1;
    if (strchr(t, 'x') || strchr(t, 'X')) return -1;      /* no hex floats */
    *out = (int64_t)d;
    return 0;
}

static int parse_f64(const char *s, double *out) {
    char t[128];
    if (strlen(s) >= sizeof t) return -1;
    cfg_trim(s, t, sizeof t);
    if (!t[0] || strchr(t, 'x') || strchr(t, 'X')) return -1;
    char *end;
    errno = 0;
    double d = strtod(t, &end);
    if (*end || errno == ERANGE || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* Byte count: a number with an optional suffix K/M/G/T or KiB..TiB (powers of 1024)
 * or KB..TB (powers of 1000); B alone is bytes. */
static int parse_bytes(const char *s, int64_t *out) {
    char t[128];
    if (strlen(s) >= sizeof t) return -1;
    cfg_trim(s, t, sizeof t);
    size_t len = strlen(t);
    size_t num = len;
    while (num > 0 && isalpha((unsigned char)t[num - 1])) num--;
    const char *suf = t + num;
    static const struct { const char *s; double m; } units[] = {
        { "", 1 }, { "b", 1 },
        { "k", 1024.0 }, { "kib", 1024.0 }, { "kb", 1e3 },
        { "m", 1048576.0 }, { "mib", 1048576.0 }, { "mb", 1e6 },
        { "g", 1073741824.0 }, { "gib", 1073741824.0 }, { "gb", 1e9 },
        { "t", 1099511627776.0 }, { "tib", 1099511627776.0 }, { "tb", 1e12 },
    };
    double mult = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(suf, units[i].s) == 0) mult = units[i].m;
    if (mult == 0) return -1;
    t[num] = 0;
    double d;
    if (parse_f64(t, &d) != 0) return -1;
    d *= mult;
    if (d != floor(d) || d < 0 || d > 9.2e18) return -1;
    *out = (int64_t)d;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    char t[16];
    if (strlen(s) >= sizeof t) return -1;
    cfg_trim(s, t, sizeof t);
    static const char *yes[] = { "true", "yes", "on", "1" }, *no[] = { "false", "no", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(t, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

/* K_ENUM choices "a|b|alias>b": the canonical names (a, b) in order are the enum's
 * values 0, 1, ...; an alias stands for the name after its '>'. */

/* The canonical name of value i in choices, into out; -1 if there is none. */
static int enum_name(const char *choices, int i, char *out, size_t n) {
    for (const char *p = choices; *p;) {
        size_t len = strcspn(p, "|");
        if (!memchr(p, '>', len) && i-- == 0) { snprintf(out, n, "%.*s", (int)len, p); return 0; }
        p += len;
        if (*p) p++;
    }
    return -1;
}

/* The value v names (a name or an alias, any case), or -1. */
static int parse_enum(const char *choices, const char *v) {
    char t[64];
    if (strlen(v) >= sizeof t) return -1;
    cfg_trim(v, t, sizeof t);
    for (const char *p = choices; *p;) {
        size_t len = strcspn(p, "|");
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        char *gt = strchr(item, '>');
        const char *canon = gt ? gt + 1 : item;
        if (gt) *gt = 0;
        if (strcasecmp(item, t) == 0) {
            char name[64];
            for (int i = 0; enum_name(choices, i, name, sizeof name) == 0; i++)
                if (!strcmp(name, canon)) return i;
            return -1;
        }
        p += len;
        if (*p) p++;
    }
    return -1;
}

static int parse_remat(const char *v, bpt_remat *out) {
    char t[64];
    if (strlen(v) >= sizeof t) return -1;
    cfg_trim(v, t, sizeof t);
    for (int i = 0; i < 5; i++)
        if (strcmp(t, remat_names[i]) == 0) { *out = (bpt_remat)i; return 0; }
    return -1;
}

/* What a key expects, for messages and docs. */
void cfg_expected(const keydef *k, char *buf, size_t n) {
    char range[96] = "";
    if ((k->flags & F_MIN) && (k->flags & F_MAX))
        snprintf(range, sizeof range, " in %s%g, %g%s", (k->flags & F_GT) ? "(" : "[", k->lo, k->hi,
                 (k->flags & F_LT) ? ")" : "]");
    else if (k->flags & F_MIN)
        snprintf(range, sizeof range, " %s %g", (k->flags & F_GT) ? ">" : ">=", k->lo);
    else if (k->flags & F_MAX)
        snprintf(range, sizeof range, " %s %g", (k->flags & F_LT) ? "<" : "<=", k->hi);
    switch (k->kind) {
    case K_INT: case K_I64: snprintf(buf, n, "an integer%s", range); break;
    case K_BYTES: snprintf(buf, n, "a byte count such as 4294967296, 512MiB or 4GiB"); break;
    case K_F64: snprintf(buf, n, "a number%s", range); break;
    case K_BOOL: snprintf(buf, n, "true or false"); break;
    case K_STR: snprintf(buf, n, "a single-line string of at most %zu characters",
                         (k->flags & F_IGN) ? (size_t)BPT_STR - 1 : k->size - 1); break;
    case K_REMAT:
        snprintf(buf, n, "'' or one of nothing_saveable, everything_saveable, dots_saveable, "
                 "dots_with_no_batch_dims_saveable");
        break;
    case K_ENUM: {
        char list[128] = "";
        const char *p = k->choices;
        while (*p) {
            size_t len = strcspn(p, "|");
            if (!memchr(p, '>', len)) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%.*s", l ? ", " : "", (int)len, p);
            }
            p += len;
            if (*p) p++;
        }
        snprintf(buf, n, "one of %s", list);
        break;
    }
    }
}

static int bad_value(const keydef *k, const char *v, const char *why, char *err, size_t n) {
    char exp[256];
    if (why) return bpt_err(err, n, "bad value for %s: '%.200s' (%s)", k->name, v, why);
    cfg_expected(k, exp, sizeof exp);
    return bpt_err(err, n, "bad value for %s: '%.200s' (expected %s)", k->name, v, exp);
}

static int in_range(const keydef *k, double x) {
    if (k->flags & F_MIN) {
        if ((k->flags & F_GT) ? !(x > k->lo) : !(x >= k->lo)) return 0;
    }
    if (k->flags & F_MAX) {
        if ((k->flags & F_LT) ? !(x < k->hi) : !(x <= k->hi)) return 0;
    }
    return 1;
}

/* Parse v for key k; store it in c unless store is 0 or the key is ignored. */
int cfg_set_value(bpt_config *c, const keydef *k, const char *v, int store, char *err, size_t n) {
    char why[256];
    if (k->check && k->check(v, why, sizeof why) != 0) return bad_value(k, v, why, err, n);
    if (k->flags & F_IGN) store = 0;
    char *field = store ? (char *)c + k->off : NULL;
    union { int64_t i; double f; int b; bpt_remat r; } x;   /* the value, stored at the end */
    size_t size = sizeof x.b;
    int bad = 0;
    switch (k->kind) {
    case K_INT: case K_I64: case K_BYTES:
        bad = (k->kind == K_BYTES ? parse_bytes(v, &x.i) : parse_i64(v, &x.i)) != 0 || !in_range(k, (double)x.i) ||
              (k->kind == K_INT && (x.i < INT_MIN || x.i > INT_MAX));
        if (k->kind != K_INT) size = sizeof x.i;
        else if (!bad) x.b = (int)x.i;
        break;
    case K_F64: bad = parse_f64(v, &x.f) != 0 || !in_range(k, x.f); size = sizeof x.f; break;
    case K_BOOL: bad = parse_bool(v, &x.b) != 0; break;
    case K_ENUM: bad = (x.b = parse_enum(k->choices, v)) < 0; break;
    case K_REMAT: bad = parse_remat(v, &x.r) != 0; size = sizeof x.r; break;
    case K_STR: {
        size_t cap = (k->flags & F_IGN) ? BPT_STR : k->size;
        if (strlen(v) >= cap) return bad_value(k, v, NULL, err, n);
        char why[64];
        if (yaml_printable(v, why, sizeof why) != 0) return bpt_err(err, n, "bad value for %s: %s", k->name, why);
        if (field) snprintf(field, k->size, "%s", v);
        return 0;
    }
    }
    if (bad) return bad_value(k, v, NULL, err, n);
    if (field) memcpy(field, &x, size);
    return 0;
}

/* ---- the special checks ---------------------------------------------------------------- */

/* mesh_dim: three comma-separated integers (>= 1, or -1 at most once), or the named
 * form dp:A,fsdp:B,tp:C in any order (mp is an alias of tp). */
int bpt_mesh_dim_parse(const char *v, int dims[BPT_MESH_AXES], char *why, size_t n) {
    const char *ex = "expected dp,fsdp,tp or dp,fsdp,tp,sp (integers, like 1,-1,1 or 1,-1,1,4) or "
                     "dp:1,fsdp:-1,tp:1[,sp:4]";
    char s[BPT_STR];
    if (strlen(v) >= sizeof s) return bpt_err(why, n, "too long; %s", ex);
    cfg_trim(v, s, sizeof s);
    if (s[0] == '!') return bpt_err(why, n, "a leading '!' (plain device order) is not supported; %s", ex);
    int nparts = 0, nminus = 0, named = 0, seen[BPT_MESH_AXES] = { 0 }, d[BPT_MESH_AXES] = { 0, 0, 0, 1 };
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char part[64];
        cfg_trim(tok, part, sizeof part);
        char *colon = strchr(part, ':');
        const char *num = part;
        int axis = nparts;
        if (colon) {
            *colon = 0;
            char name[32];
            cfg_trim(part, name, sizeof name);
            axis = !strcmp(name, "dp") ? 0 : !strcmp(name, "fsdp") ? 1
                 : (!strcmp(name, "tp") || !strcmp(name, "mp")) ? 2 : !strcmp(name, "sp") ? 3 : -1;
            if (axis < 0) return bpt_err(why, n, "unknown axis '%s' (axes are dp, fsdp, tp, sp)", name);
            if (seen[axis]++) return bpt_err(why, n, "axis '%s' given twice", name);
            named++;
            num = colon + 1;
        }
        nparts++;
        int64_t x;
        if (parse_i64(num, &x) != 0 || (x < 1 && x != -1) || x > BPT_MAX_RANKS)
            return bpt_err(why, n, "each size must be a positive integer up to %d or -1; %s", BPT_MAX_RANKS, ex);
        if (x == -1) nminus++;
        if (axis < BPT_MESH_AXES) d[axis] = (int)x;
    }
    if (nparts != 3 && nparts != 4) return bpt_err(why, n, "%d parts; %s", nparts, ex);
    if (named && (named != nparts || !seen[0] || !seen[1] || !seen[2]))
        return bpt_err(why, n, "name every axis or none (sp may be left out); %s", ex);
    if (nminus > 1) return bpt_err(why, n, "at most one size may be -1; %s", ex);
    if (dims) memcpy(dims, d, sizeof d);
    return 0;
}

static int check_mesh_dim(const char *v, char *why, size_t n) { return bpt_mesh_dim_parse(v, NULL, why, n); }

static int check_dtype(const char *v, char *why, size_t n) {
    static const char *unsupported[] = { "fp16", "float16", "fp64", "float64" };
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, unsupported[i]) == 0)
            return bpt_err(why, n, "%s is not supported; supported values: bf16 (bfloat16), fp32 (float32)", v);
    return 0;
}

static int check_optimizer(const char *v, char *why, size_t n) {
    if (strcasecmp(v, "palm") == 0)
        return bpt_err(why, n, "the palm optimizer is not supported; expected adamw");
    return 0;
}


static int check_preset(const char *v, char *why, size_t n) {
    bpt_llama_config l;
    if (!v[0]) return 0;
    if (strncmp(v, "json::", 6) == 0 || strncmp(v, "pickle::", 8) == 0)
        return bpt_err(why, n, "loading a model config from a json:: or pickle:: file is not supported; "
                    "expected a preset: %s", bpt_llama_preset_names());
    if (bpt_llama_preset(&l, v) != 0)
        return bpt_err(why, n, "unknown preset; valid presets: %s", bpt_llama_preset_names());
    return 0;
}

/* ---- printing values --------------------------------------------------------------------- */

/* Shortest %g form that reads back to exactly x (integral values as 10000.0). */
static void fmt_double(double x, char *buf, size_t n) {
    if (x == floor(x) && fabs(x) < 1e9) { snprintf(buf, n, "%.1f", x); return; }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The key's current value as (unquoted) text. */
void cfg_fmt_value(const bpt_config *c, const keydef *k, char *buf, size_t n) {
    const char *field = (const char *)c + k->off;
    switch (k->kind) {
    case K_INT: snprintf(buf, n, "%d", *(const int *)field); break;
    case K_I64: case K_BYTES: snprintf(buf, n, "%" PRId64, *(const int64_t *)field); break;
    case K_F64: fmt_double(*(const double *)field, buf, n); break;
    case K_BOOL: snprintf(buf, n, "%s", *(const int *)field ? "true" : "false"); break;
    case K_STR: snprintf(buf, n, "%s", field); break;
    case K_ENUM: if (enum_name(k->choices, *(const int *)field, buf, n) != 0) snprintf(buf, n, "?"); break;
    case K_REMAT: snprintf(buf, n, "%s", bpt_remat_name(*(const bpt_remat *)field)); break;
    }
}

/* ---- setting keys ------------------------------------------------------------------------ */

/* Key k (a llama.* key) was set explicitly: a member of c->llama_set. */
static void record_explicit(bpt_config *c, const keydef *k) {
    int i = (int)(k - cfg_keys);
    c->llama_set[i / 64] |= (uint64_t)1 << (i % 64);
}

int cfg_set_key(bpt_config *c, const keydef *k, const char *value, char *err, size_t n) {
    if (cfg_set_value(c, k, value, 1, err, n) != 0) return -1;
    if (cfg_is_llama(k)) record_explicit(c, k);
    return 0;
}

void bpt_config_defaults(bpt_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++) {
        char err[256];
        int rc = cfg_set_value(c, &cfg_keys[i], cfg_keys[i].def, 1, err, sizeof err);
        if (rc != 0) {                              /* a bad default is a bug in the table */
            fprintf(stderr, "bpt: internal error at %s:%d: %s\n", __FILE__, __LINE__, err);
            abort();
        }
    }
}

int bpt_config_set(bpt_config *c, const char *key, const char *value, char *err, size_t errlen) {
    const keydef *k = cfg_find_key(key);
    if (!k) return cfg_unknown_key(key, NULL, 0, err, errlen);
    return cfg_set_key(c, k, value, err, errlen);
}

/* ---- entry points ---------------------------------------------------------------------------- */

int bpt_config_from_yaml_string(bpt_config *c, const char *yaml, char *err, size_t errlen) {
    bpt_config_defaults(c);
    if (cfg_load_yaml_string(c, yaml, "<yaml>", err, errlen) != 0) return -1;
    return bpt_config_finalize(c, err, errlen);
}

static int from_args(bpt_config *c, int eval_only, int argc, char **argv, char *err, size_t errlen);

int bpt_config_from_args(bpt_config *c, int argc, char **argv, char *err, size_t errlen) {
    return from_args(c, 0, argc, argv, err, errlen);
}

int bpt_config_from_args_eval(bpt_config *c, int argc, char **argv, char *err, size_t errlen) {
    return from_args(c, 1, argc, argv, err, errlen);
}

static int from_args(bpt_config *c, int eval_only, int argc, char **argv, char *err, size_t errlen) {
    static const char *const extra[] = { "config", "print_config" };
    const char **ov_key = calloc((size_t)argc + 1, sizeof *ov_key);
    const char **ov_val = calloc((size_t)argc + 1, sizeof *ov_val);
    char *names = calloc((size_t)argc + 1, 256);
    int nov = 0, rc = -1;
    bpt_config_defaults(c);
    c->eval_only = eval_only;
    if (!ov_key || !ov_val || !names) { bpt_err(err, errlen, "out of memory"); goto out; }
    /* pass 1: options; overrides are collected and applied after the YAML file */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            bpt_err(err, errlen, "unexpected argument '%s' (options are --key=value or --key value)", a);
            goto out;
        }
        const char *eq = strchr(a + 2, '=');
        char *name = names + (size_t)i * 256;
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= 256) { bpt_err(err, errlen, "option name too long: '%.60s...'", a); goto out; }
        memcpy(name, a + 2, nlen);
        name[nlen] = 0;
        const char *value = eq ? eq + 1 : NULL;
        const keydef *k = cfg_find_key(name);
        int is_bool = (k && k->kind == K_BOOL) || !strcmp(name, "print_config");
        if (!k && strcmp(name, "config") && strcmp(name, "print_config")) {
            cfg_unknown_key(name, extra, 2, err, errlen);
            goto out;
        }
        if (!value) {
            int has_next = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
            if (has_next) value = argv[++i];
            else if (is_bool) value = "true";
            else { bpt_err(err, errlen, "missing value for --%s", name); goto out; }
        }
        if (!strcmp(name, "config")) {
            if (c->config_file[0]) { bpt_err(err, errlen, "--config given twice"); goto out; }
            if (!value[0] || strlen(value) >= sizeof c->config_file) {
                bpt_err(err, errlen, "bad value for --config: '%.200s' (expected a file name)", value);
                goto out;
            }
            snprintf(c->config_file, sizeof c->config_file, "%s", value);
        } else if (!strcmp(name, "print_config")) {
            if (parse_bool(value, &c->print_config) != 0) {
                bpt_err(err, errlen, "bad value for --print_config: '%.200s' (expected true or false)", value);
                goto out;
            }
        } else {
            ov_key[nov] = name;
            ov_val[nov++] = value;
        }
    }
    /* the YAML file, then the overrides in order */
    if (c->config_file[0] && cfg_load_yaml_file(c, c->config_file, err, errlen) != 0) goto out;
    for (int i = 0; i < nov; i++)
        if (bpt_config_set(c, ov_key[i], ov_val[i], err, errlen) != 0) goto out;
    rc = bpt_config_finalize(c, err, errlen);
out:
    free(ov_key);
    free(ov_val);
    free(names);
    return rc;
}

