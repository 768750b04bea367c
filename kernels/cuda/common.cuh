/* common.cuh — shared by the CUDA backend's translation units: error checks, the
 * device state, launch helpers and deterministic block reductions. */
#ifndef BPT_CUDA_COMMON_CUH
#define BPT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stddef.h>

#include "kernels/cuda/cuda.h"

extern "C" void bpt_panic(const char *file, int line, const char *fmt, ...) __attribute__((noreturn));

/* A failed CUDA call is an internal error on this rank: it names the call and aborts
 * (bpt_panic calls MPI_Abort, so the other ranks do not hang). */
#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            bpt_panic(__FILE__, __LINE__, "CUDA: %s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

namespace bptcu {

/* The rank's device state (cuda_runtime.cu). */
struct state {
    int device;
    cudaStream_t stream;
    char *ws;            /* the workspace from the arena */
    size_t ws_bytes;
};
extern state g;

/* Workspace layout: [0, GEMM) cuBLASLt scratch, then reduction partials, then the
 * comm layer's scratch. */
constexpr size_t WS_GEMM = (size_t)32 << 20;
constexpr size_t WS_PART = (size_t)12 << 20;
constexpr size_t WS_COMM = BPT_CUDA_WORKSPACE_COMM;
static_assert(WS_GEMM + WS_PART + WS_COMM == BPT_CUDA_WORKSPACE, "workspace layout");
void *ws_gemm();
double *ws_part();     /* WS_PART bytes of doubles */
void *ws_comm();

inline unsigned blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 65535u * 32u ? b : 65535u * 32u);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every
 * thread. The order is fixed by the block size, so results are reproducible.
 * sh: 32 elements of shared memory. */
template <typename T>
__device__ T block_sum(T v, T *sh) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        T t = l < nw ? sh[l] : (T)0;
        t = warp_sum(t);
        if (l == 0) sh[0] = t;
    }
    __syncthreads();
    return sh[0];
}

/* (max, first index of the max) over the block; ties keep the lowest index. */
__device__ __forceinline__ void argmax_merge(float &v, int &i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
}
__device__ inline void block_argmax(float &v, int &i, float *shv, int *shi) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int o = 16; o; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        argmax_merge(v, i, ov, oi);
    }
    __syncthreads();
    if (l == 0) { shv[w] = v; shi[w] = i; }
    __syncthreads();
    if (w == 0) {
        float tv = l < nw ? shv[l] : -INFINITY;
        int ti = l < nw ? shi[l] : 0x7fffffff;
        for (int o = 16; o; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, tv, o);
            int oi = __shfl_xor_sync(0xffffffffu, ti, o);
            argmax_merge(tv, ti, ov, oi);
        }
        if (l == 0) { shv[0] = tv; shi[0] = ti; }
    }
    __syncthreads();
    v = shv[0];
    i = shi[0];
}

}  // namespace bptcu

#endif
