/* backend.c — the CUDA backend's kernel table (the kernels are in *.cu). */
#include "kernels/kernels.h"
#include "kernels/cuda/cuda.h"

#include <cuda_runtime.h>
#include <string.h>

/* bf16 dense tensor-core peak: FLOP per clock per SM x SMs x clock, for the GPUs whose
 * figure is certain from the compute capability: sm_80 (A100, 2048) and sm_90
 * (H100/H200, 4096). Hopper's datasheet peak (989 TFLOP/s on the SXM parts) is quoted at
 * 1.83 GHz, below the 1.98 GHz boost the driver reports, so the clock is capped there:
 * MFU is then measured against the number vendors and other frameworks use. Elsewhere
 * the rate depends on the part (sm_86/89: 1024 on data-centre cards, 512 on GeForce),
 * so the peak is unknown (0) and `peak_flops` in the config supplies it. */
static double cuda_peak_flops(void) {
    int dev = 0, sms = 0, khz = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev);
    double per_sm = major == 9 && minor == 0 ? 4096.0 : major == 8 && minor == 0 ? 2048.0 : 0.0;
    double hz = khz * 1e3;
    if (major == 9 && hz > 1.83e9) hz = 1.83e9;
    return per_sm * sms * hz;
}

const bpt_kernels bpt_kernels_cuda = {
    .name = "cuda",
    .init = bpt_cuda_init,
    .workspace = BPT_CUDA_WORKSPACE,
    .set_workspace = bpt_cu_set_workspace,
    .peak_flops = cuda_peak_flops,
    .alloc = bpt_cu_alloc,
    .free = bpt_cu_free,
    .copy_h2d = bpt_cu_copy_h2d,
    .copy_d2h = bpt_cu_copy_d2h,
    .copy_d2d = bpt_cu_copy_d2d,
    .zero = bpt_cu_zero,
    .sync = bpt_cu_sync,
    .gemm = bpt_cu_gemm,
    .rmsnorm_fwd = bpt_cu_rmsnorm_fwd,
    .rmsnorm_bwd = bpt_cu_rmsnorm_bwd,
    .rope_fwd = bpt_cu_rope_fwd,
    .rope_bwd = bpt_cu_rope_bwd,
    .swiglu_fwd = bpt_cu_swiglu_fwd,
    .swiglu_bwd = bpt_cu_swiglu_bwd,
    .embed_fwd = bpt_cu_embed_fwd,
    .embed_bwd = bpt_cu_embed_bwd,
    .attn_fwd = bpt_cu_attn_fwd,
    .attn_bwd = bpt_cu_attn_bwd,
    .attn_fwd_seg = bpt_cu_attn_fwd_seg,
    .attn_bwd_seg = bpt_cu_attn_bwd_seg,
    .attn_vanilla_fwd = bpt_cu_attn_vanilla_fwd,
    .attn_vanilla_bwd = bpt_cu_attn_vanilla_bwd,
    .xent_fwd_bwd = bpt_cu_xent_fwd_bwd,
    .xent_partial = bpt_cu_xent_partial,
    .xent_sumexp = bpt_cu_xent_sumexp,
    .xent_finish = bpt_cu_xent_finish,
    .adamw = bpt_cu_adamw,
    .to_bf16 = bpt_cu_to_bf16,
    .from_bf16 = bpt_cu_from_bf16,
    .sumsq = bpt_cu_sumsq,
    .axpy = bpt_cu_axpy,
};
