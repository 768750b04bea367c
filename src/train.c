/* train.c — the training loop, evaluation and the plan of a step. */
#include "bpt/bpt.h"
#include "kernels/kernels.h"
#include "bpt/testhooks.h"
#include "bpt/tboard.h"
#include "bpt/ring.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 1024

/* ------------------------------------------------------------------ a step -- */

typedef struct step_result {
    double loss, accuracy, count;     /* token-weighted over the global batch */
    bpt_optim_stats opt;
} step_result;

/* One optimizer step from `accum` micro-batches of this rank's rows (host memory).
 * The loss is the token-weighted mean over every unmasked target of the global batch
 * of all micro-batches, so the count is reduced first (over the batch axis). */
static void train_step(bpt_model *m, bpt_comm *comm, bpt_batch *bs, int accum,
                       const bpt_adamw_config *o, int64_t step, step_result *r) {
    size_t n = (size_t)m->B * m->T;
    double count = 0;
    for (int a = 0; a < accum; a++)
        for (size_t i = 0; i < n; i++) count += bs[a].mask[i];
    bpt_allreduce_f64(comm, BPT_AXIS_BATCH, &count, 1);
    float scale = count > 0 ? (float)(1.0 / count) : 0.0f;
    double stats[2] = {0, 0};
    bpt_model_zero_grad(m);
    for (int a = 0; a < accum; a++)
        bpt_model_forward_backward(m, bs[a].inputs, bs[a].targets, bs[a].mask, scale, stats);
    bpt_model_reduce_grads(m);
    bpt_optim_step(m, o, step, &r->opt);
    bpt_allreduce_f64(comm, BPT_AXIS_BATCH, stats, 2);
    r->count = count;
    r->loss = count > 0 ? stats[0] / count : 0;
    r->accuracy = count > 0 ? stats[1] / count : 0;
}

/* ------------------------------------------------------------------- plan -- */

int bpt_plan_check_mesh(const bpt_config *c, const int dims[BPT_MESH_AXES], char *err, size_t errlen) {
    const bpt_llama_config *l = &c->llama;
    int tp = dims[2], batch = dims[0] * dims[1];
    int sp = dims[3];
    if (sp > 1 && !l->scan_attention)
        return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (sp=%d needs llama.scan_attention: true; "
                       "vanilla attention does not shard the sequence)", c->mesh_dim, sp);
    struct { const char *key; int v; } div[] = {
        {"llama.num_attention_heads", l->num_attention_heads}, {"llama.num_key_value_heads", bpt_kv_heads(l)},
        {"llama.intermediate_size", l->intermediate_size}, {"llama.vocab_size", l->vocab_size},
    };
    for (size_t i = 0; i < sizeof div / sizeof div[0]; i++)
        if (div[i].v % tp != 0)
            return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (tp=%d does not divide %s=%d)",
                           c->mesh_dim, tp, div[i].key, div[i].v);
    const bpt_dataset_config *ds[2] = {&c->train_dataset, &c->eval_dataset};
    const char *names[2] = {"train_dataset", "eval_dataset"};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && c->eval_steps <= 0) continue;
        const bpt_source_config *s = bpt_dataset_source(ds[i]);
        int chunk = l->scan_query_chunk_size > l->scan_key_chunk_size ? l->scan_query_chunk_size
                                                                      : l->scan_key_chunk_size;
        if (sp > 1 && s->seq_length % (2 * sp) != 0)
            return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (sp=%d: %s seq_length=%d is not divisible "
                           "by 2*sp=%d, the zig-zag chunks)", c->mesh_dim, sp, names[i], s->seq_length, 2 * sp);
        if (sp > 1 && s->seq_length / sp < chunk)
            return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (sp=%d: %s seq_length/sp=%d is smaller than "
                           "one attention chunk, %d; HINT: smaller llama.scan_query_chunk_size and "
                           "scan_key_chunk_size, or a smaller sp)", c->mesh_dim, sp, names[i], s->seq_length / sp, chunk);
        if (s->batch_size % batch != 0)
            return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (dp*fsdp=%d does not divide %s batch_size=%d)",
                           c->mesh_dim, batch, names[i], s->batch_size);
        long rows = (long)(s->batch_size / batch) * (s->seq_length / sp);
        if (tp > 1 && l->sequence_parallel && rows % tp != 0)
            return bpt_err(err, errlen, "bad value for llama.sequence_parallel: true (tp=%d does not divide the "
                           "%ld tokens of a rank's micro-batch, %s batch_size/(dp*fsdp) * seq_length/sp = %d * %d; "
                           "HINT: llama.sequence_parallel: false)", tp, rows, names[i], s->batch_size / batch,
                           s->seq_length / sp);
    }
    return 0;
}

/* The arena's allocations at its peak, grouped by name (the names are static strings),
 * largest total first; what does not fit the table is summed into the last row. */
static void plan_at_peak(const bpt_arena *a, bpt_plan *p) {
    typedef struct { const char *what; int count; size_t bytes; } item;
    item *g = bpt_xcalloc((size_t)a->npeak + 1, sizeof *g);
    int n = 0;
    for (int i = 0; i < a->npeak; i++) {
        int j = 0;
        while (j < n && strcmp(g[j].what, a->at_peak[i].what) != 0) j++;
        if (j == n) g[n++].what = a->at_peak[i].what;
        g[j].count++;
        g[j].bytes += a->at_peak[i].bytes;
    }
    for (int i = 1; i < n; i++)   /* insertion sort, largest first (stable) */
        for (int j = i; j > 0 && g[j].bytes > g[j - 1].bytes; j--) { item t = g[j]; g[j] = g[j - 1]; g[j - 1] = t; }
    p->nat_peak = n < BPT_PLAN_TOP ? n : BPT_PLAN_TOP;
    for (int i = 0; i < p->nat_peak; i++) {
        p->at_peak[i].what = g[i].what;
        p->at_peak[i].count = g[i].count;
        p->at_peak[i].bytes = g[i].bytes;
    }
    if (n > BPT_PLAN_TOP) {
        int r = BPT_PLAN_TOP - 1;
        p->at_peak[r].what = "(the rest)";
        for (int i = r + 1; i < n; i++) { p->at_peak[r].count += g[i].count; p->at_peak[r].bytes += g[i].bytes; }
    }
    free(g);
}

static int plan_run(const bpt_config *c, const int dims[BPT_MESH_AXES], int B, int T, bpt_plan *p) {
    /* every arena allocation of a real step, no memory touched, no math done */
    bpt_arena a;
    size_t reserve = (size_t)1 << 46;
    while (bpt_arena_init(&a, &bpt_kernels_null, reserve) != 0) {
        reserve >>= 1;
        BPT_CHECK(reserve >= ((size_t)1 << 30), "cannot reserve address space for the memory plan");
    }
    /* the workspace the target backend takes from the arena first */
    bpt_arena_track(&a);
    const bpt_kernels *tk = bpt_kernels_get(bpt_device_name(c->device));
    if (tk && tk->workspace) bpt_arena_alloc(&a, tk->workspace, "backend workspace");
    bpt_comm comm;
    bpt_comm_dry(&comm, dims[0], dims[1], dims[2], dims[3]);
    T /= dims[3];   /* this rank's tokens of each sequence */
    bpt_model *m = bpt_model_create(&c->llama, &bpt_kernels_null, &a, B, T, 1, &comm);
    bpt_model_set_dtype(m, c->dtype);
    int accum = c->optimizer.accumulate_gradient_steps;
    bpt_batch *bs = bpt_xcalloc((size_t)accum, sizeof(bpt_batch));
    for (int i = 0; i < accum; i++) bpt_batch_alloc(&bs[i], B, T);
    memset(comm.bytes, 0, sizeof comm.bytes);
    step_result r;
    train_step(m, &comm, bs, accum, &c->optimizer.adamw, 0, &r);
    memset(p, 0, sizeof *p);
    p->dp = dims[0]; p->fsdp = dims[1]; p->tp = dims[2]; p->sp = dims[3];
    p->B = B; p->T = T;
    p->param_bytes = m->nparams * sizeof(float);
    p->kept_bytes = m->kept_bytes;
    p->peak_bytes = a.peak;
    for (int i = 0; i < BPT_NAXES; i++) p->comm_bytes[i] = comm.bytes[i];
    plan_at_peak(&a, p);
    for (int i = 0; i < accum; i++) bpt_batch_free(&bs[i]);
    free(bs);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    return 0;
}

int bpt_plan_step(const bpt_config *c, int world_size, bpt_plan *p, char *err, size_t errlen) {
    int dims[BPT_MESH_AXES];
    if (bpt_mesh_parse(c->mesh_dim, world_size, dims, err, errlen) != 0) return -1;
    if (bpt_plan_check_mesh(c, dims, err, errlen) != 0) return -1;
    const bpt_source_config *s = bpt_dataset_source(&c->train_dataset);
    return plan_run(c, dims, s->batch_size / (dims[0] * dims[1]), s->seq_length, p);
}

size_t bpt_plan_peak_bytes(const bpt_config *c, int B, int T) {
    int dims[BPT_MESH_AXES] = {1, 1, 1, 1};
    bpt_plan p;
    plan_run(c, dims, B, T, &p);
    return p.peak_bytes;
}

/* --------------------------------------------------------------- helpers -- */

/* The backend's sgemm rate on 1024^3 products: the best of several runs within about
 * half a second, so that a busy moment does not set the peak too low. */
static double measure_sgemm_flops(const bpt_kernels *k) {
    int n = 1024;
    float *a = bpt_xcalloc((size_t)n * n, sizeof(float)), *b = bpt_xcalloc((size_t)n * n, sizeof(float));
    float *cc = bpt_xcalloc((size_t)n * n, sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    k->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cc, n);   /* warm up */
    double best = 0, t_end = bpt_now() + 0.5;
    for (int r = 0; r < 10 && (r < 3 || bpt_now() < t_end); r++) {
        double t0 = bpt_now();
        k->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cc, n);
        double f = 2.0 * n * n * (double)n / (bpt_now() - t0);
        if (f > best) best = f;
    }
    free(a); free(b); free(cc);
    return best;
}

/* The peak MFU is taken against, and where it comes from: a device backend's bf16
 * tensor-core peak, else (host memory) the backend's sgemm measured on this rank. */
static double backend_peak_flops(const bpt_kernels *k, const char **source) {
    if (k->peak_flops) {
        double dev = k->peak_flops();
        *source = dev > 0 ? "the device's bf16 dense peak"
                          : "unknown for this GPU: MFU is not reported; set peak_flops (FLOP/s per rank)";
        return dev > 0 ? dev : 0.0;
    }
    *source = "measured: best sgemm 1024^3 at start";
    return measure_sgemm_flops(k);
}

/* An MFU above 1 means the peak is wrong (measured while the machine was busy, or a
 * peak_flops set too low): a measured one is measured again, once; if the step still
 * beats it, MFU is reported as unknown from then on (0 returned) with one note. */
static double check_peak(const bpt_kernels *k, double peak, double achieved, int *measured, int root) {
    if (peak <= 0 || achieved <= peak) return peak;
    int was_measured = *measured;
    if (*measured) {
        *measured = 0;   /* once */
        double again = measure_sgemm_flops(k);
        if (again > peak) peak = again;
        if (achieved <= peak) return peak;
    }
    if (root)
        fprintf(stderr, "bpt: note: a step ran at %.1f GFLOP/s per rank, above the peak of %.1f G (%s); MFU is not "
                "reported from here on (set peak_flops to this machine's peak FLOP/s per rank)\n", achieved / 1e9,
                peak / 1e9, was_measured ? "measured on a busy machine" : "peak_flops is too low");
    return 0;
}

/* A step that may fail on some ranks only: every rank learns whether any failed, the
 * failing ones print their reason, then all exit with one summary line (no hang). */
static void agree_or_die(bpt_mesh *mesh, int bad, const char *err, const char *summary) {
    char msg[ERRLEN + BPT_STR + 96];
    if (bad) snprintf(msg, sizeof msg, "%s (rank %d: %s)", summary, mesh->world_rank, err);
    bpt_agree_or_exit(bad != 0, msg);
}

/* The backend named by device, bound to this rank's device (cuda: GPU local_rank %
 * count); a node without a GPU stops the job with a line per rank instead of a hang. */
static const bpt_kernels *backend_or_die(const bpt_config *c, bpt_mesh *mesh) {
    const bpt_kernels *k = bpt_kernels_get(bpt_device_name(c->device));
    if (!k)
        bpt_die("bad value for device: '%s' (backend not compiled in; this build has: %s; "
                "HINT: ./configure --with-cuda)", bpt_device_name(c->device), bpt_kernels_list());
    if (strcmp(k->name, "cuda") == 0 && c->dtype == BPT_DTYPE_FP32)
        bpt_die("bad value for dtype: 'fp32' on device: 'cuda' (the CUDA kernels multiply in bf16 with fp32 "
                "accumulation; use dtype: bf16, or device: cpu to compute in fp32)");
    if (strcmp(k->name, "cuda") == 0 && c->llama.scan_attention && bpt_head_dim(&c->llama) > 128)
        bpt_die("bad value for llama.hidden_size / llama.num_attention_heads: head dim %d on device: 'cuda' "
                "(the CUDA blockwise attention kernels take head dims up to 128)", bpt_head_dim(&c->llama));
    char err[ERRLEN] = "", what[BPT_STR + 64];
    snprintf(what, sizeof what, "device: '%s' is not usable on every rank", bpt_device_name(c->device));
    agree_or_die(mesh, k->init && k->init(mesh->local_rank, err, sizeof err) != 0, err, what);
    /* device buffers of a multi-rank job travel over NCCL */
    if (k->init && mesh->world_size > 1) {
        snprintf(what, sizeof what, "device: '%s': NCCL could not be set up on every rank",
                 bpt_device_name(c->device));
        agree_or_die(mesh, bpt_comm_nccl_init(&mesh->comm, err, sizeof err) != 0, err, what);
    }
    return k;
}

/* The arena: arena_bytes, else exactly the planned peak; a step cannot fit in less. */
static size_t arena_capacity(const bpt_config *c, size_t peak) {
    if (c->arena_bytes <= 0) return peak;
    if ((size_t)c->arena_bytes < peak) {
        char b1[32], b2[32];
        bpt_die("bad value for arena_bytes: '%s' (below the planned peak of %s per rank for this config and "
                "mesh; 0 sizes the arena to it; bpt plan shows where it goes)", bpt_fmt_bytes((double)c->arena_bytes,
                b1, sizeof b1), bpt_fmt_bytes((double)peak, b2, sizeof b2));
    }
    return (size_t)c->arena_bytes;
}

static double wall_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (s < 0 || !isfinite(s)) s = 0;
    int h = (int)(s / 3600), mi = (int)(fmod(s, 3600) / 60), se = (int)fmod(s, 60);
    if (h) snprintf(buf, n, "%dh%02dm", h, mi);
    else if (mi) snprintf(buf, n, "%dm%02ds", mi, se);
    else snprintf(buf, n, "%ds", se);
}

/* The mesh, checked against the config; dies with one line on failure. */
static void mesh_or_die(bpt_mesh *mesh, const bpt_config *c) {
    char err[ERRLEN];
    if (bpt_mesh_init(mesh, c->mesh_dim, err, sizeof err) != 0) bpt_die("%s", err);
    int dims[BPT_MESH_AXES] = {mesh->dp, mesh->fsdp, mesh->tp, mesh->sp};
    if (bpt_plan_check_mesh(c, dims, err, sizeof err) != 0) bpt_die("%s", err);
}

/* The first batch row of this rank: its dp and fsdp coordinates (the batch axis is
 * dp x fsdp x sp, sp fastest; mesh.h). */
static int batch_row0(const bpt_comm *comm, int B) { return comm->rank[BPT_AXIS_BATCH] / comm->size[BPT_AXIS_SP] * B; }

/* The next batch into b (rows x T/sp): on sp > 1 the whole sequences are read into full
 * (rows x T, labels shifted there) and this rank keeps its zig-zag tokens (ring.h). */
static int read_batch(bpt_loader *ld, bpt_batch *b, bpt_batch *full, const bpt_comm *comm, int batch_rows,
                      char *err, size_t errlen) {
    int sp = comm->size[BPT_AXIS_SP], r = comm->rank[BPT_AXIS_SP], row0 = batch_row0(comm, b->rows);
    if (sp == 1) return bpt_loader_next(ld, b, batch_rows, row0, err, errlen);
    if (bpt_loader_next(ld, full, batch_rows, row0, err, errlen) != 0) return -1;
    for (int i = 0; i < b->rows; i++)
        for (int t = 0; t < b->T; t++) {
            size_t to = (size_t)i * b->T + t, from = (size_t)i * full->T + bpt_ring_position(sp, r, b->T, t);
            b->inputs[to] = full->inputs[from];
            b->targets[to] = full->targets[from];
            b->mask[to] = full->mask[from];
        }
    return 0;
}

static void batch_alloc(bpt_batch *b, bpt_batch *full, int rows, int T_local, const bpt_comm *comm) {
    bpt_batch_alloc(b, rows, T_local);
    int sp = comm->size[BPT_AXIS_SP];
    if (sp > 1) bpt_batch_alloc(full, rows, T_local * sp);
    else memset(full, 0, sizeof *full);
}

static void batch_free(bpt_batch *b, bpt_batch *full) {
    bpt_batch_free(b);
    if (full->inputs) bpt_batch_free(full);
}

typedef struct eval_result { double loss, accuracy, tokens; } eval_result;

/* Mean over nsteps global batches of the loader (this rank reads its rows): token
 * weighted loss and accuracy, reduced over the batch axis. Collective; -1 with err on
 * every rank when a read failed on any. */
static int evaluate(bpt_model *m, bpt_comm *comm, bpt_loader *ld, int batch_rows, int64_t nsteps,
                    eval_result *r, char *err, size_t errlen) {
    bpt_batch b, full;
    batch_alloc(&b, &full, m->B, m->T, comm);
    double sum[3] = {0, 0, 0};
    for (int64_t s = 0; s < nsteps; s++) {
        /* a read error is one rank's: every rank stops before the forward's collectives */
        if (bpt_agree(read_batch(ld, &b, &full, comm, batch_rows, err, errlen) != 0, err, errlen)) {
            batch_free(&b, &full);
            return -1;
        }
        for (size_t i = 0; i < (size_t)m->B * m->T; i++) sum[2] += b.mask[i];
        bpt_model_forward(m, b.inputs, b.targets, b.mask, sum);
    }
    batch_free(&b, &full);
    bpt_allreduce_f64(comm, BPT_AXIS_BATCH, sum, 3);
    r->loss = sum[2] > 0 ? sum[0] / sum[2] : 0;
    r->accuracy = sum[2] > 0 ? sum[1] / sum[2] : 0;
    r->tokens = sum[2];
    return 0;
}

/* Save <output_dir>/ckpt/NAME (collective), then point latest at it and prune the
 * regular checkpoints beyond checkpointer.keep (rank 0). 0, or -1 with err on every
 * rank; a failed save leaves the previous checkpoint and latest as they were. The
 * path saved is left in saved. */
static int save(const bpt_config *c, bpt_model *m, const char *name, int64_t step, uint64_t tokens,
                int with_optimizer, char *saved, size_t savedlen, char *err, size_t errlen) {
    char path[2 * BPT_STR + 64], dir[BPT_STR + 16];
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    snprintf(dir, sizeof dir, "%s/ckpt", c->output_dir);
    int bad = rank == 0 && bpt_mkdirs(dir) != 0;
    if (bad) bpt_err(err, errlen, "logger.output_dir: cannot create directory '%s': %s", dir, strerror(errno));
    if (bpt_agree(bad, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bpt_ckpt_meta meta = {step, tokens, c->seed, c->ckpt_float_dtype == BPT_DTYPE_BF16, 0};
    char *yaml = bpt_config_to_yaml(c);
    bad = bpt_ckpt_save(path, m, &meta, yaml, with_optimizer, err, errlen) != 0;
    free(yaml);
    if (bad) return -1;   /* every rank knows (bpt_ckpt_save agrees) */
    if (rank == 0) {
        bad = bpt_ckpt_set_latest(dir, name, err, errlen) != 0;
        if (!bad) bpt_ckpt_prune(dir, c->ckpt_keep, name);
    }
    if (bpt_agree(bad, err, errlen)) return -1;
    snprintf(saved, savedlen, "%s", path);
    return 0;
}

static void save_or_die(const bpt_config *c, bpt_model *m, const char *name, int64_t step, uint64_t tokens,
                        int with_optimizer, char *saved, size_t savedlen) {
    char err[ERRLEN];
    if (save(c, m, name, step, tokens, with_optimizer, saved, savedlen, err, sizeof err) != 0)
        bpt_die("%s", err);   /* agreed: every rank is here */
}

/* Load the checkpoint spec names (params::FILE, trainstate::FILE or DIR, ...) into m;
 * for_eval: the parameters only. Collective; a failure ends every rank with one line.
 * The file in path (len bytes), its step (for_eval: the step it was saved at) in meta;
 * returns the kind loaded. */
static bpt_load_kind load_or_die(const char *spec, int for_eval, bpt_model *m, bpt_ckpt_meta *meta, char *path,
                                 size_t len) {
    char err[ERRLEN];
    bpt_load_kind kind = BPT_LOAD_PARAMS;
    /* the spec may name a directory, whose latest each rank reads: agreed */
    bpt_agree_or_exit(bpt_ckpt_parse_spec(spec, &kind, path, len, err, sizeof err) != 0, err);
    if (for_eval && kind == BPT_LOAD_TRAINSTATE) kind = BPT_LOAD_TRAINSTATE_PARAMS;
    if (bpt_ckpt_load(path, kind, m, meta, err, sizeof err) != 0) bpt_die("%s", err);   /* agreed inside */
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (for_eval && rank == 0) {   /* the step it was saved at, for rank 0's log line */
        bpt_ckpt_meta saved = {0, 0, 0, 0, 1};
        if (bpt_ckpt_read_meta(path, &saved, err, sizeof err) == 0) meta->step = saved.step;
    }
    return kind;
}

/* autoresume: the checkpoint <output_dir>/ckpt/latest names, decided by rank 0.
 * 1 (path set), 0 (no checkpoint yet); a latest that cannot be followed ends the run
 * (starting afresh would train over the checkpoints it was meant to resume). */
static int find_resume(const bpt_config *c, char *path, size_t len) {
    char dir[BPT_STR + 16], err[ERRLEN] = "";
    int rank = 0, found = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    snprintf(dir, sizeof dir, "%s/ckpt", c->output_dir);
    if (rank == 0) found = bpt_ckpt_latest(dir, path, len, err, sizeof err);
    char msg[ERRLEN + 64];
    snprintf(msg, sizeof msg, "autoresume: %s", err);
    bpt_agree_or_exit(found < 0, msg);
    MPI_Bcast(&found, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (found) MPI_Bcast(path, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
    return found;
}

/* ------------------------------------------------------------- preemption -- */

/* SIGUSR1 (Slurm's warning before the time limit) or SIGTERM: finish the step, agree,
 * checkpoint, exit with BPT_EXIT_PREEMPTED so the job script requeues itself. */
#define BPT_EXIT_PREEMPTED 75   /* EX_TEMPFAIL */
static volatile sig_atomic_t g_preempt = 0;
static void on_preempt(int sig) { g_preempt = sig; }

static void install_preemption_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_preempt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The stall test hook (testhooks.h): this rank hangs before the step, for the watchdog. */
static void test_stall(int rank, int64_t step) {
    const bpt_test_hooks *h = bpt_test_hooks_get();
    if (h->stall_rank != rank || h->stall_step != step) return;
    for (;;) pause();
}

/* The SLURM_* environment for the log header (empty when not under Slurm). */
static void slurm_header(char *buf, size_t n) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job) { buf[0] = 0; return; }
    const char *st = getenv("SLURM_STEP_ID"), *nodes = getenv("SLURM_JOB_NUM_NODES");
    const char *tasks = getenv("SLURM_NTASKS"), *restarts = getenv("SLURM_RESTART_COUNT");
    snprintf(buf, n, "slurm: job %s, step %s, %s node%s, %s tasks%s%s\n", job, st ? st : "-",
             nodes ? nodes : "?", nodes && strcmp(nodes, "1") ? "s" : "", tasks ? tasks : "?",
             restarts ? ", restart " : "", restarts ? restarts : "");
}

/* ------------------------------------------------------------------ train -- */

int bpt_train_main(bpt_config *c) {
    char err[ERRLEN];
    bpt_mesh mesh;
    mesh_or_die(&mesh, c);
    bpt_comm *comm = &mesh.comm;
    int root = mesh.world_rank == 0;
    install_preemption_handlers();
    bpt_watchdog_start(c->comm_timeout_s);
    if (c->num_threads > 0) omp_set_num_threads(c->num_threads);
    const bpt_kernels *k = backend_or_die(c, &mesh);
    const bpt_llama_config *lc = &c->llama;
    const bpt_source_config *src = bpt_dataset_source(&c->train_dataset);
    int Bg = src->batch_size, T = src->seq_length, accum = c->optimizer.accumulate_gradient_steps;
    int B = Bg / (mesh.dp * mesh.fsdp), T_local = T / mesh.sp;

    if (c->train_dataset.shuffle_seed == 0) c->train_dataset.shuffle_seed = c->seed;
    if (c->eval_dataset.shuffle_seed == 0) c->eval_dataset.shuffle_seed = c->seed;
    bpt_loader *ld = bpt_loader_open(&c->train_dataset, c->tokenizer_vocab_file, lc->vocab_size, lc->bos_token_id,
                                     lc->eos_token_id, err, sizeof err);
    char derr[ERRLEN + 96];
    snprintf(derr, sizeof derr, "train_dataset: %s", err);
    bpt_agree_or_exit(!ld, derr);
    bpt_loader *eld = NULL;
    if (c->eval_steps > 0) {
        const bpt_source_config *es = bpt_dataset_source(&c->eval_dataset);
        if (es->seq_length != T || es->batch_size != Bg)
            bpt_die("eval_dataset: seq_length %d and batch_size %d must equal the train_dataset's (%d, %d)",
                    es->seq_length, es->batch_size, T, Bg);
        eld = bpt_loader_open(&c->eval_dataset, c->tokenizer_vocab_file, lc->vocab_size, lc->bos_token_id, lc->eos_token_id, err, sizeof err);
        snprintf(derr, sizeof derr, "eval_dataset: %s", err);
        bpt_agree_or_exit(!eld, derr);
    }

    /* one arena, exactly as large as the planned peak */
    bpt_plan plan;
    if (bpt_plan_step(c, mesh.world_size, &plan, err, sizeof err) != 0) bpt_die("%s", err);
    size_t cap = arena_capacity(c, plan.peak_bytes);
    bpt_arena arena;
    char b1[32], b2[32];
    int abad = bpt_arena_init(&arena, k, cap) != 0;
    if (abad) snprintf(err, sizeof err, "cannot allocate the arena of %s on backend %s on rank %d (HINT: smaller "
                       "chunks, a remat policy or arena_bytes)", bpt_fmt_bytes((double)cap, b1, sizeof b1), k->name,
                       mesh.world_rank);
    bpt_agree_or_exit(abad, err);
    bpt_model *m = bpt_model_create(lc, k, &arena, B, T_local, 1, comm);
    bpt_model_set_dtype(m, c->dtype);

    /* weights: autoresume from the latest complete checkpoint, else load_checkpoint,
     * else fresh; then load_dataset_state may set the loader position */
    int64_t start = 0;
    char spec[2 * BPT_STR + 128] = "";
    char rpath[BPT_STR + 64];
    if (c->autoresume && find_resume(c, rpath, sizeof rpath)) {
        snprintf(spec, sizeof spec, "trainstate::%s", rpath);
    } else if (c->load_checkpoint[0]) {
        snprintf(spec, sizeof spec, "%s", c->load_checkpoint);
    }
    char loaded[BPT_STR + 64] = "";
    if (spec[0]) {
        bpt_ckpt_meta meta = {0, 0, 0, 0, 0};
        bpt_load_kind kind = load_or_die(spec, 0, m, &meta, loaded, sizeof loaded);
        if (kind == BPT_LOAD_TRAINSTATE) {
            start = meta.step;
            bpt_loader_set_tokens_consumed(ld, meta.tokens_consumed);
        }
    } else {
        bpt_model_init_weights(m, (uint64_t)c->seed);
    }
    if (c->load_dataset_state[0] && start == 0) {
        bpt_ckpt_meta meta = {0, 0, 0, 0, 1};
        int bad = bpt_ckpt_read_meta(c->load_dataset_state, &meta, err, sizeof err) != 0;
        snprintf(derr, sizeof derr, "load_dataset_state: %s", err);
        bpt_agree_or_exit(bad, derr);
        bpt_loader_set_tokens_consumed(ld, meta.tokens_consumed);
    }

    double peak_flops = c->peak_flops;
    const char *peak_source = "config peak_flops";
    int peak_measured = peak_flops <= 0 && !k->peak_flops;
    if (peak_flops <= 0) peak_flops = backend_peak_flops(k, &peak_source);
    double fpt = bpt_llama_flops_per_token(lc, T);

    char mpath[BPT_STR + 32];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->output_dir);
    FILE *mf = NULL;
    bpt_tboard *tb = NULL;   /* rank 0, logger.tensorboard */
    /* rank 0 alone makes the directory and opens the metrics; every rank learns how it went */
    int mbad = 0;
    if (root) {
        if (bpt_mkdirs(c->output_dir) != 0)
            mbad = bpt_err(err, sizeof err, "logger.output_dir: cannot create directory '%s': %s", c->output_dir,
                           strerror(errno));
        else if (!(mf = fopen(mpath, "a")))   /* appended, never truncated: a resume adds to it */
            mbad = bpt_err(err, sizeof err, "logger.output_dir: cannot write '%s': %s", mpath, strerror(errno));
        else if (c->tensorboard && start < c->total_steps) {
            char tdir[BPT_STR + 16];
            snprintf(tdir, sizeof tdir, "%s/tensorboard", c->output_dir);
            if (!(tb = bpt_tboard_open(tdir, err, sizeof err))) mbad = -1;
        }
    }
    bpt_agree_or_exit(mbad != 0, err);
    bpt_batch *bs = NULL, *full = NULL;
    if (start >= c->total_steps) {
        if (root) {
            printf("nothing to train: %s is at step %lld and total_steps is %lld (raise total_steps to train "
                   "further)\n", loaded, (long long)start, (long long)c->total_steps);
            fclose(mf);
        }
        goto finish;
    }
    if (root) {
        const char *mode = lc->scan_attention ? (lc->scan_mlp && lc->scan_loss ? "bpt" : "memeff") : "vanilla";
        printf("bpt %s | backend %s (%s) | %d thread%s per rank\n", PACKAGE_VERSION, k->name,
               k->peak_flops ? "bf16 weights and products, fp32 accumulation"
               : m->bf16_weights ? "bf16 weights, fp32 compute" : "fp32", omp_get_max_threads(),
               omp_get_max_threads() > 1 ? "s" : "");
        char sl[256];
        slurm_header(sl, sizeof sl);
        fputs(sl, stdout);
        char spx[48] = "";
        if (mesh.sp > 1) snprintf(spx, sizeof spx, " x sp %d (%d tokens per rank)", mesh.sp, T_local);
        printf("mesh: %d rank%s = dp %d x fsdp %d x tp %d%s | %d rows per rank per micro-batch | %d rank%s on this node\n",
               mesh.world_size, mesh.world_size > 1 ? "s" : "", mesh.dp, mesh.fsdp, mesh.tp, spx, B, mesh.local_size,
               mesh.local_size > 1 ? "s" : "");
        printf("model: %.2fM parameters, L=%d D=%d H=%d KVH=%d F=%d V=%d | T=%d batch=%d x %d accum | mode %s\n",
               bpt_llama_num_params(lc) / 1e6, lc->num_hidden_layers, lc->hidden_size, lc->num_attention_heads,
               bpt_kv_heads(lc), lc->intermediate_size, lc->vocab_size, T, Bg, accum, mode);
        printf("memory per rank: arena %s (planned peak %s) | peak FLOP/s per rank %.1f G (%s)\n",
               bpt_fmt_bytes((double)cap, b1, sizeof b1), bpt_fmt_bytes((double)plan.peak_bytes, b2, sizeof b2),
               peak_flops / 1e9, peak_source);
        if (tb) {
            char *yaml = bpt_config_to_yaml(c);
            bpt_tboard_text(tb, start, wall_clock(), "config", yaml);
            free(yaml);
        }
        if (start > 0) printf("resumed from %s at step %lld\n", loaded, (long long)start);
        else if (loaded[0]) printf("weights from %s\n", loaded);
        fflush(stdout);
    }

    char saved[2 * BPT_STR + 64] = "";   /* the newest checkpoint this run wrote */
    if (c->save_model_freq > 0 && start == 0)
        save_or_die(c, m, "step_0.h5", 0, bpt_loader_tokens_consumed(ld), c->ckpt_save_optimizer_state, saved,
                    sizeof saved);

    bs = bpt_xcalloc((size_t)accum, sizeof(bpt_batch));
    full = bpt_xcalloc((size_t)accum, sizeof(bpt_batch));
    for (int a = 0; a < accum; a++) batch_alloc(&bs[a], &full[a], B, T_local, comm);
    int tty = root && isatty(STDERR_FILENO);
    double t_start = bpt_now(), last_loss = NAN;
    int64_t done = 0;
    for (int64_t step = start; step < c->total_steps; step++) {
        bpt_watchdog_set_step(step);
        test_stall(mesh.world_rank, step);
        double t0 = bpt_now();
        uint64_t bytes0[BPT_NAXES];
        memcpy(bytes0, comm->bytes, sizeof bytes0);
        int dbad = 0;
        for (int a = 0; a < accum && !dbad; a++)
            dbad = read_batch(ld, &bs[a], &full[a], comm, Bg, err, sizeof err) != 0;
        snprintf(derr, sizeof derr, "train_dataset: %s (rank %d, step %lld)", err, mesh.world_rank, (long long)step);
        bpt_agree_or_exit(dbad, derr);   /* a read error is one rank's: all stop, none waits */
        double t_data = bpt_now() - t0;
        step_result r;
        train_step(m, comm, bs, accum, &c->optimizer.adamw, step, &r);
        double dt = bpt_now() - t0;
        uint64_t sent[BPT_NAXES];
        for (int a = 0; a < BPT_NAXES; a++) sent[a] = comm->bytes[a] - bytes0[a];
        /* tokens/s of the whole job; MFU against the peak of all ranks together */
        double tps = (double)accum * Bg * T / dt;
        peak_flops = check_peak(k, peak_flops, tps * fpt / mesh.world_size, &peak_measured, root);
        double mfu = peak_flops > 0 ? tps * fpt / (peak_flops * mesh.world_size) : NAN;   /* NAN: peak unknown */
        char mfu_json[32], mfu_txt[32];
        snprintf(mfu_json, sizeof mfu_json, isfinite(mfu) ? "%.6g" : "null", mfu);
        snprintf(mfu_txt, sizeof mfu_txt, isfinite(mfu) ? "%.1f%%" : "-", 100 * mfu);
        last_loss = r.loss;
        done++;
        if (!isfinite(r.loss)) bpt_die("loss is %f at step %lld (HINT: lower optimizer.adamw_optimizer.lr)", r.loss, (long long)step);

        int is_log = step % c->log_freq == 0 || step == c->total_steps - 1;
        if (is_log) {
            eval_result ev = {0, 0, 0};
            if (eld && evaluate(m, comm, eld, Bg, c->eval_steps, &ev, err, sizeof err) != 0)
                bpt_die("eval_dataset: %s", err);   /* agreed inside evaluate */
            uint64_t peak = bpt_allreduce_max_u64(comm, BPT_AXIS_WORLD, arena.peak);
            if (root) {
                fprintf(mf, "{\"step\": %lld, \"loss\": %.8g, \"accuracy\": %.8g, \"learning_rate\": %.8g, "
                            "\"gradient_norm\": %.8g, \"param_norm\": %.8g, \"tokens_per_second\": %.6g, "
                            "\"mfu\": %s, \"peak_memory_bytes\": %llu, \"data_seconds\": %.6g, \"step_seconds\": %.6g, "
                            "\"dataset_tokens_consumed\": %llu, \"dataset_malformed_lines\": %llu, "
                            "\"comm_bytes\": {\"dp\": %llu, \"fsdp\": %llu, \"tp\": %llu, \"sp\": %llu, \"batch\": %llu, \"world\": %llu}",
                        (long long)step, r.loss, r.accuracy, r.opt.lr, r.opt.grad_norm, r.opt.param_norm, tps, mfu_json,
                        (unsigned long long)peak, t_data, dt, (unsigned long long)bpt_loader_tokens_consumed(ld),
                        (unsigned long long)bpt_loader_malformed_lines(ld), (unsigned long long)sent[BPT_AXIS_DP],
                        (unsigned long long)sent[BPT_AXIS_FSDP], (unsigned long long)sent[BPT_AXIS_TP], (unsigned long long)sent[BPT_AXIS_SP],
                        (unsigned long long)sent[BPT_AXIS_BATCH], (unsigned long long)sent[BPT_AXIS_WORLD]);
                if (eld) fprintf(mf, ", \"eval_loss\": %.8g, \"eval_accuracy\": %.8g", ev.loss, ev.accuracy);
                fprintf(mf, "}\n");
                if (fflush(mf) != 0 || ferror(mf))
                    mbad = bpt_err(err, sizeof err, "%s: cannot write the metrics: %s", mpath, strerror(errno));
                if (tb && !mbad) {   /* the same scalars, tags as the metrics keys (docs/running.md) */
                    bpt_tboard_begin(tb, step, wall_clock());
                    bpt_tboard_scalar(tb, "loss", r.loss);
                    bpt_tboard_scalar(tb, "accuracy", r.accuracy);
                    bpt_tboard_scalar(tb, "learning_rate", r.opt.lr);
                    bpt_tboard_scalar(tb, "gradient_norm", r.opt.grad_norm);
                    bpt_tboard_scalar(tb, "param_norm", r.opt.param_norm);
                    bpt_tboard_scalar(tb, "tokens_per_second", tps);
                    if (isfinite(mfu)) bpt_tboard_scalar(tb, "mfu", mfu);
                    bpt_tboard_scalar(tb, "peak_memory_bytes", (double)peak);
                    static const char *const axes[] = {"comm_bytes/dp", "comm_bytes/fsdp", "comm_bytes/tp", "comm_bytes/sp",
                                                       "comm_bytes/batch", "comm_bytes/world"};
                    const bpt_axis ax[] = {BPT_AXIS_DP, BPT_AXIS_FSDP, BPT_AXIS_TP, BPT_AXIS_SP, BPT_AXIS_BATCH, BPT_AXIS_WORLD};
                    for (int a = 0; a < 6; a++) bpt_tboard_scalar(tb, axes[a], (double)sent[ax[a]]);
                    if (eld) {
                        bpt_tboard_scalar(tb, "eval_loss", ev.loss);
                        bpt_tboard_scalar(tb, "eval_accuracy", ev.accuracy);
                    }
                    bpt_tboard_end(tb);
                    if (bpt_tboard_flush(tb, err, sizeof err) != 0) mbad = -1;
                }
                if (tty) fputs("\r\033[K", stderr);
                printf("step %6lld | loss %.4f | acc %.3f | lr %.3e | gnorm %.3f | %.0f tok/s | mfu %s",
                       (long long)step, r.loss, r.accuracy, r.opt.lr, r.opt.grad_norm, tps, mfu_txt);
                if (eld) printf(" | eval loss %.4f", ev.loss);
                printf("\n");
                fflush(stdout);
            }
            /* a metrics write error (a full disk) ends the run on every rank, non-zero,
             * after a checkpoint of this step if one can still be written */
            if (bpt_agree(mbad != 0, err, sizeof err)) {
                char name[64], cerr[ERRLEN], msg[2 * ERRLEN + 2 * BPT_STR + 128];
                snprintf(name, sizeof name, "step_%lld.h5", (long long)step + 1);
                snprintf(msg, sizeof msg, "%s", err);
                if (c->save_model_freq > 0 || c->save_milestone_freq > 0) {
                    size_t k = strlen(msg);
                    if (save(c, m, name, step + 1, bpt_loader_tokens_consumed(ld), 1, saved, sizeof saved, cerr,
                             sizeof cerr) == 0)
                        snprintf(msg + k, sizeof msg - k, " (checkpoint of step %lld saved: %s)", (long long)step + 1,
                                 saved);
                    else
                        snprintf(msg + k, sizeof msg - k, " (no checkpoint of step %lld either: %s)",
                                 (long long)step + 1, cerr);
                }
                bpt_die("%s", msg);
            }
        }
        if (tty) {
            double frac = (double)(step + 1) / c->total_steps, eta = (bpt_now() - t_start) / done * (c->total_steps - step - 1);
            char e[32];
            fmt_duration(eta, e, sizeof e);
            int w = 30, fill = (int)(frac * w);
            fprintf(stderr, "\r[%.*s%*s] %lld/%lld loss %.4f ETA %s", fill, "##############################",
                    w - fill, "", (long long)step + 1, (long long)c->total_steps, r.loss, e);
            fflush(stderr);
        }
        uint64_t tok = bpt_loader_tokens_consumed(ld);
        if (c->save_milestone_freq > 0 && (step + 1) % c->save_milestone_freq == 0) {
            char name[64];
            snprintf(name, sizeof name, "milestone_%lld.h5", (long long)step + 1);
            save_or_die(c, m, name, step + 1, tok, c->ckpt_save_optimizer_state, saved, sizeof saved);
        } else if (c->save_model_freq > 0 && (step + 1) % c->save_model_freq == 0) {
            char name[64];
            snprintf(name, sizeof name, "step_%lld.h5", (long long)step + 1);
            save_or_die(c, m, name, step + 1, tok, c->ckpt_save_optimizer_state, saved, sizeof saved);
        }
        /* preemption: one all-reduce of the flag per step, so every rank stops at the
         * same step; the checkpoint always carries the optimizer state (for resume) */
        if (bpt_allreduce_max_int(comm, BPT_AXIS_WORLD, (int)g_preempt) && step + 1 < c->total_steps) {
            char name[64];
            snprintf(name, sizeof name, "step_%lld.h5", (long long)step + 1);
            save_or_die(c, m, name, step + 1, tok, 1, saved, sizeof saved);
            if (root) {
                if (tty) fputs("\r\033[K", stderr);
                fprintf(stderr, "bpt: preempted at step %lld: checkpoint saved (%s), exiting with %d\n",
                        (long long)step + 1, saved, BPT_EXIT_PREEMPTED);
                fclose(mf);
                bpt_tboard_close(tb);
            }
            bpt_mesh_free(&mesh);
            bpt_mpi_exit(BPT_EXIT_PREEMPTED);
        }
    }
    if (tty) fputs("\r\033[K", stderr);
    if (c->save_model_freq > 0 && done > 0 && c->total_steps % c->save_model_freq != 0 &&
        !(c->save_milestone_freq > 0 && c->total_steps % c->save_milestone_freq == 0)) {
        char name[64];
        snprintf(name, sizeof name, "step_%lld.h5", (long long)c->total_steps);
        save_or_die(c, m, name, c->total_steps, bpt_loader_tokens_consumed(ld), c->ckpt_save_optimizer_state, saved,
                    sizeof saved);
    }
    if (root) {
        char e[32];
        fmt_duration(bpt_now() - t_start, e, sizeof e);
        printf("done: %lld steps in %s, final loss %.4f, peak arena memory %s per rank\n", (long long)done, e,
               last_loss, bpt_fmt_bytes((double)arena.peak, b1, sizeof b1));
        printf("metrics: %s\n", mpath);
        if (tb) printf("tensorboard: %s\n", bpt_tboard_path(tb));
        if (saved[0]) printf("checkpoint: %s\n", saved);
        fclose(mf);
        bpt_tboard_close(tb);
    }
finish:
    for (int a = 0; bs && a < accum; a++) batch_free(&bs[a], &full[a]);
    free(bs);
    free(full);
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
    if (!c->load_checkpoint[0])
        bpt_die("load_checkpoint: bpt eval needs weights (expected params::FILE or trainstate::FILE)");
    if (c->eval_steps <= 0) bpt_die("bad value for eval_steps: '%lld' (expected > 0 for bpt eval)", (long long)c->eval_steps);
    bpt_mesh mesh;
    mesh_or_die(&mesh, c);
    if (c->num_threads > 0) omp_set_num_threads(c->num_threads);
    const bpt_kernels *k = backend_or_die(c, &mesh);
    const bpt_llama_config *lc = &c->llama;
    const bpt_source_config *src = bpt_dataset_source(&c->eval_dataset);
    if (src->batch_size % (mesh.dp * mesh.fsdp) != 0)
        bpt_die("bad value for mesh_dim: '%s' (dp*fsdp=%d does not divide eval_dataset batch_size=%d)",
                c->mesh_dim, mesh.dp * mesh.fsdp, src->batch_size);
    int B = src->batch_size / (mesh.dp * mesh.fsdp);
    if (c->eval_dataset.shuffle_seed == 0) c->eval_dataset.shuffle_seed = c->seed;
    bpt_loader *ld = bpt_loader_open(&c->eval_dataset, c->tokenizer_vocab_file, lc->vocab_size, lc->bos_token_id, lc->eos_token_id, err, sizeof err);
    char derr[ERRLEN + 32];
    snprintf(derr, sizeof derr, "eval_dataset: %s", err);
    bpt_agree_or_exit(!ld, derr);
    bpt_arena arena;
    int dims[BPT_MESH_AXES] = {mesh.dp, mesh.fsdp, mesh.tp, mesh.sp};
    bpt_plan plan;
    plan_run(c, dims, B, src->seq_length, &plan);
    size_t cap = arena_capacity(c, plan.peak_bytes);
    int abad = bpt_arena_init(&arena, k, cap) != 0;
    char b1[32];
    if (abad) snprintf(err, sizeof err, "cannot allocate the arena of %s on backend %s on rank %d (HINT: a smaller "
                       "eval_dataset batch_size or arena_bytes)", bpt_fmt_bytes((double)cap, b1, sizeof b1), k->name,
                       mesh.world_rank);
    bpt_agree_or_exit(abad, err);
    bpt_model *m = bpt_model_create(lc, k, &arena, B, src->seq_length / mesh.sp, 0, &mesh.comm);
    bpt_model_set_dtype(m, c->dtype);
    char path[BPT_STR + 64];
    bpt_ckpt_meta meta = {0, 0, 0, 0, 1};
    load_or_die(c->load_checkpoint, 1, m, &meta, path, sizeof path);
    if (mesh.world_rank == 0)
        fprintf(stderr, "bpt eval: %s (saved at step %lld), %lld batches of eval_dataset\n", path,
                (long long)meta.step, (long long)c->eval_steps);
    eval_result r;
    if (evaluate(m, &mesh.comm, ld, src->batch_size, c->eval_steps, &r, err, sizeof err) != 0) bpt_die("eval_dataset: %s", err);
    if (mesh.world_rank == 0)
        printf("{\"loss\": %.8g, \"accuracy\": %.8g, \"tokens\": %.0f}\n", r.loss, r.accuracy, r.tokens);
    bpt_loader_close(ld);
    bpt_model_free(m);
    bpt_arena_destroy(&arena);
    bpt_mesh_free(&mesh);
    return 0;
}
