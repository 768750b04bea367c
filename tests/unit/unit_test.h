/* unit_test.h — the one check harness of the C test programs (tests/unit/, tests/gpu/):
 * every check is a line of TAP (the Test Anything Protocol), which make check reads
 * through automake's tap-driver.sh, so it reports each check by name.
 *
 *   ok 3 - what was checked                      CHECK(cond, "what was checked")
 *   not ok 4 - what was checked                  (cond false) followed by
 *   # at tests/unit/test_x.c:123                 where the check is
 *   # any other output                           tap_note("...")
 *   1..5                                         tap_done(): the plan, last
 *   1..0 # SKIP no GPU: ...                      tap_skip_all("no GPU: ..."): nothing to test
 *   Bail out! config: ...                        tap_bail("config: ..."): cannot go on
 *
 * The plan comes last, so a program that dies half way (crash, exit, sanitizer abort)
 * reports the checks it made and then "missing test plan". Exit status, for a program
 * run by hand: 0 when every check passed, 1 when one failed, 77 (automake's SKIP) from
 * tap_skip_all. Under the TAP driver (Makefile.am sets BPT_TAP_DRIVER=1) a failed check
 * and a skip exit 0: the TAP lines say it, and a non-zero status then means something
 * TAP could not (a sanitizer's report at exit, a crash).
 *
 * Checks are made from one thread. */
#ifndef BPT_UNIT_TEST_H
#define BPT_UNIT_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failed;

/* Print fmt's text as a TAP description: one line, '#' escaped (else "# SKIP" or
 * "# TODO" inside would read as a directive). */
static inline void tap_vdesc(const char *fmt, va_list ap) {
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    for (const char *p = buf; *p; p++) {
        if (*p == '\n' || *p == '\r') fputs(" | ", stdout);
        else if (*p == '#') fputs("\\#", stdout);
        else putchar(*p);
    }
}

/* One check: "ok N - ..." or "not ok N - ..." and "# at file:line"; returns ok. */
static inline int tap_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_check(int ok, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    tap_count++;
    if (!ok) tap_failed++;
    printf("%sok %d - ", ok ? "" : "not ", tap_count);
    va_start(ap, fmt);
    tap_vdesc(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (!ok) printf("# at %s:%d\n", file, line);
    fflush(stdout);
    return ok;
}

/* CHECK(cond, printf-format, ...): cond is evaluated once, before the arguments of the
 * description (which may show what cond computed). */
#define CHECK(cond, ...) do {                                          \
        int tap_ok_ = (cond) ? 1 : 0;                                  \
        tap_check(tap_ok_, __FILE__, __LINE__, __VA_ARGS__);           \
    } while (0)

/* Diagnostics: every line of the text as a TAP comment, "# ...". */
static inline void tap_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_note(const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf, *e; ; p = e + 1) {
        e = p + strcspn(p, "\n");
        printf("# %.*s\n", (int)(e - p), p);
        if (!*e || !e[1]) break;
    }
    fflush(stdout);
}

/* Whether the TAP driver reads us (exit 0 after a failed check or a skip). */
static inline int tap_driven(void) {
    const char *s = getenv("BPT_TAP_DRIVER");
    return s && *s && *s != '0';
}

/* The program's last line, prefix and fmt's text as a description; then exit(status).
 * Called as tap_skip_all or tap_bail. */
static inline void tap_stop(int status, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static inline void tap_stop(int status, const char *prefix, const char *fmt, ...) {
    va_list ap;
    fputs(prefix, stdout);
    va_start(ap, fmt);
    tap_vdesc(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    exit(status);
}

/* tap_skip_all(fmt, ...): nothing to test here (no GPU, ...), before any check: the plan
 * "1..0 # SKIP why"; exits 77, or 0 under the driver. */
#define tap_skip_all(...) tap_stop(tap_driven() ? 0 : 77, "1..0 # SKIP ", __VA_ARGS__)

/* tap_bail(fmt, ...): the test cannot go on (a setup step failed): "Bail out! why", exit 1. */
#define tap_bail(...) tap_stop(1, "Bail out! ", __VA_ARGS__)

/* The end: the plan "1..N" and a tally; the exit status for main to return. */
static inline int tap_done(void) {
    printf("1..%d\n", tap_count);
    printf("# %d checks, %d failed\n", tap_count, tap_failed);
    fflush(stdout);
    return tap_failed && !tap_driven() ? 1 : 0;
}

#endif
