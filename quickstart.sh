#!/usr/bin/env bash
# quickstart.sh — everything on a fresh Debian/Ubuntu machine.
#   ./quickstart.sh         install missing packages, build, train the demo model
#   ./quickstart.sh build   install missing packages and build only
#   ./quickstart.sh test    install what the tests need too, build, run every test;
#                           ends with "N passed, N failed"
set -euo pipefail
cd "$(dirname "$0")"
TOP=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
# The one list of what bpt needs. Debian packages to build and run:
PACKAGES="build-essential autoconf automake libtool pkg-config libopenmpi-dev openmpi-bin
libhdf5-openmpi-dev hdf5-tools libyaml-dev libjansson-dev libpcre2-dev libopenblas-dev python3"
# ... and to test: process tools (the preemption and Slurm tests), a one-node Slurm,
# clang's libFuzzer and sanitizer runtimes (tests/fuzz), a Python virtual environment
TEST_PACKAGES="procps slurm-wlm munge clang libclang-rt-dev python3-venv"
# Python packages of the oracles (PyTorch, transformers, the reference tokenizers), into
# $VENV inside the build tree: nothing system-wide beyond apt
PY_TEST_PACKAGES="numpy h5py torch transformers safetensors sentencepiece tokenizers tensorboard matplotlib"
PY_TEST_MODULES="numpy h5py torch transformers safetensors sentencepiece tokenizers"
VENV=$TOP/.venv

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

install_packages() {
    local missing=()
    for p in $PACKAGES ${1:-}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get is not available; install these packages (or their equivalents) yourself:"
        printf '  %s\n' "${missing[@]}"
        return 0
    fi
    # Ubuntu before 23.10 and Debian before 12 call the runtime libclang-rt-NN-dev only
    if [[ " ${missing[*]} " == *" libclang-rt-dev "* ]] && ! apt-cache show libclang-rt-dev >/dev/null 2>&1; then
        missing=("${missing[@]/libclang-rt-dev/}")
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The test virtual environment: made once, then only checked. A package that cannot be
# installed is said here in one line; the tests that need it then fail naming it.
install_python_test_packages() {
    local py=$VENV/bin/python3 imports
    imports=$(echo $PY_TEST_MODULES | tr ' ' ',')
    if [ -x "$py" ] && "$py" -c "import $imports" 2>/dev/null; then return 0; fi
    say "installing the Python test packages into $VENV: $PY_TEST_PACKAGES"
    if [ ! -x "$py" ]; then
        python3 -m venv "$VENV" || { say "error: cannot create $VENV (python3 -m venv; package python3-venv)"; return 0; }
    fi
    "$py" -m pip install -q --disable-pip-version-check $PY_TEST_PACKAGES 2>&1 | grep -v -i "warning" ||
        true
    "$py" -c "import $imports" 2>/dev/null ||
        say "error: pip could not install every Python test package into $VENV; the tests that need them will fail"
}

build() {
    install_packages "${1:-}"
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        say "autoreconf"
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    fi
    if [ ! -f Makefile ] || [ configure -nt config.status ]; then
        say "configure"
        if [ -n "${BPT_CONFIGURE_FLAGS+x}" ]; then
            ./configure -q $BPT_CONFIGURE_FLAGS
        elif command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
            # the CUDA toolkit is here: build the CUDA backend too (its tests skip without a GPU)
            ./configure -q --with-cuda || { say "the CUDA backend does not configure here; building the CPU backend only"; ./configure -q; }
        else
            ./configure -q
        fi
    fi
    say "make"
    make -s -j"$JOBS"
}

# mpirun as root needs --allow-run-as-root; one rank needs no oversubscription.
mpirun_cmd() {
    local extra=""
    [ "$(id -u)" -eq 0 ] && extra="--allow-run-as-root"
    echo "mpirun $extra --oversubscribe"
}

demo() {
    local out=run/demo
    mkdir -p "$out/data"
    if [ ! -f "$out/data/train.h5" ]; then
        say "writing the synthetic demo corpus to $out/data"
        src/bpt data synth --output "$out/data/train.h5" --tokens 2000000 --seed 1
        src/bpt data synth --output "$out/data/eval.h5" --tokens 200000 --seed 2
    fi
    rm -f "$out/metrics.jsonl"
    say "training the demo model (jobs/configs/demo.yaml) on one rank"
    OMP_NUM_THREADS=$JOBS $(mpirun_cmd) -np 1 src/bpt train --config jobs/configs/demo.yaml "$@"
    say "metrics:     $TOP/$out/metrics.jsonl"
    say "checkpoints: $TOP/$out/ckpt/ (newest: $(cat "$out/ckpt/latest" 2>/dev/null))"
    say "evaluate:    src/bpt eval --config jobs/configs/demo.yaml --load_checkpoint params::$out/ckpt"
}

# The unit tests again in an ASan + UBSan build (configure --enable-sanitizers, docs/testing.md)
# in build-asan/. build() configures the source tree itself, after which automake refuses
# VPATH builds of it, so build-asan/src is a copy of the sources (git's tracked and
# untracked files, as they are now; without git, the tree minus build outputs).
ASAN_TESTS="tests/unit/test_kernels tests/unit/test_config tests/unit/test_model tests/unit/test_data tests/unit/test_tokenizer tests/unit/test_tboard tests/unit/test_safetensors"
run_asan_tests() {
    local src=$TOP/build-asan/src
    say "the unit tests under ASan and UBSan (build-asan/)"
    mkdir -p "$src"
    if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$TOP" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -p -u -t "$src")
    else
        tar -C "$TOP" --exclude=./build-asan --exclude=./.venv --exclude=./run --exclude='*.o' --exclude='*.a' \
            -cf - . | tar -C "$src" -xf -
    fi
    (cd "$src" && rm -f test-suite.log $(for t in $ASAN_TESTS; do echo "$t.log $t.trs"; done))
    (
        cd "$src"
        if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
            autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
        fi
        if [ ! -f Makefile ] || [ configure -nt config.status ] || ! grep -q -- '--enable-sanitizers' config.status; then
            ./configure -q --enable-sanitizers
        fi
        make -s -j"$JOBS" && make -s -j1 check TESTS="$ASAN_TESTS" >/dev/null 2>&1
    ) || true
    local log=$src/test-suite.log
    for t in $ASAN_TESTS; do
        printf '%-6s %s\n' "$(sed -n 's/^:global-test-result: //p' "$src/$t.trs" 2>/dev/null)" "build-asan/$t"
        grep -q ':global-test-result: PASS' "$src/$t.trs" 2>/dev/null ||
            { echo "---- build-asan/$t.log (failed checks, then the last 40 lines) ----"
              grep -E '^(not ok |# at |Bail out!)' "$src/$t.log" 2>/dev/null || true; tail -n 40 "$src/$t.log" 2>/dev/null || true; }
    done
    local p=0 f=1 e=0
    if [ -f "$log" ]; then
        p=$(sed -n 's/^# PASS: *//p' "$log"); f=$(sed -n 's/^# FAIL: *//p' "$log"); e=$(sed -n 's/^# ERROR: *//p' "$log")
    fi
    ASAN_PASS=${p:-0} ASAN_FAIL=$(( ${f:-0} + ${e:-0} ))
}

run_tests() {
    build "$TEST_PACKAGES"
    install_python_test_packages
    say "make check"
    local rc=0
    # the venv first on PATH: the test scripts' python3 is the one with the oracles
    PATH="$VENV/bin:$PATH" make -s -j1 check PYTHON="$VENV/bin/python3" >/dev/null 2>&1 || rc=$?
    local log=test-suite.log pass fail skip errs
    [ -f "$log" ] || { echo "no test-suite.log"; echo "0 passed, 1 failed"; exit 1; }
    for f in $(find tests -name '*.log' ! -name test-suite.log | sort); do
        printf '%-6s %s\n' "$(sed -n 's/^:global-test-result: //p' "${f%.log}.trs" 2>/dev/null)" "${f%.log}"
    done
    for t in $(grep -l -E ':test-result: (FAIL|ERROR)' $(find tests -name '*.trs') 2>/dev/null); do
        echo "---- ${t%.trs}.log (failed checks, then the last 40 lines) ----"
        grep -E '^(not ok |# at |Bail out!)' "${t%.trs}.log" || true; tail -n 40 "${t%.trs}.log" || true
    done
    pass=$(sed -n 's/^# PASS: *//p' "$log"); fail=$(sed -n 's/^# FAIL: *//p' "$log")
    skip=$(sed -n 's/^# SKIP: *//p' "$log"); errs=$(sed -n 's/^# ERROR: *//p' "$log")
    fail=$(( ${fail:-0} + ${errs:-0} ))
    run_asan_tests
    pass=$(( ${pass:-0} + ${ASAN_PASS:-0} )); fail=$(( fail + ASAN_FAIL ))
    echo "${pass:-0} passed, ${fail} failed, ${skip:-0} skipped"
    [ "$fail" -eq 0 ] && [ "$rc" -eq 0 ]
}

case "${1:-demo}" in
    build) build ;;
    test)  run_tests ;;
    demo)  shift || true; build; demo "$@" ;;
    *)     echo "usage: $0 [build|test]"; exit 2 ;;
esac
