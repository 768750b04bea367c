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
    rc=0
    timeout 60 "$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train --config "$C" --device=cuda --dtype=bf16 --total_steps=1 \
        >"$WORK/out" 2>"$WORK/err" || rc=$?
    ranks=$(grep -c "^bpt: rank [01]: device: cuda: no usable GPU" "$WORK/err")
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$ranks" -eq 2 ] && grep -q "^bpt: device: 'cuda' is not usable on every rank" "$WORK/err"; then
        ok "device cuda without a GPU (2 ranks, exit $rc): each rank says why, then one summary line"
    else
        fail "device cuda without a GPU: exit $rc, stderr: $(head -c 400 "$WORK/err")"
    fi
fi
finish
