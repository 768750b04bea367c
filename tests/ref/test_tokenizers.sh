#!/bin/sh
# test_tokenizers.sh — automake wrapper for tests/ref/test_tokenizers.py: our C tokenizers
# against the sentencepiece and tokenizers packages.
# Exit: 0 pass, 1 fail, 99 hard error (no tok_driver).
# Env: PYTHON (default python3), BPT_BUILDDIR (holds tests/unit/tok_driver and
#      tests/unit/test_tokenizer), BPT_TOP_SRCDIR (holds tests/ref/test_tokenizers.py);
#      both default to the repo root. Extra arguments go to the script (e.g. --bench).

. "$(dirname "$0")/wrapper.sh"
driver="$builddir/tests/unit/tok_driver"
unit="$builddir/tests/unit/test_tokenizer"
script="$top_srcdir/tests/ref/test_tokenizers.py"

need_python "sentencepiece, tokenizers"
need_program "$driver" "'make check' (or 'make tests/unit/tok_driver')"
need_script "$script"
if [ -x "$unit" ]; then
    "$PYTHON" "$script" --driver "$driver" --unit "$unit" "$@"
else
    "$PYTHON" "$script" --driver "$driver" "$@"
fi
exit $?
