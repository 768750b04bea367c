#!/usr/bin/env bash
# bench_mesh.sh — step time, peak memory per rank and communication per step of the
# demo-sized model on 1, 2, 4 and 8 ranks of this machine (one OpenMP thread per rank;
# more ranks than cores means oversubscription: times then measure the machine, not bpt).
#   bench/bench_mesh.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-6}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
src/bpt data synth --output "$W/train.h5" --tokens 400000 --seed 1 >/dev/null
FLAGS="--oversubscribe"; [ "$(id -u)" -eq 0 ] && FLAGS="$FLAGS --allow-run-as-root"
ARGS=(--config jobs/configs/demo.yaml --dtype=fp32 --train_dataset.hdf5_dataset.path="$W/train.h5"
      --train_dataset.hdf5_dataset.batch_size=8 --eval_steps=0 --log_freq=1 --total_steps="$STEPS"
      --save_model_freq=0 --peak_flops=1e11)
echo "cores: $(nproc); model: demo preset (0.87M parameters), T=256, global batch 8, bpt + nothing_saveable"
echo
echo "| ranks | mesh | step s (median) | tokens/s | peak arena per rank | comm per step dp / fsdp / tp |"
echo "|---:|---|---:|---:|---:|---|"
for spec in 1:1,1,1 2:1,2,1 2:1,1,2 4:1,4,1 4:2,2,1 4:1,2,2 8:1,8,1 8:2,2,2 8:1,4,2; do
    np=${spec%%:*}; mesh=${spec#*:}
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun $FLAGS -np "$np" src/bpt train "${ARGS[@]}" \
        --mesh_dim="$mesh" --logger.output_dir="$W/r" > "$W/out" 2>&1 || { echo "| $np | $mesh | failed |"; continue; }
    python3 - "$W/r/metrics.jsonl" "$np" "$mesh" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])][1:]          # step 0 warms up
tps = statistics.median(r["tokens_per_second"] for r in rows)
step = 8 * 256 / tps
c = rows[-1]["comm_bytes"]; kib = lambda b: f"{b / 1024:.0f} KiB"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {step:.3f} | {tps:.0f} | {rows[-1]['peak_memory_bytes'] / 2**20:.2f} MiB | "
      f"{kib(c['dp'])} / {kib(c['fsdp'])} / {kib(c['tp'])} |")
PY
done
