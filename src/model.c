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
 * inputs x_l are always kept. Attention, MLP and loss chunk sizes are per sequence: a
 * chunk of Bf tokens is B*Bf rows, as in the reference (b * Bf * I hidden values).
 */
#include "bpt/model.h"
#include "bpt/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- layout -- */

enum { T_NORM1, T_Q, T_K, T_V, T_O, T_NORM2, T_GATE, T_UP, T_DOWN, T_PER_LAYER };
static const char *layer_tensor_names[T_PER_LAYER] = {
    "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
    "mlp.down_proj",
};

static void add_tensor(bpt_model *m, const char *name, int layer, int64_t d0, int64_t d1) {
    bpt_tensor *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = layer;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->offset = m->nparams;
    t->decay = t->ndim == 2;
    m->nparams += t->numel;
}

/* Index of tensor j of layer l; embedding is 0, final norm and lm_head follow the layers. */
static inline int tidx(int l, int j) { return 1 + l * T_PER_LAYER + j; }
static inline int idx_norm_f(const bpt_model *m) { return 1 + m->cfg.num_hidden_layers * T_PER_LAYER; }
static inline int idx_lm_head(const bpt_model *m) {
    return m->cfg.tie_word_embeddings ? 0 : idx_norm_f(m) + 1;
}
static inline float *P(const bpt_model *m, bpt_buf b, int i) { return m->buf[b] + m->tensors[i].offset; }

static void layout(bpt_model *m) {
    const bpt_llama_config *c = &m->cfg;
    int D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int Dh = bpt_head_dim(c), qd = c->num_attention_heads * Dh, kvd = bpt_kv_heads(c) * Dh;
    int n = 3 + c->num_hidden_layers * T_PER_LAYER;
    m->tensors = bpt_xcalloc((size_t)n, sizeof(bpt_tensor));
    m->ntensors = 0;
    m->nparams = 0;
    add_tensor(m, "model.embed_tokens.weight", -1, V, D);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        int64_t shapes[T_PER_LAYER][2] = {
            {D, 0}, {qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {D, 0}, {F, D}, {F, D}, {D, F},
        };
        for (int j = 0; j < T_PER_LAYER; j++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, layer_tensor_names[j]);
            add_tensor(m, name, l, shapes[j][0], shapes[j][1]);
        }
    }
    add_tensor(m, "model.norm.weight", -1, D, 0);
    if (!c->tie_word_embeddings) add_tensor(m, "lm_head.weight", -1, V, D);
}

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

bpt_model *bpt_model_create(const bpt_llama_config *cfg, const bpt_kernels *k, bpt_arena *a,
                            int B, int T, int with_optimizer) {
    bpt_model *m = bpt_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->k = k;
    m->arena = a;
    layout(m);
    size_t bytes = m->nparams * sizeof(float);
    m->buf[BPT_BUF_PARAM] = bpt_arena_alloc(a, bytes, "parameters");
    m->buf[BPT_BUF_GRAD] = bpt_arena_alloc(a, bytes, "gradients");
    if (with_optimizer) {
        m->buf[BPT_BUF_M] = bpt_arena_alloc(a, bytes, "adamw m");
        m->buf[BPT_BUF_V] = bpt_arena_alloc(a, bytes, "adamw v");
        k->zero(m->buf[BPT_BUF_M], bytes);
        k->zero(m->buf[BPT_BUF_V], bytes);
    }
    k->zero(m->buf[BPT_BUF_GRAD], bytes);

    /* RoPE tables (T, Dh/2): angles in double, whatever the compute dtype. */
    int half = bpt_head_dim(cfg) / 2;
    size_t tb = (size_t)T * half * sizeof(float);
    m->rope_cos = bpt_arena_alloc(a, tb, "rope cos");
    m->rope_sin = bpt_arena_alloc(a, tb, "rope sin");
    float *hc = bpt_xmalloc(tb), *hs = bpt_xmalloc(tb);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double inv_freq = pow(cfg->rope_theta, -(2.0 * i) / (2.0 * half));
            double ang = (double)t * inv_freq;
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
        if (t->ndim == 1) {
            for (size_t e = 0; e < t->numel; e++) h[e] = 1.0f;
        } else {
            #pragma omp parallel for schedule(static)
            for (size_t e = 0; e < t->numel; e++) h[e] = std * bpt_randn(seed, t->name, e);
        }
        bpt_model_set(m, BPT_BUF_PARAM, i, h);
        free(h);
    }
}

int bpt_model_find(const bpt_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

void bpt_model_get(const bpt_model *m, bpt_buf which, int i, float *host) {
    m->k->copy_d2h(host, P(m, which, i), m->tensors[i].numel * sizeof(float));
}

void bpt_model_set(bpt_model *m, bpt_buf which, int i, const float *host) {
    m->k->copy_h2d(P(m, which, i), host, m->tensors[i].numel * sizeof(float));
}

void bpt_model_zero_grad(bpt_model *m) {
    m->k->zero(m->buf[BPT_BUF_GRAD], m->nparams * sizeof(float));
}

double bpt_model_sumsq(const bpt_model *m, bpt_buf which) {
    double s = 0;
    m->k->sumsq(m->d_stats + 2, m->buf[which], m->nparams);
    m->k->copy_d2h(&s, m->d_stats + 2, sizeof s);
    return s;
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

typedef struct dims {
    int B, T, N, D, F, H, KVH, Dh, qd, kvd, Bq, Bk, vanilla;
    int mlp_rows;   /* rows per feed-forward chunk */
} dims;

static dims get_dims(const bpt_model *m) {
    const bpt_llama_config *c = &m->cfg;
    dims d;
    d.B = m->B; d.T = m->T; d.N = m->B * m->T;
    d.D = c->hidden_size; d.F = c->intermediate_size;
    d.H = c->num_attention_heads; d.KVH = bpt_kv_heads(c); d.Dh = bpt_head_dim(c);
    d.qd = d.H * d.Dh; d.kvd = d.KVH * d.Dh;
    d.vanilla = !c->scan_attention;
    d.Bq = c->scan_query_chunk_size < d.T ? c->scan_query_chunk_size : d.T;
    d.Bk = c->scan_key_chunk_size < d.T ? c->scan_key_chunk_size : d.T;
    int bf = c->scan_mlp && c->scan_mlp_chunk_size < d.T ? c->scan_mlp_chunk_size : d.T;
    d.mlp_rows = d.B * bf;
    return d;
}

typedef struct acts {
    float *xn1, *rstd1, *q, *k, *v, *o, *lse, *x1, *xn2, *rstd2, *g, *u, *h;
} acts;

/* Allocate the members of `want` (a K_ mask) that are still NULL. G/U/H are full
 * (N,F) arrays here; chunk scratch is separate. */
static void alloc_acts(bpt_model *m, const dims *d, acts *a, int want) {
    bpt_arena *ar = m->arena;
    size_t N = (size_t)d->N, fb = sizeof(float);
    size_t lse_n = d->vanilla ? (size_t)d->B * d->H * d->T * d->T : (size_t)d->B * d->H * d->T;
    if ((want & K_XN1) && !a->xn1) a->xn1 = bpt_arena_alloc(ar, N * d->D * fb, "xn1");
    if ((want & K_RSTD1) && !a->rstd1) a->rstd1 = bpt_arena_alloc(ar, N * fb, "rstd1");
    if ((want & K_Q) && !a->q) a->q = bpt_arena_alloc(ar, N * d->qd * fb, "q");
    if ((want & K_K) && !a->k) a->k = bpt_arena_alloc(ar, N * d->kvd * fb, "k");
    if ((want & K_V) && !a->v) a->v = bpt_arena_alloc(ar, N * d->kvd * fb, "v");
    if ((want & K_O) && !a->o) {
        a->o = bpt_arena_alloc(ar, N * d->qd * fb, "attention output");
        a->lse = bpt_arena_alloc(ar, lse_n * fb, d->vanilla ? "attention probs" : "attention lse");
    }
    if ((want & K_X1) && !a->x1) a->x1 = bpt_arena_alloc(ar, N * d->D * fb, "x1");
    if ((want & K_XN2) && !a->xn2) a->xn2 = bpt_arena_alloc(ar, N * d->D * fb, "xn2");
    if ((want & K_RSTD2) && !a->rstd2) a->rstd2 = bpt_arena_alloc(ar, N * fb, "rstd2");
    if ((want & K_G) && !a->g) a->g = bpt_arena_alloc(ar, N * d->F * fb, "mlp gate");
    if ((want & K_U) && !a->u) a->u = bpt_arena_alloc(ar, N * d->F * fb, "mlp up");
    if ((want & K_H) && !a->h) a->h = bpt_arena_alloc(ar, N * d->F * fb, "mlp hidden");
}

/* Layer weights (or their gradients) by role. */
typedef struct lw { float *norm1, *wq, *wk, *wv, *wo, *norm2, *wg, *wu, *wd; } lw;
static lw layer_w(const bpt_model *m, bpt_buf b, int l) {
    lw w = {P(m, b, tidx(l, T_NORM1)), P(m, b, tidx(l, T_Q)), P(m, b, tidx(l, T_K)),
            P(m, b, tidx(l, T_V)), P(m, b, tidx(l, T_O)), P(m, b, tidx(l, T_NORM2)),
            P(m, b, tidx(l, T_GATE)), P(m, b, tidx(l, T_UP)), P(m, b, tidx(l, T_DOWN))};
    return w;
}

/* out (rows, n_out) = inp (rows, n_in) W^T, W (n_out, n_in): a Hugging Face linear. */
static void linear(const bpt_kernels *k, float *out, const float *inp, const float *W,
                   int rows, int n_in, int n_out, float beta) {
    k->gemm(0, 1, rows, n_out, n_in, 1.0f, inp, n_in, W, n_in, beta, out, n_out);
}

/* The attention half of the forward, from what `a` already holds:
 * computes whichever of xn1/rstd1, q/k/v, o/lse, x1 are requested in `need`. */
static void attn_forward(bpt_model *m, const dims *d, const lw *w, const float *x, acts *a, int need) {
    const bpt_kernels *k = m->k;
    float eps = (float)m->cfg.rms_norm_eps;
    if (need & (K_XN1 | K_RSTD1)) k->rmsnorm_fwd(a->xn1, a->rstd1, x, w->norm1, d->N, d->D, eps);
    if (need & K_Q) {   // q = rope(xn1 Wq^T)  (N,D) -> (N,qd)
        linear(k, a->q, a->xn1, w->wq, d->N, d->D, d->qd, 0.0f);
        k->rope_fwd(a->q, m->rope_cos, m->rope_sin, d->B, d->T, d->H, d->Dh);
    }
    if (need & K_K) {   // k = rope(xn1 Wk^T)  (N,D) -> (N,kvd)
        linear(k, a->k, a->xn1, w->wk, d->N, d->D, d->kvd, 0.0f);
        k->rope_fwd(a->k, m->rope_cos, m->rope_sin, d->B, d->T, d->KVH, d->Dh);
    }
    if (need & K_V) linear(k, a->v, a->xn1, w->wv, d->N, d->D, d->kvd, 0.0f);
    if (need & K_O) {   // o = softmax(q k^T / sqrt(Dh)) v, causal
        if (d->vanilla)
            k->attn_vanilla_fwd(a->o, a->lse, a->q, a->k, a->v, d->B, d->T, d->H, d->KVH, d->Dh);
        else
            k->attn_fwd(a->o, a->lse, a->q, a->k, a->v, d->B, d->T, d->H, d->KVH, d->Dh, d->Bq, d->Bk);
    }
    if (need & K_X1) {  // x1 = x + o Wo^T
        k->copy_d2d(a->x1, x, (size_t)d->N * d->D * sizeof(float));
        linear(k, a->x1, a->o, w->wo, d->N, d->qd, d->D, 1.0f);
    }
}

/* The feed-forward half: x_out = x1 + down(silu(gate(xn2)) * up(xn2)), chunk by chunk.
 * Full g/u/h arrays are written when a holds them; otherwise chunk scratch is used. */
static void mlp_forward(bpt_model *m, const dims *d, const lw *w, acts *a, float *x_out) {
    const bpt_kernels *k = m->k;
    size_t mark = bpt_arena_mark(m->arena);
    int R = d->mlp_rows, F = d->F, D = d->D;
    size_t cb = (size_t)R * F * sizeof(float);
    float *gs = a->g ? NULL : bpt_arena_alloc(m->arena, cb, "mlp gate chunk");
    float *us = a->u ? NULL : bpt_arena_alloc(m->arena, cb, "mlp up chunk");
    float *hs = a->h ? NULL : bpt_arena_alloc(m->arena, cb, "mlp hidden chunk");
    k->copy_d2d(x_out, a->x1, (size_t)d->N * D * sizeof(float));
    for (int r0 = 0; r0 < d->N; r0 += R) {
        size_t off = (size_t)r0 * F;
        const float *xn = a->xn2 + (size_t)r0 * D;
        float *g = a->g ? a->g + off : gs, *u = a->u ? a->u + off : us, *h = a->h ? a->h + off : hs;
        linear(k, g, xn, w->wg, R, D, F, 0.0f);          // g = xn2 Wg^T  (R,D) -> (R,F)
        linear(k, u, xn, w->wu, R, D, F, 0.0f);          // u = xn2 Wu^T
        k->swiglu_fwd(h, g, u, (size_t)R * F);           // h = silu(g) * u
        linear(k, x_out + (size_t)r0 * D, h, w->wd, R, F, D, 1.0f);  // x_out += h Wd^T
    }
    bpt_arena_release(m->arena, mark);
}

/* Forward of layer l. Members of `keep` go in the persistent region (allocated before
 * the mark); the rest is scratch released before returning. */
static void layer_forward(bpt_model *m, const dims *d, int l, const float *x, float *x_out,
                          acts *a, int keep) {
    lw w = layer_w(m, BPT_BUF_PARAM, l);
    memset(a, 0, sizeof *a);
    alloc_acts(m, d, a, keep);
    size_t mark = bpt_arena_mark(m->arena);
    acts t = *a;
    alloc_acts(m, d, &t, K_ATTN_ALL | K_X1 | K_XN2 | K_RSTD2);
    attn_forward(m, d, &w, x, &t, K_ATTN_ALL | K_X1);
    m->k->rmsnorm_fwd(t.xn2, t.rstd2, t.x1, w.norm2, d->N, d->D, (float)m->cfg.rms_norm_eps);
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
 * overwritten (it becomes dloss/dx1), and one (N,D) buffer serves dxn2, do and dxn1 in
 * turn (H*Dh == D), to keep the backward's scratch small. */
static void layer_backward(bpt_model *m, const dims *d, int l, const float *x, const acts *kept,
                           float *dx_out, float *dx_in) {
    const bpt_kernels *k = m->k;
    bpt_arena *ar = m->arena;
    lw w = layer_w(m, BPT_BUF_PARAM, l), gw = layer_w(m, BPT_BUF_GRAD, l);
    int N = d->N, D = d->D, F = d->F, qd = d->qd, kvd = d->kvd, R = d->mlp_rows;
    size_t fb = sizeof(float), mark = bpt_arena_mark(ar);
    float eps = (float)m->cfg.rms_norm_eps;

    /* recompute what was not kept, in dependency order */
    acts t = *kept;
    int have = held(&t);
    alloc_acts(m, d, &t, K_ATTN_ALL | K_X1 | K_XN2 | K_RSTD2);
    int need = (K_ATTN_ALL | K_X1) & ~have;
    if (need & (K_XN1 | K_RSTD1)) need |= K_XN1 | K_RSTD1;
    attn_forward(m, d, &w, x, &t, need);
    if ((have & (K_XN2 | K_RSTD2)) != (K_XN2 | K_RSTD2))
        k->rmsnorm_fwd(t.xn2, t.rstd2, t.x1, w.norm2, N, D, eps);

    /* ---- feed-forward, chunk by chunk ---- */
    float *dx1 = dx_out;   /* becomes dloss/dx1 below, in place */
    float *dxn = bpt_arena_alloc(ar, (size_t)N * D * fb, "dxn");
    size_t cb = (size_t)R * F * fb;
    float *gs = t.g ? NULL : bpt_arena_alloc(ar, cb, "mlp gate chunk");
    float *us = t.u ? NULL : bpt_arena_alloc(ar, cb, "mlp up chunk");
    float *hs = t.h ? NULL : bpt_arena_alloc(ar, cb, "mlp hidden chunk");
    float *dh = bpt_arena_alloc(ar, cb, "mlp dh chunk");
    float *dg = bpt_arena_alloc(ar, cb, "mlp dg chunk");
    float *du = bpt_arena_alloc(ar, cb, "mlp du chunk");
    for (int r0 = 0; r0 < N; r0 += R) {
        size_t off = (size_t)r0 * F;
        const float *xn = t.xn2 + (size_t)r0 * D, *dy = dx_out + (size_t)r0 * D;
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
        k->gemm(0, 0, R, D, F, 1.0f, dg, F, w.wg, D, 0.0f, dxn + (size_t)r0 * D, D);
        k->gemm(0, 0, R, D, F, 1.0f, du, F, w.wu, D, 1.0f, dxn + (size_t)r0 * D, D);
    }
    // xn2 = rmsnorm(x1); x_out = x1 + ...  =>  dx1 = dx_out + rmsnorm_bwd(dxn2)
    k->rmsnorm_bwd(dx1, gw.norm2, dxn, t.x1, w.norm2, t.rstd2, N, D, 1);

    /* ---- attention ---- */
    // x1 = x + o Wo^T  =>  dWo += dx1^T o ; do = dx1 Wo
    k->gemm(1, 0, D, qd, N, 1.0f, dx1, D, t.o, qd, 1.0f, gw.wo, qd);
    float *dO = dxn;       /* dxn2 is consumed; qd == D */
    float *dq = bpt_arena_alloc(ar, (size_t)N * qd * fb, "dq");
    float *dk = bpt_arena_alloc(ar, (size_t)N * kvd * fb, "dk");
    float *dv = bpt_arena_alloc(ar, (size_t)N * kvd * fb, "dv");
    k->gemm(0, 0, N, qd, D, 1.0f, dx1, D, w.wo, qd, 0.0f, dO, qd);
    // o = softmax(q k^T / sqrt(Dh)) v
    if (d->vanilla)
        k->attn_vanilla_bwd(dq, dk, dv, dO, t.q, t.k, t.v, t.lse, d->B, d->T, d->H, d->KVH, d->Dh);
    else
        k->attn_bwd(dq, dk, dv, dO, t.q, t.k, t.v, t.o, t.lse, d->B, d->T, d->H, d->KVH, d->Dh,
                    d->Bq, d->Bk);
    // q = rope(q'), k = rope(k')
    k->rope_bwd(dq, m->rope_cos, m->rope_sin, d->B, d->T, d->H, d->Dh);
    k->rope_bwd(dk, m->rope_cos, m->rope_sin, d->B, d->T, d->KVH, d->Dh);
    // q' = xn1 Wq^T, k' = xn1 Wk^T, v = xn1 Wv^T  =>  dW += d^T xn1 ; dxn1 = dq Wq + dk Wk + dv Wv
    k->gemm(1, 0, qd, D, N, 1.0f, dq, qd, t.xn1, D, 1.0f, gw.wq, D);
    k->gemm(1, 0, kvd, D, N, 1.0f, dk, kvd, t.xn1, D, 1.0f, gw.wk, D);
    k->gemm(1, 0, kvd, D, N, 1.0f, dv, kvd, t.xn1, D, 1.0f, gw.wv, D);
    k->gemm(0, 0, N, D, qd, 1.0f, dq, qd, w.wq, D, 0.0f, dxn, D);
    k->gemm(0, 0, N, D, kvd, 1.0f, dk, kvd, w.wk, D, 1.0f, dxn, D);
    k->gemm(0, 0, N, D, kvd, 1.0f, dv, kvd, w.wv, D, 1.0f, dxn, D);
    // xn1 = rmsnorm(x); x1 = x + ...  =>  dx = dx1 + rmsnorm_bwd(dxn1)
    k->copy_d2d(dx_in, dx1, (size_t)N * D * fb);
    k->rmsnorm_bwd(dx_in, gw.norm1, dxn, x, w.norm1, t.rstd1, N, D, 1);
    bpt_arena_release(ar, mark);
}

/* --------------------------------------------------------------- a step -- */

static void run(bpt_model *m, const int32_t *inputs, const int32_t *targets, const float *mask,
                float scale, double out[2], int train) {
    const bpt_kernels *k = m->k;
    bpt_arena *ar = m->arena;
    const bpt_llama_config *c = &m->cfg;
    dims d = get_dims(m);
    int N = d.N, D = d.D, V = c->vocab_size, L = c->num_hidden_layers;
    size_t fb = sizeof(float), xb = (size_t)N * D * fb, mark0 = bpt_arena_mark(ar);
    float eps = (float)c->rms_norm_eps;
    const int32_t *tok = m->d_tokens, *tgt = m->d_tokens + N;
    k->copy_h2d(m->d_tokens, inputs, (size_t)N * sizeof(int32_t));
    k->copy_h2d(m->d_tokens + N, targets, (size_t)N * sizeof(int32_t));
    k->copy_h2d(m->d_mask, mask, (size_t)N * fb);

    /* forward: the residual stream x_0..x_L is kept for training, ping-pongs for eval */
    int keep = train ? keep_set(c) : 0;
    float **xs = bpt_xcalloc((size_t)L + 1, sizeof(float *));
    acts *A = bpt_xcalloc((size_t)L + 1, sizeof(acts));
    xs[0] = bpt_arena_alloc(ar, xb, "x0");
    k->embed_fwd(xs[0], tok, P(m, BPT_BUF_PARAM, 0), N, D);   // x0 = wte[tokens]
    for (int l = 0; l < L; l++) {
        xs[l + 1] = (train || l == 0) ? bpt_arena_alloc(ar, xb, "layer output") : xs[l - 1];
        layer_forward(m, &d, l, xs[l], xs[l + 1], &A[l], keep);
    }

    /* blockwise loss: logits and their gradient one chunk of rows at a time */
    float *dxa = train ? bpt_arena_alloc(ar, xb, "dx") : NULL;
    float *dxb = train ? bpt_arena_alloc(ar, xb, "dx") : NULL;
    size_t mark1 = bpt_arena_mark(ar);
    int rows = c->scan_loss ? d.B * (c->scan_loss_chunk_size < d.T ? c->scan_loss_chunk_size : d.T) : N;
    float *xf = bpt_arena_alloc(ar, xb, "xf");
    float *rstdf = bpt_arena_alloc(ar, (size_t)N * fb, "rstdf");
    float *dxf = train ? bpt_arena_alloc(ar, xb, "dxf") : NULL;
    float *logits = bpt_arena_alloc(ar, (size_t)rows * V * fb, "logits chunk");
    const float *normf = P(m, BPT_BUF_PARAM, idx_norm_f(m));
    const float *wlm = P(m, BPT_BUF_PARAM, idx_lm_head(m));
    float *gwlm = P(m, BPT_BUF_GRAD, idx_lm_head(m));
    k->rmsnorm_fwd(xf, rstdf, xs[L], normf, N, D, eps);           // xf = rmsnorm(x_L)
    k->zero(m->d_stats, 2 * sizeof(double));
    for (int r0 = 0; r0 < N; r0 += rows) {
        const float *xc = xf + (size_t)r0 * D;
        linear(k, logits, xc, wlm, rows, D, V, 0.0f);              // logits = xf Wlm^T
        k->xent_fwd_bwd(logits, m->d_stats, tgt + r0, m->d_mask + r0, rows, V, train ? scale : 0.0f);
        if (!train) continue;
        // logits = xf Wlm^T  =>  dxf = dlogits Wlm ; dWlm += dlogits^T xf
        k->gemm(0, 0, rows, D, V, 1.0f, logits, V, wlm, D, 0.0f, dxf + (size_t)r0 * D, D);
        k->gemm(1, 0, V, D, rows, 1.0f, logits, V, xc, D, 1.0f, gwlm, D);
    }
    double st[2] = {0.0, 0.0};
    k->copy_d2h(st, m->d_stats, sizeof st);
    out[0] += st[0];
    out[1] += st[1];
    if (train)   // xf = rmsnorm(x_L)
        k->rmsnorm_bwd(dxa, P(m, BPT_BUF_GRAD, idx_norm_f(m)), dxf, xs[L], normf, rstdf, N, D, 0);
    bpt_arena_release(ar, mark1);

    /* backward: layers in reverse, then the embedding */
    if (train) {
        for (int l = L - 1; l >= 0; l--) {
            layer_backward(m, &d, l, xs[l], &A[l], dxa, dxb);
            float *tmp = dxa; dxa = dxb; dxb = tmp;
        }
        k->embed_bwd(P(m, BPT_BUF_GRAD, 0), dxa, tok, N, D, V);   // x0 = wte[tokens]
    }
    free(xs);
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
