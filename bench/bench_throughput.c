/* bench_throughput — training tokens/s and MFU, on the CPU against the sgemm peak
 * measured in the same run, on a GPU (--device=cuda) against its bf16 dense peak.
 *
 *   bench/bench_throughput [--steps 3] [--t 2048,8192] [--json] [config overrides...]
 *   bench/bench_throughput --device=cuda --load_llama_config=1b --t 32768
 *
 * Model: bench512 (D=512, L=8, H=8, F=1408, V=32000), batch 1, bpt mode with
 * nothing_saveable remat, chunks 1024 (query 512 / key 1024). MFU counts
 * 6*N + 12*L*D*T FLOPs per token (model.h) against the best sgemm rate of OpenBLAS on
 * 2048^3 products, measured immediately before. The step time is the best of the
 * timed steps; CPU s/step the user + system CPU seconds of the timed steps per step
 * (getrusage: what two busy threads cost against one). --json prints one JSON line per
 * T instead of the table (bench/compare_torch.sh reads it).
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"
#include "bench.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static double sgemm_peak(void) {
    int n = 2048;
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4);
    for (size_t i = 0; i < nn; i++) { a[i] = (float)(i % 13) * 0.01f; b[i] = (float)(i % 7) * 0.01f; }
    bpt_kernels_cpu.gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = bpt_now();
        bpt_kernels_cpu.gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double f = 2.0 * n * (double)n * n / (bpt_now() - t0);
        if (f > best) best = f;
    }
    free(a); free(b); free(c);
    return best;
}

int main(int argc, char **argv) {
    int steps = 3, json = 0;
    const char *ts = "2048,8192";
    char **rest = calloc((size_t)argc + 16, sizeof(char *));
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--t") && i + 1 < argc) ts = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else rest[nrest++] = argv[i];
    }
    const bpt_kernels *k = &bpt_kernels_cpu;
    for (int i = 0; i < nrest; i++)
        if (!strncmp(rest[i], "--device=", 9) && !(k = bpt_kernels_get(rest[i] + 9))) {
            fprintf(stderr, "bench_throughput: backend %s not in this build (%s)\n", rest[i] + 9, bpt_kernels_list());
            return 77;
        }
    char err0[512];
    if (k->init && k->init(0, err0, sizeof err0) != 0) { printf("SKIP: %s\n", err0); return 77; }
    double peak = k->peak_flops ? k->peak_flops() : 0.0;
    if (peak > 0) {
        if (!json) printf("backend %s | bf16 dense peak %.0f TFLOP/s\n\n", k->name, peak / 1e12);
    } else {
        peak = sgemm_peak();
        if (!json) printf("threads %d | sgemm peak %.1f GFLOP/s (2048^3, best of 5)\n\n", omp_get_max_threads(), peak / 1e9);
    }
    if (!json) {
        printf("| T | mode | step s | CPU s/step | tokens/s | GFLOP/s (6N+12LDT) | MFU vs peak | MFU, causal FLOPs "
               "(6N+6LDT) | peak arena |\n");
        printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    int Ts[128], nT = bench_t_list(ts, Ts, 128);
    for (int ti = 0; ti < nT; ti++) {
        int T = Ts[ti];
        /* the benchmark's settings first, then the user's overrides (later wins) */
        char t[64], err[1024];
        snprintf(t, sizeof t, "--train_dataset.hdf5_dataset.seq_length=%d", T);
        char *defaults[] = {
            "--load_llama_config=bench512", "--llama.scan_attention=true", "--llama.scan_mlp=true",
            "--llama.scan_loss=true", "--llama.remat_attention=nothing_saveable",
            "--llama.remat_mlp=nothing_saveable", "--llama.scan_query_chunk_size=512",
            "--llama.scan_key_chunk_size=1024", "--llama.scan_mlp_chunk_size=1024",
            "--llama.scan_loss_chunk_size=1024", "--train_dataset.hdf5_dataset.batch_size=1", t,
        };
        int nd = (int)(sizeof defaults / sizeof defaults[0]);
        char **args = calloc((size_t)(nd + nrest), sizeof(char *));
        for (int i = 0; i < nd; i++) args[i] = defaults[i];
        for (int i = 0; i < nrest; i++) args[nd + i] = rest[i];
        bpt_config c;
        if (bpt_config_from_args(&c, nd + nrest, args, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
        free(args);
        size_t cap = bpt_plan_peak_bytes(&c, 1, T);
        bpt_arena a;
        if (bpt_arena_init(&a, k, cap) != 0) { fprintf(stderr, "arena\n"); return 1; }
        bpt_model *m = bpt_model_create(&c.llama, k, &a, 1, T, 1, NULL);
        bpt_model_set_dtype(m, c.dtype);
        bpt_model_init_weights(m, 1);
        int32_t *in = malloc((size_t)T * 4), *tg = malloc((size_t)T * 4);
        float *mask = malloc((size_t)T * 4);
        for (int i = 0; i < T; i++) { in[i] = (i * 7) % c.llama.vocab_size; tg[i] = (i * 11) % c.llama.vocab_size; mask[i] = 1; }
        double best = 1e30, c0 = 0, loss = 0;
        for (int s = 0; s <= steps; s++) {   /* step 0 warms up */
            if (s == 1) c0 = cpu_seconds();
            double out[2] = {0, 0}, t0 = bpt_now();
            bpt_model_zero_grad(m);
            bpt_model_forward_backward(m, in, tg, mask, 1.0f / T, out);
            bpt_optim_stats st;
            bpt_optim_step(m, &c.optimizer.adamw, s, &st);
            k->sync();
            double dt = bpt_now() - t0;
            if (s > 0 && dt < best) best = dt;
            loss = out[0] / T;
        }
        double cpu = steps > 0 ? (cpu_seconds() - c0) / steps : 0;
        double tps = T / best, flops = tps * bpt_llama_flops_per_token(&c.llama, T);
        /* the formula counts the full T x T attention; a causal model does half of it */
        double causal = tps * (bpt_llama_flops_per_token(&c.llama, T) - 6.0 * c.llama.num_hidden_layers * c.llama.hidden_size * (double)T);
        char b[32];
        if (json)
            printf("{\"variant\": \"bpt\", \"T\": %d, \"tokens_per_s\": %.3f, \"step_s\": %.6f, \"cpu_s_per_step\": %.6f, "
                   "\"arena_peak_bytes\": %zu, \"loss\": %.6f, \"threads\": %d, \"mfu\": %.4f}\n", T, tps, best, cpu,
                   a.peak, loss, omp_get_max_threads(), flops / peak);
        else
            printf("| %d | bpt | %.2f | %.2f | %.0f | %.1f | %.1f%% | %.1f%% | %s |\n", T, best, cpu, tps, flops / 1e9,
                   100 * flops / peak, 100 * causal / peak, bpt_fmt_bytes((double)a.peak, b, sizeof b));
        fflush(stdout);
        free(in); free(tg); free(mask);
        bpt_model_free(m);
        bpt_arena_destroy(&a);
    }
    free(rest);
    return 0;
}
