#!/usr/bin/env bash
# compare_torch.sh — bpt against PyTorch 2 on this machine's cores: bench/compare_torch.py
# (interleaved runs of bench/bench_throughput and each bench/torch_peer.py variant; see
# there) in a virtual environment with torch from PyPI: the tests' .venv when
# ./quickstart.sh test made it, else bench/.venv, made here.
#   bench/compare_torch.sh [--t 2048,8192,16384] [--rounds 2] [--steps 3,2,1] [--variants ...] [--bpt bpt,bpt_attn_dots]
#   bench/compare_torch.sh attention [--t 2048,8192,32768] [--dh 64,128] [--rounds 2]
# The second form: the attention kernels alone against PyTorch's CPU flash SDPA
# (bench/compare_attention.py with bench/bench_attention and bench/torch_attention.py).
set -euo pipefail
cd "$(dirname "$0")/.."
script=bench/compare_torch.py
if [ "${1:-}" = attention ]; then
    shift
    script=bench/compare_attention.py
    make -s bench/bench_attention >/dev/null
else
    make -s bench/bench_throughput >/dev/null
fi
venv=.venv
if ! [ -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c "import torch" 2>/dev/null; then
    venv=bench/.venv
    if ! [ -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c "import torch" 2>/dev/null; then
        echo "compare_torch: installing torch from PyPI into $venv" >&2
        python3 -m venv "$venv" || { echo "compare_torch: cannot create $venv (apt-get install python3-venv)" >&2; exit 1; }
        "$venv/bin/python3" -m pip install -q --disable-pip-version-check torch numpy ||
            { echo "compare_torch: pip install torch failed" >&2; exit 1; }
    fi
fi
exec "$venv/bin/python3" "$script" "$@"
