#!/usr/bin/env bash
# Ring attention (mesh/ring.c) on sp = 1, 2, 3, 4 and 8 ranks equals the one-rank
# blockwise kernel (tests/mpi/test_ring.c: o, lse, dq, dk, dv, GQA, Bq != Bk).
. "$(dirname "$0")/../e2e/lib.sh"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PROG=$BUILD/tests/mpi/test_ring
[ -x "$PROG" ] || { fail "$PROG not built (make check builds it)"; finish; }
for np in 1 2 3 4 8; do
    out=$(timeout 300 "$MPIRUN" $MPIRUN_FLAGS -np $np "$PROG" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && echo "$out" | grep -q "^# [0-9]* checks, 0 failed"; then
        ok "sp=$np: $(echo "$out" | grep -c '^ok') checks"
    else
        fail "sp=$np (rc $rc)"
        echo "$out" | grep -v "^ok" | head -20
    fi
done
finish
