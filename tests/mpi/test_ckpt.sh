#!/usr/bin/env bash
# Checkpoints: saved on one mesh, loaded on any other with the same evaluation and the
# same continued training; exact resume; SIGKILL in the middle of a save; keep and
# milestones; bf16; h5py reads the file; corruption on a multi-rank load.
. "$(dirname "$0")/../e2e/lib.sh"
. "$TOP/tests/e2e/tiny.sh"
need_python numpy h5py
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE   # one thread per rank: 8 ranks share 2 cores
MPI=("$MPIRUN" $MPIRUN_FLAGS)

"$BPT" data synth --output "$WORK/train.h5" --tokens 200000 --seed 4 >/dev/null &&
"$BPT" data synth --output "$WORK/eval.h5" --tokens 50000 --seed 5 >/dev/null || { fail "synthetic corpus"; finish; }
tiny_common "$WORK/train.h5" "$WORK/eval.h5"
COMMON=("${TINY[@]}" --eval_steps=0 --optimizer.adamw_optimizer.lr=1e-2 --optimizer.adamw_optimizer.lr_warmup_steps=2)
run() {   # run NP MESH DIR [args...]: train on NP ranks
    local np=$1 mesh=$2 dir=$3; shift 3
    timeout 300 "${MPI[@]}" -np "$np" "$BPT" train "${COMMON[@]}" --mesh_dim="$mesh" \
        --logger.output_dir="$dir" "$@" > "$dir.out" 2>&1
}
same_losses() {   # same_losses A B FIRST TOL: metrics of B equal A's from step FIRST on
    python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
a = {r["step"]: r for r in map(json.loads, open(sys.argv[1]))}
b = [json.loads(l) for l in open(sys.argv[2])]
first, tol = int(sys.argv[3]), float(sys.argv[4])
b = [r for r in b if r["step"] >= first]
assert b and b[-1]["step"] == max(a), ([r["step"] for r in b], max(a))
worst = max(abs(r["loss"] - a[r["step"]]["loss"]) / abs(a[r["step"]]["loss"]) for r in b)
print(f"steps {first}..{b[-1]['step']}: max loss rel diff {worst:.1e}")
assert worst <= tol, worst
PY
}

# A: 12 steps on 2,2,2, saving at 6 and 12 (kept): the reference
run 8 2,2,2 "$WORK/A" --total_steps=12 --save_model_freq=6 --checkpointer.keep=0 ||
    { fail "reference run on 2,2,2: $(grep -m1 '^bpt:' "$WORK/A.out")"; finish; }
CK="$WORK/A/ckpt/step_6.h5"
ev_ref=$("${MPI[@]}" -np 8 "$BPT" eval "${COMMON[@]}" --mesh_dim=2,2,2 --eval_steps=2 --load_checkpoint="params::$CK")

# any mesh: the same evaluation and the same continued training
for spec in 8:1,4,2 8:8,1,1 1:1,1,1 4:1,2,2; do
    np=${spec%%:*}; mesh=${spec#*:}
    ev=$("${MPI[@]}" -np "$np" "$BPT" eval "${COMMON[@]}" --mesh_dim="$mesh" --eval_steps=2 --load_checkpoint="params::$CK")
    python3 -c "import json,sys; a=json.loads('$ev_ref'); b=json.loads('$ev'); assert abs(a['loss']-b['loss'])<=1e-5*a['loss'] and a['tokens']==b['tokens'], (a,b)" &&
        ok "saved on 2,2,2, evaluated on $mesh: $ev" || fail "eval on $mesh: $ev vs $ev_ref"
    dir="$WORK/cont-${mesh//,/_}"
    if run "$np" "$mesh" "$dir" --total_steps=12 --load_checkpoint="trainstate::$CK"; then
        res=$(same_losses "$WORK/A/metrics.jsonl" "$dir/metrics.jsonl" 6 1e-5 2>&1) &&
            ok "saved on 2,2,2, training continued on $mesh: $res" || fail "continued on $mesh: $res"
    else fail "continued run on $mesh: $(grep -m1 '^bpt:' "$dir.out")"; fi
done

# exact resume on the same mesh: 6 steps, stop, autoresume to 12 == 12 straight, bit for bit
run 8 2,2,2 "$WORK/B" --total_steps=6 --save_model_freq=6 --autoresume=true &&
run 8 2,2,2 "$WORK/B" --total_steps=12 --save_model_freq=6 --autoresume=true &&
grep -q "resumed from .*step_6.h5 at step 6" "$WORK/B.out" &&
res=$(same_losses "$WORK/A/metrics.jsonl" "$WORK/B/metrics.jsonl" 0 0 2>&1) &&
python3 - "$WORK/A/ckpt/step_12.h5" "$WORK/B/ckpt/step_12.h5" <<'PY' && ok "exact resume on 2,2,2: $res, parameters and moments bit-identical" || fail "exact resume: $res"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    for g in ("params", "optimizer/m", "optimizer/v"):
        for name in a[g]:
            assert np.array_equal(a[g][name][()], b[g][name][()]), (g, name)
    assert a.attrs["tokens_consumed"] == b.attrs["tokens_consumed"] == 12 * 8 * 64
    assert a["data/tokens_consumed"][()] == 12 * 8 * 64 and a["optimizer/step"][()] == 12
    assert a.attrs["mesh"] == "2,2,2" and a.attrs["step"] == 12
PY

# exact resume with dtype bf16 (bf16 weight copies, gathered as bf16 over fsdp=4): the
# copies are made from the fp32 masters each step, so a resume is bit-identical too
run 8 1,4,2 "$WORK/C16" --total_steps=8 --save_model_freq=8 --dtype=bf16 &&
run 8 1,4,2 "$WORK/D16" --total_steps=4 --save_model_freq=4 --autoresume=true --dtype=bf16 &&
run 8 1,4,2 "$WORK/D16" --total_steps=8 --save_model_freq=4 --autoresume=true --dtype=bf16 &&
grep -q "resumed from .*step_4.h5 at step 4" "$WORK/D16.out" &&
res=$(same_losses "$WORK/C16/metrics.jsonl" "$WORK/D16/metrics.jsonl" 0 0 2>&1) &&
python3 - "$WORK/C16/ckpt/step_8.h5" "$WORK/D16/ckpt/step_8.h5" <<'PY' && ok "dtype bf16, exact resume on 1,4,2: $res, parameters and moments bit-identical" || fail "bf16 exact resume: $res $(grep -m1 '^bpt:' "$WORK/D16.out")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    for g in ("params", "optimizer/m", "optimizer/v"):
        for name in a[g]:
            assert np.array_equal(a[g][name][()], b[g][name][()]), (g, name)
PY

# autoresume with nothing to resume starts fresh
run 2 1,2,1 "$WORK/fresh" --total_steps=2 --autoresume=true && ! grep -q resumed "$WORK/fresh.out" &&
    ok "autoresume without a checkpoint starts fresh" || fail "autoresume fresh: $(tail -2 "$WORK/fresh.out")"

# SIGKILL in the middle of a save: the previous checkpoint and latest survive, and
# autoresume continues with the losses of an uninterrupted run
run 2 1,2,1 "$WORK/D" --total_steps=12 --save_model_freq=3 --checkpointer.keep=0 || fail "uninterrupted run"
( BPT_TEST_SAVE_PAUSE=9:60 run 2 1,2,1 "$WORK/K" --total_steps=12 --save_model_freq=3 --autoresume=true ) &
for i in $(seq 1 600); do [ -f "$WORK/K/ckpt/step_9.h5.tmp" ] && break; sleep 0.1; done
sleep 1
pkill -9 -f -- "--logger.output_dir=$WORK/K" ; wait 2>/dev/null || true
if [ -f "$WORK/K/ckpt/step_9.h5.tmp" ] && [ "$(cat "$WORK/K/ckpt/latest")" = step_6.h5 ] && [ ! -f "$WORK/K/ckpt/step_9.h5" ]; then
    ok "killed inside the save of step 9: latest still names step_6.h5"
else fail "kill during save: $(ls "$WORK/K/ckpt") latest=$(cat "$WORK/K/ckpt/latest" 2>/dev/null)"; fi
"$BPT" eval "${COMMON[@]}" --eval_steps=1 --load_checkpoint="params::$WORK/K/ckpt/step_6.h5" >/dev/null &&
    ok "the previous checkpoint loads" || fail "step_6.h5 after the kill"
run 2 1,2,1 "$WORK/K" --total_steps=12 --save_model_freq=3 --autoresume=true &&
grep -q "at step 6" "$WORK/K.out" && res=$(same_losses "$WORK/D/metrics.jsonl" "$WORK/K/metrics.jsonl" 6 0 2>&1) &&
    ok "autoresume after the kill: $res (bit-identical)" || fail "autoresume after kill: $res $(grep -m1 '^bpt:' "$WORK/K.out")"

# keep and milestones: keep the newest 2 regular checkpoints, every milestone
run 2 1,2,1 "$WORK/M" --total_steps=10 --save_model_freq=2 --save_milestone_freq=5 --checkpointer.keep=2 &&
files=$(cd "$WORK/M/ckpt" && ls | tr '\n' ' ') &&
[ "$files" = "latest milestone_10.h5 milestone_5.h5 step_6.h5 step_8.h5 " ] && [ "$(cat "$WORK/M/ckpt/latest")" = milestone_10.h5 ] &&
    ok "keep 2 + milestones: $files" || fail "keep/milestones: $files"

# bf16 checkpoints: 16-bit patterns h5py reads, close to the fp32 save of the same state
run 2 1,2,1 "$WORK/H" --total_steps=3 --save_model_freq=3 --checkpointer.float_dtype=bf16 &&
python3 - "$WORK/H/ckpt/step_3.h5" "$WORK/D/ckpt/step_3.h5" <<'PY' && ok "bf16 checkpoint: uint16 bfloat16 patterns, within bf16 rounding of fp32" || fail "bf16 checkpoint"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as h, h5py.File(sys.argv[2]) as f:
    assert h.attrs["float_dtype"] == "bf16"
    for name in f["params"]:
        d = h["params"][name]
        assert d.dtype == np.uint16 and d.attrs["dtype"] == "bfloat16", (name, d.dtype)
        x = (d[()].astype(np.uint32) << 16).view(np.float32)
        y = f["params"][name][()]
        assert np.all(np.abs(x - y) <= 2 ** -8 * np.abs(y) + 1e-30), name
PY
run 2 1,2,1 "$WORK/H2" --total_steps=4 --load_checkpoint="trainstate::$WORK/H/ckpt/step_3.h5" &&
    ok "training resumes from a bf16 checkpoint" || fail "resume from bf16: $(grep -m1 '^bpt:' "$WORK/H2.out")"

# a corrupted tensor found on a multi-rank load: one line naming the file and tensor
cp "$WORK/A/ckpt/step_6.h5" "$WORK/corrupt.h5"
python3 - "$WORK/corrupt.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f["params/model.layers.1.mlp.up_proj.weight"].id.get_chunk_info(0).byte_offset
with open(sys.argv[1], "r+b") as f:
    f.seek(off + 100); b = f.read(1); f.seek(off + 100); f.write(bytes([b[0] ^ 0x5a]))
PY
expect_error "corrupted tensor, 4 ranks" "corrupt.h5.*model.layers.1.mlp.up_proj.weight" \
    "${MPI[@]}" -np 4 "$BPT" eval "${COMMON[@]}" --mesh_dim=1,2,2 --eval_steps=1 --load_checkpoint="params::$WORK/corrupt.h5"
expect_error "shape mismatch names both shapes" "model.embed_tokens.weight.*\[256, 64\].*\[256, 32\]" \
    "$BPT" eval "${COMMON[@]}" --llama.hidden_size=32 --eval_steps=1 --load_checkpoint="params::$CK"
finish
