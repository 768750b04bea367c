/* testhooks.h — the test interface: faults the test suite makes happen on purpose. Each
 * is an environment variable, read once, at the first call; production code asks here
 * and nowhere reads them itself. Unset, every hook is off and costs one branch.
 *
 *   BPT_TEST_STALL_RANK=R BPT_TEST_STALL_STEP=S  world rank R stops before step S, as a
 *                                                hung rank would (the watchdog tests:
 *                                                tests/mpi/test_preempt.sh, test_slurm.sh)
 *   BPT_TEST_SAVE_PAUSE=STEP:SECONDS             the save of that step sleeps after the
 *                                                parameters are written, so a test can
 *                                                kill the job mid-save (test_ckpt.sh)
 *   BPT_TEST_NO_SPACE_CHECK=1                    a written file gets no free-space check
 *                                                and no reservation, so a disk can fill
 *                                                during the writes (test_faults.sh)
 *   BPT_TEST_MPI_CHUNK=N                         host all-reduces go in pieces of N
 *                                                elements instead of 2^28 (test_mesh.sh)
 */
#ifndef BPT_TESTHOOKS_H
#define BPT_TESTHOOKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct bpt_test_hooks {
    int stall_rank;           /* -1: off */
    int64_t stall_step;
    int64_t save_pause_step;  /* -1: off */
    int save_pause_s;
    int no_space_check;       /* 1: skip the free-space check and the reservation */
    size_t mpi_chunk;         /* 0: off */
} bpt_test_hooks;

const bpt_test_hooks *bpt_test_hooks_get(void);

#endif
