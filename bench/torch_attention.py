"""torch_attention.py — PyTorch's causal scaled_dot_product_attention on the CPU (its
flash kernel for fp32 on CPU), timed on the shapes of bench/bench_attention: batch 1,
H heads, T positions, head dim Dh, kv heads = heads, fp32, (B, H, T, Dh) contiguous (the
layout SDPA is fastest in). For each T and Dh: the best of --reps forward runs and of
--reps forward + backward runs after one warm-up, printed as one JSON line with the same
fields as `bench_attention --json` (bench/compare_attention.py reads both).
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t", default="2048,8192,32768")
    ap.add_argument("--dh", default="64,128")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    H = a.heads
    for Dh in [int(x) for x in a.dh.split(",") if x]:
        for T in [int(x) for x in a.t.split(",") if x]:
            q, k, v, do = (torch.randn(1, H, T, Dh) for _ in range(4))
            for x in (q, k, v):
                x.requires_grad_(True)
            best_f = best_fb = float("inf")
            for r in range(a.reps + 1):   # r == 0 warms up
                with torch.no_grad():
                    t0 = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    t1 = time.perf_counter()
                t2 = time.perf_counter()
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                o.backward(do)
                t3 = time.perf_counter()
                for x in (q, k, v):
                    x.grad = None
                if r:
                    best_f, best_fb = min(best_f, t1 - t0), min(best_fb, t3 - t2)
            ff = 4.0 * H * Dh * T * T / 2
            print(json.dumps({"impl": "torch", "device": "cpu", "T": T, "Dh": Dh, "heads": H, "fwd_s": best_f,
                              "fwdbwd_s": best_fb, "fwd_flops": ff, "fwdbwd_flops": 3.5 * ff,
                              "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
