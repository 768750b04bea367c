/* util.c — errors, allocation, time, counter-based random numbers. */
#define _GNU_SOURCE   /* fallocate */
#include "bpt/util.h"
#include "bpt/comm.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <mpi.h>

void bpt_panic(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bpt: internal error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    int up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Abort(MPI_COMM_WORLD, 2);
    abort();
}

void bpt_die(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bpt_agree_or_exit(1, msg);
    exit(1);   /* not reached: every rank has status 1 */
}

static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20) *s = ' ';
}

int bpt_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        one_line(err);
    }
    return -1;
}

int bpt_error(int status, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    one_line(msg);
    fflush(stdout);
    fprintf(stderr, "bpt: %s\n", msg);
    fflush(stderr);
    return status;
}

void *bpt_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    BPT_CHECK(p, "out of host memory allocating %zu bytes", n);
    return p;
}

void *bpt_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    BPT_CHECK(q, "out of host memory growing a buffer to %zu bytes", n);
    return q;
}

void *bpt_xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    BPT_CHECK(p, "out of host memory allocating %zu x %zu bytes", n, sz);
    return p;
}

char *bpt_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = bpt_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

double bpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"). */
void bpt_philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

uint64_t bpt_hash64(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

float bpt_randn(uint64_t seed, const char *name, uint64_t idx) {
    uint32_t r[4];
    bpt_philox(seed, bpt_hash64(name), idx, r);
    /* Box-Muller on two 32-bit uniforms in (0, 1]. */
    double u1 = ((double)r[0] + 1.0) / 4294967296.0;
    double u2 = (double)r[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

const char *bpt_fmt_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int i = 0;
    while (b >= 1024.0 && i < 5) { b /= 1024.0; i++; }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

int bpt_mkdirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int bpt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;     /* the range of the second byte */
    int need;                                    /* trailing bytes */
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; lo = c == 0xE0 ? 0xA0 : lo; hi = c == 0xED ? 0x9F : hi; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; lo = c == 0xF0 ? 0x90 : lo; hi = c == 0xF4 ? 0x8F : hi; }
    else { *bad = 1; return 0; }
    uint32_t x = c & (0x3Fu >> need);
    size_t i = 1;
    for (; i <= (size_t)need && i < n; i++) {
        unsigned d = s[i];
        if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xBF)) break;
        x = x << 6 | (d & 0x3F);
    }
    if (i == (size_t)need + 1) { *cp = x; return need + 1; }
    *bad = i;
    return 0;
}

void bpt_dirname(const char *path, char *dir, size_t len) {
    snprintf(dir, len, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
}

int64_t bpt_fs_free_bytes(const char *path) {
    struct statvfs sv;
    if (statvfs(path, &sv) != 0) {
        char dir[4096];
        bpt_dirname(path, dir, sizeof dir);
        if (statvfs(dir, &sv) != 0) return -1;
    }
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

int bpt_reserve_space(const char *path, double bytes) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    int rc = 0;
#ifdef FALLOC_FL_KEEP_SIZE
    if (bytes > 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) != 0)
        rc = errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL ? 1 : -1;
#else
    (void)bytes;
    rc = 1;
#endif
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

void bpt_release_space(const char *path) {
#if defined(FALLOC_FL_KEEP_SIZE) && defined(FALLOC_FL_PUNCH_HOLE)
    int fd = open(path, O_WRONLY);
    if (fd < 0) return;
    struct stat st;
    /* the blocks past the end: cut at the size (xfs, tmpfs), punched out (ext4) */
    if (fstat(fd, &st) == 0 && ftruncate(fd, st.st_size) == 0)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)1 << 40);
    close(fd);
#else
    (void)path;
#endif
}

const char *bpt_write_failure(const char *path) {
    int e = errno;
    int64_t free_bytes = bpt_fs_free_bytes(path);
    if (e == EDQUOT) return strerror(e);
    if (e == ENOSPC || (free_bytes >= 0 && free_bytes < (1 << 20))) return strerror(ENOSPC);
    return e ? strerror(e) : "an I/O error";
}

int bpt_fsync_path(const char *path, int is_dir) {
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && is_dir && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
    close(fd);
    return rc;
}
