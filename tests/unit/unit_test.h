/* unit_test.h — what the file-writing unit tests (test_data, test_tokenizer) share: the
 * check counter, a scratch directory under $TMPDIR (or /tmp), removed at the end
 * unless BPT_TEST_KEEP is set, and a file writer. */
#ifndef BPT_UNIT_TEST_H
#define BPT_UNIT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0, checks = 0;
static char dir[256];
static char err[1024];

#define CHECK(cond, ...) do {                                         \
        checks++;                                                     \
        if (cond) { printf("ok    "); printf(__VA_ARGS__); printf("\n"); } \
        else { failures++; printf("FAIL  "); printf(__VA_ARGS__);     \
               printf("  [%s:%d]\n", __FILE__, __LINE__); }           \
    } while (0)

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
    if (!f) { perror(path); exit(1); }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Make the scratch directory dir, "bpt_test_<name>_XXXXXX"; 0, or -1 with a message. */
static int scratch_begin(const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bpt_test_%s_XXXXXX", base && *base ? base : "/tmp", name);
    if (!mkdtemp(dir)) { perror("mkdtemp"); return -1; }
    return 0;
}

/* Remove the scratch directory (or say where it was kept), print the tally; the exit
 * status. */
static int scratch_end(const char *name) {
    if (getenv("BPT_TEST_KEEP")) {
        printf("files kept in %s\n", dir);
    } else {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("%s: %d checks, %d failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif
