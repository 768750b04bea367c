/* scratch.h — what the file-writing unit tests (test_data, test_tokenizer) share besides
 * the checks (unit_test.h): a scratch directory under $TMPDIR (or /tmp), removed at the
 * end unless BPT_TEST_KEEP is set, and a file writer. */
#ifndef BPT_SCRATCH_H
#define BPT_SCRATCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit_test.h"

static char dir[256];

/* dir/name, in one of four rotating buffers */
static const char *tmp(const char *name) {
    static char buf[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) tap_bail("%s: %s", path, strerror(errno));
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Make the scratch directory dir, "bpt_test_<name>_XXXXXX" (or bail out). */
static void scratch_begin(const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bpt_test_%s_XXXXXX", base && *base ? base : "/tmp", name);
    if (!mkdtemp(dir)) tap_bail("mkdtemp %s: %s", dir, strerror(errno));
}

/* Remove the scratch directory (or say where it was kept). */
static void scratch_end(void) {
    if (getenv("BPT_TEST_KEEP")) {
        tap_note("files kept in %s", dir);
    } else {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
}

#endif
