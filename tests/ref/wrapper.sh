# wrapper.sh — sourced by the automake wrappers of the tests that run a Python script
# against our programs (tests/ref/test_ref.sh, tests/ref/test_tokenizers.sh,
# tests/e2e/test_hf.sh); POSIX sh, like them. (tests/e2e/lib.sh is the bash harness of
# the end-to-end tests: a scratch directory, ok/fail counts, python3 rather than $PYTHON.)
#
# Sets top_srcdir (BPT_TOP_SRCDIR, default the repo root above the sourcing script),
# builddir (BPT_BUILDDIR, default top_srcdir) and PYTHON (default python3), and checks
# what the script needs before it runs:
#   need_python "torch, numpy"   the modules import in $PYTHON, else FAIL and exit 1
#                                (a missing test dependency fails the test, never a skip)
#   need_program PATH HOW        PATH is an executable, else ERROR (build it with HOW), exit 99
#   need_script PATH             PATH is a file, else ERROR, exit 99

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${BPT_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${BPT_BUILDDIR:-$top_srcdir}
PYTHON=${PYTHON:-python3}

need_python() {
    "$PYTHON" -c "import $1" >/dev/null 2>&1 && return 0
    echo "FAIL: missing test dependency: Python modules $1 for $PYTHON (./quickstart.sh test installs them into .venv)"
    exit 1
}

need_program() {
    [ -x "$1" ] && return 0
    echo "ERROR: $1 not found; build it with $2"
    exit 99
}

need_script() {
    [ -f "$1" ] && return 0
    echo "ERROR: $1 not found (set BPT_TOP_SRCDIR to the source directory)"
    exit 99
}
