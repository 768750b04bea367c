#!/bin/bash
# The demo (jobs/configs/demo.yaml) with mpirun, for a machine or cluster without Slurm:
# 4 ranks on a 2x2 mesh (fsdp 2 x tp 2) on this host, rerun on exit 75.
#
#   jobs/mpirun/demo.sh                          # from the bpt tree; 400 steps
#   jobs/mpirun/demo.sh --total_steps=50         # arguments go to bpt train
#   BPT_NP=8 BPT_MESH=2,2,2 jobs/mpirun/demo.sh
#   BPT_RUN_ID=demo-1 jobs/mpirun/demo.sh        # run again: continues runs/demo-1
#
# Output: metrics.jsonl and ckpt/ in runs/<run id>/, where the run id is BPT_RUN_ID, else
# the batch system's job id (PBS_JOBID, LSB_JOBID, FLUX_JOB_ID), else mpirun-<date-time>;
# the log is printed and appended to runs/<run id>/job.log.
#
# Exit codes and signals (docs/running.md):
#   bpt exits 75 after a SIGUSR1 or SIGTERM: it finished the step and saved a checkpoint.
#   - If the signal came to bpt's ranks (not to this script), the job goes on: this script
#     reruns bpt, which resumes from that checkpoint (autoresume=true), up to
#     BPT_MAX_RESTARTS times (default 10).
#   - If it came to this script (a batch system stopping or preempting the job, Ctrl-C),
#     the script passes SIGUSR1 on to bpt through mpirun and exits 75 when bpt has
#     checkpointed: requeue the job (or run the script again with the same BPT_RUN_ID).
#   Any other exit status is returned as it is.
set -u
TOP=${BPT_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BPT=${BPT:-$TOP/src/bpt}
[ -x "$BPT" ] || BPT=$(command -v bpt) || { echo "demo.sh: no bpt binary (build it: make, or set BPT=/path/to/bpt)" >&2; exit 1; }
NP=${BPT_NP:-4}
MESH=${BPT_MESH:-1,2,2}
RUN_ID=${BPT_RUN_ID:-${PBS_JOBID:-${LSB_JOBID:-${FLUX_JOB_ID:-mpirun-$(date +%Y%m%d-%H%M%S)}}}}
RUNS=${BPT_RUNS:-$TOP/runs}
RUN_DIR=$RUNS/$RUN_ID
DATA=${BPT_DATA:-$RUNS/data}
MAX_RESTARTS=${BPT_MAX_RESTARTS:-10}
MPIRUN=${MPIRUN:-mpirun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=1
MPI_FLAGS=(--oversubscribe -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
# shellcheck disable=SC2206
[ -n "${BPT_MPIRUN_FLAGS:-}" ] && MPI_FLAGS+=($BPT_MPIRUN_FLAGS)

mkdir -p "$RUN_DIR" "$DATA" || exit 1
LOG=$RUN_DIR/job.log
say() { echo "demo.sh: $*" | tee -i -a "$LOG"; }

for f in train:2000000:1 eval:200000:2; do
    IFS=: read -r name tokens seed <<<"$f"
    if [ ! -s "$DATA/$name.h5" ]; then
        "$BPT" data synth --output "$DATA/$name.h5.$$.tmp" --tokens "$tokens" --seed "$seed" >/dev/null &&
            mv -f "$DATA/$name.h5.$$.tmp" "$DATA/$name.h5" || exit 1
    fi
done

STOP='' MPI_PID=''
forward() {   # stop: bpt checkpoints on SIGUSR1 (mpirun passes USR1 on; TERM would kill)
    STOP=$1
    say "got SIG$1; asking bpt to checkpoint and stop"
    [ -n "$MPI_PID" ] && kill -USR1 "$MPI_PID" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT

# On a terminal, Ctrl-C would reach mpirun too, which aborts the ranks before they can
# checkpoint: there mpirun gets its own session and only this script sees the Ctrl-C.
SETSID=
[ -t 0 ] && command -v setsid >/dev/null && SETSID=setsid

restarts=0
while :; do
    say "run $RUN_ID, start $restarts, $NP ranks, mesh $MESH: $RUN_DIR"
    log0=$(wc -l <"$LOG")
    $SETSID "$MPIRUN" "${MPI_FLAGS[@]}" -np "$NP" "$BPT" train --config "$TOP/jobs/configs/demo.yaml" \
        --mesh_dim="$MESH" \
        --autoresume=true \
        --logger.output_dir="$RUN_DIR" \
        --train_dataset.hdf5_dataset.path="$DATA/train.h5" \
        --eval_dataset.hdf5_dataset.path="$DATA/eval.h5" \
        "$@" > >(tee -i -a "$LOG") 2>&1 &
    MPI_PID=$!
    rc=0
    wait "$MPI_PID" || rc=$?
    while kill -0 "$MPI_PID" 2>/dev/null; do rc=0; wait "$MPI_PID" || rc=$?; done
    if [ "$rc" -gt 128 ]; then r=0; wait "$MPI_PID" 2>/dev/null || r=$?; [ "$r" -ne 127 ] && rc=$r; fi
    MPI_PID=
    # Ctrl-C also reaches mpirun, which then stops the ranks with SIGTERM and exits 1
    # even though bpt checkpointed: bpt's own line tells
    if [ -n "$STOP" ] && [ "$rc" -ne 0 ] && tail -n +$((log0 + 1)) "$LOG" | grep -q '^bpt: preempted at step'; then rc=75; fi
    case $rc in
        0)  say "done: $RUN_DIR/metrics.jsonl"; exit 0 ;;
        75) if [ -n "$STOP" ]; then say "stopped on SIG$STOP; checkpoint in $RUN_DIR/ckpt (exit 75: rerun with BPT_RUN_ID=$RUN_ID)"; exit 75; fi
            restarts=$((restarts + 1))
            [ "$restarts" -le "$MAX_RESTARTS" ] || { say "preempted $restarts times; giving up (exit 75)"; exit 75; }
            say "bpt was preempted (exit 75); resuming from its checkpoint" ;;
        *)  say "bpt failed (exit $rc)"; exit "$rc" ;;
    esac
done
