#!/usr/bin/env bash
# The figure scripts run (bench/figures.py, matplotlib): memory vs T, the plan and the
# mesh tables from the benchmark outputs kept in bench/results/, and a loss curve from
# a fresh run's metrics.jsonl (resumed once: appended rows); each a non-empty PNG.
. "$(dirname "$0")/lib.sh"
need_python matplotlib
export OMP_NUM_THREADS=1
png() {   # png FILE: a PNG of some size
    [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$1")" -gt 5000 ]
}
for k in memory plan mesh; do
    out=$(python3 "$TOP/bench/figures.py" $k "$TOP/bench/results/$k.md" "$WORK/$k.png" 2>&1) && png "$WORK/$k.png" &&
        ok "$k figure from bench/results/$k.md: $(stat -c %s "$WORK/$k.png") bytes" || fail "$k figure: $out"
done
"$BPT" data synth --output "$WORK/t.h5" --tokens 50000 --seed 1 >/dev/null
A=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256 --train_dataset.hdf5_dataset.path="$WORK/t.h5"
   --train_dataset.hdf5_dataset.seq_length=64 --eval_steps=0 --log_freq=1 --logger.output_dir="$WORK/run" --save_model_freq=3)
"$BPT" train "${A[@]}" --total_steps=3 >/dev/null 2>&1 && "$BPT" train "${A[@]}" --total_steps=6 --autoresume=true >/dev/null 2>&1 &&
out=$(PYTHON=python3 "$TOP/bench/plot_metrics" "$WORK/loss.png" "$WORK/run" 2>&1) && png "$WORK/loss.png" &&
    ok "loss curve from metrics.jsonl (6 steps over a resume)" || fail "loss curve: $out"
out=$(python3 "$TOP/bench/figures.py" memory "$WORK/nothing.md" "$WORK/x.png" 2>&1); [ $? -ne 0 ] &&
    ok "a missing input is an error: $(echo "$out" | tail -1)" || fail "missing input accepted"
finish
