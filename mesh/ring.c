/* ring.c — ring attention over the sp axis (include/bpt/ring.h). */
#include "bpt/ring.h"
#include "bpt/util.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

size_t bpt_ring_work_floats(int B, int T_local, int KVH, int Dh) {
    return 10 * (size_t)B * T_local * KVH * Dh;
}

int64_t bpt_ring_position(int sp, int r, int T_local, int t) {
    int C = T_local / 2;
    int chunk = t < C ? r : 2 * sp - 1 - r;
    return (int64_t)chunk * C + t % C;
}

/* The global chunk of local chunk a (0 or 1) of sp rank r: zig-zag, or (bench only)
 * contiguous. */
static int chunk_of(const bpt_ring *g, int sp, int r, int a) {
    if (g->contiguous) return 2 * r + a;
    return a == 0 ? r : 2 * sp - 1 - r;
}

/* The segment pair (this rank's query chunk a, key chunk b of the block from rank src);
 * 0 when every key of it is after every query (nothing to compute). */
static int pair(const bpt_ring *g, int r, int src, int a, int b, bpt_attn_seg *s) {
    int sp = g->comm->size[BPT_AXIS_SP], C = g->T_local / 2;
    int gq = chunk_of(g, sp, r, a), gk = chunk_of(g, sp, src, b);
    if (gk > gq) return 0;
    *s = (bpt_attn_seg){ g->B, g->H, g->KVH, g->Dh, g->Bq, g->Bk, C, C, g->T_local, g->T_local,
                         (int64_t)gq * C, (int64_t)gk * C };
    return 1;
}

void bpt_ring_attn_fwd(const bpt_ring *g, float *o, float *lse, const float *q, const float *k, const float *v) {
    bpt_comm *c = g->comm;
    const bpt_kernels *K = g->k;
    BPT_CHECK(K->attn_fwd_seg, "the %s backend has no ring attention", K->name);
    int sp = c->size[BPT_AXIS_SP], r = c->rank[BPT_AXIS_SP], C = g->T_local / 2;
    size_t nkv = (size_t)g->B * g->T_local * g->KVH * g->Dh, qrow = (size_t)g->H * g->Dh;
    size_t krow = (size_t)g->KVH * g->Dh;
    float *cur = g->work, *nxt = g->work + 2 * nkv;
    K->copy_d2d(cur, k, nkv * sizeof(float));
    K->copy_d2d(cur + nkv, v, nkv * sizeof(float));
    for (int s = 0; s < sp; s++) {
        bpt_request req;
        int move = s < sp - 1 && !g->compute_only;
        if (move) bpt_ring_shift_f32(c, BPT_AXIS_SP, nxt, cur, 2 * nkv, &req);
        int src = (r - s + sp) % sp;
        for (int a = 0; a < 2; a++) {
            int first = s == 0;   /* the first pair of a query chunk sets o, lse; the rest merge */
            for (int b = 0; b < 2; b++) {
                bpt_attn_seg sg;
                if (!pair(g, r, src, a, b, &sg)) continue;
                K->attn_fwd_seg(o + (size_t)a * C * qrow, lse + (size_t)a * C, q + (size_t)a * C * qrow,
                                cur + (size_t)b * C * krow, cur + nkv + (size_t)b * C * krow, &sg, !first);
                first = 0;
            }
        }
        if (move) {
            bpt_wait(c, &req);
            float *t = cur; cur = nxt; nxt = t;
        }
    }
}

void bpt_ring_attn_bwd(const bpt_ring *g, float *dq, float *dk, float *dv, const float *dout,
                       const float *q, const float *k, const float *v, const float *o, const float *lse) {
    bpt_comm *c = g->comm;
    const bpt_kernels *K = g->k;
    BPT_CHECK(K->attn_bwd_seg, "the %s backend has no ring attention", K->name);
    int sp = c->size[BPT_AXIS_SP], r = c->rank[BPT_AXIS_SP], C = g->T_local / 2;
    size_t nkv = (size_t)g->B * g->T_local * g->KVH * g->Dh, qrow = (size_t)g->H * g->Dh;
    size_t krow = (size_t)g->KVH * g->Dh, nq = (size_t)g->B * g->T_local * qrow;
    float *cur = g->work, *nxt = cur + 2 * nkv;            /* K/V blocks */
    float *acc = nxt + 2 * nkv, *in = acc + 2 * nkv, *out = in + 2 * nkv;   /* dK/dV blocks */
    K->copy_d2d(cur, k, nkv * sizeof(float));
    K->copy_d2d(cur + nkv, v, nkv * sizeof(float));
    K->zero(dq, nq * sizeof(float));
    bpt_request kv, dkv;
    int quiet = g->compute_only;
    for (int s = 0; s < sp; s++) {
        int move = s < sp - 1 && !quiet;
        if (move) bpt_ring_shift_f32(c, BPT_AXIS_SP, nxt, cur, 2 * nkv, &kv);
        int src = (r - s + sp) % sp;
        K->zero(acc, 2 * nkv * sizeof(float));
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                bpt_attn_seg sg;
                if (!pair(g, r, src, a, b, &sg)) continue;
                size_t qo = (size_t)a * C * qrow, ko = (size_t)b * C * krow;
                K->attn_bwd_seg(dq + qo, acc + ko, acc + nkv + ko, dout + qo, q + qo, cur + ko,
                                cur + nkv + ko, o + qo, lse + (size_t)a * C, &sg);
            }
        if (s > 0) {   /* the block's accumulator from the ranks before: add this hop's part */
            if (!quiet) bpt_wait(c, &dkv);
            K->axpy(acc, 1.0f, in, 2 * nkv);
        }
        /* on to the next rank; after the last hop that is the block's owner */
        float *t = out; out = acc; acc = t;
        if (!quiet) bpt_ring_shift_f32(c, BPT_AXIS_SP, in, out, 2 * nkv, &dkv);
        if (move) {
            bpt_wait(c, &kv);
            float *u = cur; cur = nxt; nxt = u;
        }
    }
    if (!quiet) bpt_wait(c, &dkv);
    K->copy_d2d(dk, in, nkv * sizeof(float));
    K->copy_d2d(dv, in + nkv, nkv * sizeof(float));
}
