#!/bin/bash
# The demo (jobs/configs/demo.yaml) with mpirun, for a machine or cluster without Slurm:
# 4 ranks on a 2x2 mesh (fsdp 2 x tp 2) on this host, rerun on exit 75:
# jobs/mpirun/train.sh with the demo's config and corpus.
#
#   jobs/mpirun/demo.sh                          # from the bpt tree; 400 steps
#   jobs/mpirun/demo.sh --total_steps=50         # arguments go to bpt train
#   BPT_NP=8 BPT_MESH=2,2,2 jobs/mpirun/demo.sh
#   BPT_RUN_ID=demo-1 jobs/mpirun/demo.sh        # run again: continues runs/demo-1
#
# Output, exit codes and signals: as jobs/mpirun/train.sh's (runs/<run id>/, job.log,
# exit 75 when the script itself was told to stop). Environment: as train.sh's, and
#   BPT_DATA  the demo corpus, written once if missing (default: $BPT_RUNS/data)
#   BPT_MESH  mesh_dim (default 1,2,2); BPT_NP ranks (default 4)
set -u
TOP=${BPT_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=jobs/lib.sh
. "$TOP/jobs/lib.sh" || exit 1
export BPT_NP=${BPT_NP:-4}
bpt_demo "$TOP/jobs/mpirun/train.sh" "$@"
