"""compare_attention.py — bpt's blockwise attention kernels against PyTorch's CPU flash
SDPA on the same shapes and cores, side by side (bench/compare_torch.sh attention runs it
in the benchmark's virtual environment).

For each Dh and T, --rounds rounds of bench/bench_attention --json then
bench/torch_attention.py (A B A B ...), each in its own process with the same threads,
so a slow phase of the machine falls on both. Prints a Markdown table of the medians:
forward and forward + backward milliseconds of each, bpt's speed over PyTorch's, and
bpt's GFLOP/s as a share of the sgemm 1024^3 peak bench_attention measured before it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare_torch import cpu_model  # noqa: E402


def run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0:
        sys.exit("compare_attention: %s failed (exit %d); run it by hand to see why" % (" ".join(cmd), p.returncode))
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if not rows:
        sys.exit("compare_attention: %s printed no result" % " ".join(cmd))
    return rows[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t", default="2048,8192,32768")
    ap.add_argument("--dh", default="64,128")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS="1")
    bpt = os.path.join(os.path.dirname(HERE), "bench", "bench_attention")
    if not os.access(bpt, os.X_OK):
        sys.exit("compare_attention: %s not built (make bench/bench_attention)" % bpt)
    print("%s, %d threads per run, %d heads, causal, batch 1, fp32, load average at start %s" % (
        cpu_model(), a.threads, a.heads, " ".join("%.2f" % x for x in os.getloadavg())))
    print()
    print("| T | Dh | bpt fwd ms | PyTorch fwd ms | bpt ÷ PyTorch speed, fwd | bpt fwd+bwd ms | PyTorch fwd+bwd ms "
          "| bpt ÷ PyTorch speed, fwd+bwd | bpt fwd, fwd+bwd % of sgemm peak |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for Dh in [int(x) for x in a.dh.split(",") if x]:
        for T in [int(x) for x in a.t.split(",") if x]:
            shape = ["--t", str(T), "--dh", str(Dh), "--heads", str(a.heads), "--reps", str(a.reps)]
            res = {"bpt": [], "torch": []}
            for _ in range(a.rounds):
                res["bpt"].append(run([bpt, "--device", "cpu", "--json"] + shape, env))
                res["torch"].append(run([sys.executable, os.path.join(HERE, "torch_attention.py"),
                                         "--threads", str(a.threads)] + shape, env))
            med = {k: {f: statistics.median(r[f] for r in rows) for f in ("fwd_s", "fwdbwd_s")}
                   for k, rows in res.items()}
            peak = statistics.median(r["peak_flops"] for r in res["bpt"])
            b, t = med["bpt"], med["torch"]
            ff = res["bpt"][0]["fwd_flops"]
            print("| %d | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.0f%%, %.0f%% |" % (
                T, Dh, 1e3 * b["fwd_s"], 1e3 * t["fwd_s"], t["fwd_s"] / b["fwd_s"], 1e3 * b["fwdbwd_s"],
                1e3 * t["fwdbwd_s"], t["fwdbwd_s"] / b["fwdbwd_s"], 100 * ff / b["fwd_s"] / peak,
                100 * 3.5 * ff / b["fwdbwd_s"] / peak))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
