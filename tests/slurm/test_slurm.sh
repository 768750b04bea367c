#!/usr/bin/env bash
# bpt under a real Slurm: a one-node cluster on this host (tests/slurm/slurm_up.sh) runs
# jobs/slurm/demo-cpu.sbatch (jobs/slurm/train.sbatch with the demo config; the requeue
# rules in jobs/lib.sh) with 4 tasks on a 2x2 mesh (fsdp 2 x tp 2), and
#
#   demo          the job completes; metrics.jsonl has one finite, falling loss per step
#   preempt       SIGUSR1 to the batch shell mid-run (scancel --signal=USR1 --batch):
#                 bpt checkpoints and exits 75, the script requeues the job, the job
#                 resumes (autoresume) and ends with the same losses as `demo`, bit for bit
#   preempt_term  the same with SIGTERM sent to the job step (scancel --signal=TERM)
#   watchdog      BPT_TEST_STALL_RANK/STEP stall one rank before a step; the others'
#                 watchdog prints which collective, axis and step it waits for and
#                 MPI_Abort ends the job within comm_timeout_s plus a margin
#   rankkill      SIGKILL one rank mid-run: the job ends within comm_timeout_s plus a
#                 margin; requeued, it resumes from the last complete checkpoint and ends
#                 with the same losses as `demo`
#
# What each test needs from bpt (all in src/train.c and mesh/watchdog.c):
#   demo          SLURM_* log header ("slurm: job <id>, ...")
#   preempt*      SIGUSR1/SIGTERM -> finish the step, agree, checkpoint, print
#                 "bpt: preempted at step N: checkpoint saved ..., exiting with 75", exit 75;
#                 autoresume=true resuming bit-identically ("resumed from ... at step N")
#   watchdog      the config key comm_timeout_s, the BPT_TEST_STALL_RANK/BPT_TEST_STALL_STEP
#                 test hook, and the message "bpt: watchdog: rank R waited S s in
#                 <collective> on axis <axis> at step N; aborting"
#   rankkill      comm_timeout_s and autoresume
#
# Usage: tests/slurm/test_slurm.sh [TEST...]     (default: all; or BPT_SLURM_TESTS="demo watchdog")
# Environment: BPT_BUILDDIR / BPT_TOP_SRCDIR (set by make check), BPT_SLURM_STEPS (steps of
# each run, default 40), BPT_SLURM_KEEP=1 keeps the work directory and the cluster logs.
# Exit: 0 all passed, 1 a failure, 77 not root (slurmd and munged need root); missing packages are a failure.
set -u
TOP=${BPT_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BPT_BUILDDIR:-$TOP}
BPT=$BUILD/src/bpt
HERE=$TOP/tests/slurm
TESTS=${*:-${BPT_SLURM_TESTS:-demo preempt preempt_term watchdog rankkill}}
STEPS=${BPT_SLURM_STEPS:-40}
PREEMPT_AT=10          # signal once this many steps are logged
WD_TIMEOUT=10          # comm_timeout_s of the watchdog and rankkill runs
WD_MARGIN=20           # the job must end within WD_TIMEOUT + WD_MARGIN of the stall/kill
JOB_TIMEOUT=240        # the longest any one job may take, requeue included

FAILS=0 PASSES=0
ok()   { echo "ok   $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
note() { echo "     $*"; }

[ -x "$BPT" ] || { echo "FAIL no bpt binary at $BPT (build first)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: missing test dependency: python3 (to read metrics.jsonl)"; exit 1; }

LOGS_SHOWN=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bpt-slurm-test.XXXXXX") || exit 1
chmod 755 "$WORK"
export SLURM_TEST_DIR=$WORK/cluster
cleanup() {
    local keep=${BPT_SLURM_KEEP:-0}
    [ "$FAILS" -gt 0 ] && [ -z "$LOGS_SHOWN" ] && [ -f "$SLURM_TEST_DIR/log/slurmctld.log" ] && {
        echo "--- last lines of the cluster logs ($SLURM_TEST_DIR/log) ---"
        tail -n 15 "$SLURM_TEST_DIR"/log/*.log
    }
    SLURM_TEST_KEEP_DIR=$keep "$HERE/slurm_down.sh" 2>&1 | sed 's/^/     /'
    if [ "$keep" = 1 ]; then echo "     kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- the cluster ----------------------------------------------------------------------
rc=0
timeout 900 "$HERE/slurm_up.sh" >"$WORK/up.out" 2>"$WORK/up.err" || rc=$?
if [ "$rc" -eq 77 ]; then
    echo "SKIP: $(grep -m1 -o 'SKIP: .*' "$WORK/up.err" | sed 's/^SKIP: //')"
    trap - EXIT; rm -rf "$WORK"; exit 77
fi
if [ "$rc" -ne 0 ]; then
    # its one error line, then what it printed after it (the daemons' last log lines)
    line=$(grep -m1 -n '^slurm_up: error: ' "$WORK/up.err" | cut -d: -f1)
    if [ -n "$line" ]; then
        fail "slurm_up.sh (exit $rc): $(sed -n "${line}s/^slurm_up: error: //p" "$WORK/up.err")"
        sed -n "$((line + 1)),\$p" "$WORK/up.err" | sed 's/^/     | /'
        LOGS_SHOWN=1
    else
        why=; [ "$rc" -eq 124 ] && why=", killed after 900 s"
        fail "slurm_up.sh (exit $rc$why): $(tail -n 1 "$WORK/up.err")"
    fi
    exit 1
fi
export SLURM_CONF=$SLURM_TEST_DIR/slurm.conf
ok "one-node Slurm up: $(sed -n 's/^slurm_up: up: //p' "$WORK/up.err")"

# --- helpers --------------------------------------------------------------------------
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export BPT_TOP=$TOP BPT=$BPT BPT_RUNS=$WORK/runs BPT_DATA=$WORK/data BPT_MESH=1,2,2
# every run: the demo model on 4 ranks, a loss row per step, no start-up FLOP/s probe
COMMON=(--total_steps="$STEPS" --log_freq=1 --eval_steps=0 --peak_flops=1e11)

# submit NAME [sbatch options] -- [bpt arguments]: prints the job id
submit() {
    local name=$1; shift
    local sb=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do sb+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    timeout 30 sbatch --parsable --job-name="bpt-$name" --chdir="$WORK" --output="$WORK/$name-%j.out" \
        --ntasks=4 --time=10 "${sb[@]}" "$TOP/jobs/slurm/demo-cpu.sbatch" "${COMMON[@]}" "$@" 2>"$WORK/$name.sbatch.err" |
        cut -d';' -f1
}
field() { timeout 10 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
finished() { case $1 in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) return 0 ;; esac; return 1; }
# wait_job JID SECONDS: waits until the job has ended; prints its final state
wait_job() {
    local t0=$SECONDS st=
    while [ $((SECONDS - t0)) -lt "$2" ]; do
        st=$(field "$1" JobState)
        finished "$st" && { echo "$st"; return 0; }
        sleep 1
    done
    timeout 10 scancel "$1" 2>/dev/null
    echo "TIMEOUT_WAITING(${st:-unknown})"
    return 1
}
rows() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
# wait_rows FILE N SECONDS JID: until FILE has N lines (or the job ended); 0 when it has
wait_rows() {
    local t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$3" ]; do
        [ "$(rows "$1")" -ge "$2" ] && return 0
        finished "$(field "$4" JobState)" && return 1
        sleep 0.2
    done
    return 1
}
log_of() { echo "$WORK/$1-$2.out"; }
tail_log() { tail -n "${2:-6}" "$1" 2>/dev/null | sed 's/^/     | /'; }

# check_metrics FILE [REF_FILE]: STEPS rows for steps 0..STEPS-1 (for a step logged
# twice, as after a crash, the last row counts), finite losses, falling; with REF_FILE,
# every loss and gradient norm equal to REF's
check_metrics() {
    python3 - "$STEPS" "$@" <<'PY'
import json, math, sys
n, path = int(sys.argv[1]), sys.argv[2]
def load(p):
    rows = {}
    for line in open(p):
        r = json.loads(line)
        rows[r["step"]] = r
    return rows
m = load(path)
assert sorted(m) == list(range(n)), f"steps logged: {sorted(m)[:5]}...{sorted(m)[-3:]} ({len(m)}), expected 0..{n-1}"
loss = [m[s]["loss"] for s in range(n)]
assert all(math.isfinite(x) for x in loss), "a loss is not finite"
first, last = sum(loss[:5]) / 5, sum(loss[-5:]) / 5
assert last < 0.8 * first, f"loss does not fall: first 5 steps {first:.4f}, last 5 {last:.4f}"
msg = f"{n} steps, loss {loss[0]:.4f} -> {loss[-1]:.4f}"
if len(sys.argv) > 3:
    ref = load(sys.argv[3])
    bad = [s for s in range(n) if m[s]["loss"] != ref[s]["loss"] or m[s]["gradient_norm"] != ref[s]["gradient_norm"]]
    assert not bad, f"{len(bad)} steps differ from the uninterrupted run, first {bad[0]}: loss {m[bad[0]]['loss']} vs {ref[bad[0]]['loss']}"
    msg += ", every loss and gradient norm equal to the uninterrupted run"
print(msg)
PY
}

# --- demo: the job completes with sane metrics (also the reference for the others) ----
REF_JOB=
run_demo() {
    local jid st log res
    jid=$(submit demo --) && [ -n "$jid" ] || { fail "demo: sbatch failed: $(cat "$WORK/demo.sbatch.err")"; return 1; }
    st=$(wait_job "$jid" "$JOB_TIMEOUT")
    log=$(log_of demo "$jid")
    if [ "$st" != COMPLETED ] || [ "$(field "$jid" ExitCode)" != 0:0 ]; then
        fail "demo: job $jid ended $st (exit $(field "$jid" ExitCode))"; tail_log "$log" 10; return 1
    fi
    grep -q "^slurm: job $jid, step 0, 1 node, 4 tasks" "$log" || { fail "demo: no SLURM header in the log"; tail_log "$log"; return 1; }
    grep -q "^mesh: 4 ranks = dp 1 x fsdp 2 x tp 2" "$log" || { fail "demo: not a 2x2 mesh"; tail_log "$log"; return 1; }
    if res=$(check_metrics "$BPT_RUNS/$jid/metrics.jsonl" 2>&1); then
        ok "demo: sbatch job $jid, 4 tasks, fsdp 2 x tp 2: COMPLETED; $res"
        REF_JOB=$jid
    else
        fail "demo: metrics: $(echo "$res" | tail -n 1)"; return 1
    fi
}
ensure_ref() { [ -n "$REF_JOB" ] || run_demo; [ -n "$REF_JOB" ]; }

# --- preempt / preempt_term: signal mid-run, requeue, exact resume ------------------------
# needs: the lead's preemption handling (exit 75) and autoresume
run_preempt() {   # run_preempt NAME HOW (batch-usr1 | step-term)
    local name=$1 how=$2 jid st log res k
    ensure_ref || { fail "$name: no uninterrupted reference run"; return 1; }
    jid=$(submit "$name" -- --save_model_freq=0) && [ -n "$jid" ] || { fail "$name: sbatch failed"; return 1; }
    log=$(log_of "$name" "$jid")
    if ! wait_rows "$BPT_RUNS/$jid/metrics.jsonl" "$PREEMPT_AT" 120 "$jid"; then
        fail "$name: job $jid did not reach step $PREEMPT_AT running ($(field "$jid" JobState))"; tail_log "$log"; return 1
    fi
    case $how in
        batch-usr1) timeout 10 scancel --signal=USR1 --batch "$jid" ;;   # the batch shell forwards it
        step-term)  timeout 10 scancel --signal=TERM "$jid" ;;           # every job step, not the shell
    esac
    st=$(wait_job "$jid" "$JOB_TIMEOUT")
    k=$(sed -n 's/^bpt: preempted at step \([0-9]*\): checkpoint saved.*exiting with 75$/\1/p' "$log" | head -n 1)
    if [ -z "$k" ]; then fail "$name: no 'bpt: preempted at step N: checkpoint saved ..., exiting with 75' line"; tail_log "$log" 10; return 1; fi
    [ "$k" -lt "$STEPS" ] || { fail "$name: the signal came after the last step ($k)"; return 1; }
    grep -q "requeueing job $jid" "$log" || { fail "$name: the job script did not requeue on exit 75"; tail_log "$log" 10; return 1; }
    grep -q "^resumed from .* at step $k\$" "$log" || { fail "$name: the requeued job did not resume at step $k"; tail_log "$log" 10; return 1; }
    if [ "$st" != COMPLETED ] || [ "$(field "$jid" Restarts)" != 1 ]; then
        fail "$name: job $jid ended $st after $(field "$jid" Restarts) restart(s), expected COMPLETED after 1"; tail_log "$log" 10; return 1
    fi
    if res=$(check_metrics "$BPT_RUNS/$jid/metrics.jsonl" "$BPT_RUNS/$REF_JOB/metrics.jsonl" 2>&1); then
        ok "$name: job $jid stopped at step $k (exit 75), requeued, resumed, COMPLETED; $res"
    else
        fail "$name: $(echo "$res" | tail -n 1)"
    fi
}

# --- watchdog: a stalled rank makes the job abort within the timeout -------------------
# needs: comm_timeout_s, BPT_TEST_STALL_RANK/BPT_TEST_STALL_STEP, the watchdog message
run_watchdog() {
    local stall_rank=1 stall_step=3 jid st log t_stall t_end line waited
    jid=$(submit watchdog --export="ALL,BPT_TEST_STALL_RANK=$stall_rank,BPT_TEST_STALL_STEP=$stall_step" -- \
        --comm_timeout_s=$WD_TIMEOUT) && [ -n "$jid" ] || { fail "watchdog: sbatch failed"; return 1; }
    log=$(log_of watchdog "$jid")
    # steps 0..stall_step-1 are logged, then rank 1 stalls before step stall_step
    if ! wait_rows "$BPT_RUNS/$jid/metrics.jsonl" "$stall_step" 120 "$jid"; then
        fail "watchdog: job $jid did not reach step $stall_step ($(field "$jid" JobState))"; tail_log "$log"; return 1
    fi
    t_stall=$SECONDS
    st=$(wait_job "$jid" $((WD_TIMEOUT + WD_MARGIN + 60)))
    t_end=$SECONDS
    line=$(grep -m1 -E "^bpt: watchdog: rank [0-9]+ waited [0-9.]+ s in [^ ]+ on axis [^ ]+ at step $stall_step; aborting" "$log")
    if [ -z "$line" ]; then fail "watchdog: no 'bpt: watchdog: rank R waited S s in C on axis A at step $stall_step; aborting' line (job $st)"; tail_log "$log" 10; return 1; fi
    waited=$(echo "$line" | sed 's/.* waited \([0-9.]*\) s .*/\1/')
    case $st in FAILED|CANCELLED) ;; *) fail "watchdog: job $jid ended $st, expected FAILED"; tail_log "$log"; return 1 ;; esac
    if [ $((t_end - t_stall)) -gt $((WD_TIMEOUT + WD_MARGIN)) ]; then
        fail "watchdog: the job ended $((t_end - t_stall)) s after the stall, more than comm_timeout_s=$WD_TIMEOUT + $WD_MARGIN"; return 1
    fi
    if grep -q "requeueing job" "$log"; then fail "watchdog: the job script requeued an aborted job"; return 1; fi
    ok "watchdog: job $jid $st $((t_end - t_stall)) s after rank $stall_rank stalled (comm_timeout_s=$WD_TIMEOUT, waited $waited s): $line"
}

# --- rankkill: SIGKILL one rank; the job ends; requeued, it resumes from the last checkpoint
# needs: comm_timeout_s (or the MPI runtime noticing the death) and autoresume
run_rankkill() {
    local jid st log t_kill t_end pid k res killed=
    ensure_ref || { fail "rankkill: no uninterrupted reference run"; return 1; }
    jid=$(submit rankkill -- --save_model_freq=5 --comm_timeout_s=$WD_TIMEOUT) && [ -n "$jid" ] || { fail "rankkill: sbatch failed"; return 1; }
    log=$(log_of rankkill "$jid")
    if ! wait_rows "$BPT_RUNS/$jid/metrics.jsonl" 12 120 "$jid"; then
        fail "rankkill: job $jid did not reach step 12 ($(field "$jid" JobState))"; tail_log "$log"; return 1
    fi
    for pid in $(pgrep -x bpt); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$jid" &&
           tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_PROCID=2"; then
            kill -KILL "$pid" && killed=$pid
        fi
    done
    [ -n "$killed" ] || { fail "rankkill: no rank 2 process of job $jid found"; return 1; }
    t_kill=$SECONDS
    st=$(wait_job "$jid" $((WD_TIMEOUT + WD_MARGIN + 60)))
    t_end=$SECONDS
    case $st in FAILED|CANCELLED) ;; *) fail "rankkill: job $jid ended $st after the kill, expected FAILED"; tail_log "$log"; return 1 ;; esac
    if [ $((t_end - t_kill)) -gt $((WD_TIMEOUT + WD_MARGIN)) ]; then
        fail "rankkill: the job ended $((t_end - t_kill)) s after the kill, more than comm_timeout_s=$WD_TIMEOUT + $WD_MARGIN"; return 1
    fi
    # the next run of the same job (same id, same run directory) resumes
    timeout 10 scontrol requeue "$jid" || { fail "rankkill: scontrol requeue $jid failed"; return 1; }
    st=$(wait_job "$jid" "$JOB_TIMEOUT")
    k=$(sed -n 's/^resumed from .* at step \([0-9]*\)$/\1/p' "$log" | head -n 1)
    if [ "$st" != COMPLETED ] || [ -z "$k" ]; then
        fail "rankkill: the requeued job ended $st, resumed at step '${k:-none}'"; tail_log "$log" 10; return 1
    fi
    [ $((k % 5)) -eq 0 ] && [ "$k" -ge 10 ] || { fail "rankkill: resumed at step $k, not the last complete checkpoint (a multiple of 5, >= 10)"; return 1; }
    if res=$(check_metrics "$BPT_RUNS/$jid/metrics.jsonl" "$BPT_RUNS/$REF_JOB/metrics.jsonl" 2>&1); then
        ok "rankkill: job $jid $((t_end - t_kill)) s after SIGKILL of rank 2 ended FAILED; requeued, resumed at step $k, COMPLETED; $res"
    else
        fail "rankkill: $(echo "$res" | tail -n 1)"
    fi
}

for t in $TESTS; do
    case $t in
        demo)         [ -n "$REF_JOB" ] || run_demo ;;
        preempt)      run_preempt preempt batch-usr1 ;;
        preempt_term) run_preempt preempt_term step-term ;;
        watchdog)     run_watchdog ;;
        rankkill)     run_rankkill ;;
        *)            fail "unknown test '$t' (demo preempt preempt_term watchdog rankkill)" ;;
    esac
done
echo "slurm: $PASSES ok, $FAILS failed"
[ "$FAILS" -eq 0 ]
