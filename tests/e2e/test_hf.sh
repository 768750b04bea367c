#!/bin/sh
# test_hf.sh — automake wrapper for the Hugging Face interchange test
# (tests/ref/hf_interchange.py: bpt ckpt import / export / inspect against transformers).
# Exit: 0 pass, 1 fail, #       99 hard error (no src/bpt).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds src/bpt),
#      BPT_TOP_SRCDIR (holds tests/ref/hf_interchange.py); both default to the repo root.

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${BPT_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${BPT_BUILDDIR:-$top_srcdir}
PYTHON=${PYTHON:-python3}
bin="$builddir/src/bpt"
script="$top_srcdir/tests/ref/hf_interchange.py"

if ! "$PYTHON" -c 'import torch, transformers, h5py, numpy, safetensors' >/dev/null 2>&1; then
    echo "FAIL: missing test dependency: Python modules torch, transformers, h5py, numpy, safetensors for $PYTHON (./quickstart.sh test installs them into .venv)"
    exit 1
fi
if [ ! -x "$bin" ]; then
    echo "ERROR: $bin not found; build it with 'make'"
    exit 99
fi
if [ ! -f "$script" ]; then
    echo "ERROR: $script not found (set BPT_TOP_SRCDIR to the source directory)"
    exit 99
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=1
"$PYTHON" "$script" --bpt "$bin" "$@"
exit $?
