#!/usr/bin/env bash
# TensorBoard event files, read by TensorBoard's own reader (EventAccumulator, from the
# tensorboard package): every scalar equals metrics.jsonl at every step, across a resume
# (a second event file in the same directory) and on 2 ranks (rank 0 writes); the config
# is a text summary; a corrupted record is what the reader refuses (its CRC-32C check).
# logger.tensorboard=false writes nothing; an event file on a full disk is an error.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/e2e/tiny.sh"
need_python numpy tensorboard
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

"$BPT" data synth --output "$WORK/train.h5" --tokens 100000 --seed 2 >/dev/null || { fail "synthetic corpus"; finish; }
tiny_common "$WORK/train.h5" "$WORK/train.h5"
COMMON=("${TINY[@]}" --eval_steps=1 --save_model_freq=3)

# same DIR: the event files of DIR/tensorboard hold what DIR/metrics.jsonl holds
same() {
    python3 - "$1" <<'PY'
import json, sys, os, numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
acc = ea.EventAccumulator(os.path.join(d, "tensorboard"), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
acc.Reload()
keys = ["loss", "accuracy", "learning_rate", "gradient_norm", "param_norm", "tokens_per_second", "mfu",
        "peak_memory_bytes", "eval_loss", "eval_accuracy"]
n = 0
for k in keys + ["comm_bytes/" + a for a in ("dp", "fsdp", "tp", "sp", "batch", "world")]:
    got = {e.step: e.value for e in acc.Scalars(k)}
    want = {r["step"]: (r["comm_bytes"][k.split("/")[1]] if k.startswith("comm_bytes/") else r[k]) for r in rows}
    assert sorted(got) == sorted(want), (k, sorted(got), sorted(want))
    # simple_value is a float32; metrics.jsonl prints 8 significant digits (6 for the
    # timing-derived tokens_per_second and mfu), integers exactly
    tol = 1e-5 if k in ("tokens_per_second", "mfu") else 2e-7
    for s, v in want.items():
        if k == "peak_memory_bytes" or k.startswith("comm_bytes/"): assert np.float32(v) == np.float32(got[s]), (k, s, v, got[s])
        else: assert abs(got[s] - v) <= tol * abs(v) + 1e-30, (k, s, v, got[s])
        n += 1
cfg = acc.Tensors("config")
assert cfg and b"mesh_dim:" in cfg[0].tensor_proto.string_val[0], cfg
print(f"{n} scalars over steps {rows[0]['step']}..{rows[-1]['step']} equal metrics.jsonl; "
      f"{len(os.listdir(os.path.join(d, 'tensorboard')))} event file(s); the config as text")
PY
}

"$BPT" train "${COMMON[@]}" --total_steps=4 --logger.output_dir="$WORK/a" > "$WORK/a.out" 2>&1 &&
    grep -q "^tensorboard: $WORK/a/tensorboard/events.out.tfevents\." "$WORK/a.out" &&
    res=$(same "$WORK/a" 2>&1) && ok "one run: $res" || fail "one run: $res $(grep -m1 '^bpt:' "$WORK/a.out")"
sleep 1   # a second file with a later name
"$BPT" train "${COMMON[@]}" --total_steps=7 --autoresume=true --logger.output_dir="$WORK/a" > "$WORK/a2.out" 2>&1 &&
    res=$(same "$WORK/a" 2>&1) && [ "$(ls "$WORK/a/tensorboard" | wc -l)" -eq 2 ] &&
    ok "resumed: $res" || fail "resume: $res $(grep -m1 '^bpt:' "$WORK/a2.out")"
"$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train "${COMMON[@]}" --mesh_dim=1,2,1 --total_steps=3 \
    --logger.output_dir="$WORK/b" > "$WORK/b.out" 2>&1 && res=$(same "$WORK/b" 2>&1) &&
    [ "$(ls "$WORK/b/tensorboard" | wc -l)" -eq 1 ] && ok "2 ranks (rank 0 writes one file): $res" ||
    fail "2 ranks: $res $(grep -m1 '^bpt:' "$WORK/b.out")"

# the reader checks each record's CRC-32C: a flipped byte in a length loses that file's records
cp -r "$WORK/b/tensorboard" "$WORK/corrupt"
f=$(ls "$WORK/corrupt"/* | head -1)
printf '\x5a' | dd of="$f" bs=1 seek=9 conv=notrunc 2>/dev/null
python3 - "$WORK/corrupt" <<'PY' && ok "a corrupted length CRC: the reader drops the records (so ours are checked)" || fail "corrupt CRC accepted"
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})
acc.Reload()
assert "loss" not in acc.Tags()["scalars"], acc.Tags()
PY

"$BPT" train "${COMMON[@]}" --total_steps=2 --logger.tensorboard=false --logger.output_dir="$WORK/c" >/dev/null 2>&1 &&
    [ ! -e "$WORK/c/tensorboard" ] && ok "logger.tensorboard=false writes no event file" || fail "tensorboard=false"

if [ "$(id -u)" -eq 0 ] && mkdir -p "$WORK/full" && mount -t tmpfs -o size=12k tmpfs "$WORK/full" 2>/dev/null; then
    expect_error "event file on a full disk" "(tfevents.*|metrics\.jsonl): cannot write the (TensorBoard events|metrics): No space left on device" \
        "$BPT" train "${COMMON[@]}" --total_steps=2000 --save_model_freq=0 --eval_steps=0 --logger.output_dir="$WORK/full/r"
    umount "$WORK/full"
else
    ok "event file on a full disk: not checked here (mounting a tmpfs needs root)"
fi
finish
