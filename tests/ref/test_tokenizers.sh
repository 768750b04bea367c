#!/bin/sh
# test_tokenizers.sh — automake wrapper for tests/ref/test_tokenizers.py: our C tokenizers
# against the sentencepiece and tokenizers packages.
# Exit: 0 pass, 1 fail, 99 hard error (no tok_driver).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds tests/unit/tok_driver and
#      tests/unit/test_tokenizer), BPT_TOP_SRCDIR (holds tests/ref/test_tokenizers.py);
#      both default to the repo root. Extra arguments go to the script (e.g. --bench).

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${BPT_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${BPT_BUILDDIR:-$top_srcdir}
PYTHON=${PYTHON:-python3}
driver="$builddir/tests/unit/tok_driver"
unit="$builddir/tests/unit/test_tokenizer"
script="$top_srcdir/tests/ref/test_tokenizers.py"

if ! "$PYTHON" -c 'import sentencepiece, tokenizers' >/dev/null 2>&1; then
    echo "FAIL: missing test dependency: Python modules sentencepiece, tokenizers for $PYTHON (./quickstart.sh test installs them into .venv)"
    exit 1
fi
if [ ! -x "$driver" ]; then
    echo "ERROR: $driver not found; build it with 'make check' (or 'make tests/unit/tok_driver')"
    exit 99
fi
if [ ! -f "$script" ]; then
    echo "ERROR: $script not found (set BPT_TOP_SRCDIR to the source directory)"
    exit 99
fi
if [ -x "$unit" ]; then
    "$PYTHON" "$script" --driver "$driver" --unit "$unit" "$@"
else
    "$PYTHON" "$script" --driver "$driver" "$@"
fi
exit $?
