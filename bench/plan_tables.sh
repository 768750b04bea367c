#!/usr/bin/env bash
# plan_tables.sh — `bpt plan` for 7B and 13B at 32K and 128K context on 64-512 ranks:
# exact per-rank memory and per-step communication of the current code (the config's
# dtype, bf16 by default; fp32 state and activations), without running anything.
#   bench/plan_tables.sh [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/plan_lib.sh
echo "| model | T | ranks | mesh | global batch | state (params+grads+adamw) | kept activations | peak per rank | comm/step fsdp | comm/step tp | comm/step dp |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
for model in 7b 13b; do
  for T in 32768 131072; do
    for spec in 64:1,16,4 128:1,32,4 256:1,64,4 512:2,64,4; do
      n=${spec%%:*}; mesh=${spec#*:}
      IFS=, read -r dp fsdp tp <<< "$mesh"
      batch=$((dp * fsdp))
      recipe_plan /tmp/bpt_plan.$$ "$model" "$T" "$mesh" "$n" "$batch" "$@"
      g() { plan_size /tmp/bpt_plan.$$ "$1"; }
      p=$(g parameters); k=$(g "kept activations"); pk=$(g peak)
      f=$(g fsdp); t=$(g tp); d=$(g dp)
      echo "| $model | $T | $n | $mesh | $batch | 4 x $p | $k | $pk | $f | $t | $d |"
    done
  done
done
rm -f /tmp/bpt_plan.$$
