#!/bin/sh
# test_ref.sh — automake wrapper for the PyTorch oracle test (tests/ref/test_ref.py).
# Exit: 0 pass, 1 fail, 99 hard error (no bpt_grad).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds tests/ref/bpt_grad),
#      BPT_TOP_SRCDIR (holds tests/ref/test_ref.py); both default to the repo root.

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${BPT_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${BPT_BUILDDIR:-$top_srcdir}
PYTHON=${PYTHON:-python3}
bin="$builddir/tests/ref/bpt_grad"
script="$top_srcdir/tests/ref/test_ref.py"

if ! "$PYTHON" -c 'import torch, h5py, numpy' >/dev/null 2>&1; then
    echo "FAIL: missing test dependency: Python modules torch, h5py, numpy for $PYTHON (./quickstart.sh test installs them into .venv)"
    exit 1
fi
if [ ! -x "$bin" ]; then
    echo "ERROR: $bin not found; build it with 'make check' (or 'make tests/ref/bpt_grad')"
    exit 99
fi
if [ ! -f "$script" ]; then
    echo "ERROR: $script not found (set BPT_TOP_SRCDIR to the source directory)"
    exit 99
fi
"$PYTHON" "$script" --bpt-grad "$bin" "$@"
exit $?
