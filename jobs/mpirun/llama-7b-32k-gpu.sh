#!/bin/bash
# LLaMA-7B at 32K context with mpirun on GPU nodes without Slurm (a template): 8 ranks per
# node, one per GPU, mesh_dim 1,-1,4 (tensor parallelism inside a node: tp is the
# fastest-varying mesh axis and --map-by ppr:8:node puts consecutive ranks on one node).
# The flags are the reference README's; jobs/slurm/llama-7b-32k-gpu.sbatch explains them.
#
# NOTE: device=cuda needs a build with the CUDA backend (./configure --with-cuda;
# quickstart.sh does it where nvcc exists); `bpt --version` lists the compiled backends,
# and a build without it stops with one line. docs/cuda.md says what is measured.
#
#   BPT_HOSTFILE=hosts.txt BPT_TRAIN_DATA=/data/owt-llama.h5 jobs/mpirun/llama-7b-32k-gpu.sh
#   BPT_RUN_ID=7b-a ... jobs/mpirun/llama-7b-32k-gpu.sh       # again: continues runs/7b-a
#
# hosts.txt: one line per node, "node01 slots=8". Every node must see the same bpt, the
# data and BPT_RUNS (a shared file system).
#
# Exit 75 and signals as in jobs/mpirun/demo.sh: bpt exits 75 after SIGUSR1/SIGTERM with a
# checkpoint saved; a signal to the ranks alone makes this script rerun bpt (which resumes,
# autoresume=true), a signal to this script makes it stop bpt the same way and exit 75 so
# that the batch system can requeue it.
set -u
TOP=${BPT_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BPT=${BPT:-$TOP/src/bpt}
[ -x "$BPT" ] || BPT=$(command -v bpt) || { echo "llama-7b: no bpt binary (set BPT=/path/to/bpt)" >&2; exit 1; }
: "${BPT_TRAIN_DATA:?set BPT_TRAIN_DATA to the tokenized training set (an HDF5 file, docs/data.md)}"
: "${BPT_HOSTFILE:?set BPT_HOSTFILE to a hostfile: one line per node, e.g. node01 slots=8}"
GPUS_PER_NODE=${BPT_GPUS_PER_NODE:-8}
NODES=$(grep -cv '^[[:space:]]*\(#\|$\)' "$BPT_HOSTFILE")
NP=$((NODES * GPUS_PER_NODE))
RUN_ID=${BPT_RUN_ID:-${PBS_JOBID:-${LSB_JOBID:-${FLUX_JOB_ID:-mpirun-$(date +%Y%m%d-%H%M%S)}}}}
RUN_DIR=${BPT_RUNS:-$TOP/runs}/$RUN_ID
MAX_RESTARTS=${BPT_MAX_RESTARTS:-10}
MPIRUN=${MPIRUN:-mpirun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# one rank per GPU, ranks of a node consecutive; bpt picks its GPU from the node-local rank
MPI_FLAGS=(--hostfile "$BPT_HOSTFILE" --map-by "ppr:$GPUS_PER_NODE:node" --bind-to none
           -x OMP_NUM_THREADS -x NCCL_DEBUG -x PATH -x LD_LIBRARY_PATH)
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
# shellcheck disable=SC2206
[ -n "${BPT_MPIRUN_FLAGS:-}" ] && MPI_FLAGS+=($BPT_MPIRUN_FLAGS)

mkdir -p "$RUN_DIR" || exit 1
LOG=$RUN_DIR/job.log
say() { echo "llama-7b: $*" | tee -i -a "$LOG"; }

STOP='' MPI_PID=''
forward() {
    STOP=$1
    say "got SIG$1; asking bpt to checkpoint and stop"
    [ -n "$MPI_PID" ] && kill -USR1 "$MPI_PID" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT
SETSID=
[ -t 0 ] && command -v setsid >/dev/null && SETSID=setsid

restarts=0
while :; do
    say "run $RUN_ID, start $restarts: $NODES nodes x $GPUS_PER_NODE GPUs = $NP ranks; $RUN_DIR"
    log0=$(wc -l <"$LOG")
    $SETSID "$MPIRUN" "${MPI_FLAGS[@]}" -np "$NP" "$BPT" train \
        --device=cuda \
        --mesh_dim='1,-1,4' \
        --dtype='bf16' \
        --total_steps=480000 \
        --log_freq=200 \
        --save_model_freq=1000 \
        --save_milestone_freq=10000 \
        --autoresume=true \
        --comm_timeout_s=900 \
        --load_llama_config='7b' \
        --optimizer.type='adamw' \
        --optimizer.accumulate_gradient_steps=8 \
        --optimizer.adamw_optimizer.weight_decay=0.1 \
        --optimizer.adamw_optimizer.lr=1.5e-4 \
        --optimizer.adamw_optimizer.end_lr=1.5e-5 \
        --optimizer.adamw_optimizer.lr_warmup_steps=2000 \
        --optimizer.adamw_optimizer.lr_decay_steps=480000 \
        --train_dataset.type='hdf5' \
        --train_dataset.hdf5_dataset.path="$BPT_TRAIN_DATA" \
        --train_dataset.hdf5_dataset.seq_length=32768 \
        --train_dataset.hdf5_dataset.batch_size=8 \
        --checkpointer.save_optimizer_state=true \
        --llama.scan_attention=true \
        --llama.remat_attention='nothing_saveable' \
        --llama.scan_query_chunk_size=2048 \
        --llama.scan_key_chunk_size=4096 \
        --llama.scan_mlp=true \
        --llama.remat_mlp='nothing_saveable' \
        --llama.scan_mlp_chunk_size=2048 \
        --llama.scan_loss=true \
        --llama.remat_block='nothing_saveable' \
        --llama.max_sequence_length=32768 \
        --logger.output_dir="$RUN_DIR" \
        "$@" > >(tee -i -a "$LOG") 2>&1 &
    MPI_PID=$!
    rc=0
    wait "$MPI_PID" || rc=$?
    while kill -0 "$MPI_PID" 2>/dev/null; do rc=0; wait "$MPI_PID" || rc=$?; done
    if [ "$rc" -gt 128 ]; then r=0; wait "$MPI_PID" 2>/dev/null || r=$?; [ "$r" -ne 127 ] && rc=$r; fi
    MPI_PID=
    if [ -n "$STOP" ] && [ "$rc" -ne 0 ] && tail -n +$((log0 + 1)) "$LOG" | grep -q '^bpt: preempted at step'; then rc=75; fi
    case $rc in
        0)  say "done: $RUN_DIR"; exit 0 ;;
        75) if [ -n "$STOP" ]; then say "stopped on SIG$STOP; checkpoint in $RUN_DIR/ckpt (exit 75: rerun with BPT_RUN_ID=$RUN_ID)"; exit 75; fi
            restarts=$((restarts + 1))
            [ "$restarts" -le "$MAX_RESTARTS" ] || { say "preempted $restarts times; giving up (exit 75)"; exit 75; }
            say "bpt was preempted (exit 75); resuming from its checkpoint" ;;
        *)  say "bpt failed (exit $rc)"; exit "$rc" ;;
    esac
done
