#!/usr/bin/env bash
# NCCL inside the mesh: 2 ranks on 2 GPUs (fsdp, tp, dp, then sp: the ring) against the same 2-rank run on
# the CPU over MPI, both with dtype bf16 (the same bf16 weight copies, gathered as bf16
# over NCCL on the GPUs). The device also rounds activations to bf16 inside its
# products, so losses agree to 2e-2 relative, not bit for bit. Skips without a CUDA build or with fewer than two GPUs.
. "$(dirname "$0")/../e2e/lib.sh"
if ! "$BPT" --version | grep -q cuda; then echo "SKIP: no GPU: this build has no CUDA backend"; exit 77; fi
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 2 ]; then echo "SKIP: no 2 GPUs here (found ${ngpu:-0}); the NCCL run needs two"; exit 77; fi
MPI=("$MPIRUN" $MPIRUN_FLAGS -np 2)
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}   # NCCL's own reason, should a communicator fail
"$BPT" data synth --output "$WORK/train.h5" --tokens 200000 --seed 3 >/dev/null || { fail "synthetic corpus"; finish; }
COMMON=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --dtype=bf16 --llama.vocab_size=256
        --llama.hidden_size=256 --llama.num_attention_heads=4 --llama.num_key_value_heads=2
        --llama.intermediate_size=512 --llama.num_hidden_layers=2
        --train_dataset.hdf5_dataset.path="$WORK/train.h5" --train_dataset.hdf5_dataset.seq_length=256
        --train_dataset.hdf5_dataset.batch_size=4 --eval_steps=0 --log_freq=1 --total_steps=8
        --save_model_freq=0 --peak_flops=1e12 --optimizer.adamw_optimizer.lr=3e-3)
# 1,1,1,2: ring attention over sp on NCCL send/recv (two zig-zag halves of 64 tokens per rank)
for mesh in 1,2,1 1,1,2 2,1,1 1,1,1,2; do
    tag=${mesh//,/_}
    X=()
    [ "$mesh" = 1,1,1,2 ] && X=(--llama.scan_query_chunk_size=64 --llama.scan_key_chunk_size=64)
    timeout 300 "${MPI[@]}" "$BPT" train "${COMMON[@]}" "${X[@]}" --mesh_dim=$mesh --device=cpu --logger.output_dir="$WORK/cpu-$tag" \
        > "$WORK/cpu-$tag.out" 2>&1 || { fail "mesh $mesh on the CPU: $(grep -m1 '^bpt:' "$WORK/cpu-$tag.out")"; continue; }
    timeout 300 "${MPI[@]}" "$BPT" train "${COMMON[@]}" "${X[@]}" --mesh_dim=$mesh --device=cuda --logger.output_dir="$WORK/gpu-$tag" \
        > "$WORK/gpu-$tag.out" 2>&1 || { fail "mesh $mesh on 2 GPUs: $(grep -m1 '^bpt:' "$WORK/gpu-$tag.out")"; continue; }
    res=$(python3 - "$WORK/gpu-$tag" "$WORK/cpu-$tag" <<'PY'
import json, sys
b = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
a = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
assert len(a) == len(b) == 8, (len(a), len(b))
e = max(abs(x - y) / abs(y) for x, y in zip(b, a))
print(f"losses {b[0]:.4f} -> {b[-1]:.4f}, worst relative difference {e:.1e}")
assert e < 2e-2 and b[-1] < b[0]
PY
) && ok "mesh $mesh: NCCL on 2 GPUs == MPI on the CPU: $res" || fail "mesh $mesh: $res"
done
finish
