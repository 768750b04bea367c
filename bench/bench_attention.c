/* bench_attention — blockwise attention TFLOP/s on the GPU against its bf16 peak.
 *
 *   bench/bench_attention [--t 8192,32768,131072] [--heads 16] [--dh 128] [--reps 5]
 *
 * Causal attention, batch 1, head dim 128, kv heads = heads. FLOPs are counted the
 * usual way: the forward does two T x T x Dh products over half the (causal) scores,
 * 4 * H * Dh * T^2 / 2; forward + backward counts 3.5 times that (the backward's five
 * products, FlashAttention's convention), whatever the kernels recompute. The peak is
 * the backend's dense bf16 tensor-core peak (kernels.h peak_flops). Without a CUDA
 * build or a GPU it prints one SKIP line and exits 77.
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"
#ifdef BPT_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *ts = "8192,32768,131072";
    int H = 16, Dh = 128, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--t") && i + 1 < argc) ts = argv[++i];
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) H = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dh") && i + 1 < argc) Dh = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "bench_attention: unknown argument %s\n", argv[i]); return 2; }
    }
#ifndef BPT_HAVE_CUDA
    (void)ts; (void)H; (void)Dh; (void)reps;
    printf("SKIP: no GPU: this build has no CUDA backend (./configure --with-cuda)\n");
    return 77;
#else
    char err[512];
    if (bpt_cuda_device_count() == 0 || bpt_cuda_init(0, err, sizeof err) != 0) {
        printf("SKIP: no GPU visible\n");
        return 77;
    }
    const bpt_kernels *k = &bpt_kernels_cuda;
    double peak = k->peak_flops();
    if (peak <= 0) peak = NAN;   /* a GPU whose peak the backend does not know: "nan%" */
    printf("%s | bf16 dense peak %.0f TFLOP/s | heads %d, head dim %d, causal, batch 1, best of %d\n\n",
           bpt_cuda_device_name(), peak / 1e12, H, Dh, reps);
    printf("| T | fwd ms | fwd TFLOP/s | fwd %% of peak | fwd+bwd ms | fwd+bwd TFLOP/s | fwd+bwd %% of peak |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    int Ts[128], nT = bench_t_list(ts, Ts, 128);
    for (int ti = 0; ti < nT; ti++) {
        int T = Ts[ti];
        size_t n = (size_t)T * H * Dh, nl = (size_t)H * T;
        bpt_arena a;
        if (bpt_arena_init(&a, k, 8 * n * sizeof(float) + nl * sizeof(float) + BPT_CUDA_WORKSPACE + (1 << 20)) != 0) {
            printf("| %d | out of memory |\n", T);
            continue;
        }
        float *q = bpt_arena_alloc(&a, n * 4, "q"), *kk = bpt_arena_alloc(&a, n * 4, "k"), *v = bpt_arena_alloc(&a, n * 4, "v");
        float *o = bpt_arena_alloc(&a, n * 4, "o"), *dO = bpt_arena_alloc(&a, n * 4, "do"), *lse = bpt_arena_alloc(&a, nl * 4, "lse");
        float *dq = bpt_arena_alloc(&a, n * 4, "dq"), *dk = bpt_arena_alloc(&a, n * 4, "dk"), *dv = bpt_arena_alloc(&a, n * 4, "dv");
        float *h = malloc(n * 4);
        for (size_t i = 0; i < n; i++) h[i] = bpt_randn(1, "bench", i);
        k->copy_h2d(q, h, n * 4); k->copy_h2d(kk, h, n * 4); k->copy_h2d(v, h, n * 4); k->copy_h2d(dO, h, n * 4);
        free(h);
        double best_f = 1e30, best_fb = 1e30;
        for (int r = 0; r <= reps; r++) {   /* r == 0 warms up */
            k->sync();
            double t0 = bpt_now();
            k->attn_fwd(o, lse, q, kk, v, 1, T, H, H, Dh, 1024, 1024);
            k->sync();
            double t1 = bpt_now();
            k->attn_bwd(dq, dk, dv, dO, q, kk, v, o, lse, 1, T, H, H, Dh, 1024, 1024);
            k->sync();
            double t2 = bpt_now();
            if (r && t1 - t0 < best_f) best_f = t1 - t0;
            if (r && t2 - t0 < best_fb) best_fb = t2 - t0;
        }
        double ff = 4.0 * H * Dh * (double)T * T / 2, ffb = 3.5 * ff;
        printf("| %d | %.2f | %.0f | %.1f%% | %.2f | %.0f | %.1f%% |\n", T, best_f * 1e3, ff / best_f / 1e12,
               100 * ff / best_f / peak, best_fb * 1e3, ffb / best_fb / 1e12, 100 * ffb / best_fb / peak);
        fflush(stdout);
        bpt_arena_destroy(&a);
    }
    return 0;
#endif
}
