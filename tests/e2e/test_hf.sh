#!/bin/sh
# test_hf.sh — automake wrapper for the Hugging Face interchange test
# (tests/ref/hf_interchange.py: bpt ckpt import / export / inspect against transformers).
# Exit: 0 pass, 1 fail, #       99 hard error (no src/bpt).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds src/bpt),
#      BPT_TOP_SRCDIR (holds tests/ref/hf_interchange.py); both default to the repo root.

. "$(dirname "$0")/../ref/wrapper.sh"
bin="$builddir/src/bpt"
script="$top_srcdir/tests/ref/hf_interchange.py"

need_python "torch, transformers, h5py, numpy, safetensors"
need_program "$bin" "'make'"
need_script "$script"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=1
"$PYTHON" "$script" --bpt "$bin" "$@"
exit $?
