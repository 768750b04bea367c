#!/usr/bin/env bash
# tests/gpu/run.sh — the GPU checks in one go, for a lent GPU machine: the CUDA kernel,
# model and one-GPU NCCL tests (and compute-sanitizer on the small shapes where it
# works), the 2-GPU NCCL test where two GPUs exist, and the GPU benchmarks; ends with a
# summary. Every step has a timeout: on one GPU at most 435 s in all (505 s should every
# step also need its 10 s kill grace; with a prebuilt bundle), inside one 600 s device
# call: run it with timeout_s=560.
#
#   tests/gpu/run.sh            build with CUDA if needed (or use .gpubundle), run, summarise
#   tests/gpu/run.sh bundle     on a machine without a GPU: build with CUDA and pack the
#                               binaries and their non-CUDA shared libraries into
#                               .gpubundle/bpt-gpu.tar.xz, for a GPU machine whose image
#                               lacks MPI/HDF5/libyaml (the device tool: carry .gpubundle)
#
# Output goes to stdout and, when $OUT is set, to $OUT/gpu-run.log and $OUT/summary.md.
# On a machine with a GPU a test that skips (exit 77) counts as a failure: it means the
# GPU could not be used, except for the 2-GPU NCCL test on one GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
TOP=$(pwd)
OUTDIR=${OUT:-$TOP/run/gpu}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-run.log
SUM=$OUTDIR/summary.md
: > "$SUM"
say() { printf '==> %s\n' "$*"; }
BIN=$TOP   # where src/bpt, tests/gpu/*, bench/* are

# Configure with CUDA unless the tree already is, then make: an incremental build, so a
# bundle never packs binaries older than the sources.
build_cuda() {
    if ! grep -q '^CUDA_LIBS = .*cublasLt' Makefile 2>/dev/null; then
        say "configuring with CUDA (CUDA_ARCHS=${CUDA_ARCHS:-90})"
        [ -x configure ] || autoreconf -fi >/dev/null
        ./configure -q --with-cuda CUDA_ARCHS="${CUDA_ARCHS:-90}" NVCCFLAGS="${NVCCFLAGS:--lineinfo}" || return 1
    fi
    say "building"
    make -s -j"$(nproc)" && make -s -j"$(nproc)" tests/gpu/test_cuda_kernels tests/gpu/test_cuda_model \
        tests/gpu/test_nccl_local bench
}

if [ "${1:-}" = bundle ]; then
    CUDA_ARCHS=${CUDA_ARCHS:-"80 90"} build_cuda || { echo "build failed"; exit 1; }
    stage=$(mktemp -d)
    mkdir -p "$stage/bpt/src" "$stage/bpt/tests/gpu" "$stage/bpt/bench" "$stage/bpt/lib"
    cp src/bpt "$stage/bpt/src/"
    cp tests/gpu/test_cuda_kernels tests/gpu/test_cuda_model tests/gpu/test_nccl_local "$stage/bpt/tests/gpu/"
    cp bench/bench_attention bench/bench_throughput bench/bench_memory "$stage/bpt/bench/"
    # every shared library they need except glibc's and CUDA's (the GPU machine has its own)
    for f in "$stage"/bpt/src/* "$stage"/bpt/tests/gpu/* "$stage"/bpt/bench/*; do ldd "$f"; done |
        awk '$3 ~ /^\// {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so|/libcuda|/libcudart|/libcublas|/libnccl' |
        while read -r l; do cp -L "$l" "$stage/bpt/lib/"; done
    mkdir -p .gpubundle
    grep -qx '/.gpubundle/' .git/info/exclude 2>/dev/null || echo '/.gpubundle/' >> .git/info/exclude
    tar -C "$stage" -cJf .gpubundle/bpt-gpu.tar.xz bpt
    rm -rf "$stage"
    say "wrote .gpubundle/bpt-gpu.tar.xz ($(du -h .gpubundle/bpt-gpu.tar.xz | cut -f1)); carry .gpubundle to the GPU machine"
    exit 0
fi

exec > >(tee "$LOG") 2>&1
TEE=$!
trap 'exec >&- 2>&-; wait "$TEE" 2>/dev/null' EXIT   # the log is complete when the script ends, on every path
date -u
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>&1 | head -5
HAVE_GPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
# what this machine has, for the next session's planning
for t in nvcc mpirun mpicc xz compute-sanitizer python3; do printf '%s: %s\n' "$t" "$(command -v $t || echo none)"; done
if [ -f .gpubundle/bpt-gpu.tar.xz ] && ! { [ -x src/bpt ] && src/bpt --version 2>/dev/null | grep -q cuda; }; then
    say "using the prebuilt bundle"
    mkdir -p /tmp/bpt-gpu
    tar -C /tmp/bpt-gpu -xJf .gpubundle/bpt-gpu.tar.xz 2>/dev/null ||
        python3 -m tarfile -e .gpubundle/bpt-gpu.tar.xz /tmp/bpt-gpu || { echo "| unpack the bundle | FAIL |" >> "$SUM"; exit 1; }
    BIN=/tmp/bpt-gpu/bpt
    # the C++ runtime is backward compatible and the machine's is newer than the bundle's
    # (which would otherwise shadow it for compute-sanitizer too): leave those two to it
    sys_libs=$(ldconfig -p 2>/dev/null || true)
    for l in libstdc++.so.6 libgcc_s.so.1; do
        if grep -qF "/$l" <<< "$sys_libs"; then rm -f "$BIN/lib/$l"; fi
    done
    # NCCL, cuBLASLt and the CUDA runtime: the toolkit's, else the Python wheels' (nvidia/<lib>/lib, nvidia/cu13/lib)
    wheels=$(python3 -c 'import nvidia, os, glob
print(":".join(d for p in nvidia.__path__ for d in sorted(glob.glob(os.path.join(p, "*", "lib")))))' 2>/dev/null || true)
    export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${wheels:+:$wheels}:${LD_LIBRARY_PATH:-}"
    if ldd "$BIN/src/bpt" "$BIN/tests/gpu/test_cuda_kernels" | grep 'not found'; then
        echo "| shared libraries | FAIL (not found: see gpu-run.log) |" >> "$SUM"; exit 1
    fi
else
    build_cuda || { echo "FAIL: the CUDA build failed"; echo "| build | FAIL |" >> "$SUM"; exit 1; }
fi

pass=0; fail=0; skip=0
check() {   # check NAME TIMEOUT CMD...; a skip on a GPU machine is a failure unless SKIP_OK=1
    local name=$1 t=$2 rc=0; shift 2
    say "$name"
    timeout -k 10 "$t" "$@" || rc=$?
    if [ "$rc" -eq 77 ] && [ "${HAVE_GPU:-0}" -gt 0 ] && [ "${SKIP_OK:-0}" != 1 ]; then rc=177; fi
    case $rc in
        0) pass=$((pass + 1)); echo "| $name | PASS |" >> "$SUM" ;;
        77) skip=$((skip + 1)); echo "| $name | SKIP |" >> "$SUM" ;;
        177) fail=$((fail + 1)); echo "| $name | FAIL (skipped on a machine with a GPU) |" >> "$SUM" ;;
        124|137) fail=$((fail + 1)); echo "| $name | FAIL (timeout ${t}s) |" >> "$SUM" ;;
        *) fail=$((fail + 1)); echo "| $name | FAIL (exit $rc) |" >> "$SUM" ;;
    esac
}
echo "| check | result |" >> "$SUM"; echo "|---|---|" >> "$SUM"
check "CUDA kernels vs CPU" 60 "$BIN/tests/gpu/test_cuda_kernels"
check "model on CUDA vs CPU" 90 "$BIN/tests/gpu/test_cuda_model"
check "NCCL layer on one GPU" 45 "$BIN/tests/gpu/test_nccl_local"
# out-of-bounds and shared-memory races, on the small shapes (where the tools work:
# compute-sanitizer needs the hardware interface, which gVisor machines lack)
if command -v compute-sanitizer >/dev/null 2>&1; then
    for tool in memcheck racecheck; do
        check "compute-sanitizer $tool (small shapes)" 45 env BPT_GPU_QUICK=1 \
            compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/tests/gpu/test_cuda_kernels"
    done
fi
if [ "$BIN" = "$TOP" ]; then
    SKIP_OK=1 check "NCCL 2-rank vs MPI" 300 env BPT_BUILDDIR="$TOP" BPT_TOP_SRCDIR="$TOP" bash tests/gpu/test_nccl.sh
fi

# the benchmarks: a row in the table above, their output in the summary below it; a
# crash or timeout is a failure
BENCH=$(mktemp)
bench() {   # bench NAME TIMEOUT CMD...
    local name=$1 t=$2 out; shift 2
    out=$(mktemp)
    check "$name" "$t" bash -c '"$@" 2>&1 | tee "$0"; exit "${PIPESTATUS[0]}"' "$out" "$@"
    { echo; echo "$name:"; echo; echo '```'; cat "$out"; echo '```'; } >> "$BENCH"
    rm -f "$out"
}
bench "bench_attention (T = 8K, 32K, 128K)" 60 "$BIN/bench/bench_attention" --device cuda --t 8192,32768,131072 --heads 16 --dh 128 --reps 3
bench "bench_throughput (1B at 32K)" 90 "$BIN/bench/bench_throughput" --device=cuda --load_llama_config=1b --t 32768 \
    --steps 1 --llama.scan_query_chunk_size=2048 --llama.scan_key_chunk_size=4096 --llama.scan_mlp_chunk_size=4096 \
    --llama.scan_loss_chunk_size=2048
cat "$BENCH" >> "$SUM"
rm -f "$BENCH"
echo
echo "GPU checks: $pass passed, $fail failed, $skip skipped" | tee -a "$SUM"
[ "$fail" -eq 0 ]
