#!/usr/bin/env bash
# sp_context.sh — the longest sequence the demo model trains on at a fixed per-rank
# memory budget, against the number of ranks in the sequence ring (mesh 1,1,1,sp):
# the plan finds the largest power-of-two T whose per-rank peak fits, then one real
# training step at that T on sp ranks measures the peak (metrics.jsonl).
#   bench/sp_context.sh [BUDGET_MIB (48)] [MAX_SP (8)]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=$(( ${1:-48} * 1024 * 1024 )); maxsp=${2:-8}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
FLAGS="--oversubscribe"; [ "$(id -u)" -eq 0 ] && FLAGS="$FLAGS --allow-run-as-root"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
src/bpt data synth --output "$W/train.h5" --tokens 3000000 --seed 1 >/dev/null
A=(--config jobs/configs/demo.yaml --train_dataset.hdf5_dataset.path="$W/train.h5" --train_dataset.hdf5_dataset.batch_size=1
   --eval_steps=0 --total_steps=1 --log_freq=1 --save_model_freq=0 --logger.tensorboard=false --peak_flops=1e11)
peak() { src/bpt plan "${A[@]}" "$@" | sed -n 's/.*peak .*(\([0-9]*\) bytes)/\1/p'; }
echo "| sp (ranks) | largest T in $(( budget / 1024 / 1024 )) MiB per rank | tokens per rank | planned peak | measured peak | step seconds |"
echo "|---:|---:|---:|---:|---:|---:|"
for sp in 1 2 4 8; do
    [ $sp -le "$maxsp" ] || break
    T=1024 best=0
    while :; do
        p=$(peak --mesh_dim=1,1,1,$sp --world_size=$sp --llama.max_sequence_length=$T --train_dataset.hdf5_dataset.seq_length=$T 2>/dev/null || echo x)
        [ "$p" != x ] && [ "$p" -le "$budget" ] || break
        best=$T; bp=$p; T=$((T * 2))
    done
    mpirun $FLAGS -np $sp src/bpt train "${A[@]}" --mesh_dim=1,1,1,$sp --llama.max_sequence_length=$best \
        --train_dataset.hdf5_dataset.seq_length=$best --logger.output_dir="$W/sp$sp" >/dev/null 2>&1
    read -r mp st < <(python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).readlines()[-1]); print(r['peak_memory_bytes'], r['step_seconds'])" "$W/sp$sp/metrics.jsonl")
    echo "| $sp | $best | $((best / sp)) | $bp | $mp | $st |"
done
