/* attention.cu — blockwise (flash-style) causal attention on tensor cores, and the
 * vanilla baseline.
 *
 * Forward: one block of 4 warps per (query tile of 64 rows, head, batch row). Tiles of
 * q, k, v are rounded to bf16 in shared memory; S = q k^T and O += P v are WMMA
 * products (m16n16k16, fp32 accumulators). The online softmax keeps the row max m and
 * sum l in fp32 and rescales O in shared memory, so the kernel never needs the
 * accumulator fragment layout. Key tiles after the query tile's last row are never
 * loaded (causal skip by position); the diagonal tile is masked element-wise. Saves
 * o = O / l and lse = m + log l.
 *
 * Backward, without atomics: dq per query tile (loop over its key tiles) in one kernel,
 * dk and dv per key tile (loop over the query heads of its kv group and over the query
 * tiles at or after it) in another. Both recompute P = exp(s - lse) from q, k and the
 * saved lse, and D = rowsum(dO * o) per tile. GQA reads kv head h / (H / KVH) in place.
 *
 * Every kernel works on a segment pair (seg_t): Tq query rows at rows of q_ld tokens
 * against Tk keys in rows of k_ld, a key visible to a query iff tk <= tq + dpos (dpos =
 * q_pos - k_pos). The whole causal attention is the pair {T, T, T, T, 0}; ring
 * attention (mesh/ring.c) calls the pairs of its zig-zag chunks, merging the forward's
 * partial o and lse through their log-sum-exp in fp32 and adding the backward's
 * contributions to dq, dk, dv (merge), never rounding per hop.
 *
 * Head dims up to 128 are padded in shared memory to the next of 16, 32, 64, 128 (zero
 * columns change no dot product). The table's chunk sizes Bq, Bk set the blockwise
 * schedule of the model; the kernel picks its own 64-row tiles, which gives the same
 * result up to rounding.
 */
#include <mma.h>
#include <math.h>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/kernels.h"

using namespace bptcu;
using namespace nvcuda;
typedef __nv_bfloat16 bf16;

#define NWARPS 4
#define NTHREADS (NWARPS * 32)
/* Tiles: the forward and dq kernels take BM query rows (64, or 32 where shared memory
 * is short) against key tiles of BN_FWD = 64 rows (the softmax gives each lane two
 * columns); the dk/dv kernel takes BN key rows (64 or 32) against query tiles of BMB. */
#define BN_FWD 64
#define BMB 32

/* C (M,N) (+)= A (M,K) B (K,N), all in shared memory, split over the block's warps by
 * 16x16 output fragment. LA/LB: wmma::row_major, or col_major for a transposed view
 * (element (r, c) at ptr[c * ld + r]). */
template <typename LA, typename LB>
__device__ void mma_smem(float *C, int ldc, const bf16 *A, int lda, const bf16 *B, int ldb, int M, int N, int K,
                         bool accumulate) {
    const bool a_row = std::is_same<LA, wmma::row_major>::value;
    const bool b_row = std::is_same<LB, wmma::row_major>::value;
    int warp = threadIdx.x >> 5, nf = N / 16;
    for (int f = warp; f < (M / 16) * nf; f += NWARPS) {
        int fr = f / nf, fc = f % nf;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        float *pc = C + fr * 16 * ldc + fc * 16;
        if (accumulate) wmma::load_matrix_sync(c, pc, ldc, wmma::mem_row_major);
        else wmma::fill_fragment(c, 0.0f);
        for (int kk = 0; kk < K / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LA> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LB> b;
            const bf16 *pa = a_row ? A + fr * 16 * lda + kk * 16 : A + kk * 16 * lda + fr * 16;
            const bf16 *pb = b_row ? B + kk * 16 * ldb + fc * 16 : B + fc * 16 * ldb + kk * 16;
            wmma::load_matrix_sync(a, pa, lda);
            wmma::load_matrix_sync(b, pb, ldb);
            wmma::mma_sync(c, a, b, c);
        }
        wmma::store_matrix_sync(pc, c, ldc, wmma::mem_row_major);
    }
}

/* A segment pair (see the top): the whole causal attention is {T, T, T, T, 0, 0}. */
struct seg_t {
    int Tq, Tk;       /* query and key rows */
    int q_ld, k_ld;   /* tokens per batch row of the arrays they sit in */
    int dpos;         /* q_pos - k_pos: key tk is visible to query tq iff tk <= tq + dpos */
    int merge;        /* forward: merge into the o, lse there; backward: add to dq, dk, dv */
};

/* The last key row visible to some query row in [q0, q0+R) (-1: none). */
__device__ __forceinline__ int last_key(const seg_t &s, int q0, int R) {
    return min(min(q0 + R - 1, s.Tq - 1) + s.dpos, s.Tk - 1);
}

/* rows [t0, t0+R) of head hh of x (B, ld tokens, nh, Dh), the first T of a row valid,
 * as bf16 into s (R, lds), zero padded */
__device__ void load_tile(bf16 *s, int lds, const float *x, int b, int t0, int R, int T, int ld, int nh, int hh,
                          int Dh, int DP) {
    for (int e = threadIdx.x; e < R * DP; e += blockDim.x) {
        int r = e / DP, d = e % DP, t = t0 + r;
        float v = (t < T && d < Dh) ? x[(((size_t)b * ld + t) * nh + hh) * Dh + d] : 0.0f;
        s[r * lds + d] = __float2bfloat16(v);
    }
}

/* D[r] = sum_d dO[r,d] o[r,d] in fp32 and lse of query rows [t0, t0+R) of head h */
__device__ void load_rowstats(float *Ds, float *Ls, const float *dout, const float *o, const float *lse, int b,
                              int t0, int R, const seg_t &sg, int H, int h, int Dh) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int r = warp; r < R; r += NWARPS) {
        int t = t0 + r;
        float s = 0.0f;
        if (t < sg.Tq) {
            size_t base = (((size_t)b * sg.q_ld + t) * H + h) * Dh;
            for (int d = lane; d < Dh; d += 32) s += dout[base + d] * o[base + d];
        }
        s = warp_sum(s);
        if (lane == 0) {
            Ds[r] = s;
            Ls[r] = t < sg.Tq ? lse[((size_t)b * H + h) * sg.q_ld + t] : 0.0f;
        }
    }
}

/* The backward's shared step for one (query tile at q0, key tile at k0) pair of M x N:
 * S = Q K^T and dP = dO V^T (fp32, in Ss and dPs), then P = exp(scale S - lse) on the
 * causal, in-range entries (0 elsewhere) and dS = P (dP - D), rounded to bf16 into Ps
 * (when given) and dSs. Ends synchronised. */
__device__ void backward_tile(bf16 *Ps, bf16 *dSs, int ldp, float *Ss, float *dPs, int lds, const bf16 *Qs,
                              const bf16 *dOs, const bf16 *Ks, const bf16 *Vs, int ldb, const float *Ls,
                              const float *Ds, int M, int N, int DP, int q0, int k0, const seg_t &sg,
                              float scale) {
    mma_smem<wmma::row_major, wmma::col_major>(Ss, lds, Qs, ldb, Ks, ldb, M, N, DP, false);
    mma_smem<wmma::row_major, wmma::col_major>(dPs, lds, dOs, ldb, Vs, ldb, M, N, DP, false);
    __syncthreads();
    for (int e = threadIdx.x; e < M * N; e += blockDim.x) {
        int r = e / N, c = e % N, tq = q0 + r, tk = k0 + c;
        float pv = (tk <= tq + sg.dpos && tk < sg.Tk && tq < sg.Tq) ? __expf(Ss[r * lds + c] * scale - Ls[r]) : 0.0f;
        if (Ps) Ps[r * ldp + c] = __float2bfloat16(pv);
        dSs[r * ldp + c] = __float2bfloat16(pv * (dPs[r * lds + c] - Ds[r]));
    }
    __syncthreads();
}

/* WMMA needs leading dimensions in multiples of 16 bytes and fragment pointers on 32
 * bytes: rows of 16 times these strides, and columns of 16, always are. */
template <int DP, int N>
struct layout_ok {
    static_assert((DP + 8) % 8 == 0 && (N + 8) % 8 == 0, "bf16 strides must be multiples of 8 elements");
    static_assert((N + 4) % 4 == 0 && (DP + 4) % 4 == 0, "fp32 strides must be multiples of 4 elements");
    static_assert((16 * (DP + 8) * 2) % 32 == 0 && (16 * (N + 8) * 2) % 32 == 0, "bf16 fragment rows on 32 bytes");
    static_assert((16 * (N + 4) * 4) % 32 == 0 && (16 * (DP + 4) * 4) % 32 == 0, "fp32 fragment rows on 32 bytes");
    static_assert(DP % 16 == 0 && N % 16 == 0, "tiles are whole fragments");
    static constexpr bool value = true;
};
static_assert(layout_ok<16, 64>::value && layout_ok<32, 64>::value && layout_ok<64, 64>::value &&
              layout_ok<128, 64>::value && layout_ok<128, 32>::value && layout_ok<64, 32>::value &&
              layout_ok<32, 32>::value && layout_ok<16, 32>::value, "attention tile layouts");

/* shared memory carve-up, 128-byte aligned pieces */
__device__ __forceinline__ char *carve(char *&p, size_t bytes) {
    char *r = p;
    p += (bytes + 127) & ~(size_t)127;
    return r;
}
static size_t pad128(size_t b) { return (b + 127) & ~(size_t)127; }

/* ------------------------------------------------------------------ forward -- */

/* log(e^a + e^b) in fp32, -inf when both are */
__device__ __forceinline__ float log_add(float a, float b) {
    float m = fmaxf(a, b);
    if (m == -INFINITY) return -INFINITY;
    return m + logf(expf(a - m) + expf(b - m));
}

template <int DP, int BM>
struct fwd_smem {
    static constexpr int BN = BN_FWD;
    static constexpr int LDB = DP + 8, LDS = BN + 4, LDP = BN + 8, LDO = DP + 4;
    static size_t bytes() {
        return pad128((size_t)BM * LDB * 2) + 2 * pad128((size_t)BN * LDB * 2) + pad128((size_t)BM * LDS * 4) +
               pad128((size_t)BM * LDP * 2) + pad128((size_t)BM * LDO * 4) + 2 * pad128(BM * 4);
    }
};

template <int DP, int BM>
__global__ void __launch_bounds__(NTHREADS) attn_fwd_k(float *o, float *lse, const float *q, const float *k,
                                                        const float *v, seg_t sg, int H, int KVH, int Dh,
                                                        float scale) {
    typedef fwd_smem<DP, BM> L;
    constexpr int BN = BN_FWD;
    extern __shared__ __align__(128) char smem[];
    char *p = smem;
    bf16 *Qs = (bf16 *)carve(p, (size_t)BM * L::LDB * 2), *Ks = (bf16 *)carve(p, (size_t)BN * L::LDB * 2);
    bf16 *Vs = (bf16 *)carve(p, (size_t)BN * L::LDB * 2);
    float *Ss = (float *)carve(p, (size_t)BM * L::LDS * 4);
    bf16 *Ps = (bf16 *)carve(p, (size_t)BM * L::LDP * 2);
    float *Os = (float *)carve(p, (size_t)BM * L::LDO * 4);
    float *mrow = (float *)carve(p, BM * 4), *lrow = (float *)carve(p, BM * 4);

    int qt = gridDim.x - 1 - blockIdx.x;   /* the longest causal rows first: a shorter tail */
    int h = blockIdx.y, b = blockIdx.z, hk = h / (H / KVH);
    int q0 = qt * BM, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    load_tile(Qs, L::LDB, q, b, q0, BM, sg.Tq, sg.q_ld, H, h, Dh, DP);
    for (int e = threadIdx.x; e < BM * L::LDO; e += blockDim.x) Os[e] = 0.0f;
    for (int r = threadIdx.x; r < BM; r += blockDim.x) { mrow[r] = -INFINITY; lrow[r] = 0.0f; }

    int lk = last_key(sg, q0, BM);   /* key tiles past the last query row are skipped */
    int last = lk < 0 ? -1 : lk / BN;
    for (int kt = 0; kt <= last; kt++) {
        int k0 = kt * BN;
        __syncthreads();   /* the previous tile's K, V and P are consumed */
        load_tile(Ks, L::LDB, k, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
        load_tile(Vs, L::LDB, v, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
        __syncthreads();
        mma_smem<wmma::row_major, wmma::col_major>(Ss, L::LDS, Qs, L::LDB, Ks, L::LDB, BM, BN, DP, false);
        __syncthreads();
        /* online softmax, one warp per row; lanes hold columns lane and lane + 32 */
        for (int r = warp; r < BM; r += NWARPS) {
            int tq = q0 + r;
            float s[2];
            for (int j = 0; j < 2; j++) {
                int c = lane + 32 * j, tk = k0 + c;
                s[j] = (tk <= tq + sg.dpos && tk < sg.Tk) ? Ss[r * L::LDS + c] * scale : -INFINITY;
            }
            float mt = warp_max(fmaxf(s[0], s[1]));
            float mo = mrow[r], mn = fmaxf(mo, mt);
            float pj[2], ls = 0.0f;
            for (int j = 0; j < 2; j++) {
                pj[j] = s[j] == -INFINITY ? 0.0f : __expf(s[j] - mn);
                ls += pj[j];
                Ps[r * L::LDP + lane + 32 * j] = __float2bfloat16(pj[j]);
            }
            ls = warp_sum(ls);
            float alpha = mo == -INFINITY ? 0.0f : __expf(mo - mn);
            for (int d = lane; d < DP; d += 32) Os[r * L::LDO + d] *= alpha;
            __syncwarp();
            if (lane == 0) { mrow[r] = mn; lrow[r] = alpha * lrow[r] + ls; }
        }
        __syncthreads();
        mma_smem<wmma::row_major, wmma::row_major>(Os, L::LDO, Ps, L::LDP, Vs, L::LDB, BM, DP, BN, true);
    }
    __syncthreads();
    /* this pair's o = O / l and lse = m + log l (a row that saw no key: 0 and -inf);
     * merged, o = o_old e^(lse_old - lse) + o_pair e^(lse_pair - lse), lse their log-add */
    float *lse_h = lse + ((size_t)b * H + h) * sg.q_ld;
    for (int e = threadIdx.x; e < BM * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = q0 + r;
        if (t >= sg.Tq) continue;
        size_t i = (((size_t)b * sg.q_ld + t) * H + h) * Dh + d;
        float l = lrow[r], op = l > 0.0f ? Os[r * L::LDO + d] / l : 0.0f;
        if (sg.merge) {
            float lp = l > 0.0f ? mrow[r] + logf(l) : -INFINITY, lo = lse_h[t], ln = log_add(lo, lp);
            op = ln == -INFINITY ? 0.0f
                                 : (lo == -INFINITY ? 0.0f : o[i] * expf(lo - ln)) +
                                       (lp == -INFINITY ? 0.0f : op * expf(lp - ln));
        }
        o[i] = op;
    }
    __syncthreads();   /* every thread has read the old lse */
    for (int r = threadIdx.x; r < BM; r += blockDim.x) {
        int t = q0 + r;
        if (t >= sg.Tq) continue;
        float l = lrow[r], lp = l > 0.0f ? mrow[r] + logf(l) : -INFINITY;
        lse_h[t] = sg.merge ? log_add(lse_h[t], lp) : lp;
    }
}

/* ------------------------------------------------------------------------ dq -- */

template <int DP, int BM>
struct dq_smem {
    static constexpr int BN = BN_FWD;
    static constexpr int LDB = DP + 8, LDS = BN + 4, LDP = BN + 8, LDO = DP + 4;
    static size_t bytes() {
        return 2 * pad128((size_t)BM * LDB * 2) + 2 * pad128((size_t)BN * LDB * 2) + 2 * pad128((size_t)BM * LDS * 4) +
               pad128((size_t)BM * LDP * 2) + pad128((size_t)BM * LDO * 4) + 2 * pad128(BM * 4);
    }
};

template <int DP, int BM>
__global__ void __launch_bounds__(NTHREADS) attn_dq_k(float *dq, const float *dout, const float *q, const float *k,
                                                       const float *v, const float *o, const float *lse, seg_t sg,
                                                       int H, int KVH, int Dh, float scale) {
    typedef dq_smem<DP, BM> L;
    constexpr int BN = BN_FWD;
    extern __shared__ __align__(128) char smem[];
    char *p = smem;
    bf16 *Qs = (bf16 *)carve(p, (size_t)BM * L::LDB * 2), *dOs = (bf16 *)carve(p, (size_t)BM * L::LDB * 2);
    bf16 *Ks = (bf16 *)carve(p, (size_t)BN * L::LDB * 2), *Vs = (bf16 *)carve(p, (size_t)BN * L::LDB * 2);
    float *Ss = (float *)carve(p, (size_t)BM * L::LDS * 4), *dPs = (float *)carve(p, (size_t)BM * L::LDS * 4);
    bf16 *dSs = (bf16 *)carve(p, (size_t)BM * L::LDP * 2);
    float *dQs = (float *)carve(p, (size_t)BM * L::LDO * 4);
    float *Ds = (float *)carve(p, BM * 4), *Ls = (float *)carve(p, BM * 4);

    int qt = gridDim.x - 1 - blockIdx.x;   /* the longest causal rows first: a shorter tail */
    int h = blockIdx.y, b = blockIdx.z, hk = h / (H / KVH);
    int q0 = qt * BM, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    load_tile(Qs, L::LDB, q, b, q0, BM, sg.Tq, sg.q_ld, H, h, Dh, DP);
    load_tile(dOs, L::LDB, dout, b, q0, BM, sg.Tq, sg.q_ld, H, h, Dh, DP);
    load_rowstats(Ds, Ls, dout, o, lse, b, q0, BM, sg, H, h, Dh);
    for (int e = threadIdx.x; e < BM * L::LDO; e += blockDim.x) dQs[e] = 0.0f;

    int lk = last_key(sg, q0, BM);
    int last = lk < 0 ? -1 : lk / BN;
    for (int kt = 0; kt <= last; kt++) {
        int k0 = kt * BN;
        __syncthreads();
        load_tile(Ks, L::LDB, k, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
        load_tile(Vs, L::LDB, v, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
        __syncthreads();
        backward_tile(nullptr, dSs, L::LDP, Ss, dPs, L::LDS, Qs, dOs, Ks, Vs, L::LDB, Ls, Ds, BM, BN, DP, q0, k0, sg,
                      scale);
        mma_smem<wmma::row_major, wmma::row_major>(dQs, L::LDO, dSs, L::LDP, Ks, L::LDB, BM, DP, BN, true);
    }
    __syncthreads();
    (void)warp; (void)lane;
    for (int e = threadIdx.x; e < BM * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = q0 + r;
        if (t >= sg.Tq) continue;
        size_t i = (((size_t)b * sg.q_ld + t) * H + h) * Dh + d;
        dq[i] = (sg.merge ? dq[i] : 0.0f) + dQs[r * L::LDO + d] * scale;
    }
}

/* -------------------------------------------------------------------- dk, dv -- */

template <int DP, int BN>
struct dkv_smem {
    static constexpr int LDB = DP + 8, LDS = BN + 4, LDP = BN + 8, LDO = DP + 4;
    static size_t bytes() {
        return 2 * pad128((size_t)BN * LDB * 2) + 2 * pad128((size_t)BMB * LDB * 2) + 2 * pad128((size_t)BMB * LDS * 4) +
               2 * pad128((size_t)BMB * LDP * 2) + 2 * pad128((size_t)BN * LDO * 4) + 2 * pad128(BMB * 4);
    }
};

template <int DP, int BN>
__global__ void __launch_bounds__(NTHREADS) attn_dkv_k(float *dk, float *dv, const float *dout, const float *q,
                                                        const float *k, const float *v, const float *o,
                                                        const float *lse, seg_t sg, int H, int KVH, int Dh,
                                                        float scale) {
    typedef dkv_smem<DP, BN> L;
    extern __shared__ __align__(128) char smem[];
    char *p = smem;
    bf16 *Ks = (bf16 *)carve(p, (size_t)BN * L::LDB * 2), *Vs = (bf16 *)carve(p, (size_t)BN * L::LDB * 2);
    bf16 *Qs = (bf16 *)carve(p, (size_t)BMB * L::LDB * 2), *dOs = (bf16 *)carve(p, (size_t)BMB * L::LDB * 2);
    float *Ss = (float *)carve(p, (size_t)BMB * L::LDS * 4), *dPs = (float *)carve(p, (size_t)BMB * L::LDS * 4);
    bf16 *Ps = (bf16 *)carve(p, (size_t)BMB * L::LDP * 2), *dSs = (bf16 *)carve(p, (size_t)BMB * L::LDP * 2);
    float *dKs = (float *)carve(p, (size_t)BN * L::LDO * 4), *dVs = (float *)carve(p, (size_t)BN * L::LDO * 4);
    float *Ds = (float *)carve(p, BMB * 4), *Ls = (float *)carve(p, BMB * 4);

    int kt = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, G = H / KVH;
    int k0 = kt * BN;
    load_tile(Ks, L::LDB, k, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
    load_tile(Vs, L::LDB, v, b, k0, BN, sg.Tk, sg.k_ld, KVH, hk, Dh, DP);
    for (int e = threadIdx.x; e < BN * L::LDO; e += blockDim.x) { dKs[e] = 0.0f; dVs[e] = 0.0f; }
    int nqt = (sg.Tq + BMB - 1) / BMB;
    int first = max(k0 - sg.dpos, 0) / BMB;   /* query tiles ending before key k0 see none of these keys */
    for (int gi = 0; gi < G; gi++) {
        int h = hk * G + gi;
        for (int qt = first; qt < nqt; qt++) {
            int q0 = qt * BMB;
            __syncthreads();
            load_tile(Qs, L::LDB, q, b, q0, BMB, sg.Tq, sg.q_ld, H, h, Dh, DP);
            load_tile(dOs, L::LDB, dout, b, q0, BMB, sg.Tq, sg.q_ld, H, h, Dh, DP);
            load_rowstats(Ds, Ls, dout, o, lse, b, q0, BMB, sg, H, h, Dh);
            __syncthreads();
            backward_tile(Ps, dSs, L::LDP, Ss, dPs, L::LDS, Qs, dOs, Ks, Vs, L::LDB, Ls, Ds, BMB, BN, DP, q0, k0, sg,
                          scale);
            /* dV += P^T dO, dK += dS^T Q: the transposes are col-major views */
            mma_smem<wmma::col_major, wmma::row_major>(dVs, L::LDO, Ps, L::LDP, dOs, L::LDB, BN, DP, BMB, true);
            mma_smem<wmma::col_major, wmma::row_major>(dKs, L::LDO, dSs, L::LDP, Qs, L::LDB, BN, DP, BMB, true);
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < BN * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = k0 + r;
        if (t < sg.Tk) {
            size_t i = (((size_t)b * sg.k_ld + t) * KVH + hk) * Dh + d;
            dk[i] = (sg.merge ? dk[i] : 0.0f) + dKs[r * L::LDO + d] * scale;
            dv[i] = (sg.merge ? dv[i] : 0.0f) + dVs[r * L::LDO + d];
        }
    }
}

/* ------------------------------------------------------------------- launch -- */

/* The device's opt-in shared memory per block (227 KiB on sm_90, 163 KiB on sm_80,
 * 99 KiB on sm_86/89): the large tiles where they fit, else the small ones. */
static int smem_limit(void) {
    static int lim = -1;
    if (lim < 0) CUDA_CHECK(cudaDeviceGetAttribute(&lim, cudaDevAttrMaxSharedMemoryPerBlockOptin, g.device));
    return lim;
}

/* 32: use the small tiles even where the large ones fit (tests); 0: the large ones where
 * they fit. */
static int tile_rows = 0;
extern "C" void bpt_cu_set_attn_tile_rows(int rows) { tile_rows = rows; }

/* Whether a kernel taking `bytes` of dynamic shared memory with `rows`-row tiles is the
 * one to launch; raises the kernel's shared-memory limit the first time. */
static bool tiles_fit(const void *kernel, size_t bytes, int rows, bool *raised) {
    if (bytes > (size_t)smem_limit() || (tile_rows == 32 && rows != 32)) return false;
    if (!*raised) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    *raised = true;
    return true;
}

template <int DP, int BM>
static bool fwd_try(float *o, float *lse, const float *q, const float *k, const float *v, const seg_t &sg, int B,
                    int H, int KVH, int Dh) {
    static bool raised = false;
    size_t sm = fwd_smem<DP, BM>::bytes();
    if (!tiles_fit((const void *)attn_fwd_k<DP, BM>, sm, BM, &raised)) return false;
    dim3 grid((sg.Tq + BM - 1) / BM, H, B);
    attn_fwd_k<DP, BM><<<grid, NTHREADS, sm, g.stream>>>(o, lse, q, k, v, sg, H, KVH, Dh, 1.0f / sqrtf((float)Dh));
    LAUNCH_CHECK();
    return true;
}

template <int DP>
static void fwd_launch(float *o, float *lse, const float *q, const float *k, const float *v, const seg_t &sg, int B,
                       int H, int KVH, int Dh) {
    if (!fwd_try<DP, 64>(o, lse, q, k, v, sg, B, H, KVH, Dh) && !fwd_try<DP, 32>(o, lse, q, k, v, sg, B, H, KVH, Dh))
        bpt_panic(__FILE__, __LINE__, "attention forward: head dim %d needs %zu bytes of shared memory, the GPU has %d",
                  Dh, fwd_smem<DP, 32>::bytes(), smem_limit());
}

template <int DP, int BM>
static bool dq_try(float *dq, const float *dout, const float *q, const float *k, const float *v, const float *o,
                   const float *lse, const seg_t &sg, int B, int H, int KVH, int Dh, float scale) {
    static bool raised = false;
    size_t sm = dq_smem<DP, BM>::bytes();
    if (!tiles_fit((const void *)attn_dq_k<DP, BM>, sm, BM, &raised)) return false;
    dim3 grid((sg.Tq + BM - 1) / BM, H, B);
    attn_dq_k<DP, BM><<<grid, NTHREADS, sm, g.stream>>>(dq, dout, q, k, v, o, lse, sg, H, KVH, Dh, scale);
    LAUNCH_CHECK();
    return true;
}

template <int DP, int BN>
static bool dkv_try(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                    const float *o, const float *lse, const seg_t &sg, int B, int H, int KVH, int Dh, float scale) {
    static bool raised = false;
    size_t sm = dkv_smem<DP, BN>::bytes();
    if (!tiles_fit((const void *)attn_dkv_k<DP, BN>, sm, BN, &raised)) return false;
    dim3 grid((sg.Tk + BN - 1) / BN, KVH, B);
    attn_dkv_k<DP, BN><<<grid, NTHREADS, sm, g.stream>>>(dk, dv, dout, q, k, v, o, lse, sg, H, KVH, Dh, scale);
    LAUNCH_CHECK();
    return true;
}

template <int DP>
static void bwd_launch(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *o, const float *lse, const seg_t &sg, int B, int H, int KVH,
                       int Dh) {
    float scale = 1.0f / sqrtf((float)Dh);
    if (!dq_try<DP, 64>(dq, dout, q, k, v, o, lse, sg, B, H, KVH, Dh, scale) &&
        !dq_try<DP, 32>(dq, dout, q, k, v, o, lse, sg, B, H, KVH, Dh, scale))
        bpt_panic(__FILE__, __LINE__, "attention dq: head dim %d needs %zu bytes of shared memory, the GPU has %d", Dh,
                  dq_smem<DP, 32>::bytes(), smem_limit());
    if (!dkv_try<DP, 64>(dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh, scale) &&
        !dkv_try<DP, 32>(dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh, scale))
        bpt_panic(__FILE__, __LINE__, "attention dk/dv: head dim %d needs %zu bytes of shared memory, the GPU has %d",
                  Dh, dkv_smem<DP, 32>::bytes(), smem_limit());
}

static void check_head_dim(int Dh) {
    if (Dh > 128 || Dh <= 0)
        bpt_panic(__FILE__, __LINE__, "CUDA attention supports head_dim up to 128 (got %d)", Dh);
}

static void fwd_any(float *o, float *lse, const float *q, const float *k, const float *v, const seg_t &sg, int B,
                    int H, int KVH, int Dh) {
    check_head_dim(Dh);
    if (B <= 0 || sg.Tq <= 0) return;
    if (Dh <= 16) fwd_launch<16>(o, lse, q, k, v, sg, B, H, KVH, Dh);
    else if (Dh <= 32) fwd_launch<32>(o, lse, q, k, v, sg, B, H, KVH, Dh);
    else if (Dh <= 64) fwd_launch<64>(o, lse, q, k, v, sg, B, H, KVH, Dh);
    else fwd_launch<128>(o, lse, q, k, v, sg, B, H, KVH, Dh);
}

static void bwd_any(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                    const float *v, const float *o, const float *lse, const seg_t &sg, int B, int H, int KVH, int Dh) {
    check_head_dim(Dh);
    if (B <= 0 || sg.Tq <= 0 || sg.Tk <= 0) return;
    if (Dh <= 16) bwd_launch<16>(dq, dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh);
    else if (Dh <= 32) bwd_launch<32>(dq, dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh);
    else if (Dh <= 64) bwd_launch<64>(dq, dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh);
    else bwd_launch<128>(dq, dk, dv, dout, q, k, v, o, lse, sg, B, H, KVH, Dh);
}

extern "C" void bpt_cu_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                                int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    fwd_any(o, lse, q, k, v, seg_t{T, T, T, T, 0, 0}, B, H, KVH, Dh);
}

extern "C" void bpt_cu_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *o, const float *lse,
                                int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    bwd_any(dq, dk, dv, dout, q, k, v, o, lse, seg_t{T, T, T, T, 0, 0}, B, H, KVH, Dh);
}

/* The segment pair of kernels.h as the kernels' seg_t (positions as a difference: a
 * key is visible iff k_pos + tk <= q_pos + tq). */
static seg_t seg_of(const bpt_attn_seg *s, int merge) {
    int64_t dpos = s->q_pos - s->k_pos;
    if (dpos > INT32_MAX / 2 || dpos < -(INT32_MAX / 2))
        bpt_panic(__FILE__, __LINE__, "attention segment: positions %lld and %lld too far apart", (long long)s->q_pos,
                  (long long)s->k_pos);
    return seg_t{s->Tq, s->Tk, s->q_ld, s->k_ld, (int)dpos, merge};
}

extern "C" void bpt_cu_attn_fwd_seg(float *o, float *lse, const float *q, const float *k, const float *v,
                                    const bpt_attn_seg *s, int merge) {
    fwd_any(o, lse, q, k, v, seg_of(s, merge), s->B, s->H, s->KVH, s->Dh);
}

extern "C" void bpt_cu_attn_bwd_seg(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                    const float *k, const float *v, const float *o, const float *lse,
                                    const bpt_attn_seg *s) {
    bwd_any(dq, dk, dv, dout, q, k, v, o, lse, seg_of(s, 1), s->B, s->H, s->KVH, s->Dh);
}

/* ------------------------------------------------------------------ vanilla -- */

/* The baseline: S = q k^T per (batch row, head) through the table's GEMM, a causal
 * softmax over whole rows into probs (B,H,T,T), O = P v. The backward works on row
 * chunks that fit the workspace: dP = dO v^T, dS = P (dP - rowsum(P dP)) in place,
 * dq = scale dS k, dk += scale dS^T q, dv += P^T dO (kv heads summed over their group). */

__global__ void causal_softmax_k(float *P, int T) {
    __shared__ float shf[32];
    size_t row = blockIdx.x;
    int t = (int)(row % T);
    float *x = P + row * T;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c <= t; c += blockDim.x) mx = fmaxf(mx, x[c]);
    mx = warp_max(mx);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) shf[threadIdx.x >> 5] = mx;
    __syncthreads();
    if (threadIdx.x < 32) {
        float m = (int)threadIdx.x < (int)(blockDim.x >> 5) ? shf[threadIdx.x] : -INFINITY;
        m = warp_max(m);
        if (threadIdx.x == 0) shf[0] = m;
    }
    __syncthreads();
    mx = shf[0];
    float s = 0.0f;
    for (int c = threadIdx.x; c <= t; c += blockDim.x) s += __expf(x[c] - mx);
    s = block_sum(s, shf);
    for (int c = threadIdx.x; c < T; c += blockDim.x) x[c] = c <= t ? __expf(x[c] - mx) / s : 0.0f;
}

/* rows of dP (R, T) become dS = P (dP - rowsum(P dP)) */
__global__ void softmax_bwd_k(float *dP, const float *P, int T) {
    __shared__ float sh[32];
    float *dp = dP + (size_t)blockIdx.x * T;
    const float *pr = P + (size_t)blockIdx.x * T;
    float dot = 0.0f;
    for (int c = threadIdx.x; c < T; c += blockDim.x) dot += pr[c] * dp[c];
    dot = block_sum(dot, sh);
    for (int c = threadIdx.x; c < T; c += blockDim.x) dp[c] = pr[c] * (dp[c] - dot);
}

extern "C" void bpt_cu_attn_vanilla_fwd(float *o, float *probs, const float *q, const float *k, const float *v,
                                        int B, int T, int H, int KVH, int Dh) {
    float scale = 1.0f / sqrtf((float)Dh);
    int G = H / KVH, qs = H * Dh, ks = KVH * Dh;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *qb = q + (size_t)b * T * qs + (size_t)h * Dh;
            const float *kb = k + (size_t)b * T * ks + (size_t)(h / G) * Dh;
            float *pb = probs + ((size_t)b * H + h) * T * T;
            bpt_cu_gemm(0, 1, T, T, Dh, scale, qb, qs, kb, ks, 0.0f, pb, T);
        }
    causal_softmax_k<<<(unsigned)((size_t)B * H * T), 256, 0, g.stream>>>(probs, T);
    LAUNCH_CHECK();
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *vb = v + (size_t)b * T * ks + (size_t)(h / G) * Dh;
            const float *pb = probs + ((size_t)b * H + h) * T * T;
            bpt_cu_gemm(0, 0, T, Dh, T, 1.0f, pb, T, vb, ks, 0.0f, o + (size_t)b * T * qs + (size_t)h * Dh, qs);
        }
}

extern "C" void bpt_cu_attn_vanilla_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                        const float *k, const float *v, const float *probs,
                                        int B, int T, int H, int KVH, int Dh) {
    float scale = 1.0f / sqrtf((float)Dh);
    int G = H / KVH, qs = H * Dh, ks = KVH * Dh;
    int R = (int)(WS_PART / ((size_t)T * sizeof(float)));
    if (R < 1) bpt_panic(__FILE__, __LINE__, "vanilla attention: T=%d too long for the workspace", T);
    if (R > T) R = T;
    float *dP = (float *)ws_part();
    bpt_cu_zero(dk, (size_t)B * T * ks * sizeof(float));
    bpt_cu_zero(dv, (size_t)B * T * ks * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t qo = (size_t)b * T * qs + (size_t)h * Dh, ko = (size_t)b * T * ks + (size_t)(h / G) * Dh;
            const float *pb = probs + ((size_t)b * H + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += R) {
                int rows = T - r0 < R ? T - r0 : R;
                const float *P = pb + (size_t)r0 * T, *dO = dout + qo + (size_t)r0 * qs;
                bpt_cu_gemm(0, 1, rows, T, Dh, 1.0f, dO, qs, v + ko, ks, 0.0f, dP, T);          // dP = dO v^T
                bpt_cu_gemm(1, 0, T, Dh, rows, 1.0f, P, T, dO, qs, 1.0f, dv + ko, ks);           // dv += P^T dO
                softmax_bwd_k<<<rows, 256, 0, g.stream>>>(dP, P, T);
                LAUNCH_CHECK();
                bpt_cu_gemm(0, 0, rows, Dh, T, scale, dP, T, k + ko, ks, 0.0f, dq + qo + (size_t)r0 * qs, qs);  // dq
                bpt_cu_gemm(1, 0, T, Dh, rows, scale, dP, T, q + qo + (size_t)r0 * qs, qs, 1.0f, dk + ko, ks); // dk
            }
        }
}
