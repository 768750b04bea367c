#!/usr/bin/env bash
# Jobs that survive a cluster, under mpirun (tests/slurm/ does the same under Slurm):
# preemption by SIGUSR1 checkpoints and exits 75, and the rerun continues with the
# losses of an uninterrupted run; a stalled rank trips the watchdog; a killed rank
# ends the job and the next run resumes from the last complete checkpoint.
. "$(dirname "$0")/../e2e/lib.sh"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
MPI=("$MPIRUN" $MPIRUN_FLAGS -np 2)
"$BPT" data synth --output "$WORK/train.h5" --tokens 300000 --seed 6 >/dev/null || { fail "synthetic corpus"; finish; }
A=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --dtype=fp32 --mesh_dim=1,2,1
   --train_dataset.hdf5_dataset.path="$WORK/train.h5" --train_dataset.hdf5_dataset.seq_length=128
   --eval_steps=0 --log_freq=1 --total_steps=300 --peak_flops=1e11 --save_model_freq=100
   --checkpointer.save_optimizer_state=true --autoresume=true)

# the uninterrupted reference
"${MPI[@]}" "$BPT" train "${A[@]}" --logger.output_dir="$WORK/ref" > "$WORK/ref.out" 2>&1 || fail "reference run"

# SIGUSR1 to mpirun (it forwards it to every rank) in the middle of the run
"${MPI[@]}" "$BPT" train "${A[@]}" --logger.output_dir="$WORK/pre" > "$WORK/pre.out" 2>&1 &
pid=$!
for i in $(seq 1 300); do [ -s "$WORK/pre/metrics.jsonl" ] && [ "$(wc -l < "$WORK/pre/metrics.jsonl")" -ge 20 ] && break; sleep 0.1; done
kill -USR1 $pid
rc=0; wait $pid || rc=$?
step=$(sed -n 's/^bpt: preempted at step \([0-9]*\).*/\1/p' "$WORK/pre.out")
[ "$rc" -eq 75 ] && [ -n "$step" ] && [ "$(cat "$WORK/pre/ckpt/latest")" = "step_$step.h5" ] &&
    ok "SIGUSR1: every rank stopped after step $step, checkpointed, exit 75" || fail "preemption: rc=$rc $(tail -3 "$WORK/pre.out")"
"${MPI[@]}" "$BPT" train "${A[@]}" --logger.output_dir="$WORK/pre" > "$WORK/pre2.out" 2>&1 &&
grep -q "at step $step" "$WORK/pre2.out" &&
python3 - "$WORK/ref/metrics.jsonl" "$WORK/pre/metrics.jsonl" <<'PY' && ok "requeued run resumed at step $step: all 300 losses bit-identical to the uninterrupted run" || fail "resume after preemption"
import json, sys
a = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
b = {}
for r in map(json.loads, open(sys.argv[2])): b[r["step"]] = r["loss"]   # the rerun overwrites nothing: steps are disjoint
assert sorted(b) == sorted(a) == list(range(300)), (len(a), len(b))
assert all(a[s] == b[s] for s in a), [s for s in a if a[s] != b[s]][:5]
PY

# a stalled rank: the others wait in a collective; the watchdog names it and aborts
t0=$(date +%s)
expect_error "watchdog" "watchdog: rank 0 waited [0-9]+ s in (all-reduce|error-agreement) on axis (batch|world) at step 5; aborting" \
    "${MPI[@]}" -x BPT_TEST_STALL_RANK=1 -x BPT_TEST_STALL_STEP=5 "$BPT" train "${A[@]}" --comm_timeout_s=3 \
    --logger.output_dir="$WORK/wd"
dt=$(( $(date +%s) - t0 ))
[ "$dt" -le 20 ] && ok "the stalled job ended in ${dt}s (timeout 3 s)" || fail "watchdog took ${dt}s"

# a rank killed with SIGKILL: the job ends, the next run resumes from the last complete checkpoint
"${MPI[@]}" "$BPT" train "${A[@]}" --save_model_freq=50 --logger.output_dir="$WORK/kill" > "$WORK/kill.out" 2>&1 &
pid=$!
for i in $(seq 1 600); do [ -f "$WORK/kill/ckpt/step_100.h5" ] && break; sleep 0.1; done
command -v pgrep >/dev/null || { fail "missing test dependency: pgrep (package procps)"; kill $pid; finish; }
victim=$(pgrep -f -- "--logger.output_dir=$WORK/kill" | grep -v "^$pid$" | tail -n 1)
[ -n "$victim" ] || { fail "rank kill: no rank of the job found to kill"; kill $pid; finish; }
t0=$(date +%s); kill -9 "$victim"; rc=0; wait $pid || rc=$?; dt=$(( $(date +%s) - t0 ))
[ "$rc" -ne 0 ] && [ "$dt" -le 20 ] && ok "a rank killed: the job ended in ${dt}s with status $rc" || fail "rank kill: rc=$rc after ${dt}s"
last=$(cat "$WORK/kill/ckpt/latest")
"${MPI[@]}" "$BPT" train "${A[@]}" --save_model_freq=50 --logger.output_dir="$WORK/kill" > "$WORK/kill2.out" 2>&1 &&
grep -q "resumed from .*$last" "$WORK/kill2.out" && ok "the next run resumed from $last" || fail "resume after kill: $(grep -m1 -E 'bpt:|resumed' "$WORK/kill2.out")"
finish
