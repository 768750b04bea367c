/* watchdog.c — abort the job when a collective hangs (see comm.h). */
#include "bpt/comm.h"
#include "bpt/util.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t lock;
    int running;
    double timeout;
    const char *what;          /* the collective in progress, NULL when none */
    bpt_axis axis;
    double since;
    int64_t step;
    int (*poll)(double, char *, size_t);
    int rank;                  /* MPI_COMM_WORLD's, read when started: the thread calls no MPI but the abort */
    int mpi;                   /* MPI was initialised then */
} wd = {PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL, BPT_AXIS_WORLD, 0, -1, NULL, 0, 0};

/* End the job on every rank (or this process, without MPI). MPI_Abort from this thread
 * while the main thread sits in a collective needs MPI_THREAD_MULTIPLE; with less, this
 * process exits 3 alone, its message printed, and the launcher has to end the rest
 * (mpirun does on a non-zero exit; srun only with --kill-on-bad-exit=1). */
static void die_all(void) {
    if (wd.mpi && bpt_mpi_thread_level() >= MPI_THREAD_MULTIPLE) MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}
/* held while a poll runs, so bpt_watchdog_set_poll(NULL) returns only after it */
static pthread_mutex_t poll_lock = PTHREAD_MUTEX_INITIALIZER;

static void *watch(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1);
        pthread_mutex_lock(&wd.lock);
        double waited = wd.what ? bpt_now() - wd.since : 0;
        const char *what = wd.what;
        bpt_axis axis = wd.axis;
        int64_t step = wd.step;
        pthread_mutex_unlock(&wd.lock);
        char msg[512];
        pthread_mutex_lock(&poll_lock);
        int abort_now = wd.poll && wd.poll(wd.timeout, msg, sizeof msg);
        pthread_mutex_unlock(&poll_lock);
        if (abort_now) {
            fprintf(stderr, "bpt: watchdog: rank %d: %s; aborting (HINT: a rank died or stalls; comm_timeout_s=%.0f)\n",
                    wd.rank, msg, wd.timeout);
            fflush(stderr);
            die_all();
        }
        if (what && waited > wd.timeout) {
            fprintf(stderr, "bpt: watchdog: rank %d waited %.0f s in %s on axis %s at step %lld; aborting "
                    "(HINT: a rank died or stalls; comm_timeout_s=%.0f)\n",
                    wd.rank, waited, what, bpt_axis_name(axis), (long long)step, wd.timeout);
            fflush(stderr);
            die_all();
        }
    }
    return NULL;
}

void bpt_watchdog_start(double timeout_s) {
    pthread_mutex_lock(&wd.lock);
    int start = !wd.running && timeout_s > 0;
    wd.timeout = timeout_s;
    if (start) wd.running = 1;
    pthread_mutex_unlock(&wd.lock);
    if (!start) return;
    MPI_Initialized(&wd.mpi);
    if (wd.mpi) MPI_Comm_rank(MPI_COMM_WORLD, &wd.rank);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    BPT_CHECK(pthread_create(&t, &at, watch, NULL) == 0, "cannot start the watchdog thread");
    pthread_attr_destroy(&at);
}

void bpt_watchdog_set_step(int64_t step) {
    pthread_mutex_lock(&wd.lock);
    wd.step = step;
    pthread_mutex_unlock(&wd.lock);
}

int64_t bpt_watchdog_step(void) {
    pthread_mutex_lock(&wd.lock);
    int64_t s = wd.step;
    pthread_mutex_unlock(&wd.lock);
    return s;
}

void bpt_watchdog_set_poll(int (*poll)(double, char *, size_t)) {
    pthread_mutex_lock(&poll_lock);
    wd.poll = poll;
    pthread_mutex_unlock(&poll_lock);
}

void bpt_watchdog_enter(const char *what, bpt_axis a) {
    if (!wd.running) return;
    pthread_mutex_lock(&wd.lock);
    wd.what = what;
    wd.axis = a;
    wd.since = bpt_now();
    pthread_mutex_unlock(&wd.lock);
}

void bpt_watchdog_leave(void) {
    if (!wd.running) return;
    pthread_mutex_lock(&wd.lock);
    wd.what = NULL;
    pthread_mutex_unlock(&wd.lock);
}
