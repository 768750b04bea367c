#!/usr/bin/env bash
# Training end to end: the loss falls, metrics are complete, checkpoints resume exactly,
# bpt eval reads them, h5dump reads them.
. "$(dirname "$0")/lib.sh"

"$BPT" data synth --output "$WORK/train.h5" --tokens 300000 --seed 1 >/dev/null &&
"$BPT" data synth --output "$WORK/eval.h5" --tokens 50000 --seed 2 >/dev/null && ok "synthetic corpus" || fail "synthetic corpus"

COMMON=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256
        --llama.scan_query_chunk_size=32 --llama.scan_key_chunk_size=64
        --llama.scan_mlp_chunk_size=32 --llama.scan_loss_chunk_size=32
        --train_dataset.hdf5_dataset.path="$WORK/train.h5" --eval_dataset.hdf5_dataset.path="$WORK/eval.h5"
        --train_dataset.hdf5_dataset.seq_length=128 --train_dataset.hdf5_dataset.batch_size=4
        --eval_dataset.hdf5_dataset.seq_length=128 --eval_dataset.hdf5_dataset.batch_size=4
        --optimizer.adamw_optimizer.lr=1e-2 --optimizer.adamw_optimizer.lr_warmup_steps=10
        --optimizer.adamw_optimizer.lr_decay_steps=120 --log_freq=1 --eval_steps=1 --peak_flops=1e11)

# 1. the loss falls clearly
"$MPIRUN" $MPIRUN_FLAGS -np 1 "$BPT" train "${COMMON[@]}" --total_steps=120 --save_model_freq=0 \
    --logger.output_dir="$WORK/run1" > "$WORK/run1.out" 2>&1 || { fail "training run"; cat "$WORK/run1.out"; finish; }
python3 - "$WORK/run1/metrics.jsonl" <<'PY' && ok "loss falls; metrics complete" || fail "loss falls / metrics"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = {"step", "loss", "accuracy", "learning_rate", "gradient_norm", "param_norm",
        "tokens_per_second", "mfu", "peak_memory_bytes", "eval_loss", "eval_accuracy"}
assert len(rows) == 120, len(rows)
assert all(keys <= set(r) for r in rows), set(rows[0])
first = sum(r["loss"] for r in rows[:5]) / 5
last = sum(r["loss"] for r in rows[-5:]) / 5
print(f"  loss {first:.3f} -> {last:.3f}, eval {rows[0]['eval_loss']:.3f} -> {rows[-1]['eval_loss']:.3f}")
assert first > 5.0 and last < first - 1.5, (first, last)
assert rows[-1]["eval_loss"] < rows[0]["eval_loss"] - 1.0
assert rows[-1]["peak_memory_bytes"] > 0 and all(r["peak_memory_bytes"] == rows[0]["peak_memory_bytes"] for r in rows)
PY

# 2. exact resume: 20 steps straight == 10 steps, save, restart from trainstate, 10 more
R=(--total_steps=20 --save_model_freq=10 --checkpointer.save_optimizer_state=true)
"$BPT" train "${COMMON[@]}" "${R[@]}" --logger.output_dir="$WORK/straight" > "$WORK/s.out" 2>&1 &&
"$BPT" train "${COMMON[@]}" "${R[@]}" --total_steps=10 --logger.output_dir="$WORK/half" > "$WORK/h1.out" 2>&1 &&
cp "$WORK/half/ckpt/step_10.h5" "$WORK/half10.h5" &&
"$BPT" train "${COMMON[@]}" "${R[@]}" --load_checkpoint="trainstate::$WORK/half10.h5" \
    --logger.output_dir="$WORK/half" > "$WORK/h2.out" 2>&1 || { fail "resume runs"; tail -5 "$WORK"/*.out; }
python3 - "$WORK/straight/metrics.jsonl" "$WORK/half/metrics.jsonl" <<'PY' && ok "exact resume: bit-identical losses" || fail "exact resume"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in b] == list(range(20)), [r["step"] for r in b]
for x, y in zip(a, b):
    assert x["loss"] == y["loss"] and x["param_norm"] == y["param_norm"], (x["step"], x["loss"], y["loss"])
PY
h5dump -H "$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")" > "$WORK/dump" 2>&1 && grep -q "model.layers.1.mlp.down_proj.weight" "$WORK/dump" &&
grep -q 'GROUP "optimizer"' "$WORK/dump" && ok "h5dump reads the checkpoint" || fail "h5dump"
cmp -s <(h5dump -d /params/model.norm.weight "$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")" | tail -n +2) \
       <(h5dump -d /params/model.norm.weight "$WORK/half/ckpt/$(cat "$WORK/half/ckpt/latest")" | tail -n +2) &&
ok "resumed run ends with identical parameters" || fail "parameters after resume differ"

# 3. bpt eval on the checkpoint: one batch of 4 x 128 targets
out=$("$BPT" eval "${COMMON[@]}" --eval_steps=1 --load_checkpoint="params::$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")") &&
echo "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert d["tokens"]==512 and 0<d["loss"]<6, d' &&
ok "bpt eval: $out" || fail "bpt eval: $out"

# a checkpoint directory stands for the checkpoint its latest names
out2=$("$BPT" eval "${COMMON[@]}" --eval_steps=1 --load_checkpoint="params::$WORK/straight/ckpt") &&
out1=$("$BPT" eval "${COMMON[@]}" --eval_steps=1 --load_checkpoint="params::$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")") &&
[ "$out1" = "$out2" ] && ok "load_checkpoint=params::DIR follows DIR/latest" || fail "params::DIR: $out2 vs $out1"
expect_error "directory without latest" "load_checkpoint.*without a 'latest'" "$BPT" eval "${COMMON[@]}" --eval_steps=1 \
    --load_checkpoint="params::$WORK"

# 4. gradient accumulation: 2 micro-batches of 2 rows == one batch of 4 rows (same tokens)
"$BPT" train "${COMMON[@]}" --total_steps=5 --train_dataset.hdf5_dataset.batch_size=2 \
    --optimizer.accumulate_gradient_steps=2 --eval_steps=0 --logger.output_dir="$WORK/acc2" > "$WORK/a2.out" 2>&1 &&
"$BPT" train "${COMMON[@]}" --total_steps=5 --eval_steps=0 --logger.output_dir="$WORK/acc1" > "$WORK/a1.out" 2>&1 &&
python3 - "$WORK/acc1/metrics.jsonl" "$WORK/acc2/metrics.jsonl" <<'PY' && ok "accumulate_gradient_steps=2 equals the double batch" || fail "gradient accumulation"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 5
for x, y in zip(a, b):
    for k in ("loss", "gradient_norm", "param_norm"):
        assert abs(x[k] - y[k]) <= 1e-5 * abs(x[k]), (x["step"], k, x[k], y[k])
PY

# 5. a corrupted checkpoint is a clear error naming the file
cp "$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")" "$WORK/bad.h5" && truncate -s 20000 "$WORK/bad.h5"
expect_error "truncated checkpoint" "bad.h5" "$BPT" eval "${COMMON[@]}" --eval_steps=1 --load_checkpoint="params::$WORK/bad.h5"
expect_error "shape mismatch" "model.embed_tokens.weight.*shape" "$BPT" eval "${COMMON[@]}" --eval_steps=1 \
    --llama.hidden_size=32 --load_checkpoint="params::$WORK/straight/ckpt/$(cat "$WORK/straight/ckpt/latest")"
finish
