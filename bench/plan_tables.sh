#!/usr/bin/env bash
# plan_tables.sh — `bpt plan` for 7B and 13B at 32K and 128K context on 64-512 ranks:
# exact per-rank memory and per-step communication of the current code (the config's
# dtype, bf16 by default; fp32 state and activations), without running anything.
#   bench/plan_tables.sh [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "| model | T | ranks | mesh | global batch | state (params+grads+adamw) | kept activations | peak per rank | comm/step fsdp | comm/step tp | comm/step dp |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
for model in 7b 13b; do
  for T in 32768 131072; do
    for spec in 64:1,16,4 128:1,32,4 256:1,64,4 512:2,64,4; do
      n=${spec%%:*}; mesh=${spec#*:}
      IFS=, read -r dp fsdp tp <<< "$mesh"
      batch=$((dp * fsdp))
      src/bpt plan --load_llama_config=$model --mesh_dim=$mesh --world_size=$n \
        --llama.max_sequence_length=$T --train_dataset.hdf5_dataset.seq_length=$T \
        --train_dataset.hdf5_dataset.batch_size=$batch --llama.scan_attention=true --llama.scan_mlp=true \
        --llama.scan_loss=true --llama.remat_block=nothing_saveable --llama.remat_attention=nothing_saveable \
        --llama.remat_mlp=nothing_saveable --llama.scan_query_chunk_size=2048 --llama.scan_key_chunk_size=4096 \
        --llama.scan_mlp_chunk_size=2048 --llama.scan_loss_chunk_size=2048 "$@" > /tmp/bpt_plan.$$ 
      g() { sed -n "s/^ *$1 *\([0-9.]* [KMGT]*i*B\).*/\1/p" /tmp/bpt_plan.$$ | head -n 1; }
      p=$(g parameters); k=$(g "kept activations"); pk=$(g peak)
      f=$(g fsdp); t=$(g tp); d=$(g dp)
      echo "| $model | $T | $n | $mesh | $batch | 4 x $p | $k | $pk | $f | $t | $d |"
    done
  done
done
rm -f /tmp/bpt_plan.$$
