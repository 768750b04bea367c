/* main.c — the bpt command line. */
#include "bpt/bpt.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: bpt <command> [--config FILE] [--key=value ...]\n"
        "\n"
        "commands:\n"
        "  train    train a model (e.g. mpirun -np 1 bpt train --config jobs/configs/demo.yaml)\n"
        "  eval     evaluate a checkpoint: --load_checkpoint params::FILE --eval_steps N\n"
        "  plan     [--world_size N] per-rank memory and communication of one training step on\n"
        "           the mesh (mesh_dim), exact, without running the model\n"
        "  ckpt inspect FILE|CKPT_DIR [--json] | export FILE|CKPT_DIR --format safetensors --output DIR\n"
        "       | import DIR --output FILE\n"
        "           look into a checkpoint; Hugging Face LlamaForCausalLM interchange\n"
        "  data prepare --input A.jsonl[,B] [--tokenizer FILE] [--fields F] --output FILE\n"
        "           tokenize JSONL in parallel over the ranks into an HDF5 token file\n"
        "  data inspect FILE | data synth --output FILE [--tokens N] [--seed S]\n"
        "  help     this text; bpt <command> --help (or bpt help <command>) for one command;\n"
        "           bpt help config [KEY]: every config key (or one): type, default, meaning\n"
        "\n"
        "options:\n"
        "  --config FILE      YAML whose keys are the reference's flag names (docs/config.md)\n"
        "  --key=value        override any key, e.g. --llama.scan_attention=true\n"
        "  --print_config     print the resolved config as YAML and exit\n"
        "  --version          version and compiled backends\n");
}

/* bpt <command> --help: what the command does, its usage, the keys most runs set. */
static const struct { const char *cmd, *text; } command_help[] = {
    {"train",
     "usage: mpirun -np N bpt train --config FILE [--key=value ...]\n"
     "\n"
     "Train on the mesh mesh_dim (dp,fsdp,tp[,sp]; product = N ranks). Writes\n"
     "<logger.output_dir>/metrics.jsonl and checkpoints under <logger.output_dir>/ckpt/.\n"
     "\n"
     "common keys:\n"
     "  --mesh_dim=1,-1,1                       dp,fsdp,tp[,sp] (or dp:2,fsdp:2,tp:2,sp:2; one -1)\n"
     "  --load_llama_config=7b                  a preset model (debug, 1b, 3b, 7b, 13b, ...)\n"
     "  --total_steps=N --log_freq=N            steps to run, how often to log\n"
     "  --train_dataset.type=hdf5 --train_dataset.hdf5_dataset.path=FILE\n"
     "  --llama.scan_attention=true --llama.scan_mlp=true --llama.scan_loss=true\n"
     "  --llama.remat_block=nothing_saveable    what the forward keeps for the backward\n"
     "  --optimizer.adamw_optimizer.lr=3e-4     learning rate (and warmup, decay, clipping)\n"
     "  --logger.output_dir=DIR --save_model_freq=N --autoresume=true\n"
     "  --device=cpu|cuda --dtype=fp32|bf16\n"
     "  --print_config                          print the resolved config as YAML and exit\n"},
    {"eval",
     "usage: mpirun -np N bpt eval --config FILE --load_checkpoint params::FILE|DIR --eval_steps N\n"
     "\n"
     "Evaluate a checkpoint (FILE, or a checkpoint directory: the one its `latest` names) on\n"
     "eval_dataset; prints {\"loss\", \"accuracy\", \"tokens\"} as JSON on stdout.\n"
     "\n"
     "common keys:\n"
     "  --load_checkpoint=params::FILE          or trainstate::FILE, trainstate_params::FILE\n"
     "  --eval_steps=N                          batches to evaluate\n"
     "  --eval_dataset.type=hdf5 --eval_dataset.hdf5_dataset.path=FILE\n"
     "  --mesh_dim=1,-1,1 --load_llama_config=NAME --llama.max_sequence_length=T\n"},
    {"plan",
     "usage: bpt plan [--world_size N] [--config FILE] [--key=value ...]\n"
     "\n"
     "Per-rank memory (exact arena bytes, and what fills it at its peak) and communication\n"
     "of one training step on rank 0 of the mesh, computed without running the model.\n"
     "\n"
     "  --world_size=N                          ranks to plan for (default: the ranks of this run);\n"
     "                                          mesh_dim's product must equal it\n"
     "  --load_llama_config=7b --mesh_dim=1,64,4 --train_dataset.hdf5_dataset.seq_length=32768\n"
     "  --train_dataset.hdf5_dataset.batch_size=64 --llama.scan_query_chunk_size=2048\n"},
    {"ckpt",
     "usage: bpt ckpt inspect FILE|DIR [--json]\n"
     "       bpt ckpt export FILE|DIR --format safetensors --output DIR\n"
     "       bpt ckpt import DIR --output FILE\n"
     "\n"
     "Look into a checkpoint (tensors, shapes, norms, step, config); hand its weights to\n"
     "Hugging Face (model.safetensors + config.json of LlamaForCausalLM) and back.\n"
     "A directory means the checkpoint its `latest` names. See docs/checkpoint-tools.md.\n"},
    {"data",
     "usage: mpirun -np N bpt data prepare --input A.jsonl[,B.jsonl] [--tokenizer FILE] [--fields text]\n"
     "                                     --output FILE.h5\n"
     "       bpt data inspect FILE.h5\n"
     "       bpt data synth --output FILE.h5 [--tokens N] [--seed S]\n"
     "\n"
     "Tokenize JSONL in parallel over the ranks into an HDF5 token file (the reference's text\n"
     "processor: --fields '[prompt],text' masks the prompt), describe one, or write the\n"
     "synthetic corpus. See docs/data.md and docs/tokenizers.md.\n"},
};

/* 1 when args hold --help or -h and cmd is a command (its help was printed). */
static int print_command_help(const char *cmd, int argc, char **argv) {
    int asked = 0;
    for (int i = 0; i < argc; i++) asked |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (!asked) return 0;
    for (size_t i = 0; i < sizeof command_help / sizeof command_help[0]; i++)
        if (!strcmp(command_help[i].cmd, cmd)) {
            fputs(command_help[i].text, stdout);
            printf("\nEvery config key, its default and meaning: docs/config.md "
                   "(bpt %s --print_config shows the resolved values).\n", cmd);
            return 1;
        }
    return 0;   /* not a command: main says so */
}

/* The config of this run: every rank parses it (the file may be node-local), and the
 * ranks agree on the outcome, so a rank that cannot read it stops them all. */
static void load_config(bpt_config *c, int for_eval, int argc, char **argv) {
    char err[1024] = "";
    bpt_config_defaults(c);
    int bad = (for_eval ? bpt_config_from_args_eval : bpt_config_from_args)(c, argc, argv, err, sizeof err) != 0;
    bpt_agree_or_exit(bad, err);
}

/* bpt plan [--world_size N] [config...]: the memory and communication of one training
 * step on one rank of the mesh, computed without running the model. */
static int plan_main(bpt_config *c, int world_size, int world_given) {
    char err[1024], b[8][32];
    bpt_plan p;
    if (bpt_plan_step(c, world_size, &p, err, sizeof err) != 0) {
        if (!world_given && strstr(err, "ranks"))   /* the mesh does not fit this run's ranks */
            bpt_die("%s (HINT: bpt plan --world_size=N plans for N ranks without running them)", err);
        bpt_die("%s", err);
    }
    const bpt_llama_config *l = &c->llama;
    size_t n = bpt_llama_num_params(l);
    double state = 4.0 * (double)p.param_bytes;
    printf("model        %.3fB parameters, L=%d D=%d H=%d KVH=%d F=%d V=%d, mode %s\n", n / 1e9,
           l->num_hidden_layers, l->hidden_size, l->num_attention_heads, bpt_kv_heads(l),
           l->intermediate_size, l->vocab_size,
           l->scan_attention ? (l->scan_mlp && l->scan_loss ? "bpt" : "memeff") : "vanilla");
    printf("remat        block '%s', attention '%s', mlp '%s'\n", bpt_remat_name(l->remat_block),
           bpt_remat_name(l->remat_attention), bpt_remat_name(l->remat_mlp));
    char spx[32] = "";
    if (p.sp > 1) snprintf(spx, sizeof spx, " x sp %d", p.sp);
    printf("mesh         %d ranks = dp %d x fsdp %d x tp %d%s; %d rows x T=%d per rank, %d micro-batch%s\n",
           world_size, p.dp, p.fsdp, p.tp, spx, p.B, p.T, c->optimizer.accumulate_gradient_steps,
           c->optimizer.accumulate_gradient_steps > 1 ? "es" : "");
    printf("\nmemory per rank (exact arena bytes)\n");
    printf("  parameters             %12s\n", bpt_fmt_bytes((double)p.param_bytes, b[0], 32));
    printf("  gradients              %12s\n", bpt_fmt_bytes((double)p.param_bytes, b[1], 32));
    printf("  optimizer (adamw m, v) %12s\n", bpt_fmt_bytes(2.0 * p.param_bytes, b[2], 32));
    printf("  kept activations       %12s  (what the remat policies keep for the backward)\n",
           bpt_fmt_bytes((double)p.kept_bytes, b[3], 32));
    printf("  in-flight and scratch  %12s  (gathered layers, blockwise chunks, recomputation)\n",
           bpt_fmt_bytes((double)p.peak_bytes - state - p.kept_bytes, b[4], 32));
    printf("  peak                   %12s  (%zu bytes)\n", bpt_fmt_bytes((double)p.peak_bytes, b[5], 32), p.peak_bytes);
    printf("\nat the peak, largest first\n");
    for (int i = 0; i < p.nat_peak; i++) {
        char what[64];
        if (p.at_peak[i].count > 1) snprintf(what, sizeof what, "%s (x%d)", p.at_peak[i].what, p.at_peak[i].count);
        else snprintf(what, sizeof what, "%s", p.at_peak[i].what);
        printf("  %-40s %12s\n", what, bpt_fmt_bytes((double)p.at_peak[i].bytes, b[6], 32));
    }
    printf("\ncommunication per step, bytes sent by one rank\n");
    const char *ax[3] = {"dp", "fsdp", "tp"};
    for (int a = 0; a < 3; a++)
        printf("  %-5s %12s%s\n", ax[a], bpt_fmt_bytes((double)p.comm_bytes[a], b[6], 32),
               a == BPT_AXIS_FSDP && p.sp > 1 ? "  (over fsdp x sp)" : "");
    if (p.sp > 1)
        printf("  sp    %12s  (the ring: K/V blocks, and dK/dV in the backward)\n",
               bpt_fmt_bytes((double)p.comm_bytes[BPT_AXIS_SP], b[7], 32));
    printf("  batch %12s  (loss statistics over dp x fsdp%s)\n", bpt_fmt_bytes((double)p.comm_bytes[BPT_AXIS_BATCH], b[7], 32),
           p.sp > 1 ? " x sp" : "");
    return 0;
}

/* bpt help config [KEY...]: from the table that parses the keys (docs/config.md agrees). */
static int help_config(int n, char **names) {
    bpt_key_info k;
    char err[1024];
    if (n == 1 && !strcmp(names[0], "--tsv")) {   /* for scripts: name, type, default, used|ignored, meaning */
        for (int i = 0; i < bpt_config_nkeys(); i++) {
            bpt_config_key_info(i, &k);
            printf("%s\t%s\t%s\t%s\t%s\n", k.name, k.type, k.def, k.ignored ? "ignored" : "used", k.help);
        }
        return 0;
    }
    if (n == 0) {
        printf("%-52s %-22s %-12s %s\n", "key", "type", "default", "meaning");
        for (int i = 0; i < bpt_config_nkeys(); i++) {
            bpt_config_key_info(i, &k);
            printf("%-52s %-22s %-12s %s\n", k.name, k.type, k.def[0] ? k.def : "''", k.help);
        }
        printf("\nbpt help config KEY for one key; docs/config.md says more about each.\n");
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (bpt_config_key_find(names[i], &k, err, sizeof err) != 0) return bpt_error(2, "%s", err);
        printf("%s\n  type     %s\n  default  %s\n  meaning  %s%s\n", k.name, k.type, k.def[0] ? k.def : "''",
               k.help, k.ignored ? " (accepted for the reference's command lines; ignored)" : "");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("bpt %s (backends: %s)\n", PACKAGE_VERSION, bpt_kernels_list());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2 && !strcmp(argv[2], "config")) return help_config(argc - 3, argv + 3);
        if (argc > 2 && print_command_help(argv[2], 1, (char *[]){"--help"})) return 0;
        usage(stdout);
        return 0;
    }
    if (print_command_help(cmd, argc - 2, argv + 2)) return 0;
    int (*fn)(bpt_config *) = NULL;
    if (!strcmp(cmd, "train")) fn = bpt_train_main;
    else if (!strcmp(cmd, "eval")) fn = bpt_eval_main;
    else if (!strcmp(cmd, "plan")) fn = NULL;
    else if (!strcmp(cmd, "data")) {
        bpt_mpi_init(&argc, &argv);
        int rc = bpt_data_main(argc - 2, argv + 2);
        bpt_mpi_exit(rc);
    } else if (!strcmp(cmd, "ckpt")) {
        bpt_mpi_init(&argc, &argv);
        int rc = bpt_ckpt_main(argc - 2, argv + 2);
        bpt_mpi_exit(rc);
    } else {
        return bpt_error(2, "unknown command '%s' (expected train, eval, plan, help or --version)", cmd);
    }
    bpt_mpi_init(&argc, &argv);
    /* bpt plan takes --world_size N (not a config key): the ranks to plan for */
    int world_size = 0, nargs = 0;
    char **args = bpt_xcalloc((size_t)argc, sizeof(char *));
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!fn && !strncmp(a, "--world_size", 12) && (a[12] == '=' || (a[12] == 0 && i + 1 < argc))) {
            const char *v = a[12] == '=' ? a + 13 : argv[++i];
            char *end;
            long w = strtol(v, &end, 10);
            if (*end || w < 1 || w > (1 << 24)) bpt_die("bad value for --world_size: '%s' (expected a positive integer)", v);
            world_size = (int)w;
            continue;
        }
        args[nargs++] = argv[i];
    }
    int world_given = world_size > 0;
    if (!fn && world_size == 0) MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    bpt_config *c = bpt_xcalloc(1, sizeof *c);
    load_config(c, fn == bpt_eval_main, nargs, args);
    free(args);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (c->print_config) {
        if (rank == 0) {
            char *y = bpt_config_to_yaml(c);
            fputs(y, stdout);
            free(y);
        }
        bpt_mpi_exit(0);
    }
    int rc = fn ? fn(c) : (rank == 0 ? plan_main(c, world_size, world_given) : 0);
    free(c);
    bpt_mpi_exit(rc);
}
