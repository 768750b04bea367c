/* test_cuda_kernels.c — every CUDA kernel against the CPU backend on random inputs.
 *
 * Tolerances, from the precision each kernel promises (kernels/cuda/cuda.h):
 *  - fp32 kernels (norms, RoPE, SwiGLU, embedding, loss, AdamW, sums) differ from the
 *    CPU only by summation order: 1e-5 relative (1e-4 for row sums over 1000+ terms).
 *  - GEMM rounds both operands to bf16 (unit roundoff 2^-8 each, so 2^-7 per product to
 *    first order) and accumulates in fp32: elementwise |C - C_ref| <= 2^-7 (|A| |B|)_ij
 *    holds for any input; the test allows 1.5 times that, for the second-order term
 *    and the tensor cores' fp32 accumulation (random inputs reach about 0.4 of it).
 *  - attention rounds q, k, v, dO and the probabilities to bf16 (2^-8 each): the
 *    output is held to 1e-2 relative L2, the gradients, two more rounded products
 *    deep, to 2e-2; a wrong mask or a lost tile gives O(1) errors. The log-sum-exp
 *    sees only the rounded scores (an emulation of the kernels gave 1e-4 to 6e-4, sharp
 *    scores included): 3e-3.
 * The backward must also be bit-identical from run to run (no atomics).
 * BPT_GPU_QUICK=1 keeps only the small shapes (for compute-sanitizer runs).
 */
#include "gpu_test.h"

#ifdef BPT_HAVE_CUDA
static const bpt_kernels *G = &bpt_kernels_cuda, *C = &bpt_kernels_cpu;
static bpt_arena ar;
static int quick;   /* small shapes only */

static void *up(const void *h, size_t bytes) {
    void *d = bpt_arena_alloc(&ar, bytes, "test");
    G->copy_h2d(d, h, bytes);
    return d;
}
static float *upf(const float *h, size_t n) { return up(h, n * sizeof(float)); }
static float *devf(size_t n) { float *d = bpt_arena_alloc(&ar, n * sizeof(float), "test"); G->zero(d, n * sizeof(float)); return d; }
static float *down(const float *d, size_t n) {
    float *h = malloc(n * sizeof(float) + 1);
    G->copy_d2h(h, d, n * sizeof(float));
    return h;
}

static void test_gemm(void) {
    int shapes[][3] = {{67, 45, 33}, {256, 512, 128}, {1, 300, 64}, {130, 7, 513}};
    float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}};
    for (size_t s = 0; s < 4; s++) {
        if (quick && (s == 1 || s == 3)) continue;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int ai = 0; ai < 2; ai++) {
                    size_t mk = bpt_arena_mark(&ar);
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
                    float *A = host_randn(na, 1), *B = host_randn(nb, 1), *Cc = host_randn(nc, 1);
                    float *aA = malloc(na * 4), *aB = malloc(nb * 4), *bound = calloc(nc, 4);
                    for (size_t i = 0; i < na; i++) aA[i] = fabsf(A[i]);
                    for (size_t i = 0; i < nb; i++) aB[i] = fabsf(B[i]);
                    float *dA = upf(A, na), *dB = upf(B, nb), *dC = upf(Cc, nc);
                    G->gemm(ta, tb, M, N, K, ab[ai][0], dA, lda, dB, ldb, ab[ai][1], dC, ldc);
                    float *got = down(dC, nc);
                    C->gemm(ta, tb, M, N, K, ab[ai][0], A, lda, B, ldb, ab[ai][1], Cc, ldc);
                    C->gemm(ta, tb, M, N, K, fabsf(ab[ai][0]), aA, lda, aB, ldb, 0.0f, bound, ldc);
                    int ok = 1;
                    double worst = 0;
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            size_t e = (size_t)i * ldc + j;
                            double d = fabs((double)got[e] - Cc[e]), lim = 1.5 * ldexp(bound[e], -7) + 1e-5 * fabs(Cc[e]) + 1e-6;
                            if (!(d <= lim)) ok = 0;
                            if (d / lim > worst) worst = d / lim;
                        }
                    CHECK(ok, "gemm M=%d N=%d K=%d ta=%d tb=%d alpha=%g beta=%g: worst error %.3f of 1.5x the bf16 bound",
                          M, N, K, ta, tb, ab[ai][0], ab[ai][1], worst);
                    free(A); free(B); free(Cc); free(aA); free(aB); free(bound); free(got);
                    bpt_arena_release(&ar, mk);
                }
    }
}

static void test_rows(void) {
    size_t mk = bpt_arena_mark(&ar);
    int N = 37, D = 300;
    size_t n = (size_t)N * D;
    float *x = host_randn(n, 2), *w = host_randn(D, 1), *dy = host_randn(n, 1), *dx0 = host_randn(n, 1);
    float *out = malloc(n * 4), *rstd = malloc(N * 4), *dx = malloc(n * 4), *dw = calloc(D, 4);
    memcpy(dx, dx0, n * 4);
    C->rmsnorm_fwd(out, rstd, x, w, N, D, 1e-6f);
    C->rmsnorm_bwd(dx, dw, dy, x, w, rstd, N, D, 1);
    float *gx = upf(x, n), *gw = upf(w, D), *gdy = upf(dy, n), *gout = devf(n), *grstd = devf(N);
    float *gdx = upf(dx0, n), *gdw = devf(D);
    G->rmsnorm_fwd(gout, grstd, gx, gw, N, D, 1e-6f);
    G->rmsnorm_bwd(gdx, gdw, gdy, gx, gw, grstd, N, D, 1);
    float *h1 = down(gout, n), *h2 = down(grstd, N), *h3 = down(gdx, n), *h4 = down(gdw, D);
    CHECK(rel_max(h1, out, n) < 1e-5 && rel_max(h2, rstd, N) < 1e-5, "rmsnorm forward (out %.2e, rstd %.2e)",
          rel_max(h1, out, n), rel_max(h2, rstd, N));
    CHECK(rel_max(h3, dx, n) < 1e-5 && rel_max(h4, dw, D) < 1e-5, "rmsnorm backward, accumulating (dx %.2e, dw %.2e)",
          rel_max(h3, dx, n), rel_max(h4, dw, D));
    free(h1); free(h2); free(h3); free(h4);

    /* RoPE: B=2, T=19, nh=3, Dh=16 */
    int B = 2, T = 19, nh = 3, Dh = 16, half = Dh / 2;
    size_t nr = (size_t)B * T * nh * Dh;
    float *cs = malloc((size_t)T * half * 4), *sn = malloc((size_t)T * half * 4);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double a = t * pow(10000.0, -2.0 * i / Dh);
            cs[t * half + i] = (float)cos(a);
            sn[t * half + i] = (float)sin(a);
        }
    float *r = host_randn(nr, 1), *gr = upf(r, nr), *gc = upf(cs, (size_t)T * half), *gs = upf(sn, (size_t)T * half);
    C->rope_fwd(r, cs, sn, B, T, nh, Dh);
    G->rope_fwd(gr, gc, gs, B, T, nh, Dh);
    float *hr = down(gr, nr);
    CHECK(rel_max(hr, r, nr) < 1e-5, "rope forward (%.2e)", rel_max(hr, r, nr));
    C->rope_bwd(r, cs, sn, B, T, nh, Dh);
    G->rope_bwd(gr, gc, gs, B, T, nh, Dh);
    free(hr);
    hr = down(gr, nr);
    CHECK(rel_max(hr, r, nr) < 1e-5, "rope backward (%.2e)", rel_max(hr, r, nr));
    free(hr);

    /* SwiGLU */
    size_t ns = 5000;
    float *g = host_randn(ns, 3), *u = host_randn(ns, 1), *dh = host_randn(ns, 1);
    float *h = malloc(ns * 4), *dg = malloc(ns * 4), *du = malloc(ns * 4);
    C->swiglu_fwd(h, g, u, ns);
    C->swiglu_bwd(dg, du, dh, g, u, ns);
    float *gg = upf(g, ns), *gu = upf(u, ns), *gdh = upf(dh, ns), *gh = devf(ns), *gdg = devf(ns), *gdu = devf(ns);
    G->swiglu_fwd(gh, gg, gu, ns);
    G->swiglu_bwd(gdg, gdu, gdh, gg, gu, ns);
    float *a1 = down(gh, ns), *a2 = down(gdg, ns), *a3 = down(gdu, ns);
    CHECK(rel_max(a1, h, ns) < 1e-5 && rel_max(a2, dg, ns) < 1e-5 && rel_max(a3, du, ns) < 1e-5,
          "swiglu forward and backward (%.2e %.2e %.2e)", rel_max(a1, h, ns), rel_max(a2, dg, ns), rel_max(a3, du, ns));
    free(a1); free(a2); free(a3);

    /* embedding over the vocabulary slice [v0, v0+V) */
    int Ne = 50, De = 24, v0 = 10, Ve = 20;
    int32_t tok[50];
    for (int i = 0; i < Ne; i++) tok[i] = (int32_t)((i * 7 + 3) % 40);
    float *wte = host_randn((size_t)Ve * De, 1), *dout = host_randn((size_t)Ne * De, 1);
    float *eo = malloc((size_t)Ne * De * 4), *dwte = calloc((size_t)Ve * De, 4);
    C->embed_fwd(eo, tok, wte, Ne, De, v0, Ve);
    C->embed_bwd(dwte, dout, tok, Ne, De, v0, Ve);
    int32_t *gtok = up(tok, sizeof tok);
    float *gwte = upf(wte, (size_t)Ve * De), *gdo = upf(dout, (size_t)Ne * De);
    float *geo = devf((size_t)Ne * De), *gdwte = devf((size_t)Ve * De);
    G->embed_fwd(geo, gtok, gwte, Ne, De, v0, Ve);
    G->embed_bwd(gdwte, gdo, gtok, Ne, De, v0, Ve);
    float *e1 = down(geo, (size_t)Ne * De), *e2 = down(gdwte, (size_t)Ve * De);
    CHECK(memcmp(e1, eo, (size_t)Ne * De * 4) == 0, "embedding forward, vocabulary slice: exact");
    CHECK(memcmp(e2, dwte, (size_t)Ve * De * 4) == 0, "embedding backward, tokens in order: exact");
    free(e1); free(e2);
    /* embedding backward at scale: skewed ids (a third of the tokens are one id, as a
     * padding or space token would be), D not a multiple of the block, rows added in
     * token order whether the tokens are sorted in one chunk or in many */
    {
        int Nb = 20000, Db = 300, Vb = 1000;
        int32_t *tb = malloc((size_t)Nb * 4);
        for (int i = 0; i < Nb; i++) tb[i] = i % 3 == 0 ? 7 : (int32_t)((i * 7919u) % 1200u);   /* some off-slice */
        float *wb = host_randn((size_t)Vb * Db, 2), *db = host_randn((size_t)Nb * Db, 3);
        float *ref = malloc((size_t)Vb * Db * 4);
        memcpy(ref, wb, (size_t)Vb * Db * 4);
        C->embed_bwd(ref, db, tb, Nb, Db, 0, Vb);
        int32_t *gtb = up(tb, (size_t)Nb * 4);
        float *gdb = upf(db, (size_t)Nb * Db);
        int chunks[] = {0, 777};
        for (int c = 0; c < 2; c++) {
            float *gw = upf(wb, (size_t)Vb * Db);
            bpt_cu_set_embed_chunk(chunks[c]);
            G->embed_bwd(gw, gdb, gtb, Nb, Db, 0, Vb);
            float *got = down(gw, (size_t)Vb * Db);
            CHECK(memcmp(got, ref, (size_t)Vb * Db * 4) == 0,
                  "embedding backward, %d tokens, skewed ids, %s: bit-identical to the CPU", Nb,
                  chunks[c] ? "sorted 777 at a time" : "one sort");
            free(got);
        }
        bpt_cu_set_embed_chunk(0);
        free(tb); free(wb); free(db); free(ref);
    }
    free(x); free(w); free(dy); free(dx0); free(out); free(rstd); free(dx); free(dw); free(cs); free(sn); free(r);
    free(g); free(u); free(dh); free(h); free(dg); free(du); free(wte); free(dout); free(eo); free(dwte);
    bpt_arena_release(&ar, mk);
}

static void test_loss(void) {
    size_t mk = bpt_arena_mark(&ar);
    int N = 13, V = 1000;
    size_t n = (size_t)N * V;
    float *lg = host_randn(n, 3), *mask = malloc(N * 4);
    int32_t tg[13];
    for (int i = 0; i < N; i++) { tg[i] = (int32_t)((i * 131) % V); mask[i] = i % 4 == 1 ? 0.0f : 1.0f; }
    tg[6] = -1;                          /* an out-of-range target on an unmasked row */
    lg[(size_t)2 * V + 7] = lg[(size_t)2 * V + 9] = 50.0f;   /* an argmax tie: lowest id wins */
    tg[2] = 7;
    float *glg = upf(lg, n), *gmask = upf(mask, N);
    int32_t *gtg = up(tg, sizeof tg);
    double *gout = bpt_arena_alloc(&ar, 2 * sizeof(double), "out");
    G->zero(gout, 2 * sizeof(double));
    double out[2] = {0, 0}, hout[2];
    C->xent_fwd_bwd(lg, out, tg, mask, N, V, 0.1f);
    G->xent_fwd_bwd(glg, gout, gtg, gmask, N, V, 0.1f);
    G->copy_d2h(hout, gout, sizeof hout);
    float *d = down(glg, n);
    CHECK(fabs(hout[0] - out[0]) < 1e-5 * fabs(out[0]) && hout[1] == out[1],
          "fused cross-entropy: loss %.8g vs %.8g, correct %g vs %g", hout[0], out[0], hout[1], out[1]);
    CHECK(rel_max(d, lg, n) < 1e-5, "fused cross-entropy: dlogits (%.2e)", rel_max(d, lg, n));
    free(d);

    /* vocabulary-parallel steps on the slice [v0, v0+Vl) of the same rows */
    int v0 = 300, Vl = 400;
    float *sl = host_randn((size_t)N * Vl, 3);
    float *rmax = malloc(N * 4), *tl = malloc(N * 4), *av = malloc(N * 4), *se = malloc(N * 4);
    int32_t *ai = malloc(N * 4);
    float *gsl = upf(sl, (size_t)N * Vl), *grmax = devf(N), *gtl = devf(N), *gav = devf(N), *gse = devf(N);
    int32_t *gai = bpt_arena_alloc(&ar, N * 4, "ai");
    for (int i = 0; i < N; i++) tg[i] = (int32_t)(v0 + (i * 37) % (2 * Vl) - Vl / 2);
    G->copy_h2d(gtg, tg, sizeof tg);
    C->xent_partial(sl, tg, N, Vl, v0, rmax, tl, av, ai);
    G->xent_partial(gsl, gtg, N, Vl, v0, grmax, gtl, gav, gai);
    C->xent_sumexp(sl, rmax, N, Vl, se);
    G->xent_sumexp(gsl, grmax, N, Vl, gse);
    float *h1 = down(grmax, N), *h2 = down(gtl, N), *h3 = down(gse, N);
    int32_t hai[13];
    G->copy_d2h(hai, gai, sizeof hai);
    CHECK(memcmp(h1, rmax, N * 4) == 0 && memcmp(h2, tl, N * 4) == 0 && memcmp(hai, ai, N * 4) == 0,
          "vocab-parallel cross-entropy step 1: max, target logit, argmax exact");
    CHECK(rel_max(h3, se, N) < 1e-5, "vocab-parallel cross-entropy step 2: sum of exponentials (%.2e)", rel_max(h3, se, N));
    out[0] = out[1] = 0;
    G->zero(gout, 2 * sizeof(double));
    C->xent_finish(sl, out, tg, mask, rmax, se, tl, ai, N, Vl, v0, 0.25f);
    G->xent_finish(gsl, gout, gtg, gmask, grmax, gse, gtl, gai, N, Vl, v0, 0.25f);
    G->copy_d2h(hout, gout, sizeof hout);
    float *h4 = down(gsl, (size_t)N * Vl);
    CHECK(fabs(hout[0] - out[0]) < 1e-5 * fabs(out[0]) && hout[1] == out[1] && rel_max(h4, sl, (size_t)N * Vl) < 1e-5,
          "vocab-parallel cross-entropy step 3: loss %.8g vs %.8g, dlogits %.2e", hout[0], out[0],
          rel_max(h4, sl, (size_t)N * Vl));
    free(h1); free(h2); free(h3); free(h4); free(lg); free(mask); free(sl); free(rmax); free(tl); free(av); free(se); free(ai);
    bpt_arena_release(&ar, mk);
}

static void test_optim(void) {
    size_t mk = bpt_arena_mark(&ar);
    size_t n = 100003;
    float *p = host_randn(n, 1), *g = host_randn(n, 1), *m = host_randn(n, 0.1f), *v = malloc(n * 4);
    for (size_t i = 0; i < n; i++) v[i] = 0.01f * fabsf(nrand());
    float *gp = upf(p, n), *gg = upf(g, n), *gm = upf(m, n), *gv = upf(v, n);
    C->adamw(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.05f, 0.7f);
    G->adamw(gp, gg, gm, gv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.05f, 0.7f);
    float *a = down(gp, n), *b = down(gm, n), *c = down(gv, n);
    CHECK(rel_max(a, p, n) < 1e-6 && rel_max(b, m, n) < 1e-6 && rel_max(c, v, n) < 1e-6, "adamw (%.2e %.2e %.2e)",
          rel_max(a, p, n), rel_max(b, m, n), rel_max(c, v, n));
    double s = 0, gs = 0;
    double *gout = bpt_arena_alloc(&ar, sizeof(double), "sumsq");
    C->sumsq(&s, g, n);
    G->sumsq(gout, gg, n);
    G->copy_d2h(&gs, gout, sizeof gs);
    double gs2 = 0;
    G->sumsq(gout, gg, n);
    G->copy_d2h(&gs2, gout, sizeof gs2);
    CHECK(fabs(gs - s) < 1e-12 * s && gs == gs2, "sum of squares in double (%.17g vs %.17g), reproducible", gs, s);
    C->axpy(p, -0.5f, g, n);
    G->axpy(gp, -0.5f, gg, n);
    free(a);
    a = down(gp, n);
    CHECK(rel_max(a, p, n) < 1e-6, "axpy");
    free(a); free(b); free(c); free(p); free(g); free(m); free(v);

    /* bf16 storage: the same 16-bit patterns as the CPU (NaN only has to stay NaN) */
    size_t nb = 70001;
    float *x = host_randn(nb, 1e3f);
    x[0] = 1.0f + 1.0f / 256; x[1] = 3.0e-39f; x[2] = INFINITY; x[3] = NAN;
    uint16_t *hc = malloc(nb * 2), *hg = malloc(nb * 2);
    C->to_bf16(hc, x, nb);
    float *gx = upf(x, nb);
    uint16_t *gh = bpt_arena_alloc(&ar, nb * 2, "bf16");
    G->to_bf16(gh, gx, nb);
    G->copy_d2h(hg, gh, nb * 2);
    size_t diff = 0;
    for (size_t i = 4; i < nb; i++) diff += hc[i] != hg[i];
    diff += hc[0] != hg[0] || hc[1] != hg[1] || hc[2] != hg[2];
    float *back = devf(nb);
    G->from_bf16(back, gh, nb);
    float *hb = down(back, nb);
    CHECK(diff == 0 && isnan(hb[3]), "bf16 store: round to nearest even like the CPU (%zu differences), NaN kept", diff);
    free(x); free(hc); free(hg); free(hb);
    bpt_arena_release(&ar, mk);
}

static void test_attention(void) {
    /* B, T, H, KVH, Dh, Bq, Bk, q scale: whole and partial tiles, T under one tile, GQA,
     * padded head dims (16 -> 16, 48 -> 64, 96 -> 128), and sharp scores (q x4) that
     * make the online softmax rescale */
    int cases[][8] = {
        {1, 64, 2, 2, 64, 64, 64, 1},    {2, 100, 4, 2, 64, 32, 16, 1},  {1, 257, 4, 1, 128, 128, 64, 1},
        {1, 190, 3, 3, 48, 64, 64, 1},   {1, 33, 2, 1, 16, 16, 16, 1},   {1, 1024, 2, 2, 128, 256, 512, 1},
        {2, 77, 8, 2, 32, 8, 64, 1},     {2, 15, 4, 2, 96, 15, 15, 1},   {2, 130, 4, 1, 128, 64, 64, 1},
        {1, 257, 4, 2, 128, 64, 64, 4},
    };
    /* the 64-row tiles (what sm_80 and sm_90 take), then the 32-row ones */
    for (int tiles = 0; tiles < 2; tiles++) {
        bpt_cu_set_attn_tile_rows(tiles ? 32 : 0);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            if (quick && cases[ci][1] > 300) continue;
            size_t mk = bpt_arena_mark(&ar);
            int B = cases[ci][0], T = cases[ci][1], H = cases[ci][2], KVH = cases[ci][3], Dh = cases[ci][4];
            int Bq = cases[ci][5], Bk = cases[ci][6];
            size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * KVH * Dh, nl = (size_t)B * H * T;
            float *q = host_randn(nq, (float)cases[ci][7]), *k = host_randn(nk, 1), *v = host_randn(nk, 1);
            float *dO = host_randn(nq, 1);
            float *o = malloc(nq * 4), *lse = malloc(nl * 4), *dq = malloc(nq * 4), *dk = malloc(nk * 4);
            float *dv = malloc(nk * 4);
            C->attn_fwd(o, lse, q, k, v, B, T, H, KVH, Dh, Bq, Bk);
            C->attn_bwd(dq, dk, dv, dO, q, k, v, o, lse, B, T, H, KVH, Dh, Bq, Bk);
            float *gq = upf(q, nq), *gk = upf(k, nk), *gv = upf(v, nk), *gdO = upf(dO, nq);
            float *go = devf(nq), *glse = devf(nl), *gdq = devf(nq), *gdk = devf(nk), *gdv = devf(nk);
            G->attn_fwd(go, glse, gq, gk, gv, B, T, H, KVH, Dh, Bq, Bk);
            G->attn_bwd(gdq, gdk, gdv, gdO, gq, gk, gv, go, glse, B, T, H, KVH, Dh, Bq, Bk);
            float *ho = down(go, nq), *hl = down(glse, nl), *hq = down(gdq, nq), *hk = down(gdk, nk);
            float *hv = down(gdv, nk);
            double eo = rel_l2(ho, o, nq), el = rel_l2(hl, lse, nl);
            double eq = rel_l2(hq, dq, nq), ek = rel_l2(hk, dk, nk), ev = rel_l2(hv, dv, nk);
            CHECK(eo < 1e-2 && el < 3e-3,
                  "attention forward, %d-row tiles, B=%d T=%d H=%d KVH=%d Dh=%d q x%d: o %.2e lse %.2e",
                  tiles ? 32 : 64, B, T, H, KVH, Dh, cases[ci][7], eo, el);
            CHECK(eq < 2e-2 && ek < 2e-2 && ev < 2e-2, "attention backward: dq %.2e dk %.2e dv %.2e", eq, ek, ev);
            /* the same call again gives the same bits (no atomics) */
            G->attn_bwd(gdq, gdk, gdv, gdO, gq, gk, gv, go, glse, B, T, H, KVH, Dh, Bq, Bk);
            float *hq2 = down(gdq, nq), *hk2 = down(gdk, nk), *hv2 = down(gdv, nk);
            CHECK(!memcmp(hq, hq2, nq * 4) && !memcmp(hk, hk2, nk * 4) && !memcmp(hv, hv2, nk * 4),
                  "attention backward is bit-reproducible");
            free(hq2); free(hk2); free(hv2);
            free(q); free(k); free(v); free(dO); free(o); free(lse); free(dq); free(dk); free(dv);
            free(ho); free(hl); free(hq); free(hk); free(hv);
            bpt_arena_release(&ar, mk);
        }
    }
    bpt_cu_set_attn_tile_rows(0);
    /* vanilla: probabilities materialised */
    int B = 2, T = 100, H = 4, KVH = 2, Dh = 32;
    size_t mk = bpt_arena_mark(&ar);
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * KVH * Dh, np = (size_t)B * H * T * T;
    float *q = host_randn(nq, 1), *k = host_randn(nk, 1), *v = host_randn(nk, 1), *dO = host_randn(nq, 1);
    float *o = malloc(nq * 4), *pr = malloc(np * 4), *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    C->attn_vanilla_fwd(o, pr, q, k, v, B, T, H, KVH, Dh);
    C->attn_vanilla_bwd(dq, dk, dv, dO, q, k, v, pr, B, T, H, KVH, Dh);
    float *gq = upf(q, nq), *gk = upf(k, nk), *gv = upf(v, nk), *gdO = upf(dO, nq);
    float *go = devf(nq), *gp = devf(np), *gdq = devf(nq), *gdk = devf(nk), *gdv = devf(nk);
    G->attn_vanilla_fwd(go, gp, gq, gk, gv, B, T, H, KVH, Dh);
    G->attn_vanilla_bwd(gdq, gdk, gdv, gdO, gq, gk, gv, gp, B, T, H, KVH, Dh);
    float *ho = down(go, nq), *hp = down(gp, np), *hq = down(gdq, nq), *hk = down(gdk, nk), *hv = down(gdv, nk);
    CHECK(rel_l2(ho, o, nq) < 1e-2 && rel_l2(hp, pr, np) < 1e-2, "vanilla attention forward: o %.2e probs %.2e",
          rel_l2(ho, o, nq), rel_l2(hp, pr, np));
    CHECK(rel_l2(hq, dq, nq) < 2e-2 && rel_l2(hk, dk, nk) < 2e-2 && rel_l2(hv, dv, nk) < 2e-2,
          "vanilla attention backward: dq %.2e dk %.2e dv %.2e", rel_l2(hq, dq, nq), rel_l2(hk, dk, nk), rel_l2(hv, dv, nk));
    free(q); free(k); free(v); free(dO); free(o); free(pr); free(dq); free(dk); free(dv);
    free(ho); free(hp); free(hq); free(hk); free(hv);
    bpt_arena_release(&ar, mk);
}

/* Relative L2 of the finite entries; every -inf of b must be -inf in a too (-1 if not). */
static double rel_l2_lse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(b[i]) || isinf(a[i])) { if (a[i] != b[i]) return -1; continue; }
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den + 1e-300));
}

/* Ring attention's segment pairs (attn_fwd_seg, attn_bwd_seg) against the CPU's: a
 * segment sits at token offset qo (ko) of rows of q_ld (k_ld) tokens, as the zig-zag
 * chunks of mesh/ring.c do; merge = 0 sets o and lse (rows that see no key: 0, -inf),
 * merge = 1 merges into o, lse already there, and the backward adds to dq, dk, dv. */
static void test_attention_segments(void) {
    /* B, H, KVH, Dh, Tq, Tk, q_ld, k_ld, qo, ko, q_pos, k_pos */
    int cases[][12] = {
        {2, 4, 2, 64, 48, 48, 96, 96, 0, 0, 240, 240},       /* a zig-zag chunk against itself */
        {2, 4, 2, 64, 48, 48, 96, 96, 48, 0, 336, 96},       /* a later chunk against an earlier one */
        {1, 4, 1, 128, 100, 70, 100, 70, 0, 0, 10, 40},      /* 30 rows that see no key; Tq != Tk */
        {1, 8, 1, 128, 130, 130, 260, 260, 130, 130, 1000, 1000},   /* GQA 8:1, partial tiles */
        {2, 3, 3, 48, 33, 65, 40, 65, 7, 0, 64, 0},          /* padded head dim, q_ld not the segment */
    };
    for (int tiles = 0; tiles < 2; tiles++) {
        bpt_cu_set_attn_tile_rows(tiles ? 32 : 0);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int *c = cases[ci];
            bpt_attn_seg sg = {c[0], c[1], c[2], c[3], 64, 64, c[4], c[5], c[6], c[7], c[10], c[11]};
            int B = sg.B, H = sg.H, KVH = sg.KVH, Dh = sg.Dh, qo = c[8], ko = c[9];
            size_t nq = (size_t)B * sg.q_ld * H * Dh, nk = (size_t)B * sg.k_ld * KVH * Dh, nl = (size_t)B * H * sg.q_ld;
            size_t oq = (size_t)qo * H * Dh, ok_ = (size_t)ko * KVH * Dh;
            size_t mk = bpt_arena_mark(&ar);
            float *q = host_randn(nq, 1), *k = host_randn(nk, 1), *v = host_randn(nk, 1), *dO = host_randn(nq, 1);
            float *o0 = host_randn(nq, 1), *l0 = host_randn(nl, 1);   /* a previous pair's o, lse */
            float *dq0 = host_randn(nq, 1), *dk0 = host_randn(nk, 1), *dv0 = host_randn(nk, 1);
            float *gq = upf(q, nq), *gk = upf(k, nk), *gv = upf(v, nk), *gdO = upf(dO, nq);
            for (int merge = 0; merge < 2; merge++) {
                float *o = malloc(nq * 4), *lse = malloc(nl * 4);
                memcpy(o, o0, nq * 4);
                memcpy(lse, l0, nl * 4);
                float *go = upf(o, nq), *glse = upf(lse, nl);
                C->attn_fwd_seg(o + oq, lse + qo, q + oq, k + ok_, v + ok_, &sg, merge);
                G->attn_fwd_seg(go + oq, glse + qo, gq + oq, gk + ok_, gv + ok_, &sg, merge);
                float *ho = down(go, nq), *hl = down(glse, nl);
                double eo = rel_l2(ho, o, nq), el = rel_l2_lse(hl, lse, nl);
                CHECK(eo < 1e-2 && el >= 0 && el < 3e-3,
                      "attention segment forward, %d-row tiles, merge %d, Tq=%d Tk=%d q_pos=%d k_pos=%d H=%d KVH=%d "
                      "Dh=%d: o %.2e lse %.2e", tiles ? 32 : 64, merge, sg.Tq, sg.Tk, c[10], c[11], H, KVH, Dh, eo, el);
                if (merge) {   /* the backward, given the merged (final, finite) o and lse */
                    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
                    memcpy(dq, dq0, nq * 4); memcpy(dk, dk0, nk * 4); memcpy(dv, dv0, nk * 4);
                    float *gdq = upf(dq, nq), *gdk = upf(dk, nk), *gdv = upf(dv, nk);
                    float *gof = upf(o, nq), *glf = upf(lse, nl);
                    C->attn_bwd_seg(dq + oq, dk + ok_, dv + ok_, dO + oq, q + oq, k + ok_, v + ok_, o + oq, lse + qo, &sg);
                    G->attn_bwd_seg(gdq + oq, gdk + ok_, gdv + ok_, gdO + oq, gq + oq, gk + ok_, gv + ok_, gof + oq,
                                    glf + qo, &sg);
                    float *hq = down(gdq, nq), *hk = down(gdk, nk), *hv = down(gdv, nk);
                    /* the errors of what the pair added, against the size of that */
                    for (size_t i = 0; i < nq; i++) { hq[i] -= dq0[i]; dq[i] -= dq0[i]; }
                    for (size_t i = 0; i < nk; i++) { hk[i] -= dk0[i]; dk[i] -= dk0[i]; hv[i] -= dv0[i]; dv[i] -= dv0[i]; }
                    double eq = rel_l2(hq, dq, nq), ek = rel_l2(hk, dk, nk), ev = rel_l2(hv, dv, nk);
                    CHECK(eq < 2e-2 && ek < 2e-2 && ev < 2e-2, "attention segment backward (adds): dq %.2e dk %.2e dv %.2e",
                          eq, ek, ev);
                    free(dq); free(dk); free(dv); free(hq); free(hk); free(hv);
                }
                free(o); free(lse); free(ho); free(hl);
            }
            free(q); free(k); free(v); free(dO); free(o0); free(l0); free(dq0); free(dk0); free(dv0);
            bpt_arena_release(&ar, mk);
        }
    }
    bpt_cu_set_attn_tile_rows(0);
}
#endif

int main(void) {
    gpu_or_skip();
#ifdef BPT_HAVE_CUDA
    quick = getenv("BPT_GPU_QUICK") && atoi(getenv("BPT_GPU_QUICK"));
    if (bpt_arena_init(&ar, G, (size_t)1 << 30) != 0) tap_bail("cannot allocate 1 GiB on the GPU");
    CHECK(ar.used == BPT_CUDA_WORKSPACE, "the arena handed the backend its workspace (%zu bytes)", ar.used);
    test_gemm();
    test_rows();
    test_loss();
    test_optim();
    test_attention();
    test_attention_segments();
    bpt_arena_destroy(&ar);
#endif
    return tap_done();
}
