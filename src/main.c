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
        "  plan     print the exact per-rank memory of one training step, without running it\n"
        "  data synth --output FILE [--tokens N] [--seed S]\n"
        "           write the built-in synthetic corpus as byte tokens (/tokens, uint16)\n"
        "  help     this text\n"
        "\n"
        "options:\n"
        "  --config FILE      YAML whose keys are the reference's flag names (docs/config.md)\n"
        "  --key=value        override any key, e.g. --llama.scan_attention=true\n"
        "  --print_config     print the resolved config as YAML and exit\n"
        "  --version          version and compiled backends\n");
}

static void load_config(bpt_config *c, int argc, char **argv) {
    char err[1024];
    bpt_config_defaults(c);
    if (bpt_config_from_args(c, argc, argv, err, sizeof err) != 0) bpt_die("%s", err);
}

/* bpt data synth --output FILE [--tokens N] [--seed S] */
static int data_main(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "synth") != 0) {
        fprintf(stderr, "bpt: usage: bpt data synth --output FILE [--tokens N] [--seed S]\n");
        return 2;
    }
    const char *out = NULL;
    long long n = 1000000, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = strchr(a, '=');
        char key[64];
        snprintf(key, sizeof key, "%.*s", v ? (int)(v - a) : (int)strlen(a), a);
        if (!v && i + 1 < argc) v = argv[++i]; else if (v) v++;
        char *end = NULL;
        if (!v) { fprintf(stderr, "bpt: %s needs a value\n", key); return 2; }
        if (!strcmp(key, "--output")) out = v;
        else if (!strcmp(key, "--tokens")) n = strtoll(v, &end, 10);
        else if (!strcmp(key, "--seed")) seed = strtoll(v, &end, 10);
        else { fprintf(stderr, "bpt: unknown option '%s' for data synth (expected --output, --tokens, --seed)\n", key); return 2; }
        if (end && (*end || n < 2)) { fprintf(stderr, "bpt: bad value for %s: '%s' (expected an integer >= 2)\n", key, v); return 2; }
    }
    if (!out) { fprintf(stderr, "bpt: data synth needs --output FILE\n"); return 2; }
    char err[1024];
    if (bpt_data_write_synthetic(out, (uint64_t)n, (uint64_t)seed, err, sizeof err) != 0) {
        fprintf(stderr, "bpt: %s\n", err);
        return 1;
    }
    printf("wrote %lld byte tokens to %s\n", n, out);
    return 0;
}

/* bpt plan: exact arena bytes of one step, split into state and activations. */
static int plan_main(bpt_config *c) {
    const bpt_source_config *s = bpt_dataset_source(&c->train_dataset);
    size_t n = bpt_llama_num_params(&c->llama), peak = bpt_plan_peak_bytes(c, s->batch_size, s->seq_length);
    char b[5][32];
    printf("model      %.3fB parameters (T=%d, batch=%d, mode %s)\n", n / 1e9, s->seq_length, s->batch_size,
           c->llama.scan_attention ? (c->llama.scan_mlp && c->llama.scan_loss ? "bpt" : "memeff") : "vanilla");
    printf("params     %s\n", bpt_fmt_bytes(4.0 * n, b[0], 32));
    printf("grads      %s\n", bpt_fmt_bytes(4.0 * n, b[1], 32));
    printf("optimizer  %s\n", bpt_fmt_bytes(8.0 * n, b[2], 32));
    printf("activations and scratch %s\n", bpt_fmt_bytes((double)peak - 16.0 * n, b[3], 32));
    printf("peak       %s (%zu bytes)\n", bpt_fmt_bytes((double)peak, b[4], 32), peak);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("bpt %s (backends: %s)\n", PACKAGE_VERSION, bpt_kernels_list());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { usage(stdout); return 0; }
    int (*fn)(bpt_config *) = NULL;
    if (!strcmp(cmd, "train")) fn = bpt_train_main;
    else if (!strcmp(cmd, "eval")) fn = bpt_eval_main;
    else if (!strcmp(cmd, "plan")) fn = plan_main;
    else if (!strcmp(cmd, "data")) {
        MPI_Init(&argc, &argv);
        int rc = data_main(argc - 2, argv + 2);
        MPI_Finalize();
        return rc;
    } else if (!strcmp(cmd, "ckpt")) {
        fprintf(stderr, "bpt: '%s' is not available in this release\n", cmd);
        return 2;
    } else {
        fprintf(stderr, "bpt: unknown command '%s' (expected train, eval, plan, help or --version)\n", cmd);
        return 2;
    }
    MPI_Init(&argc, &argv);
    bpt_config *c = bpt_xcalloc(1, sizeof *c);
    load_config(c, argc - 2, argv + 2);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (c->print_config) {
        if (rank == 0) {
            char *y = bpt_config_to_yaml(c);
            fputs(y, stdout);
            free(y);
        }
        MPI_Finalize();
        return 0;
    }
    int rc = fn(c);
    free(c);
    MPI_Finalize();
    return rc;
}
