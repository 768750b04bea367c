/* test_model.c — the model's modes and remat policies agree; the memory plan is exact.
 *
 * vanilla / memeff / bpt and every remat policy compute the same function, so their
 * loss and gradients must agree to fp32 round-off with the reference run (vanilla, no
 * remat). The null-backend plan must equal the arena peak of a real CPU step, and
 * the peaks must order as the design says. One TAP line per check (tests/unit/unit_test.h).
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit_test.h"

typedef struct run_out { double loss, acc; float *grads; size_t n, peak; } run_out;

static void base_config(bpt_config *c, int T) {
    char err[512];
    bpt_config_defaults(c);
    const char *kv[][2] = {
        {"load_llama_config", "tiny"}, {"llama.vocab_size", "61"}, {"llama.hidden_size", "32"},
        {"llama.intermediate_size", "40"}, {"llama.num_attention_heads", "4"},
        {"llama.num_key_value_heads", "2"}, {"llama.num_hidden_layers", "2"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (bpt_config_set(c, kv[i][0], kv[i][1], err, sizeof err)) { tap_bail("config: %s", err); }
    char t[32];
    snprintf(t, sizeof t, "%d", T);
    bpt_config_set(c, "train_dataset.hdf5_dataset.seq_length", t, err, sizeof err);
    bpt_config_set(c, "llama.max_sequence_length", "4096", err, sizeof err);
    bpt_config_set(c, "dtype", "fp32", err, sizeof err);
}

static void set(bpt_config *c, const char *k, const char *v) {
    char err[512];
    if (bpt_config_set(c, k, v, err, sizeof err) != 0) { tap_bail("config: %s", err); }
}

/* mode 0 vanilla, 1 memeff (blockwise attention), 2 bpt (attention, mlp and loss) */
static void set_mode(bpt_config *c, int mode) {
    set(c, "llama.scan_attention", mode >= 1 ? "true" : "false");
    set(c, "llama.scan_mlp", mode == 2 ? "true" : "false");
    set(c, "llama.scan_loss", mode == 2 ? "true" : "false");
}

/* 1: run() rounds the master weights to bf16 after initialising them */
static int round_masters = 0;

static run_out run(bpt_config *c, int B, int T, const bpt_kernels *k) {
    char err[512];
    if (bpt_config_finalize(c, err, sizeof err) != 0) { tap_bail("finalize: %s", err); }
    run_out r;
    size_t plan = bpt_plan_peak_bytes(c, B, T);
    bpt_arena a;
    if (bpt_arena_init(&a, k, plan) != 0) { tap_bail("arena init failed"); }
    bpt_model *m = bpt_model_create(&c->llama, k, &a, B, T, 1, NULL);
    bpt_model_set_dtype(m, c->dtype);
    bpt_model_init_weights(m, 7);
    /* norms away from 1 so their gradients matter */
    for (int i = 0; i < m->ntensors; i++) {
        if (m->tensors[i].ndim != 1) continue;
        float *h = malloc(m->tensors[i].numel * sizeof(float));
        for (size_t e = 0; e < m->tensors[i].numel; e++) h[e] = 1.0f + 0.1f * bpt_randn(3, m->tensors[i].name, e);
        bpt_model_set(m, BPT_BUF_PARAM, i, h);
        free(h);
    }
    if (round_masters) {
        uint16_t *h = malloc(m->nparams * sizeof(uint16_t));
        k->to_bf16(h, m->buf[BPT_BUF_PARAM], m->nparams);
        k->from_bf16(m->buf[BPT_BUF_PARAM], h, m->nparams);
        free(h);
    }
    float *masters = malloc(m->nparams * sizeof(float));
    memcpy(masters, m->buf[BPT_BUF_PARAM], m->nparams * sizeof(float));
    int N = B * T;
    int32_t *in = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t));
    float *mask = malloc(N * sizeof(float));
    double cnt = 0;
    for (int i = 0; i < N; i++) {
        in[i] = (int32_t)((i * 7919u + 13u) % (unsigned)c->llama.vocab_size);
        tg[i] = (int32_t)((i * 104729u + 5u) % (unsigned)c->llama.vocab_size);
        mask[i] = (i % 5 == 3) ? 0.0f : 1.0f;
        cnt += mask[i];
    }
    double out[2] = {0, 0};
    bpt_model_forward_backward(m, in, tg, mask, (float)(1.0 / cnt), out);
    r.loss = out[0] / cnt;
    r.acc = out[1] / cnt;
    r.n = m->nparams;
    r.grads = malloc(r.n * sizeof(float));
    memcpy(r.grads, m->buf[BPT_BUF_GRAD], r.n * sizeof(float));
    r.peak = a.peak;
    CHECK(!memcmp(masters, m->buf[BPT_BUF_PARAM], m->nparams * sizeof(float)),
          "  the step leaves the fp32 master weights untouched (dtype %s)", bpt_dtype_name(c->dtype));
    free(masters);
    if (k == &bpt_kernels_cpu)
        CHECK(plan == a.peak, "  plan %zu == measured arena peak %zu", plan, a.peak);
    free(in); free(tg); free(mask);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    return r;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; num += d * d; den += (double)b[i] * b[i]; }
    return sqrt(num / (den + 1e-30));
}

int main(void) {
    const int B = 2, T = 32;
    bpt_config c;
    base_config(&c, T);
    run_out ref = run(&c, B, T, &bpt_kernels_cpu);
    CHECK(isfinite(ref.loss) && ref.loss > 3.0 && ref.loss < 5.0, "reference loss %.6f near ln(61)=4.11", ref.loss);

    const char *modes[] = {"vanilla", "memeff", "bpt"};
    const char *pol[] = {"", "nothing_saveable", "everything_saveable", "dots_saveable", "dots_with_no_batch_dims_saveable"};
    int chunks[][2] = {{4, 8}, {8, 8}, {16, 4}, {32, 32}, {8, 32}};
    for (int mi = 0; mi < 3; mi++)
        for (int pb = 0; pb < 5; pb++)
            for (int pa = 0; pa < 5; pa++) {
                if (pb && pa && pa != pb) continue;    /* keep the matrix small */
                int ch = (mi * 5 + pb + pa) % 5;
                bpt_config v;
                base_config(&v, T);
                set_mode(&v, mi);
                char q[16], kk[16];
                snprintf(q, sizeof q, "%d", chunks[ch][0]);
                snprintf(kk, sizeof kk, "%d", chunks[ch][1]);
                set(&v, "llama.scan_query_chunk_size", q);
                set(&v, "llama.scan_key_chunk_size", kk);
                set(&v, "llama.scan_mlp_chunk_size", "8");
                set(&v, "llama.scan_loss_chunk_size", "16");
                set(&v, "llama.remat_block", pol[pb]);
                set(&v, "llama.remat_attention", pol[pa]);
                set(&v, "llama.remat_mlp", pol[(pa + 1) % 5]);
                run_out r = run(&v, B, T, &bpt_kernels_cpu);
                double lerr = fabs(r.loss - ref.loss) / fabs(ref.loss), gerr = rel_err(r.grads, ref.grads, ref.n);
                CHECK(lerr <= 1e-6 && gerr <= 1e-5 && r.acc == ref.acc,
                      "%-7s Bq=%2d Bk=%2d block='%s' attn='%s' mlp='%s': loss rel %.1e grad rel %.1e",
                      modes[mi], chunks[ch][0], chunks[ch][1], pol[pb], pol[pa], pol[(pa + 1) % 5], lerr, gerr);
                free(r.grads);
            }

    /* determinism: the same run twice is bit-identical */
    {
        bpt_config v;
        base_config(&v, T);
        set(&v, "llama.scan_attention", "true");
        set(&v, "llama.scan_query_chunk_size", "8");
        set(&v, "llama.scan_key_chunk_size", "4");
        bpt_config w = v;
        run_out r1 = run(&v, B, T, &bpt_kernels_cpu), r2 = run(&w, B, T, &bpt_kernels_cpu);
        CHECK(r1.loss == r2.loss && !memcmp(r1.grads, r2.grads, r1.n * sizeof(float)), "bit-identical reruns");
        free(r1.grads); free(r2.grads);
    }

    /* memory: at T=512, bpt + nothing_saveable < memeff < vanilla; remat lowers the peak */
    {
        const int TT = 512;
        size_t peak[4];
        for (int i = 0; i < 4; i++) {
            bpt_config v;
            base_config(&v, TT);
            set(&v, "llama.intermediate_size", "256");
            set(&v, "llama.vocab_size", "256");
            set_mode(&v, i >= 2 ? 2 : i);
            set(&v, "llama.scan_query_chunk_size", "64");
            set(&v, "llama.scan_key_chunk_size", "64");
            set(&v, "llama.scan_mlp_chunk_size", "64");
            set(&v, "llama.scan_loss_chunk_size", "64");
            if (i == 3) { set(&v, "llama.remat_attention", "nothing_saveable"); set(&v, "llama.remat_mlp", "nothing_saveable"); }
            char err[256];
            bpt_config_finalize(&v, err, sizeof err);
            peak[i] = bpt_plan_peak_bytes(&v, 1, TT);
        }
        CHECK(peak[1] < peak[0], "memeff peak %zu < vanilla %zu", peak[1], peak[0]);
        CHECK(peak[2] < peak[1], "bpt peak %zu < memeff %zu", peak[2], peak[1]);
        CHECK(peak[3] < peak[2], "bpt+nothing_saveable peak %zu < bpt %zu", peak[3], peak[2]);
    }
    /* what the arena holds at the peak of a long-T bpt step (nothing_saveable): the
     * layer backward's buffers, laid out for it (docs/design.md): x1, xn2, xn1 and a
     * separate dxn are gone by then, and one dx buffer is x_L's own; with the bf16
     * residual, dq lives in the widened x_l's buffer */
    for (int r16 = 0; r16 < 2; r16++) {
        bpt_config v;
        base_config(&v, 2048);
        set_mode(&v, 2);
        set(&v, "llama.scan_query_chunk_size", "256");
        set(&v, "llama.scan_key_chunk_size", "256");
        set(&v, "llama.scan_mlp_chunk_size", "64");
        set(&v, "llama.scan_loss_chunk_size", "64");
        set(&v, "llama.remat_block", "nothing_saveable");
        set(&v, "llama.num_attention_heads", "4");
        set(&v, "llama.num_key_value_heads", "4");
        set(&v, "llama.residual_dtype", r16 ? "bf16" : "fp32");
        set(&v, "train_dataset.hdf5_dataset.batch_size", "1");
        char err[512];
        bpt_plan p;
        if (bpt_config_finalize(&v, err, sizeof err) != 0 || bpt_plan_step(&v, 1, &p, err, sizeof err) != 0) {
            tap_bail("plan: %s", err);
        }
        int nd = 0, bad = 0, dx = 0;
        char list[1024] = "";
        for (int i = 0; i < p.nat_peak; i++) {
            const char *w = p.at_peak[i].what;
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s x%d", len ? ", " : "", w, p.at_peak[i].count);
            if (p.at_peak[i].bytes >= (size_t)p.at_peak[i].count * 2048 * 32 * 4) nd += p.at_peak[i].count;
            if (!strcmp(w, "x1") || !strcmp(w, "xn2") || !strcmp(w, "xn1") || !strcmp(w, "dxn")) bad++;
            if (r16 && !strcmp(w, "dq")) bad++;
            if (!strcmp(w, "dx")) dx += p.at_peak[i].count;
        }
        /* fp32 N x D (or larger) at the peak: x_0..x_L (3), dx, q, k, v, o, dq, dk, dv;
         * bf16 residual: the two layer buffers, dx, q, k, v, o, dk, dv */
        CHECK(!bad && dx == 1 && nd == (r16 ? 9 : 11), "bpt, nothing_saveable, T=2048, residual %s: %d N*D buffers at the peak: %s",
              r16 ? "bf16" : "fp32", nd, list);
    }

    /* residual_dtype bf16: the forward (and so the loss) is untouched; the backward
     * recomputes each layer from its input rounded to bf16 (relative error up to 2^-8), so the
     * gradients move by about that much; the kept layer inputs take half the bytes */
    for (int pi = 0; pi < 2; pi++) {
        const char *policy = pi ? "nothing_saveable" : "";
        bpt_config v, w;
        base_config(&v, T);
        set(&v, "llama.num_hidden_layers", "4");
        set_mode(&v, 2);
        set(&v, "llama.scan_mlp_chunk_size", "8");
        set(&v, "llama.scan_loss_chunk_size", "16");
        set(&v, "llama.remat_block", policy);
        w = v;
        set(&w, "llama.residual_dtype", "bf16");
        run_out r32 = run(&v, B, T, &bpt_kernels_cpu), r16 = run(&w, B, T, &bpt_kernels_cpu);
        double gerr = rel_err(r16.grads, r32.grads, r32.n);
        CHECK(r16.loss == r32.loss && gerr > 0 && gerr < 1e-2,
              "residual_dtype bf16, block='%s': same loss, gradients within bf16 (rel %.1e)", policy, gerr);
        /* fp32 keeps L+1 inputs of N*D*4 bytes; bf16 keeps L of N*D*2 plus two fp32 buffers */
        size_t saved = r32.peak - r16.peak, expect = (size_t)(4 - 2) * B * T * 32 * 2;
        CHECK(r16.peak < r32.peak && saved + 1024 >= expect,
              "residual_dtype bf16, block='%s': peak %zu < %zu (saves %zu bytes, (L-2)*N*D*2 = %zu)", policy,
              r16.peak, r32.peak, saved, expect);
        free(r32.grads); free(r16.grads);
    }

    /* dtype bf16: the step computes with bf16 copies of the weights, so it equals,
     * bit for bit, an fp32 step on master weights rounded to bf16 beforehand; and it is
     * a different function from the fp32 step (the rounding is really there) */
    for (int mi = 0; mi < 3; mi++) {
        bpt_config v, w;
        base_config(&v, T);
        set_mode(&v, mi);
        set(&v, "llama.scan_mlp_chunk_size", "8");
        set(&v, "llama.scan_loss_chunk_size", "16");
        set(&v, "llama.remat_block", mi == 2 ? "nothing_saveable" : "");
        set(&v, "llama.tie_word_embeddings", mi == 1 ? "true" : "false");
        w = v;
        set(&v, "dtype", "bf16");
        run_out r16 = run(&v, B, T, &bpt_kernels_cpu);
        run_out r32 = run(&w, B, T, &bpt_kernels_cpu);
        round_masters = 1;
        run_out rr = run(&w, B, T, &bpt_kernels_cpu);
        round_masters = 0;
        double gerr = rel_err(r16.grads, r32.grads, r32.n);
        CHECK(r16.loss == rr.loss && !memcmp(r16.grads, rr.grads, rr.n * sizeof(float)) && r16.loss != r32.loss &&
              gerr > 0 && gerr < 1e-2,
              "dtype bf16, %s%s: loss and gradients bit-identical to fp32 on rounded masters; vs fp32: loss %.1e, grads %.1e",
              modes[mi], mi == 1 ? " (tied)" : "", fabs(r16.loss - r32.loss) / r32.loss, gerr);
        CHECK(r16.peak > r32.peak, "dtype bf16, %s: the bf16 copies and the widened layer are in the peak (%zu > %zu)",
              modes[mi], r16.peak, r32.peak);
        free(r16.grads); free(r32.grads); free(rr.grads);
    }

    free(ref.grads);
    return tap_done();
}
