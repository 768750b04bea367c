/* model.c — LLaMA with blockwise attention, feed-forward and loss, and remat.
 *
 * One step of one micro-batch (N = B*T tokens, qd = H*Dh, kvd = KVH*Dh):
 *
 *   x0 = embed(tokens)                                     (N,D)
 *   per layer l, x = x_l:
 *     xn1 = rmsnorm(x)                                     (N,D), rstd1 (N)
 *     q = xn1 Wq^T, k = xn1 Wk^T, v = xn1 Wv^T; rope(q, k)  (N,qd) (N,kvd) (N,kvd)
 *     o, lse = attention(q, k, v)                          (N,qd), (B,H,T)
 *     x1 = x + o Wo^T                                      (N,D)
 *     xn2 = rmsnorm(x1)                                    (N,D), rstd2 (N)
 *     per chunk of rows: g = xn2 Wg^T, u = xn2 Wu^T, h = silu(g) u, x_{l+1} = x1 + h Wd^T
 *   xf = rmsnorm(x_L); per chunk of rows: logits = xf Wlm^T -> loss and dlogits
 *
 * What survives from a layer's forward to its backward is its "keep set", derived from
 * remat_attention, remat_mlp and remat_block (keep_set below); everything else lives in
 * a scratch region released after the layer, and the backward recomputes it. The layer
 * inputs x_l are always kept: in fp32, or with residual_dtype bf16 rounded to bf16 (half
 * the bytes; the backward then recomputes each layer from its rounded input). Attention,
 * MLP and loss chunk sizes are per sequence: a chunk of Bf tokens is B*Bf rows, as in the
 * reference (b * Bf * I hidden values). With dtype bf16 (bpt_model_set_dtype) every
 * weight the kernels see is the bf16 rounding of its fp32 master, gathered as bf16.
 */
#include "bpt/ring.h"
#include "bpt/model.h"
#include "kernels/kernels.h"
#include "bpt/shard.h"
#include "bpt/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- layout -- */

/* the layer tensor indices of llama.h, shorter */
enum { T_NORM1 = BPT_T_NORM1, T_Q, T_K, T_V, T_O, T_NORM2, T_GATE, T_UP, T_DOWN, T_PER_LAYER };

/* Append tensor x of the layout, placed on the mesh (shard.h); *group_full counts the
 * elements of the gathered group it belongs to (a layer, or the tensor alone). */
static void add_tensor(bpt_model *m, const bpt_llama_tensor *x, size_t *group_full) {
    bpt_tensor *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", x->name);
    t->layer = x->layer;
    t->ndim = x->ndim;
    t->shape[0] = x->shape[0];
    t->shape[1] = x->shape[1];
    t->split = x->split;
    bpt_shard_place(t, m->tp, m->fsdp);
    t->offset = m->nparams;
    t->full_offset = *group_full;
    *group_full += (size_t)m->fsdp * t->numel;
    t->decay = t->ndim == 2;
    m->nparams += t->numel;
}

/* Index of tensor j of layer l; embedding is 0, final norm and lm_head follow the layers. */
static inline int tidx(int l, int j) { return bpt_llama_layer_tensor(l, j); }
static inline int idx_norm_f(const bpt_model *m) { return 1 + m->cfg.num_hidden_layers * T_PER_LAYER; }
static inline int idx_lm_head(const bpt_model *m) {
    return m->cfg.tie_word_embeddings ? 0 : idx_norm_f(m) + 1;
}
static inline float *P(const bpt_model *m, bpt_buf b, int i) { return m->buf[b] + m->tensors[i].offset; }

/* The tensors of llama.h; a layer's tensors form one gathered group, every other
 * tensor a group of its own. */
static void layout(bpt_model *m) {
    bpt_llama_tensor *x;
    int n = bpt_llama_tensors(&m->cfg, &x);
    m->tensors = bpt_xcalloc((size_t)n, sizeof(bpt_tensor));
    m->ntensors = 0;
    m->nparams = 0;
    size_t g = 0;
    for (int i = 0; i < n; i++) {
        if (x[i].layer < 0 || x[i].layer != (i > 0 ? x[i - 1].layer : -1)) g = 0;   /* a new group */
        add_tensor(m, &x[i], &g);
        if (x[i].layer >= 0) m->layer_full = g;
    }
    free(x);
}

size_t bpt_tensor_logical_numel(const bpt_tensor *t) { return (size_t)t->shape[0] * (size_t)t->shape[1]; }

size_t bpt_llama_num_params(const bpt_llama_config *c) {
    size_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    size_t Dh = D / c->num_attention_heads, qd = c->num_attention_heads * Dh;
    size_t kvd = (size_t)bpt_kv_heads(c) * Dh;
    size_t layer = 2 * D + qd * D + 2 * kvd * D + D * qd + 3 * F * D;
    return V * D * (c->tie_word_embeddings ? 1 : 2) + c->num_hidden_layers * layer + D;
}

double bpt_llama_flops_per_token(const bpt_llama_config *c, int T) {
    /* N counts the parameters that take part in matmuls: all but the embedding lookup
     * (when untied) — the lm_head and every projection. 12*L*D*T is attention. */
    double N = (double)bpt_llama_num_params(c);
    if (!c->tie_word_embeddings) N -= (double)c->vocab_size * c->hidden_size;
    return 6.0 * N + 12.0 * c->num_hidden_layers * (double)c->hidden_size * T;
}

/* The global position of local token t. */
static int64_t pos_of(const bpt_model *m, int t) {
    int sp = m->comm->size[BPT_AXIS_SP];
    return sp > 1 ? bpt_ring_position(sp, m->comm->rank[BPT_AXIS_SP], m->T, t) : t;
}

/* Ring attention over sp (mesh/ring.c) with its buffers on the arena for the call. */
static bpt_ring ring_of(bpt_model *m, int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    bpt_ring g = { m->comm, m->k, B, T, H, KVH, Dh, Bq, Bk, NULL, 0, 0 };
    g.work = bpt_arena_alloc(m->arena, bpt_ring_work_floats(B, T, KVH, Dh) * sizeof(float), "ring attention buffers");
    return g;
}

bpt_model *bpt_model_create(const bpt_llama_config *cfg, const bpt_kernels *k, bpt_arena *a,
                            int B, int T, int with_optimizer, bpt_comm *comm) {
    bpt_model *m = bpt_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->k = k;
    m->arena = a;
    if (!comm) { bpt_comm_single(&m->own_comm); comm = &m->own_comm; }
    m->comm = comm;
    m->tp = comm->size[BPT_AXIS_TP];
    m->tp_rank = comm->rank[BPT_AXIS_TP];
    m->fsdp = comm->size[BPT_AXIS_FSDP];
    m->fsdp_rank = comm->rank[BPT_AXIS_FSDP];
    m->dp_rank = comm->rank[BPT_AXIS_DP];
    layout(m);
    size_t bytes = m->nparams * sizeof(float);
    m->buf[BPT_BUF_PARAM] = bpt_arena_alloc(a, bytes, "parameters");
    m->buf[BPT_BUF_GRAD] = bpt_arena_alloc(a, bytes, "gradients");
    k->zero(m->buf[BPT_BUF_PARAM], bytes);   /* shard padding stays zero */
    if (with_optimizer) {
        m->buf[BPT_BUF_M] = bpt_arena_alloc(a, bytes, "adamw m");
        m->buf[BPT_BUF_V] = bpt_arena_alloc(a, bytes, "adamw v");
        k->zero(m->buf[BPT_BUF_M], bytes);
        k->zero(m->buf[BPT_BUF_V], bytes);
    }
    k->zero(m->buf[BPT_BUF_GRAD], bytes);

    /* RoPE tables (T, Dh/2): angles in double, whatever the compute dtype, at the
     * tokens' global positions (on sp > 1 this rank's zig-zag chunks, ring.h) */
    int half = bpt_head_dim(cfg) / 2;
    size_t tb = (size_t)T * half * sizeof(float);
    m->rope_cos = bpt_arena_alloc(a, tb, "rope cos");
    m->rope_sin = bpt_arena_alloc(a, tb, "rope sin");
    float *hc = bpt_xmalloc(tb), *hs = bpt_xmalloc(tb);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double inv_freq = pow(cfg->rope_theta, -(2.0 * i) / (2.0 * half));
            double ang = (double)pos_of(m, t) * inv_freq;
            hc[(size_t)t * half + i] = (float)cos(ang);
            hs[(size_t)t * half + i] = (float)sin(ang);
        }
    k->copy_h2d(m->rope_cos, hc, tb);
    k->copy_h2d(m->rope_sin, hs, tb);
    free(hc);
    free(hs);

    size_t N = (size_t)B * T;
    m->d_tokens = bpt_arena_alloc(a, 2 * N * sizeof(int32_t), "tokens");
    m->d_mask = bpt_arena_alloc(a, N * sizeof(float), "loss mask");
    m->d_stats = bpt_arena_alloc(a, 4 * sizeof(double), "loss stats");
    return m;
}

void bpt_model_free(bpt_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m);
}

void bpt_model_init_weights(bpt_model *m, uint64_t seed) {
    float std = (float)m->cfg.initializer_range;
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        float *h = bpt_xmalloc(t->numel * sizeof(float));
        #pragma omp parallel for schedule(static)
        for (size_t e = 0; e < t->numel; e++) {
            int64_t g = bpt_shard_to_logical(m, t, e);
            h[e] = g < 0 ? 0.0f : t->ndim == 1 ? 1.0f : std * bpt_randn(seed, t->name, (uint64_t)g);
        }
        m->k->copy_h2d(P(m, BPT_BUF_PARAM, i), h, t->numel * sizeof(float));
        free(h);
    }
}

void bpt_model_set_dtype(bpt_model *m, bpt_dtype dtype) {
    m->bf16_weights = dtype == BPT_DTYPE_BF16;
}

int bpt_model_find(const bpt_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

float *bpt_model_shard(const bpt_model *m, bpt_buf which, int i) { return P(m, which, i); }

void bpt_model_zero_grad(bpt_model *m) {
    m->k->zero(m->buf[BPT_BUF_GRAD], m->nparams * sizeof(float));
}

/* ------------------------------------------------------------- keep sets -- */

/* Intermediates of one layer that the forward may keep for the backward. */
enum {
    K_XN1 = 1 << 0, K_RSTD1 = 1 << 1, K_Q = 1 << 2, K_K = 1 << 3, K_V = 1 << 4,
    K_O = 1 << 5,   /* attention output together with its lse (or vanilla probs) */
    K_X1 = 1 << 6, K_XN2 = 1 << 7, K_RSTD2 = 1 << 8, K_G = 1 << 9, K_U = 1 << 10,
    K_H = 1 << 11,
};
#define K_ATTN_ALL (K_XN1 | K_RSTD1 | K_Q | K_K | K_V | K_O)
#define K_MLP_ALL (K_XN2 | K_RSTD2 | K_G | K_U | K_H)
#define K_DOTS (K_Q | K_K | K_V | K_O | K_G | K_U)  /* matmul outputs */
#define K_DOTS_NB (K_Q | K_K | K_V | K_G | K_U)     /* ... without batch dims */

/* A policy applied to a part keeps: everything (or no remat) all of it; nothing none of
 * it (its input is kept by the caller); dots the matmul outputs; dots_with_no_batch_dims
 * the projections but not the batched attention products. */
static int policy_mask(bpt_remat p, int all) {
    switch (p) {
    case BPT_REMAT_NONE:
    case BPT_REMAT_EVERYTHING: return all;
    case BPT_REMAT_NOTHING: return 0;
    case BPT_REMAT_DOTS: return all & K_DOTS;
    case BPT_REMAT_DOTS_NO_BATCH: return all & K_DOTS_NB;
    }
    return all;
}

/* The block policy filters what the attention and MLP policies keep (plus x1, the
 * MLP's input): under remat_block=nothing_saveable only the layer input survives. */
static int keep_set(const bpt_llama_config *c) {
    int keep = policy_mask(c->remat_attention, K_ATTN_ALL) | policy_mask(c->remat_mlp, K_MLP_ALL) | K_X1;
    return policy_mask(c->remat_block, keep);
}

/* ------------------------------------------------------ layer activations -- */

/* Sizes of one micro-batch on this rank: heads, kv heads, F and V are tp-local. */
typedef struct dims {
    int B, T, N, D, F, H, KVH, Dh, qd, kvd, Bq, Bk, vanilla;
    int V, v0;      /* local vocabulary rows and the first one's global id */
    int mlp_rows;   /* rows per feed-forward chunk */
    int seq, Nl;    /* sequence parallelism over tp (shard.h), and the rows of the (N, D)
                       activations outside the tp regions here: N/tp with it, else N */
} dims;

static dims get_dims(const bpt_model *m) {
    const bpt_llama_config *c = &m->cfg;
    dims d;
    d.B = m->B; d.T = m->T; d.N = m->B * m->T;
    d.D = c->hidden_size; d.F = c->intermediate_size / m->tp;
    d.H = c->num_attention_heads / m->tp; d.KVH = bpt_kv_heads(c) / m->tp; d.Dh = bpt_head_dim(c);
    d.V = c->vocab_size / m->tp; d.v0 = m->tp_rank * d.V;
    d.qd = d.H * d.Dh; d.kvd = d.KVH * d.Dh;
    d.vanilla = !c->scan_attention;
    d.Bq = c->scan_query_chunk_size < d.T ? c->scan_query_chunk_size : d.T;
    d.Bk = c->scan_key_chunk_size < d.T ? c->scan_key_chunk_size : d.T;
    int bf = c->scan_mlp && c->scan_mlp_chunk_size < d.T ? c->scan_mlp_chunk_size : d.T;
    d.mlp_rows = d.B * bf;
    d.seq = bpt_tp_seq(m);
    d.Nl = d.seq ? d.N / m->tp : d.N;
    return d;
}

typedef struct acts {
    float *xn1, *rstd1, *q, *k, *v, *o, *lse, *x1, *xn2, *rstd2, *g, *u, *h;
} acts;

/* Allocate the members of `want` (a K_ mask) that are still NULL. G/U/H are full
 * (N,F) arrays here; chunk scratch is separate. The norms' inputs and outputs have this
 * rank's Nl rows, the tp regions' products all N. */
static void alloc_acts(bpt_model *m, const dims *d, acts *a, int want) {
    bpt_arena *ar = m->arena;
    size_t N = (size_t)d->N, Nl = (size_t)d->Nl, fb = sizeof(float);
    size_t lse_n = d->vanilla ? (size_t)d->B * d->H * d->T * d->T : (size_t)d->B * d->H * d->T;
    if ((want & K_XN1) && !a->xn1) a->xn1 = bpt_arena_alloc(ar, Nl * d->D * fb, "xn1");
    if ((want & K_RSTD1) && !a->rstd1) a->rstd1 = bpt_arena_alloc(ar, Nl * fb, "rstd1");
    if ((want & K_Q) && !a->q) a->q = bpt_arena_alloc(ar, N * d->qd * fb, "q");
    if ((want & K_K) && !a->k) a->k = bpt_arena_alloc(ar, N * d->kvd * fb, "k");
    if ((want & K_V) && !a->v) a->v = bpt_arena_alloc(ar, N * d->kvd * fb, "v");
    if ((want & K_O) && !a->o) {
        a->o = bpt_arena_alloc(ar, N * d->qd * fb, "attention output");
        a->lse = bpt_arena_alloc(ar, lse_n * fb, d->vanilla ? "attention probs" : "attention lse");
    }
    if ((want & K_X1) && !a->x1) a->x1 = bpt_arena_alloc(ar, Nl * d->D * fb, "x1");
    if ((want & K_XN2) && !a->xn2) a->xn2 = bpt_arena_alloc(ar, Nl * d->D * fb, "xn2");
    if ((want & K_RSTD2) && !a->rstd2) a->rstd2 = bpt_arena_alloc(ar, Nl * fb, "rstd2");
    if ((want & K_G) && !a->g) a->g = bpt_arena_alloc(ar, N * d->F * fb, "mlp gate");
    if ((want & K_U) && !a->u) a->u = bpt_arena_alloc(ar, N * d->F * fb, "mlp up");
    if ((want & K_H) && !a->h) a->h = bpt_arena_alloc(ar, N * d->F * fb, "mlp hidden");
}

/* ------------------------------------------------- weights over the mesh -- */

/* out (rows, n_out) = inp (rows, n_in) W^T, W (n_out, n_in): a Hugging Face linear. */
static void linear(const bpt_kernels *k, float *out, const float *inp, const float *W,
                   int rows, int n_in, int n_out, float beta) {
    k->gemm(0, 1, rows, n_out, n_in, 1.0f, inp, n_in, W, n_in, beta, out, n_out);
}

/* The tp regions' way in and out (shard.h). Entering: the (N, D) rows a region's
 * column-parallel products read: x itself, or under sequence parallelism every tp rank's
 * Nl rows of x gathered into a new arena buffer. Its adjoint: dx (Nl rows) = the sum over
 * tp of this rank's rows of dfull (without sequence parallelism dfull is dx, summed in
 * place). */
static const float *enter_tp(bpt_model *m, const dims *d, const float *x, const char *what) {
    bpt_tp_copy_fwd(m, x, (size_t)d->N * d->D);
    if (!d->seq) return x;
    float *full = bpt_arena_alloc(m->arena, (size_t)d->N * d->D * sizeof(float), what);
    bpt_sp_enter_fwd(m, full, x, (size_t)d->Nl * d->D);
    return full;
}

static void enter_tp_bwd(bpt_model *m, const dims *d, float *dx, const float *dfull) {
    if (!d->seq) bpt_tp_copy_bwd(m, dx, (size_t)d->N * d->D);
    else bpt_sp_enter_bwd(m, dx, dfull, (size_t)d->Nl * d->D);
}

/* Leaving: out (Nl rows) = residual + the sum over tp of row-parallel products. The
 * products add into what leave_begin returns: out itself, set up by
 * bpt_tp_reduce_begin, or under sequence parallelism a zeroed (N, D) arena buffer
 * whose rows leave_end reduce-scatters (n: the floats of out, Nl * D, or the
 * feed-forward's share of a block). out may be residual; residual may be NULL. */
static float *leave_begin(bpt_model *m, const dims *d, float *out, const float *residual, const char *what) {
    if (!d->seq) {
        bpt_tp_reduce_begin(m, out, residual, (size_t)d->N * d->D);
        return out;
    }
    size_t bytes = (size_t)d->N * d->D * sizeof(float);
    float *part = bpt_arena_alloc(m->arena, bytes, what);
    m->k->zero(part, bytes);
    return part;
}

static void leave_end(bpt_model *m, const dims *d, float *out, const float *residual, const float *part, size_t n) {
    if (!d->seq) {
        bpt_tp_reduce_fwd(m, out, n);
        return;
    }
    float *sum = out == residual ? bpt_arena_alloc(m->arena, n * sizeof(float), "tp sum of rows") : out;
    bpt_sp_leave_fwd(m, sum, part, n);
    if (out == residual) m->k->axpy(out, 1.0f, sum, n);
    else if (residual) m->k->axpy(out, 1.0f, residual, n);
}

/* The attention half of the forward, from what `a` already holds:
 * computes whichever of xn1/rstd1, q/k/v, o/lse, x1 are requested in `need`. */
static void attn_forward(bpt_model *m, const dims *d, const bpt_layer_w *w, const float *x, acts *a, int need) {
    const bpt_kernels *k = m->k;
    float eps = (float)m->cfg.rms_norm_eps;
    if (need & (K_XN1 | K_RSTD1)) k->rmsnorm_fwd(a->xn1, a->rstd1, x, w->norm1, d->Nl, d->D, eps);
    if (need & (K_Q | K_K | K_V)) {
        size_t mark = bpt_arena_mark(m->arena);
        const float *xn1 = enter_tp(m, d, a->xn1, "xn1 gathered over tp");   // q/k/v are column parallel
        if (need & K_Q) {   // q = rope(xn1 Wq^T)  (N,D) -> (N,qd)
            linear(k, a->q, xn1, w->wq, d->N, d->D, d->qd, 0.0f);
            k->rope_fwd(a->q, m->rope_cos, m->rope_sin, d->B, d->T, d->H, d->Dh);
        }
        if (need & K_K) {   // k = rope(xn1 Wk^T)  (N,D) -> (N,kvd)
            linear(k, a->k, xn1, w->wk, d->N, d->D, d->kvd, 0.0f);
            k->rope_fwd(a->k, m->rope_cos, m->rope_sin, d->B, d->T, d->KVH, d->Dh);
        }
        if (need & K_V) linear(k, a->v, xn1, w->wv, d->N, d->D, d->kvd, 0.0f);
        bpt_arena_release(m->arena, mark);
    }
    if (need & K_O) {   // o = softmax(q k^T / sqrt(Dh)) v, causal
        if (d->vanilla)
            k->attn_vanilla_fwd(a->o, a->lse, a->q, a->k, a->v, d->B, d->T, d->H, d->KVH, d->Dh);
        else if (m->comm->size[BPT_AXIS_SP] > 1) {   // the keys of every sp rank, round the ring
            size_t mark = bpt_arena_mark(m->arena);
            bpt_ring g = ring_of(m, d->B, d->T, d->H, d->KVH, d->Dh, d->Bq, d->Bk);
            bpt_ring_attn_fwd(&g, a->o, a->lse, a->q, a->k, a->v);
            bpt_arena_release(m->arena, mark);
        } else
            k->attn_fwd(a->o, a->lse, a->q, a->k, a->v, d->B, d->T, d->H, d->KVH, d->Dh, d->Bq, d->Bk);
    }
    if (need & K_X1) {  // x1 = x + o Wo^T  (row parallel: summed over tp)
        size_t mark = bpt_arena_mark(m->arena);
        float *p = leave_begin(m, d, a->x1, x, "o projection over tp");
        linear(k, p, a->o, w->wo, d->N, d->qd, d->D, 1.0f);
        leave_end(m, d, a->x1, x, p, (size_t)d->Nl * d->D);
        bpt_arena_release(m->arena, mark);
    }
}

/* The feed-forward's blocks of rows. Without sequence parallelism one block, all N rows
 * (every tp rank holds them). With it, a block is one chunk of R = mlp_rows rows made of
 * R/tp rows of every tp rank, gathered for the block's products and reduce-scattered
 * back after them, so the feed-forward never holds an (N, D) tensor (the feed-forward is
 * row-wise: which rows make a chunk changes nothing; the kept g/u/h rows follow the
 * blocks, in the forward and the backward alike); all N at once where tp does not
 * divide R. Returns the block's rows; *local is this rank's share of them. */
static int ffn_block(const dims *d, int tp, int *local) {
    int G = d->seq && d->mlp_rows % tp == 0 ? d->mlp_rows : d->N;
    *local = d->seq ? G / tp : G;
    return G;
}

/* The feed-forward half: x_out = x1 + down(silu(gate(xn2)) * up(xn2)), chunk by chunk
 * (x_out may be x1's own buffer). Full g/u/h arrays are written when a holds them;
 * otherwise chunk scratch is used. */
static void mlp_forward(bpt_model *m, const dims *d, const bpt_layer_w *w, acts *a, float *x_out) {
    const bpt_kernels *k = m->k;
    bpt_arena *ar = m->arena;
    size_t mark = bpt_arena_mark(ar);
    int R = d->mlp_rows, F = d->F, D = d->D, Gl, G = ffn_block(d, m->tp, &Gl);
    size_t cb = (size_t)R * F * sizeof(float), gb = (size_t)G * D * sizeof(float);
    float *gs = a->g ? NULL : bpt_arena_alloc(ar, cb, "mlp gate chunk");
    float *us = a->u ? NULL : bpt_arena_alloc(ar, cb, "mlp up chunk");
    float *hs = a->h ? NULL : bpt_arena_alloc(ar, cb, "mlp hidden chunk");
    float *xg = d->seq ? bpt_arena_alloc(ar, gb, "xn2 gathered over tp") : NULL;
    float *part = d->seq ? bpt_arena_alloc(ar, gb, "down projection over tp") : NULL;
    if (!d->seq) bpt_tp_reduce_begin(m, x_out, a->x1, (size_t)d->N * D);   // down is row parallel
    for (int b0 = 0, l0 = 0; b0 < d->N; b0 += G, l0 += Gl) {   /* a block: rows b0.. of N, l0.. here */
        const float *xn2 = a->xn2 + (size_t)b0 * D;
        float *out = x_out + (size_t)b0 * D;
        if (d->seq) {   // gate/up are column parallel: the block's rows from every tp rank
            bpt_sp_enter_fwd(m, xg, a->xn2 + (size_t)l0 * D, (size_t)Gl * D);
            k->zero(part, gb);
            xn2 = xg;
            out = part;
        }
        for (int r0 = 0; r0 < G; r0 += R) {
            size_t off = (size_t)(b0 + r0) * F;
            const float *xn = xn2 + (size_t)r0 * D;
            float *g = a->g ? a->g + off : gs, *u = a->u ? a->u + off : us, *h = a->h ? a->h + off : hs;
            linear(k, g, xn, w->wg, R, D, F, 0.0f);          // g = xn2 Wg^T  (R,D) -> (R,F)
            linear(k, u, xn, w->wu, R, D, F, 0.0f);          // u = xn2 Wu^T
            k->swiglu_fwd(h, g, u, (size_t)R * F);           // h = silu(g) * u
            linear(k, out + (size_t)r0 * D, h, w->wd, R, F, D, 1.0f);  // x_out += h Wd^T
        }
        if (d->seq) {   // this rank's rows of the block: x_out = x1 + their sum over tp
            size_t mk = bpt_arena_mark(ar);
            leave_end(m, d, x_out + (size_t)l0 * D, a->x1 + (size_t)l0 * D, part, (size_t)Gl * D);
            bpt_arena_release(ar, mk);
        }
    }
    if (!d->seq) bpt_tp_reduce_fwd(m, x_out, (size_t)d->N * D);
    bpt_arena_release(ar, mark);
}

/* Forward of layer l. Members of `keep` go in the persistent region (allocated before
 * the mark); the rest is scratch released before returning. x_out is not written until
 * the feed-forward, so xn1 and then x1 live in it unless they are kept, and the
 * attention's scratch is released before the feed-forward's is taken (docs/design.md). */
static void layer_forward(bpt_model *m, const dims *d, const bpt_layer_w *wp, const float *x, float *x_out,
                          acts *a, int keep) {
    bpt_layer_w w = *wp;
    memset(a, 0, sizeof *a);
    alloc_acts(m, d, a, keep);
    size_t mark = bpt_arena_mark(m->arena);
    acts t = *a;
    if (!t.xn1) t.xn1 = x_out;
    alloc_acts(m, d, &t, K_ATTN_ALL);
    attn_forward(m, d, &w, x, &t, K_ATTN_ALL);
    if (!t.x1) t.x1 = x_out;   /* xn1, if it was x_out's, has been read by now */
    attn_forward(m, d, &w, x, &t, K_X1);
    bpt_arena_release(m->arena, mark);   /* the attention's scratch: x1 is kept or x_out */
    alloc_acts(m, d, &t, K_XN2 | K_RSTD2);
    m->k->rmsnorm_fwd(t.xn2, t.rstd2, t.x1, w.norm2, d->Nl, d->D, (float)m->cfg.rms_norm_eps);
    mlp_forward(m, d, &w, &t, x_out);
    bpt_arena_release(m->arena, mark);
}

static int held(const acts *a) {
    return (a->xn1 ? K_XN1 : 0) | (a->rstd1 ? K_RSTD1 : 0) | (a->q ? K_Q : 0) | (a->k ? K_K : 0) |
           (a->v ? K_V : 0) | (a->o ? K_O : 0) | (a->x1 ? K_X1 : 0) | (a->xn2 ? K_XN2 : 0) |
           (a->rstd2 ? K_RSTD2 : 0) | (a->g ? K_G : 0) | (a->u ? K_U : 0) | (a->h ? K_H : 0);
}

/* Backward of layer l: dx_out (N,D) is dloss/dx_{l+1}; writes dx_in = dloss/dx_l and adds
 * the layer's weight gradients. Recomputes whatever the forward did not keep. dx_out is
 * overwritten (it becomes dloss/dx1, then dloss/dx_l), and dx_in, written last, serves
 * dxn2, do and dxn1 in turn before. When x16 is given, x is its widened copy and is
 * scratch too: xn2, then dq, live in it, and x is widened again where it is next read.
 * With qd == D (one tp rank) xn1 is dropped once q, k and v are computed and is
 * recomputed into o's buffer after the attention's backward. All of this keeps the
 * backward's peak small (docs/design.md) and changes no result. */
static void layer_backward(bpt_model *m, const dims *d, const bpt_layer_w *wp, const bpt_layer_w *gwp, float *x,
                           const uint16_t *x16, const acts *kept, float *dx_out, float *dx_in) {
    const bpt_kernels *k = m->k;
    bpt_arena *ar = m->arena;
    bpt_layer_w w = *wp, gw = *gwp;
    int N = d->N, Nl = d->Nl, D = d->D, F = d->F, qd = d->qd, kvd = d->kvd, R = d->mlp_rows;
    size_t fb = sizeof(float), nd = (size_t)Nl * D, mark = bpt_arena_mark(ar);
    float eps = (float)m->cfg.rms_norm_eps;
    int roomy = qd == D;               /* q's and o's buffers can hold an (N,D) tensor */
    int x_scratch = x16 && roomy;

    /* recompute what was not kept, in dependency order: xn1 (on top, so that it can be
     * dropped), q, k, v, o, then x1 and xn2, which only the feed-forward's backward
     * needs, above a mark that is released before the attention's backward */
    acts t = *kept;
    int have = held(&t);
    alloc_acts(m, d, &t, K_ATTN_ALL & ~K_XN1);
    int drop_xn1 = roomy && !(have & K_XN1);
    int need = K_ATTN_ALL & ~have;
    if (need & (K_XN1 | K_RSTD1)) need |= K_XN1 | K_RSTD1;
    /* q, k and v kept (dots policies): nothing reads xn1 before its recomputation */
    if (drop_xn1 && !(need & (K_Q | K_K | K_V))) need &= ~(K_XN1 | K_RSTD1);
    size_t mark_xn1 = bpt_arena_mark(ar);
    if (need & K_XN1) alloc_acts(m, d, &t, K_XN1);
    attn_forward(m, d, &w, x, &t, need);
    if (drop_xn1) {
        bpt_arena_release(ar, mark_xn1);
        t.xn1 = NULL;
    }
    float *dxn = dx_in;    /* dxn2, then do, then dxn1; dx_in is written last */
    size_t mark_mlp = bpt_arena_mark(ar);
    alloc_acts(m, d, &t, K_X1);
    if (!(have & K_X1)) attn_forward(m, d, &w, x, &t, K_X1);
    if (x_scratch && !(have & K_XN2)) t.xn2 = x;   /* x is not read again until widened anew */
    alloc_acts(m, d, &t, K_XN2 | K_RSTD2);
    if ((have & (K_XN2 | K_RSTD2)) != (K_XN2 | K_RSTD2))
        k->rmsnorm_fwd(t.xn2, t.rstd2, t.x1, w.norm2, Nl, D, eps);

    /* ---- feed-forward, chunk by chunk ---- */
    float *dx1 = dx_out;   /* becomes dloss/dx1 below, in place */
    bpt_tp_reduce_bwd(m, dx_out, nd);   // down is row parallel: dy is whole on every rank
    /* in blocks of rows, as the forward's (ffn_block): under sequence parallelism each
     * block's dy and xn2 gathered over tp, and its dxn2 written in place of xn2 (a chunk
     * reads its rows first), then reduce-scattered into this rank's rows of dxn2 */
    int Gl, G = ffn_block(d, m->tp, &Gl);
    size_t cb = (size_t)R * F * fb, gb = (size_t)G * D * fb;
    float *dyg = d->seq ? bpt_arena_alloc(ar, gb, "dx gathered over tp") : NULL;
    float *xg = d->seq ? bpt_arena_alloc(ar, gb, "xn2 gathered over tp") : NULL;
    float *gs = t.g ? NULL : bpt_arena_alloc(ar, cb, "mlp gate chunk");
    float *us = t.u ? NULL : bpt_arena_alloc(ar, cb, "mlp up chunk");
    float *hs = t.h ? NULL : bpt_arena_alloc(ar, cb, "mlp hidden chunk");
    float *dh = bpt_arena_alloc(ar, cb, "mlp dh chunk");
    float *dg = bpt_arena_alloc(ar, cb, "mlp dg chunk");
    float *du = bpt_arena_alloc(ar, cb, "mlp du chunk");
    for (int b0 = 0, l0 = 0; b0 < N; b0 += G, l0 += Gl) {
        const float *dys = dx_out + (size_t)b0 * D, *xn2 = t.xn2 + (size_t)b0 * D;
        float *dxns = dxn + (size_t)b0 * D;
        if (d->seq) {
            bpt_sp_leave_bwd(m, dyg, dx_out + (size_t)l0 * D, (size_t)Gl * D);
            bpt_sp_enter_fwd(m, xg, t.xn2 + (size_t)l0 * D, (size_t)Gl * D);
            dys = dyg;
            xn2 = dxns = xg;
        }
        for (int r0 = 0; r0 < G; r0 += R) {
            size_t off = (size_t)(b0 + r0) * F;
            const float *xn = xn2 + (size_t)r0 * D, *dy = dys + (size_t)r0 * D;
            float *g = t.g ? t.g + off : gs, *u = t.u ? t.u + off : us, *h = t.h ? t.h + off : hs;
            if (!t.g) linear(k, g, xn, w.wg, R, D, F, 0.0f);
            if (!t.u) linear(k, u, xn, w.wu, R, D, F, 0.0f);
            if (!t.h) k->swiglu_fwd(h, g, u, (size_t)R * F);
            // x_out = x1 + h Wd^T  =>  dWd += dy^T h ; dh = dy Wd
            k->gemm(1, 0, D, F, R, 1.0f, dy, D, h, F, 1.0f, gw.wd, F);
            k->gemm(0, 0, R, F, D, 1.0f, dy, D, w.wd, F, 0.0f, dh, F);
            // h = silu(g) * u
            k->swiglu_bwd(dg, du, dh, g, u, (size_t)R * F);
            // g = xn2 Wg^T, u = xn2 Wu^T  =>  dWg += dg^T xn2 ; dWu += du^T xn2 ; dxn2 = dg Wg + du Wu
            k->gemm(1, 0, F, D, R, 1.0f, dg, F, xn, D, 1.0f, gw.wg, D);
            k->gemm(1, 0, F, D, R, 1.0f, du, F, xn, D, 1.0f, gw.wu, D);
            k->gemm(0, 0, R, D, F, 1.0f, dg, F, w.wg, D, 0.0f, dxns + (size_t)r0 * D, D);
            k->gemm(0, 0, R, D, F, 1.0f, du, F, w.wu, D, 1.0f, dxns + (size_t)r0 * D, D);
        }
        if (d->seq) bpt_sp_enter_bwd(m, dxn + (size_t)l0 * D, xg, (size_t)Gl * D);   // gate/up are column parallel
    }
    if (!d->seq) bpt_tp_copy_bwd(m, dxn, nd);   // gate/up are column parallel
    // xn2 = rmsnorm(x1); x_out = x1 + ...  =>  dx1 = dx_out + rmsnorm_bwd(dxn2)
    k->rmsnorm_bwd(dx1, gw.norm2, dxn, t.x1, w.norm2, t.rstd2, Nl, D, 1);
    bpt_arena_release(ar, mark_mlp);   /* x1, xn2 and the chunks (unless kept) */

    /* ---- attention ---- */
    // x1 = x + o Wo^T  =>  dWo += dx1^T o ; do = dx1 Wo
    bpt_tp_reduce_bwd(m, dx1, nd);   // o is row parallel: dx1 is whole on every rank
    float *dO = dxn;       /* dxn2 is consumed; N * qd <= Nl * D */
    float *dq = x_scratch ? x : bpt_arena_alloc(ar, (size_t)N * qd * fb, "dq");
    float *dk = bpt_arena_alloc(ar, (size_t)N * kvd * fb, "dk");
    float *dv = bpt_arena_alloc(ar, (size_t)N * kvd * fb, "dv");
    /* under sequence parallelism dx1 gathered over tp, then xn1, then dxn1 in its place */
    float *rows = d->seq ? bpt_arena_alloc(ar, (size_t)N * D * fb, "rows gathered over tp") : NULL;
    const float *dyo = dx1;
    if (d->seq) {
        bpt_sp_leave_bwd(m, rows, dx1, nd);
        dyo = rows;
    }
    k->gemm(1, 0, D, qd, N, 1.0f, dyo, D, t.o, qd, 1.0f, gw.wo, qd);
    k->gemm(0, 0, N, qd, D, 1.0f, dyo, D, w.wo, qd, 0.0f, dO, qd);
    // o = softmax(q k^T / sqrt(Dh)) v
    if (d->vanilla)
        k->attn_vanilla_bwd(dq, dk, dv, dO, t.q, t.k, t.v, t.lse, d->B, d->T, d->H, d->KVH, d->Dh);
    else if (m->comm->size[BPT_AXIS_SP] > 1) {
        size_t mark = bpt_arena_mark(ar);
        bpt_ring g = ring_of(m, d->B, d->T, d->H, d->KVH, d->Dh, d->Bq, d->Bk);
        bpt_ring_attn_bwd(&g, dq, dk, dv, dO, t.q, t.k, t.v, t.o, t.lse);
        bpt_arena_release(ar, mark);
    } else
        k->attn_bwd(dq, dk, dv, dO, t.q, t.k, t.v, t.o, t.lse, d->B, d->T, d->H, d->KVH, d->Dh,
                    d->Bq, d->Bk);
    // q = rope(q'), k = rope(k')
    k->rope_bwd(dq, m->rope_cos, m->rope_sin, d->B, d->T, d->H, d->Dh);
    k->rope_bwd(dk, m->rope_cos, m->rope_sin, d->B, d->T, d->KVH, d->Dh);
    /* q and o are free now: x back into q's buffer, xn1 into o's */
    if (x_scratch) {
        k->from_bf16(t.q, x16, nd);
        x = t.q;
    }
    if (drop_xn1) {
        t.xn1 = t.o;
        k->rmsnorm_fwd(t.xn1, t.rstd1, x, w.norm1, Nl, D, eps);
    }
    // q' = xn1 Wq^T, k' = xn1 Wk^T, v = xn1 Wv^T  =>  dW += d^T xn1 ; dxn1 = dq Wq + dk Wk + dv Wv
    const float *xn1 = t.xn1;
    float *dxns = dxn;     /* under sequence parallelism: the gathered rows, once read */
    if (d->seq) {
        bpt_sp_enter_fwd(m, rows, t.xn1, nd);
        xn1 = dxns = rows;
    }
    k->gemm(1, 0, qd, D, N, 1.0f, dq, qd, xn1, D, 1.0f, gw.wq, D);
    k->gemm(1, 0, kvd, D, N, 1.0f, dk, kvd, xn1, D, 1.0f, gw.wk, D);
    k->gemm(1, 0, kvd, D, N, 1.0f, dv, kvd, xn1, D, 1.0f, gw.wv, D);
    k->gemm(0, 0, N, D, qd, 1.0f, dq, qd, w.wq, D, 0.0f, dxns, D);
    k->gemm(0, 0, N, D, kvd, 1.0f, dk, kvd, w.wk, D, 1.0f, dxns, D);
    k->gemm(0, 0, N, D, kvd, 1.0f, dv, kvd, w.wv, D, 1.0f, dxns, D);
    enter_tp_bwd(m, d, dxn, dxns);   // q/k/v are column parallel
    // xn1 = rmsnorm(x); x1 = x + ...  =>  dx = dx1 + rmsnorm_bwd(dxn1)
    k->rmsnorm_bwd(dx1, gw.norm1, dxn, x, w.norm1, t.rstd1, Nl, D, 1);
    k->copy_d2d(dx_in, dx1, nd * fb);
    bpt_arena_release(ar, mark);
}

/* --------------------------------------------------------------- a step -- */

/* Cross-entropy of one chunk of logits (rows, V local), fused with its gradient. On one
 * tp rank the fused kernel; over tp, the vocabulary-parallel version: row max, target
 * logit and argmax, then the sum of exponentials, are all-reduced over tp. */
static void loss_chunk(bpt_model *m, const dims *d, float *logits, const int32_t *tgt, const float *mask,
                       int rows, float scale) {
    const bpt_kernels *k = m->k;
    if (m->tp == 1) {
        k->xent_fwd_bwd(logits, m->d_stats, tgt, mask, rows, d->V, scale);
        return;
    }
    size_t mark = bpt_arena_mark(m->arena), rb = (size_t)rows * sizeof(float);
    float *rmax = bpt_arena_alloc(m->arena, rb, "xent max");
    float *tlogit = bpt_arena_alloc(m->arena, rb, "xent target logit");
    float *amaxv = bpt_arena_alloc(m->arena, rb, "xent argmax value");
    float *sumexp = bpt_arena_alloc(m->arena, rb, "xent sum exp");
    int32_t *amaxi = bpt_arena_alloc(m->arena, (size_t)rows * sizeof(int32_t), "xent argmax");
    k->xent_partial(logits, tgt, rows, d->V, d->v0, rmax, tlogit, amaxv, amaxi);
    bpt_tp_xent_stats(m, rmax, tlogit, amaxv, amaxi, (size_t)rows);
    k->xent_sumexp(logits, rmax, rows, d->V, sumexp);
    bpt_tp_xent_sumexp(m, sumexp, (size_t)rows);
    k->xent_finish(logits, m->d_stats, tgt, mask, rmax, sumexp, tlogit, amaxi, rows, d->V, d->v0, scale);
    bpt_arena_release(m->arena, mark);
}

static void run(bpt_model *m, const int32_t *inputs, const int32_t *targets, const float *mask,
                float scale, double out[2], int train) {
    const bpt_kernels *k = m->k;
    bpt_arena *ar = m->arena;
    const bpt_llama_config *c = &m->cfg;
    dims d = get_dims(m);
    int N = d.N, Nl = d.Nl, D = d.D, L = c->num_hidden_layers;
    size_t fb = sizeof(float), nd = (size_t)Nl * D, xb = nd * fb, mark0 = bpt_arena_mark(ar);
    float eps = (float)c->rms_norm_eps;
    const int32_t *tok = m->d_tokens, *tgt = m->d_tokens + N;
    k->copy_h2d(m->d_tokens, inputs, (size_t)N * sizeof(int32_t));
    k->copy_h2d(m->d_tokens + N, targets, (size_t)N * sizeof(int32_t));
    k->copy_h2d(m->d_mask, mask, (size_t)N * fb);

    /* the gathered layer weights, and the layers' full gradients in flight (none when
     * fsdp == 1: the backward accumulates into the shards) */
    bpt_layer_weights wb;
    bpt_weights_alloc(m, &wb);
    bpt_layer_grads gb;
    bpt_grads_alloc(m, &gb, train);
    size_t mark_acts = bpt_arena_mark(ar);

    /* forward: the residual stream x_0..x_L is kept for training, ping-pongs for eval */
    int keep = train ? keep_set(c) : 0;
    float **xs = bpt_xcalloc((size_t)L + 1, sizeof(float *));
    acts *A = bpt_xcalloc((size_t)L + 1, sizeof(acts));
    xs[0] = bpt_arena_alloc(ar, xb, "x0");
    /* residual_dtype bf16: each layer input is kept as bf16 (ks), the layers run on two
     * fp32 buffers in turn (xp), and the backward widens x_l back into one of them (xw,
     * below) */
    int r16 = train && L > 0 && c->residual_dtype == BPT_DTYPE_BF16;
    uint16_t **ks = r16 ? bpt_xcalloc((size_t)L, sizeof(uint16_t *)) : NULL;
    float *xp[2] = {xs[0], r16 ? bpt_arena_alloc(ar, xb, "layer output") : NULL};
    if (L > 0) bpt_weights_start(m, &wb, 0);
    {
        size_t mk = bpt_arena_mark(ar);
        const float *wte = bpt_tensor_fetch(m, 0, "gathered embedding");
        float *e = d.seq ? leave_begin(m, &d, xs[0], NULL, "embedding over tp") : xs[0];   /* written whole */
        k->embed_fwd(e, tok, wte, N, D, d.v0, d.V);   // x0 = wte[tokens] (vocab parallel)
        leave_end(m, &d, xs[0], NULL, e, nd);
        bpt_arena_release(ar, mk);
    }
    bpt_layer_w wlast = {0};
    for (int l = 0; l < L; l++) {
        bpt_layer_w w = bpt_weights_ready(m, &wb, l);
        if (l + 1 < L) bpt_weights_start(m, &wb, l + 1);
        wlast = w;
        if (r16) {
            ks[l] = bpt_arena_alloc(ar, nd * sizeof(uint16_t), "kept layer input (bf16)");
            k->to_bf16(ks[l], xs[l], nd);
            xs[l + 1] = xp[(l + 1) % 2];
        } else {
            xs[l + 1] = (train || l == 0) ? bpt_arena_alloc(ar, xb, "layer output") : xs[l - 1];
        }
        layer_forward(m, &d, &w, xs[l], xs[l + 1], &A[l], keep);
    }
    if (train) m->kept_bytes = bpt_arena_mark(ar) - mark_acts;
    /* the backward starts with layer L-1, whose weights are still at hand: prefetch L-2 */
    if (train && L > 1) bpt_weights_start(m, &wb, L - 2);

    /* blockwise loss: logits and their gradient one chunk of rows at a time. The
     * backward's two dx buffers: dxa is new (the final norm's backward writes it while
     * reading x_L); dxb is x_L's own buffer, free once that backward has run. With the
     * bf16 residual, dxa is the fp32 layer buffer that does not hold x_L, and the other
     * one (x_L's) is where the backward widens each kept input. */
    float *xw = r16 ? xp[L % 2] : NULL;
    float *dxa = train ? (r16 ? xp[(L + 1) % 2] : bpt_arena_alloc(ar, xb, "dx")) : NULL;
    float *dxb = train ? (r16 ? bpt_arena_alloc(ar, xb, "dx") : xs[L]) : NULL;
    size_t mark1 = bpt_arena_mark(ar);
    int rows = c->scan_loss ? d.B * (c->scan_loss_chunk_size < d.T ? c->scan_loss_chunk_size : d.T) : N;
    int ilm = idx_lm_head(m), inf = idx_norm_f(m);
    const float *normf = bpt_tensor_fetch(m, inf, "gathered final norm");
    const float *wlm = bpt_tensor_fetch(m, ilm, "gathered lm_head");
    float *gnormf = train ? bpt_tensor_grad_begin(m, inf, "final norm gradient") : NULL;
    float *gwlm = train ? bpt_tensor_grad_begin(m, ilm, "lm_head gradient") : NULL;
    float *xf = bpt_arena_alloc(ar, xb, "xf");
    float *rstdf = bpt_arena_alloc(ar, (size_t)Nl * fb, "rstdf");
    float *dxf = train ? bpt_arena_alloc(ar, (size_t)N * D * fb, "dxf") : NULL;
    float *logits = bpt_arena_alloc(ar, (size_t)rows * d.V * fb, "logits chunk");
    k->rmsnorm_fwd(xf, rstdf, xs[L], normf, Nl, D, eps);           // xf = rmsnorm(x_L)
    k->zero(m->d_stats, 2 * sizeof(double));
    const float *xfs = enter_tp(m, &d, xf, "xf gathered over tp");   // lm_head is column (vocab) parallel
    for (int r0 = 0; r0 < N; r0 += rows) {
        const float *xc = xfs + (size_t)r0 * D;
        linear(k, logits, xc, wlm, rows, D, d.V, 0.0f);            // logits = xf Wlm^T
        loss_chunk(m, &d, logits, tgt + r0, m->d_mask + r0, rows, train ? scale : 0.0f);
        if (!train) continue;
        // logits = xf Wlm^T  =>  dxf = dlogits Wlm ; dWlm += dlogits^T xf
        k->gemm(0, 0, rows, D, d.V, 1.0f, logits, d.V, wlm, D, 0.0f, dxf + (size_t)r0 * D, D);
        k->gemm(1, 0, d.V, D, rows, 1.0f, logits, d.V, xc, D, 1.0f, gwlm, D);
    }
    double st[2] = {0.0, 0.0};
    k->copy_d2h(st, m->d_stats, sizeof st);
    out[0] += st[0];
    out[1] += st[1];
    if (train) {
        float *dxl = d.seq ? xf : dxf;   /* this rank's rows (xf is consumed: gathered) */
        enter_tp_bwd(m, &d, dxl, dxf);   // lm_head is column (vocab) parallel
        // xf = rmsnorm(x_L)
        k->rmsnorm_bwd(dxa, gnormf, dxl, xs[L], normf, rstdf, Nl, D, 0);
        bpt_tensor_grad_commit(m, ilm, gwlm);
        bpt_tensor_grad_commit(m, inf, gnormf);
    }
    bpt_arena_release(ar, mark1);

    /* backward: layers in reverse (gathering the next one early), then the embedding */
    if (train) {
        for (int l = L - 1; l >= 0; l--) {
            bpt_layer_w w = l == L - 1 ? wlast : bpt_weights_ready(m, &wb, l);
            if (l > 0 && l < L - 1) bpt_weights_start(m, &wb, l - 1);
            bpt_layer_w gw = bpt_grads_begin(m, &gb, l);
            float *xl = xs[l];
            if (r16) {   /* x_L is done with (the final norm's backward ran): reuse its buffer */
                k->from_bf16(xw, ks[l], nd);
                xl = xw;
            }
            layer_backward(m, &d, &w, &gw, xl, r16 ? ks[l] : NULL, &A[l], dxa, dxb);
            bpt_grads_commit(m, &gb, l);
            float *tmp = dxa; dxa = dxb; dxb = tmp;
        }
        size_t mk = bpt_arena_mark(ar);
        float *gwte = bpt_tensor_grad_begin(m, 0, "embedding gradient");
        const float *dx0 = dxa;   /* under sequence parallelism: every tp rank's rows */
        if (d.seq) {
            float *g = bpt_arena_alloc(ar, (size_t)N * D * fb, "dx gathered over tp");
            bpt_sp_leave_bwd(m, g, dxa, nd);
            dx0 = g;
        }
        k->embed_bwd(gwte, dx0, tok, N, D, d.v0, d.V);   // x0 = wte[tokens]
        bpt_tensor_grad_commit(m, 0, gwte);
        bpt_arena_release(ar, mk);
        bpt_grads_finish(m, &gb);
    }
    free(xs);
    free(ks);
    free(A);
    bpt_arena_release(ar, mark0);
}

void bpt_model_forward_backward(bpt_model *m, const int32_t *inputs, const int32_t *targets,
                                const float *mask, float scale, double out[2]) {
    run(m, inputs, targets, mask, scale, out, 1);
}

void bpt_model_forward(bpt_model *m, const int32_t *inputs, const int32_t *targets,
                       const float *mask, double out[2]) {
    run(m, inputs, targets, mask, 0.0f, out, 0);
}
