"""compare_torch.py — bpt against PyTorch on the same model and the same cores, side by
side (bench/compare_torch.sh runs it in the benchmark's virtual environment).

For each T, --rounds rounds, each running bpt (bench/bench_throughput --json; --bpt
adds bpt runs with other remat settings, BPT_RUNS) and every PyTorch variant of
bench/torch_peer.py once, in that order (A B C D E, A B C D E, ...),
each in its own process, so a slow phase of the machine falls on all of them alike. Per
run: tokens/s (best step), CPU seconds per step, and the process's peak RSS (wait4).
Prints a Markdown table of the medians over rounds, with bpt's tokens/s over each
peer's and the peer's peak RSS over bpt's, and the machine (CPU model, load average).
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
VARIANTS = ["eager", "ckpt", "ckpt_chunked", "compile"]
# bpt settings on top of bench_throughput's (nothing_saveable everywhere): "bpt" as it is;
# "bpt_attn_dots" keeps the attention's matmul outputs (q, k, v, o and lse) for the
# backward (remat_attention: dots_saveable), which then recomputes no attention forward
BPT_RUNS = {"bpt": [], "bpt_attn_dots": ["--llama.remat_attention=dots_saveable"]}


def measure(cmd, env):
    """Run cmd (stderr discarded); its last JSON line, with its peak RSS from wait4."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(wfd, 1)
        os.close(rfd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execvpe(cmd[0], cmd, env)
    os.close(wfd)
    out = b""
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        out += chunk
    os.close(rfd)
    _, status, ru = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("compare_torch: %s failed (exit %d); run it by hand to see why" % (" ".join(cmd), code))
    rows = [json.loads(l) for l in out.decode().splitlines() if l.startswith("{")]
    if not rows:
        sys.exit("compare_torch: %s printed no result" % " ".join(cmd))
    row = rows[-1]
    row["peak_rss_bytes"] = ru.ru_maxrss * 1024
    return row


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t", default="2048,8192,16384", help="sequence lengths, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", default="3,2,1", help="timed steps per T (one entry, or one per T)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--bpt", default="bpt", help="bpt runs, comma-separated: " + ", ".join(BPT_RUNS))
    a = ap.parse_args()
    Ts = [int(x) for x in a.t.split(",")]
    steps = [int(x) for x in a.steps.split(",")]
    steps = (steps + [steps[-1]] * len(Ts))[:len(Ts)]
    variants = [v for v in a.variants.split(",") if v]
    bpts = [b for b in a.bpt.split(",") if b]
    for b in bpts + variants:
        if b not in BPT_RUNS and b not in VARIANTS:
            sys.exit("compare_torch: unknown run %s (bpt runs: %s; PyTorch variants: %s)" % (
                b, ", ".join(BPT_RUNS), ", ".join(VARIANTS)))
    if "bpt" not in bpts:
        bpts.insert(0, "bpt")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS="1")
    bpt = os.path.join(TOP, "bench", "bench_throughput")
    if not os.access(bpt, os.X_OK):
        sys.exit("compare_torch: %s not built (make bench/bench_throughput)" % bpt)
    print("%s, %d threads per run, load average at start %s" % (cpu_model(), a.threads,
                                                                  " ".join("%.2f" % x for x in os.getloadavg())))
    print()
    others = ["%s tokens/s ÷ this" % b for b in bpts[1:]]
    print("| T | run | tokens/s | step s | CPU s/step | peak RSS | bpt tokens/s ÷ this | this RSS ÷ bpt |%s" % (
        "".join(" %s |" % o for o in others)))
    print("|---:|---|---:|---:|---:|---:|---:|---:|%s" % ("---:|" * len(others)))
    for T, n in zip(Ts, steps):
        res = {b: [] for b in bpts}
        res.update({v: [] for v in variants})
        for _ in range(a.rounds):
            for b in bpts:
                res[b].append(measure([bpt, "--json", "--steps", str(n), "--t", str(T)] + BPT_RUNS[b], env))
            for v in variants:
                res[v].append(measure([sys.executable, os.path.join(HERE, "torch_peer.py"), "--variant", v,
                                       "--t", str(T), "--steps", str(n), "--threads", str(a.threads)], env))
        med = {k: {f: statistics.median(r[f] for r in rows) for f in ("tokens_per_s", "step_s", "cpu_s_per_step",
                                                                       "peak_rss_bytes")}
               for k, rows in res.items()}
        b = med["bpt"]
        for k in bpts + variants:
            m = med[k]
            name = k if k in BPT_RUNS else "PyTorch " + k
            ratio = "" if k == "bpt" else "%.2f" % (b["tokens_per_s"] / m["tokens_per_s"])
            rss = "" if k == "bpt" else "%.2f" % (m["peak_rss_bytes"] / b["peak_rss_bytes"])
            more = "".join(" %s |" % ("" if k in BPT_RUNS else "%.2f" % (med[o]["tokens_per_s"] / m["tokens_per_s"]))
                           for o in bpts[1:])
            print("| %d | %s | %.0f | %.2f | %.2f | %.2f GiB | %s | %s |%s" % (
                T, name, m["tokens_per_s"], m["step_s"], m["cpu_s_per_step"], m["peak_rss_bytes"] / 2**30, ratio, rss,
                more))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
