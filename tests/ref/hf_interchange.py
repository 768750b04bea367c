#!/usr/bin/env python3
"""hf_interchange.py — bpt ckpt import / export / inspect against Hugging Face transformers.

For each case (GQA with a sharded checkpoint; tied embeddings) this makes a small random
LlamaForCausalLM (float32, eager attention, random norm weights), saves it with
save_pretrained(safe_serialization=True), and checks:

  import   `bpt ckpt import DIR --output x.h5` succeeds and prints a usable llama YAML;
  eval     `bpt eval --load_checkpoint=params::x.h5` on a token file gives the loss of the
           transformers model (float64 reference) on the same batch: relative error <= 1e-5;
  export   `bpt ckpt export x.h5 --format safetensors --output out/` loads with
           LlamaForCausalLM.from_pretrained and gives the original logits (max |diff| <= 1e-5);
  inspect  `bpt ckpt inspect x.h5 --json` parses and counts the model's parameters.

Then: safetensors in BF16 and F16 import exactly; extra rotary inv_freq and a tied
lm_head are ignored; a bf16 checkpoint (uint16 bit patterns) exports as the exact fp32
values; and malformed inputs (truncated file, bad header, gelu, rope_scaling, wrong
shape, missing and unexpected tensors, unknown export format, not a checkpoint) fail
with one 'bpt:' line naming the file and the problem.

Usage: hf_interchange.py [--bpt PATH] [--keep DIR] [-v]
Default binary: $BPT_BUILDDIR/src/bpt (BPT_BUILDDIR defaults to the repo root).
Prints ok/FAIL lines; exit status 0 only if every check passes.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

sys.dont_write_bytecode = True   # no __pycache__ in the source tree

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
try:
    hf_logging.disable_progress_bar()
except AttributeError:
    pass

LOSS_TOL = 1e-5
LOGIT_TOL = 1e-5
V, D, F_, L, H, MAXLEN = 256, 64, 176, 2, 4, 128
B, T = 4, 64

FAILS = 0
VERBOSE = False


def ok(msg):
    print(f"ok   {msg}", flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print(f"FAIL {msg}", flush=True)


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        fail(f"{msg}{': ' + detail if detail else ''}")
    return cond


def run(bpt, args, timeout=120):
    cmd = [bpt] + [str(a) for a in args]
    if VERBOSE:
        print("  $ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def expect_error(bpt, name, args, pattern, rc_want=None):
    """args fail with one 'bpt:' line on stderr matching pattern."""
    rc, out, err = run(bpt, args)
    lines = [l for l in err.splitlines() if l.startswith("bpt: ")]
    if rc == 0:
        return fail(f"{name}: exit 0, expected an error")
    if rc_want is not None and rc != rc_want:
        return fail(f"{name}: exit {rc}, expected {rc_want}: {err.strip()[:300]}")
    if len(lines) != 1:
        return fail(f"{name}: expected one 'bpt:' line on stderr, got {len(lines)}: {err.strip()[:300]}")
    if not re.search(pattern, lines[0]):
        return fail(f"{name}: stderr does not match /{pattern}/: {lines[0][:300]}")
    ok(f"{name} (exit {rc}): {lines[0]}")


# --------------------------------------------------------------------------- models

def make_model(seed, kvh, tie):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=F_, num_hidden_layers=L,
                      num_attention_heads=H, num_key_value_heads=kvh, max_position_embeddings=MAXLEN,
                      rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=tie,
                      initializer_range=0.15, bos_token_id=1, eos_token_id=2,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand_like(p))        # norms in [0.5, 1.5)
    return model


def load_model(path):
    try:
        return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                attn_implementation="eager").eval()
    except TypeError:   # transformers < 4.56 spells it torch_dtype
        return LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                attn_implementation="eager").eval()


def ref_loss(model, tokens):
    """Mean cross-entropy and accuracy over B*T targets, in float64."""
    inputs = torch.from_numpy(tokens[:B * T].astype(np.int64)).view(B, T)
    targets = torch.from_numpy(tokens[1:B * T + 1].astype(np.int64)).view(B, T)
    m64 = LlamaForCausalLM(model.config).eval()
    m64.load_state_dict(model.state_dict())
    m64 = m64.double()
    with torch.no_grad():
        logits = m64(inputs).logits.reshape(-1, V)
    loss = F.cross_entropy(logits, targets.reshape(-1)).item()
    acc = (logits.argmax(-1) == targets.reshape(-1)).double().mean().item()
    return loss, acc


def sample_tokens(model, seed):
    """B*T+1 tokens, partly drawn from the model itself so that some targets are the
    argmax and the accuracy is a real check. Row r (as bpt's loader cuts the stream) is
    tokens[r*T : r*T+T+1]; rows share their boundary tokens, which stay random, and the
    tokens inside every row are sampled left to right, all rows at once."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (B * T + 1,), generator=g)
    rows = torch.arange(B).view(B, 1) * T
    with torch.no_grad():
        for t in range(1, T):
            ctx = tokens[rows + torch.arange(t).view(1, t)]            # (B, t)
            p = torch.softmax(model(ctx).logits[:, -1].double() * 2.0, -1)
            tokens[rows[:, 0] + t] = torch.multinomial(p, 1, generator=g)[:, 0]
    return tokens.numpy().astype(np.uint16)


def num_params(model):
    return sum(p.numel() for p in model.parameters())   # tied tensors once


# --------------------------------------------------------------------------- one case

def run_case(bpt, work, name, kvh, tie, shard, seed):
    d = os.path.join(work, name)
    os.makedirs(d)
    model = make_model(seed, kvh, tie)
    hf = os.path.join(d, "hf")
    kw = {"max_shard_size": "100KB"} if shard else {}
    model.save_pretrained(hf, safe_serialization=True, **kw)
    files = sorted(f for f in os.listdir(hf) if f.endswith(".safetensors"))
    if shard and len(files) < 2:
        fail(f"{name}: save_pretrained made {len(files)} shard(s), expected several")

    # import
    x = os.path.join(d, "x.h5")
    rc, out, err = run(bpt, ["ckpt", "import", hf, "--output", x])
    if not check(rc == 0 and os.path.exists(x), f"{name}: import ({len(files)} safetensors file(s))",
                 err.strip()[:300]):
        return None
    with h5py.File(x, "r") as f:
        sd = {k: v for k, v in model.state_dict().items() if not (tie and k == "lm_head.weight")}
        names_ok = set(f["params"].keys()) == set(sd)
        same = names_ok and all(np.array_equal(f["params"][k][()], sd[k].numpy()) for k in sd)
        attrs_ok = (f.attrs["format"] == "bpt-checkpoint" and int(f.attrs["format_version"]) == 1
                    and int(f.attrs["step"]) == 0 and f.attrs["mesh"] == "1,1,1"
                    and f.attrs["float_dtype"] == "fp32")
        fletcher = f["params"]["model.embed_tokens.weight"].fletcher32
    check(same and attrs_ok and fletcher, f"{name}: x.h5 holds the exact weights, attributes, Fletcher-32",
          f"names_ok={names_ok} attrs_ok={attrs_ok} fletcher={fletcher}")
    llama_yaml = out
    check(re.search(rf"num_key_value_heads: {kvh}\b", out) and
          re.search(rf"tie_word_embeddings: {'true' if tie else 'false'}\b", out),
          f"{name}: import prints the llama config", out[:300])

    # eval: bpt's loss on batch 0 == the transformers loss
    tokens = sample_tokens(model, seed + 100)
    tok = os.path.join(d, "tokens.h5")
    with h5py.File(tok, "w") as f:
        f.create_dataset("tokens", data=tokens)
    cfg = os.path.join(d, "cfg.yaml")
    src = f"{{type: hdf5, hdf5_dataset: {{path: '{tok}', seq_length: {T}, batch_size: {B}}}}}"
    with open(cfg, "w") as f:
        f.write(llama_yaml)
        f.write(f"dtype: fp32\nmesh_dim: '1,1,1'\ntrain_dataset: {src}\neval_dataset: {src}\n")
    rc, out, err = run(bpt, ["eval", "--config", cfg, "--eval_steps=1", f"--load_checkpoint=params::{x}"])
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if check(rc == 0 and lines, f"{name}: bpt eval runs", (err or out).strip()[:300]):
        r = json.loads(lines[-1])
        want, want_acc = ref_loss(model, tokens)
        rel = abs(r["loss"] - want) / want
        check(rel <= LOSS_TOL and r["tokens"] == B * T and abs(r["accuracy"] - want_acc) <= 1.5 / (B * T),
              f"{name}: eval loss {r['loss']:.6f} vs transformers {want:.6f} (rel {rel:.1e}; "
              f"ln V = {math.log(V):.3f}), accuracy {r['accuracy']:.4f} vs {want_acc:.4f}")

    # export: from_pretrained gives the same logits
    outdir = os.path.join(d, "out")
    rc, out, err = run(bpt, ["ckpt", "export", x, "--format", "safetensors", "--output", outdir])
    if check(rc == 0, f"{name}: export", err.strip()[:300]):
        m2 = load_model(outdir)
        inputs = torch.from_numpy(tokens[:B * T].astype(np.int64)).view(B, T)
        with torch.no_grad():
            diff = (model(inputs).logits - m2(inputs).logits).abs().max().item()
        c1, c2 = model.config, m2.config
        keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id"]
        bad = [k for k in keys if getattr(c1, k) != getattr(c2, k)]
        check(diff <= LOGIT_TOL and not bad, f"{name}: exported model loads, logits max |diff| {diff:.1e}",
              f"config differs in {bad}")
        st = load_file(os.path.join(outdir, "model.safetensors"))
        check(all(v.dtype == torch.float32 for v in st.values()) and ("lm_head.weight" in st) == (not tie),
              f"{name}: model.safetensors is F32, lm_head {'absent (tied)' if tie else 'present'}")

    # inspect --json
    rc, out, err = run(bpt, ["ckpt", "inspect", x, "--json"])
    try:
        j = json.loads(out)
        emb = next(t for t in j["tensors"] if t["name"] == "model.embed_tokens.weight")
        want_norm = model.model.embed_tokens.weight.double().norm().item()
        good = (rc == 0 and j["num_params"] == num_params(model) and j["format_version"] == 1
                and j["step"] == 0 and j["mesh"] == "1,1,1" and j["float_dtype"] == "fp32"
                and "llama:" in j["config"] and emb["shape"] == [V, D] and emb["dtype"] == "float32"
                and abs(emb["norm"] - want_norm) <= 1e-9 * want_norm
                and len(j["tensors"]) == len(sd) and all(t["group"] == "params" for t in j["tensors"]))
        check(good, f"{name}: inspect --json: num_params {j['num_params']} == {num_params(model)}, norms",
              out[:300])
    except (ValueError, KeyError, StopIteration) as e:
        fail(f"{name}: inspect --json does not parse: {e}: {out[:200]} {err[:200]}")
    rc, out, err = run(bpt, ["ckpt", "inspect", x])
    check(rc == 0 and "model.layers.1.mlp.down_proj.weight" in out and "parameters" in out,
          f"{name}: inspect (text)", err[:200])
    return {"model": model, "hf": hf, "x": x, "dir": d, "tokens": tok}


# --------------------------------------------------------------------------- more checks

def check_dtypes(bpt, work, case):
    """BF16 and F16 safetensors import as their exact fp32 values; inv_freq and a tied
    lm_head.weight in the file are ignored."""
    model = case["model"]
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    for dt, tag in ((torch.bfloat16, "BF16"), (torch.float16, "F16")):
        d = os.path.join(work, "dtype-" + tag)
        os.makedirs(d)
        shutil.copy(os.path.join(case["hf"], "config.json"), d)
        low = {k: v.to(dt) for k, v in sd.items()}
        extra = dict(low)
        extra["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8, dtype=dt)
        extra["lm_head.weight"] = low["model.embed_tokens.weight"].clone()   # tied: ignored
        save_file(extra, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        x = os.path.join(d, "x.h5")
        rc, out, err = run(bpt, ["ckpt", "import", d, "--output", x])
        if not check(rc == 0, f"import {tag} safetensors (with inv_freq and a tied lm_head)", err.strip()[:300]):
            continue
        with h5py.File(x, "r") as f:
            bad = [k for k in low if k != "lm_head.weight" and
                   not np.array_equal(f["params"][k][()], low[k].float().numpy())]
            check(not bad and "lm_head.weight" not in f["params"], f"import {tag}: exact fp32 values", str(bad[:3]))


def check_bf16_checkpoint(bpt, work, case):
    """A checkpoint stored as bfloat16 bit patterns exports as their exact fp32 values."""
    src, dst = case["x"], os.path.join(work, "bf16.h5")
    want = {}
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        fo.attrs["float_dtype"] = "bf16"
        g = fo.create_group("params")
        for k in fi["params"]:
            a = fi["params"][k][()]
            bits = (a.view(np.uint32) >> 16).astype(np.uint16)
            ds = g.create_dataset(k, data=bits, chunks=True, fletcher32=True)
            ds.attrs["dtype"] = "bfloat16"
            want[k] = (bits.astype(np.uint32) << 16).view(np.float32)
    out = os.path.join(work, "bf16-out")
    rc, so, err = run(bpt, ["ckpt", "export", dst, "--format", "safetensors", "--output", out])
    if check(rc == 0, "export of a bf16 checkpoint", err.strip()[:300]):
        st = load_file(os.path.join(out, "model.safetensors"))
        bad = [k for k in want if not np.array_equal(st[k].numpy(), want[k])]
        check(not bad and len(st) == len(want), "bf16 checkpoint exports the exact fp32 values", str(bad[:3]))
    rc, so, err = run(bpt, ["ckpt", "inspect", dst, "--json"])
    try:
        j = json.loads(so)
        good = j["float_dtype"] == "bf16" and all(t["dtype"] == "bfloat16" for t in j["tensors"])
        emb = next(t for t in j["tensors"] if t["name"] == "model.embed_tokens.weight")
        n = float(np.linalg.norm(want["model.embed_tokens.weight"].astype(np.float64)))
        check(good and abs(emb["norm"] - n) <= 1e-9 * n, "inspect of a bf16 checkpoint: dtype and norms")
    except (ValueError, KeyError, StopIteration) as e:
        fail(f"inspect of a bf16 checkpoint: {e}: {so[:200]} {err[:200]}")


def copy_hf(case, dst):
    shutil.copytree(case["hf"], dst)
    return dst


def edit_config(d, **kv):
    p = os.path.join(d, "config.json")
    c = json.load(open(p))
    c.update(kv)
    json.dump(c, open(p, "w"))


def check_errors(bpt, work, case):
    w = os.path.join(work, "errors")
    os.makedirs(w)
    out = os.path.join(w, "y.h5")

    d = copy_hf(case, os.path.join(w, "truncated"))
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) // 2)
    expect_error(bpt, "truncated model.safetensors", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*truncated/model\.safetensors: truncated")

    d = copy_hf(case, os.path.join(w, "badheader"))
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.seek(8)
        f.write(b"[not json")
    expect_error(bpt, "malformed safetensors header", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*badheader/model\.safetensors: malformed header")

    d = copy_hf(case, os.path.join(w, "gelu"))
    edit_config(d, hidden_act="gelu")
    expect_error(bpt, "hidden_act gelu", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*gelu/config\.json: hidden_act 'gelu'")

    d = copy_hf(case, os.path.join(w, "ropescaling"))
    edit_config(d, rope_scaling={"rope_type": "linear", "factor": 2.0})
    expect_error(bpt, "rope_scaling", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*config\.json: rope_scaling")

    d = copy_hf(case, os.path.join(w, "shape"))
    edit_config(d, intermediate_size=F_ + 16)
    expect_error(bpt, "wrong shape", ["ckpt", "import", d, "--output", out],
                 rf"^bpt: .*model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape "
                 rf"\[{F_}, {D}\], config\.json expects \[{F_ + 16}, {D}\]")

    sd = load_file(os.path.join(case["hf"], "model.safetensors"))
    d = os.path.join(w, "extra")
    os.makedirs(d)
    shutil.copy(os.path.join(case["hf"], "config.json"), d)
    save_file(dict(sd, **{"foo.weight": torch.zeros(3)}), os.path.join(d, "model.safetensors"))
    expect_error(bpt, "unexpected tensor", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*unexpected tensor foo\.weight")

    d = os.path.join(w, "missing")
    os.makedirs(d)
    shutil.copy(os.path.join(case["hf"], "config.json"), d)
    save_file({k: v for k, v in sd.items() if k != "model.norm.weight"}, os.path.join(d, "model.safetensors"))
    expect_error(bpt, "missing tensor", ["ckpt", "import", d, "--output", out],
                 r"^bpt: .*missing tensor model\.norm\.weight")

    expect_error(bpt, "no safetensors", ["ckpt", "import", w, "--output", out],
                 r"^bpt: .*config\.json: no such file")
    check(not os.path.exists(out) and not os.path.exists(out + ".tmp"), "failed imports leave no file")

    expect_error(bpt, "export --format gguf", ["ckpt", "export", case["x"], "--format", "gguf",
                                              "--output", os.path.join(w, "o")],
                 r"^bpt: .*gguf.*safetensors", rc_want=2)
    expect_error(bpt, "inspect of a token file", ["ckpt", "inspect", case["tokens"]],
                 r"^bpt: .*tokens\.h5: not a bpt checkpoint")
    expect_error(bpt, "inspect of a missing file", ["ckpt", "inspect", os.path.join(w, "nope.h5")],
                 r"^bpt: .*nope\.h5: no such file")
    expect_error(bpt, "usage", ["ckpt", "frobnicate"], r"^bpt: .*frobnicate", rc_want=2)


# --------------------------------------------------------------------------- main

def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--bpt", default=os.path.join(os.environ.get("BPT_BUILDDIR", top), "src", "bpt"))
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("-v", action="store_true", help="print the commands")
    a = ap.parse_args()
    VERBOSE = a.v
    if not os.access(a.bpt, os.X_OK):
        print(f"ERROR: {a.bpt} not found or not executable")
        return 99
    torch.set_num_threads(1)      # tiny models: threads only contend
    t0 = time.time()
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        work = tempfile.mkdtemp(prefix="hf-", dir=a.keep)
    else:
        work = tempfile.mkdtemp(prefix="bpt-hf-")
    try:
        gqa = run_case(a.bpt, work, "gqa-sharded", kvh=2, tie=False, shard=True, seed=1)
        tied = run_case(a.bpt, work, "tied", kvh=4, tie=True, shard=False, seed=2)
        if tied:
            check_dtypes(a.bpt, work, tied)
            check_errors(a.bpt, work, tied)
        if gqa:
            check_bf16_checkpoint(a.bpt, work, gqa)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'PASS' if FAILS == 0 else f'{FAILS} failure(s)'} ({time.time() - t0:.1f} s)")
    return 0 if FAILS == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
