#!/usr/bin/env bash
# Faults that must lose nothing: a full disk under a checkpoint save (found before the
# save, and during it), under bpt ckpt import and under metrics.jsonl, on 1 and 4 ranks:
# one line naming the file and "No space left on device", a non-zero exit on every rank,
# no crash, the previous checkpoint and latest intact. A stale latest, a resume past
# total_steps, metrics.jsonl appended across resumes, arena_bytes below the plan.
# The full disks are small tmpfs mounts (root only; elsewhere those checks say so).
. "$(dirname "$0")/../e2e/lib.sh"
. "$TOP/tests/e2e/tiny.sh"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
MPI=("$MPIRUN" $MPIRUN_FLAGS)

"$BPT" data synth --output "$WORK/train.h5" --tokens 100000 --seed 4 >/dev/null || { fail "synthetic corpus"; finish; }
tiny_common "$WORK/train.h5"
COMMON=("${TINY[@]}" --eval_steps=0)
EVAL=(--eval_dataset.hdf5_dataset.path="$WORK/train.h5" --eval_dataset.hdf5_dataset.seq_length=64
      --eval_dataset.hdf5_dataset.batch_size=8 --eval_steps=1)

# no_crash NAME: the last run's stderr shows no signal and no second bpt line
no_crash() {
    if grep -qE "Segmentation fault|Signal: |core dumped|Aborted" "$WORK/err"; then
        fail "$1: crashed: $(grep -m1 -E 'Segmentation|Signal|core|Aborted' "$WORK/err")"
    else ok "$1: no crash"; fi
}
# intact NAME DIR: latest names a complete checkpoint that loads, and no .tmp is left
intact() {
    local dir=$2 name
    name=$(cat "$dir/ckpt/latest" 2>/dev/null)
    if [ -z "$name" ] || [ ! -f "$dir/ckpt/$name" ]; then fail "$1: latest ('$name') names no checkpoint: $(ls "$dir/ckpt")"; return; fi
    if ls "$dir/ckpt" | grep -q '\.tmp$'; then fail "$1: a partial file is left: $(ls "$dir/ckpt")"; return; fi
    if "$BPT" eval "${COMMON[@]}" "${EVAL[@]}" --load_checkpoint="params::$dir/ckpt/$name" >/dev/null 2>&1; then
        ok "$1: latest names $name, which loads; no partial file left"
    else fail "$1: $name does not load"; fi
}

tmpfs_ok=0
if [ "$(id -u)" -eq 0 ] && mkdir -p "$WORK/probe" && mount -t tmpfs -o size=64k tmpfs "$WORK/probe" 2>/dev/null; then
    umount "$WORK/probe"; tmpfs_ok=1
fi
# full SIZE: a fresh tmpfs of SIZE at $WORK/full
full() { umount "$WORK/full" 2>/dev/null; mkdir -p "$WORK/full" && mount -t tmpfs -o size="$1" tmpfs "$WORK/full"; }

if [ "$tmpfs_ok" -eq 1 ]; then
    # checkpoints of ~1.8 MB: the first fits, a later one does not (found before its save)
    for np in 1 4; do
        mesh=1,1,1; [ "$np" -eq 4 ] && mesh=1,2,2
        full 4600k
        expect_error "checkpoint on a full disk ($np rank(s))" "ckpt/step_[0-9]+\.h5\.tmp: No space left on device" \
            "${MPI[@]}" -np "$np" "$BPT" train "${COMMON[@]}" --mesh_dim=$mesh --total_steps=8 --save_model_freq=2 \
            --checkpointer.keep=0 --logger.output_dir="$WORK/full/r$np"
        no_crash "checkpoint on a full disk ($np rank(s))"
        intact "checkpoint on a full disk ($np rank(s))" "$WORK/full/r$np"
    done

    # the disk fills during the writes (the free-space check and reservation are off)
    full 4600k
    "${MPI[@]}" -np 1 "$BPT" train "${COMMON[@]}" --total_steps=2 --save_model_freq=2 --checkpointer.keep=0 \
        --logger.output_dir="$WORK/full/mid" >/dev/null 2>&1 || fail "two first checkpoints on 4600k"
    BPT_TEST_NO_SPACE_CHECK=1 expect_error "full disk during a save's writes" \
        "step_4\.h5\.tmp: cannot write .*: No space left on device" \
        "$BPT" train "${COMMON[@]}" --total_steps=4 --save_model_freq=2 --checkpointer.keep=0 --autoresume=true \
        --logger.output_dir="$WORK/full/mid"
    no_crash "full disk during a save's writes"
    intact "full disk during a save's writes" "$WORK/full/mid"

    # bpt ckpt import onto a full disk: the HF model is a bpt export of the first checkpoint
    "$BPT" ckpt export "$WORK/full/mid/ckpt/step_2.h5" --format safetensors --output "$WORK/hf" >/dev/null ||
        fail "export for the import check"
    full 600k
    expect_error "ckpt import onto a full disk" "imported\.h5\.tmp: No space left on device" \
        "$BPT" ckpt import "$WORK/hf" --output "$WORK/full/imported.h5"
    no_crash "ckpt import onto a full disk"
    [ ! -e "$WORK/full/imported.h5" ] && [ ! -e "$WORK/full/imported.h5.tmp" ] &&
        ok "ckpt import onto a full disk: no file left" || fail "ckpt import left: $(ls "$WORK/full")"
    full 300k
    BPT_TEST_NO_SPACE_CHECK=1 expect_error "ckpt import, the disk fills during the writes" \
        "imported\.h5\.tmp: cannot write .*No space left on device" \
        "$BPT" ckpt import "$WORK/hf" --output "$WORK/full/imported.h5"
    no_crash "ckpt import, the disk fills during the writes"

    # metrics.jsonl on a full disk: the error names it; a checkpoint is tried first
    # (milestones only: save_model_freq would save step 0 before the first step)
    for np in 1 4; do
        mesh=1,1,1; [ "$np" -eq 4 ] && mesh=1,2,2
        full 16k
        expect_error "metrics.jsonl on a full disk ($np rank(s))" \
            "(metrics\.jsonl: cannot write the metrics|tfevents[^:]*: cannot write the TensorBoard events): No space left on device \(no checkpoint of step [0-9]+ either: .*No space left on device" \
            "${MPI[@]}" -np "$np" "$BPT" train "${COMMON[@]}" --mesh_dim=$mesh --total_steps=2000 --save_model_freq=0 \
            --save_milestone_freq=1000 \
            --logger.output_dir="$WORK/full/m$np"
        no_crash "metrics.jsonl on a full disk ($np rank(s))"
    done
    umount "$WORK/full"
else
    ok "full-disk checks: not run here (mounting a tmpfs needs root)"
fi

# a latest naming a missing checkpoint: an error naming it, nothing started, nothing truncated
"$BPT" train "${COMMON[@]}" --total_steps=4 --save_model_freq=2 --logger.output_dir="$WORK/s" > "$WORK/s.out" 2>&1 ||
    fail "run s: $(grep -m1 '^bpt:' "$WORK/s.out")"
grep -q "^checkpoint: $WORK/s/ckpt/step_4.h5\$" "$WORK/s.out" && ok "the last line names the checkpoint file" ||
    fail "last line: $(tail -1 "$WORK/s.out")"
lines=$(wc -l < "$WORK/s/metrics.jsonl")
echo step_9.h5 > "$WORK/s/ckpt/latest"
expect_error "autoresume with a stale latest" "autoresume: .*latest names .*step_9\.h5, which does not exist" \
    "$BPT" train "${COMMON[@]}" --total_steps=8 --autoresume=true --logger.output_dir="$WORK/s"
[ "$(wc -l < "$WORK/s/metrics.jsonl")" -eq "$lines" ] && ok "metrics.jsonl untouched by the failed start" ||
    fail "metrics.jsonl changed: $lines -> $(wc -l < "$WORK/s/metrics.jsonl")"
expect_error "load_checkpoint DIR with a stale latest" "load_checkpoint: .*step_9\.h5, which does not exist" \
    "$BPT" eval "${COMMON[@]}" "${EVAL[@]}" --load_checkpoint="params::$WORK/s/ckpt"
# a resume appends to metrics.jsonl; a resume past total_steps says so and exits 0
echo step_4.h5 > "$WORK/s/ckpt/latest"
"$BPT" train "${COMMON[@]}" --total_steps=6 --save_model_freq=2 --autoresume=true --logger.output_dir="$WORK/s" \
    > "$WORK/s2.out" 2>&1 && [ "$(wc -l < "$WORK/s/metrics.jsonl")" -eq $((lines + 2)) ] &&
    ok "a resume appends to metrics.jsonl ($lines + 2 lines)" || fail "append: $(wc -l < "$WORK/s/metrics.jsonl") lines"
out=$("$BPT" train "${COMMON[@]}" --total_steps=6 --autoresume=true --logger.output_dir="$WORK/s" 2>&1) &&
    echo "$out" | grep -q "nothing to train: .*step_6.h5 is at step 6 and total_steps is 6" && ! echo "$out" | grep -q nan &&
    ok "a resume at total_steps: $(echo "$out" | tail -1)" || fail "resume at total_steps: $out"

# bpt eval names the checkpoint and step it loaded; ckpt inspect takes the directory
"$BPT" eval "${COMMON[@]}" "${EVAL[@]}" --load_checkpoint="params::$WORK/s/ckpt" > "$WORK/e.out" 2> "$WORK/e.err" &&
    grep -q "^bpt eval: $WORK/s/ckpt/step_6.h5 (saved at step 6)" "$WORK/e.err" &&
    ok "eval says what it loaded: $(cat "$WORK/e.err")" || fail "eval stderr: $(cat "$WORK/e.err")"
"$BPT" ckpt inspect "$WORK/s/ckpt" | grep -q "step_6.h5" && ok "ckpt inspect DIR" || fail "ckpt inspect DIR"
# eval checks what it uses only: a 64-token model with no train_dataset given (whose
# default seq_length, 1024, exceeds llama.max_sequence_length)
MODEL=("${TINY_MODEL[@]:2}" --llama.max_sequence_length=64)   # without demo.yaml's train_dataset
out=$("$BPT" eval "${MODEL[@]}" "${EVAL[@]}" --load_checkpoint="params::$WORK/s/ckpt" 2>&1) &&
    echo "$out" | grep -q '"loss"' && ok "eval of a 64-token model without a train_dataset" || fail "eval, small model: $out"

# arena_bytes below the planned peak: said before the first step, on every rank
expect_error "arena_bytes below the plan (2 ranks)" "bad value for arena_bytes: '1.00 MiB' \(below the planned peak" \
    "${MPI[@]}" -np 2 "$BPT" train "${COMMON[@]}" --mesh_dim=1,2,1 --arena_bytes=1MiB --total_steps=2 \
    --logger.output_dir="$WORK/arena"
finish
