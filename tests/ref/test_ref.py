#!/usr/bin/env python3
"""test_ref.py — bpt's loss, accuracy and every gradient against the PyTorch oracle.

For each case of a matrix of configurations (attention mode, chunk sizes, remat
policies, GQA, tied embeddings, rope_theta, eval mode) this writes random weights and a
random batch to HDF5, runs

    bpt_grad --params IN.h5 --batch BATCH.h5 --output OUT.h5 --mode grad|eval [overrides]

and compares OUT.h5 with llama_ref.py in float64:
    loss      relative error <= 1e-5
    accuracy  equal (positions whose top-2 logits are within fp32 noise may differ)
    gradients ||g - g_ref|| / ||g_ref|| <= 1e-4 for every tensor (the worst is printed)
Two more cases check that a wrong shape and a missing tensor in IN.h5 make bpt_grad
fail with a message naming the tensor.

Usage: test_ref.py [--bpt-grad PATH] [-k SUBSTRING] [--keep DIR] [--list] [-v]
Default binary: $BPT_BUILDDIR/tests/ref/bpt_grad (BPT_BUILDDIR defaults to the repo root).
Exit status 0 only if every selected case passes.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

LOSS_TOL = 1e-5
GRAD_TOL = 1e-4
TIE_GAP = 1e-5        # top-2 logit gap below which fp32 may legitimately pick the other id

# Model dimensions shared by every case: V, D, H, F, L, max_sequence_length.
V, D, H, F, L, MAXLEN = 67, 48, 4, 80, 2, 64


class Case:
    def __init__(self, name, mode="vanilla", chunks=(8, 8), KVH=4, tie=False, theta=10000.0,
                 eps=1e-6, remat=("", "", ""), run="grad", B=2, T=32, mlp_chunk=8,
                 loss_chunk=16, seed=0, kind="compare", ties=False):
        self.name, self.mode, self.chunks, self.KVH, self.tie = name, mode, chunks, KVH, tie
        self.theta, self.eps, self.remat, self.run = theta, eps, remat, run
        self.B, self.T, self.mlp_chunk, self.loss_chunk = B, T, mlp_chunk, loss_chunk
        self.seed, self.kind, self.ties = seed, kind, ties

    def cfg(self):
        return llama_ref.Config(V=V, D=D, H=H, F=F, L=L, KVH=self.KVH, eps=self.eps,
                                theta=self.theta, tie=self.tie)

    def overrides(self):
        scan = {"vanilla": (0, 0, 0), "memeff": (1, 0, 0), "bpt": (1, 1, 1)}[self.mode]
        tf = lambda b: "true" if b else "false"  # noqa: E731
        o = {
            "vocab_size": V, "hidden_size": D, "intermediate_size": F,
            "num_hidden_layers": L, "num_attention_heads": H,
            "num_key_value_heads": self.KVH, "max_sequence_length": MAXLEN,
            "rms_norm_eps": repr(self.eps), "rope_theta": repr(self.theta),
            "tie_word_embeddings": tf(self.tie),
            "scan_attention": tf(scan[0]), "scan_mlp": tf(scan[1]), "scan_loss": tf(scan[2]),
            "scan_query_chunk_size": self.chunks[0], "scan_key_chunk_size": self.chunks[1],
            "scan_mlp_chunk_size": self.mlp_chunk, "scan_loss_chunk_size": self.loss_chunk,
            "remat_block": self.remat[0], "remat_attention": self.remat[1],
            "remat_mlp": self.remat[2],
        }
        # empty remat policies are the default: leave them out rather than pass "--k="
        return (["--load_llama_config=tiny", "--dtype=fp32"]
                + ["--llama.%s=%s" % (k, v) for k, v in o.items() if v != ""])

    def describe(self):
        r = "/".join(x or "-" for x in self.remat)
        return ("%s Bq,Bk=%d,%d KVH=%d tie=%d theta=%g remat(block/attn/mlp)=%s B=%d T=%d %s"
                % (self.mode, self.chunks[0], self.chunks[1], self.KVH, self.tie, self.theta,
                   r, self.B, self.T, self.run))


def cases():
    c = []
    # attention modes x chunk pairs, varying GQA, tying and rope_theta along the way
    c.append(Case("vanilla", "vanilla", KVH=4))
    c.append(Case("vanilla-gqa2-tied-theta5e5", "vanilla", KVH=2, tie=True, theta=500000.0))
    c.append(Case("vanilla-mqa-eps1e-5", "vanilla", KVH=1, eps=1e-5))
    for i, (ch, kvh, tie, th) in enumerate([((4, 8), 4, False, 1e4), ((8, 8), 2, False, 5e5),
                                             ((16, 4), 1, True, 1e4), ((32, 32), 2, True, 1e4)]):
        c.append(Case("memeff-%dx%d-kvh%d%s" % (ch[0], ch[1], kvh, "-tied" if tie else ""),
                      "memeff", ch, KVH=kvh, tie=tie, theta=th, seed=10 + i))
    for i, (ch, kvh, tie, th) in enumerate([((4, 8), 4, False, 1e4), ((8, 8), 2, False, 5e5),
                                             ((16, 4), 1, True, 1e4), ((32, 32), 2, False, 5e5)]):
        c.append(Case("bpt-%dx%d-kvh%d%s" % (ch[0], ch[1], kvh, "-tied" if tie else ""),
                      "bpt", ch, KVH=kvh, tie=tie, theta=th, seed=20 + i))
    # remat policies on block / attention / mlp
    NS, DS, DN, ES = ("nothing_saveable", "dots_saveable", "dots_with_no_batch_dims_saveable",
                      "everything_saveable")
    for i, (mode, ch, remat) in enumerate([
            ("bpt", (8, 8), (NS, "", "")),
            ("bpt", (16, 4), (DS, "", "")),
            ("bpt", (4, 8), (DN, "", "")),
            ("bpt", (8, 8), (ES, "", "")),
            ("bpt", (8, 8), ("", NS, NS)),
            ("bpt", (16, 4), ("", DS, ES)),
            ("bpt", (4, 8), (NS, DS, DN)),
            ("bpt", (32, 32), (ES, NS, DS)),
            ("memeff", (8, 8), (NS, "", "")),
            ("memeff", (16, 4), ("", NS, DN)),
            ("vanilla", (8, 8), (NS, "", "")),
            ("vanilla", (8, 8), ("", DS, NS))]):
        name = "%s-%dx%d-remat-%s" % (mode, ch[0], ch[1],
                                      ",".join(r.replace("_saveable", "") or "-" for r in remat))
        c.append(Case(name, mode, ch, KVH=2 if i % 2 else 1, tie=(i % 3 == 0), remat=remat,
                      seed=40 + i))
    # other shapes: one long row, odd row count, other mlp/loss chunks
    c.append(Case("bpt-B1-T64-16x32", "bpt", (16, 32), KVH=2, B=1, T=64, loss_chunk=32,
                  mlp_chunk=16, seed=60))
    c.append(Case("bpt-B3-T16-8x4-loss8", "bpt", (8, 4), KVH=4, B=3, T=16, loss_chunk=8,
                  mlp_chunk=4, seed=61))
    # argmax ties: two identical lm_head rows that win at about half the positions
    c.append(Case("bpt-argmax-ties", "bpt", (8, 8), KVH=2, seed=62, ties=True))
    c.append(Case("vanilla-argmax-ties", "vanilla", KVH=2, seed=63, ties=True))
    # evaluation mode
    c.append(Case("eval-bpt-16x4", "bpt", (16, 4), KVH=2, run="eval", seed=70))
    c.append(Case("eval-vanilla-tied", "vanilla", KVH=1, tie=True, run="eval", seed=71))
    # bad input
    c.append(Case("bad-shape", "bpt", (8, 8), KVH=2, seed=80, kind="bad-shape"))
    c.append(Case("missing-tensor", "bpt", (8, 8), KVH=2, seed=81, kind="missing"))
    return c


# --- data -----------------------------------------------------------------------------

TIE_IDS = (5, 41)


def make_inputs(case):
    """-> params (float32 dict), input, target (int32), mask (float32)."""
    rng = np.random.default_rng(1000 + case.seed)
    cfg = case.cfg()
    params = llama_ref.random_params(cfg, rng)
    if case.ties:
        # lm_head rows TIE_IDS[0] and TIE_IDS[1] both 2 * e_7: their logits are 2 * x[7],
        # one rounded product plus exact zeros, so they tie exactly in fp32 whatever the
        # gemm's summation order (two equal dense rows do not: OpenBLAS sums different
        # columns in different orders). They win wherever x[7] is clearly positive.
        key = "model.embed_tokens.weight" if cfg.tie else "lm_head.weight"
        params[key][TIE_IDS[0]] = 0
        params[key][TIE_IDS[0], 7] = 2.0
        params[key][TIE_IDS[1]] = params[key][TIE_IDS[0]]
    B, T = case.B, case.T
    inp = rng.integers(0, V, (B, T)).astype(np.int32)
    # Targets: about half are the model's own argmax so accuracy is far from 0.
    logits = llama_ref.reference(cfg, params, inp, inp, np.ones((B, T)), grads=False)["logits"]
    pred = llama_ref.predict(llama_ref.torch.as_tensor(logits)).numpy()
    tgt = rng.integers(0, V, (B, T))
    take = rng.random((B, T)) < 0.5
    tgt[take] = pred[take]
    if case.ties:
        winner = np.isin(pred, TIE_IDS)
        tgt[winner] = np.where(rng.random(winner.sum()) < 0.5, TIE_IDS[0], TIE_IDS[1])
    tgt = tgt.astype(np.int32)
    # Mask: row 0 has a masked prefix (a prompt), other rows random zeros; every row keeps
    # at least one unmasked target, and row 0 is only partially masked.
    mask = (rng.random((B, T)) < 0.75).astype(np.float32)
    mask[0, :] = 1
    mask[0, : T // 4] = 0
    for b in range(B):
        mask[b, T - 1] = 1
    return params, inp, tgt, mask


def write_inputs(d, params, inp, tgt, mask):
    pin, pb = os.path.join(d, "IN.h5"), os.path.join(d, "BATCH.h5")
    with h5py.File(pin, "w") as f:
        for k, v in params.items():
            f.create_dataset("params/" + k, data=np.asarray(v, dtype=np.float32))
    with h5py.File(pb, "w") as f:
        f.create_dataset("input_tokens", data=inp.astype(np.int32))
        f.create_dataset("target_tokens", data=tgt.astype(np.int32))
        f.create_dataset("loss_masks", data=mask.astype(np.float32))
    return pin, pb


def run_bpt(binary, d, case, pin, pb, timeout):
    out = os.path.join(d, "OUT.h5")
    cmd = [binary, "--params", pin, "--batch", pb, "--output", out, "--mode", case.run] \
        + case.overrides()
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        rc, text = p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        rc, text = "timeout", (e.stdout or b"").decode("utf-8", "replace")
    return cmd, rc, text, out, time.time() - t0


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = np.linalg.norm(b)
    return np.linalg.norm(a - b) / n if n > 0 else np.linalg.norm(a - b)


# --- checks ---------------------------------------------------------------------------

def check_compare(case, args, d):
    params, inp, tgt, mask = make_inputs(case)
    cfg = case.cfg()
    pin, pb = write_inputs(d, params, inp, tgt, mask)
    ref = llama_ref.reference(cfg, params, inp, tgt, mask, grads=(case.run == "grad"))
    cmd, rc, text, out, tc = run_bpt(args.bpt_grad, d, case, pin, pb, args.timeout)
    problems, detail = [], []
    if rc != 0:
        return False, "bpt_grad exit %s: %s" % (rc, last_lines(text)), cmd, []
    try:
        f = h5py.File(out, "r")
    except OSError as e:
        return False, "cannot open OUT.h5: %s" % e, cmd, []
    with f:
        for key in ("loss", "accuracy"):
            if key not in f:
                problems.append("/%s missing" % key)
        if problems:
            return False, "; ".join(problems), cmd, []
        loss, acc = float(f["loss"][()]), float(f["accuracy"][()])
        eloss = abs(loss - ref["loss"]) / abs(ref["loss"])
        if not eloss <= LOSS_TOL:
            problems.append("loss %.8g vs ref %.8g" % (loss, ref["loss"]))
        # accuracy: exact, except positions whose top-2 reference logits are within TIE_GAP
        # (exact ties are resolved to the lowest id by the reference, as bpt must too)
        lg = np.sort(ref["logits"], axis=-1)
        gap = lg[..., -1] - lg[..., -2]
        tied = gap <= 1e-12 * np.maximum(1.0, np.abs(lg[..., -1]))
        near = ((~tied) & (gap < TIE_GAP) & (mask > 0)).sum()
        nmask = mask.sum()
        # compare as counts of correct predictions, so a float32 division does not matter
        dcount = abs(acc - ref["accuracy"]) * nmask
        if not dcount <= near + 1e-3:
            problems.append("accuracy %.6f vs ref %.6f (%d near-ties)" % (acc, ref["accuracy"],
                                                                         near))
        exact_ties = int((tied & (mask > 0)).sum())
        worst, wname = 0.0, "-"
        if case.run == "grad":
            names = list(ref["grads"].keys())
            have = set(f["grads"].keys()) if "grads" in f else set()
            missing = [n for n in names if n not in have]
            extra = sorted(have - set(names))
            if missing:
                problems.append("grads missing: %s" % ", ".join(missing[:4]))
            if extra:
                problems.append("unexpected grads: %s" % ", ".join(extra[:4]))
            for n in names:
                if n not in have:
                    continue
                g = f["grads"][n][()]
                if g.shape != ref["grads"][n].shape:
                    problems.append("grad %s shape %s, expected %s"
                                    % (n, g.shape, ref["grads"][n].shape))
                    continue
                e = rel(g, ref["grads"][n])
                if not np.isfinite(e):
                    e = np.inf
                detail.append((e, n))
                if e > worst or wname == "-":
                    worst, wname = e, n
            bad = sorted([x for x in detail if not x[0] <= GRAD_TOL], reverse=True)
            if bad:
                problems.append("%d grads over %.0e: %s" % (len(bad), GRAD_TOL, ", ".join(
                    "%s %.2e" % (n, e) for e, n in bad[:4])))
    peak = re.search(r"peak_arena_bytes (\d+)", text)   # informational: remat shows here
    msg = ("loss %.6f rel %.1e | acc %.4f (ref %.4f%s) | worst grad %.1e %s | %.2fs%s"
           % (loss, eloss, acc, ref["accuracy"],
              ", %d exact ties" % exact_ties if exact_ties else "",
              worst, shortname(wname), tc, ", peak %s B" % peak.group(1) if peak else ""))
    if problems:
        msg += "\n      " + "\n      ".join(problems)
    return not problems, msg, cmd, sorted(detail, reverse=True)


def check_bad_input(case, args, d):
    params, inp, tgt, mask = make_inputs(case)
    if case.kind == "bad-shape":
        victim = "model.layers.1.self_attn.k_proj.weight"
        params[victim] = np.ascontiguousarray(params[victim].T)       # [D, KVH*Dh]
        what = "wrong shape %s" % (params[victim].shape,)
    else:
        victim = "model.layers.0.mlp.up_proj.weight"
        del params[victim]
        what = "missing"
    pin, pb = write_inputs(d, params, inp, tgt, mask)
    cmd, rc, text, out, tc = run_bpt(args.bpt_grad, d, case, pin, pb, args.timeout)
    if rc == "timeout":
        return False, "bpt_grad timed out on %s %s" % (victim, what), cmd, []
    if rc == 0:
        return False, "bpt_grad exited 0 although %s is %s" % (victim, what), cmd, []
    if rc < 0:
        return False, "bpt_grad died with signal %d on %s %s" % (-rc, victim, what), cmd, []
    if victim not in text:
        return False, ("bpt_grad exit %d but its message does not name %s: %s"
                       % (rc, victim, last_lines(text))), cmd, []
    return True, "exit %d, message: %s" % (rc, last_lines(text, 1)), cmd, []


def last_lines(text, n=3):
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return " / ".join(lines[-n:]) if lines else "(no output)"


def shortname(n):
    return n.replace("model.layers.", "L").replace(".weight", "").replace("self_attn.", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    bdir = os.environ.get("BPT_BUILDDIR") or os.path.abspath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--bpt-grad", default=os.path.join(bdir, "tests", "ref", "bpt_grad"))
    ap.add_argument("-k", dest="filter", action="append", default=[],
                    help="run only cases whose name contains this (repeatable)")
    ap.add_argument("--keep", help="keep each case's files under this directory")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every tensor's error")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per bpt_grad run")
    args = ap.parse_args()

    sel = [c for c in cases() if not args.filter or any(s in c.name for s in args.filter)]
    if args.list:
        for c in sel:
            print("%-44s %s" % (c.name, c.describe()))
        return 0
    if not os.access(args.bpt_grad, os.X_OK):
        print("test_ref: bpt_grad not found or not executable: %s" % args.bpt_grad)
        return 99
    print("test_ref: %s, %d cases; tolerances loss %.0e, grads %.0e (relative L2)"
          % (args.bpt_grad, len(sel), LOSS_TOL, GRAD_TOL))
    t0 = time.time()
    failed = []
    worst_all = (0.0, "-", "-")
    for c in sel:
        if args.keep:
            d = os.path.join(args.keep, c.name)
            os.makedirs(d, exist_ok=True)
            ctx = None
        else:
            ctx = tempfile.TemporaryDirectory(prefix="bpt_ref_")
            d = ctx.name
        try:
            fn = check_compare if c.kind == "compare" else check_bad_input
            ok, msg, cmd, detail = fn(c, args, d)
        except Exception as e:  # a broken case must not hide the others
            ok, msg, cmd, detail = False, "%s: %s" % (type(e).__name__, e), [], []
        finally:
            if ctx is not None:
                ctx.cleanup()
        print("%s %-40s %s" % ("PASS" if ok else "FAIL", c.name, msg))
        if detail and detail[0][0] > worst_all[0]:
            worst_all = (detail[0][0], detail[0][1], c.name)
        if args.verbose or not ok:
            if not ok:
                print("      config: %s" % c.describe())
            for e, n in detail if args.verbose else detail[:0]:
                print("      %.3e %s" % (e, n))
            if not ok and cmd:
                print("      bpt_grad %s" % " ".join(shlex.quote(x) for x in cmd[1:]))
                print("      (rerun: %s -k %s --keep DIR keeps IN.h5, BATCH.h5, OUT.h5)"
                      % (os.path.basename(__file__), c.name))
        if not ok:
            failed.append(c.name)
    print("test_ref: %d passed, %d failed in %.1fs; worst gradient error %.2e (%s in %s)"
          % (len(sel) - len(failed), len(failed), time.time() - t0,
             worst_all[0], worst_all[1], worst_all[2]))
    if failed:
        print("test_ref: failed: %s" % " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
