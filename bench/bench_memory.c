/* bench_memory — peak arena bytes of one training step vs sequence length, for vanilla,
 * memeff and bpt, and the largest T that fits a memory budget.
 *
 *   bench/bench_memory [--budget_gib 4] [--measure_max_t 4096] [config overrides...]
 *
 * Model: the bench512 preset (D=512, L=8, H=8, F=1408, V=32000), batch 1, fp32. Peaks
 * come from the null backend (bpt_plan_peak_bytes: every allocation of a real step, no
 * math); for T <= measure_max_t the step also runs on the CPU and the measured arena
 * peak is printed beside the plan (they must be equal).
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

typedef struct mode { const char *name; const char *kv[16][2]; } mode;

/* Each mode as users run it, and as the paper compares: vanilla and memeff keep what
 * autodiff keeps (no remat); bpt rematerialises attention and feed-forward. */
static const mode MODES[] = {
    {"vanilla", {{"llama.scan_attention", "false"}, {"llama.scan_mlp", "false"}, {"llama.scan_loss", "false"}, {0, 0}}},
    {"memeff", {{"llama.scan_attention", "true"}, {"llama.scan_mlp", "false"}, {"llama.scan_loss", "false"},
                {"llama.remat_attention", "nothing_saveable"}, {0, 0}}},
    {"bpt", {{"llama.scan_attention", "true"}, {"llama.scan_mlp", "true"}, {"llama.scan_loss", "true"},
             {"llama.remat_attention", "nothing_saveable"}, {"llama.remat_mlp", "nothing_saveable"},
             {"llama.remat_block", "nothing_saveable"}, {0, 0}}},
};
#define NMODES 3

static int g_argc;
static char **g_argv;

/* The benchmark's settings, then the mode's, then the user's overrides (later wins). */
static void make_config(bpt_config *c, const mode *md, int T, int same_remat) {
    char err[1024], t[64], buf[16][128];
    char *args[64];
    int n = 0;
    args[n++] = "--load_llama_config=bench512";
    args[n++] = "--train_dataset.hdf5_dataset.batch_size=1";
    snprintf(t, sizeof t, "--train_dataset.hdf5_dataset.seq_length=%d", T);
    args[n++] = t;
    for (int i = 0; md->kv[i][0]; i++) {
        snprintf(buf[i], sizeof buf[i], "--%s=%s", md->kv[i][0], md->kv[i][1]);
        args[n++] = buf[i];
    }
    if (same_remat) {
        args[n++] = "--llama.remat_attention=nothing_saveable";
        args[n++] = "--llama.remat_mlp=nothing_saveable";
        args[n++] = "--llama.remat_block=nothing_saveable";
    }
    for (int i = 0; i < g_argc && n < 64; i++) args[n++] = g_argv[i];
    if (bpt_config_from_args(c, n, args, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); exit(2); }
}

static size_t plan(const mode *md, int T, int same_remat) {
    bpt_config c;
    make_config(&c, md, T, same_remat);
    return bpt_plan_peak_bytes(&c, 1, T);
}

static size_t measure(const mode *md, int T) {
    bpt_config c;
    make_config(&c, md, T, 0);
    size_t cap = bpt_plan_peak_bytes(&c, 1, T);
    bpt_arena a;
    if (bpt_arena_init(&a, &bpt_kernels_cpu, cap) != 0) return 0;
    bpt_model *m = bpt_model_create(&c.llama, &bpt_kernels_cpu, &a, 1, T, 1, NULL);
    bpt_model_set_dtype(m, c.dtype);
    bpt_model_init_weights(m, 1);
    int32_t *tok = calloc((size_t)T, sizeof(int32_t));
    float *mask = malloc((size_t)T * sizeof(float));
    for (int i = 0; i < T; i++) { tok[i] = i % 251; mask[i] = 1; }
    double out[2] = {0, 0};
    bpt_model_forward_backward(m, tok, tok, mask, 1.0f / T, out);
    bpt_optim_stats st;
    bpt_optim_step(m, &c.optimizer.adamw, 0, &st);
    size_t peak = a.peak;
    free(tok); free(mask);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    return peak;
}

/* Largest T (a multiple of step) whose planned peak fits budget. */
static int largest_t(const mode *md, double budget, int step, int same_remat) {
    int lo = 0, hi = step;
    while (plan(md, hi, same_remat) <= budget) { lo = hi; hi *= 2; if (hi > (1 << 24)) return lo; }
    while (hi - lo > step) {
        int mid = (lo + hi) / 2 / step * step;
        if (plan(md, mid, same_remat) <= budget) lo = mid; else hi = mid;
    }
    return lo;
}

int main(int argc, char **argv) {
    double budget_gib = 4;
    int measure_max = 4096;
    char **rest = calloc((size_t)argc, sizeof(char *));
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--budget_gib") && i + 1 < argc) budget_gib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--measure_max_t") && i + 1 < argc) measure_max = atoi(argv[++i]);
        else rest[nrest++] = argv[i];
    }
    g_argc = nrest;
    g_argv = rest;
    char b[3][32];
    bpt_config c0;
    make_config(&c0, &MODES[0], 1024, 0);
    printf("peak arena bytes of one training step (batch 1, dtype %s; plan = null backend, measured = CPU run)\n\n",
           bpt_dtype_name(c0.dtype));
    printf("| T | vanilla | memeff | bpt | measured (vanilla / memeff / bpt) |\n|---:|---:|---:|---:|---|\n");
    size_t last[NMODES] = {0, 0, 0};
    for (int T = 1024; T <= (1 << 20); T *= 2) {
        size_t p[NMODES];
        printf("| %d ", T);
        for (int i = 0; i < NMODES; i++) {
            /* a mode already past 1 TiB is not planned further (its T^2 term would
             * not fit even the plan's reserved address space) */
            p[i] = last[i] > ((size_t)1 << 40) ? 0 : plan(&MODES[i], T, 0);
            last[i] = p[i] ? p[i] : last[i];
            printf("| %s ", p[i] ? bpt_fmt_bytes((double)p[i], b[i], 32) : "-");
        }
        printf("| ");
        if (T <= measure_max) {
            for (int i = 0; i < NMODES; i++) {
                size_t mz = measure(&MODES[i], T);
                printf("%s%s", mz == p[i] ? "= plan" : "DIFFERS", i < NMODES - 1 ? " / " : "");
            }
        }
        printf(" |\n");
        fflush(stdout);
    }
    double budget = budget_gib * 1024 * 1024 * 1024;
    for (int same = 0; same < 2; same++) {
        int t[NMODES];
        for (int i = 0; i < NMODES; i++) t[i] = largest_t(&MODES[i], budget, 1024, same);
        printf("\nlargest T in %.3g GiB (%s):\n", budget_gib,
               same ? "every mode with remat_block/attention/mlp = nothing_saveable"
                    : "vanilla and memeff without feed-forward remat, bpt with nothing_saveable");
        printf("| mode | largest T | vs vanilla | vs memeff |\n|---|---:|---:|---:|\n");
        for (int i = 0; i < NMODES; i++)
            printf("| %s | %d | %.1fx | %.1fx |\n", MODES[i].name, t[i], (double)t[i] / t[0], (double)t[i] / t[1]);
    }
    free(rest);
    return 0;
}
