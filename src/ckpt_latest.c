/* ckpt_latest.c — a run's checkpoint directory: the `latest` pointer and pruning
 * (include/bpt/ckpt.h). Plain files, no HDF5: the checkpoint tools use it too. */
#include "bpt/ckpt.h"
#include "bpt/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


int bpt_ckpt_set_latest(const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return bpt_err(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fprintf(f, "%s\n", name) > 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return bpt_err(err, errlen, "%s: cannot update: %s", path, strerror(errno));
    }
    bpt_fsync_path(dir, 1);
    return 0;
}

int bpt_ckpt_latest(const char *dir, char *path, size_t len, char *err, size_t errlen) {
    char lp[4096], name[1024] = "";
    snprintf(lp, sizeof lp, "%s/latest", dir);
    FILE *f = fopen(lp, "r");
    if (!f && errno == ENOENT) return 0;
    if (!f) return bpt_err(err, errlen, "%s: cannot read: %s", lp, strerror(errno));
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = 0;
    if (!ok || !name[0] || strchr(name, '/'))
        return bpt_err(err, errlen, "%s: expected one line naming a checkpoint file of %s, found '%s'", lp, dir,
                       name);
    snprintf(path, len, "%s/%s", dir, name);
    struct stat st;
    if (stat(path, &st) != 0)
        return bpt_err(err, errlen, "%s names %s, which %s (restore it, or point latest at a checkpoint "
                       "that exists)", lp, path, errno == ENOENT ? "does not exist" : strerror(errno));
    return 1;
}

void bpt_ckpt_prune(const char *dir, int keep, const char *protect) {
    if (keep <= 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    long long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.h%1[5]%c", &s, tail, tail + 1) == 2) steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++)   /* newest first */
        for (int j = i + 1; j < n; j++)
            if (steps[j] > steps[i]) { long long t = steps[i]; steps[i] = steps[j]; steps[j] = t; }
    for (int i = keep; i < n; i++) {
        char name[64], path[4200];
        snprintf(name, sizeof name, "step_%lld.h5", steps[i]);
        if (protect && !strcmp(name, protect)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        unlink(path);
    }
}

