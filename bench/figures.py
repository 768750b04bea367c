#!/usr/bin/env python3
"""figures.py — the benchmarks' tables drawn as PNG (matplotlib, no display needed).

  bench/figures.py memory TABLES.md OUT.png   bench_memory's output: peak memory vs T for
                                              vanilla / memeff / bpt (log-log), the budget
                                              line and each mode's largest T in it
  bench/figures.py plan TABLES.md OUT.png     plan_tables.sh's output: peak per rank vs T,
                                              one line per model and mesh
  bench/figures.py mesh TABLES.md OUT.png     bench_mesh.sh's table: tokens/s and peak
                                              memory per rank against the mesh
  bench/figures.py metrics OUT.png RUN...     metrics.jsonl of one or more runs (a file or
                                              a run directory): loss (and eval loss) vs step

Each reads the Markdown tables the benchmark printed (a file of its output, or
docs/benchmarks.md itself: the first table with the right header is used).
`make figures` redraws docs/figures/ from the benchmark outputs kept in bench/results/.
"""
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def size(cell):
    """'1.51 GiB' -> bytes; '-' or '' -> None."""
    m = re.match(r"^\s*([0-9.]+)\s*([KMGT]?i?B)\s*$", cell)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def tables(path):
    """Every Markdown table of the file: (header cells, rows of cells), in order."""
    out, cur = [], None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].split("|")]
            if cur is None:
                cur = (cells, [])
            elif not all(re.match(r"^:?-+:?$", c) for c in cells):
                cur[1].append(cells)
        elif cur is not None:
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def find(path, first_cols):
    """Tables whose header starts with first_cols."""
    found = [t for t in tables(path) if [c.lower() for c in t[0][: len(first_cols)]] == first_cols]
    if not found:
        sys.exit(f"figures.py: {path}: no table with columns {first_cols}")
    return found


def save(fig, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def memory(src, out, budget_gib=4.0):
    head, rows = find(src, ["t", "vanilla", "memeff", "bpt"])[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ts = [int(r[0]) for r in rows]
    for j, mode in enumerate(("vanilla", "memeff", "bpt"), start=1):
        pts = [(t, size(r[j])) for t, r in zip(ts, rows) if size(r[j])]
        ax.loglog([p[0] for p in pts], [p[1] / 2**30 for p in pts], "o-", label=mode, base=2)
    ax.axhline(budget_gib, color="gray", ls="--", lw=1)
    ax.text(ts[0], budget_gib * 1.08, f"{budget_gib:g} GiB", color="gray")
    largest = find(src, ["mode", "largest t"])[0][1]
    for r in largest:   # each mode's largest T within the budget
        ax.plot([int(r[1])], [budget_gib], "k|", ms=14)
        ax.annotate(f"{r[0]}: {int(r[1])}", (int(r[1]), budget_gib), textcoords="offset points",
                    xytext=(4, -14), fontsize=8)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("peak memory per step (GiB)")
    ax.set_title("peak memory vs sequence length (bench512, batch 1)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, out)


def plan(src, out):
    head, rows = find(src, ["model", "t", "ranks", "mesh"])[0]
    col = [c.lower() for c in head].index("peak per rank")
    lines = {}
    for r in rows:
        lines.setdefault(f"{r[0]} on {r[2]} ranks ({r[3]})", []).append((int(r[1]), size(r[col])))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in lines.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] / 2**30 for p in pts], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("planned peak per rank (GiB)")
    ax.set_title("bpt plan: per-rank memory of one training step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)


def mesh(src, out):
    head, rows = find(src, ["ranks", "mesh"])[0]
    h = [c.lower() for c in head]
    tps, mem = h.index("tokens/s"), h.index("peak arena per rank")
    labels = [f"{r[1]}\n({r[0]})" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(range(len(rows)), [float(r[tps]) for r in rows], color="tab:blue")
    ax.set_ylabel("tokens/s", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(range(len(rows)), [size(r[mem]) / 2**20 for r in rows], "o-", color="tab:red")
    ax2.set_ylabel("peak arena per rank (MiB)", color="tab:red")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_title("the mesh on one machine (ranks oversubscribe the cores)")
    save(fig, out)


def metrics(out, runs):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        path = os.path.join(run, "metrics.jsonl") if os.path.isdir(run) else run
        rows = {}
        for line in open(path, encoding="utf-8"):   # a resumed run appends: the last row of a step wins
            r = json.loads(line)
            rows[r["step"]] = r
        steps = sorted(rows)
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
        ax.plot(steps, [rows[s]["loss"] for s in steps], label=f"{name} loss")
        ev = [s for s in steps if "eval_loss" in rows[s]]
        if ev:
            ax.plot(ev, [rows[s]["eval_loss"] for s in ev], "--", label=f"{name} eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, out)


def main(argv):
    try:
        run(argv)
    except OSError as e:   # a missing or unreadable input: one line
        sys.exit(f"figures.py: {e.filename}: {e.strerror}")


def run(argv):
    if len(argv) >= 4 and argv[1] in ("memory", "plan", "mesh"):
        {"memory": memory, "plan": plan, "mesh": mesh}[argv[1]](argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "metrics":
        metrics(argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
