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
 * Head dims up to 128 are padded in shared memory to the next of 16, 32, 64, 128 (zero
 * columns change no dot product). The table's chunk sizes Bq, Bk set the blockwise
 * schedule of the model; the kernel picks its own 64-row tiles, which gives the same
 * result up to rounding.
 */
#include <mma.h>
#include <math.h>
#include <type_traits>

#include "kernels/cuda/common.cuh"

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

/* rows [t0, t0+R) of head hh of x (B,T,nh,Dh) as bf16 into s (R, ld), zero padded */
__device__ void load_tile(bf16 *s, int ld, const float *x, int b, int t0, int R, int T, int nh, int hh, int Dh, int DP) {
    for (int e = threadIdx.x; e < R * DP; e += blockDim.x) {
        int r = e / DP, d = e % DP, t = t0 + r;
        float v = (t < T && d < Dh) ? x[(((size_t)b * T + t) * nh + hh) * Dh + d] : 0.0f;
        s[r * ld + d] = __float2bfloat16(v);
    }
}

/* D[r] = sum_d dO[r,d] o[r,d] in fp32 and lse of rows [t0, t0+R) of head h */
__device__ void load_rowstats(float *Ds, float *Ls, const float *dout, const float *o, const float *lse, int b,
                              int t0, int R, int T, int H, int h, int Dh) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int r = warp; r < R; r += NWARPS) {
        int t = t0 + r;
        float s = 0.0f;
        if (t < T) {
            size_t base = (((size_t)b * T + t) * H + h) * Dh;
            for (int d = lane; d < Dh; d += 32) s += dout[base + d] * o[base + d];
        }
        s = warp_sum(s);
        if (lane == 0) {
            Ds[r] = s;
            Ls[r] = t < T ? lse[((size_t)b * H + h) * T + t] : 0.0f;
        }
    }
}

/* The backward's shared step for one (query tile at q0, key tile at k0) pair of M x N:
 * S = Q K^T and dP = dO V^T (fp32, in Ss and dPs), then P = exp(scale S - lse) on the
 * causal, in-range entries (0 elsewhere) and dS = P (dP - D), rounded to bf16 into Ps
 * (when given) and dSs. Ends synchronised. */
__device__ void backward_tile(bf16 *Ps, bf16 *dSs, int ldp, float *Ss, float *dPs, int lds, const bf16 *Qs,
                              const bf16 *dOs, const bf16 *Ks, const bf16 *Vs, int ldb, const float *Ls,
                              const float *Ds, int M, int N, int DP, int q0, int k0, int T, float scale) {
    mma_smem<wmma::row_major, wmma::col_major>(Ss, lds, Qs, ldb, Ks, ldb, M, N, DP, false);
    mma_smem<wmma::row_major, wmma::col_major>(dPs, lds, dOs, ldb, Vs, ldb, M, N, DP, false);
    __syncthreads();
    for (int e = threadIdx.x; e < M * N; e += blockDim.x) {
        int r = e / N, c = e % N, tq = q0 + r, tk = k0 + c;
        float pv = (tk <= tq && tk < T && tq < T) ? __expf(Ss[r * lds + c] * scale - Ls[r]) : 0.0f;
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
                                                        const float *v, int T, int H, int KVH, int Dh, float scale) {
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
    load_tile(Qs, L::LDB, q, b, q0, BM, T, H, h, Dh, DP);
    for (int e = threadIdx.x; e < BM * L::LDO; e += blockDim.x) Os[e] = 0.0f;
    for (int r = threadIdx.x; r < BM; r += blockDim.x) { mrow[r] = -INFINITY; lrow[r] = 0.0f; }

    int last = min(q0 + BM - 1, T - 1) / BN;   /* key tiles past the last query row are skipped */
    for (int kt = 0; kt <= last; kt++) {
        int k0 = kt * BN;
        __syncthreads();   /* the previous tile's K, V and P are consumed */
        load_tile(Ks, L::LDB, k, b, k0, BN, T, KVH, hk, Dh, DP);
        load_tile(Vs, L::LDB, v, b, k0, BN, T, KVH, hk, Dh, DP);
        __syncthreads();
        mma_smem<wmma::row_major, wmma::col_major>(Ss, L::LDS, Qs, L::LDB, Ks, L::LDB, BM, BN, DP, false);
        __syncthreads();
        /* online softmax, one warp per row; lanes hold columns lane and lane + 32 */
        for (int r = warp; r < BM; r += NWARPS) {
            int tq = q0 + r;
            float s[2];
            for (int j = 0; j < 2; j++) {
                int c = lane + 32 * j, tk = k0 + c;
                s[j] = (tk <= tq && tk < T) ? Ss[r * L::LDS + c] * scale : -INFINITY;
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
    for (int e = threadIdx.x; e < BM * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = q0 + r;
        if (t < T) o[(((size_t)b * T + t) * H + h) * Dh + d] = Os[r * L::LDO + d] / lrow[r];
    }
    for (int r = threadIdx.x; r < BM; r += blockDim.x)
        if (q0 + r < T) lse[((size_t)b * H + h) * T + q0 + r] = mrow[r] + logf(lrow[r]);
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
                                                       const float *v, const float *o, const float *lse, int T,
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
    load_tile(Qs, L::LDB, q, b, q0, BM, T, H, h, Dh, DP);
    load_tile(dOs, L::LDB, dout, b, q0, BM, T, H, h, Dh, DP);
    load_rowstats(Ds, Ls, dout, o, lse, b, q0, BM, T, H, h, Dh);
    for (int e = threadIdx.x; e < BM * L::LDO; e += blockDim.x) dQs[e] = 0.0f;

    int last = min(q0 + BM - 1, T - 1) / BN;
    for (int kt = 0; kt <= last; kt++) {
        int k0 = kt * BN;
        __syncthreads();
        load_tile(Ks, L::LDB, k, b, k0, BN, T, KVH, hk, Dh, DP);
        load_tile(Vs, L::LDB, v, b, k0, BN, T, KVH, hk, Dh, DP);
        __syncthreads();
        backward_tile(nullptr, dSs, L::LDP, Ss, dPs, L::LDS, Qs, dOs, Ks, Vs, L::LDB, Ls, Ds, BM, BN, DP, q0, k0, T,
                      scale);
        mma_smem<wmma::row_major, wmma::row_major>(dQs, L::LDO, dSs, L::LDP, Ks, L::LDB, BM, DP, BN, true);
    }
    __syncthreads();
    (void)warp; (void)lane;
    for (int e = threadIdx.x; e < BM * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = q0 + r;
        if (t < T) dq[(((size_t)b * T + t) * H + h) * Dh + d] = dQs[r * L::LDO + d] * scale;
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
                                                        const float *lse, int T, int H, int KVH, int Dh, float scale) {
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
    load_tile(Ks, L::LDB, k, b, k0, BN, T, KVH, hk, Dh, DP);
    load_tile(Vs, L::LDB, v, b, k0, BN, T, KVH, hk, Dh, DP);
    for (int e = threadIdx.x; e < BN * L::LDO; e += blockDim.x) { dKs[e] = 0.0f; dVs[e] = 0.0f; }
    int nqt = (T + BMB - 1) / BMB;
    for (int gi = 0; gi < G; gi++) {
        int h = hk * G + gi;
        for (int qt = k0 / BMB; qt < nqt; qt++) {   /* query tiles ending before k0 see none of these keys */
            int q0 = qt * BMB;
            __syncthreads();
            load_tile(Qs, L::LDB, q, b, q0, BMB, T, H, h, Dh, DP);
            load_tile(dOs, L::LDB, dout, b, q0, BMB, T, H, h, Dh, DP);
            load_rowstats(Ds, Ls, dout, o, lse, b, q0, BMB, T, H, h, Dh);
            __syncthreads();
            backward_tile(Ps, dSs, L::LDP, Ss, dPs, L::LDS, Qs, dOs, Ks, Vs, L::LDB, Ls, Ds, BMB, BN, DP, q0, k0, T,
                          scale);
            /* dV += P^T dO, dK += dS^T Q: the transposes are col-major views */
            mma_smem<wmma::col_major, wmma::row_major>(dVs, L::LDO, Ps, L::LDP, dOs, L::LDB, BN, DP, BMB, true);
            mma_smem<wmma::col_major, wmma::row_major>(dKs, L::LDO, dSs, L::LDP, Qs, L::LDB, BN, DP, BMB, true);
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < BN * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh, t = k0 + r;
        if (t < T) {
            size_t i = (((size_t)b * T + t) * KVH + hk) * Dh + d;
            dk[i] = dKs[r * L::LDO + d] * scale;
            dv[i] = dVs[r * L::LDO + d];
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
static bool fwd_try(float *o, float *lse, const float *q, const float *k, const float *v, int B, int T, int H,
                    int KVH, int Dh) {
    static bool raised = false;
    size_t sm = fwd_smem<DP, BM>::bytes();
    if (!tiles_fit((const void *)attn_fwd_k<DP, BM>, sm, BM, &raised)) return false;
    dim3 grid((T + BM - 1) / BM, H, B);
    attn_fwd_k<DP, BM><<<grid, NTHREADS, sm, g.stream>>>(o, lse, q, k, v, T, H, KVH, Dh, 1.0f / sqrtf((float)Dh));
    LAUNCH_CHECK();
    return true;
}

template <int DP>
static void fwd_launch(float *o, float *lse, const float *q, const float *k, const float *v, int B, int T, int H,
                       int KVH, int Dh) {
    if (!fwd_try<DP, 64>(o, lse, q, k, v, B, T, H, KVH, Dh) && !fwd_try<DP, 32>(o, lse, q, k, v, B, T, H, KVH, Dh))
        bpt_panic(__FILE__, __LINE__, "attention forward: head dim %d needs %zu bytes of shared memory, the GPU has %d",
                  Dh, fwd_smem<DP, 32>::bytes(), smem_limit());
}

template <int DP, int BM>
static bool dq_try(float *dq, const float *dout, const float *q, const float *k, const float *v, const float *o,
                   const float *lse, int B, int T, int H, int KVH, int Dh, float scale) {
    static bool raised = false;
    size_t sm = dq_smem<DP, BM>::bytes();
    if (!tiles_fit((const void *)attn_dq_k<DP, BM>, sm, BM, &raised)) return false;
    dim3 grid((T + BM - 1) / BM, H, B);
    attn_dq_k<DP, BM><<<grid, NTHREADS, sm, g.stream>>>(dq, dout, q, k, v, o, lse, T, H, KVH, Dh, scale);
    LAUNCH_CHECK();
    return true;
}

template <int DP, int BN>
static bool dkv_try(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                    const float *o, const float *lse, int B, int T, int H, int KVH, int Dh, float scale) {
    static bool raised = false;
    size_t sm = dkv_smem<DP, BN>::bytes();
    if (!tiles_fit((const void *)attn_dkv_k<DP, BN>, sm, BN, &raised)) return false;
    dim3 grid((T + BN - 1) / BN, KVH, B);
    attn_dkv_k<DP, BN><<<grid, NTHREADS, sm, g.stream>>>(dk, dv, dout, q, k, v, o, lse, T, H, KVH, Dh, scale);
    LAUNCH_CHECK();
    return true;
}

template <int DP>
static void bwd_launch(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *o, const float *lse, int B, int T, int H, int KVH, int Dh) {
    float scale = 1.0f / sqrtf((float)Dh);
    if (!dq_try<DP, 64>(dq, dout, q, k, v, o, lse, B, T, H, KVH, Dh, scale) &&
        !dq_try<DP, 32>(dq, dout, q, k, v, o, lse, B, T, H, KVH, Dh, scale))
        bpt_panic(__FILE__, __LINE__, "attention dq: head dim %d needs %zu bytes of shared memory, the GPU has %d", Dh,
                  dq_smem<DP, 32>::bytes(), smem_limit());
    if (!dkv_try<DP, 64>(dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh, scale) &&
        !dkv_try<DP, 32>(dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh, scale))
        bpt_panic(__FILE__, __LINE__, "attention dk/dv: head dim %d needs %zu bytes of shared memory, the GPU has %d",
                  Dh, dkv_smem<DP, 32>::bytes(), smem_limit());
}

static void check_head_dim(int Dh) {
    if (Dh > 128 || Dh <= 0)
        bpt_panic(__FILE__, __LINE__, "CUDA attention supports head_dim up to 128 (got %d)", Dh);
}

extern "C" void bpt_cu_attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v,
                                int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    check_head_dim(Dh);
    if (B <= 0 || T <= 0) return;
    if (Dh <= 16) fwd_launch<16>(o, lse, q, k, v, B, T, H, KVH, Dh);
    else if (Dh <= 32) fwd_launch<32>(o, lse, q, k, v, B, T, H, KVH, Dh);
    else if (Dh <= 64) fwd_launch<64>(o, lse, q, k, v, B, T, H, KVH, Dh);
    else fwd_launch<128>(o, lse, q, k, v, B, T, H, KVH, Dh);
}

extern "C" void bpt_cu_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *o, const float *lse,
                                int B, int T, int H, int KVH, int Dh, int Bq, int Bk) {
    check_head_dim(Dh);
    if (B <= 0 || T <= 0) return;
    if (Dh <= 16) bwd_launch<16>(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh);
    else if (Dh <= 32) bwd_launch<32>(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh);
    else if (Dh <= 64) bwd_launch<64>(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh);
    else bwd_launch<128>(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, KVH, Dh);
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
