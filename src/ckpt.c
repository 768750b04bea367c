/* ckpt.c — checkpoints as HDF5 files (see include/bpt/ckpt.h, docs/checkpoint-format.md).
 *
 * Save writes PATH.tmp, fsyncs it, renames it to PATH and fsyncs the directory, so
 * PATH is always either the previous complete checkpoint or the new complete one.
 * Every tensor is a chunked fp32 dataset with the Fletcher-32 checksum filter, so a
 * corrupted byte is an error at load time, not silently wrong weights.
 *
 * This is the single-rank version: serial HDF5 (default file access), the whole
 * tensor through one host buffer.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"            /* the autoconf one at the top of the tree: PACKAGE_VERSION */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

#include "bpt/ckpt.h"
#include "bpt/util.h"

#ifdef PACKAGE_VERSION
#define BPT_VERSION_STRING PACKAGE_VERSION
#else
#define BPT_VERSION_STRING "0.1.0"
#endif

#define CKPT_FORMAT "bpt-checkpoint"
#define CKPT_FORMAT_VERSION 1
#define CHUNK_ELEMS ((hsize_t)1 << 20)   /* about 4 MiB of fp32 per chunk */

/* ------------------------------------------------------------------------- */

int bpt_ckpt_parse_spec(const char *spec, bpt_load_kind *kind, char *path, size_t pathlen,
                        char *err, size_t errlen) {
    static const struct { const char *prefix; bpt_load_kind kind; } kinds[] = {
        { "params::", BPT_LOAD_PARAMS },
        { "trainstate::", BPT_LOAD_TRAINSTATE },
        { "trainstate_params::", BPT_LOAD_TRAINSTATE_PARAMS },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t k = strlen(kinds[i].prefix);
        if (strncmp(spec, kinds[i].prefix, k) != 0) continue;
        const char *file = spec + k;
        if (*file == '\0') break;
        if (strlen(file) >= pathlen)
            return bpt_err(err, errlen, "bad value for load_checkpoint: '%s' (path too long)", spec);
        strcpy(path, file);
        *kind = kinds[i].kind;
        return 0;
    }
    return bpt_err(err, errlen, "bad value for load_checkpoint: '%s' (expected params::FILE, "
                   "trainstate::FILE or trainstate_params::FILE)", spec);
}

/* ------------------------------------------------------------------------- */
/* attributes                                                                */

static int attr_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, type, &value) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

static int attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, mtype, v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

/* Read a scalar string attribute (variable- or fixed-length) into buf. 0 or -1. */
static int read_attr_str(hid_t obj, const char *name, char *buf, size_t len) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ftype = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ftype) == H5T_STRING) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mtype, H5Tget_cset(ftype));   /* no ASCII <-> UTF-8 conversion */
        if (H5Tis_variable_str(ftype) > 0) {
            char *s = NULL;
            H5Tset_size(mtype, H5T_VARIABLE);
            if (H5Aread(a, mtype, &s) >= 0 && s) {
                snprintf(buf, len, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
        } else {
            size_t n = H5Tget_size(ftype);
            char *s = bpt_xcalloc(n + 1, 1);
            H5Tset_size(mtype, n + 1);
            H5Tset_strpad(mtype, H5T_STR_NULLTERM);
            if (H5Aread(a, mtype, s) >= 0) {
                snprintf(buf, len, "%s", s);
                rc = 0;
            }
            free(s);
        }
        H5Tclose(mtype);
    }
    H5Tclose(ftype);
    H5Aclose(a);
    return rc;
}

static int read_attr_num(hid_t obj, const char *name, hid_t mtype, void *v) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, mtype, v) >= 0 ? 0 : -1;
    H5Aclose(a);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* save                                                                      */

/* One fp32 dataset for tensor t in group g, with data from host. */
static int write_tensor(hid_t g, const bpt_tensor *t, const float *host) {
    hsize_t dims[2] = { (hsize_t)t->shape[0], t->ndim == 2 ? (hsize_t)t->shape[1] : 1 };
    hid_t space = H5Screate_simple(t->ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (t->numel > 0) {
        /* chunks of about CHUNK_ELEMS elements: whole rows of a matrix */
        hsize_t chunk[2];
        if (t->ndim == 1) {
            chunk[0] = dims[0] < CHUNK_ELEMS ? dims[0] : CHUNK_ELEMS;
        } else {
            hsize_t rows = CHUNK_ELEMS / dims[1];
            if (rows < 1) rows = 1;
            chunk[0] = rows < dims[0] ? rows : dims[0];
            chunk[1] = dims[1];
        }
        H5Pset_chunk(dcpl, t->ndim, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t ds = H5Dcreate2(g, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host) >= 0
             ? 0 : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

/* Every tensor of buffer which into group gname. bpt_model_get is collective over the
 * mesh, so it runs for every tensor whatever happens to the file (file < 0: another
 * rank writes, or an earlier step failed; then nothing is written). */
static int write_group(hid_t file, const char *gname, const bpt_model *m, bpt_buf which,
                       float *host, const char **failed) {
    hid_t g = file >= 0 ? H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = 0;
    if (file >= 0 && g < 0) { *failed = gname; rc = -1; }
    for (int i = 0; i < m->ntensors; i++) {
        bpt_model_get(m, which, i, host);
        if (rc == 0 && g >= 0 && write_tensor(g, &m->tensors[i], host)) {
            *failed = m->tensors[i].name;
            rc = -1;
        }
    }
    if (g >= 0 && H5Gclose(g) < 0) rc = -1;
    return rc;
}

/* The tensor sequence of a save, on a rank that does not write (see write_group). */
static void save_follow(const bpt_model *m, int with_optimizer) {
    size_t maxn = 1;
    for (int i = 0; i < m->ntensors; i++)
        if (bpt_tensor_logical_numel(&m->tensors[i]) > maxn) maxn = bpt_tensor_logical_numel(&m->tensors[i]);
    float *host = bpt_xmalloc(maxn * sizeof *host);
    const char *failed = NULL;
    write_group(-1, "params", m, BPT_BUF_PARAM, host, &failed);
    if (with_optimizer) {
        write_group(-1, "optimizer/m", m, BPT_BUF_M, host, &failed);
        write_group(-1, "optimizer/v", m, BPT_BUF_V, host, &failed);
    }
    free(host);
}

/* fsync a file or directory by path. 0 or -1 (errno set). */
static int fsync_path(const char *path, int is_dir) {
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    /* some filesystems cannot fsync a directory; that is not a failure of ours */
    if (rc != 0 && is_dir && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
    close(fd);
    return rc;
}

static int save_file(const char *path, const bpt_model *m, const bpt_ckpt_meta *meta,
                     const char *config_yaml, int with_optimizer, char *err, size_t errlen) {
    if (with_optimizer && (!m->buf[BPT_BUF_M] || !m->buf[BPT_BUF_V]))
        return bpt_err(err, errlen, "%s: cannot save the optimizer state: the model has none",
                       path);
    size_t tmplen = strlen(path) + 5;
    char *tmp = bpt_xmalloc(tmplen);
    snprintf(tmp, tmplen, "%s.tmp", path);

    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        bpt_err(err, errlen, "%s: cannot create the checkpoint file (does the directory exist "
                "and is it writable?)", tmp);
        save_follow(m, with_optimizer);
        free(tmp);
        return -1;
    }

    /* root attributes */
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int version = CKPT_FORMAT_VERSION;
    int64_t step = meta ? meta->step : 0;
    uint64_t tokens = meta ? meta->tokens_consumed : 0;
    int rc = 0;
    rc |= attr_str(file, "format", CKPT_FORMAT);
    rc |= attr_num(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version);
    rc |= attr_num(file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step);
    rc |= attr_num(file, "tokens_consumed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokens);
    rc |= attr_str(file, "config", config_yaml ? config_yaml : "");
    rc |= attr_str(file, "bpt_version", BPT_VERSION_STRING);
    rc |= attr_str(file, "created", created);
    const char *failed = rc ? "root attributes" : NULL;

    /* tensors, through one host buffer as large as the largest tensor */
    size_t maxn = 1;
    for (int i = 0; i < m->ntensors; i++)
        if (bpt_tensor_logical_numel(&m->tensors[i]) > maxn) maxn = bpt_tensor_logical_numel(&m->tensors[i]);
    float *host = bpt_xmalloc(maxn * sizeof *host);
    rc |= write_group(rc ? -1 : file, "params", m, BPT_BUF_PARAM, host, &failed);
    if (with_optimizer) {
        if (rc == 0) {
            hid_t g = H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0 || H5Gclose(g) < 0) { rc = -1; failed = "optimizer"; }
        }
        rc |= write_group(rc ? -1 : file, "optimizer/m", m, BPT_BUF_M, host, &failed);
        rc |= write_group(rc ? -1 : file, "optimizer/v", m, BPT_BUF_V, host, &failed);
    }
    free(host);
    if (H5Fclose(file) < 0 && rc == 0) { rc = -1; failed = "closing the file"; }

    if (rc) {
        bpt_err(err, errlen, "%s: cannot write %s (disk full?)", tmp, failed ? failed : "checkpoint");
        unlink(tmp);
        free(tmp);
        return -1;
    }

    /* make the bytes durable, then make the name point at them */
    if (fsync_path(tmp, 0) != 0) {
        bpt_err(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        bpt_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);

    char *dir = bpt_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    rc = fsync_path(dir, 1);
    if (rc != 0) bpt_err(err, errlen, "%s: fsync of the directory failed: %s", dir, strerror(errno));
    free(dir);
    return rc;
}

/* Collective over the mesh: every rank gathers each logical tensor, rank 0 writes. */
int bpt_ckpt_save(const char *path, const bpt_model *m, const bpt_ckpt_meta *meta,
                  const char *config_yaml, int with_optimizer, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (with_optimizer && (!m->buf[BPT_BUF_M] || !m->buf[BPT_BUF_V]))
        return bpt_err(err, errlen, "%s: cannot save the optimizer state: the model has none",
                       path);
    int up = 0, rank = 0, size = 1;
    MPI_Initialized(&up);
    if (up) { MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size); }
    int rc = 0;
    if (rank == 0) rc = save_file(path, m, meta, config_yaml, with_optimizer, err, errlen);
    else save_follow(m, with_optimizer);
    if (size > 1) {
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (rc && rank != 0) bpt_err(err, errlen, "%s: rank 0 could not write the checkpoint", path);
    }
    return rc;
}

/* ------------------------------------------------------------------------- */
/* load                                                                      */

static void fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    if (ndim == 1) snprintf(buf, len, "[%lld]", (long long)shape[0]);
    else if (ndim == 2) snprintf(buf, len, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
    else snprintf(buf, len, "(rank %d)", ndim);
}

static int link_exists(hid_t loc, const char *name) {
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

/* Pass 1: every model tensor is in group g with the right shape and a float type. */
static int check_group(const char *path, hid_t g, const char *gname, const bpt_model *m,
                       char *err, size_t errlen) {
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        if (!link_exists(g, t->name))
            return bpt_err(err, errlen, "%s: missing tensor %s%s", path, gname, t->name);
        hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
        if (ds < 0) return bpt_err(err, errlen, "%s: %s%s is not a dataset", path, gname, t->name);
        hid_t space = H5Dget_space(ds);
        hid_t type = H5Dget_type(ds);
        int ndim = H5Sget_simple_extent_ndims(space);
        hsize_t dims[H5S_MAX_RANK];
        int64_t shape[2] = { 0, 0 };
        if (ndim >= 1 && ndim <= 2) {
            H5Sget_simple_extent_dims(space, dims, NULL);
            for (int d = 0; d < ndim; d++) shape[d] = (int64_t)dims[d];
        }
        int is_float = H5Tget_class(type) == H5T_FLOAT;
        H5Tclose(type);
        H5Sclose(space);
        H5Dclose(ds);
        int same = ndim == t->ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
        if (!same) {
            char have[64], want[64];
            fmt_shape(have, sizeof have, ndim, shape);
            fmt_shape(want, sizeof want, t->ndim, t->shape);
            return bpt_err(err, errlen, "%s: tensor %s%s has shape %s, model expects %s", path,
                           gname, t->name, have, want);
        }
        if (!is_float)
            return bpt_err(err, errlen, "%s: tensor %s%s is not floating point", path, gname,
                           t->name);
    }
    return 0;
}

/* H5Literate callback: the first name in the group that the model does not have. */
typedef struct { const bpt_model *m; char extra[128]; } extra_ctx;

static herr_t find_extra(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    extra_ctx *c = data;
    if (bpt_model_find(c->m, name) < 0) {
        snprintf(c->extra, sizeof c->extra, "%s", name);
        return 1;                              /* stop */
    }
    return 0;
}

/* Pass 2: read group g into buffer which. */
static int read_group(const char *path, hid_t g, const char *gname, bpt_model *m, bpt_buf which,
                      float *host, char *err, size_t errlen) {
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
        int ok = ds >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (!ok)
            return bpt_err(err, errlen, "%s: cannot read tensor %s%s (the file is corrupted: "
                           "checksum mismatch or truncated data)", path, gname, t->name);
        bpt_model_set(m, which, i, host);
    }
    return 0;
}

/* Check group gname of the file against the model, then read it. */
static int load_group(const char *path, hid_t file, const char *gname, const char *prefix,
                      bpt_model *m, bpt_buf which, float *host, char *err, size_t errlen) {
    hid_t g = H5Gopen2(file, gname, H5P_DEFAULT);
    if (g < 0) return bpt_err(err, errlen, "%s: cannot open group /%s", path, gname);
    int rc = check_group(path, g, prefix, m, err, errlen);
    if (rc == 0) {
        extra_ctx c = { m, "" };
        hsize_t idx = 0;
        H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, find_extra, &c);
        if (c.extra[0])
            rc = bpt_err(err, errlen, "%s: tensor %s%s is not in the model (HINT: the "
                         "checkpoint's llama config differs: layers, tie_word_embeddings?)",
                         path, prefix, c.extra);
    }
    if (rc == 0) rc = read_group(path, g, prefix, m, which, host, err, errlen);
    H5Gclose(g);
    return rc;
}

int bpt_ckpt_load(const char *path, bpt_load_kind kind, bpt_model *m, bpt_ckpt_meta *meta,
                  char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return bpt_err(err, errlen, "%s: no such file", path);
        return bpt_err(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (H5Fis_hdf5(path) <= 0) return bpt_err(err, errlen, "%s: not a bpt checkpoint (not an "
                                              "HDF5 file)", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return bpt_err(err, errlen, "%s: cannot open the HDF5 file: truncated or corrupted? (HINT: on a file "
                       "system without locking set HDF5_USE_FILE_LOCKING=FALSE)", path);

    int rc = 0;
    char format[64] = "";
    int version = 0;
    if (read_attr_str(file, "format", format, sizeof format) || strcmp(format, CKPT_FORMAT) != 0)
        rc = bpt_err(err, errlen, "%s: not a bpt checkpoint", path);
    else if (read_attr_num(file, "format_version", H5T_NATIVE_INT, &version) || version < 1)
        rc = bpt_err(err, errlen, "%s: not a bpt checkpoint (no valid format_version)", path);
    else if (version > CKPT_FORMAT_VERSION)
        rc = bpt_err(err, errlen, "%s: checkpoint format_version %d is newer than this bpt "
                     "reads (%d)", path, version, CKPT_FORMAT_VERSION);
    else if (!link_exists(file, "params"))
        rc = bpt_err(err, errlen, "%s: missing group /params", path);

    int64_t step = 0;
    uint64_t tokens = 0;
    if (rc == 0 && kind == BPT_LOAD_TRAINSTATE) {
        if (!link_exists(file, "optimizer") || H5Lexists(file, "optimizer/m", H5P_DEFAULT) <= 0 ||
            H5Lexists(file, "optimizer/v", H5P_DEFAULT) <= 0)
            rc = bpt_err(err, errlen, "%s: has no optimizer state (saved without "
                         "checkpointer.save_optimizer_state)", path);
        else if (!m->buf[BPT_BUF_M] || !m->buf[BPT_BUF_V])
            rc = bpt_err(err, errlen, "%s: trainstate load into a model without optimizer "
                         "moments", path);
        else if (read_attr_num(file, "step", H5T_NATIVE_INT64, &step) ||
                 read_attr_num(file, "tokens_consumed", H5T_NATIVE_UINT64, &tokens))
            rc = bpt_err(err, errlen, "%s: missing attribute step or tokens_consumed", path);
    }

    size_t maxn = 1;
    for (int i = 0; i < m->ntensors; i++)
        if (bpt_tensor_logical_numel(&m->tensors[i]) > maxn) maxn = bpt_tensor_logical_numel(&m->tensors[i]);
    float *host = bpt_xmalloc(maxn * sizeof *host);
    if (rc == 0 && kind == BPT_LOAD_TRAINSTATE) {
        /* check everything before changing anything */
        hid_t gm = H5Gopen2(file, "optimizer/m", H5P_DEFAULT);
        hid_t gv = H5Gopen2(file, "optimizer/v", H5P_DEFAULT);
        hid_t gp = H5Gopen2(file, "params", H5P_DEFAULT);
        rc = check_group(path, gp, "", m, err, errlen);
        if (rc == 0) rc = check_group(path, gm, "optimizer/m/", m, err, errlen);
        if (rc == 0) rc = check_group(path, gv, "optimizer/v/", m, err, errlen);
        H5Gclose(gp);
        H5Gclose(gm);
        H5Gclose(gv);
    }
    if (rc == 0) rc = load_group(path, file, "params", "", m, BPT_BUF_PARAM, host, err, errlen);
    if (rc == 0 && kind == BPT_LOAD_TRAINSTATE) {
        rc = load_group(path, file, "optimizer/m", "optimizer/m/", m, BPT_BUF_M, host, err, errlen);
        if (rc == 0)
            rc = load_group(path, file, "optimizer/v", "optimizer/v/", m, BPT_BUF_V, host, err,
                            errlen);
    }
    free(host);
    H5Fclose(file);
    if (rc == 0 && meta) {
        meta->step = kind == BPT_LOAD_TRAINSTATE ? step : 0;
        meta->tokens_consumed = kind == BPT_LOAD_TRAINSTATE ? tokens : 0;
    }
    return rc;
}
