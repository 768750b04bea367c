#!/bin/sh
# test_ref.sh — automake wrapper for the PyTorch oracle test (tests/ref/test_ref.py).
# Exit: 0 pass, 1 fail, 99 hard error (no bpt_grad).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds tests/ref/bpt_grad),
#      BPT_TOP_SRCDIR (holds tests/ref/test_ref.py); both default to the repo root.

. "$(dirname "$0")/wrapper.sh"
bin="$builddir/tests/ref/bpt_grad"
script="$top_srcdir/tests/ref/test_ref.py"

need_python "torch, h5py, numpy"
need_program "$bin" "'make check' (or 'make tests/ref/bpt_grad')"
need_script "$script"
"$PYTHON" "$script" --bpt-grad "$bin" "$@"
exit $?
