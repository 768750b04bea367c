/* bench_attention — the blockwise attention kernels alone: forward and forward+backward
 * time and FLOP rate, against the device's peak.
 *
 *   bench/bench_attention [--device cpu|cuda] [--t LIST] [--dh LIST] [--heads H]
 *                         [--block Bq,Bk] [--reps N] [--json]
 *
 * Causal, batch 1, kv heads = heads. FLOPs are counted the usual way: the forward does
 * two T x T x Dh products over half the (causal) scores, 4 * H * Dh * T^2 / 2; forward +
 * backward counts 3.5 times that (the backward's five products, FlashAttention's
 * convention), whatever the kernels recompute. Times are the best of --reps runs after
 * one warm-up.
 *
 * cuda (the default in a CUDA build): T = 8K, 32K, 128K, Dh 128, 16 heads, blocks
 * 1024 x 1024, against the dense bf16 tensor-core peak; without a GPU one SKIP line,
 * exit 77. cpu: T = 2K, 8K, 32K, Dh 64 and 128, 8 heads, blocks 512 x 1024 (the
 * bench_throughput chunks), on OMP_NUM_THREADS threads, against the best sgemm 1024^3
 * measured in the same run just before each shape. --json prints one JSON object per
 * shape instead of the table (bench/compare_attention.py reads it).
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"
#ifdef BPT_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif
#include "bench.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The best of 5 sgemm 1024^3 on this backend (host memory only), in FLOP/s. */
static double sgemm_peak(const bpt_kernels *k) {
    int n = 1024;
    float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4), *c = calloc((size_t)n * n, 4);
    if (!a || !b || !c) { free(a); free(b); free(c); return NAN; }
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = bpt_now();
        k->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double f = 2.0 * n * n * (double)n / (bpt_now() - t0);
        if (r && f > best) best = f;   /* r == 0 warms up */
    }
    free(a); free(b); free(c);
    return best;
}

int main(int argc, char **argv) {
#ifdef BPT_HAVE_CUDA
    const char *dev = "cuda";
#else
    const char *dev = "cpu";
#endif
    const char *ts = NULL, *dhs = NULL;
    int H = 0, reps = 0, Bq = 0, Bk = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--t") && i + 1 < argc) ts = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) dev = argv[++i];
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) H = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dh") && i + 1 < argc) dhs = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d", &Bq, &Bk) != 2 || Bq <= 0 || Bk <= 0) {
                fprintf(stderr, "bench_attention: --block wants Bq,Bk (positive), got %s\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else { fprintf(stderr, "bench_attention: unknown argument %s\n", argv[i]); return 2; }
    }
    int cpu = !strcmp(dev, "cpu");
    if (!cpu && strcmp(dev, "cuda")) {
        fprintf(stderr, "bench_attention: --device wants cpu or cuda, got %s\n", dev);
        return 2;
    }
    if (!ts) ts = cpu ? "2048,8192,32768" : "8192,32768,131072";
    if (!dhs) dhs = cpu ? "64,128" : "128";
    if (!H) H = cpu ? 8 : 16;
    if (!reps) reps = cpu ? 2 : 5;
    if (!Bq) { Bq = cpu ? 512 : 1024; Bk = 1024; }

    const bpt_kernels *k = &bpt_kernels_cpu;
    double peak = NAN;
    const char *what = "sgemm 1024^3 peak";
    if (!cpu) {
#ifndef BPT_HAVE_CUDA
        printf("SKIP: no GPU: this build has no CUDA backend (./configure --with-cuda)\n");
        return 77;
#else
        char err[512];
        if (bpt_cuda_device_count() == 0 || bpt_cuda_init(0, err, sizeof err) != 0) {
            printf("SKIP: no GPU visible\n");
            return 77;
        }
        k = &bpt_kernels_cuda;
        peak = k->peak_flops();
        if (peak <= 0) peak = NAN;   /* a GPU whose peak the backend does not know: "nan%" */
        what = "bf16 dense peak";
        if (!json)
            printf("%s | bf16 dense peak %.0f TFLOP/s | heads %d, causal, batch 1, blocks %d x %d, best of %d\n\n",
                   bpt_cuda_device_name(), peak / 1e12, H, Bq, Bk, reps);
#endif
    } else if (!json) {
        printf("CPU, %d threads | heads %d, causal, batch 1, blocks %d x %d, best of %d; %% of the sgemm 1024^3 "
               "peak measured before each shape\n\n", omp_get_max_threads(), H, Bq, Bk, reps);
    }
    if (!json) {
        printf("| T | Dh | fwd ms | fwd GFLOP/s | fwd %% of peak | fwd+bwd ms | fwd+bwd GFLOP/s | fwd+bwd %% of peak |\n");
        printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    int Ts[128], nT = bench_t_list(ts, Ts, 128), Ds[16], nD = bench_t_list(dhs, Ds, 16);
    for (int di = 0; di < nD; di++)
        for (int ti = 0; ti < nT; ti++) {
            int T = Ts[ti], Dh = Ds[di];
            if (T <= 0 || Dh <= 0) continue;
            size_t n = (size_t)T * H * Dh, nl = (size_t)H * T;
            size_t extra = 1 << 20;
#ifdef BPT_HAVE_CUDA
            if (!cpu) extra += BPT_CUDA_WORKSPACE;
#endif
            bpt_arena a;
            if (bpt_arena_init(&a, k, 9 * n * sizeof(float) + nl * sizeof(float) + extra) != 0) {
                printf("| %d | %d | out of memory |\n", T, Dh);
                continue;
            }
            float *q = bpt_arena_alloc(&a, n * 4, "q"), *kk = bpt_arena_alloc(&a, n * 4, "k"), *v = bpt_arena_alloc(&a, n * 4, "v");
            float *o = bpt_arena_alloc(&a, n * 4, "o"), *dO = bpt_arena_alloc(&a, n * 4, "do"), *lse = bpt_arena_alloc(&a, nl * 4, "lse");
            float *dq = bpt_arena_alloc(&a, n * 4, "dq"), *dk = bpt_arena_alloc(&a, n * 4, "dk"), *dv = bpt_arena_alloc(&a, n * 4, "dv");
            float *h = malloc(n * 4);
            for (size_t i = 0; i < n; i++) h[i] = bpt_randn(1, "bench", i);
            k->copy_h2d(q, h, n * 4); k->copy_h2d(kk, h, n * 4); k->copy_h2d(v, h, n * 4); k->copy_h2d(dO, h, n * 4);
            free(h);
            if (cpu) peak = sgemm_peak(k);
            double best_f = 1e30, best_fb = 1e30;
            for (int r = 0; r <= reps; r++) {   /* r == 0 warms up */
                k->sync();
                double t0 = bpt_now();
                k->attn_fwd(o, lse, q, kk, v, 1, T, H, H, Dh, Bq, Bk);
                k->sync();
                double t1 = bpt_now();
                k->attn_bwd(dq, dk, dv, dO, q, kk, v, o, lse, 1, T, H, H, Dh, Bq, Bk);
                k->sync();
                double t2 = bpt_now();
                if (r && t1 - t0 < best_f) best_f = t1 - t0;
                if (r && t2 - t0 < best_fb) best_fb = t2 - t0;
            }
            double ff = 4.0 * H * Dh * (double)T * T / 2, ffb = 3.5 * ff;
            if (json)
                printf("{\"impl\": \"bpt\", \"device\": \"%s\", \"T\": %d, \"Dh\": %d, \"heads\": %d, \"fwd_s\": %.6f, "
                       "\"fwdbwd_s\": %.6f, \"fwd_flops\": %.6g, \"fwdbwd_flops\": %.6g, \"peak_flops\": %.6g, "
                       "\"peak\": \"%s\"}\n", dev, T, Dh, H, best_f, best_fb, ff, ffb, peak, what);
            else
                printf("| %d | %d | %.2f | %.1f | %.1f%% | %.2f | %.1f | %.1f%% |\n", T, Dh, best_f * 1e3,
                       ff / best_f / 1e9, 100 * ff / best_f / peak, best_fb * 1e3, ffb / best_fb / 1e9,
                       100 * ffb / best_fb / peak);
            fflush(stdout);
            bpt_arena_destroy(&a);
        }
    return 0;
}
