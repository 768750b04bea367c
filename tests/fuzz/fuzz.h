/* fuzz.h — what the libFuzzer harnesses of tests/fuzz share.
 *
 * Each harness defines LLVMFuzzerTestOneInput and is built with
 * clang -fsanitize=fuzzer,address,undefined (make fuzz, tests/fuzz/test_fuzz.sh).
 * A property that must hold for every input and does not is FUZZ_ASSERT: it prints
 * the property and aborts, which libFuzzer reports as a crash with the input.
 */
#ifndef BPT_FUZZ_H
#define BPT_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "fuzz: property failed at %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

/* A private directory for the files a harness hands to a function that takes a
 * path, made once per process and removed at exit. */
static char fuzz_dir_path[64];
static void fuzz_dir_rm(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (fuzz_dir_path[0] && system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir_path);
}
static const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/bpt-fuzz.XXXXXX", t && *t && strlen(t) < 40 ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) { perror("fuzz: mkdtemp"); abort(); }
        atexit(fuzz_dir_rm);
    }
    return fuzz_dir_path;
}

/* fuzz_dir()/name holding exactly n bytes of data; the path in a static buffer. */
static const char *fuzz_file(const char *name, const void *data, size_t n) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

/* A NUL-terminated malloc'd copy of the input. */
static char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

/* A one-line error message: non-empty, no newline. */
static void fuzz_check_err(const char *what, const char *err) {
    FUZZ_ASSERT(err[0], "%s failed with an empty message", what);
    FUZZ_ASSERT(!strchr(err, '\n'), "%s: the message is more than one line: %s", what, err);
}

#endif
