/* bench.h — what the benchmark programs share. */
#ifndef BPT_BENCH_H
#define BPT_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sequence lengths of a --t list ("2048,8192", at most 255 characters; empty items
 * skipped): up to max of them into T[]; returns how many. */
static inline int bench_t_list(const char *ts, int *T, int max) {
    char buf[256];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", ts);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok && n < max; tok = strtok_r(NULL, ",", &sv))
        T[n++] = atoi(tok);
    return n;
}

#endif
