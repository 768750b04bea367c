/* runtime.cu — device selection, memory, the workspace and GEMMs through cuBLASLt. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

namespace bptcu {
state g = {-1, nullptr, nullptr, 0};

void *ws_gemm() { return g.ws; }
double *ws_part() { return (double *)(g.ws + WS_GEMM); }
void *ws_comm() { return g.ws + WS_GEMM + WS_PART; }
}  // namespace bptcu
using namespace bptcu;

static cublasLtHandle_t lt;
static char device_name[160];

extern "C" int bpt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
}

extern "C" int bpt_cuda_init(int local_rank, char *err, size_t errlen) {
    if (g.stream) return 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(err, errlen, "device: cuda: no usable GPU on this node (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return -1;
    }
    g.device = local_rank % n;
    if ((e = cudaSetDevice(g.device)) != cudaSuccess) {
        snprintf(err, errlen, "device: cuda: cannot select GPU %d: %s", g.device, cudaGetErrorString(e));
        return -1;
    }
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, g.device));
    if (p.major < 8) {
        snprintf(err, errlen, "device: cuda: GPU %d (%s, sm_%d%d) is older than sm_80; bf16 tensor cores are needed",
                 g.device, p.name, p.major, p.minor);
        return -1;
    }
    snprintf(device_name, sizeof device_name, "%s (GPU %d of %d, sm_%d%d, %.1f GiB)", p.name, g.device, n,
             p.major, p.minor, (double)p.totalGlobalMem / (1 << 30));
    CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
    if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "device: cuda: cublasLtCreate failed on GPU %d", g.device);
        cudaStreamDestroy(g.stream);
        g.stream = nullptr;   /* not initialised: a second call tries again */
        return -1;
    }
    return 0;
}

extern "C" const char *bpt_cuda_device_name(void) { return device_name; }
extern "C" void *bpt_cuda_stream(void) { return (void *)g.stream; }
extern "C" void *bpt_cuda_comm_scratch(void) { return ws_comm(); }

static void need_init(void) {
    if (!g.stream) bpt_panic(__FILE__, __LINE__, "CUDA backend used before bpt_cuda_init");
}

/* ------------------------------------------------------------------ memory -- */

extern "C" void *bpt_cu_alloc(size_t bytes) {
    need_init();
    void *p = nullptr;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) { cudaGetLastError(); return nullptr; }
    return p;
}
extern "C" void bpt_cu_free(void *p, size_t bytes) {
    if (p) { CUDA_CHECK(cudaStreamSynchronize(g.stream)); CUDA_CHECK(cudaFree(p)); }
}
/* From pageable host memory the call returns once the source is staged, so the
 * caller may reuse it; the copy itself is ordered on the compute stream. From pinned
 * memory (registered by someone else, an MPI library say) the copy is truly
 * asynchronous, so it is waited for: the promise to the caller holds either way. */
extern "C" void bpt_cu_copy_h2d(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g.stream));
    cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, src) != cudaSuccess) cudaGetLastError();
    else if (at.type == cudaMemoryTypeHost) CUDA_CHECK(cudaStreamSynchronize(g.stream));
}
extern "C" void bpt_cu_copy_d2h(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g.stream));
    CUDA_CHECK(cudaStreamSynchronize(g.stream));
}
extern "C" void bpt_cu_copy_d2d(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g.stream));
}
extern "C" void bpt_cu_zero(void *dst, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, g.stream));
}
extern "C" void bpt_cu_sync(void) { CUDA_CHECK(cudaStreamSynchronize(g.stream)); }

extern "C" void bpt_cu_set_workspace(void *p, size_t bytes) {
    if (bytes < BPT_CUDA_WORKSPACE)
        bpt_panic(__FILE__, __LINE__, "CUDA workspace of %zu bytes, need %zu", bytes, (size_t)BPT_CUDA_WORKSPACE);
    g.ws = (char *)p;
    g.ws_bytes = bytes;
}

/* ------------------------------------------------------------------- GEMM -- */

/* Row-major C (M,N) = op(A) op(B) is column-major C^T (N,M) = op(B)^T op(A)^T: one
 * column-major matmul with the operands swapped and the same transpose flags. Plans
 * (descriptors and the heuristic's algorithm) are cached per shape, strides and
 * pointer alignment. */
struct gemm_key {
    int ta, tb, M, N, K, lda, ldb, ldc, al[3];
};
struct gemm_plan {
    gemm_key key;
    int used;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};
#define GEMM_CACHE 512
static gemm_plan cache[GEMM_CACHE];

static int alignment(const void *p) {
    uintptr_t u = (uintptr_t)p;
    int al = 256;
    while (al > 4 && (u % (uintptr_t)al)) al >>= 1;
    return al;
}

static void lt_check(cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        bpt_panic(__FILE__, __LINE__, "cuBLASLt: %s failed (status %d)", what, (int)s);
}

/* The compute types tried in order: bf16 tensor cores first; should a library version
 * offer no algorithm for a shape, TF32 tensor cores, then plain fp32. */
static const cublasComputeType_t compute_types[] = {CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_COMPUTE_32F_FAST_TF32,
                                                    CUBLAS_COMPUTE_32F};

static void make_plan(gemm_plan *p, const gemm_key *k) {
    p->key = *k;
    cublasOperation_t opa = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;   /* A' = B */
    cublasOperation_t opb = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;   /* B' = A */
    /* stored shapes, column-major: A' is (N,K) or, transposed, (K,N); B' is (K,M) or (M,K) */
    lt_check(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_32F, k->tb ? k->K : k->N, k->tb ? k->N : k->K, k->ldb), "layout A");
    lt_check(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_32F, k->ta ? k->M : k->K, k->ta ? k->K : k->M, k->lda), "layout B");
    lt_check(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, k->N, k->M, k->ldc), "layout C");
    cublasLtMatmulPreference_t pref;
    lt_check(cublasLtMatmulPreferenceCreate(&pref), "PreferenceCreate");
    size_t ws = WS_GEMM;
    uint32_t ala = (uint32_t)k->al[1], alb = (uint32_t)k->al[0], alc = (uint32_t)k->al[2];
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "workspace");
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ala, sizeof ala), "align A");
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alb, sizeof alb), "align B");
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alc, sizeof alc), "align C");
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alc, sizeof alc), "align D");
    int nres = 0;
    for (size_t ct = 0; ct < sizeof compute_types / sizeof compute_types[0] && nres < 1; ct++) {
        lt_check(cublasLtMatmulDescCreate(&p->op, compute_types[ct], CUDA_R_32F), "MatmulDescCreate");
        lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "TRANSA");
        lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "TRANSB");
        cublasLtMatmulHeuristicResult_t res;
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &nres);
        if (st != CUBLAS_STATUS_SUCCESS) nres = 0;
        if (nres >= 1) { p->algo = res.algo; break; }
        cublasLtMatmulDescDestroy(p->op);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (nres < 1)
        bpt_panic(__FILE__, __LINE__, "cuBLASLt: no algorithm for gemm M=%d N=%d K=%d ta=%d tb=%d", k->M, k->N, k->K,
                  k->ta, k->tb);
    p->used = 1;
}

static void drop_plan(gemm_plan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->c);
    cublasLtMatmulDescDestroy(p->op);
    p->used = 0;
}

/* C (M rows of N, stride ldc) *= beta: a product with K = 0 */
__global__ void scale_k(float *C, int ldc, int M, int N, float beta) {
    size_t n = (size_t)M * N;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
        C[e / N * ldc + e % N] *= beta;
}

extern "C" void bpt_cu_gemm(int transA, int transB, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb,
                            float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {   /* C = beta C */
        if (beta == 0.0f) {
            CUDA_CHECK(cudaMemset2DAsync(C, (size_t)ldc * sizeof(float), 0, (size_t)N * sizeof(float), M, g.stream));
            return;
        }
        if (beta == 1.0f) return;
        size_t n = (size_t)M * N, nb = (n + 255) / 256;
        scale_k<<<(unsigned)(nb < 65536 ? nb : 65536), 256, 0, g.stream>>>(C, ldc, M, N, beta);
        LAUNCH_CHECK();
        return;
    }
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.ta = transA; k.tb = transB; k.M = M; k.N = N; k.K = K; k.lda = lda; k.ldb = ldb; k.ldc = ldc;
    k.al[0] = alignment(A); k.al[1] = alignment(B); k.al[2] = alignment(C);
    uint64_t h = 1469598103934665603ull;
    const unsigned char *kb = (const unsigned char *)&k;
    for (size_t i = 0; i < sizeof k; i++) h = (h ^ kb[i]) * 1099511628211ull;
    gemm_plan *p = nullptr, tmp;
    for (int probe = 0; probe < 8; probe++) {
        gemm_plan *c = &cache[(h + probe) % GEMM_CACHE];
        if (c->used && memcmp(&c->key, &k, sizeof k) == 0) { p = c; break; }
        if (!c->used) { make_plan(c, &k); p = c; break; }
    }
    int transient = p == nullptr;
    if (transient) { make_plan(&tmp, &k); p = &tmp; }
    lt_check(cublasLtMatmul(lt, p->op, &alpha, B, p->a, A, p->b, &beta, C, p->c, C, p->c, &p->algo,
                            ws_gemm(), WS_GEMM, g.stream), "Matmul");
    if (transient) drop_plan(&tmp);
}
