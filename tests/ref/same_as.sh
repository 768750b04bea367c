#!/usr/bin/env bash
# same_as.sh OLD_BPT [NEW_BPT]: a refactor's proof that behaviour is unchanged. Trains
# a matrix of small configurations (modes, remat, GQA, tied embeddings, accumulation,
# fp32 and bf16, meshes on 1, 4 and 8 ranks) with both binaries and requires every
# metrics.jsonl number that does not measure time (loss, accuracy, gradient and parameter
# norms, communication bytes, peak memory) and every tensor of the final checkpoint
# (parameters and both moments) to be bit-identical. NEW_BPT defaults to this build's
# src/bpt. Build OLD_BPT from the revision before the change, e.g.
#   git worktree add /tmp/base HEAD~1 && (cd /tmp/base && autoreconf -fi && ./configure -q && make -j2)
#   tests/ref/same_as.sh /tmp/base/src/bpt
# Needs mpirun and h5diff (hdf5-tools). Takes a few minutes on two cores.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
OLD=${1:?usage: same_as.sh OLD_BPT [NEW_BPT]}
NEW=${2:-$TOP/src/bpt}
MPIRUN=${MPIRUN:-mpirun}
FLAGS="--oversubscribe"
[ "$(id -u)" -eq 0 ] && FLAGS="$FLAGS --allow-run-as-root"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bpt-same.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
command -v h5diff >/dev/null || { echo "FAIL: h5diff not found (apt-get install hdf5-tools)"; exit 1; }

"$NEW" data synth --output "$WORK/train.h5" --tokens 100000 --seed 3 >/dev/null || { echo "FAIL: synth"; exit 1; }
. "$TOP/tests/e2e/tiny.sh"
tiny_common "$WORK/train.h5"
BASE=("${TINY[@]}" --eval_steps=0 --total_steps=3 --save_model_freq=3
      --optimizer.adamw_optimizer.lr=1e-2 --optimizer.adamw_optimizer.lr_warmup_steps=1)

# name ranks mesh extra-args...
CASES=(
  "bpt-fp32|1|1,1,1|--dtype=fp32"
  "bpt-bf16|1|1,1,1|--dtype=bf16"
  "vanilla|1|1,1,1|--dtype=fp32 --llama.scan_attention=false --llama.scan_mlp=false --llama.scan_loss=false"
  "memeff|1|1,1,1|--dtype=fp32 --llama.scan_mlp=false --llama.scan_loss=false"
  "remat-mqa-tied|1|1,1,1|--dtype=fp32 --llama.remat_block=nothing_saveable --llama.num_key_value_heads=1 --llama.tie_word_embeddings=true"
  "accum|1|1,1,1|--dtype=fp32 --optimizer.accumulate_gradient_steps=2"
  "fsdp2-tp2|4|1,2,2|--dtype=fp32"
  "fsdp2-tp2-bf16|4|1,2,2|--dtype=bf16"
  "dp2-fsdp2-tp2|8|2,2,2|--dtype=fp32"
  "fsdp4-tp2-remat|8|1,4,2|--dtype=bf16 --llama.remat_block=nothing_saveable"
  "dp8|8|8,1,1|--dtype=fp32"
  "tp2-gqa2|2|1,1,2|--dtype=fp32 --llama.num_key_value_heads=2"
  "fsdp4-tied|4|1,4,1|--dtype=fp32 --llama.tie_word_embeddings=true --optimizer.accumulate_gradient_steps=2"
)
fails=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name np mesh extra <<< "$c"
    for side in old new; do
        bin=$OLD; [ $side = new ] && bin=$NEW
        # shellcheck disable=SC2086
        if ! timeout 600 "$MPIRUN" $FLAGS -np "$np" "$bin" train "${BASE[@]}" --mesh_dim="$mesh" $extra \
             --logger.output_dir="$WORK/$name-$side" > "$WORK/$name-$side.out" 2>&1; then
            echo "FAIL $name: the $side binary failed: $(grep -m1 '^bpt:' "$WORK/$name-$side.out")"
            fails=$((fails + 1)); continue 2
        fi
    done
    # the numbers that do not measure time
    # (and the sp axis's bytes, which the metrics gained with it: 0 without sp)
    strip() { sed -E 's/"(tokens_per_second|mfu|data_seconds|step_seconds)": [^,}]*,? ?//g; s/"sp": 0, //' "$1"; }
    if ! cmp -s <(strip "$WORK/$name-old/metrics.jsonl") <(strip "$WORK/$name-new/metrics.jsonl"); then
        echo "FAIL $name: metrics differ:"; diff <(strip "$WORK/$name-old/metrics.jsonl") <(strip "$WORK/$name-new/metrics.jsonl") | head -4
        fails=$((fails + 1)); continue
    fi
    ck=ckpt/step_3.h5 bad=0
    for g in /params /optimizer/m /optimizer/v; do
        h5diff -q "$WORK/$name-old/$ck" "$WORK/$name-new/$ck" "$g" "$g" >/dev/null 2>&1 || { bad=1; echo "FAIL $name: $g differs"; }
    done
    if [ $bad -eq 0 ]; then echo "ok   $name ($np rank(s), mesh $mesh): metrics and checkpoint bit-identical"
    else fails=$((fails + 1)); fi
done
[ $fails -eq 0 ] && { echo "PASS: ${#CASES[@]} configurations bit-identical"; exit 0; }
echo "$fails of ${#CASES[@]} configurations differ"; exit 1
