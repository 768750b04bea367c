#!/usr/bin/env bash
# plan_sp.sh — context against the sequence-parallel degree: `bpt plan` for 7B and 13B
# at 128K, 512K and 1M tokens on 64, 256 and 1024 ranks, tp = 4, sp = 1 ... 64 (fsdp
# the rest; one sequence per dp x fsdp group), exact per-rank memory and the ring's
# bytes per step, without running anything. Same chunking and remat as plan_tables.sh.
# With llama.sequence_parallel on (the default: the residual stream sharded over tp too),
# and the peak with it off beside it.
#   bench/plan_sp.sh [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/plan_lib.sh
echo "| model | T | ranks | mesh (dp,fsdp,tp,sp) | tokens per rank | state | kept activations | peak per rank | fits 80 GiB | ring (sp) bytes/step | peak, sequence_parallel off |"
echo "|---|---:|---:|---|---:|---:|---:|---:|:-:|---:|---:|"
for model in 7b 13b; do
  for T in 131072 524288 1048576; do
    for n in 64 256 1024; do
      for sp in 1 4 16 64; do
        tp=4; fsdp=$((n / (tp * sp)))
        [ "$fsdp" -ge 1 ] || continue
        mesh=1,$fsdp,$tp,$sp
        [ $((T / sp)) -ge 4096 ] || continue   # a rank holds at least one key chunk
        recipe_plan /tmp/bpt_plan.$$ "$model" "$T" "$mesh" "$n" "$fsdp" "$@"
        g() { plan_size /tmp/bpt_plan.$$ "$1"; }
        bytes=$(sed -n 's/.*peak .*(\([0-9]*\) bytes)/\1/p' /tmp/bpt_plan.$$)
        fits=$([ "$bytes" -le $((80 * 1024 * 1024 * 1024)) ] && echo yes || echo no)
        ring=$(g sp); [ -n "$ring" ] || ring="-"
        recipe_plan /tmp/bpt_plan_off.$$ "$model" "$T" "$mesh" "$n" "$fsdp" --llama.sequence_parallel=false "$@"
        echo "| $model | $T | $n | $mesh | $((T / sp)) | 4 x $(g parameters) | $(g "kept activations") | $(g peak) | $fits | $ring | $(plan_size /tmp/bpt_plan_off.$$ peak) |"
      done
    done
  done
done
rm -f /tmp/bpt_plan.$$ /tmp/bpt_plan_off.$$
