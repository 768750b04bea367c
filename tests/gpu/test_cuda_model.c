/* test_cuda_model.c — the model on the CUDA backend against the CPU backend.
 *
 * Same weights (the generator is host side), same batch: loss and every gradient
 * tensor must agree to bf16 precision (loss 5e-3 relative, gradients 3e-2 relative
 * L2: the bf16 roundings of the GEMMs and attention add up over the layers), for the
 * vanilla, memeff and bpt modes, and bpt with the residual stream kept in bf16. Both
 * backends run with dtype bf16 (the default): the same bf16 copies of the weights, so
 * what differs is the device's bf16 activations. Three AdamW steps must keep the losses together, the
 * device run must be bit-reproducible, and the memory plan (null backend plus the CUDA
 * workspace) must equal the device arena's measured peak.
 */
#include "gpu_test.h"
#include "bpt/optim.h"

typedef struct run_out { double loss[4]; float *grads; size_t n, peak, plan; } run_out;

static void set(bpt_config *c, const char *k, const char *v) {
    char err[512];
    if (bpt_config_set(c, k, v, err, sizeof err) != 0) tap_bail("config: %s", err);
}

static void base_config(bpt_config *c, const char *mode, const char *device) {
    bpt_config_defaults(c);
    const char *kv[][2] = {
        {"load_llama_config", "tiny"}, {"llama.vocab_size", "300"}, {"llama.hidden_size", "128"},
        {"llama.intermediate_size", "256"}, {"llama.num_attention_heads", "2"},
        {"llama.num_key_value_heads", "1"}, {"llama.num_hidden_layers", "2"},
        {"llama.max_sequence_length", "1024"}, {"train_dataset.hdf5_dataset.seq_length", "160"},
        {"llama.scan_query_chunk_size", "32"}, {"llama.scan_key_chunk_size", "64"},
        {"llama.scan_mlp_chunk_size", "64"}, {"llama.scan_loss_chunk_size", "32"},
        {"optimizer.adamw_optimizer.lr", "0.01"}, {"optimizer.adamw_optimizer.lr_warmup_steps", "0"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) set(c, kv[i][0], kv[i][1]);
    int m = strcmp(mode, "vanilla") == 0 ? 0 : strcmp(mode, "memeff") == 0 ? 1 : 2;
    if (strcmp(mode, "bpt+bf16-residual") == 0) set(c, "llama.residual_dtype", "bf16");
    set(c, "llama.scan_attention", m >= 1 ? "true" : "false");
    set(c, "llama.scan_mlp", m == 2 ? "true" : "false");
    set(c, "llama.scan_loss", m == 2 ? "true" : "false");
    if (m == 2) set(c, "llama.remat_block", "nothing_saveable");
    set(c, "device", device);
}

static run_out run(bpt_config *c, int B, int T) {
    char err[512];
    if (bpt_config_finalize(c, err, sizeof err) != 0) tap_bail("finalize: %s", err);
    const bpt_kernels *k = bpt_kernels_get(bpt_device_name(c->device));
    run_out r;
    r.plan = bpt_plan_peak_bytes(c, B, T);
    bpt_arena a;
    if (bpt_arena_init(&a, k, r.plan) != 0) tap_bail("arena of %zu bytes on %s", r.plan, k->name);
    bpt_model *m = bpt_model_create(&c->llama, k, &a, B, T, 1, NULL);
    bpt_model_set_dtype(m, c->dtype);
    bpt_model_init_weights(m, 11);
    int N = B * T;
    int32_t *in = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t));
    float *mask = malloc(N * sizeof(float));
    double cnt = 0;
    for (int i = 0; i < N; i++) {
        in[i] = (int32_t)((i * 7919u + 13u) % 300u);
        tg[i] = (int32_t)((i * 31u + 5u) % 300u);
        mask[i] = (i % 7 == 3) ? 0.0f : 1.0f;
        cnt += mask[i];
    }
    for (int step = 0; step < 4; step++) {
        double out[2] = {0, 0};
        bpt_model_zero_grad(m);
        bpt_model_forward_backward(m, in, tg, mask, (float)(1.0 / cnt), out);
        r.loss[step] = out[0] / cnt;
        if (step == 0) {
            r.n = m->nparams;
            r.grads = malloc(r.n * sizeof(float));
            k->copy_d2h(r.grads, m->buf[BPT_BUF_GRAD], r.n * sizeof(float));
        }
        bpt_optim_stats st;
        bpt_optim_step(m, &c->optimizer.adamw, step, &st);
    }
    k->sync();
    r.peak = a.peak;
    free(in); free(tg); free(mask);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    return r;
}

int main(void) {
    gpu_or_skip();
    const int B = 2, T = 160;
    const char *modes[] = {"vanilla", "memeff", "bpt", "bpt+bf16-residual"};
    for (int mi = 0; mi < 4; mi++) {
        bpt_config cc, cg;
        base_config(&cc, modes[mi], "cpu");
        base_config(&cg, modes[mi], "cuda");
        run_out rc = run(&cc, B, T), rg = run(&cg, B, T);
        CHECK(fabs(rg.loss[0] - rc.loss[0]) < 5e-3 * rc.loss[0], "%s: loss cuda %.6f vs cpu %.6f", modes[mi],
              rg.loss[0], rc.loss[0]);
        /* per tensor: every gradient, not just the big ones */
        bpt_model *layout;
        bpt_arena na;
        bpt_arena_init(&na, &bpt_kernels_null, (size_t)1 << 32);
        layout = bpt_model_create(&cc.llama, &bpt_kernels_null, &na, B, T, 0, NULL);
        double worst = 0;
        const char *wname = "";
        for (int i = 0; i < layout->ntensors; i++) {
            const bpt_tensor *t = &layout->tensors[i];
            double e = rel_l2(rg.grads + t->offset, rc.grads + t->offset, t->numel);
            if (!(e <= worst)) { worst = e; wname = t->name; }
        }
        CHECK(worst < 3e-2, "%s: gradients, worst tensor %s at %.2e relative L2", modes[mi], wname, worst);
        bpt_model_free(layout);
        bpt_arena_destroy(&na);
        CHECK(fabs(rg.loss[3] - rc.loss[3]) < 2e-2 * rc.loss[3] && rg.loss[3] < rg.loss[0],
              "%s: after 3 AdamW steps loss cuda %.5f vs cpu %.5f (from %.5f)", modes[mi], rg.loss[3], rc.loss[3],
              rg.loss[0]);
        CHECK(rg.plan == rg.peak, "%s: device plan %zu == measured device arena peak %zu", modes[mi], rg.plan, rg.peak);
        run_out r2 = run(&cg, B, T);
        CHECK(memcmp(r2.loss, rg.loss, sizeof rg.loss) == 0 && memcmp(r2.grads, rg.grads, rg.n * 4) == 0,
              "%s: the device run is bit-reproducible", modes[mi]);
        free(rc.grads); free(rg.grads); free(r2.grads);
    }
    return tap_done();
}
