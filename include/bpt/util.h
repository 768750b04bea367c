/* util.h — errors, allocation, time, counter-based random numbers. */
#ifndef BPT_UTIL_H
#define BPT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Internal failure: prints "bpt: internal error at file:line: what" and aborts the job. */
#define BPT_CHECK(cond, ...) do { if (!(cond)) bpt_panic(__FILE__, __LINE__, __VA_ARGS__); } while (0)
void bpt_panic(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* Bad input that every rank reached at the same point (a check of what all ranks share:
 * the config, the mesh): bpt_agree_or_exit (comm.h) with status 1 and this message, so
 * it is printed once and every rank exits 1. What only some ranks can see (a file, an
 * allocation, rank 0's writes) goes through bpt_agree_or_exit itself, which every rank
 * calls whether it failed or not. */
void bpt_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* The error path. A failure is formatted into the caller's err buffer with bpt_err and
 * travels up as -1; at the top it is printed once as one line, "bpt: <message>", by
 * bpt_error (a serial command: bpt ckpt, bpt data inspect) or bpt_agree_or_exit /
 * bpt_die (comm.h: every rank of a job). Control characters in a message (a newline
 * from a file's contents) become spaces, so an error is always one line. */
int bpt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Print "bpt: <message>" on stderr as one line; returns status (for "return bpt_error(1, ...)"). */
int bpt_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void *bpt_xmalloc(size_t n);          /* never NULL */
void *bpt_xrealloc(void *p, size_t n);
void *bpt_xcalloc(size_t n, size_t sz);
char *bpt_xstrdup(const char *s);

double bpt_now(void);                 /* seconds, monotonic */

/* Philox4x32-10: four 32-bit words from (key, counter). Pure function. */
void bpt_philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
/* A standard normal for element idx of the stream named (seed, name): the same
 * value whoever computes it, so any rank can draw exactly its own slice. */
float bpt_randn(uint64_t seed, const char *name, uint64_t idx);
uint64_t bpt_hash64(const char *s);   /* FNV-1a */

/* The UTF-8 sequence at s (n > 0 bytes): its length (1 to 4) with its code point in *cp
 * when it is well-formed (Unicode table 3-7: no overlong form, no surrogate, at most
 * U+10FFFF); else 0, with *bad the length of its maximal ill-formed subpart (at least 1),
 * which a lossy decoder replaces by one U+FFFD. */
int bpt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);

/* Human readable bytes: "1.50 GiB" into buf. */
const char *bpt_fmt_bytes(double bytes, char *buf, size_t n);

/* fsync a file or a directory by path (a file system that cannot fsync a directory
 * is not an error). 0 or -1 with errno set. */
int bpt_fsync_path(const char *path, int is_dir);

/* The directory part of path into dir (len bytes): "a/b" -> "a", "/b" -> "/", "b" -> ".". */
void bpt_dirname(const char *path, char *dir, size_t len);

/* Create directory and parents (like mkdir -p). 0 or -1. */
int bpt_mkdirs(const char *path);

/* Bytes an unprivileged writer may still use on the file system holding path (or its
 * directory, when path does not exist yet); -1 when that cannot be told. */
int64_t bpt_fs_free_bytes(const char *path);

/* Reserve bytes of disk blocks for the file at path beyond what it holds, without
 * changing its size (Linux fallocate, FALLOC_FL_KEEP_SIZE): writes into it up to that
 * size then cannot meet a full disk half-way. 0; 1 when the file system cannot reserve
 * (nothing is written instead: no zero-filling); -1 with errno (ENOSPC). Release what
 * was not used with bpt_release_space once the file is complete. */
int bpt_reserve_space(const char *path, double bytes);
void bpt_release_space(const char *path);

/* Why a write to path failed, for the end of an error line: "No space left on device"
 * when errno says so or the file system is (all but) full, else errno's text, else
 * "an I/O error". Call it right after the failure, before anything frees space. */
const char *bpt_write_failure(const char *path);

#endif
