#!/usr/bin/env bash
# The command line: version, help, print_config round trip, and every config error.
. "$(dirname "$0")/lib.sh"

v=$("$BPT" --version) && echo "$v" | grep -q "backends: cpu" && ok "--version: $v" || fail "--version: $v"
"$BPT" help | grep -q "train" && ok "help" || fail "help"
rc=0; "$BPT" frobnicate 2>/dev/null || rc=$?; [ $rc -eq 2 ] && ok "unknown command exits 2" || fail "unknown command exit $rc"

# the resolved config printed as YAML reads back to the same config
"$BPT" train --config "$TOP/jobs/configs/demo.yaml" --print_config --llama.max_sequence_length=4096 > "$WORK/a.yaml" &&
"$BPT" train --config "$WORK/a.yaml" --print_config > "$WORK/b.yaml" && cmp -s <(grep -v "^#" "$WORK/a.yaml") <(grep -v "^#" "$WORK/b.yaml") &&
grep -q "max_sequence_length: 4096" "$WORK/a.yaml" && ok "print_config round trip, override honoured on a preset" ||
fail "print_config round trip"
"$BPT" train --load_llama_config=7b --llama.scan_mlp=TRUE --llama.scan_attention=True --print_config |
    grep -q "scan_mlp: true" && ok "booleans in any case" || fail "booleans in any case"

C="$TOP/jobs/configs/demo.yaml"
expect_error "unknown key" "unknown config key 'llama.scan_atention'.*llama.scan_attention" \
    "$BPT" train --config "$C" --llama.scan_atention=true
expect_error "wrong type" "total_steps.*'ten'" "$BPT" train --config "$C" --total_steps=ten
expect_error "bad boolean" "llama.scan_mlp.*'maybe'" "$BPT" train --config "$C" --llama.scan_mlp=maybe
expect_error "bad remat policy" "remat_mlp.*'nothing_savable'" "$BPT" train --config "$C" --llama.remat_mlp=nothing_savable
expect_error "seq_length over max_sequence_length" "seq_length.*max_sequence_length" \
    "$BPT" train --config "$C" --llama.max_sequence_length=128
expect_error "chunk does not divide seq_length" "scan_query_chunk_size.*96" \
    "$BPT" train --config "$C" --llama.scan_query_chunk_size=96
expect_error "unknown preset" "load_llama_config.*'8b'" "$BPT" train --config "$C" --load_llama_config=8b
expect_error "GQA heads" "num_key_value_heads" "$BPT" train --config "$C" --llama.num_key_value_heads=3
expect_error "bad mesh_dim" "mesh_dim.*'1,x,1'" "$BPT" train --config "$C" --mesh_dim=1,x,1
expect_error "two -1 in mesh_dim" "mesh_dim.*-1" "$BPT" train --config "$C" --mesh_dim=-1,-1,1
expect_error "missing dataset file" "nope.h5" "$BPT" train --config "$C" --train_dataset.hdf5_dataset.path="$WORK/nope.h5"
expect_error "missing config file" "no-such.yaml" "$BPT" train --config "$WORK/no-such.yaml"
printf 'llama:\n  scan_attention: [true\n' > "$WORK/broken.yaml"
expect_error "YAML syntax error" "broken.yaml:[0-9]+:[0-9]+" "$BPT" train --config "$WORK/broken.yaml"
expect_error "eval without weights" "load_checkpoint" "$BPT" eval --config "$C" --eval_steps=1

# two ranks on a one-rank mesh: every rank exits non-zero, quickly, one message
expect_error "mesh product vs ranks (2 ranks)" "mesh_dim.*1,1,1" \
    "$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train --config "$C" --mesh_dim=1,1,1
# device: cuda where it cannot run: one line naming the key, non-zero exit, no hang
if ! "$BPT" --version | grep -q cuda; then
    expect_error "device cuda not compiled in" "device: 'cuda' .*not compiled in" "$BPT" train --config "$C" --device=cuda
else
    # the CUDA kernels multiply in bf16: fp32 is refused by name, before any GPU is touched
    expect_error "dtype fp32 on device cuda" "dtype: 'fp32' on device: 'cuda'.*bf16" \
        "$BPT" train --config "$C" --device=cuda --dtype=fp32
    expect_error "head dim over 128 on device cuda" "llama.hidden_size / llama.num_attention_heads: head dim 256 on device: 'cuda'" \
        "$BPT" train --config "$C" --device=cuda --dtype=bf16 --llama.scan_attention=true --llama.hidden_size=512 --llama.num_attention_heads=2 \
        --llama.num_key_value_heads=2
fi
if "$BPT" --version | grep -q cuda && ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    # every rank fails to find a GPU: one line, the lowest failing rank's reason in it
    expect_error "device cuda without a GPU (2 ranks)" "device: 'cuda' is not usable on every rank \(rank 0: .*no usable GPU" \
        "$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train --config "$C" --device=cuda --dtype=bf16 --total_steps=1
fi

# every command has --help: usage, its name, exit 0
for cmd in train eval plan ckpt data; do
    out=$("$BPT" $cmd --help 2>&1) && echo "$out" | grep -q "^usage: .*bpt $cmd" && echo "$out" | grep -q "docs/config.md" &&
        ok "$cmd --help" || fail "$cmd --help: $(echo "$out" | head -n 2)"
done
"$BPT" help train | grep -q "^usage: .*bpt train" && ok "help train" || fail "help train"
# the recipes of jobs/configs/ load and fit the 80 GiB GPUs they are written for (bpt plan)
for spec in llama-7b-32k:32 llama-13b-32k:256 llama-1b-128k:8; do
    name=${spec%%:*} np=${spec#*:}
    pk=$("$BPT" plan --config "$TOP/jobs/configs/$name.yaml" --world_size "$np" 2>&1 | sed -n 's/^ *peak .*(\([0-9]*\) bytes).*/\1/p')
    [ -n "$pk" ] && [ "$pk" -le $((80 * 1024 * 1024 * 1024)) ] &&
        ok "recipe $name on $np ranks: planned peak $((pk / 1048576)) MiB per rank, fits 80 GiB" ||
        fail "recipe $name on $np ranks: peak '$pk' ($("$BPT" plan --config "$TOP/jobs/configs/$name.yaml" --world_size "$np" 2>&1 | tail -1))"
done
# bpt help config: one key from the table that parses it; docs/config.md agrees with the table
out=$("$BPT" help config llama.scan_attention) && echo "$out" | grep -q "type     bool" &&
    echo "$out" | grep -q "default  false" && ok "help config KEY" || fail "help config KEY: $out"
expect_error "help config of an unknown key" "unknown config key 'llama.scan_atention' \(did you mean 'llama.scan_attention'\?\)" \
    "$BPT" help config llama.scan_atention
res=$(python3 "$TOP/tests/e2e/config_doc_check.py" "$BPT" "$TOP/docs/config.md" 2>&1) && ok "$res" || fail "$res"
expect_error "plan: mesh over the ranks hints at --world_size" "--world_size" "$BPT" plan --mesh_dim=1,2,2

# a failure rank 0 alone sees (the output directory) ends every rank, quickly, with one line
"$BPT" data synth --output "$WORK/syn.h5" --tokens 100000 --seed 1 >/dev/null
echo x > "$WORK/afile"
T=(--config "$C" --train_dataset.hdf5_dataset.path="$WORK/syn.h5" --eval_steps=0 --total_steps=2)
t0=$(date +%s)
expect_error "output dir under a file (4 ranks)" "logger.output_dir: cannot create directory '$WORK/afile/run': Not a directory" \
    "$MPIRUN" $MPIRUN_FLAGS -np 4 -x OMP_NUM_THREADS=1 "$BPT" train "${T[@]}" --mesh_dim=1,4,1 --logger.output_dir="$WORK/afile/run"
dt=$(( $(date +%s) - t0 )); [ "$dt" -le 30 ] && ok "every rank out in ${dt}s" || fail "the ranks took ${dt}s to end"
# a dataset one rank cannot open: all ranks agree, one line naming the file
expect_error "eval dataset missing (2 ranks)" "eval_dataset: .*nope-eval.h5: no such file" \
    "$MPIRUN" $MPIRUN_FLAGS -np 2 -x OMP_NUM_THREADS=1 "$BPT" train "${T[@]}" --mesh_dim=1,2,1 --eval_steps=1 \
    --eval_dataset.hdf5_dataset.path="$WORK/nope-eval.h5" --logger.output_dir="$WORK/r2"
finish
