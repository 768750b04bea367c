/* train.c — the training loop, evaluation and the memory plan. */
#include "bpt/bpt.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 1024

/* ----------------------------------------------------------- memory plan -- */

size_t bpt_plan_peak_bytes(const bpt_config *c, int B, int T) {
    /* Run one whole training step on the null backend: no memory is touched and no
     * math is done, but every arena allocation happens exactly as on a real backend. */
    bpt_arena a;
    size_t reserve = (size_t)1 << 46;
    while (bpt_arena_init(&a, &bpt_kernels_null, reserve) != 0) {
        reserve >>= 1;
        BPT_CHECK(reserve >= ((size_t)1 << 30), "cannot reserve address space for the memory plan");
    }
    bpt_model *m = bpt_model_create(&c->llama, &bpt_kernels_null, &a, B, T, 1, NULL);
    size_t N = (size_t)B * T;
    int32_t *tok = bpt_xcalloc(N, sizeof(int32_t));
    float *mask = bpt_xcalloc(N, sizeof(float));
    double out[2] = {0, 0};
    bpt_model_forward_backward(m, tok, tok, mask, 1.0f, out);
    bpt_optim_stats st;
    bpt_optim_step(m, &c->optimizer.adamw, 0, &st);
    size_t peak = a.peak;
    free(tok);
    free(mask);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    return peak;
}

/* --------------------------------------------------------------- helpers -- */

/* FLOP/s of the CPU sgemm on this rank, measured on 1024^3 products. */
static double measure_peak_flops(const bpt_kernels *k) {
    int n = 1024;
    float *a = bpt_xcalloc((size_t)n * n, sizeof(float)), *b = bpt_xcalloc((size_t)n * n, sizeof(float));
    float *cc = bpt_xcalloc((size_t)n * n, sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    k->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cc, n);   /* warm up */
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = bpt_now();
        k->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cc, n);
        double f = 2.0 * n * n * (double)n / (bpt_now() - t0);
        if (f > best) best = f;
    }
    free(a); free(b); free(cc);
    return best;
}

static const bpt_kernels *backend_or_die(const bpt_config *c) {
    const bpt_kernels *k = bpt_kernels_get(c->device);
    if (!k)
        bpt_die("bad value for device: '%s' (backend not compiled in; this build has: %s; "
                "HINT: ./configure --with-cuda)", c->device, bpt_kernels_list());
    return k;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (s < 0 || !isfinite(s)) s = 0;
    int h = (int)(s / 3600), mi = (int)(fmod(s, 3600) / 60), se = (int)fmod(s, 60);
    if (h) snprintf(buf, n, "%dh%02dm", h, mi);
    else if (mi) snprintf(buf, n, "%dm%02ds", mi, se);
    else snprintf(buf, n, "%ds", se);
}

typedef struct eval_result { double loss, accuracy; uint64_t tokens; } eval_result;

/* Mean over nsteps batches of the loader: token-weighted loss and accuracy. */
static int evaluate(bpt_model *m, bpt_loader *ld, int rows, int64_t nsteps, eval_result *r,
                    char *err, size_t errlen) {
    bpt_batch b;
    bpt_batch_alloc(&b, rows, m->T);
    double sum[2] = {0, 0}, count = 0;
    for (int64_t s = 0; s < nsteps; s++) {
        if (bpt_loader_next(ld, &b, rows, 0, err, errlen) != 0) { bpt_batch_free(&b); return -1; }
        for (size_t i = 0; i < (size_t)rows * m->T; i++) count += b.mask[i];
        bpt_model_forward(m, b.inputs, b.targets, b.mask, sum);
    }
    bpt_batch_free(&b);
    r->loss = count > 0 ? sum[0] / count : 0;
    r->accuracy = count > 0 ? sum[1] / count : 0;
    r->tokens = (uint64_t)count;
    return 0;
}

static void save(const bpt_config *c, bpt_model *m, const char *name, int64_t step, uint64_t tokens) {
    char path[2 * BPT_STR + 64], err[ERRLEN], dir[BPT_STR + 16];
    snprintf(dir, sizeof dir, "%s/ckpt", c->output_dir);
    if (bpt_mkdirs(dir) != 0) bpt_die("logger.output_dir: cannot create directory '%s'", dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bpt_ckpt_meta meta = {step, tokens};
    char *yaml = bpt_config_to_yaml(c);
    if (bpt_ckpt_save(path, m, &meta, yaml, c->ckpt_save_optimizer_state, err, sizeof err) != 0)
        bpt_die("%s", err);
    free(yaml);
}

/* ------------------------------------------------------------------ train -- */

int bpt_train_main(bpt_config *c) {
    char err[ERRLEN];
    bpt_mesh mesh;
    if (bpt_mesh_init(&mesh, c->mesh_dim, err, sizeof err) != 0) bpt_die("%s", err);
    if (mesh.world_size != 1)
        bpt_die("mesh_dim: '%s' on %d ranks: this build trains on one rank only "
                "(data, FSDP and tensor parallelism come with the mesh module)", c->mesh_dim, mesh.world_size);
    if (c->num_threads > 0) omp_set_num_threads(c->num_threads);
    const bpt_kernels *k = backend_or_die(c);
    const bpt_llama_config *lc = &c->llama;
    const bpt_source_config *src = bpt_dataset_source(&c->train_dataset);
    int B = src->batch_size, T = src->seq_length, accum = c->optimizer.accumulate_gradient_steps;

    bpt_loader *ld = bpt_loader_open(&c->train_dataset, lc->vocab_size, lc->bos_token_id,
                                     lc->eos_token_id, err, sizeof err);
    if (!ld) bpt_die("train_dataset: %s", err);
    bpt_loader *eld = NULL;
    if (c->eval_steps > 0) {
        const bpt_source_config *es = bpt_dataset_source(&c->eval_dataset);
        if (es->seq_length != T || es->batch_size != B)
            bpt_die("eval_dataset: seq_length %d and batch_size %d must equal the train_dataset's (%d, %d)",
                    es->seq_length, es->batch_size, T, B);
        eld = bpt_loader_open(&c->eval_dataset, lc->vocab_size, lc->bos_token_id, lc->eos_token_id, err, sizeof err);
        if (!eld) bpt_die("eval_dataset: %s", err);
    }

    /* one arena, exactly as large as the planned peak */
    size_t planned = bpt_plan_peak_bytes(c, B, T);
    size_t cap = c->arena_bytes > 0 ? (size_t)c->arena_bytes : planned;
    bpt_arena arena;
    char b1[32], b2[32];
    if (bpt_arena_init(&arena, k, cap) != 0)
        bpt_die("cannot allocate the arena of %s on backend %s (HINT: smaller chunks, a remat policy or arena_bytes)",
                bpt_fmt_bytes((double)cap, b1, sizeof b1), k->name);
    bpt_model *m = bpt_model_create(lc, k, &arena, B, T, 1, NULL);

    int64_t start = 0;
    if (c->load_checkpoint[0]) {
        bpt_load_kind kind;
        char path[BPT_STR];
        bpt_ckpt_meta meta = {0, 0};
        if (bpt_ckpt_parse_spec(c->load_checkpoint, &kind, path, sizeof path, err, sizeof err) != 0 ||
            bpt_ckpt_load(path, kind, m, &meta, err, sizeof err) != 0)
            bpt_die("%s", err);
        if (kind == BPT_LOAD_TRAINSTATE) {
            start = meta.step;
            bpt_loader_set_tokens_consumed(ld, meta.tokens_consumed);
        }
    } else {
        bpt_model_init_weights(m, (uint64_t)c->seed);
    }

    double peak_flops = c->peak_flops;
    int measured = peak_flops <= 0;
    if (measured) peak_flops = measure_peak_flops(k);
    double fpt = bpt_llama_flops_per_token(lc, T);

    if (bpt_mkdirs(c->output_dir) != 0) bpt_die("logger.output_dir: cannot create directory '%s'", c->output_dir);
    char mpath[BPT_STR + 32];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->output_dir);
    FILE *mf = fopen(mpath, start > 0 ? "a" : "w");
    if (!mf) bpt_die("logger.output_dir: cannot write '%s'", mpath);

    const char *mode = lc->scan_attention ? (lc->scan_mlp && lc->scan_loss ? "bpt" : "memeff") : "vanilla";
    printf("bpt %s | backend %s (compute fp32%s) | %d thread%s\n", PACKAGE_VERSION, k->name,
           strcmp(c->dtype, "fp32") && !strcmp(k->name, "cpu") ? "; dtype bf16 applies on cuda" : "",
           omp_get_max_threads(), omp_get_max_threads() > 1 ? "s" : "");
    printf("model: %.2fM parameters, L=%d D=%d H=%d KVH=%d F=%d V=%d | T=%d batch=%d x %d accum | mode %s\n",
           m->nparams / 1e6, lc->num_hidden_layers, lc->hidden_size, lc->num_attention_heads,
           bpt_kv_heads(lc), lc->intermediate_size, lc->vocab_size, T, B, accum, mode);
    printf("memory: arena %s (planned peak %s) | peak FLOP/s %.1f G (%s)\n",
           bpt_fmt_bytes((double)cap, b1, sizeof b1), bpt_fmt_bytes((double)planned, b2, sizeof b2),
           peak_flops / 1e9, measured ? "measured: sgemm 1024^3 at start" : "config peak_flops");
    if (start > 0) printf("resumed from %s at step %lld\n", c->load_checkpoint, (long long)start);
    fflush(stdout);

    if (c->save_model_freq > 0 && start == 0) save(c, m, "latest.h5", 0, 0);

    bpt_batch *bs = bpt_xcalloc((size_t)accum, sizeof(bpt_batch));
    for (int a = 0; a < accum; a++) bpt_batch_alloc(&bs[a], B, T);
    int tty = isatty(STDERR_FILENO);
    double t_start = bpt_now(), last_loss = NAN;
    int64_t done = 0;
    for (int64_t step = start; step < c->total_steps; step++) {
        double t0 = bpt_now();
        /* read the step's micro-batches first: the loss is the token-weighted mean
         * over all of them, so the scale needs the total count of unmasked targets */
        double count = 0;
        for (int a = 0; a < accum; a++) {
            if (bpt_loader_next(ld, &bs[a], B, 0, err, sizeof err) != 0) bpt_die("train_dataset: %s", err);
            for (size_t i = 0; i < (size_t)B * T; i++) count += bs[a].mask[i];
        }
        float scale = count > 0 ? (float)(1.0 / count) : 0.0f;
        double stats[2] = {0, 0};
        bpt_model_zero_grad(m);
        for (int a = 0; a < accum; a++)
            bpt_model_forward_backward(m, bs[a].inputs, bs[a].targets, bs[a].mask, scale, stats);
        bpt_optim_stats st;
        bpt_optim_step(m, &c->optimizer.adamw, step, &st);
        double dt = bpt_now() - t0;
        double loss = count > 0 ? stats[0] / count : 0, acc = count > 0 ? stats[1] / count : 0;
        double tps = (double)accum * B * T / dt, mfu = tps * fpt / peak_flops;
        last_loss = loss;
        done++;
        if (!isfinite(loss)) bpt_die("loss is %f at step %lld (HINT: lower optimizer.adamw_optimizer.lr)", loss, (long long)step);

        int is_log = step % c->log_freq == 0 || step == c->total_steps - 1;
        if (is_log) {
            eval_result ev = {0, 0, 0};
            if (eld && evaluate(m, eld, B, c->eval_steps, &ev, err, sizeof err) != 0) bpt_die("eval_dataset: %s", err);
            fprintf(mf, "{\"step\": %lld, \"loss\": %.8g, \"accuracy\": %.8g, \"learning_rate\": %.8g, "
                        "\"gradient_norm\": %.8g, \"param_norm\": %.8g, \"tokens_per_second\": %.6g, "
                        "\"mfu\": %.6g, \"peak_memory_bytes\": %zu",
                    (long long)step, loss, acc, st.lr, st.grad_norm, st.param_norm, tps, mfu, arena.peak);
            if (eld) fprintf(mf, ", \"eval_loss\": %.8g, \"eval_accuracy\": %.8g", ev.loss, ev.accuracy);
            fprintf(mf, "}\n");
            fflush(mf);
            if (tty) fputs("\r\033[K", stderr);
            printf("step %6lld | loss %.4f | acc %.3f | lr %.3e | gnorm %.3f | %.0f tok/s | mfu %.1f%%",
                   (long long)step, loss, acc, st.lr, st.grad_norm, tps, 100 * mfu);
            if (eld) printf(" | eval loss %.4f", ev.loss);
            printf("\n");
            fflush(stdout);
        }
        if (tty) {
            double frac = (double)(step + 1) / c->total_steps, eta = (bpt_now() - t_start) / done * (c->total_steps - step - 1);
            char e[32];
            fmt_duration(eta, e, sizeof e);
            int w = 30, fill = (int)(frac * w);
            fprintf(stderr, "\r[%.*s%*s] %lld/%lld loss %.4f ETA %s", fill, "##############################",
                    w - fill, "", (long long)step + 1, (long long)c->total_steps, loss, e);
            fflush(stderr);
        }
        uint64_t tok = bpt_loader_tokens_consumed(ld);
        if (c->save_milestone_freq > 0 && (step + 1) % c->save_milestone_freq == 0) {
            char name[64];
            snprintf(name, sizeof name, "milestone_%lld.h5", (long long)step + 1);
            save(c, m, name, step + 1, tok);
            save(c, m, "latest.h5", step + 1, tok);
        } else if (c->save_model_freq > 0 && (step + 1) % c->save_model_freq == 0) {
            save(c, m, "latest.h5", step + 1, tok);
        }
    }
    if (tty) fputs("\r\033[K", stderr);
    if (c->save_model_freq > 0 && done > 0) save(c, m, "latest.h5", c->total_steps, bpt_loader_tokens_consumed(ld));
    char e[32];
    fmt_duration(bpt_now() - t_start, e, sizeof e);
    printf("done: %lld steps in %s, final loss %.4f, peak arena memory %s\n", (long long)done, e, last_loss,
           bpt_fmt_bytes((double)arena.peak, b1, sizeof b1));
    printf("metrics: %s\n", mpath);
    if (c->save_model_freq > 0 || c->save_milestone_freq > 0) printf("checkpoints: %s/ckpt/\n", c->output_dir);
    fclose(mf);
    for (int a = 0; a < accum; a++) bpt_batch_free(&bs[a]);
    free(bs);
    bpt_loader_close(ld);
    if (eld) bpt_loader_close(eld);
    bpt_model_free(m);
    bpt_arena_destroy(&arena);
    bpt_mesh_free(&mesh);
    return 0;
}

/* ------------------------------------------------------------------- eval -- */

int bpt_eval_main(bpt_config *c) {
    char err[ERRLEN];
    bpt_mesh mesh;
    if (bpt_mesh_init(&mesh, c->mesh_dim, err, sizeof err) != 0) bpt_die("%s", err);
    if (mesh.world_size != 1) bpt_die("mesh_dim: '%s': bpt eval runs on one rank in this build", c->mesh_dim);
    if (c->num_threads > 0) omp_set_num_threads(c->num_threads);
    if (!c->load_checkpoint[0])
        bpt_die("load_checkpoint: bpt eval needs weights (expected params::FILE or trainstate::FILE)");
    if (c->eval_steps <= 0) bpt_die("bad value for eval_steps: '%lld' (expected > 0 for bpt eval)", (long long)c->eval_steps);
    const bpt_kernels *k = backend_or_die(c);
    const bpt_llama_config *lc = &c->llama;
    const bpt_source_config *src = bpt_dataset_source(&c->eval_dataset);
    bpt_loader *ld = bpt_loader_open(&c->eval_dataset, lc->vocab_size, lc->bos_token_id, lc->eos_token_id, err, sizeof err);
    if (!ld) bpt_die("eval_dataset: %s", err);
    bpt_arena arena;
    size_t cap = c->arena_bytes > 0 ? (size_t)c->arena_bytes : bpt_plan_peak_bytes(c, src->batch_size, src->seq_length);
    if (bpt_arena_init(&arena, k, cap) != 0) bpt_die("cannot allocate the arena on backend %s", k->name);
    bpt_model *m = bpt_model_create(lc, k, &arena, src->batch_size, src->seq_length, 0, NULL);
    bpt_load_kind kind;
    char path[BPT_STR];
    if (bpt_ckpt_parse_spec(c->load_checkpoint, &kind, path, sizeof path, err, sizeof err) != 0 ||
        bpt_ckpt_load(path, kind == BPT_LOAD_TRAINSTATE ? BPT_LOAD_TRAINSTATE_PARAMS : kind, m, NULL, err, sizeof err) != 0)
        bpt_die("%s", err);
    eval_result r;
    if (evaluate(m, ld, src->batch_size, c->eval_steps, &r, err, sizeof err) != 0) bpt_die("eval_dataset: %s", err);
    printf("{\"loss\": %.8g, \"accuracy\": %.8g, \"tokens\": %llu}\n", r.loss, r.accuracy, (unsigned long long)r.tokens);
    bpt_loader_close(ld);
    bpt_model_free(m);
    bpt_arena_destroy(&arena);
    bpt_mesh_free(&mesh);
    return 0;
}
