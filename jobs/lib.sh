# shellcheck shell=bash
# jobs/lib.sh: what every bpt job does whatever launches it, in one place. Sourced by
# jobs/slurm/train.sbatch (srun) and jobs/mpirun/train.sh (mpirun), and by the demos,
# which run those two with the demo config (bpt_demo). The caller sets TOP (the bpt
# tree) and BPT_MODE before it sources this file:
#
#   slurm   run again = `scontrol requeue $SLURM_JOB_ID` and exit 0 (the job starts
#           over with the same id, so it finds its run directory); counted by
#           SLURM_RESTART_COUNT, at most BPT_MAX_REQUEUES (default 50)
#   mpirun  run again = launch bpt again from this script; at most BPT_MAX_RESTARTS
#           (default 10); a signal to the script itself ends it with exit 75, for the
#           batch system around it to requeue
#
# bpt's exit codes (docs/running.md): 0 total_steps done; 75 stopped on SIGUSR1/SIGTERM
# with a checkpoint saved: run again, it resumes (autoresume=true); anything else a
# failure: run again only with BPT_REQUEUE_ON_FAILURE=1 (off by default, because a
# config error would loop until the restart limit).

# bpt_die MESSAGE: one line on stderr, exit 1
bpt_die() { echo "${NAME:-bpt job}: $*" >&2; exit 1; }

# say MESSAGE: a line of this script's in the log (and in $LOG where the caller set one)
say() {
    if [ -n "${LOG:-}" ]; then echo "$NAME: $*" | tee -i -a "$LOG"; else echo "$NAME: $*"; fi
}

# bpt_find: BPT, the binary: $BPT, else $TOP/src/bpt, else bpt on PATH
bpt_find() {
    BPT=${BPT:-$TOP/src/bpt}
    [ -x "$BPT" ] || BPT=$(command -v bpt) || bpt_die "no bpt binary (build it: make, or set BPT=/path/to/bpt)"
}

# bpt_setup [CONFIG] [BPT ARGS...]: finds bpt and the config, makes the run directory
# and sets TRAIN_ARGS, the arguments of `bpt train`:
#   --config CONFIG            the first argument (a path, or a name in jobs/configs/;
#                              `--config X` there too), else $BPT_CONFIG
#   --mesh_dim=$BPT_MESH       where set
#   --autoresume=true --logger.output_dir=$RUN_DIR     RUN_DIR=$BPT_RUNS/<run id>
#   --train_dataset.hdf5_dataset.path=$BPT_TRAIN_DATA  where set (likewise BPT_EVAL_DATA)
#   BPT ARGS                   last, so they override all of the above
# The run id is BPT_RUN_ID, else the batch system's job id (SLURM_JOB_ID, PBS_JOBID,
# LSB_JOBID, FLUX_JOB_ID), else $BPT_MODE-<date-time>.
bpt_setup() {
    local c
    CONFIG=${BPT_CONFIG:-}
    case ${1:-} in
        --config) CONFIG=${2:-}; shift; [ $# -gt 0 ] && shift ;;
        --config=*) CONFIG=${1#--config=}; shift ;;
        ''|-*) ;;
        *) CONFIG=$1; shift ;;
    esac
    [ -n "$CONFIG" ] || bpt_die "no config: name one first (jobs/configs/NAME.yaml, or NAME), or set BPT_CONFIG"
    for c in "$CONFIG" "$TOP/$CONFIG" "$TOP/jobs/configs/$CONFIG" "$TOP/jobs/configs/$CONFIG.yaml"; do
        [ -f "$c" ] && { CONFIG=$(cd "$(dirname "$c")" && pwd)/$(basename "$c"); break; }
    done
    [ -f "$CONFIG" ] || bpt_die "no config file '$CONFIG' (looked in $PWD, $TOP and $TOP/jobs/configs)"
    NAME=$(basename "$CONFIG"); NAME=${NAME%.yaml}; NAME=${NAME%.yml}
    bpt_find
    RUN_ID=${BPT_RUN_ID:-${SLURM_JOB_ID:-${PBS_JOBID:-${LSB_JOBID:-${FLUX_JOB_ID:-$BPT_MODE-$(date +%Y%m%d-%H%M%S)}}}}}
    RUN_DIR=${BPT_RUNS:-$TOP/runs}/$RUN_ID
    mkdir -p "$RUN_DIR" || exit 1
    TRAIN_ARGS=(--config "$CONFIG")
    [ -n "${BPT_MESH:-}" ] && TRAIN_ARGS+=(--mesh_dim="$BPT_MESH")
    TRAIN_ARGS+=(--autoresume=true --logger.output_dir="$RUN_DIR")
    [ -n "${BPT_TRAIN_DATA:-}" ] && TRAIN_ARGS+=(--train_dataset.hdf5_dataset.path="$BPT_TRAIN_DATA")
    [ -n "${BPT_EVAL_DATA:-}" ] && TRAIN_ARGS+=(--eval_dataset.hdf5_dataset.path="$BPT_EVAL_DATA")
    TRAIN_ARGS+=("$@")
    # BLAS inside a rank runs on one thread (bpt's own threads are OpenMP's); NCCL
    # reports errors, not its banner
    export OPENBLAS_NUM_THREADS=1 NCCL_DEBUG=${NCCL_DEBUG:-WARN}
}

# bpt_forward SIG: a signal to this shell goes on to bpt as SIGUSR1, on which it finishes
# the step, checkpoints and exits 75 (srun and mpirun pass USR1 on to the ranks; SIGTERM
# or SIGINT would make them kill the ranks at once)
bpt_forward() {
    STOP=$1
    say "got SIG$1; asking bpt to checkpoint and stop (SIGUSR1)"
    [ -n "$PID" ] && kill -USR1 "$PID" 2>/dev/null
}

# bpt_again WHY: runs bpt again if the mode and the restart limit allow: returns (mpirun)
# or requeues the job and exits 0 (slurm); else exits with $rc
bpt_again() {
    local n max
    if [ -n "$STOP" ] && [ "$BPT_MODE" = mpirun ]; then
        say "$1; stopped on SIG$STOP (exit $rc: run again with BPT_RUN_ID=$RUN_ID to continue)"
        exit "$rc"
    fi
    if [ "$BPT_MODE" = slurm ]; then n=${SLURM_RESTART_COUNT:-0} max=${BPT_MAX_REQUEUES:-50}
    else n=$RESTARTS max=${BPT_MAX_RESTARTS:-10}; fi
    if [ "$n" -ge "$max" ]; then
        say "$1, but already restarted $n times (the limit); not running again (exit $rc)"; exit "$rc"
    fi
    if [ "$BPT_MODE" = mpirun ]; then
        RESTARTS=$((RESTARTS + 1))
        say "$1; running bpt again (restart $RESTARTS), from its last checkpoint"
        return 0
    fi
    [ -n "${SLURM_JOB_ID:-}" ] || { say "$1; not a Slurm job, nothing to requeue (exit $rc)"; exit "$rc"; }
    say "$1; requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID" || { say "scontrol requeue failed (exit $rc)"; exit "$rc"; }
    exit 0
}

# bpt_run LAUNCHER...: runs the command (a launcher whose command line ends with
# `$BPT train "${TRAIN_ARGS[@]}"`) in the background with the signals forwarded, waits
# for it and acts on its exit code, until bpt is done or must not run again. Never
# returns. DESC (set by the caller) says where it runs.
bpt_run() {
    local r at='' log0=0
    STOP='' PID='' RESTARTS=0 rc=0
    trap 'bpt_forward USR1' USR1
    trap 'bpt_forward TERM' TERM
    trap 'bpt_forward INT' INT
    while :; do
        [ "$BPT_MODE" = slurm ] || at="start $RESTARTS, "
        say "run $RUN_ID, $at${DESC:-}; config $CONFIG; run dir $RUN_DIR"
        if [ -n "${LOG:-}" ]; then
            log0=$(wc -l <"$LOG")
            "$@" > >(tee -i -a "$LOG") 2>&1 &
        else
            "$@" &
        fi
        PID=$!
        # wait returns early when a trapped signal arrives: wait again until it has ended
        rc=0
        wait "$PID" || rc=$?
        while kill -0 "$PID" 2>/dev/null; do rc=0; wait "$PID" || rc=$?; done
        if [ "$rc" -gt 128 ]; then r=0; wait "$PID" 2>/dev/null || r=$?; [ "$r" -ne 127 ] && rc=$r; fi
        PID=
        # a Ctrl-C that reached mpirun too makes it stop the ranks and exit 1 even though
        # bpt checkpointed: bpt's own line tells
        if [ -n "$STOP" ] && [ "$rc" -ne 0 ] && [ -n "${LOG:-}" ] &&
           tail -n +$((log0 + 1)) "$LOG" | grep -q '^bpt: preempted at step'; then rc=75; fi
        case $rc in
            0)  say "done: $RUN_DIR/metrics.jsonl, $RUN_DIR/ckpt/"; exit 0 ;;
            75) bpt_again "preempted: bpt saved a checkpoint in $RUN_DIR/ckpt and stopped (exit 75)" ;;
            *)  # a crash, a dead rank or a watchdog abort: run again (from the last complete
                # checkpoint) only when asked to
                say "bpt failed (exit $rc)"
                [ "${BPT_REQUEUE_ON_FAILURE:-0}" = 1 ] || exit "$rc"
                bpt_again "BPT_REQUEUE_ON_FAILURE=1" ;;
        esac
    done
}

# bpt_demo SCRIPT [BPT ARGS...]: the demo: writes its corpus once (in $BPT_DATA, default
# $BPT_RUNS/data; under a temporary name, then renamed, so concurrent jobs are safe) and
# runs SCRIPT (train.sbatch or train.sh) with jobs/configs/demo.yaml on mesh $BPT_MESH
# (default 1,2,2: fsdp 2 x tp 2). Never returns.
bpt_demo() {
    local data=${BPT_DATA:-${BPT_RUNS:-$TOP/runs}/data} f name tokens seed script=$1
    shift
    NAME=demo
    bpt_find
    mkdir -p "$data" || exit 1
    for f in train:2000000:1 eval:200000:2; do
        IFS=: read -r name tokens seed <<<"$f"
        if [ ! -s "$data/$name.h5" ]; then
            "$BPT" data synth --output "$data/$name.h5.$(hostname -s).$$.tmp" --tokens "$tokens" --seed "$seed" >/dev/null &&
                mv -f "$data/$name.h5.$(hostname -s).$$.tmp" "$data/$name.h5" || exit 1
        fi
    done
    export BPT_TOP=$TOP BPT BPT_TRAIN_DATA=$data/train.h5 BPT_EVAL_DATA=$data/eval.h5 BPT_MESH=${BPT_MESH:-1,2,2}
    exec bash "$script" "$TOP/jobs/configs/demo.yaml" "$@"
}
