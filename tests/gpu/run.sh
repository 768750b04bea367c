#!/usr/bin/env bash
# tests/gpu/run.sh — the GPU checks in one go, for a lent GPU machine: the CUDA kernel
# and model tests (and compute-sanitizer on the small shapes where it works), the 2-GPU
# NCCL test where two GPUs exist, and the GPU benchmarks; ends with a summary. Every
# step has a timeout: on one GPU at most 450 s in all (with a prebuilt bundle), inside
# the 8 minutes the GPU checks may take and one 600 s device call.
#
#   tests/gpu/run.sh            build with CUDA if needed (or use .gpubundle), run, summarise
#   tests/gpu/run.sh bundle     on a machine without a GPU: build with CUDA and pack the
#                               binaries and their non-CUDA shared libraries into
#                               .gpubundle/bpt-gpu.tar.xz, for a GPU machine whose image
#                               lacks MPI/HDF5/libyaml (the device tool: carry .gpubundle)
#
# Output goes to stdout and, when $OUT is set, to $OUT/gpu-run.log and $OUT/summary.md.
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

build_cuda() {
    if [ -x src/bpt ] && src/bpt --version 2>/dev/null | grep -q cuda && [ -x tests/gpu/test_cuda_kernels ] \
       && [ -x bench/bench_attention ]; then return 0; fi
    say "building with CUDA (sm_${CUDA_ARCHS:-90})"
    [ -x configure ] || autoreconf -fi >/dev/null
    ./configure -q --with-cuda CUDA_ARCHS="${CUDA_ARCHS:-90}" || return 1
    make -s -j"$(nproc)" && make -s -j"$(nproc)" tests/gpu/test_cuda_kernels tests/gpu/test_cuda_model bench
}

if [ "${1:-}" = bundle ]; then
    CUDA_ARCHS=${CUDA_ARCHS:-"80 90"} build_cuda || { echo "build failed"; exit 1; }
    stage=$(mktemp -d)
    mkdir -p "$stage/bpt/src" "$stage/bpt/tests/gpu" "$stage/bpt/bench" "$stage/bpt/lib"
    cp src/bpt "$stage/bpt/src/"
    cp tests/gpu/test_cuda_kernels tests/gpu/test_cuda_model "$stage/bpt/tests/gpu/"
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
date -u
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>&1 | head -5
if [ -f .gpubundle/bpt-gpu.tar.xz ] && ! { [ -x src/bpt ] && src/bpt --version 2>/dev/null | grep -q cuda; }; then
    say "using the prebuilt bundle"
    mkdir -p /tmp/bpt-gpu && tar -C /tmp/bpt-gpu -xJf .gpubundle/bpt-gpu.tar.xz
    BIN=/tmp/bpt-gpu/bpt
    nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
    cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
    export LD_LIBRARY_PATH="$BIN/lib:${nccl:+$nccl:}${cublas:+$cublas:}/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
else
    build_cuda || { echo "FAIL: the CUDA build failed"; echo "| build | FAIL |" >> "$SUM"; exit 1; }
fi

pass=0; fail=0; skip=0
check() {   # check NAME TIMEOUT CMD...
    local name=$1 t=$2 rc=0; shift 2
    say "$name"
    timeout "$t" "$@" || rc=$?
    case $rc in
        0) pass=$((pass + 1)); echo "| $name | PASS |" >> "$SUM" ;;
        77) skip=$((skip + 1)); echo "| $name | SKIP |" >> "$SUM" ;;
        124) fail=$((fail + 1)); echo "| $name | FAIL (timeout ${t}s) |" >> "$SUM" ;;
        *) fail=$((fail + 1)); echo "| $name | FAIL (exit $rc) |" >> "$SUM" ;;
    esac
}
echo "| check | result |" >> "$SUM"; echo "|---|---|" >> "$SUM"
check "CUDA kernels vs CPU" 60 "$BIN/tests/gpu/test_cuda_kernels"
check "model on CUDA vs CPU" 90 "$BIN/tests/gpu/test_cuda_model"
# out-of-bounds and shared-memory races, on the small shapes (where the tools work:
# compute-sanitizer needs the hardware interface, which gVisor machines lack)
if command -v compute-sanitizer >/dev/null 2>&1; then
    for tool in memcheck racecheck; do
        check "compute-sanitizer $tool (small shapes)" 60 env BPT_GPU_QUICK=1 \
            compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/tests/gpu/test_cuda_kernels"
    done
fi
if [ "$BIN" = "$TOP" ]; then
    check "NCCL 2-rank vs MPI" 300 env BPT_BUILDDIR="$TOP" BPT_TOP_SRCDIR="$TOP" bash tests/gpu/test_nccl.sh
fi

say "benchmarks"
{
    echo; echo '```'
    timeout 90 "$BIN/bench/bench_attention" --t 8192,32768,131072 --heads 16 --dh 128 --reps 3
    echo
    timeout 90 "$BIN/bench/bench_throughput" --device=cuda --load_llama_config=1b --t 32768 --steps 1 \
        --llama.scan_query_chunk_size=2048 --llama.scan_key_chunk_size=4096 --llama.scan_mlp_chunk_size=4096 \
        --llama.scan_loss_chunk_size=2048
    echo '```'
} 2>&1 | tee -a "$SUM"
echo
echo "GPU checks: $pass passed, $fail failed, $skip skipped" | tee -a "$SUM"
[ "$fail" -eq 0 ]
