/* shard.c — the parallel layer (include/bpt/shard.h): the holding of each tensor, the
 * FSDP gathers and reduce-scatters, the tensor-parallel regions and the
 * vocabulary-parallel loss statistics. The only file of the model's step that calls
 * collectives. */
#include "bpt/shard.h"
#include "kernels/kernels.h"
#include "bpt/util.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- holding -- */

void bpt_shard_place(bpt_tensor *t, int tp, int fsdp) {
    t->local[0] = t->split == BPT_SPLIT_COL ? t->shape[0] / tp : t->shape[0];
    t->local[1] = t->split == BPT_SPLIT_ROW ? t->shape[1] / tp : t->shape[1];
    t->rows = (t->local[0] + fsdp - 1) / fsdp;
    t->numel = (size_t)t->rows * (size_t)t->local[1];
}

int64_t bpt_shard_to_logical(const bpt_model *m, const bpt_tensor *t, size_t e) {
    int64_t cols = t->local[1], r = (int64_t)(e / (size_t)cols), c = (int64_t)(e % (size_t)cols);
    int64_t lrow = (int64_t)m->fsdp_rank * t->rows + r;   /* row of the tp-local piece */
    if (lrow >= t->local[0]) return -1;
    int64_t row = lrow, col = c;
    if (t->split == BPT_SPLIT_COL) row += (int64_t)m->tp_rank * t->local[0];
    if (t->split == BPT_SPLIT_ROW) col += (int64_t)m->tp_rank * t->local[1];
    return row * t->shape[1] + col;
}

void bpt_model_get(const bpt_model *m, bpt_buf which, int i, float *host) {
    const bpt_tensor *t = &m->tensors[i];
    size_t lnum = (size_t)t->local[0] * t->local[1];
    float *shard = bpt_xmalloc(t->numel * sizeof(float));
    float *local = bpt_xmalloc((size_t)m->fsdp * t->numel * sizeof(float));
    m->k->copy_d2h(shard, bpt_model_shard(m, which, i), t->numel * sizeof(float));
    /* shards -> the tp-local piece (padding rows at the end are dropped) */
    bpt_allgather_f32(m->comm, BPT_AXIS_FSDP, local, shard, t->numel);
    if (t->split == BPT_SPLIT_REP || m->tp == 1) {
        memcpy(host, local, lnum * sizeof(float));
    } else {
        float *all = bpt_xmalloc((size_t)m->tp * lnum * sizeof(float));
        bpt_allgather_f32(m->comm, BPT_AXIS_TP, all, local, lnum);
        if (t->split == BPT_SPLIT_COL) {
            memcpy(host, all, (size_t)m->tp * lnum * sizeof(float));
        } else {   /* ROW: piece p holds columns [p*c, (p+1)*c) of every row */
            int64_t c = t->local[1];
            for (int p = 0; p < m->tp; p++)
                for (int64_t r = 0; r < t->local[0]; r++)
                    memcpy(host + r * t->shape[1] + p * c, all + p * lnum + r * c, (size_t)c * sizeof(float));
        }
        free(all);
    }
    free(shard);
    free(local);
}

void bpt_model_set(bpt_model *m, bpt_buf which, int i, const float *host) {
    const bpt_tensor *t = &m->tensors[i];
    float *h = bpt_xmalloc(t->numel * sizeof(float));
    for (size_t e = 0; e < t->numel; e++) {
        int64_t g = bpt_shard_to_logical(m, t, e);
        h[e] = g < 0 ? 0.0f : host[g];
    }
    m->k->copy_h2d(bpt_model_shard(m, which, i), h, t->numel * sizeof(float));
    free(h);
}

void bpt_model_shard_slab(const bpt_model *m, int i, int64_t start[2], int64_t count[2]) {
    const bpt_tensor *t = &m->tensors[i];
    int64_t r0 = (int64_t)m->fsdp_rank * t->rows, n = t->local[0] - r0;
    count[0] = n < 0 ? 0 : n < t->rows ? n : t->rows;
    count[1] = t->local[1];
    start[0] = (t->split == BPT_SPLIT_COL ? (int64_t)m->tp_rank * t->local[0] : 0) + (count[0] ? r0 : 0);
    start[1] = t->split == BPT_SPLIT_ROW ? (int64_t)m->tp_rank * t->local[1] : 0;
}

int bpt_model_shard_owner(const bpt_model *m, int i) {
    return m->dp_rank == 0 && (m->tensors[i].split != BPT_SPLIT_REP || m->tp_rank == 0);
}

void bpt_model_reduce_grads(bpt_model *m) {
    /* under sequence parallelism each tp rank saw its rows only: the replicated tensors'
     * (the norms') gradients are partial sums over tp */
    if (bpt_tp_seq(m))
        for (int i = 0; i < m->ntensors; i++)
            if (m->tensors[i].split == BPT_SPLIT_REP)
                bpt_allreduce_f32(m->comm, BPT_AXIS_TP, bpt_model_shard(m, BPT_BUF_GRAD, i), m->tensors[i].numel);
    bpt_allreduce_f32(m->comm, BPT_AXIS_DP, m->buf[BPT_BUF_GRAD], m->nparams);
}

double bpt_model_sumsq(const bpt_model *m, bpt_buf which) {
    /* per tensor, in a fixed order; a replicated tensor counts on tp rank 0 only */
    double s[2] = {0.0, 0.0};
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        if (t->split == BPT_SPLIT_REP && m->tp_rank != 0) continue;
        double v = 0.0;
        m->k->sumsq(m->d_stats + 2, bpt_model_shard(m, which, i), t->numel);
        m->k->copy_d2h(&v, m->d_stats + 2, sizeof v);
        s[0] += v;
    }
    bpt_allreduce_f64(m->comm, BPT_AXIS_FSDP, s, 1);
    bpt_allreduce_f64(m->comm, BPT_AXIS_TP, s, 1);
    return s[0];
}

/* ------------------------------------------------------ a layer's weights -- */


/* The layer's tensors laid out from base by full_offset: a gathered buffer, or (fsdp
 * == 1, where a shard is the whole tp-local tensor) the flat buffer itself. */
static bpt_layer_w layer_view(const bpt_model *m, float *base, int l) {
    const bpt_tensor *t = &m->tensors[bpt_llama_layer_tensor(l, 0)];
    bpt_layer_w w = {base + t[BPT_T_NORM1].full_offset, base + t[BPT_T_Q].full_offset, base + t[BPT_T_K].full_offset,
            base + t[BPT_T_V].full_offset, base + t[BPT_T_O].full_offset, base + t[BPT_T_NORM2].full_offset,
            base + t[BPT_T_GATE].full_offset, base + t[BPT_T_UP].full_offset, base + t[BPT_T_DOWN].full_offset};
    return w;
}


void bpt_weights_alloc(bpt_model *m, bpt_layer_weights *b) {
    bpt_arena *ar = m->arena;
    size_t n = m->layer_full;
    memset(b, 0, sizeof *b);
    if (m->bf16_weights) {
        b->w16[0] = bpt_arena_alloc(ar, n * sizeof(uint16_t), "gathered layer weights (bf16)");
        b->w16[1] = m->fsdp > 1 ? bpt_arena_alloc(ar, n * sizeof(uint16_t), "gathered layer weights (bf16, next)")
                                : b->w16[0];
        b->cur = bpt_arena_alloc(ar, n * sizeof(float), "layer weights in use (from bf16)");
    } else if (m->fsdp > 1) {
        b->w32[0] = bpt_arena_alloc(ar, n * sizeof(float), "gathered layer weights");
        b->w32[1] = bpt_arena_alloc(ar, n * sizeof(float), "gathered layer weights (next)");
    }
}

/* The bf16 gather of one tensor into full (fsdp * numel): this rank rounds its shard
 * into its own place, and the in-place all-gather fills the others' around it (req
 * NULL: blocking). */
static void gather_bf16(bpt_model *m, uint16_t *full, const float *shard, size_t numel, bpt_request *req) {
    m->k->to_bf16(full + (size_t)m->fsdp_rank * numel, shard, numel);
    if (req) bpt_iallgather_bf16(m->comm, BPT_AXIS_FSDP, full, numel, req);
    else bpt_allgather_bf16(m->comm, BPT_AXIS_FSDP, full, numel);
}

/* Start the all-gather of layer l's weights (non-blocking, one per tensor). */
void bpt_weights_start(bpt_model *m, bpt_layer_weights *b, int l) {
    int s = l % 2;
    for (int j = 0; j < BPT_T_PER_LAYER; j++) {
        const bpt_tensor *t = &m->tensors[bpt_llama_layer_tensor(l, j)];
        const float *shard = bpt_model_shard(m, BPT_BUF_PARAM, bpt_llama_layer_tensor(l, j));
        bpt_request *r = &b->req[s][j];
        r->r = MPI_REQUEST_NULL;
        r->ev = NULL;
        if (m->bf16_weights) {
            gather_bf16(m, b->w16[s] + t->full_offset, shard, t->numel, r);
        } else if (m->fsdp > 1) {
            bpt_iallgather_f32(m->comm, BPT_AXIS_FSDP, b->w32[s] + t->full_offset, shard, t->numel, r);
        }
    }
}

/* Layer l's weights, ready for the kernels. */
bpt_layer_w bpt_weights_ready(bpt_model *m, bpt_layer_weights *b, int l) {
    int s = l % 2;
    for (int j = 0; j < BPT_T_PER_LAYER; j++) bpt_wait(m->comm, &b->req[s][j]);
    if (m->bf16_weights) {
        m->k->from_bf16(b->cur, b->w16[s], m->layer_full);
        return layer_view(m, b->cur, l);
    }
    if (m->fsdp == 1) return layer_view(m, bpt_model_shard(m, BPT_BUF_PARAM, bpt_llama_layer_tensor(l, 0)), l);
    return layer_view(m, b->w32[s], l);
}


void bpt_grads_alloc(bpt_model *m, bpt_layer_grads *b, int train) {
    memset(b, 0, sizeof *b);
    b->layer[0] = b->layer[1] = -1;
    if (!train || m->fsdp == 1) return;
    for (int s = 0; s < 2; s++) {
        b->full[s] = bpt_arena_alloc(m->arena, m->layer_full * sizeof(float), "layer gradients");
        b->shard[s] = bpt_arena_alloc(m->arena, m->layer_full / m->fsdp * sizeof(float), "layer gradient shards");
    }
}

/* Complete the reduce-scatter in slot s and add its shard to the gradient buffer (a
 * layer's shards are contiguous there, in the order of the slot). */
static void grads_finish(bpt_model *m, bpt_layer_grads *b, int s) {
    int l = b->layer[s];
    if (l < 0) return;
    for (int j = 0; j < BPT_T_PER_LAYER; j++) bpt_wait(m->comm, &b->req[s][j]);
    m->k->axpy(bpt_model_shard(m, BPT_BUF_GRAD, bpt_llama_layer_tensor(l, 0)), 1.0f, b->shard[s], m->layer_full / m->fsdp);
    b->layer[s] = -1;
}

bpt_layer_w bpt_grads_begin(bpt_model *m, bpt_layer_grads *b, int l) {
    if (m->fsdp == 1) return layer_view(m, bpt_model_shard(m, BPT_BUF_GRAD, bpt_llama_layer_tensor(l, 0)), l);
    int s = l % 2;
    grads_finish(m, b, s);
    m->k->zero(b->full[s], m->layer_full * sizeof(float));
    return layer_view(m, b->full[s], l);
}

/* Start the reduce-scatter of layer l's full gradients over fsdp. */
void bpt_grads_commit(bpt_model *m, bpt_layer_grads *b, int l) {
    if (m->fsdp == 1) return;
    int s = l % 2;
    size_t off0 = m->tensors[bpt_llama_layer_tensor(l, 0)].offset;
    for (int j = 0; j < BPT_T_PER_LAYER; j++) {
        const bpt_tensor *t = &m->tensors[bpt_llama_layer_tensor(l, j)];
        bpt_ireduce_scatter_f32(m->comm, BPT_AXIS_FSDP, b->shard[s] + (t->offset - off0), b->full[s] + t->full_offset,
                                t->numel, &b->req[s][j]);
    }
    b->layer[s] = l;
}

/* Reduce-scatter tensor i's full gradient over fsdp and add it to the shard. */
static void grad_commit_tensor(bpt_model *m, int i, const float *full) {
    const bpt_tensor *t = &m->tensors[i];
    size_t mark = bpt_arena_mark(m->arena);
    float *tmp = bpt_arena_alloc(m->arena, t->numel * sizeof(float), "gradient shard");
    bpt_reduce_scatter_f32(m->comm, BPT_AXIS_FSDP, tmp, full, t->numel);
    m->k->axpy(bpt_model_shard(m, BPT_BUF_GRAD, i), 1.0f, tmp, t->numel);
    bpt_arena_release(m->arena, mark);
}

/* A tensor outside the layers (embedding, final norm, lm_head), gathered for use (in
 * bf16: rounded, gathered as bf16 and widened, like a layer). */
float *bpt_tensor_fetch(bpt_model *m, int i, const char *what) {
    const bpt_tensor *t = &m->tensors[i];
    size_t n = (size_t)m->fsdp * t->numel;
    if (!m->bf16_weights && m->fsdp == 1) return bpt_model_shard(m, BPT_BUF_PARAM, i);
    float *buf = bpt_arena_alloc(m->arena, n * sizeof(float), what);
    if (!m->bf16_weights) {
        bpt_allgather_f32(m->comm, BPT_AXIS_FSDP, buf, bpt_model_shard(m, BPT_BUF_PARAM, i), t->numel);
        return buf;
    }
    size_t mark = bpt_arena_mark(m->arena);
    uint16_t *h = bpt_arena_alloc(m->arena, n * sizeof(uint16_t), "gathered weights (bf16)");
    gather_bf16(m, h, bpt_model_shard(m, BPT_BUF_PARAM, i), t->numel, NULL);
    m->k->from_bf16(buf, h, n);
    bpt_arena_release(m->arena, mark);
    return buf;
}

float *bpt_tensor_grad_begin(bpt_model *m, int i, const char *what) {
    const bpt_tensor *t = &m->tensors[i];
    if (m->fsdp == 1) return bpt_model_shard(m, BPT_BUF_GRAD, i);
    float *g = bpt_arena_alloc(m->arena, (size_t)m->fsdp * t->numel * sizeof(float), what);
    m->k->zero(g, (size_t)m->fsdp * t->numel * sizeof(float));
    return g;
}

void bpt_tensor_grad_commit(bpt_model *m, int i, const float *full) {
    if (m->fsdp > 1) grad_commit_tensor(m, i, full);
}

void bpt_grads_finish(bpt_model *m, bpt_layer_grads *b) {
    grads_finish(m, b, 0);
    grads_finish(m, b, 1);
}

/* ------------------------------------------------------ tensor parallelism -- */

void bpt_tp_copy_bwd(bpt_model *m, float *dx, size_t n) { bpt_allreduce_f32(m->comm, BPT_AXIS_TP, dx, n); }

void bpt_tp_reduce_begin(bpt_model *m, float *out, const float *residual, size_t n) {
    if (m->tp_rank != 0 || !residual) m->k->zero(out, n * sizeof(float));
    else if (out != residual) m->k->copy_d2d(out, residual, n * sizeof(float));
}

void bpt_tp_reduce_fwd(bpt_model *m, float *out, size_t n) { bpt_allreduce_f32(m->comm, BPT_AXIS_TP, out, n); }

/* Sequence parallelism over tp: the rows' two pairs, each forward next to its backward. */
void bpt_sp_enter_fwd(bpt_model *m, float *full, const float *local, size_t n) {
    bpt_allgather_f32(m->comm, BPT_AXIS_TP, full, local, n);
}
void bpt_sp_enter_bwd(bpt_model *m, float *dlocal, const float *dfull, size_t n) {
    bpt_reduce_scatter_f32(m->comm, BPT_AXIS_TP, dlocal, dfull, n);
}
void bpt_sp_leave_fwd(bpt_model *m, float *local, const float *full, size_t n) {
    bpt_reduce_scatter_f32(m->comm, BPT_AXIS_TP, local, full, n);
}
void bpt_sp_leave_bwd(bpt_model *m, float *dfull, const float *dlocal, size_t n) {
    bpt_allgather_f32(m->comm, BPT_AXIS_TP, dfull, dlocal, n);
}

void bpt_tp_xent_stats(bpt_model *m, float *rmax, float *tlogit, float *amaxv, int32_t *amaxi, size_t rows) {
    bpt_allreduce_max_f32(m->comm, BPT_AXIS_TP, rmax, rows);
    bpt_allreduce_f32(m->comm, BPT_AXIS_TP, tlogit, rows);
    bpt_allreduce_maxloc(m->comm, BPT_AXIS_TP, amaxv, amaxi, rows);
}

void bpt_tp_xent_sumexp(bpt_model *m, float *sumexp, size_t rows) {
    bpt_allreduce_f32(m->comm, BPT_AXIS_TP, sumexp, rows);
}
