/* ckpt_util.c — what the bpt ckpt subcommands share (src/ckpt_tools.h): usage errors,
 * paths, shapes as text, the tensor table searched by name, and a file written through
 * NAME.tmp committed (fsync, rename, fsync of the directory) or removed.
 */
#include "ckpt_tools.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpt/util.h"

int ckpt_usage_error(const char *usage, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bpt_error(2, "%s (usage: %s)", msg, usage);
}

char *ckpt_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = bpt_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *ckpt_path_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = bpt_xmalloc(n);
    snprintf(p, n, "%s%s", path, suffix);
    return p;
}

int ckpt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void ckpt_fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

size_t ckpt_shape_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

int ckpt_find_tensor(const bpt_llama_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return i;
    return -1;
}

/* fsync tmp, rename it to path, fsync the directory. Errors name the files. */
static int commit_file(const char *tmp, const char *path) {
    if (bpt_fsync_path(tmp, 0) != 0) {
        bpt_error(-1, "%s: fsync failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        bpt_error(-1, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    size_t n = strlen(path) + 2;
    char *dir = bpt_xmalloc(n);
    bpt_dirname(path, dir, n);
    bpt_fsync_path(dir, 1);                        /* best effort: the file itself is durable */
    free(dir);
    return 0;
}

int ckpt_finish_file(char *tmp, const char *path, int ok) {
    int rc = ok ? commit_file(tmp, path) : (unlink(tmp), -1);
    free(tmp);
    return rc;
}
