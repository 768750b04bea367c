#!/bin/bash
# Any bpt config with mpirun, for machines without Slurm: on this host, or on the nodes
# of a hostfile with BPT_GPUS_PER_NODE ranks (one per GPU) on each, consecutive ranks on
# one node (--map-by ppr:N:node: tensor parallelism stays inside a node). The config is
# the first argument (a path, or a name in jobs/configs/) or BPT_CONFIG; the rest go to
# bpt train after it (so they override the config):
#
#   BPT_HOSTFILE=hosts.txt BPT_TRAIN_DATA=/data/owt-llama.h5 jobs/mpirun/train.sh llama-7b-32k
#   BPT_RUN_ID=7b-a ... jobs/mpirun/train.sh llama-7b-32k        # again: continues runs/7b-a
#   BPT_TRAIN_DATA=... jobs/mpirun/train.sh jobs/configs/llama-1b-128k.yaml   # one 8-GPU node
#   BPT_NP=4 jobs/mpirun/train.sh my.yaml --mesh_dim=1,2,2
#
# hosts.txt: one line per node, "node01 slots=8". Every node must see the same bpt, the
# data and BPT_RUNS (a shared file system).
#
# Output: metrics.jsonl and ckpt/ in $BPT_RUNS/<run id>/, where the run id is BPT_RUN_ID,
# else the batch system's job id (SLURM_JOB_ID, PBS_JOBID, LSB_JOBID, FLUX_JOB_ID), else
# mpirun-<date-time>; the log is printed and appended to $BPT_RUNS/<run id>/job.log.
#
# Exit codes and signals (jobs/lib.sh, docs/running.md):
#   bpt exits 75 after a SIGUSR1 or SIGTERM: it finished the step and saved a checkpoint.
#   - If the signal came to bpt's ranks (not to this script), the job goes on: this script
#     reruns bpt, which resumes from that checkpoint (autoresume=true), up to
#     BPT_MAX_RESTARTS times (default 10).
#   - If it came to this script (a batch system stopping or preempting the job, Ctrl-C),
#     the script passes SIGUSR1 on to bpt through mpirun and exits 75 when bpt has
#     checkpointed: requeue the job (or run the script again with the same BPT_RUN_ID).
#   Any other exit status is returned as it is (BPT_REQUEUE_ON_FAILURE=1: rerun bpt too).
#
# Environment: BPT_TOP, BPT, BPT_CONFIG, BPT_MESH, BPT_TRAIN_DATA, BPT_EVAL_DATA, BPT_RUNS
# as in jobs/slurm/train.sbatch, and
#   BPT_HOSTFILE  the nodes (default: this host only)
#   BPT_GPUS_PER_NODE  ranks per node with a hostfile (default 8)
#   BPT_NP    ranks (default: nodes x BPT_GPUS_PER_NODE; on this host alone, 8)
#   BPT_MPIRUN_FLAGS  more mpirun options; MPIRUN the mpirun (default: mpirun on PATH)
#   OMP_NUM_THREADS  threads per rank (default: this host's cores / its ranks, at least 1)
set -u
TOP=${BPT_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BPT_MODE=mpirun
# shellcheck source=jobs/lib.sh
. "$TOP/jobs/lib.sh" || exit 1
bpt_setup "$@"
LOG=$RUN_DIR/job.log
PER_NODE=${BPT_GPUS_PER_NODE:-8}
if [ -n "${BPT_HOSTFILE:-}" ]; then
    NODES=$(grep -cv '^[[:space:]]*\(#\|$\)' "$BPT_HOSTFILE") || bpt_die "no nodes in BPT_HOSTFILE=$BPT_HOSTFILE"
    NP=${BPT_NP:-$((NODES * PER_NODE))}
    MPI_FLAGS=(--hostfile "$BPT_HOSTFILE" --map-by "ppr:$PER_NODE:node" --bind-to none)
else
    NODES=1 NP=${BPT_NP:-$PER_NODE} PER_NODE=${BPT_NP:-$PER_NODE}
    MPI_FLAGS=(--oversubscribe)   # more ranks than cores: also makes waiting ranks yield
fi
THREADS=$(($(nproc) / PER_NODE))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((THREADS > 0 ? THREADS : 1))}
MPI_FLAGS+=(-x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x NCCL_DEBUG -x PATH)
[ -n "${LD_LIBRARY_PATH:-}" ] && MPI_FLAGS+=(-x LD_LIBRARY_PATH)
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
# shellcheck disable=SC2206
[ -n "${BPT_MPIRUN_FLAGS:-}" ] && MPI_FLAGS+=($BPT_MPIRUN_FLAGS)
# On a terminal, Ctrl-C would reach mpirun too, which aborts the ranks before they can
# checkpoint: there mpirun gets its own session and only this script sees the Ctrl-C.
SETSID=()
[ -t 0 ] && command -v setsid >/dev/null && SETSID=(setsid)
DESC="$NP ranks on $NODES node(s), mesh ${BPT_MESH:-of the config}"
bpt_run "${SETSID[@]}" "${MPIRUN:-mpirun}" "${MPI_FLAGS[@]}" -np "$NP" "$BPT" train "${TRAIN_ARGS[@]}"
