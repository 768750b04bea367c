#!/usr/bin/env bash
# The 3-D mesh: training on 8 ranks (dp x fsdp x tp) equals training on one rank;
# communication bytes equal the analytic count; the plan equals the measured peak;
# every bad mesh fails on every rank, quickly, with one line.
. "$(dirname "$0")/../e2e/lib.sh"
need_python numpy h5py
NP=8
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE   # one thread per rank: 8 ranks share 2 cores
MPI=("$MPIRUN" $MPIRUN_FLAGS -np $NP)

"$BPT" data synth --output "$WORK/train.h5" --tokens 200000 --seed 3 >/dev/null || { fail "synthetic corpus"; finish; }
# 8 heads; T=64 with chunks that exercise Bq < Bk; batch 8 divides every dp x fsdp
COMMON=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --dtype=fp32
        --llama.vocab_size=256 --llama.hidden_size=64 --llama.num_attention_heads=8
        --llama.intermediate_size=192 --llama.num_hidden_layers=2
        --llama.scan_query_chunk_size=16 --llama.scan_key_chunk_size=32
        --llama.scan_mlp_chunk_size=16 --llama.scan_loss_chunk_size=32
        --train_dataset.hdf5_dataset.path="$WORK/train.h5" --train_dataset.hdf5_dataset.seq_length=64
        --train_dataset.hdf5_dataset.batch_size=8 --eval_steps=0 --log_freq=1 --total_steps=5
        --save_model_freq=5 --checkpointer.save_optimizer_state=false --peak_flops=1e11
        --optimizer.adamw_optimizer.lr=1e-2 --optimizer.adamw_optimizer.lr_warmup_steps=2)

compare() {   # compare RUN_DIR REF_DIR [TOL [MIN]]: losses and parameters at the last step within
              # TOL (1e-5); with MIN, the parameters must also differ by at least MIN
    python3 - "$1" "$2" "${3:-1e-5}" "${4:-0}" <<'PY'
import json, sys, h5py, numpy as np
run, ref, tol, least = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
a = [json.loads(l) for l in open(f"{ref}/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
steps = len(a)
assert len(b) == steps > 0, (len(a), len(b))
lerr = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
latest = lambda d: f"{d}/ckpt/" + open(f"{d}/ckpt/latest").read().strip()
with h5py.File(latest(ref)) as fa, h5py.File(latest(run)) as fb:
    assert fa.attrs["step"] == fb.attrs["step"] == steps
    perr, worst = 0.0, ""
    for name in fa["params"]:
        x, y = fa["params"][name][()], fb["params"][name][()]
        e = np.linalg.norm(x.astype(np.float64) - y) / np.linalg.norm(x.astype(np.float64))
        if e > perr: perr, worst = e, name
print(f"loss rel {lerr:.1e}, params rel {perr:.1e} ({worst})")
assert lerr <= tol and least <= perr <= tol
PY
}

for variant in "mha:8" "gqa:2"; do
    name=${variant%%:*}; kvh=${variant##*:}
    V=("${COMMON[@]}" --llama.num_key_value_heads=$kvh)
    "$BPT" train "${V[@]}" --mesh_dim=1,1,1 --logger.output_dir="$WORK/$name-ref" > "$WORK/$name-ref.out" 2>&1 ||
        { fail "$name one-rank run"; tail -3 "$WORK/$name-ref.out"; continue; }
    meshes="8,1,1 1,8,1 2,2,2 1,4,2 2,4,1 1,-1,2"
    [ "$kvh" = 8 ] && meshes="$meshes 1,1,8 dp:1,fsdp:2,tp:4"
    for mesh in $meshes; do
        dir="$WORK/$name-${mesh//[:,]/_}"
        if ! timeout 300 "${MPI[@]}" "$BPT" train "${V[@]}" --mesh_dim=$mesh --logger.output_dir="$dir" > "$dir.out" 2>&1; then
            fail "$name mesh $mesh: run failed: $(grep -m1 '^bpt:' "$dir.out")"; continue
        fi
        res=$(compare "$dir" "$WORK/$name-ref" 2>&1) && ok "$name (KVH=$kvh) mesh $mesh == one rank: $res" ||
            fail "$name (KVH=$kvh) mesh $mesh: $res"
    done
done

# sequence parallelism over tp (llama.sequence_parallel, on by default with tp > 1: every
# tp mesh above ran with it) off: the one-rank result too, and the same losses as on
for mesh in 2,2,2 1,4,2 1,1,8; do
    dir="$WORK/mha-${mesh//,/_}-seqoff"
    if ! timeout 300 "${MPI[@]}" "$BPT" train "${COMMON[@]}" --llama.num_key_value_heads=8 --llama.sequence_parallel=false \
            --mesh_dim=$mesh --logger.output_dir="$dir" > "$dir.out" 2>&1; then
        fail "mesh $mesh, sequence_parallel off: run failed: $(grep -m1 '^bpt:' "$dir.out")"; continue
    fi
    res=$(compare "$dir" "$WORK/mha-ref" 2>&1) && ok "mha mesh $mesh, sequence_parallel off == one rank: $res" ||
        fail "mha mesh $mesh, sequence_parallel off: $res"
    res=$(compare "$dir" "$WORK/mha-${mesh//,/_}" 2>&1) && ok "mha mesh $mesh: sequence_parallel off == on: $res" ||
        fail "mha mesh $mesh: sequence_parallel off != on: $res"
done

# MPI counts are int, so host all-reduces go in pieces (2^28 elements; a tp all-reduce of
# N x D passes 2^31 at 1M tokens). In 100-element pieces the 2,2,2 run must be
# bit-identical to the one in whole calls: each of its sums has two terms.
dir="$WORK/mha-2_2_2-pieces"
if BPT_TEST_MPI_CHUNK=100 timeout 300 "${MPI[@]}" "$BPT" train "${COMMON[@]}" --llama.num_key_value_heads=8 \
        --mesh_dim=2,2,2 --logger.output_dir="$dir" > "$dir.out" 2>&1; then
    res=$(compare "$dir" "$WORK/mha-2_2_2" 0 2>&1) && ok "mesh 2,2,2, all-reduces in 100-element pieces: bit-identical: $res" ||
        fail "mesh 2,2,2 in 100-element pieces: $res"
else
    fail "mesh 2,2,2 in 100-element pieces: run failed: $(grep -m1 '^bpt:' "$dir.out")"
fi

# dtype bf16: every rank computes with the same bf16 copies of the weights, gathered
# as bf16 over fsdp. The fp32 masters of two meshes differ by reduction order (1e-7);
# bf16 rounding is discontinuous, so now and then that moves one element's copy by a
# bf16 step (2^-8), and Adam's normalised update spreads it: measured 2e-7 after 2 steps (as fp32),
# 5e-6 to 3e-5 after 3, 4e-4 after 5. So 2 steps, 1e-5, and fp32 must sit 100x further.
B16=("${COMMON[@]}" --llama.num_key_value_heads=2 --dtype=bf16 --total_steps=2 --save_model_freq=2)
if "$BPT" train "${B16[@]}" --mesh_dim=1,1,1 --logger.output_dir="$WORK/bf16-ref" > "$WORK/bf16-ref.out" 2>&1 &&
   "$BPT" train "${B16[@]}" --dtype=fp32 --mesh_dim=1,1,1 --logger.output_dir="$WORK/fp32-2" > "$WORK/fp32-2.out" 2>&1; then
    res=$(compare "$WORK/fp32-2" "$WORK/bf16-ref" 1 1e-3 2>&1) && ok "bf16 vs fp32 on one rank (must differ): $res" ||
        fail "bf16 vs fp32 on one rank: $res"
    for mesh in 1,8,1 2,2,2 1,4,2; do
        dir="$WORK/bf16-${mesh//,/_}"
        if ! timeout 300 "${MPI[@]}" "$BPT" train "${B16[@]}" --mesh_dim=$mesh --logger.output_dir="$dir" > "$dir.out" 2>&1; then
            fail "bf16 mesh $mesh: run failed: $(grep -m1 '^bpt:' "$dir.out")"; continue
        fi
        res=$(compare "$dir" "$WORK/bf16-ref" 1e-5 2>&1) && ok "bf16 (KVH=2) mesh $mesh == one rank: $res" ||
            fail "bf16 (KVH=2) mesh $mesh: $res"
    done
else
    fail "bf16 / fp32 one-rank runs: $(tail -3 "$WORK/bf16-ref.out" "$WORK/fp32-2.out")"
fi

# communication: the bytes each axis moved in a step equal the analytic count of the
# design (docs/mesh.md), and the plan's peak equals the measured one
for run in mha:2,2,2 mha:1,4,2 mha:2,4,1 bf16:2,2,2 bf16:1,8,1 seqoff:2,2,2 seqoff:1,4,2; do
    name=${run%%:*}; mesh=${run##*:}
    dir="$WORK/$name-${mesh//,/_}"
    if [ "$name" = bf16 ]; then args=("${B16[@]}"); else args=("${COMMON[@]}" --llama.num_key_value_heads=8); fi
    seq=1
    if [ "$name" = seqoff ]; then seq=0 dir="$WORK/mha-${mesh//,/_}-seqoff" args+=(--llama.sequence_parallel=false); fi
    plan=$("$BPT" plan "${args[@]}" --mesh_dim=$mesh --world_size=$NP | sed -n 's/.*peak .*(\([0-9]*\) bytes)/\1/p')
    python3 - "$dir/metrics.jsonl" "$mesh" "$plan" "$name" "$seq" <<'PY' && ok "$name mesh $mesh: comm bytes per axis == analytic, plan peak == measured" || fail "$name mesh $mesh: comm bytes / plan"
import json, sys
from fractions import Fraction as Fr
rows = [json.loads(l) for l in open(sys.argv[1])]
dp, fsdp, tp = map(int, sys.argv[2].split(","))
plan = int(sys.argv[3])
seq = sys.argv[5] == "1" and tp > 1      # sequence parallelism over tp
wb = 2 if sys.argv[4] == "bf16" else 4     # bytes of a gathered weight
KVH = 2 if sys.argv[4] == "bf16" else 8
V, D, H, F, L, T, Bg = 256, 64, 8, 192, 2, 64, 8
Dh = D // H
B = Bg // (dp * fsdp); N = B * T
ceil = lambda a, b: -(-a // b)
def shard(d0, d1, split):          # elements of one rank's shard
    l0 = d0 // tp if split == "col" else d0
    l1 = d1 // tp if split == "row" else d1
    return ceil(l0, fsdp) * l1
layer = [shard(D, 1, "rep"), shard(H * Dh, D, "col"), shard(KVH * Dh, D, "col"), shard(KVH * Dh, D, "col"),
         shard(D, H * Dh, "row"), shard(D, 1, "rep"), shard(F, D, "col"), shard(F, D, "col"), shard(D, F, "row")]
S_l, S_emb, S_nf, S_lm = sum(layer), shard(V, D, "col"), shard(D, 1, "rep"), shard(V, D, "col")
nparams = L * S_l + S_emb + S_nf + S_lm
ar = lambda p, nbytes: Fr(2 * (p - 1), p) * nbytes      # ring all-reduce, bytes sent per rank
# fsdp: every layer gathered in the forward and again in the backward, except the last,
# whose weights the backward still holds; its gradients reduce-scattered once (fp32);
# embedding, final norm and lm_head gathered and reduced once; the two norms of the
# optimizer (grad, param) all-reduce one double each
fsdp_b = (fsdp - 1) * (wb * ((2 * L - 1) * S_l + S_emb + S_nf + S_lm) + 4 * (L * S_l + S_emb + S_nf + S_lm)) \
         + 2 * ar(fsdp, 8)
# tp: embedding, two per layer forward, two per layer backward, dxf: N x D each; the
# vocabulary-parallel loss: max, target logit, (value, index), sum exp per row; two norms
tp_b = ar(tp, 4 * N * D * (1 + 2 * L + 2 * L + 1)) + ar(tp, 20 * N) + 2 * ar(tp, 8)
if seq:
    # all-gathers and reduce-scatters of N x D rows instead, (tp-1)/tp of it sent: the
    # embedding out; per layer forward xn1 in, x1 out, xn2 in, down out; per layer
    # backward xn1 in again (the attention's recomputation), dy in, xn2 in, dxn2 out, dx1
    # in, xn1 in, dxn1 out; xf in, dxf out, dx0 in; then the norms' gradients (partial
    # sums over the rows) all-reduced over tp
    tp_b = Fr(tp - 1, tp) * 4 * N * D * (1 + 4 * L + 7 * L + 3) + ar(tp, 20 * N) + 2 * ar(tp, 8) \
           + ar(tp, 4 * (2 * L + 1) * shard(D, 1, "rep"))
dp_b = ar(dp, 4 * nparams)
batch_b = ar(dp * fsdp, 8) + ar(dp * fsdp, 16)
want = {"dp": dp_b, "fsdp": fsdp_b, "tp": tp_b, "batch": batch_b}
for r in rows:
    got = r["comm_bytes"]
    for k, v in want.items():
        assert got[k] == v, (r["step"], k, got[k], float(v))
assert rows[-1]["peak_memory_bytes"] == plan, (rows[-1]["peak_memory_bytes"], plan)
print(f"  {sys.argv[4]} {sys.argv[2]}: dp {dp_b} fsdp {fsdp_b} tp {tp_b} batch {batch_b}; peak {plan}")
PY
done

# memory: sequence parallelism over tp keeps the layer inputs (and x1) of this rank's
# rows only: the kept activations shrink as 1/tp; without it tp keeps them whole
for tp in 2 4 8; do
    for seq in true false; do
        "$BPT" plan "${COMMON[@]}" --llama.num_key_value_heads=8 --mesh_dim=1,1,1 --world_size=1 > "$WORK/plan1" &&
        "$BPT" plan "${COMMON[@]}" --llama.num_key_value_heads=8 --llama.sequence_parallel=$seq --mesh_dim=1,1,$tp \
            --world_size=$tp > "$WORK/plantp" &&
        python3 - "$WORK/plan1" "$WORK/plantp" "$tp" "$seq" <<'PY' && ok "tp=$tp, sequence_parallel $seq: kept activations per rank as expected" || fail "tp=$tp, sequence_parallel $seq: kept activations"
import re, sys
units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
def get(path, key):
    for line in open(path):
        if line.strip().startswith(key):
            v, u = re.search(r"([0-9.]+) (B|KiB|MiB|GiB)", line).groups()
            return float(v) * units[u]
    raise KeyError(key)
tp, want = int(sys.argv[3]), int(sys.argv[3]) if sys.argv[4] == "true" else 1
ratio = get(sys.argv[1], "kept activations") / get(sys.argv[2], "kept activations")
print(f"  tp={tp} sequence_parallel={sys.argv[4]}: kept x1/{ratio:.2f}")
assert abs(ratio / want - 1) < 0.02, ratio   # printed to 3 digits
PY
    done
done

# memory: parameters, gradients and moments shrink as 1/(fsdp*tp)
for mesh in 1,8,1 1,4,2 2,2,2; do
    "$BPT" plan "${COMMON[@]}" --mesh_dim=1,1,1 --world_size=1 > "$WORK/plan1" &&
    "$BPT" plan "${COMMON[@]}" --mesh_dim=$mesh --world_size=8 > "$WORK/plan8" &&
    python3 - "$WORK/plan1" "$WORK/plan8" "$mesh" <<'PY' && ok "mesh $mesh: parameters, gradients, optimizer shrink as 1/(fsdp*tp)" || fail "mesh $mesh: state per rank"
import sys
units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
def get(path, key):
    for line in open(path):
        if line.strip().startswith(key):
            v, u = line.split()[-2:]
            return float(v) * units[u]
dp, fsdp, tp = map(int, sys.argv[3].split(","))
for key in ("parameters", "gradients", "optimizer"):
    a, b = get(sys.argv[1], key), get(sys.argv[2], key)
    ratio = a / b
    print(f"  {sys.argv[3]} {key}: {a:.0f} -> {b:.0f} bytes per rank (x1/{ratio:.2f})")
    assert 0.9 * fsdp * tp <= ratio <= fsdp * tp * 1.0001, ratio
PY
done

# sequence parallelism (sp, ring attention): every mesh with sp > 1 gives the one-rank
# losses and parameters; chunks small enough for the 64/sp tokens of a rank (the
# one-rank reference keeps its own: blockwise attention is exact in any chunking)
SPC=(--llama.scan_query_chunk_size=4 --llama.scan_key_chunk_size=8)
for variant in "mha:8" "gqa:2"; do
    name=${variant%%:*}; kvh=${variant##*:}
    meshes="1,1,1,8 1,2,1,4 2,1,1,4 dp:1,fsdp:2,tp:2,sp:2"
    [ "$kvh" = 8 ] && meshes="$meshes 1,1,2,4 2,1,2,2 1,1,4,2"
    for mesh in $meshes; do
        dir="$WORK/$name-sp-${mesh//[:,]/_}"
        if ! timeout 300 "${MPI[@]}" "$BPT" train "${COMMON[@]}" --llama.num_key_value_heads=$kvh "${SPC[@]}" \
                --mesh_dim=$mesh --logger.output_dir="$dir" > "$dir.out" 2>&1; then
            fail "$name mesh $mesh: run failed: $(grep -m1 '^bpt:' "$dir.out")"; continue
        fi
        res=$(compare "$dir" "$WORK/$name-ref" 2>&1) && ok "$name (KVH=$kvh) mesh $mesh (sp) == one rank: $res" ||
            fail "$name (KVH=$kvh) mesh $mesh: $res"
    done
done

# the ring's bytes per step equal the analytic count (docs/mesh.md): per layer, (sp-1) K/V
# hops in the forward and again in its recomputation (remat_attention: nothing_saveable),
# then sp-1 K/V hops and sp dK/dV hops in the backward, 8*B*(T/sp)*(KVH/tp)*Dh bytes each
for run in mha:1,1,1,8:8 mha:1,2,1,4:8 mha:1,1,2,4:8 mha:2,1,2,2:8 gqa:1,1,1,8:2 gqa:2,1,1,4:2; do
    IFS=: read -r name mesh kvh <<< "$run"
    python3 - "$WORK/$name-sp-${mesh//,/_}/metrics.jsonl" "$mesh" "$kvh" <<'PY' && ok "$name mesh $mesh: ring bytes per step == analytic" || fail "$name mesh $mesh: ring bytes"
import json, sys
dp, fsdp, tp, sp = map(int, sys.argv[2].split(","))
kvh, L, T, Bg, Dh = int(sys.argv[3]), 2, 64, 8, 8
B, Tl = Bg // (dp * fsdp), T // sp
hop = 8 * B * Tl * (kvh // tp) * Dh
want = L * hop * (2 * (sp - 1) + (2 * sp - 1))
for r in (json.loads(l) for l in open(sys.argv[1])):
    assert r["comm_bytes"]["sp"] == want, (r["step"], r["comm_bytes"]["sp"], want)
print(f"  {sys.argv[2]}: {want} bytes")
PY
done

# a checkpoint saved on sp = 8 evaluates to the same loss on 1 rank, on 2,2,2 and on sp = 8
EV=(--eval_steps=2 --eval_dataset.hdf5_dataset.path="$WORK/train.h5" --eval_dataset.hdf5_dataset.seq_length=64
    --eval_dataset.hdf5_dataset.batch_size=8)
ck="params::$WORK/mha-sp-1_1_1_8/ckpt"
EV=("${COMMON[@]}" --llama.num_key_value_heads=8 "${EV[@]}")
e1=$("$BPT" eval "${EV[@]}" --load_checkpoint="$ck" 2>&1 | grep '^{')
e2=$("${MPI[@]}" "$BPT" eval "${EV[@]}" --load_checkpoint="$ck" --mesh_dim=2,2,2 2>&1 | grep '^{')
e3=$("${MPI[@]}" "$BPT" eval "${EV[@]}" "${SPC[@]}" --load_checkpoint="$ck" --mesh_dim=1,1,1,8 2>&1 | grep '^{')
python3 - "$e1" "$e2" "$e3" <<'PY' && ok "checkpoint of sp=8: the same eval loss on 1,1,1 / 2,2,2 / 1,1,1,8: $e1" || fail "eval of the sp=8 checkpoint: $e1 | $e2 | $e3"
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
assert a["tokens"] == b["tokens"] == c["tokens"] > 0
for x in (b, c):
    assert abs(x["loss"] - a["loss"]) <= 1e-5 * abs(a["loss"]), (a, x)
PY

# memory with sp: the state shrinks as 1/(fsdp*sp*tp), the attention activations as 1/sp,
# and the measured peak equals the plan
python3 - "$WORK/mha-sp-1_1_1_8/metrics.jsonl" \
    "$("$BPT" plan "${COMMON[@]}" --llama.num_key_value_heads=8 "${SPC[@]}" --mesh_dim=1,1,1,8 --world_size=8 | sed -n 's/.*peak .*(\([0-9]*\) bytes)/\1/p')" <<'PY' &&
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[-1]["peak_memory_bytes"] == int(sys.argv[2]), (rows[-1]["peak_memory_bytes"], sys.argv[2])
PY
ok "sp=8: measured peak == plan" || fail "sp=8: measured peak != plan"
for sp in 2 4 8; do
    "$BPT" plan "${COMMON[@]}" "${SPC[@]}" --mesh_dim=1,1,1,1 --world_size=1 > "$WORK/plansp1" &&
    "$BPT" plan "${COMMON[@]}" "${SPC[@]}" --mesh_dim=1,1,1,$sp --world_size=$sp > "$WORK/plansp" &&
    python3 - "$WORK/plansp1" "$WORK/plansp" "$sp" <<'PY' && ok "sp=$sp: state and kept activations x1/$sp per rank" || fail "sp=$sp: memory per rank"
import sys
import re
units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
sp = int(sys.argv[3])
def get(path, key):   # the first size on the line that starts with key
    for line in open(path):
        if line.strip().startswith(key):
            v, u = re.search(r"([0-9.]+) (B|KiB|MiB|GiB)", line).groups()
            return float(v) * units[u]
    raise KeyError(key)
for key in ("parameters", "gradients", "optimizer"):
    ratio = get(sys.argv[1], key) / get(sys.argv[2], key)
    assert 0.9 * sp <= ratio <= sp * 1.0001, (key, ratio)
ratio = get(sys.argv[1], "kept activations") / get(sys.argv[2], "kept activations")
assert abs(ratio / sp - 1) < 0.02, ("kept activations", ratio)   # printed to 3 digits
print(f"  sp={sp} ok")
PY
done

# bad meshes: one line naming mesh_dim and the numbers, every rank exits non-zero, fast
expect_error "mesh product != ranks" "mesh_dim.*'2,2,1'.*4 != 8" "${MPI[@]}" "$BPT" train "${COMMON[@]}" --mesh_dim=2,2,1
expect_error "two -1" "mesh_dim.*'-1,-1,2'.*-1" "${MPI[@]}" "$BPT" train "${COMMON[@]}" --mesh_dim=-1,-1,2
expect_error "tp does not divide heads" "mesh_dim.*tp=8.*num_key_value_heads=2" "${MPI[@]}" "$BPT" train \
    "${COMMON[@]}" --llama.num_key_value_heads=2 --mesh_dim=1,1,8
expect_error "batch not divisible by dp*fsdp" "mesh_dim.*dp\*fsdp=8.*batch_size=4" "${MPI[@]}" "$BPT" train \
    "${COMMON[@]}" --train_dataset.hdf5_dataset.batch_size=4 --mesh_dim=8,1,1
expect_error "non-numeric entry" "mesh_dim.*'2,two,2'" "${MPI[@]}" "$BPT" train "${COMMON[@]}" --mesh_dim=2,two,2
expect_error "sp does not divide the ranks" "mesh_dim.*'1,-1,1,3'.*8 ranks.*3" "${MPI[@]}" "$BPT" train "${COMMON[@]}" \
    --mesh_dim=1,-1,1,3
expect_error "seq_length not divisible by 2*sp" "mesh_dim.*sp=8.*seq_length=72.*2\*sp=16" "${MPI[@]}" "$BPT" train \
    "${COMMON[@]}" --llama.scan_query_chunk_size=4 --llama.scan_key_chunk_size=4 --llama.scan_mlp_chunk_size=4 --llama.scan_loss_chunk_size=4 \
    --train_dataset.hdf5_dataset.seq_length=72 --mesh_dim=1,1,1,8
expect_error "seq_length/sp below one attention chunk" "mesh_dim.*sp=8.*seq_length/sp=8.*chunk, 32" "${MPI[@]}" \
    "$BPT" train "${COMMON[@]}" --mesh_dim=1,1,1,8
expect_error "sequence_parallel: tp does not divide a rank's tokens" \
    "llama.sequence_parallel.*tp=8.*68 tokens" "${MPI[@]}" "$BPT" train "${COMMON[@]}" --llama.num_key_value_heads=8 \
    --llama.scan_query_chunk_size=4 --llama.scan_key_chunk_size=4 --llama.scan_mlp_chunk_size=4 --llama.scan_loss_chunk_size=4 \
    --train_dataset.hdf5_dataset.batch_size=1 --train_dataset.hdf5_dataset.seq_length=68 --mesh_dim=1,1,8
expect_error "sp with vanilla attention" "mesh_dim.*sp=2.*scan_attention" "${MPI[@]}" "$BPT" train "${COMMON[@]}" \
    "${SPC[@]}" --llama.scan_attention=false --mesh_dim=1,2,2,2
finish
