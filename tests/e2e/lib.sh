# Shared helpers for the end-to-end tests (sourced).
set -u
TOP=${BPT_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BPT_BUILDDIR:-$TOP}
BPT=$BUILD/src/bpt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bpt-e2e.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
MPIRUN=${MPIRUN:-mpirun}
MPIRUN_FLAGS="--oversubscribe"
[ "$(id -u)" -eq 0 ] && MPIRUN_FLAGS="$MPIRUN_FLAGS --allow-run-as-root"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=1
FAILS=0
ok()   { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
# need_python MODULE...: a missing test dependency fails the test with one line (never a skip)
need_python() {
    local m
    for m in "$@"; do
        python3 -c "import $m" 2>/dev/null ||
            { echo "FAIL: missing test dependency: Python module $m for $(command -v python3) (./quickstart.sh test installs it into .venv)"; exit 1; }
    done
}
finish() { [ "$FAILS" -eq 0 ] && { echo "PASS"; exit 0; }; echo "$FAILS failure(s)"; exit 1; }

# expect_error NAME PATTERN CMD...: CMD exits non-zero and its stderr (one line)
# matches the extended regex PATTERN.
expect_error() {
    local name=$1 pat=$2; shift 2
    local rc=0
    timeout 60 "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    if [ "$rc" -eq 0 ]; then fail "$name: exit 0, expected an error"; return; fi
    if [ "$rc" -eq 124 ]; then fail "$name: timed out (hang)"; return; fi
    if ! grep -qE -- "$pat" "$WORK/err"; then fail "$name: stderr does not match /$pat/: $(head -c 300 "$WORK/err")"; return; fi
    # one line from bpt (mpirun may add its own report after it)
    local lines
    lines=$(grep -c '^bpt: ' "$WORK/err")
    if [ "$lines" -ne 1 ]; then fail "$name: expected one 'bpt:' line on stderr, got $lines: $(head -c 300 "$WORK/err")"; return; fi
    ok "$name (exit $rc): $(grep '^bpt: ' "$WORK/err")"
}
