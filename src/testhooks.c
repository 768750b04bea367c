/* testhooks.c — the test interface (include/bpt/testhooks.h). */
#include "bpt/testhooks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static bpt_test_hooks hooks;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_hooks(void) {
    const char *r = getenv("BPT_TEST_STALL_RANK"), *s = getenv("BPT_TEST_STALL_STEP");
    hooks.stall_rank = r && s ? atoi(r) : -1;
    hooks.stall_step = r && s ? atoll(s) : -1;
    const char *p = getenv("BPT_TEST_SAVE_PAUSE");
    long long step;
    int secs;
    hooks.save_pause_step = -1;
    if (p && sscanf(p, "%lld:%d", &step, &secs) == 2) {
        hooks.save_pause_step = step;
        hooks.save_pause_s = secs;
    }
    hooks.no_space_check = getenv("BPT_TEST_NO_SPACE_CHECK") != NULL;
    const char *c = getenv("BPT_TEST_MPI_CHUNK");
    long v = c ? atol(c) : 0;
    hooks.mpi_chunk = v > 0 ? (size_t)v : 0;
}

const bpt_test_hooks *bpt_test_hooks_get(void) {
    pthread_once(&once, read_hooks);
    return &hooks;
}
