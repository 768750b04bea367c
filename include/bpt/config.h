/* config.h — experiment configuration: YAML files plus --a.b.c=value overrides.
 *
 * Keys are the reference implementation's flag names (docs/config.md lists every
 * key, its type, default and meaning). Resolution order, later wins:
 *   1. defaults (the reference's);
 *   2. the YAML file given by --config (nested mappings, or dotted keys);
 *   3. command-line overrides --key=value (or --key value);
 *   then the model config is assembled:
 *   a. the preset named by load_llama_config (debug, 1b ... 65b, and ours);
 *   b. every llama.* key that was set explicitly in 2 or 3 (unlike the reference,
 *      max_sequence_length and all other fields are honoured);
 *   c. update_llama_config, a mapping of llama fields (YAML mapping, "{a: 1}" or
 *      the reference's "dict(a=1, b=2)").
 * Then everything is validated. Errors are one line naming the key, the value and
 * what was expected (an unknown key also names the closest valid key).
 */
#ifndef BPT_CONFIG_H
#define BPT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define BPT_STR 512   /* max length of a string value */

/* The config's enumerations, parsed once from their names (which the key table lists
 * in this order: src/config.c, K_ENUM) and named back by bpt_*_name. */
typedef enum { BPT_DTYPE_FP32, BPT_DTYPE_BF16 } bpt_dtype;                    /* fp32 | bf16 */
typedef enum { BPT_DEVICE_CPU, BPT_DEVICE_CUDA } bpt_device;                  /* cpu | cuda */
typedef enum { BPT_DATA_HDF5, BPT_DATA_TEXT, BPT_DATA_JSON } bpt_data_type;   /* hdf5 | text | json */
typedef enum { BPT_OPTIMIZER_ADAMW } bpt_optimizer;                           /* adamw */
const char *bpt_dtype_name(bpt_dtype d);
const char *bpt_device_name(bpt_device d);
const char *bpt_data_type_name(bpt_data_type t);

typedef enum { BPT_REMAT_NONE = 0, BPT_REMAT_EVERYTHING, BPT_REMAT_NOTHING,
               BPT_REMAT_DOTS, BPT_REMAT_DOTS_NO_BATCH } bpt_remat;

typedef struct bpt_llama_config {
    int vocab_size;               /* V */
    int hidden_size;              /* D */
    int intermediate_size;        /* F */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* H */
    int num_key_value_heads;      /* KVH; 0 = same as H (no GQA) */
    int max_sequence_length;      /* RoPE table rows; must be >= seq_length */
    double rms_norm_eps;
    double initializer_range;
    double rope_theta;            /* 10000 */
    int tie_word_embeddings;      /* lm_head = embed_tokens */
    int bos_token_id, eos_token_id;
    double resid_pdrop, embd_pdrop, attn_pdrop;       /* accepted; must be 0 */
    double fcm_min_ratio, fcm_max_ratio;              /* accepted; must be 0 */
    int use_cache;
    bpt_remat remat_block, remat_attention, remat_mlp;
    bpt_dtype residual_dtype;                         /* of the kept layer inputs x_l */
    int scan_attention, scan_mlp, scan_loss;          /* blockwise attention / ffn / loss */
    int scan_query_chunk_size, scan_key_chunk_size;   /* Bq, Bk */
    int scan_mlp_chunk_size;                          /* Bf */
    int scan_loss_chunk_size;                         /* tokens per loss chunk */
    int scan_layers, param_scan_axis;                 /* accepted for compatibility */
    int sequence_parallel;                            /* tp > 1: activations sharded along the rows */
} bpt_llama_config;

typedef struct bpt_adamw_config {
    double init_lr, lr, end_lr;
    int lr_warmup_steps, lr_decay_steps;
    double b1, b2, eps, clip_gradient, weight_decay;
    int bf16_momentum, multiply_by_parameter_scale;   /* accepted; must be false */
} bpt_adamw_config;

typedef struct bpt_optimizer_config {
    bpt_optimizer type;                               /* the one there is: adamw */
    int accumulate_gradient_steps;
    bpt_adamw_config adamw;
} bpt_optimizer_config;

typedef struct bpt_source_config {     /* <dataset>.<type>_dataset.* */
    char path[BPT_STR];
    int seq_length;                   /* T */
    int batch_size;                   /* global batch rows */
} bpt_source_config;

typedef struct bpt_dataset_config {
    bpt_data_type type;               /* hdf5 | text | json (streamed) */
    int shuffle;                      /* visit sequence windows in a seeded permuted order */
    int64_t shuffle_seed;             /* 0: the top-level seed */
    char weights[BPT_STR];            /* sampling weights of comma-separated paths ("" = equal) */
    int tokenizer_processes;          /* json: tokenizer threads */
    bpt_source_config hdf5;           /* hdf5_dataset.* : /tokens of a prepared file */
    bpt_source_config text;           /* text_dataset.* : plain text or JSONL, byte tokens */
    char fields[BPT_STR];             /* text_processor.fields (JSONL keys, comma list) */
    int add_bos_token, add_eos_token; /* text_processor.* */
    char subfield_separator[BPT_STR]; /* joins a+b subfields (default " ") */
    char prepend_text[BPT_STR];       /* before the first field of each document */
    char fields_from_example[BPT_STR];/* key whose string value is the line's own fields list */
} bpt_dataset_config;

/* The source that dataset type selects. */
static inline const bpt_source_config *bpt_dataset_source(const bpt_dataset_config *d) {
    return d->type == BPT_DATA_HDF5 ? &d->hdf5 : &d->text;
}

typedef struct bpt_config {
    /* top level */
    int64_t seed;
    char mesh_dim[BPT_STR];
    bpt_dtype dtype;                  /* the compute dtype */
    bpt_device device;
    int64_t total_steps;
    int64_t log_freq;
    int64_t save_model_freq;
    int64_t save_milestone_freq;
    int64_t eval_steps;
    char load_llama_config[BPT_STR];
    char update_llama_config[4 * BPT_STR];  /* as given (YAML flow text) */
    char load_checkpoint[BPT_STR];
    char load_dataset_state[BPT_STR];
    int autoresume;
    int log_all_worker;
    double peak_flops;                /* per rank, FLOP/s; 0 = measure at start */
    int64_t arena_bytes;              /* 0 = exactly the planned peak */
    int num_threads;                  /* OpenMP threads per rank; 0 = default */
    double comm_timeout_s;            /* watchdog: abort when a collective waits longer (0: off) */

    bpt_llama_config llama;
    bpt_optimizer_config optimizer;
    bpt_dataset_config train_dataset, eval_dataset;
    char tokenizer_vocab_file[BPT_STR];

    /* checkpointer.* */
    bpt_dtype ckpt_float_dtype;       /* of the saved tensors */
    int ckpt_save_optimizer_state;
    int ckpt_keep;                    /* regular checkpoints kept (0: all) */

    /* logger.* */
    char output_dir[BPT_STR];
    int tensorboard;                  /* logger.tensorboard: event files in output_dir/tensorboard */

    /* not keys: bookkeeping */
    int print_config;                 /* --print_config was given */
    int eval_only;                    /* bpt eval: train_dataset is not used, so not checked */
    char config_file[BPT_STR];        /* --config */
    uint64_t llama_set[4];            /* bit i: key i of the table (a llama.* key) set explicitly */
} bpt_config;

/* mesh_dim's syntax, its one parser (the config's check and bpt_mesh_parse): sizes
 * "dp,fsdp,tp" or "dp,fsdp,tp,sp", or named "dp:A,fsdp:B,tp:C[,sp:D]" in any order
 * (mp = tp), each a positive integer up to BPT_MAX_RANKS or -1 (at most one: the rest
 * of the ranks); sp is 1 where it is not given. dims (may be NULL) in dp, fsdp, tp, sp
 * order. 0, or -1 with why (what is wrong, without the key). */
#define BPT_MAX_RANKS (1 << 24)
#define BPT_MESH_AXES 4   /* dp, fsdp, tp, sp */
int bpt_mesh_dim_parse(const char *mesh_dim, int dims[BPT_MESH_AXES], char *why, size_t n);

/* Fill *c with the defaults. */
void bpt_config_defaults(bpt_config *c);

/* Parse argv (after the subcommand): --config FILE, --print_config, --key=value,
 * --key value. Loads the YAML, applies overrides, assembles and validates the model
 * config. Returns 0, or -1 with a one-line message in err (no newline). */
int bpt_config_from_args(bpt_config *c, int argc, char **argv, char *err, size_t errlen);
/* The same for bpt eval: what only training uses (train_dataset) is not validated. */
int bpt_config_from_args_eval(bpt_config *c, int argc, char **argv, char *err, size_t errlen);

/* Same, from a YAML text (tests). */
int bpt_config_from_yaml_string(bpt_config *c, const char *yaml, char *err, size_t errlen);

/* Apply one key=value (dotted key). Returns 0 or -1 with message. */
int bpt_config_set(bpt_config *c, const char *key, const char *value, char *err, size_t errlen);

/* Assemble the llama config (preset, explicit keys, update_llama_config) and validate
 * everything. Called by bpt_config_from_*; call it yourself after bpt_config_set. */
int bpt_config_finalize(bpt_config *c, char *err, size_t errlen);

/* Load a named preset into *l ("debug", "1b", ..., "tiny", "demo", "bench512").
 * Returns 0 or -1 if unknown. */
int bpt_llama_preset(bpt_llama_config *l, const char *name);
/* Comma-separated preset names. */
const char *bpt_llama_preset_names(void);

/* The key table, described (bpt help config; docs/config.md agrees with it, as a test
 * checks): name, type as the docs write it ("int, >= 0", "enum (fp32, bf16)", ...),
 * default as text, meaning; ignored: accepted for the reference's command lines only. */
typedef struct bpt_key_info { const char *name; char type[96]; const char *def, *help; int ignored; } bpt_key_info;
int bpt_config_nkeys(void);
int bpt_config_key_info(int i, bpt_key_info *out);   /* 0 <= i < bpt_config_nkeys() */
/* The key called name; -1 with "unknown config key ... (did you mean ...?)" in err. */
int bpt_config_key_find(const char *name, bpt_key_info *out, char *err, size_t errlen);

/* Write the resolved config as YAML (all keys, nested) to a malloc'd string. */
char *bpt_config_to_yaml(const bpt_config *c);

const char *bpt_remat_name(bpt_remat r);   /* "" for NONE */

/* Derived sizes. */
static inline int bpt_kv_heads(const bpt_llama_config *l) {
    return l->num_key_value_heads > 0 ? l->num_key_value_heads : l->num_attention_heads;
}
static inline int bpt_head_dim(const bpt_llama_config *l) {
    return l->hidden_size / l->num_attention_heads;
}

#endif
