/* test_config.c — configuration: defaults, YAML, command line, presets, errors,
 * round trip through bpt_config_to_yaml. One TAP line per check (tests/unit/unit_test.h);
 * exit 0 iff all pass. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* strtok_r, strcasecmp, mkstemp under -std=c11 */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpt/config.h"
#include "bpt/mesh.h"
#include "unit_test.h"

/* ---- helpers -------------------------------------------------------------------- */

#define MAXTMP 64
static char tmpfiles[MAXTMP][64];
static int ntmp;

/* Write text to a fresh temporary file; returns its path (valid until the end). */
static const char *write_tmp(const char *text) {
    if (ntmp >= MAXTMP) tap_bail("too many temp files");
    char *path = tmpfiles[ntmp++];
    snprintf(path, 64, "/tmp/bpt_test_config_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) tap_bail("mkstemp %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) tap_bail("write %s: %s", path, strerror(errno));
    close(fd);
    return path;
}

static int from_args(bpt_config *c, char *err, size_t n, ...) {
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, n);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 64;) argv[argc++] = a;
    va_end(ap);
    return bpt_config_from_args(c, argc, argv, err, n);
}

/* All NULL-terminated substrings occur in err, which is one line. */
static int has_all(const char *err, va_list ap) {
    int ok = strchr(err, '\n') == NULL && err[0] != 0;
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        if (!strstr(err, s)) ok = 0;
    return ok;
}

/* Expect bpt_config_from_yaml_string(yaml) to fail with all the given substrings. */
static void yaml_err(const char *what, const char *yaml, ...) {
    bpt_config c;
    char err[1024] = "";
    int rc = bpt_config_from_yaml_string(&c, yaml, err, sizeof err);
    va_list ap;
    va_start(ap, yaml);
    int ok = rc != 0 && has_all(err, ap);
    va_end(ap);
    CHECK(ok, "error: %s -> %s", what, rc ? err : "(no error)");
}

/* Expect the command line (NULL-terminated, then substrings, NULL-terminated) to fail. */
static void args_err(const char *what, const char *const *argv0, ...) {
    char *argv[32];
    int argc = 0;
    while (argv0[argc] && argc < 32) { argv[argc] = (char *)argv0[argc]; argc++; }
    bpt_config c;
    char err[1024] = "";
    int rc = bpt_config_from_args(&c, argc, argv, err, sizeof err);
    va_list ap;
    va_start(ap, argv0);
    int ok = rc != 0 && has_all(err, ap);
    va_end(ap);
    CHECK(ok, "error: %s -> %s", what, rc ? err : "(no error)");
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- tests ---------------------------------------------------------------------- */

static void test_defaults(void) {
    bpt_config c;
    char err[512];
    int rc = from_args(&c, err, sizeof err, NULL);
    CHECK(rc == 0, "no arguments gives a valid config");
    CHECK(c.seed == 42 && !strcmp(c.mesh_dim, "1,-1,1") && c.dtype == BPT_DTYPE_BF16 &&
          c.device == BPT_DEVICE_CPU && c.total_steps == 10000 && c.log_freq == 50 &&
          c.save_model_freq == 0 && c.save_milestone_freq == 0 && c.eval_steps == 0 &&
          !c.load_llama_config[0] && !c.update_llama_config[0] && !c.load_checkpoint[0] &&
          !c.load_dataset_state[0] && !c.autoresume && !c.log_all_worker && c.peak_flops == 0 &&
          c.arena_bytes == 0 && c.num_threads == 0 && !c.print_config && !c.config_file[0],
          "top-level defaults");
    const bpt_llama_config *l = &c.llama;
    CHECK(l->vocab_size == 32000 && l->hidden_size == 4096 && l->intermediate_size == 11008 &&
          l->num_hidden_layers == 32 && l->num_attention_heads == 32 && l->num_key_value_heads == 0 &&
          l->max_sequence_length == 2048 && l->rms_norm_eps == 1e-6 && l->initializer_range == 0.02 &&
          l->rope_theta == 10000 && !l->tie_word_embeddings && l->bos_token_id == 0 &&
          l->eos_token_id == 1 && l->resid_pdrop == 0 && l->embd_pdrop == 0 && l->attn_pdrop == 0 &&
          l->fcm_min_ratio == 0 && l->fcm_max_ratio == 0 && l->use_cache == 1 &&
          l->remat_block == BPT_REMAT_NONE && l->remat_attention == BPT_REMAT_NONE &&
          l->remat_mlp == BPT_REMAT_NONE && !l->scan_attention && !l->scan_mlp && !l->scan_loss &&
          l->scan_query_chunk_size == 1024 && l->scan_key_chunk_size == 1024 &&
          l->scan_mlp_chunk_size == 1024 && l->scan_loss_chunk_size == 1024 && l->scan_layers == 1 &&
          l->param_scan_axis == 0, "llama defaults");
    CHECK(bpt_kv_heads(l) == 32 && bpt_head_dim(l) == 128, "derived kv heads and head dim");
    const bpt_adamw_config *a = &c.optimizer.adamw;
    CHECK(c.optimizer.type == BPT_OPTIMIZER_ADAMW && c.optimizer.accumulate_gradient_steps == 1 &&
          a->init_lr == 0 && a->lr == 0.01 && a->end_lr == 0.001 && a->lr_warmup_steps == 2000 &&
          a->lr_decay_steps == 500000 && a->b1 == 0.9 && a->b2 == 0.95 && a->eps == 1e-8 &&
          a->clip_gradient == 1.0 && a->weight_decay == 1e-4 && !a->bf16_momentum &&
          !a->multiply_by_parameter_scale, "optimizer defaults");
    const bpt_dataset_config *ds[2] = { &c.train_dataset, &c.eval_dataset };
    int dok = 1;
    for (int i = 0; i < 2; i++) {
        const bpt_dataset_config *d = ds[i];
        dok &= d->type == BPT_DATA_HDF5 && !d->hdf5.path[0] && d->hdf5.seq_length == 1024 &&
               d->hdf5.batch_size == 8 && !d->text.path[0] && d->text.seq_length == 1024 &&
               d->text.batch_size == 8 && !strcmp(d->fields, "text") && !d->add_bos_token &&
               !d->add_eos_token && bpt_dataset_source(d) == &d->hdf5;
    }
    CHECK(dok, "dataset defaults");
    CHECK(!c.tokenizer_vocab_file[0] && c.ckpt_float_dtype == BPT_DTYPE_FP32 && !c.ckpt_save_optimizer_state &&
          !strcmp(c.output_dir, "/tmp/bpt"), "tokenizer, checkpointer, logger defaults");
    bpt_config d;
    bpt_config_defaults(&d);
    CHECK(bpt_config_finalize(&d, err, sizeof err) == 0, "bpt_config_defaults + finalize is valid");
    CHECK(!strcmp(bpt_remat_name(BPT_REMAT_NONE), "") &&
          !strcmp(bpt_remat_name(BPT_REMAT_NOTHING), "nothing_saveable") &&
          !strcmp(bpt_remat_name(BPT_REMAT_DOTS_NO_BATCH), "dots_with_no_batch_dims_saveable"),
          "bpt_remat_name");
}

static void test_yaml(void) {
    const char *yaml =
        "# a comment\n"
        "seed: 7\n"
        "mesh_dim: [1, -1, 2]\n"
        "dtype: float32\n"
        "llama:\n"
        "  hidden_size: 256\n"
        "  num_attention_heads: 8\n"
        "  scan_attention: true\n"
        "  remat_attention: nothing_saveable\n"
        "llama.scan_mlp: True\n"
        "llama.rms_norm_eps: 1e-5\n"
        "optimizer:\n"
        "  adamw_optimizer: {lr: 3e-4, lr_warmup_steps: 100}\n"
        "train_dataset:\n"
        "  type: text\n"
        "  text_dataset:\n"
        "    path: \"data/x.jsonl\"\n"
        "    seq_length: 512\n"
        "  text_processor: {fields: [title, body], add_eos_token: yes}\n"
        "total_steps: 1e6\n"
        "arena_bytes: 2GiB\n"
        "load_checkpoint: ~\n"
        "logger: {output_dir: /tmp/run1, experiment_id: x, online: False, append_uuid: false}\n";
    bpt_config c;
    char err[512] = "";
    int rc = bpt_config_from_yaml_string(&c, yaml, err, sizeof err);
    CHECK(rc == 0, "nested and dotted YAML parses (%s)", err);
    CHECK(c.seed == 7 && !strcmp(c.mesh_dim, "1,-1,2") && c.dtype == BPT_DTYPE_FP32, "top-level YAML keys, list mesh_dim");
    CHECK(c.llama.hidden_size == 256 && c.llama.num_attention_heads == 8 && c.llama.scan_attention &&
          c.llama.remat_attention == BPT_REMAT_NOTHING && c.llama.scan_mlp && c.llama.rms_norm_eps == 1e-5,
          "nested and dotted llama keys");
    CHECK(c.optimizer.adamw.lr == 3e-4 && c.optimizer.adamw.lr_warmup_steps == 100, "flow mapping");
    CHECK(c.train_dataset.type == BPT_DATA_TEXT && !strcmp(c.train_dataset.text.path, "data/x.jsonl") &&
          c.train_dataset.text.seq_length == 512 && bpt_dataset_source(&c.train_dataset) == &c.train_dataset.text &&
          !strcmp(c.train_dataset.fields, "title,body") && c.train_dataset.add_eos_token,
          "dataset keys, list joined with commas");
    CHECK(c.total_steps == 1000000 && c.arena_bytes == 2147483648LL && !c.load_checkpoint[0] &&
          !strcmp(c.output_dir, "/tmp/run1"), "1e6 integer, byte suffix, null string, logger keys");

    /* from a file through --config; the reference's json_dataset spelling */
    const char *path = write_tmp("train_dataset:\n  type: json\n  json_dataset:\n    seq_length: 256\n"
                                 "    path: a.jsonl\n    tokenizer_processes: 16\n");
    rc = from_args(&c, err, sizeof err, "--config", (char *)path, NULL);
    CHECK(rc == 0 && c.train_dataset.type == BPT_DATA_JSON && c.train_dataset.text.seq_length == 256 &&
          !strcmp(c.train_dataset.text.path, "a.jsonl") && c.train_dataset.tokenizer_processes == 16 &&
          bpt_dataset_source(&c.train_dataset) == &c.train_dataset.text && !strcmp(c.config_file, path),
          "json type streams; json_dataset keys are the text_dataset ones (%s)", rc ? err : "");
    CHECK(bpt_config_from_yaml_string(&c, "", err, sizeof err) == 0 && c.seed == 42, "empty YAML = defaults");
}

static void test_cli(void) {
    bpt_config c;
    char err[512] = "";
    const char *path = write_tmp("llama:\n  scan_query_chunk_size: 512\n  scan_attention: true\nseed: 3\n");
    int rc = from_args(&c, err, sizeof err, "--llama.scan_query_chunk_size=256", "--config", (char *)path,
                       "--seed", "9", NULL);
    CHECK(rc == 0 && c.llama.scan_query_chunk_size == 256 && c.seed == 9 && c.llama.scan_attention,
          "command line beats YAML whatever the order (%s)", err);
    char opt[600];
    snprintf(opt, sizeof opt, "--config=%s", path);
    rc = from_args(&c, err, sizeof err, opt, "--print_config", "--dtype", "bfloat16", NULL);
    CHECK(rc == 0 && c.seed == 3 && c.print_config && c.dtype == BPT_DTYPE_BF16, "--config=FILE, --print_config, --key value");
    rc = from_args(&c, err, sizeof err, "--print_config=false", "--mesh_dim", "-1,1,2", "--seed", "-0", NULL);
    CHECK(rc == 0 && !c.print_config && !strcmp(c.mesh_dim, "-1,1,2") && c.seed == 0,
          "--print_config=false; a value starting with '-' after --key (%s)", err);
    rc = from_args(&c, err, sizeof err, "--llama.scan_attention", "--autoresume", "false",
                   "--llama.scan_mlp", "--log_all_worker", "True", NULL);
    CHECK(rc == 0 && c.llama.scan_attention && !c.autoresume && c.llama.scan_mlp && c.log_all_worker,
          "boolean flags alone mean true, or take the next argument");

    /* booleans in every spelling */
    static const char *yes[] = { "true", "True", "TRUE", "tRuE", "yes", "Yes", "on", "1" };
    static const char *no[] = { "false", "False", "FALSE", "no", "No", "off", "0" };
    int ok = 1;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(opt, sizeof opt, "--autoresume=%s", yes[i]);
        ok &= from_args(&c, err, sizeof err, opt, NULL) == 0 && c.autoresume == 1;
        char y[64];
        snprintf(y, sizeof y, "checkpointer:\n  save_optimizer_state: %s\n", yes[i]);
        ok &= bpt_config_from_yaml_string(&c, y, err, sizeof err) == 0 && c.ckpt_save_optimizer_state == 1;
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        snprintf(opt, sizeof opt, "--llama.use_cache=%s", no[i]);
        ok &= from_args(&c, err, sizeof err, opt, NULL) == 0 && c.llama.use_cache == 0;
    }
    CHECK(ok, "booleans: true/True/TRUE/yes/on/1 and false/False/FALSE/no/off/0");

    /* the seed README's command line, modulo paths and the tokenizer */
    rc = from_args(&c, err, sizeof err, "--mesh_dim=1,64,4", "--dtype=bf16", "--total_steps=480000",
                   "--log_freq=200", "--save_model_freq=0", "--save_milestone_freq=1000",
                   "--load_llama_config=7b", "--update_llama_config=", "--load_dataset_state=",
                   "--load_checkpoint=", "--tokenizer.vocab_file=bytes", "--optimizer.type=adamw",
                   "--optimizer.adamw_optimizer.weight_decay=0.1", "--optimizer.adamw_optimizer.lr=1.5e-4",
                   "--optimizer.adamw_optimizer.end_lr=1.5e-5", "--optimizer.adamw_optimizer.lr_warmup_steps=2000",
                   "--optimizer.adamw_optimizer.lr_decay_steps=480000", "--train_dataset.type=json",
                   "--train_dataset.text_processor.fields=text", "--train_dataset.json_dataset.path=/d/x.jsonl",
                   "--train_dataset.json_dataset.seq_length=32768", "--train_dataset.json_dataset.batch_size=64",
                   "--train_dataset.json_dataset.tokenizer_processes=16", "--checkpointer.save_optimizer_state=True",
                   "--llama.scan_attention=True", "--llama.remat_attention=nothing_saveable",
                   "--llama.scan_query_chunk_size=2048", "--llama.scan_key_chunk_size=4096",
                   "--llama.scan_mlp=True", "--llama.remat_mlp=nothing_saveable", "--llama.scan_mlp_chunk_size=2048",
                   "--llama.remat_block=", "--llama.scan_layers=True", "--llama.param_scan_axis=0",
                   "--llama.max_sequence_length=32768", "--logger.online=True", "--logger.experiment_id=abc",
                   NULL);
    CHECK(rc == 0 && c.llama.hidden_size == 4096 && c.llama.max_sequence_length == 32768 &&
          c.train_dataset.text.seq_length == 32768 && c.train_dataset.text.batch_size == 64 &&
          c.llama.scan_key_chunk_size == 4096 && c.llama.remat_mlp == BPT_REMAT_NOTHING &&
          c.optimizer.adamw.lr == 1.5e-4, "the reference README command line (%s)", err);
}

static void test_presets(void) {
    bpt_config c;
    char err[512] = "";
    int rc = from_args(&c, err, sizeof err, "--llama.max_sequence_length=32768", "--load_llama_config=7b",
                       "--train_dataset.hdf5_dataset.seq_length=32768", NULL);
    CHECK(rc == 0 && c.llama.hidden_size == 4096 && c.llama.max_sequence_length == 32768,
          "preset + explicit --llama.max_sequence_length honoured (pitfall 2) (%s)", err);
    rc = bpt_config_from_yaml_string(&c, "load_llama_config: 13b\nllama: {num_hidden_layers: 2}\n", err, sizeof err);
    CHECK(rc == 0 && c.llama.hidden_size == 5120 && c.llama.num_attention_heads == 40 &&
          c.llama.num_hidden_layers == 2, "explicit YAML llama key beats the preset");
    rc = from_args(&c, err, sizeof err, "--load_llama_config=65b", NULL);
    CHECK(rc == 0 && c.llama.rms_norm_eps == 1e-5 && c.llama.intermediate_size == 22016 &&
          c.llama.num_hidden_layers == 80, "65b preset");
    bpt_llama_config l;
    int ok = bpt_llama_preset(&l, "tiny") == 0 && l.vocab_size == 256 && l.hidden_size == 64 &&
             l.intermediate_size == 176 && l.num_hidden_layers == 2 && l.num_attention_heads == 4 &&
             l.num_key_value_heads == 2 && l.max_sequence_length == 512 && l.use_cache == 1 &&
             l.scan_query_chunk_size == 1024;
    ok &= bpt_llama_preset(&l, "demo") == 0 && l.vocab_size == 256 && l.hidden_size == 128 &&
          l.intermediate_size == 352 && l.num_hidden_layers == 4 && bpt_kv_heads(&l) == 4 &&
          l.max_sequence_length == 1024;
    ok &= bpt_llama_preset(&l, "bench512") == 0 && l.vocab_size == 32000 && l.hidden_size == 512 &&
          l.intermediate_size == 1408 && l.num_hidden_layers == 8 && l.num_attention_heads == 8 &&
          l.max_sequence_length == 1048576;
    ok &= bpt_llama_preset(&l, "3b") == 0 && bpt_head_dim(&l) == 100;
    ok &= bpt_llama_preset(&l, "nope") == -1;
    CHECK(ok, "bpt_llama_preset: tiny, demo, bench512, 3b, unknown");
    CHECK(!strcmp(bpt_llama_preset_names(), "debug, 1b, 3b, 7b, 13b, 30b, 65b, tiny, demo, bench512"),
          "bpt_llama_preset_names");
    const char *names[] = { "debug", "1b", "3b", "7b", "13b", "30b", "65b", "tiny", "demo", "bench512" };
    ok = 1;
    for (int i = 0; i < 10; i++) {
        char y[128];
        snprintf(y, sizeof y, "load_llama_config: %s\ntrain_dataset.hdf5_dataset.seq_length: 512\n", names[i]);
        ok &= bpt_config_from_yaml_string(&c, y, err, sizeof err) == 0;
    }
    CHECK(ok, "every preset validates");
}

static void test_update(void) {
    bpt_config c;
    char err[512] = "";
    int rc = bpt_config_from_yaml_string(&c,
        "load_llama_config: 7b\n"
        "llama.max_sequence_length: 4096\n"
        "update_llama_config:\n  max_sequence_length: 8192\n  remat_mlp: nothing_saveable\n  scan_mlp: True\n",
        err, sizeof err);
    CHECK(rc == 0 && c.llama.max_sequence_length == 8192 && c.llama.remat_mlp == BPT_REMAT_NOTHING &&
          c.llama.scan_mlp && c.llama.hidden_size == 4096 && strstr(c.update_llama_config, "max_sequence_length"),
          "update_llama_config as a YAML mapping, applied after explicit keys (%s)", err);
    rc = from_args(&c, err, sizeof err, "--load_llama_config=7b",
                   "--update_llama_config=dict(max_sequence_length=32768, scan_mlp=True, remat_attention='dots_saveable')",
                   NULL);
    CHECK(rc == 0 && c.llama.max_sequence_length == 32768 && c.llama.scan_mlp &&
          c.llama.remat_attention == BPT_REMAT_DOTS, "update_llama_config as dict(...) (%s)", err);
    rc = from_args(&c, err, sizeof err, "--update_llama_config={num_hidden_layers: 3, tie_word_embeddings: true}", NULL);
    CHECK(rc == 0 && c.llama.num_hidden_layers == 3 && c.llama.tie_word_embeddings,
          "update_llama_config as a flow string (%s)", err);
    rc = from_args(&c, err, sizeof err, "--update_llama_config=", "--update_llama_config=dict()", NULL);
    CHECK(rc == 0 && c.llama.num_hidden_layers == 32, "empty update_llama_config and dict()");
}

/* mesh_dim has one parser: the config's check and the mesh (bpt_mesh_parse, on the
 * ranks the sizes multiply to) accept and refuse the same strings, with the same sizes. */
static void test_mesh_dim_one_parser(void) {
    static const struct { const char *v; int ok, dims[4]; } cases[] = {
        {"1,-1,1", 1, {1, 4, 1, 1}}, {"dp :2, fsdp: 1 ,tp:2", 1, {2, 1, 2, 1}}, {"tp:2,dp:1,fsdp:2", 1, {1, 2, 2, 1}},
        {"mp:4,dp:1,fsdp:1", 1, {1, 1, 4, 1}}, {" 2 , 2 , 1 ", 1, {2, 2, 1, 1}}, {"1,2,1,1", 1, {1, 2, 1, 1}},
        {"1,1,2,-1", 1, {1, 1, 2, 2}}, {"sp:4,dp:1,tp:1,fsdp:1", 1, {1, 1, 1, 4}}, {"dp:1,fsdp:2,tp:1", 1, {1, 2, 1, 1}},
        {"1,20000000,1", 0, {0}}, {"1,0,1", 0, {0}}, {"1,-2,1", 0, {0}}, {"1,2", 0, {0}}, {"1,2,1,1,1", 0, {0}},
        {"1,1,1,0", 0, {0}}, {"dp:1,2,1", 0, {0}}, {"dp:1,dp:2,tp:1", 0, {0}}, {"sp:1,dp:1,tp:1", 0, {0}},
        {"dp:1,fsdp:1,tp:1,1", 0, {0}}, {"sp:2,sp:2,dp:1,fsdp:1", 0, {0}}, {"-1,-1,1", 0, {0}},
        {"1,x,1", 0, {0}}, {"!1,-1,1", 0, {0}}, {"", 0, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[512] = "", err[512] = "";
        int d[4] = {0, 0, 0, 0}, m[4] = {0, 0, 0, 0};
        int cfg_ok = bpt_mesh_dim_parse(cases[i].v, d, why, sizeof why) == 0;
        const int *want = cases[i].dims;
        int world = cases[i].ok ? want[0] * want[1] * want[2] * want[3] : 4;
        int mesh_ok = bpt_mesh_parse(cases[i].v, world, m, err, sizeof err) == 0;
        int same_dims = !cases[i].ok || memcmp(m, want, sizeof m) == 0;
        int ok = cfg_ok == cases[i].ok && mesh_ok == cases[i].ok && same_dims;
        CHECK(ok, "mesh_dim '%s': the config and the mesh both %s it", cases[i].v, cases[i].ok ? "accept" : "refuse");
        if (!ok) tap_note("config: %s; mesh: %s", cfg_ok ? "accepts" : why, mesh_ok ? "accepts" : err);
    }
}

static void test_errors(void) {
    /* unknown keys and suggestions */
    args_err("unknown CLI key", ARGS("--llama.scan_attn=true"),
             "unknown config key 'llama.scan_attn'", "did you mean 'llama.scan_attention'", NULL);
    args_err("missing prefix", ARGS("--max_sequence_length=4096"),
             "unknown config key 'max_sequence_length'", "'llama.max_sequence_length'", NULL);
    args_err("typo in option", ARGS("--print_confg"), "did you mean 'print_config'", NULL);
    args_err("section as a key", ARGS("--llama=7b"), "unknown config key 'llama'", "section", NULL);
    yaml_err("section given a scalar", "optimizer:\n  adamw_optimizer: 3\n",
             "<yaml>:2:3", "'optimizer.adamw_optimizer'", "section", NULL);
    yaml_err("two spellings of one key", "train_dataset:\n  json_dataset: {path: a}\n  text_dataset: {path: b}\n",
             "'train_dataset.text_dataset.path' given twice", NULL);
    yaml_err("unknown YAML key", "llama:\n  scan_atention: true\n",
             "<yaml>:2:3", "unknown config key 'llama.scan_atention'", "did you mean 'llama.scan_attention'", NULL);
    yaml_err("unknown nested dataset key", "train_dataset:\n  hdf5_dataset:\n    seqlen: 3\n",
             "did you mean 'train_dataset.hdf5_dataset.seq_length'", NULL);
    yaml_err("duplicate key", "seed: 1\nseed: 2\n", "'seed' given twice", NULL);

    /* values */
    args_err("bad int", ARGS("--llama.hidden_size=abc"), "bad value for llama.hidden_size: 'abc' (expected an integer", NULL);
    args_err("non-integral int", ARGS("--total_steps=1.5"), "bad value for total_steps: '1.5'", NULL);
    args_err("bad float", ARGS("--optimizer.adamw_optimizer.lr=fast"),
             "bad value for optimizer.adamw_optimizer.lr: 'fast' (expected a number", NULL);
    args_err("bad bool", ARGS("--llama.scan_mlp=maybe"), "bad value for llama.scan_mlp: 'maybe' (expected true or false)", NULL);
    args_err("zero vocab", ARGS("--llama.vocab_size=0"), "bad value for llama.vocab_size: '0'", ">= 1", NULL);
    args_err("negative size", ARGS("--llama.num_hidden_layers=-2"), "llama.num_hidden_layers", "'-2'", NULL);
    args_err("int overflow", ARGS("--llama.hidden_size=99999999999"), "llama.hidden_size", NULL);
    args_err("eps range", ARGS("--llama.rms_norm_eps=0"), "llama.rms_norm_eps", "> 0", NULL);
    args_err("beta range", ARGS("--optimizer.adamw_optimizer.b2=1"), "optimizer.adamw_optimizer.b2", "in [0, 1)", NULL);
    args_err("log_freq", ARGS("--log_freq=0"), "bad value for log_freq: '0'", NULL);
    args_err("accumulate_gradient_steps", ARGS("--optimizer.accumulate_gradient_steps=0"),
             "bad value for optimizer.accumulate_gradient_steps: '0'", NULL);
    args_err("dtype fp16", ARGS("--dtype=fp16"), "bad value for dtype: 'fp16'", "bf16", "fp32", NULL);
    args_err("dtype fp64", ARGS("--dtype=float64"), "bad value for dtype: 'float64'", "not supported", NULL);
    args_err("device", ARGS("--device=tpu"), "bad value for device: 'tpu'", "cpu, cuda", NULL);
    args_err("palm", ARGS("--optimizer.type=palm"), "optimizer.type", "palm", "not supported", NULL);
    /* found by fuzz_config_args: the printed config (YAML, UTF-8) must load again */
    args_err("invalid UTF-8", ARGS("--load_dataset_state=\xff" "4"), "load_dataset_state", "not valid UTF-8", NULL);
    /* ... and YAML's printable characters only (found by fuzz_config_args: U+007F) */
    args_err("DEL", ARGS("--load_dataset_state=et.c\x7f"), "bad value for load_dataset_state", "control character U+007F", NULL);
    args_err("C1 control", ARGS("--load_checkpoint=a\xc2\x90"), "bad value for load_checkpoint", "control character U+0090", NULL);
    args_err("newline", ARGS("--logger.output_dir=a\nb"), "bad value for logger.output_dir", "control character U+000A", NULL);
    args_err("ckpt float dtype", ARGS("--checkpointer.float_dtype=fp16"), "checkpointer.float_dtype", "fp16", NULL);
    args_err("ckpt keep", ARGS("--checkpointer.keep=-1"), "checkpointer.keep", "-1", NULL);
    args_err("remat", ARGS("--llama.remat_mlp=nothing"), "bad value for llama.remat_mlp: 'nothing'",
             "nothing_saveable", "dots_with_no_batch_dims_saveable", NULL);
    args_err("dataset type", ARGS("--train_dataset.type=huggingface"), "train_dataset.type", "hdf5, text", NULL);
    args_err("unknown preset", ARGS("--load_llama_config=8b"), "load_llama_config", "'8b'",
             "debug, 1b, 3b, 7b, 13b, 30b, 65b, tiny, demo, bench512", NULL);
    args_err("json preset", ARGS("--load_llama_config=json::/x/c.json"), "load_llama_config", "json::", "not supported", NULL);
    args_err("bytes", ARGS("--arena_bytes=4XB"), "bad value for arena_bytes: '4XB'", NULL);

    /* mesh_dim */
    args_err("mesh two -1", ARGS("--mesh_dim=1,-1,-1"), "bad value for mesh_dim: '1,-1,-1'", "at most one", NULL);
    args_err("mesh parts", ARGS("--mesh_dim=1,8"), "bad value for mesh_dim: '1,8'", NULL);
    args_err("mesh zero", ARGS("--mesh_dim=1,0,1"), "mesh_dim", NULL);
    args_err("mesh axis", ARGS("--mesh_dim=dp:1,fsdp:2,cp:1"), "mesh_dim", "unknown axis 'cp'", NULL);
    args_err("mesh mixed", ARGS("--mesh_dim=dp:1,2,1"), "mesh_dim", "every axis or none", NULL);
    args_err("mesh bang", ARGS("--mesh_dim=!1,-1,1"), "mesh_dim", NULL);
    yaml_err("mesh list", "mesh_dim: [1, 2]\n", "mesh_dim", NULL);
    bpt_config c;
    char err[512];
    int ok = from_args(&c, err, sizeof err, "--mesh_dim=dp:2,fsdp:-1,mp:1", NULL) == 0;
    ok &= from_args(&c, err, sizeof err, "--mesh_dim=tp:4, fsdp:2 ,dp:1", NULL) == 0;
    ok &= from_args(&c, err, sizeof err, "--mesh_dim=1,64,4", NULL) == 0;
    CHECK(ok, "mesh_dim: named forms (mp alias, any order) and plain form");

    /* model shape */
    args_err("hidden % heads", ARGS("--llama.hidden_size=100", "--llama.num_attention_heads=3"),
             "llama.hidden_size (100)", "llama.num_attention_heads (3)", NULL);
    args_err("odd head dim", ARGS("--llama.hidden_size=100", "--llama.num_attention_heads=4"), "25", "even", NULL);
    args_err("heads % kv heads", ARGS("--llama.num_key_value_heads=5"),
             "llama.num_attention_heads (32)", "llama.num_key_value_heads (5)", NULL);
    args_err("eos >= vocab", ARGS("--load_llama_config=tiny", "--train_dataset.hdf5_dataset.seq_length=512",
                                  "--llama.eos_token_id=256"), "llama.eos_token_id (256)", "llama.vocab_size (256)", NULL);
    args_err("dropout", ARGS("--llama.attn_pdrop=0.1"), "llama.attn_pdrop", "not supported", NULL);
    args_err("fcm", ARGS("--llama.fcm_max_ratio=0.5"), "llama.fcm_max_ratio", "not supported", NULL);
    args_err("bf16 momentum", ARGS("--optimizer.adamw_optimizer.bf16_momentum"), "bf16_momentum", "not supported", NULL);
    args_err("byte vocab", ARGS("--llama.vocab_size=128", "--train_dataset.type=text"), "llama.vocab_size (128)", "256", NULL);
    args_err("update unknown", ARGS("--update_llama_config=dict(max_seq_length=4096)"),
             "update_llama_config", "'max_seq_length'", "did you mean 'max_sequence_length'", NULL);
    args_err("update bad value", ARGS("--update_llama_config={hidden_size: big}"),
             "update_llama_config", "llama.hidden_size", "'big'", NULL);
    args_err("update syntax", ARGS("--update_llama_config=dict(max_sequence_length 4)"), "update_llama_config", NULL);
    args_err("update not a mapping", ARGS("--update_llama_config=max_sequence_length"), "update_llama_config", NULL);

    /* pitfall 2: sequence longer than the RoPE table; both keys and values named */
    args_err("seq_length > max_sequence_length", ARGS("--load_llama_config=7b", "--train_dataset.hdf5_dataset.seq_length=4096"),
             "train_dataset.hdf5_dataset.seq_length (4096)", "llama.max_sequence_length (2048)", NULL);
    args_err("eval seq_length", ARGS("--eval_steps=2", "--eval_dataset.type=text", "--eval_dataset.text_dataset.seq_length=4096"),
             "eval_dataset.text_dataset.seq_length (4096)", "llama.max_sequence_length (2048)", NULL);
    CHECK(from_args(&c, err, sizeof err, "--eval_dataset.hdf5_dataset.seq_length=4096", NULL) == 0,
          "eval dataset not checked when eval_steps is 0");

    /* command-line syntax */
    args_err("non-option", ARGS("--seed=1", "train.yaml"), "unexpected argument 'train.yaml'", NULL);
    args_err("single dash", ARGS("-seed=1"), "unexpected argument '-seed=1'", NULL);
    args_err("missing value", ARGS("--seed"), "missing value for --seed", NULL);
    args_err("missing file", ARGS("--config", "/nonexistent/x.yaml"), "/nonexistent/x.yaml", NULL);
    args_err("config twice", ARGS("--config=a", "--config=b"), "--config given twice", NULL);

    /* YAML syntax and shape */
    const char *bad = write_tmp("seed: 1\nllama:\n  hidden_size: 64\n bad: [\n");
    args_err("YAML syntax error", ARGS("--config", bad), bad, ":4:", "YAML syntax error", NULL);
    yaml_err("YAML bad indentation", "a: b\n  c: d\n", "<yaml>:2:", NULL);
    yaml_err("mapping for a scalar key", "llama:\n  hidden_size: {a: 1}\n", "llama.hidden_size", "a mapping", NULL);
    yaml_err("list for a scalar key", "seed: [1, 2]\n", "seed", "a list", NULL);
    yaml_err("top-level list", "- a\n- b\n", "mapping", NULL);
    yaml_err("bad YAML value has location", "optimizer:\n  adamw_optimizer:\n    lr: x\n",
             "<yaml>:3:5", "bad value for optimizer.adamw_optimizer.lr: 'x'", NULL);
}

static void test_chunks(void) {
    bpt_config c;
    char err[512] = "";
    args_err("Bq does not divide T", ARGS("--llama.scan_attention", "--llama.scan_query_chunk_size=768"),
             "train_dataset.hdf5_dataset.seq_length (1024)", "llama.scan_query_chunk_size (768)", "scan_attention", NULL);
    args_err("Bk does not divide T", ARGS("--llama.scan_attention", "--llama.scan_key_chunk_size=300"),
             "llama.scan_key_chunk_size (300)", NULL);
    args_err("Bf does not divide T", ARGS("--llama.scan_mlp", "--llama.scan_mlp_chunk_size=100"),
             "llama.scan_mlp_chunk_size (100)", "scan_mlp", NULL);
    args_err("loss chunk does not divide T", ARGS("--llama.scan_loss=true", "--llama.scan_loss_chunk_size=3"),
             "llama.scan_loss_chunk_size (3)", "scan_loss", NULL);
    CHECK(from_args(&c, err, sizeof err, "--llama.scan_query_chunk_size=768", "--llama.scan_mlp_chunk_size=100",
                    "--llama.scan_loss_chunk_size=3", NULL) == 0,
          "chunk sizes are not checked when their scan is off");
    int rc = from_args(&c, err, sizeof err, "--llama.scan_attention", "--llama.scan_mlp", "--llama.scan_loss",
                       "--llama.scan_query_chunk_size=4096", "--llama.scan_key_chunk_size=2048",
                       "--llama.scan_mlp_chunk_size=3000", "--llama.scan_loss_chunk_size=1025", NULL);
    CHECK(rc == 0 && c.llama.scan_query_chunk_size == 4096,
          "chunks larger than seq_length are clamped (and kept as given) (%s)", err);
    rc = from_args(&c, err, sizeof err, "--llama.scan_attention", "--llama.scan_query_chunk_size=256",
                   "--llama.scan_key_chunk_size=512", "--train_dataset.hdf5_dataset.seq_length=1536", NULL);
    CHECK(rc == 0, "Bq=256, Bk=512 divide T=1536 (%s)", err);
    args_err("text source is the one checked", ARGS("--train_dataset.type=text", "--llama.scan_attention",
             "--train_dataset.text_dataset.seq_length=1000", "--llama.scan_query_chunk_size=512"),
             "train_dataset.text_dataset.seq_length (1000)", NULL);
}

static int roundtrip(const char *what, bpt_config *c) {
    char err[512] = "";
    char *y1 = bpt_config_to_yaml(c);
    bpt_config d;
    int rc = bpt_config_from_yaml_string(&d, y1, err, sizeof err);
    char *y2 = rc == 0 ? bpt_config_to_yaml(&d) : NULL;
    int ok = rc == 0 && y2 && !strcmp(y1, y2);
    ok &= rc == 0 && d.llama.max_sequence_length == c->llama.max_sequence_length &&
          d.llama.rms_norm_eps == c->llama.rms_norm_eps && d.optimizer.adamw.lr == c->optimizer.adamw.lr &&
          d.seed == c->seed && !strcmp(d.update_llama_config, c->update_llama_config);
    CHECK(ok, "round trip through bpt_config_to_yaml: %s %s", what, err);
    if (!ok) tap_note("---- first\n%s---- second\n%s----", y1, y2 ? y2 : "(none)");
    free(y1);
    free(y2);
    return ok;
}

static void test_roundtrip(void) {
    bpt_config c;
    char err[512] = "";
    bpt_config_defaults(&c);
    bpt_config_finalize(&c, err, sizeof err);
    roundtrip("defaults", &c);
    int rc = from_args(&c, err, sizeof err, "--load_llama_config=7b", "--llama.max_sequence_length=32768",
                       "--update_llama_config=dict(rms_norm_eps=3.3e-7, scan_mlp=True)", "--seed=123456789012",
                       "--optimizer.adamw_optimizer.lr=1.5e-4", "--optimizer.adamw_optimizer.b2=0.999",
                       "--logger.output_dir=/tmp/it's here", "--train_dataset.text_processor.fields=a,[b],c+d",
                       "--llama.remat_block=dots_with_no_batch_dims_saveable", "--arena_bytes=3GiB",
                       "--mesh_dim=dp:1,fsdp:-1,tp:2", "--llama.initializer_range=0.1", "--peak_flops=9.89e14", NULL);
    CHECK(rc == 0, "complex config (%s)", err);
    roundtrip("preset, explicit, update, odd strings", &c);
    rc = bpt_config_from_yaml_string(&c, "load_llama_config: tiny\nupdate_llama_config: {max_sequence_length: 256}\n"
                                     "train_dataset.hdf5_dataset.seq_length: 256\n", err, sizeof err);
    CHECK(rc == 0 && c.llama.max_sequence_length == 256, "tiny with a mapping update (%s)", err);
    roundtrip("update mapping", &c);
    char *y = bpt_config_to_yaml(&c);
    CHECK(y && strstr(y, "\nllama:\n  vocab_size: 256\n") && strstr(y, "load_llama_config: 'tiny'") &&
          strstr(y, "  adamw_optimizer:\n    init_lr: 0") && strstr(y, "update_llama_config: '{max_sequence_length: 256}'"),
          "to_yaml is nested and shows load/update as given");
    free(y);

    /* finalize is repeatable; set + finalize */
    rc = bpt_config_finalize(&c, err, sizeof err);
    CHECK(rc == 0 && c.llama.max_sequence_length == 256 && c.llama.hidden_size == 64, "finalize twice");
    rc = bpt_config_set(&c, "llama.num_hidden_layers", "5", err, sizeof err);
    rc |= bpt_config_set(&c, "train_dataset.hdf5_dataset.batch_size", "4", err, sizeof err);
    rc |= bpt_config_finalize(&c, err, sizeof err);
    CHECK(rc == 0 && c.llama.num_hidden_layers == 5 && c.llama.hidden_size == 64 && c.train_dataset.hdf5.batch_size == 4,
          "bpt_config_set + finalize keeps the preset and the explicit key");
    rc = bpt_config_set(&c, "llama.num_layers", "5", err, sizeof err);
    CHECK(rc != 0 && strstr(err, "did you mean 'llama.num_hidden_layers'"), "bpt_config_set unknown key: %s", err);
}

int main(void) {
    test_defaults();
    test_yaml();
    test_cli();
    test_presets();
    test_update();
    test_errors();
    test_mesh_dim_one_parser();
    test_chunks();
    test_roundtrip();
    for (int i = 0; i < ntmp; i++) unlink(tmpfiles[i]);
    return tap_done();
}
