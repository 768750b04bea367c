/* ckpt.c — checkpoints as HDF5 files (see include/bpt/ckpt.h, docs/checkpoint-format.md).
 *
 * Save writes PATH.tmp, fsyncs it, renames it to PATH and fsyncs the directory, so
 * PATH is always either the previous complete checkpoint or the new complete one.
 * Every tensor is a chunked fp32 dataset with the Fletcher-32 checksum filter, so a
 * corrupted byte is an error at load time, not silently wrong weights.
 *
 * Parallel: every rank of the mesh opens the file through MPI-IO and writes (or
 * reads) only its own shard, a hyperslab of each logical tensor; nothing is gathered.
 * Of the ranks holding the same shard (dp replicas, tp ranks of a replicated norm)
 * one writes; every rank reads. Writes are collective (filtered datasets need it).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"            /* the autoconf one at the top of the tree: PACKAGE_VERSION */
#endif

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <hdf5.h>
#include <mpi.h>

#include "bpt/ckpt.h"
#include "kernels/kernels.h"
#include "bpt/comm.h"
#include "bpt/util.h"
#include "bpt/h5util.h"
#include "bpt/testhooks.h"

#ifdef PACKAGE_VERSION
#define BPT_VERSION_STRING PACKAGE_VERSION
#else
#define BPT_VERSION_STRING "0.1.0"
#endif

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
        /* a checkpoint directory stands for the checkpoint its latest names */
        struct stat st;
        if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
            char why[1024];
            int found = bpt_ckpt_latest(file, path, pathlen, why, sizeof why);
            if (found == 0)
                return bpt_err(err, errlen, "bad value for load_checkpoint: '%s' (a directory without a "
                               "'latest' file naming its newest checkpoint)", spec);
            if (found < 0) return bpt_err(err, errlen, "load_checkpoint: %s", why);
        }
        return 0;
    }
    return bpt_err(err, errlen, "bad value for load_checkpoint: '%s' (expected params::FILE, "
                   "trainstate::FILE or trainstate_params::FILE)", spec);
}

/* ------------------------------------------------------------------------- */
/* MPI                                                                       */

typedef struct par { int up, rank, size; } par;

static par par_get(void) {
    par p = {0, 0, 1};
    int fin = 0;
    MPI_Initialized(&p.up);
    if (p.up) MPI_Finalized(&fin);
    if (p.up && !fin) {
        MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &p.size);
    } else {
        p.up = 0;
    }
    return p;
}

/* File access through MPI-IO on every rank of the world (or plain POSIX without MPI). */
static hid_t fapl_create(par p) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (p.up) H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    return fapl;
}

/* How a save or a load moves tensors: each rank its shard, through one host buffer as
 * large as its largest (and its bf16 twin). Writes are collective (HDF5 needs it for
 * filtered datasets); reads are independent, so a rank that meets a bad checksum
 * cannot leave the others waiting inside HDF5. */
typedef struct {
    float *host;
    uint16_t *h16;
    hid_t dxpl;
} xfer;

static xfer xfer_open(par p, const bpt_model *m, int collective) {
    size_t maxn = 1;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].numel > maxn) maxn = m->tensors[i].numel;
    xfer x = { bpt_xmalloc(maxn * sizeof *x.host), bpt_xmalloc(maxn * sizeof *x.h16),
               H5Pcreate(H5P_DATASET_XFER) };
    if (p.up) H5Pset_dxpl_mpio(x.dxpl, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
    return x;
}

static void xfer_close(xfer *x) {
    H5Pclose(x->dxpl);
    free(x->host);
    free(x->h16);
}

/* All ranks agree (bpt_agree): if any failed, every rank returns -1 with the message of
 * the lowest failing rank (a checksum error may be seen by one rank only). */
static int agree(par p, int rc, char *err, size_t errlen) {
    if (!p.up) return rc ? -1 : 0;
    return bpt_agree(rc ? 1 : 0, err, errlen) ? -1 : 0;
}

/* A save's writes are collective, but one may fail on some ranks only (those whose
 * data met the full disk): every rank learns whether any did, so all stop at the same
 * point instead of the others waiting in the next collective create. -1 or 0. */
static int all_ok(int rc) { return bpt_agree(rc ? 1 : 0, NULL, 0) ? -1 : 0; }

/* ------------------------------------------------------------------------- */
/* bf16                                                                      */

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                             /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------------- */
/* save                                                                      */

/* Chunks follow the shards: whole rows, at most one shard's rows, under 1 GiB. */
static void chunk_dims(const bpt_tensor *t, hsize_t chunk[2]) {
    hsize_t cols = t->ndim == 2 ? (hsize_t)t->local[1] : 1, rows = (hsize_t)t->rows;
    hsize_t cap = ((hsize_t)1 << 28) / cols;
    if (rows > cap) rows = cap;
    if (rows > (hsize_t)t->shape[0]) rows = (hsize_t)t->shape[0];
    if (rows < 1) rows = 1;
    chunk[0] = rows;
    chunk[1] = cols;
}

/* Create dataset t->name in g and write this rank's slab of it (collective). */
static int write_tensor(hid_t g, const bpt_model *m, int i, bpt_buf which, int bf16, const xfer *x) {
    float *host = x->host;
    uint16_t *h16 = x->h16;
    const bpt_tensor *t = &m->tensors[i];
    int nd = t->ndim;
    hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]}, chunk[2];
    hid_t fspace = H5Screate_simple(nd, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    chunk_dims(t, chunk);
    H5Pset_chunk(dcpl, nd, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t ds = H5Dcreate2(g, t->name, bf16 ? H5T_STD_U16LE : H5T_IEEE_F32LE, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds >= 0 ? 0 : -1;
    if (rc == 0 && bf16) rc = bpt_h5_attr_str(ds, "dtype", "bfloat16");

    int64_t start[2], count[2];
    bpt_model_shard_slab(m, i, start, count);
    int mine = bpt_model_shard_owner(m, i) && count[0] > 0;
    hsize_t hs[2] = {(hsize_t)start[0], (hsize_t)start[1]}, hc[2] = {(hsize_t)count[0], (hsize_t)count[1]};
    hsize_t one[2] = {1, 1};
    hid_t mspace = H5Screate_simple(nd, mine ? hc : one, NULL);
    size_t n = (size_t)count[0] * (size_t)count[1];
    if (mine) {
        m->k->copy_d2h(host, bpt_model_shard(m, which, i), n * sizeof(float));
        if (bf16) for (size_t e = 0; e < n; e++) h16[e] = f32_to_bf16(host[e]);
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, hs, NULL, hc, NULL);
    } else {
        H5Sselect_none(fspace);
        H5Sselect_none(mspace);
    }
    if (ds >= 0 && H5Dwrite(ds, bf16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, mspace, fspace, x->dxpl,
                            bf16 ? (void *)h16 : (void *)host) < 0)
        rc = -1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Sclose(mspace);
    H5Pclose(dcpl);
    H5Sclose(fspace);
    return rc;
}

static int write_group(hid_t file, const char *gname, const bpt_model *m, bpt_buf which, int bf16,
                       const xfer *x, const char **failed) {
    hid_t g = H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (all_ok(g < 0)) {
        if (g >= 0) H5Gclose(g);
        *failed = gname;
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < m->ntensors && rc == 0; i++) {
        rc = all_ok(write_tensor(g, m, i, which, bf16, x));
        if (rc) *failed = m->tensors[i].name;
    }
    if (H5Gclose(g) < 0) rc = -1;
    return rc;
}

/* A scalar dataset written by rank 0 (collective). */
static int write_scalar(hid_t file, const char *name, hid_t ftype, hid_t mtype, const void *v, par p, hid_t dxpl) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) { H5Sclose(space); return -1; }
    hid_t fs = H5Dget_space(ds), ms = H5Screate(H5S_SCALAR);
    if (p.rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
    int rc = H5Dwrite(ds, mtype, ms, fs, dxpl, v) >= 0 ? 0 : -1;
    H5Sclose(fs);
    H5Sclose(ms);
    if (H5Dclose(ds) < 0) rc = -1;
    H5Sclose(space);
    return rc;
}


/* The save-pause test hook (testhooks.h): a test kills the job inside this save. */
static void test_pause(int64_t step) {
    const bpt_test_hooks *h = bpt_test_hooks_get();
    if (h->save_pause_step == step) sleep((unsigned)h->save_pause_s);
}

int bpt_ckpt_save(const char *path, const bpt_model *m, const bpt_ckpt_meta *meta,
                  const char *config_yaml, int with_optimizer, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    par p = par_get();
    if (with_optimizer && (!m->buf[BPT_BUF_M] || !m->buf[BPT_BUF_V]))
        return bpt_err(err, errlen, "%s: cannot save the optimizer state: the model has none", path);
    size_t tmplen = strlen(path) + 5;
    char *tmp = bpt_xmalloc(tmplen);
    snprintf(tmp, tmplen, "%s.tmp", path);

    /* a generous bound on its size: the data, plus 4 KiB of object headers and chunk
     * index per dataset, plus 1 MiB (what is not used is given back at the close) */
    double need = (double)(1 << 20) + 2.0 * (config_yaml ? strlen(config_yaml) : 0);
    for (int i = 0; i < m->ntensors; i++)
        need += ((double)bpt_tensor_logical_numel(&m->tensors[i]) * (meta && meta->bf16 ? 2 : 4) + 4096) *
                (with_optimizer ? 3 : 1);
    hid_t file = bpt_h5_create_written(tmp, need, p.up, err, errlen);
    if (file < 0) {
        free(tmp);
        return -1;
    }
    int rc = 0;

    /* root attributes: identical on every rank (metadata writes are collective) */
    char created[32] = "", mesh[64];
    if (p.rank == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (p.up) MPI_Bcast(created, sizeof created, MPI_CHAR, 0, MPI_COMM_WORLD);
    int sp = m->comm->size[BPT_AXIS_SP];   /* the model's fsdp shards span fsdp x sp (mesh.h) */
    if (sp > 1) snprintf(mesh, sizeof mesh, "%d,%d,%d,%d", m->comm->size[BPT_AXIS_DP], m->fsdp / sp, m->tp, sp);
    else snprintf(mesh, sizeof mesh, "%d,%d,%d", m->comm->size[BPT_AXIS_DP], m->fsdp, m->tp);
    int bf16 = meta && meta->bf16;
    int version = BPT_CKPT_FORMAT_VERSION;
    int64_t step = meta ? meta->step : 0, seed = meta ? meta->seed : 0;
    uint64_t tokens = meta ? meta->tokens_consumed : 0;
    rc |= bpt_h5_attr_str(file, "format", BPT_CKPT_FORMAT);
    rc |= bpt_h5_attr_num(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version);
    rc |= bpt_h5_attr_num(file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step);
    rc |= bpt_h5_attr_num(file, "tokens_consumed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokens);
    rc |= bpt_h5_attr_str(file, "config", config_yaml ? config_yaml : "");
    rc |= bpt_h5_attr_str(file, "bpt_version", BPT_VERSION_STRING);
    rc |= bpt_h5_attr_str(file, "created", created);
    rc |= bpt_h5_attr_str(file, "mesh", mesh);
    rc |= bpt_h5_attr_str(file, "float_dtype", bf16 ? "bf16" : "fp32");
    rc = all_ok(rc);
    const char *failed = rc ? "the root attributes" : NULL;

    xfer x = xfer_open(p, m, 1);
    hid_t dxpl = x.dxpl;
    if (rc == 0) rc = write_group(file, "params", m, BPT_BUF_PARAM, bf16, &x, &failed);
    test_pause(step);
    if (rc == 0 && with_optimizer) {
        hid_t g = H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (all_ok(g < 0 || H5Gclose(g) < 0)) { rc = -1; failed = "/optimizer"; }
        if (rc == 0) rc = write_group(file, "optimizer/m", m, BPT_BUF_M, bf16, &x, &failed);
        if (rc == 0) rc = write_group(file, "optimizer/v", m, BPT_BUF_V, bf16, &x, &failed);
        if (rc == 0 && all_ok(write_scalar(file, "optimizer/step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step, p, dxpl))) {
            rc = -1;
            failed = "optimizer/step";
        }
    }
    if (rc == 0) {
        hid_t gd = H5Gcreate2(file, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t gr = H5Gcreate2(file, "rng", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int bad = gd < 0 || gr < 0;
        if (all_ok(bad) == 0)
            bad = write_scalar(file, "data/tokens_consumed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokens, p, dxpl) ||
                  write_scalar(file, "rng/seed", H5T_STD_I64LE, H5T_NATIVE_INT64, &seed, p, dxpl);
        if (all_ok(bad)) {
            rc = -1;
            failed = "/data and /rng";
        }
        if (gd >= 0) H5Gclose(gd);
        if (gr >= 0) H5Gclose(gr);
    }
    xfer_close(&x);
    char why[256];
    if (bpt_h5_close_written(file, tmp, p.up, rc == 0, why, sizeof why) != 0) {
        bpt_err(err, errlen, "%s: cannot write %s: %s", tmp, rc && failed ? failed : "the checkpoint", why);
        if (p.rank == 0) unlink(tmp);
        free(tmp);
        return -1;
    }

    /* every rank has closed: make the bytes durable, then make the name point at them */
    if (p.rank == 0) {
        char dir[4096];
        bpt_dirname(path, dir, sizeof dir);
        if (bpt_fsync_path(tmp, 0) != 0)
            rc = bpt_err(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            rc = bpt_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        else if (bpt_fsync_path(dir, 1) != 0)
            rc = bpt_err(err, errlen, "%s: fsync of the directory failed: %s", dir, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    return agree(p, rc, err, errlen);
}

int bpt_ckpt_read_meta(const char *path, bpt_ckpt_meta *meta, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) return bpt_err(err, errlen, "%s: no such file or not a bpt checkpoint", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return bpt_err(err, errlen, "%s: cannot open the HDF5 file", path);
    int rc = 0;
    if (bpt_h5_read_attr_num(file, "step", H5T_NATIVE_INT64, &meta->step) ||
        bpt_h5_read_attr_num(file, "tokens_consumed", H5T_NATIVE_UINT64, &meta->tokens_consumed))
        rc = bpt_err(err, errlen, "%s: missing attribute step or tokens_consumed", path);
    H5Fclose(file);
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
        /* fp32 (any float), or bf16 bit patterns: 16-bit integers marked dtype=bfloat16 */
        char tag[32] = "";
        int is_float = H5Tget_class(type) == H5T_FLOAT ||
                       (H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 2 &&
                        bpt_h5_read_attr_str(ds, "dtype", tag, sizeof tag) == 0 && !strcmp(tag, "bfloat16"));
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


/* Pass 2: read this rank's slab of every tensor of group g into buffer which. */
static int read_group(const char *path, hid_t g, const char *gname, bpt_model *m, bpt_buf which,
                      const xfer *x, char *err, size_t errlen) {
    float *host = x->host;
    uint16_t *h16 = x->h16;
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        int64_t start[2], count[2];
        bpt_model_shard_slab(m, i, start, count);
        hsize_t hs[2] = {(hsize_t)start[0], (hsize_t)start[1]}, hc[2] = {(hsize_t)count[0], (hsize_t)count[1]};
        hsize_t one[2] = {1, 1};
        hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
        int ok = ds >= 0;
        int bf16 = 0;
        if (ok) {
            hid_t type = H5Dget_type(ds);
            bf16 = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 2;
            H5Tclose(type);
            hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(t->ndim, count[0] ? hc : one, NULL);
            if (count[0]) H5Sselect_hyperslab(fs, H5S_SELECT_SET, hs, NULL, hc, NULL);
            else { H5Sselect_none(fs); H5Sselect_none(ms); }
            ok = H5Dread(ds, bf16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, ms, fs, x->dxpl,
                         bf16 ? (void *)h16 : (void *)host) >= 0;
            H5Sclose(fs);
            H5Sclose(ms);
            H5Dclose(ds);
        }
        size_t n = (size_t)count[0] * (size_t)count[1];
        if (ok && bf16) for (size_t e = 0; e < n; e++) host[e] = bf16_to_f32(h16[e]);
        if (ok) {   /* padding rows of the shard stay zero */
            memset(host + n, 0, (t->numel - n) * sizeof(float));
            m->k->copy_h2d(bpt_model_shard(m, which, i), host, t->numel * sizeof(float));
        }
        if (!ok)
            return bpt_err(err, errlen, "%s: cannot read tensor %s%s (the file is corrupted: "
                           "checksum mismatch or truncated data)", path, gname, t->name);
    }
    return 0;
}

/* Check group gname of the file against the model, then read it (collective). */
static int load_group(par p, const char *path, hid_t file, const char *gname, const char *prefix,
                      bpt_model *m, bpt_buf which, const xfer *x, char *err, size_t errlen) {
    hid_t g = H5Gopen2(file, gname, H5P_DEFAULT);
    if (g < 0) return agree(p, bpt_err(err, errlen, "%s: cannot open group /%s", path, gname), err, errlen);
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
    /* the checks see the same file on every rank; a read error may be one rank's */
    if (rc == 0) rc = read_group(path, g, prefix, m, which, x, err, errlen);
    rc = agree(p, rc, err, errlen);
    H5Gclose(g);
    return rc;
}

int bpt_ckpt_load(const char *path, bpt_load_kind kind, bpt_model *m, bpt_ckpt_meta *meta,
                  char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    par p = par_get();
    /* what is wrong with the file, said before the collective open: rank 0 opens it
     * alone (bpt_h5_open_read names a missing, empty, truncated or foreign file), every
     * other rank checks that it sees it too (a path that is not on a shared file system) */
    int rc = 0;
    struct stat st;
    if (p.rank == 0) {
        hid_t f = bpt_h5_open_read(path, err, errlen);
        if (f < 0) rc = -1;
        else H5Fclose(f);
    } else if (stat(path, &st) != 0) {
        rc = bpt_err(err, errlen, "%s: %s on rank %d (is it on a file system every node shares?)", path,
                     strerror(errno), p.rank);
    }
    if (agree(p, rc, err, errlen) != 0) return -1;
    hid_t fapl = fapl_create(p);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0) rc = bpt_err(err, errlen, "%s: cannot open the HDF5 file through MPI-IO", path);
    if (agree(p, rc, err, errlen) != 0) {
        if (file >= 0) H5Fclose(file);
        return -1;
    }

    char format[64] = "";
    int version = 0;
    if (bpt_h5_read_attr_str(file, "format", format, sizeof format) || strcmp(format, BPT_CKPT_FORMAT) != 0)
        rc = bpt_err(err, errlen, "%s: not a bpt checkpoint", path);
    else if (bpt_h5_read_attr_num(file, "format_version", H5T_NATIVE_INT, &version) || version < 1)
        rc = bpt_err(err, errlen, "%s: not a bpt checkpoint (no valid format_version)", path);
    else if (version > BPT_CKPT_FORMAT_VERSION)
        rc = bpt_err(err, errlen, "%s: checkpoint format_version %d is newer than this bpt "
                     "reads (%d)", path, version, BPT_CKPT_FORMAT_VERSION);
    else if (!link_exists(file, "params"))
        rc = bpt_err(err, errlen, "%s: missing group /params", path);

    int64_t step = 0;
    uint64_t tokens = 0;
    if (rc == 0 && (kind == BPT_LOAD_TRAINSTATE || (meta && meta->want_data))) {
        if (bpt_h5_read_attr_num(file, "step", H5T_NATIVE_INT64, &step) ||
            bpt_h5_read_attr_num(file, "tokens_consumed", H5T_NATIVE_UINT64, &tokens))
            rc = bpt_err(err, errlen, "%s: missing attribute step or tokens_consumed", path);
    }
    if (rc == 0 && kind == BPT_LOAD_TRAINSTATE) {
        if (!link_exists(file, "optimizer") || H5Lexists(file, "optimizer/m", H5P_DEFAULT) <= 0 ||
            H5Lexists(file, "optimizer/v", H5P_DEFAULT) <= 0)
            rc = bpt_err(err, errlen, "%s: has no optimizer state (saved without "
                         "checkpointer.save_optimizer_state)", path);
        else if (!m->buf[BPT_BUF_M] || !m->buf[BPT_BUF_V])
            rc = bpt_err(err, errlen, "%s: trainstate load into a model without optimizer "
                         "moments", path);
    }

    rc = agree(p, rc, err, errlen);   /* the metadata reads may fail on some ranks only */

    xfer x = xfer_open(p, m, 0);
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
        rc = agree(p, rc, err, errlen);
    }
    if (rc == 0) rc = load_group(p, path, file, "params", "", m, BPT_BUF_PARAM, &x, err, errlen);
    if (rc == 0 && kind == BPT_LOAD_TRAINSTATE) {
        rc = load_group(p, path, file, "optimizer/m", "optimizer/m/", m, BPT_BUF_M, &x, err, errlen);
        if (rc == 0)
            rc = load_group(p, path, file, "optimizer/v", "optimizer/v/", m, BPT_BUF_V, &x, err, errlen);
    }
    xfer_close(&x);
    H5Fclose(file);
    if (rc == 0 && meta) {
        meta->step = kind == BPT_LOAD_TRAINSTATE ? step : 0;
        meta->tokens_consumed = (kind == BPT_LOAD_TRAINSTATE || meta->want_data) ? tokens : 0;
    }
    return rc;
}
