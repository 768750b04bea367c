/* ops.cu — the row and element-wise kernels of the table: RMSNorm, RoPE, SwiGLU,
 * embedding, the fused cross-entropy (and its vocabulary-parallel steps), AdamW,
 * sum of squares, axpy. Every reduction has a fixed shape (see common.cuh). */
#include <math.h>

#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"

using namespace bptcu;

#define ROW_THREADS 256
#define COL_CHUNKS 64   /* row chunks of the column reductions (dw of RMSNorm) */

/* ---------------------------------------------------------------- RMSNorm -- */

__global__ void rmsnorm_fwd_k(float *out, float *rstd, const float *inp, const float *w, int D, float eps) {
    __shared__ float sh[32];
    const float *x = inp + (size_t)blockIdx.x * D;
    float *y = out + (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) ss += x[d] * x[d];
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / D + eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x) y[d] = x[d] * r * w[d];
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

extern "C" void bpt_cu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int D, float eps) {
    if (N <= 0) return;
    rmsnorm_fwd_k<<<N, ROW_THREADS, 0, g.stream>>>(out, rstd, inp, w, D, eps);
    LAUNCH_CHECK();
}

// dx = r * (dy w - x r^2 mean(dy w x))
__global__ void rmsnorm_bwd_dx_k(float *dinp, const float *dout, const float *inp, const float *w,
                                 const float *rstd, int D, int accumulate) {
    __shared__ float sh[32];
    size_t off = (size_t)blockIdx.x * D;
    const float *x = inp + off, *dy = dout + off;
    float *dx = dinp + off;
    float r = rstd[blockIdx.x], dot = 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) dot += dy[d] * w[d] * x[d];
    dot = block_sum(dot, sh);
    float c = r * r * dot / D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float v = r * (dy[d] * w[d] - x[d] * c);
        dx[d] = accumulate ? dx[d] + v : v;
    }
}

// part[chunk][d] = sum over the chunk's rows of dy x r (double); rows in order
__global__ void rmsnorm_bwd_dw_part_k(double *part, const float *dout, const float *inp, const float *rstd,
                                      int N, int D, int rows_per_chunk) {
    int d = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
    if (d >= D) return;
    int n0 = ch * rows_per_chunk, n1 = min(N, n0 + rows_per_chunk);
    double acc = 0.0;
    for (int n = n0; n < n1; n++) {
        size_t i = (size_t)n * D + d;
        acc += (double)(dout[i] * inp[i] * rstd[n]);
    }
    part[(size_t)ch * D + d] = acc;
}

__global__ void colsum_add_k(float *dw, const double *part, int chunks, int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    double s = 0.0;
    for (int c = 0; c < chunks; c++) s += part[(size_t)c * D + d];
    dw[d] += (float)s;
}

extern "C" void bpt_cu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                                   const float *w, const float *rstd, int N, int D, int accumulate) {
    if (N <= 0) return;
    rmsnorm_bwd_dx_k<<<N, ROW_THREADS, 0, g.stream>>>(dinp, dout, inp, w, rstd, D, accumulate);
    LAUNCH_CHECK();
    int chunks = N < COL_CHUNKS ? N : COL_CHUNKS;
    if ((size_t)chunks * D * sizeof(double) > WS_PART) chunks = (int)(WS_PART / sizeof(double) / D);
    if (chunks < 1) bpt_panic(__FILE__, __LINE__, "rmsnorm backward: D=%d too wide for the workspace", D);
    int per = (N + chunks - 1) / chunks;
    chunks = (N + per - 1) / per;
    dim3 grid((D + 255) / 256, chunks);
    rmsnorm_bwd_dw_part_k<<<grid, 256, 0, g.stream>>>(ws_part(), dout, inp, rstd, N, D, per);
    LAUNCH_CHECK();
    colsum_add_k<<<(D + 255) / 256, 256, 0, g.stream>>>(dw, ws_part(), chunks, D);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------------------- RoPE -- */

// (x1, x2) = (x[i], x[i+Dh/2]) rotated by +angle (sign 1) or -angle (sign -1)
__global__ void rope_k(float *x, const float *cos, const float *sin, int T, int nh, int Dh, float sign, size_t total) {
    int half = Dh / 2;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(e % half);
        size_t row = e / half;                 /* (b, t, h) */
        int t = (int)((row / nh) % T);
        float c = cos[(size_t)t * half + i], s = sign * sin[(size_t)t * half + i];
        float *x1 = x + row * Dh + i, *x2 = x1 + half;
        float a = *x1, b = *x2;
        *x1 = a * c - b * s;
        *x2 = b * c + a * s;
    }
}

extern "C" void bpt_cu_rope_fwd(float *x, const float *cos, const float *sin, int B, int T, int nh, int Dh) {
    size_t total = (size_t)B * T * nh * (Dh / 2);
    if (!total) return;
    rope_k<<<blocks(total, 256), 256, 0, g.stream>>>(x, cos, sin, T, nh, Dh, 1.0f, total);
    LAUNCH_CHECK();
}
extern "C" void bpt_cu_rope_bwd(float *dx, const float *cos, const float *sin, int B, int T, int nh, int Dh) {
    size_t total = (size_t)B * T * nh * (Dh / 2);
    if (!total) return;
    rope_k<<<blocks(total, 256), 256, 0, g.stream>>>(dx, cos, sin, T, nh, Dh, -1.0f, total);
    LAUNCH_CHECK();
}

/* ----------------------------------------------------------------- SwiGLU -- */

__global__ void swiglu_fwd_k(float *h, const float *g_, const float *u, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = g_[i], sig = 1.0f / (1.0f + expf(-x));
        h[i] = x * sig * u[i];
    }
}
__global__ void swiglu_bwd_k(float *dg, float *du, const float *dh, const float *g_, const float *u, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = g_[i], sig = 1.0f / (1.0f + expf(-x)), d = dh[i];
        dg[i] = d * u[i] * sig * (1.0f + x * (1.0f - sig));
        du[i] = d * x * sig;
    }
}
extern "C" void bpt_cu_swiglu_fwd(float *h, const float *g_, const float *u, size_t n) {
    if (!n) return;
    swiglu_fwd_k<<<blocks(n, 256), 256, 0, g.stream>>>(h, g_, u, n);
    LAUNCH_CHECK();
}
extern "C" void bpt_cu_swiglu_bwd(float *dg, float *du, const float *dh, const float *g_, const float *u, size_t n) {
    if (!n) return;
    swiglu_bwd_k<<<blocks(n, 256), 256, 0, g.stream>>>(dg, du, dh, g_, u, n);
    LAUNCH_CHECK();
}

/* -------------------------------------------------------------- embedding -- */

__global__ void embed_fwd_k(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V) {
    size_t total = (size_t)N * D;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int n = (int)(e / D), d = (int)(e % D), t = tok[n] - v0;
        out[e] = (t >= 0 && t < V) ? wte[(size_t)t * D + d] : 0.0f;
    }
}
extern "C" void bpt_cu_embed_fwd(float *out, const int32_t *tok, const float *wte, int N, int D, int v0, int V) {
    size_t total = (size_t)N * D;
    if (!total) return;
    embed_fwd_k<<<blocks(total, 256), 256, 0, g.stream>>>(out, tok, wte, N, D, v0, V);
    LAUNCH_CHECK();
}

/* Backward: dwte[tok[n] - v0] += dout[n], every row's additions in token order, so the
 * result equals the CPU backend's bit for bit. A chunk of tokens at a time (the chunks
 * in token order) is sorted by (row, position) with CUB's stable radix sort; then one
 * block per run of equal rows adds that run's dout rows in order, threads over D. The
 * sort's buffers live in the GEMM workspace (the stream orders them after any GEMM). */
__global__ void embed_keys_k(uint32_t *key, uint32_t *pos, const int32_t *tok, int n0, int n, int v0, int V) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int t = tok[n0 + i] - v0;
    key[i] = (t >= 0 && t < V) ? (uint32_t)t : (uint32_t)V;   /* V: not on this rank */
    pos[i] = (uint32_t)(n0 + i);
}

__global__ void embed_runs_k(float *dwte, const float *dout, const uint32_t *key, const uint32_t *pos,
                             int n, int D, int V) {
    int i = blockIdx.x;
    uint32_t row = key[i];
    if (row == (uint32_t)V || (i > 0 && key[i - 1] == row)) return;   /* one block per run */
    __shared__ int end;   /* where the run ends, found once per block */
    if (threadIdx.x == 0) {
        int e = i + 1;
        while (e < n && key[e] == row) e++;
        end = e;
    }
    __syncthreads();
    int d = blockIdx.y * blockDim.x + threadIdx.x;   /* a run's columns over gridDim.y blocks */
    if (d >= D) return;
    float *w = dwte + (size_t)row * D;
    float acc = w[d];
    for (int j = i; j < end; j++) acc += dout[(size_t)pos[j] * D + d];
    w[d] = acc;
}

static size_t align_up(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

static int embed_chunk_max = 0;   /* tokens per sort; 0: as many as the workspace holds */
extern "C" void bpt_cu_set_embed_chunk(int tokens) { embed_chunk_max = tokens; }

/* Bytes of CUB's scratch for sorting n pairs of (key, pos) on `bits` key bits. */
static size_t sort_temp_bytes(int n, int bits) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint32_t *)nullptr, (uint32_t *)nullptr,
                                               (const uint32_t *)nullptr, (uint32_t *)nullptr, n, 0, bits, g.stream));
    return bytes;
}

extern "C" void bpt_cu_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int D, int v0, int V) {
    if (N <= 0 || D <= 0) return;
    int bits = 1;
    while (bits < 32 && ((uint64_t)1 << bits) <= (uint64_t)V) bits++;   /* keys 0..V */
    /* the largest chunk whose four key/position arrays and sort scratch fit the workspace */
    int chunk = embed_chunk_max > 0 && embed_chunk_max < N ? embed_chunk_max : N;
    size_t tb;
    for (;;) {
        tb = sort_temp_bytes(chunk, bits);
        if (4 * align_up((size_t)chunk * 4) + tb <= WS_GEMM || chunk == 1) break;
        chunk /= 2;
    }
    char *ws = (char *)ws_gemm();
    size_t a = align_up((size_t)chunk * 4);
    uint32_t *key = (uint32_t *)ws, *key2 = (uint32_t *)(ws + a);
    uint32_t *pos = (uint32_t *)(ws + 2 * a), *pos2 = (uint32_t *)(ws + 3 * a);
    void *tmp = ws + 4 * a;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int n = N - n0 < chunk ? N - n0 : chunk;
        embed_keys_k<<<blocks(n, 256), 256, 0, g.stream>>>(key, pos, tok, n0, n, v0, V);
        LAUNCH_CHECK();
        CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, tb, key, key2, pos, pos2, n, 0, bits, g.stream));
        embed_runs_k<<<dim3((unsigned)n, (unsigned)((D + 127) / 128)), 128, 0, g.stream>>>(dwte, dout, key2, pos2,
                                                                                          n, D, V);
        LAUNCH_CHECK();
    }
}

/* ---------------------------------------------------------- cross-entropy -- */

/* Per-row results go to the workspace partials (nll at [n], hit at [rows + n]) and
 * one block adds them in row order to out: the same sum whatever the launch. */
#define XENT_ROWS ((int)(WS_PART / (2 * sizeof(double))))

__global__ void sum_rows_k(double *out, const double *part, int rows) {
    __shared__ double sh[32];
    double a = 0.0, b = 0.0;
    for (int n = threadIdx.x; n < rows; n += blockDim.x) { a += part[n]; b += part[rows + n]; }
    a = block_sum(a, sh);
    b = block_sum(b, sh);
    if (threadIdx.x == 0) { out[0] += a; out[1] += b; }
}

__global__ void xent_fused_k(float *logits, double *part, const int32_t *targets, const float *mask,
                             int rows, int V, float scale) {
    __shared__ double shd[32];
    __shared__ float shv[32];
    __shared__ int shi[32];
    int n = blockIdx.x;
    float *x = logits + (size_t)n * V;
    float mk = mask ? mask[n] : 1.0f;
    int tgt = targets[n];
    if (mk == 0.0f) {
        for (int i = threadIdx.x; i < V; i += blockDim.x) x[i] = 0.0f;
        if (threadIdx.x == 0) { part[n] = 0.0; part[rows + n] = 0.0; }
        return;
    }
    float mx = -INFINITY;
    int am = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) argmax_merge(mx, am, x[i], i);
    block_argmax(mx, am, shv, shi);
    if (am == 0x7fffffff) am = V - 1;   /* a row of NaN: the CPU's answer */
    double s = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += (double)expf(x[i] - mx);
    s = block_sum(s, shd);
    int valid = tgt >= 0 && tgt < V;
    float xt = valid ? x[tgt] : 0.0f;   /* no target logit: nll = lse, as over tp */
    __syncthreads();   /* x[tgt] read by all before it is overwritten */
    if (threadIdx.x == 0) {
        part[n] = (double)mk * (mx + log(s) - xt);
        part[rows + n] = (double)mk * (am == tgt);
    }
    float c = (float)(scale * mk / s);
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = expf(x[i] - mx) * c;
        x[i] = (valid && i == tgt) ? v - scale * mk : v;
    }
}

extern "C" void bpt_cu_xent_fwd_bwd(float *logits, double *out, const int32_t *targets, const float *mask,
                                    int N, int V, float scale) {
    for (int r0 = 0; r0 < N; r0 += XENT_ROWS) {
        int rows = N - r0 < XENT_ROWS ? N - r0 : XENT_ROWS;
        xent_fused_k<<<rows, ROW_THREADS, 0, g.stream>>>(logits + (size_t)r0 * V, ws_part(), targets + r0,
                                                          mask ? mask + r0 : nullptr, rows, V, scale);
        LAUNCH_CHECK();
        sum_rows_k<<<1, 1024, 0, g.stream>>>(out, ws_part(), rows);
        LAUNCH_CHECK();
    }
}

__global__ void xent_partial_k(const float *logits, const int32_t *targets, int V, int v0,
                               float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx) {
    __shared__ float shv[32];
    __shared__ int shi[32];
    int n = blockIdx.x;
    const float *x = logits + (size_t)n * V;
    float mx = -INFINITY;
    int am = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) argmax_merge(mx, am, x[i], i);
    block_argmax(mx, am, shv, shi);
    if (threadIdx.x == 0) {
        int t = targets[n] - v0;
        rmax[n] = mx;
        amax_val[n] = mx;
        amax_idx[n] = v0 + (am == 0x7fffffff ? 0 : am);
        tlogit[n] = (t >= 0 && t < V) ? x[t] : 0.0f;
    }
}
extern "C" void bpt_cu_xent_partial(const float *logits, const int32_t *targets, int N, int V, int v0,
                                    float *rmax, float *tlogit, float *amax_val, int32_t *amax_idx) {
    if (N <= 0) return;
    xent_partial_k<<<N, ROW_THREADS, 0, g.stream>>>(logits, targets, V, v0, rmax, tlogit, amax_val, amax_idx);
    LAUNCH_CHECK();
}

__global__ void xent_sumexp_k(const float *logits, const float *rmax, int V, float *sumexp) {
    __shared__ double sh[32];
    int n = blockIdx.x;
    const float *x = logits + (size_t)n * V;
    double s = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)x[i] - rmax[n]);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) sumexp[n] = (float)s;
}
extern "C" void bpt_cu_xent_sumexp(const float *logits, const float *rmax, int N, int V, float *sumexp) {
    if (N <= 0) return;
    xent_sumexp_k<<<N, ROW_THREADS, 0, g.stream>>>(logits, rmax, V, sumexp);
    LAUNCH_CHECK();
}

__global__ void xent_finish_k(float *logits, double *part, const int32_t *targets, const float *mask,
                              const float *rmax, const float *sumexp, const float *tlogit,
                              const int32_t *amax_idx, int rows, int V, int v0, float scale) {
    int n = blockIdx.x;
    float *x = logits + (size_t)n * V;
    float mk = mask ? mask[n] : 1.0f;
    if (mk == 0.0f) {
        for (int i = threadIdx.x; i < V; i += blockDim.x) x[i] = 0.0f;
        if (threadIdx.x == 0) { part[n] = 0.0; part[rows + n] = 0.0; }
        return;
    }
    if (threadIdx.x == 0) {
        part[n] = (double)mk * (log((double)sumexp[n]) + rmax[n] - tlogit[n]);
        part[rows + n] = (double)mk * (amax_idx[n] == targets[n]);
    }
    float c = scale * mk / sumexp[n];
    int t = targets[n] - v0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = c * expf(x[i] - rmax[n]);
        x[i] = i == t ? v - scale * mk : v;
    }
}
extern "C" void bpt_cu_xent_finish(float *logits, double *out, const int32_t *targets, const float *mask,
                                   const float *rmax, const float *sumexp, const float *tlogit,
                                   const int32_t *amax_idx, int N, int V, int v0, float scale) {
    for (int r0 = 0; r0 < N; r0 += XENT_ROWS) {
        int rows = N - r0 < XENT_ROWS ? N - r0 : XENT_ROWS;
        xent_finish_k<<<rows, ROW_THREADS, 0, g.stream>>>(logits + (size_t)r0 * V, ws_part(), targets + r0,
                                                           mask ? mask + r0 : nullptr, rmax + r0, sumexp + r0,
                                                           tlogit + r0, amax_idx + r0, rows, V, v0, scale);
        LAUNCH_CHECK();
        sum_rows_k<<<1, 1024, 0, g.stream>>>(out, ws_part(), rows);
        LAUNCH_CHECK();
    }
}

/* ----------------------------------------------------- optimizer helpers -- */

__global__ void adamw_k(float *p, const float *g_, float *m, float *v, size_t n, float lr, float b1, float b2,
                        float eps, float wd, float bc1, float bc2, float gscale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bpt_adamw_elem(&p[i], g_[i], &m[i], &v[i], lr, b1, b2, eps, wd, bc1, bc2, gscale);
}
extern "C" void bpt_cu_adamw(float *p, const float *g_, float *m, float *v, size_t n, float lr, float b1,
                             float b2, float eps, float wd, float bc1, float bc2, float gscale) {
    if (!n) return;
    adamw_k<<<blocks(n, 256), 256, 0, g.stream>>>(p, g_, m, v, n, lr, b1, b2, eps, wd, bc1, bc2, gscale);
    LAUNCH_CHECK();
}

#define SUMSQ_BLOCKS 1024
__global__ void sumsq_part_k(double *part, const float *x, size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void sumsq_final_k(double *out, const double *part, int nb) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < nb; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = s;
}
extern "C" void bpt_cu_sumsq(double *out, const float *x, size_t n) {
    sumsq_part_k<<<SUMSQ_BLOCKS, 256, 0, g.stream>>>(ws_part(), x, n);
    LAUNCH_CHECK();
    sumsq_final_k<<<1, 1024, 0, g.stream>>>(out, ws_part(), SUMSQ_BLOCKS);
    LAUNCH_CHECK();
}

__global__ void axpy_k(float *y, float a, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}
extern "C" void bpt_cu_axpy(float *y, float a, const float *x, size_t n) {
    if (!n) return;
    axpy_k<<<blocks(n, 256), 256, 0, g.stream>>>(y, a, x, n);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------------ bf16 store -- */

__global__ void to_bf16_k(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
}
__global__ void from_bf16_k(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(__ushort_as_bfloat16(src[i]));
}
extern "C" void bpt_cu_to_bf16(uint16_t *dst, const float *src, size_t n) {
    if (!n) return;
    to_bf16_k<<<blocks(n, 256), 256, 0, g.stream>>>(dst, src, n);
    LAUNCH_CHECK();
}
extern "C" void bpt_cu_from_bf16(float *dst, const uint16_t *src, size_t n) {
    if (!n) return;
    from_bf16_k<<<blocks(n, 256), 256, 0, g.stream>>>(dst, src, n);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------- comm layer help -- */

__global__ void maxloc_mark_k(int32_t *idx, const float *mine, const float *gmax, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (mine[i] != gmax[i]) idx[i] = 0x7fffffff;
}
extern "C" void bpt_cu_maxloc_mark(int32_t *idx, const float *mine, const float *gmax, size_t n) {
    if (!n) return;
    maxloc_mark_k<<<blocks(n, 256), 256, 0, g.stream>>>(idx, mine, gmax, n);
    LAUNCH_CHECK();
}
