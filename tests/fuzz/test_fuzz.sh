#!/usr/bin/env bash
# test_fuzz.sh — the libFuzzer harnesses of tests/fuzz (docs/testing.md): builds them
# (make fuzz-build), runs each over its seed corpus tests/fuzz/corpus/NAME plus a
# little fuzzing, and fails on any crash, sanitizer report, timeout or failed property.
# In the suite the fuzzing is BPT_FUZZ_RUNS inputs (default 3000) from a fixed seed, so
# a run is repeatable: the suite fails on a regression, not on the luck of the draw.
# `make fuzz` runs this for BPT_FUZZ_TIME seconds each (FUZZ_TIME, 60 s), random seed,
# and keeps what the fuzzer finds in tests/fuzz/work/NAME (BPT_FUZZ_CORPUS).
. "$(dirname "$0")/../e2e/lib.sh"
FUZZ_TIME=${BPT_FUZZ_TIME:-}
if [ -n "$FUZZ_TIME" ]; then BUDGET=(-max_total_time="$FUZZ_TIME"); SPENT="in ${FUZZ_TIME}s"
else BUDGET=(-runs="${BPT_FUZZ_RUNS:-3000}" -seed=1); SPENT="from seed 1"; fi
CORPUS=${BPT_FUZZ_CORPUS:-$WORK/corpus}
NAMES="config_yaml config_args tokenizer_json tokenizer_spm safetensors jsonl"

if [ -n "${BPT_FUZZ_MISSING:-}" ]; then
    echo "FAIL: missing test dependency: libFuzzer: $BPT_FUZZ_MISSING"
    exit 1
fi
if ! ${MAKE:-make} -s -C "$BUILD" fuzz-build >"$WORK/build.log" 2>&1; then
    echo "FAIL: cannot build the fuzz harnesses (make fuzz-build): $(grep -m1 -E 'error|make fuzz' "$WORK/build.log" || tail -n 1 "$WORK/build.log")"
    tail -n 20 "$WORK/build.log"
    exit 1
fi

for name in $NAMES; do
    bin=$BUILD/tests/fuzz/fuzz_$name seeds=$TOP/tests/fuzz/corpus/$name
    [ -x "$bin" ] || { fail "fuzz_$name: $bin was not built"; continue; }
    [ -d "$seeds" ] || { fail "fuzz_$name: no seed corpus $seeds"; continue; }
    mkdir -p "$CORPUS/$name"
    dict=()
    [ -f "$TOP/tests/fuzz/$name.dict" ] && dict=("-dict=$TOP/tests/fuzz/$name.dict")
    log=$WORK/$name.log rc=0
    # stdout closed (ckpt import prints its YAML there); stderr has libFuzzer's report
    timeout $((${FUZZ_TIME:-60} + 120)) "$bin" "${BUDGET[@]}" -timeout=20 -rss_limit_mb=4096 \
        -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$BUILD/tests/fuzz/crash-$name-" "${dict[@]}" \
        "$CORPUS/$name" "$seeds" >"$log" 2>&1 || rc=$?
    nseeds=$(find "$seeds" -type f | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    if [ "$rc" -ne 0 ] || ! grep -q 'INITED' "$log"; then
        fail "fuzz_$name: exit $rc; crash input: $(ls -t "$BUILD/tests/fuzz/crash-$name-"* 2>/dev/null | head -n 1)"
        grep -E -A 30 'ERROR: (Address|libFuzzer|UndefinedBehavior|LeakSanitizer)|runtime error|fuzz: property' "$log" | head -n 60
        continue
    fi
    ok "fuzz_$name: $nseeds seeds, ${runs:-?} runs $SPENT, $(grep -o 'cov: [0-9]*' "$log" | tail -n 1), no crash"
done
finish
