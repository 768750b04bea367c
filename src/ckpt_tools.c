/* ckpt_tools.c — bpt ckpt inspect | export | import (docs/checkpoint-tools.md).
 *
 *   inspect FILE [--json]                          what a checkpoint holds, with norms
 *   export FILE --format safetensors --output DIR  DIR/model.safetensors + DIR/config.json
 *   import DIR --output FILE                       a Hugging Face LlamaForCausalLM -> FILE
 *
 * The tools run on one rank with serial HDF5 calls and read or write the checkpoint
 * format of docs/checkpoint-format.md directly; they use nothing of src/ckpt.c. Every
 * error is one line "bpt: <file>: <what>" on stderr and exit status 1; a usage error
 * exits with 2. A function that finds an error prints it (bpt_error, util.h) and returns -1;
 * its callers only pass the -1 on, so exactly one line is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <jansson.h>

#include "bpt/ckpt.h"
#include "bpt/h5util.h"
#include "bpt/config.h"
#include "bpt/llama.h"
#include "bpt/util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define CHUNK_ELEMS ((hsize_t)1 << 20)          /* about 4 MiB of fp32 per chunk */
#define MAX_DIMS 8
#define MAX_HEADER ((uint64_t)100 << 20)        /* safetensors header limit, bytes */

#define USAGE_INSPECT "bpt ckpt inspect FILE|CKPT_DIR [--json]"
#define USAGE_EXPORT "bpt ckpt export FILE|CKPT_DIR --format safetensors --output DIR"
#define USAGE_IMPORT "bpt ckpt import DIR --output FILE"
#define USAGE_ALL USAGE_INSPECT " | " USAGE_EXPORT " | " USAGE_IMPORT

/* ------------------------------------------------------------------------- */
/* errors                                                                    */

/* A usage error: the message, the usage line, exit status 2. */
static int usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *usage, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bpt_error(2, "%s (usage: %s)", msg, usage);
}

/* ------------------------------------------------------------------------- */
/* small helpers                                                             */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = bpt_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *path_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = bpt_xmalloc(n);
    snprintf(p, n, "%s%s", path, suffix);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

static size_t shape_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

/* The fewest significant digits that read back as the same double. */
static int shortest_digits(double x) {
    char buf[64];
    for (int prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return prec;
    }
    return 17;
}

/* x in its shortest round-trip form: 1e-06, not 9.9999999999999995e-07. */
static void fmt_double(char *buf, size_t len, double x) {
    snprintf(buf, len, "%.*g", shortest_digits(x), x);
}

/* Compare names with digit runs as numbers: layers.2 before layers.10. */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y) return x < y ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static int natural_cmp_ptr(const void *a, const void *b) {
    return natural_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* bfloat16 bits -> float: the bits are the upper half of the fp32. */
static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE half -> float, subnormals, infinities and NaNs included. */
static float f16_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else {                                   /* subnormal: normalise */
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
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
    char *dir = bpt_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    bpt_fsync_path(dir, 1);                        /* best effort: the file itself is durable */
    free(dir);
    return 0;
}

/* The end of every write through tmp: when ok, commit it to path, else remove it (the
 * caller said why). Frees tmp. 0 or -1. */
static int finish_file(char *tmp, const char *path, int ok) {
    int rc = ok ? commit_file(tmp, path) : (unlink(tmp), -1);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* the tensors of a LlamaForCausalLM: include/bpt/llama.h                    */

static int find_spec(const bpt_llama_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return i;
    return -1;
}

/* ------------------------------------------------------------------------- */
/* HDF5: attributes                                                          */

/* A scalar string attribute (variable or fixed length), malloc'd; NULL if absent. */
static char *attr_string(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    hid_t ftype = H5Aget_type(a);
    char *out = NULL;
    if (H5Tget_class(ftype) == H5T_STRING) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        if (H5Tis_variable_str(ftype) > 0) {
            char *s = NULL;
            H5Tset_size(mtype, H5T_VARIABLE);
            if (H5Aread(a, mtype, &s) >= 0 && s) {
                out = bpt_xstrdup(s);
                H5free_memory(s);
            }
        } else {
            size_t n = H5Tget_size(ftype);
            char *s = bpt_xcalloc(n + 1, 1);
            H5Tset_size(mtype, n + 1);
            H5Tset_strpad(mtype, H5T_STR_NULLTERM);
            if (H5Aread(a, mtype, s) >= 0) out = s;
            else free(s);
        }
        H5Tclose(mtype);
    }
    H5Tclose(ftype);
    H5Aclose(a);
    return out;
}

/* ------------------------------------------------------------------------- */
/* HDF5: reading a checkpoint                                                */

typedef struct ckpt_file {
    const char *path;              /* the file (a directory given resolves through its latest) */
    char resolved[4096];
    hid_t file;
    int version;
    int64_t step;
    uint64_t tokens;
    char *config, *bpt_version, *created, *mesh, *float_dtype;   /* NULL when absent */
} ckpt_file;

static void ckpt_close(ckpt_file *c) {
    if (c->file >= 0) H5Fclose(c->file);
    free(c->config);
    free(c->bpt_version);
    free(c->created);
    free(c->mesh);
    free(c->float_dtype);
    c->file = -1;
}

/* Open path (a checkpoint directory: the checkpoint its latest names, as for bpt
 * eval) and read the root attributes; checks the format and its version. */
static int ckpt_open(const char *path, ckpt_file *c) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->file = -1;
    char err[1024];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        int found = bpt_ckpt_latest(path, c->resolved, sizeof c->resolved, err, sizeof err);
        if (found == 0)
            return bpt_error(-1, "%s: is a directory without a 'latest' file naming a checkpoint (expected a "
                              "checkpoint FILE or a checkpoint directory)", path);
        if (found < 0) return bpt_error(-1, "%s", err);
        c->path = path = c->resolved;
    }
    c->file = bpt_h5_open_read(path, err, sizeof err);
    if (c->file < 0) return bpt_error(-1, "%s", err);
    char *format = attr_string(c->file, "format");
    int is_bpt = format && !strcmp(format, BPT_CKPT_FORMAT);
    free(format);
    if (!is_bpt) {
        ckpt_close(c);
        return bpt_error(-1, "%s: not a bpt checkpoint (no format attribute equal to '%s')", path, BPT_CKPT_FORMAT);
    }
    if (bpt_h5_read_attr_num(c->file, "format_version", H5T_NATIVE_INT, &c->version) != 0) {
        ckpt_close(c);
        return bpt_error(-1, "%s: not a bpt checkpoint (no format_version attribute)", path);
    }
    if (c->version > BPT_CKPT_FORMAT_VERSION || c->version < 1) {
        int v = c->version;
        ckpt_close(c);
        return bpt_error(-1, "%s: format_version %d is not one this bpt reads (1 ... %d; a newer bpt wrote it?)",
                          path, v, BPT_CKPT_FORMAT_VERSION);
    }
    bpt_h5_read_attr_num(c->file, "step", H5T_NATIVE_INT64, &c->step);
    bpt_h5_read_attr_num(c->file, "tokens_consumed", H5T_NATIVE_UINT64, &c->tokens);
    c->config = attr_string(c->file, "config");
    c->bpt_version = attr_string(c->file, "bpt_version");
    c->created = attr_string(c->file, "created");
    c->mesh = attr_string(c->file, "mesh");
    c->float_dtype = attr_string(c->file, "float_dtype");
    return 0;
}

static const char *ckpt_float_dtype(const ckpt_file *c) {
    return c->float_dtype ? c->float_dtype : "fp32";
}

/* What one dataset holds and how to read it as fp32. */
typedef struct dset_info {
    int ndim;
    int64_t shape[MAX_DIMS];
    size_t numel;
    int bf16;              /* uint16 bfloat16 bit patterns */
    const char *dtype;     /* "float32", "bfloat16", "float64", "float16" */
} dset_info;

static int link_exists(hid_t loc, const char *name) {
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

/* Shape and storage type of dataset gname/name. */
static int dset_probe(const ckpt_file *c, hid_t ds, const char *gname, const char *name, dset_info *di) {
    memset(di, 0, sizeof *di);
    hid_t space = H5Dget_space(ds);
    hid_t type = H5Dget_type(ds);
    int ndim = H5Sget_simple_extent_ndims(space);
    int rc = 0;
    if (ndim < 0 || ndim > MAX_DIMS) {
        rc = bpt_error(-1, "%s: %s/%s has an unsupported rank %d", c->path, gname, name, ndim);
    } else {
        hsize_t dims[MAX_DIMS];
        H5Sget_simple_extent_dims(space, dims, NULL);
        di->ndim = ndim;
        for (int d = 0; d < ndim; d++) di->shape[d] = (int64_t)dims[d];
        di->numel = shape_numel(ndim, di->shape);
        H5T_class_t cls = H5Tget_class(type);
        size_t size = H5Tget_size(type);
        char *tag = attr_string(ds, "dtype");
        int is_bf16_tag = tag && !strcmp(tag, "bfloat16");
        free(tag);
        if (cls == H5T_INTEGER && size == 2 &&
            (is_bf16_tag || !strcmp(ckpt_float_dtype(c), "bf16"))) {
            di->bf16 = 1;
            di->dtype = "bfloat16";
        } else if (cls == H5T_FLOAT) {
            di->dtype = size == 4 ? "float32" : size == 8 ? "float64" : size == 2 ? "float16" : "float";
        } else {
            rc = bpt_error(-1, "%s: %s/%s is not a floating-point tensor (nor bfloat16 bits)", c->path,
                            gname, name);
        }
    }
    H5Tclose(type);
    H5Sclose(space);
    return rc;
}

/* Read the whole dataset as fp32 into out (di->numel floats). */
static int dset_read(const ckpt_file *c, hid_t ds, const char *gname, const char *name,
                     const dset_info *di, float *out) {
    herr_t st;
    if (di->bf16) {
        uint16_t *bits = bpt_xmalloc((di->numel ? di->numel : 1) * sizeof *bits);
        st = H5Dread(ds, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits);
        for (size_t i = 0; st >= 0 && i < di->numel; i++) out[i] = bf16_to_float(bits[i]);
        free(bits);
    } else {
        st = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    }
    if (st < 0)
        return bpt_error(-1, "%s: cannot read tensor %s/%s (the file is corrupted: checksum mismatch or "
                          "truncated data)", c->path, gname, name);
    return 0;
}

/* Names of the datasets in group gname, in natural order. Returns the count (0 if the
 * group is absent), or -1. *names is malloc'd (free each and the array). */
static int group_names(const ckpt_file *c, const char *gname, char ***names) {
    *names = NULL;
    if (!link_exists(c->file, gname)) return 0;
    hid_t g = H5Gopen2(c->file, gname, H5P_DEFAULT);
    if (g < 0) return bpt_error(-1, "%s: /%s is not a group", c->path, gname);
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0) {
        H5Gclose(g);
        return bpt_error(-1, "%s: cannot list /%s", c->path, gname);
    }
    char **list = bpt_xcalloc(info.nlinks + 1, sizeof *list);
    int n = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (len < 0) continue;
        char *s = bpt_xmalloc((size_t)len + 1);
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, s, (size_t)len + 1, H5P_DEFAULT);
        H5O_info_t oi;
        if (H5Oget_info_by_name(g, s, &oi, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_DATASET) list[n++] = s;
        else free(s);
    }
    H5Gclose(g);
    qsort(list, (size_t)n, sizeof *list, natural_cmp_ptr);
    *names = list;
    return n;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The llama config of a checkpoint from its config attribute. If the whole config
 * does not validate here (a newer bpt wrote it?), the llama section alone is tried. */
static int ckpt_llama_config(const ckpt_file *c, bpt_llama_config *out) {
    if (!c->config || !c->config[0])
        return bpt_error(-1, "%s: has no config attribute (the model dimensions are unknown)", c->path);
    bpt_config *cfg = bpt_xcalloc(1, sizeof *cfg);
    char err[1024];
    int rc = bpt_config_from_yaml_string(cfg, c->config, err, sizeof err);
    if (rc != 0) {
        /* the "llama:" block: that line and the indented lines after it */
        size_t len = strlen(c->config);
        char *y = bpt_xcalloc(len + 128, 1);
        const char *p = c->config;
        int in = 0;
        while (*p) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
            if (!strncmp(p, "llama:", 6)) in = 1;
            else if (n > 0 && p[0] != ' ' && p[0] != '#' && p[0] != '\n') in = 0;
            if (in) strncat(y, p, n);
            p += n;
        }
        strcat(y, "\ntrain_dataset:\n  hdf5_dataset:\n    seq_length: 1\n");
        char err2[1024];
        rc = bpt_config_from_yaml_string(cfg, y, err2, sizeof err2);
        free(y);
    }
    if (rc != 0) {
        free(cfg);
        return bpt_error(-1, "%s: bad config attribute: %s", c->path, err);
    }
    *out = cfg->llama;
    free(cfg);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* inspect                                                                   */

typedef struct tensor_row {
    const char *group;
    char *name;
    dset_info info;
    double norm;
} tensor_row;

/* Every dataset of group gname appended to rows (norm computed in double). */
static int inspect_group(const ckpt_file *c, const char *gname, tensor_row **rows, int *nrows, int *cap) {
    char **names;
    int n = group_names(c, gname, &names);
    if (n < 0) return -1;
    hid_t g = n > 0 ? H5Gopen2(c->file, gname, H5P_DEFAULT) : -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        hid_t ds = H5Dopen2(g, names[i], H5P_DEFAULT);
        if (ds < 0) { rc = bpt_error(-1, "%s: cannot open %s/%s", c->path, gname, names[i]); break; }
        tensor_row r = { gname, names[i], { 0 }, 0 };
        rc = dset_probe(c, ds, gname, names[i], &r.info);
        if (rc == 0 && r.info.ndim == 0) {         /* a scalar (a counter): not a tensor */
            H5Dclose(ds);
            continue;
        }
        float *x = rc == 0 ? bpt_xmalloc((r.info.numel ? r.info.numel : 1) * sizeof *x) : NULL;
        if (rc == 0) rc = dset_read(c, ds, gname, names[i], &r.info, x);
        if (rc == 0) {
            double s = 0;
            for (size_t k = 0; k < r.info.numel; k++) s += (double)x[k] * (double)x[k];
            r.norm = sqrt(s);
            if (*nrows == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *rows = realloc(*rows, (size_t)*cap * sizeof **rows);
                BPT_CHECK(*rows, "out of memory");
            }
            (*rows)[(*nrows)++] = r;
            names[i] = NULL;                       /* owned by the row now */
        }
        free(x);
        H5Dclose(ds);
    }
    if (g >= 0) H5Gclose(g);
    free_names(names, n);
    return rc;
}

static void print_inspect_text(const ckpt_file *c, const tensor_row *rows, int nrows, uint64_t nparams,
                               int has_opt, int64_t opt_step) {
    printf("%s\n", c->path);
    printf("  format           %s, version %d\n", BPT_CKPT_FORMAT, c->version);
    printf("  bpt_version      %s\n", c->bpt_version ? c->bpt_version : "(not recorded)");
    printf("  created          %s\n", c->created ? c->created : "(not recorded)");
    printf("  step             %lld\n", (long long)c->step);
    printf("  tokens_consumed  %llu\n", (unsigned long long)c->tokens);
    printf("  mesh             %s\n", c->mesh ? c->mesh : "(not recorded)");
    printf("  float_dtype      %s\n", ckpt_float_dtype(c));
    printf("  parameters       %llu (%.3fM)\n", (unsigned long long)nparams, (double)nparams / 1e6);
    if (has_opt) printf("  optimizer        AdamW moments, step %lld\n", (long long)opt_step);
    else printf("  optimizer        none (saved without checkpointer.save_optimizer_state)\n");
    printf("config:\n");
    const char *p = c->config ? c->config : "";
    while (*p) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        printf("    %.*s\n", n, p);
        p += n + (e ? 1 : 0);
    }
    int w = 0;
    for (int i = 0; i < nrows; i++) {
        int len = (int)(strlen(rows[i].group) + 1 + strlen(rows[i].name));
        if (len > w) w = len;
    }
    printf("tensors: %d\n", nrows);
    for (int i = 0; i < nrows; i++) {
        char full[512], shape[128];
        snprintf(full, sizeof full, "%s/%s", rows[i].group, rows[i].name);
        fmt_shape(shape, sizeof shape, rows[i].info.ndim, rows[i].info.shape);
        printf("  %-*s  %-14s %-9s norm %.6g\n", w, full, shape, rows[i].info.dtype, rows[i].norm);
    }
}

static void print_inspect_json(const ckpt_file *c, const tensor_row *rows, int nrows, uint64_t nparams,
                               int has_opt, int64_t opt_step) {
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(c->path));
    json_object_set_new(o, "format_version", json_integer(c->version));
    json_object_set_new(o, "step", json_integer(c->step));
    json_object_set_new(o, "tokens_consumed", json_integer((json_int_t)c->tokens));
    json_object_set_new(o, "bpt_version", c->bpt_version ? json_string(c->bpt_version) : json_null());
    json_object_set_new(o, "created", c->created ? json_string(c->created) : json_null());
    json_object_set_new(o, "mesh", c->mesh ? json_string(c->mesh) : json_null());
    json_object_set_new(o, "float_dtype", json_string(ckpt_float_dtype(c)));
    json_object_set_new(o, "config", json_string(c->config ? c->config : ""));
    json_object_set_new(o, "num_params", json_integer((json_int_t)nparams));
    json_object_set_new(o, "optimizer_step", has_opt ? json_integer(opt_step) : json_null());
    json_t *list = json_array();
    for (int i = 0; i < nrows; i++) {
        json_t *t = json_object();
        json_t *shape = json_array();
        for (int d = 0; d < rows[i].info.ndim; d++) json_array_append_new(shape, json_integer(rows[i].info.shape[d]));
        json_object_set_new(t, "group", json_string(rows[i].group));
        json_object_set_new(t, "name", json_string(rows[i].name));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "dtype", json_string(rows[i].info.dtype));
        json_object_set_new(t, "norm", json_real(rows[i].norm));
        json_array_append_new(list, t);
    }
    json_object_set_new(o, "tensors", list);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int inspect_main(int argc, char **argv) {
    const char *path = NULL;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return usage_error(USAGE_INSPECT, "unknown option '%s' for ckpt inspect (expected --json)", argv[i]);
        else if (path) return usage_error(USAGE_INSPECT, "ckpt inspect takes one FILE, got '%s' and '%s'", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return usage_error(USAGE_INSPECT, "ckpt inspect needs a FILE");

    ckpt_file c;
    if (ckpt_open(path, &c) != 0) return 1;
    path = c.path;
    tensor_row *rows = NULL;
    int nrows = 0, cap = 0, rc = 0;
    if (!link_exists(c.file, "params")) rc = bpt_error(-1, "%s: has no /params group (not a complete checkpoint)", path);
    if (rc == 0) rc = inspect_group(&c, "params", &rows, &nrows, &cap);
    int nparam_rows = nrows;
    if (rc == 0) rc = inspect_group(&c, "optimizer/m", &rows, &nrows, &cap);
    if (rc == 0) rc = inspect_group(&c, "optimizer/v", &rows, &nrows, &cap);
    int has_opt = nrows > nparam_rows;
    int64_t opt_step = 0;
    if (rc == 0 && link_exists(c.file, "optimizer") && link_exists(c.file, "optimizer/step")) {
        hid_t ds = H5Dopen2(c.file, "optimizer/step", H5P_DEFAULT);
        if (ds < 0 || H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &opt_step) < 0)
            rc = bpt_error(-1, "%s: cannot read /optimizer/step", path);
        if (ds >= 0) H5Dclose(ds);
    } else if (has_opt) {
        opt_step = c.step;
    }
    if (rc == 0) {
        uint64_t nparams = 0;
        for (int i = 0; i < nparam_rows; i++) nparams += rows[i].info.numel;
        if (as_json) print_inspect_json(&c, rows, nrows, nparams, has_opt, opt_step);
        else print_inspect_text(&c, rows, nrows, nparams, has_opt, opt_step);
    }
    for (int i = 0; i < nrows; i++) free(rows[i].name);
    free(rows);
    ckpt_close(&c);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------- */
/* export                                                                    */

/* config.json of a Hugging Face LlamaForCausalLM with the dimensions of l. */
static json_t *hf_config_json(const bpt_llama_config *l) {
    json_t *o = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("LlamaForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "vocab_size", json_integer(l->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(l->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(l->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(l->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(l->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(bpt_kv_heads(l)));
    json_object_set_new(o, "head_dim", json_integer(bpt_head_dim(l)));
    json_object_set_new(o, "max_position_embeddings", json_integer(l->max_sequence_length));
    json_object_set_new(o, "rms_norm_eps", json_real(l->rms_norm_eps));
    json_object_set_new(o, "rope_theta", json_real(l->rope_theta));
    json_object_set_new(o, "rope_scaling", json_null());
    json_t *rope = json_object();                  /* the transformers >= 5 spelling */
    json_object_set_new(rope, "rope_type", json_string("default"));
    json_object_set_new(rope, "rope_theta", json_real(l->rope_theta));
    json_object_set_new(o, "rope_parameters", rope);
    json_object_set_new(o, "tie_word_embeddings", json_boolean(l->tie_word_embeddings));
    json_object_set_new(o, "bos_token_id", json_integer(l->bos_token_id));
    json_object_set_new(o, "eos_token_id", json_integer(l->eos_token_id));
    json_object_set_new(o, "initializer_range", json_real(l->initializer_range));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "pretraining_tp", json_integer(1));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    return o;
}

/* Every /params tensor is one of specs, with its shape, and every spec is present. */
static int check_export_tensors(const ckpt_file *c, const bpt_llama_tensor *specs, int nspecs,
                                char **names, int nnames, hid_t g) {
    for (int i = 0; i < nnames; i++)
        if (find_spec(specs, nspecs, names[i]) < 0)
            return bpt_error(-1, "%s: tensor params/%s is not part of a LlamaForCausalLM with the "
                              "checkpoint's llama config", c->path, names[i]);
    for (int i = 0; i < nspecs; i++) {
        const bpt_llama_tensor *s = &specs[i];
        if (!link_exists(g, s->name)) return bpt_error(-1, "%s: missing tensor params/%s", c->path, s->name);
        hid_t ds = H5Dopen2(g, s->name, H5P_DEFAULT);
        if (ds < 0) return bpt_error(-1, "%s: params/%s is not a dataset", c->path, s->name);
        dset_info di;
        int rc = dset_probe(c, ds, "params", s->name, &di);
        H5Dclose(ds);
        if (rc != 0) return -1;
        int same = di.ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = di.shape[d] == s->shape[d];
        if (!same) {
            char have[128], want[128];
            fmt_shape(have, sizeof have, di.ndim, di.shape);
            fmt_shape(want, sizeof want, s->ndim, s->shape);
            return bpt_error(-1, "%s: tensor params/%s has shape %s, the llama config expects %s", c->path,
                              s->name, have, want);
        }
    }
    return 0;
}

static int write_all(FILE *f, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* DIR/model.safetensors from /params of c (all fp32), tensors in model order. */
static int write_safetensors(const ckpt_file *c, hid_t g, const bpt_llama_tensor *specs, int nspecs,
                             const char *out) {
    json_t *h = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(h, "__metadata__", meta);
    uint64_t off = 0;
    size_t maxn = 1;
    for (int i = 0; i < nspecs; i++) {
        const bpt_llama_tensor *s = &specs[i];
        size_t n = shape_numel(s->ndim, s->shape);
        if (n > maxn) maxn = n;
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < s->ndim; d++) json_array_append_new(shape, json_integer(s->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + 4 * (uint64_t)n)));
        json_object_set_new(t, "dtype", json_string("F32"));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets", offs);
        json_object_set_new(h, s->name, t);
        off += 4 * (uint64_t)n;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;

    char *tmp = path_suffix(out, ".tmp");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(text);
        bpt_error(-1, "%s: cannot create the file: %s", tmp, strerror(e));
        free(tmp);
        return -1;
    }
    unsigned char lenbytes[8];
    for (int b = 0; b < 8; b++) lenbytes[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    int rc = write_all(f, lenbytes, 8) | write_all(f, text, len);
    for (size_t k = len; k < padded && rc == 0; k++) rc = fputc(' ', f) == EOF ? -1 : 0;
    free(text);

    float *x = bpt_xmalloc(maxn * sizeof *x);
    for (int i = 0; i < nspecs && rc == 0; i++) {
        hid_t ds = H5Dopen2(g, specs[i].name, H5P_DEFAULT);
        dset_info di;
        if (ds < 0 || dset_probe(c, ds, "params", specs[i].name, &di) != 0 ||
            dset_read(c, ds, "params", specs[i].name, &di, x) != 0) {
            if (ds >= 0) H5Dclose(ds);
            else bpt_error(-1, "%s: cannot open params/%s", c->path, specs[i].name);
            fclose(f);
            unlink(tmp);
            free(tmp);
            free(x);
            return -1;
        }
        H5Dclose(ds);
        rc = write_all(f, x, di.numel * sizeof *x);  /* little-endian host */
    }
    free(x);
    if (fflush(f) != 0) rc = -1;
    const char *why = rc ? bpt_write_failure(tmp) : NULL;
    if (fclose(f) != 0 && !rc) { rc = -1; why = bpt_write_failure(tmp); }
    if (rc != 0) bpt_error(-1, "%s: cannot write the file: %s", tmp, why);
    return finish_file(tmp, out, rc == 0);
}

static int write_config_json(const bpt_llama_config *l, const char *out) {
    json_t *o = hf_config_json(l);
    char *tmp = path_suffix(out, ".tmp");
    /* jansson prints every real with one precision: the fewest digits that keep all exact */
    int digits = shortest_digits(l->rms_norm_eps);
    if (shortest_digits(l->rope_theta) > digits) digits = shortest_digits(l->rope_theta);
    if (shortest_digits(l->initializer_range) > digits) digits = shortest_digits(l->initializer_range);
    int rc = json_dump_file(o, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(digits));
    json_decref(o);
    if (rc != 0) bpt_error(-1, "%s: cannot write the file: %s", tmp, bpt_write_failure(tmp));
    return finish_file(tmp, out, rc == 0);
}

static int export_main(int argc, char **argv) {
    const char *path = NULL, *format = NULL, *outdir = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        size_t klen = 0;
        if (!strncmp(a, "--format", 8) && (a[8] == 0 || a[8] == '=')) { dst = &format; klen = 8; }
        else if (!strncmp(a, "--output", 8) && (a[8] == 0 || a[8] == '=')) { dst = &outdir; klen = 8; }
        else if (a[0] == '-' && a[1]) return usage_error(USAGE_EXPORT, "unknown option '%s' for ckpt export (expected --format, --output)", a);
        else if (path) return usage_error(USAGE_EXPORT, "ckpt export takes one FILE, got '%s' and '%s'", path, a);
        else { path = a; continue; }
        if (a[klen] == '=') *dst = a + klen + 1;
        else if (i + 1 < argc) *dst = argv[++i];
        else return usage_error(USAGE_EXPORT, "%s needs a value", a);
    }
    if (!path) return usage_error(USAGE_EXPORT, "ckpt export needs a FILE");
    if (!format) return usage_error(USAGE_EXPORT, "ckpt export needs --format safetensors");
    if (strcmp(format, "safetensors") != 0)
        return usage_error(USAGE_EXPORT, "unsupported --format '%s' for ckpt export (supported: safetensors)", format);
    if (!outdir || !outdir[0]) return usage_error(USAGE_EXPORT, "ckpt export needs --output DIR");

    ckpt_file c;
    if (ckpt_open(path, &c) != 0) return 1;
    path = c.path;
    bpt_llama_config l;
    bpt_llama_tensor *specs = NULL;
    char **names = NULL;
    int nnames = 0, rc = ckpt_llama_config(&c, &l);
    hid_t g = -1;
    if (rc == 0 && !link_exists(c.file, "params"))
        rc = bpt_error(-1, "%s: has no /params group (not a complete checkpoint)", path);
    if (rc == 0) {
        nnames = group_names(&c, "params", &names);
        if (nnames < 0) { rc = -1; nnames = 0; }
    }
    int nspecs = rc == 0 ? bpt_llama_tensors(&l, &specs) : 0;
    if (rc == 0) {
        g = H5Gopen2(c.file, "params", H5P_DEFAULT);
        rc = check_export_tensors(&c, specs, nspecs, names, nnames, g);
    }
    if (rc == 0 && bpt_mkdirs(outdir) != 0) rc = bpt_error(-1, "%s: cannot create the directory: %s", outdir, strerror(errno));
    char *st = path_join(outdir, "model.safetensors"), *cj = path_join(outdir, "config.json");
    if (rc == 0) rc = write_safetensors(&c, g, specs, nspecs, st);
    if (rc == 0) rc = write_config_json(&l, cj);
    if (rc == 0) {
        uint64_t n = 0;
        for (int i = 0; i < nspecs; i++) n += shape_numel(specs[i].ndim, specs[i].shape);
        printf("wrote %s (%d tensors, %llu parameters, F32) and %s\n", st, nspecs, (unsigned long long)n, cj);
    }
    free(st);
    free(cj);
    if (g >= 0) H5Gclose(g);
    free_names(names, nnames);
    free(specs);
    ckpt_close(&c);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------- */
/* import: safetensors                                                       */

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64 } st_dtype;
static const char *st_dtype_names[] = { "F32", "F16", "BF16", "F64" };
static const int st_dtype_size[] = { 4, 2, 2, 8 };

typedef struct st_tensor {
    char *name;
    int file;              /* index into st_set.paths */
    st_dtype dtype;
    int ndim;
    int64_t shape[MAX_DIMS];
    uint64_t offset;       /* absolute byte offset of the data in the file */
    uint64_t nbytes;
} st_tensor;

typedef struct st_set {
    int nfiles;
    char **paths;
    int *fds;
    st_tensor *t;
    int nt, cap;
} st_set;

static void st_free(st_set *s) {
    for (int i = 0; i < s->nfiles; i++) {
        if (s->fds[i] >= 0) close(s->fds[i]);
        free(s->paths[i]);
    }
    for (int i = 0; i < s->nt; i++) free(s->t[i].name);
    free(s->paths);
    free(s->fds);
    free(s->t);
    memset(s, 0, sizeof *s);
}

static int st_find(const st_set *s, const char *name) {
    for (int i = 0; i < s->nt; i++)
        if (!strcmp(s->t[i].name, name)) return i;
    return -1;
}

/* pread exactly n bytes. 0 or -1. */
static int read_exact(int fd, void *buf, uint64_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        size_t want = n > ((uint64_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        ssize_t got = pread(fd, p, want, (off_t)off);
        if (got <= 0) return -1;
        p += got;
        n -= (uint64_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* One header entry into a st_tensor; data_bytes is the size of the data region. */
static int st_parse_entry(const char *path, const char *name, json_t *v, uint64_t data_start,
                          uint64_t data_bytes, st_tensor *t) {
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return bpt_error(-1, "%s: malformed header: entry '%s' needs dtype, shape and data_offsets [begin, end]",
                          path, name);
    const char *dts = json_string_value(dt);
    int dtype = -1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(dts, st_dtype_names[k])) dtype = k;
    if (dtype < 0)
        return bpt_error(-1, "%s: tensor %s has dtype %s (supported: F32, BF16, F16, F64)", path, name, dts);
    if (json_array_size(shape) > MAX_DIMS)
        return bpt_error(-1, "%s: malformed header: tensor %s has rank %zu", path, name, json_array_size(shape));
    t->dtype = (st_dtype)dtype;
    t->ndim = (int)json_array_size(shape);
    for (int d = 0; d < t->ndim; d++) {
        json_t *x = json_array_get(shape, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return bpt_error(-1, "%s: malformed header: tensor %s has a bad shape", path, name);
        t->shape[d] = json_integer_value(x);
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return bpt_error(-1, "%s: malformed header: tensor %s has bad data_offsets", path, name);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    uint64_t want = (uint64_t)shape_numel(t->ndim, t->shape) * (uint64_t)st_dtype_size[dtype];
    if (end - begin != want)
        return bpt_error(-1, "%s: malformed header: tensor %s has data_offsets [%llu, %llu] (%llu bytes), "
                          "its shape and dtype need %llu bytes", path, name, (unsigned long long)begin,
                          (unsigned long long)end, (unsigned long long)(end - begin), (unsigned long long)want);
    if (end > data_bytes)
        return bpt_error(-1, "%s: truncated: tensor %s ends at data byte %llu, the file holds %llu bytes of data",
                          path, name, (unsigned long long)end, (unsigned long long)data_bytes);
    t->offset = data_start + begin;
    t->nbytes = want;
    return 0;
}

/* Open one safetensors file, parse and validate its header, add its tensors. */
static int st_add_file(st_set *s, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bpt_error(-1, "%s: cannot open: %s", path, strerror(errno));
    s->paths = realloc(s->paths, (size_t)(s->nfiles + 1) * sizeof *s->paths);
    s->fds = realloc(s->fds, (size_t)(s->nfiles + 1) * sizeof *s->fds);
    BPT_CHECK(s->paths && s->fds, "out of memory");
    int fi = s->nfiles++;
    s->paths[fi] = bpt_xstrdup(path);
    s->fds[fi] = fd;

    struct stat st;
    if (fstat(fd, &st) != 0) return bpt_error(-1, "%s: cannot stat: %s", path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    unsigned char lb[8];
    if (size < 8 || read_exact(fd, lb, 8, 0) != 0)
        return bpt_error(-1, "%s: truncated: shorter than the 8-byte header length", path);
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--) hlen = (hlen << 8) | lb[b];
    if (hlen > MAX_HEADER)
        return bpt_error(-1, "%s: not a safetensors file (header length %llu is over 100 MiB)", path,
                          (unsigned long long)hlen);
    if (hlen > size - 8)
        return bpt_error(-1, "%s: truncated: the header needs %llu bytes, the file has %llu after the length",
                          path, (unsigned long long)hlen, (unsigned long long)(size - 8));
    char *text = bpt_xmalloc((size_t)hlen + 1);
    if (read_exact(fd, text, hlen, 8) != 0) {
        free(text);
        return bpt_error(-1, "%s: cannot read the header", path);
    }
    json_error_t jerr;
    json_t *h = json_loadb(text, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!h) return bpt_error(-1, "%s: malformed header: %s (header byte %d)", path, jerr.text, jerr.position);
    if (!json_is_object(h)) {
        json_decref(h);
        return bpt_error(-1, "%s: malformed header: not a JSON object", path);
    }
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(h, name, v) {
        if (!strcmp(name, "__metadata__")) continue;
        if (st_find(s, name) >= 0) { rc = bpt_error(-1, "%s: tensor %s appears in more than one file", path, name); break; }
        if (s->nt == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            s->t = realloc(s->t, (size_t)s->cap * sizeof *s->t);
            BPT_CHECK(s->t, "out of memory");
        }
        st_tensor *t = &s->t[s->nt];
        memset(t, 0, sizeof *t);
        if (st_parse_entry(path, name, v, 8 + hlen, size - 8 - hlen, t) != 0) { rc = -1; break; }
        t->name = bpt_xstrdup(name);
        t->file = fi;
        s->nt++;
    }
    json_decref(h);
    return rc;
}

/* DIR/model.safetensors, or the files named by DIR/model.safetensors.index.json. */
static int st_open_dir(const char *dir, st_set *s) {
    memset(s, 0, sizeof *s);
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    int rc = 0;
    if (file_exists(single)) {
        rc = st_add_file(s, single);
    } else if (file_exists(index)) {
        json_error_t jerr;
        json_t *o = json_load_file(index, 0, &jerr);
        json_t *map = o ? json_object_get(o, "weight_map") : NULL;
        if (!o) rc = bpt_error(-1, "%s: bad JSON: %s (line %d)", index, jerr.text, jerr.line);
        else if (!json_is_object(map)) rc = bpt_error(-1, "%s: has no weight_map object", index);
        /* each file once, in the order of first mention */
        const char *name;
        json_t *v;
        char **seen = NULL;
        int nseen = 0;
        if (rc == 0) {
            json_object_foreach(map, name, v) {
                const char *f = json_string_value(v);
                if (!f || strchr(f, '/')) { rc = bpt_error(-1, "%s: weight_map entry %s is not a file name", index, name); break; }
                int known = 0;
                for (int i = 0; i < nseen; i++) known |= !strcmp(seen[i], f);
                if (known) continue;
                seen = realloc(seen, (size_t)(nseen + 1) * sizeof *seen);
                BPT_CHECK(seen, "out of memory");
                seen[nseen++] = (char *)f;
            }
        }
        for (int i = 0; i < nseen && rc == 0; i++) {
            char *p = path_join(dir, seen[i]);
            if (!file_exists(p)) rc = bpt_error(-1, "%s: no such file (named in %s)", p, index);
            else rc = st_add_file(s, p);
            free(p);
        }
        /* every weight_map entry is in the file it names */
        if (rc == 0) {
            json_object_foreach(map, name, v) {
                int k = st_find(s, name);
                const char *f = json_string_value(v);
                const char *have = k >= 0 ? strrchr(s->paths[s->t[k].file], '/') + 1 : NULL;
                if (!have || strcmp(have, f) != 0) {
                    rc = bpt_error(-1, "%s: tensor %s is not in %s as its weight_map says", index, name, f);
                    break;
                }
            }
        }
        free(seen);
        json_decref(o);
    } else {
        rc = bpt_error(-1, "%s: no model.safetensors or model.safetensors.index.json (a Hugging Face "
                        "checkpoint saved with safe_serialization=True?)", dir);
    }
    free(single);
    free(index);
    return rc;
}

/* Read tensor t converted to fp32 into out. */
static int st_read_f32(const st_set *s, const st_tensor *t, float *out) {
    size_t n = shape_numel(t->ndim, t->shape);
    int fd = s->fds[t->file];
    const char *path = s->paths[t->file];
    if (t->dtype == ST_F32) {
        if (read_exact(fd, out, t->nbytes, t->offset) != 0)
            return bpt_error(-1, "%s: truncated: cannot read tensor %s", path, t->name);
        return 0;
    }
    void *raw = bpt_xmalloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (read_exact(fd, raw, t->nbytes, t->offset) != 0) {
        free(raw);
        return bpt_error(-1, "%s: truncated: cannot read tensor %s", path, t->name);
    }
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == ST_F64) {
            double d;
            memcpy(&d, (char *)raw + 8 * i, 8);
            out[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, (char *)raw + 2 * i, 2);
            out[i] = t->dtype == ST_BF16 ? bf16_to_float(h) : f16_to_float(h);
        }
    }
    free(raw);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* import: config.json                                                       */

/* An integer field; missing -> def (or an error if required). */
static int json_int_field(const char *path, json_t *o, const char *key, int required, long long def,
                          long long *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return bpt_error(-1, "%s: missing %s", path, key);
        *out = def;
        return 0;
    }
    if (json_is_integer(v)) { *out = json_integer_value(v); return 0; }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    return bpt_error(-1, "%s: %s must be an integer", path, key);
}

static int json_num_field(const char *path, json_t *o, const char *key, double def, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_number(v)) return bpt_error(-1, "%s: %s must be a number", path, key);
    *out = json_number_value(v);
    return 0;
}

static int json_bool_field(const char *path, json_t *o, const char *key, int def, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) return bpt_error(-1, "%s: %s must be true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

/* A token id: an integer, the first of a list (Llama 3 lists several EOS ids), or
 * null/missing (-1: keep bpt's default). */
static int json_token_field(const char *path, json_t *o, const char *key, long long *out) {
    json_t *v = json_object_get(o, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!v || json_is_null(v)) { *out = -1; return 0; }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bpt_error(-1, "%s: %s must be a non-negative integer", path, key);
    *out = json_integer_value(v);
    return 0;
}

/* The rope section: only plain RoPE. rope_theta from the top level or from
 * rope_parameters (transformers >= 5). */
static int json_rope(const char *path, json_t *o, double *theta) {
    json_t *scaling = json_object_get(o, "rope_scaling");
    if (scaling && !json_is_null(scaling)) {
        json_t *type = json_object_get(scaling, "rope_type");
        if (!type) type = json_object_get(scaling, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "default") != 0)
            return bpt_error(-1, "%s: rope_scaling is not supported (bpt implements plain RoPE; expected null)", path);
    }
    if (json_num_field(path, o, "rope_theta", 10000.0, theta) != 0) return -1;
    json_t *params = json_object_get(o, "rope_parameters");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) return bpt_error(-1, "%s: rope_parameters must be an object", path);
        json_t *type = json_object_get(params, "rope_type");
        if (type && (!json_is_string(type) || strcmp(json_string_value(type), "default") != 0))
            return bpt_error(-1, "%s: rope_parameters.rope_type '%s' is not supported (bpt implements plain "
                              "RoPE; expected default)", path, json_is_string(type) ? json_string_value(type) : "?");
        json_t *th = json_object_get(params, "rope_theta");
        if (th && !json_is_number(th)) return bpt_error(-1, "%s: rope_parameters.rope_theta must be a number", path);
        if (th) *theta = json_number_value(th);
    }
    return 0;
}

/* One "key=value" of the config being built from config.json. */
typedef struct key_value { const char *key; char value[64]; } key_value;

static void kv_int(key_value *kv, int *n, const char *key, long long x) {
    kv[*n].key = key;
    snprintf(kv[*n].value, sizeof kv[*n].value, "%lld", x);
    (*n)++;
}

static void kv_double(key_value *kv, int *n, const char *key, double x) {
    kv[*n].key = key;
    fmt_double(kv[*n].value, sizeof kv[*n].value, x);
    (*n)++;
}

/* The bpt config of a Hugging Face config.json. */
static int hf_config_read(const char *path, bpt_config *cfg) {
    json_error_t jerr;
    if (!file_exists(path)) return bpt_error(-1, "%s: no such file", path);
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) return bpt_error(-1, "%s: bad JSON: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(o)) { json_decref(o); return bpt_error(-1, "%s: not a JSON object", path); }
    int rc = 0;
    json_t *mt = json_object_get(o, "model_type");
    json_t *act = json_object_get(o, "hidden_act");
    int abias = 0, mbias = 0;
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "llama") != 0))
        rc = bpt_error(-1, "%s: model_type '%s' is not supported (expected llama)", path,
                        json_is_string(mt) ? json_string_value(mt) : "?");
    if (rc == 0 && act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        rc = bpt_error(-1, "%s: hidden_act '%s' is not supported (bpt's feed-forward is SwiGLU: expected silu)", path,
                        json_is_string(act) ? json_string_value(act) : "?");
    if (rc == 0) rc = json_bool_field(path, o, "attention_bias", 0, &abias);
    if (rc == 0 && abias) rc = bpt_error(-1, "%s: attention_bias true is not supported (bpt's projections have no bias)", path);
    if (rc == 0) rc = json_bool_field(path, o, "mlp_bias", 0, &mbias);
    if (rc == 0 && mbias) rc = bpt_error(-1, "%s: mlp_bias true is not supported (bpt's projections have no bias)", path);

    long long V = 0, D = 0, F = 0, L = 0, H = 0, KVH = 0, maxpos = 0, bos = -1, eos = -1, hd = 0;
    double eps = 0, theta = 0, init = 0;
    int tie = 0;
    if (rc == 0) rc = json_int_field(path, o, "vocab_size", 1, 0, &V);
    if (rc == 0) rc = json_int_field(path, o, "hidden_size", 1, 0, &D);
    if (rc == 0) rc = json_int_field(path, o, "intermediate_size", 1, 0, &F);
    if (rc == 0) rc = json_int_field(path, o, "num_hidden_layers", 1, 0, &L);
    if (rc == 0) rc = json_int_field(path, o, "num_attention_heads", 1, 0, &H);
    if (rc == 0) rc = json_int_field(path, o, "num_key_value_heads", 0, H, &KVH);
    if (rc == 0) rc = json_int_field(path, o, "max_position_embeddings", 0, 2048, &maxpos);
    if (rc == 0) rc = json_num_field(path, o, "rms_norm_eps", 1e-6, &eps);
    if (rc == 0) rc = json_num_field(path, o, "initializer_range", 0.02, &init);
    if (rc == 0) rc = json_bool_field(path, o, "tie_word_embeddings", 0, &tie);
    if (rc == 0) rc = json_token_field(path, o, "bos_token_id", &bos);
    if (rc == 0) rc = json_token_field(path, o, "eos_token_id", &eos);
    if (rc == 0) rc = json_rope(path, o, &theta);
    if (rc == 0 && H > 0) rc = json_int_field(path, o, "head_dim", 0, D / H, &hd);
    if (rc == 0 && H > 0 && hd * H != D)
        rc = bpt_error(-1, "%s: head_dim %lld with %lld heads does not match hidden_size %lld (bpt needs "
                        "head_dim = hidden_size / num_attention_heads)", path, hd, H, D);
    json_decref(o);
    if (rc != 0) return -1;

    /* the bpt config: defaults, the llama.* keys, then validation */
    key_value kv[20];
    int n = 0;
    kv_int(kv, &n, "llama.vocab_size", V);
    kv_int(kv, &n, "llama.hidden_size", D);
    kv_int(kv, &n, "llama.intermediate_size", F);
    kv_int(kv, &n, "llama.num_hidden_layers", L);
    kv_int(kv, &n, "llama.num_attention_heads", H);
    kv_int(kv, &n, "llama.num_key_value_heads", KVH);
    kv_int(kv, &n, "llama.max_sequence_length", maxpos);
    kv_double(kv, &n, "llama.rms_norm_eps", eps);
    kv_double(kv, &n, "llama.rope_theta", theta);
    kv_double(kv, &n, "llama.initializer_range", init);
    kv_int(kv, &n, "llama.tie_word_embeddings", tie);
    if (bos >= 0) kv_int(kv, &n, "llama.bos_token_id", bos);
    if (eos >= 0) kv_int(kv, &n, "llama.eos_token_id", eos);
    /* the default sequence lengths must fit the RoPE table, or nothing validates */
    bpt_config_defaults(cfg);
    if (cfg->train_dataset.hdf5.seq_length > maxpos) {
        kv_int(kv, &n, "train_dataset.hdf5_dataset.seq_length", maxpos);
        kv_int(kv, &n, "train_dataset.text_dataset.seq_length", maxpos);
        kv_int(kv, &n, "eval_dataset.hdf5_dataset.seq_length", maxpos);
        kv_int(kv, &n, "eval_dataset.text_dataset.seq_length", maxpos);
    }
    char err[1024];
    for (int i = 0; i < n; i++)
        if (bpt_config_set(cfg, kv[i].key, kv[i].value, err, sizeof err) != 0)
            return bpt_error(-1, "%s: %s", path, err);
    if (bpt_config_finalize(cfg, err, sizeof err) != 0) return bpt_error(-1, "%s: %s", path, err);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* import: writing the checkpoint                                            */

static int write_tensor_f32(hid_t g, const bpt_llama_tensor *s, const float *x) {
    hsize_t dims[2] = { (hsize_t)s->shape[0], (hsize_t)s->shape[1] };
    hid_t space = H5Screate_simple(s->ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (shape_numel(s->ndim, s->shape) > 0) {
        hsize_t chunk[2];
        if (s->ndim == 1) {
            chunk[0] = dims[0] < CHUNK_ELEMS ? dims[0] : CHUNK_ELEMS;
        } else {
            hsize_t rows = CHUNK_ELEMS / dims[1];        /* whole rows, ~1M elements */
            if (rows < 1) rows = 1;
            chunk[0] = rows < dims[0] ? rows : dims[0];
            chunk[1] = dims[1];
        }
        H5Pset_chunk(dcpl, s->ndim, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t ds = H5Dcreate2(g, s->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0 ? 0 : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

/* Every expected tensor is in s with its shape; every other tensor of s is one we may
 * ignore. */
static int check_import_tensors(const char *dir, const st_set *s, const bpt_llama_tensor *specs, int nspecs,
                                int tied) {
    for (int i = 0; i < nspecs; i++) {
        int k = st_find(s, specs[i].name);
        if (k < 0) return bpt_error(-1, "%s: missing tensor %s", dir, specs[i].name);
        const st_tensor *t = &s->t[k];
        int same = t->ndim == specs[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == specs[i].shape[d];
        if (!same) {
            char have[128], want[128];
            fmt_shape(have, sizeof have, t->ndim, t->shape);
            fmt_shape(want, sizeof want, specs[i].ndim, specs[i].shape);
            return bpt_error(-1, "%s: tensor %s has shape %s, config.json expects %s", s->paths[t->file],
                              specs[i].name, have, want);
        }
    }
    for (int k = 0; k < s->nt; k++) {
        const char *name = s->t[k].name;
        size_t len = strlen(name);
        const char *inv = ".rotary_emb.inv_freq";
        if (find_spec(specs, nspecs, name) >= 0) continue;
        if (len >= strlen(inv) && !strcmp(name + len - strlen(inv), inv)) continue;
        if (tied && !strcmp(name, "lm_head.weight")) continue;
        return bpt_error(-1, "%s: unexpected tensor %s (not part of a LlamaForCausalLM with this config.json)",
                          s->paths[s->t[k].file], name);
    }
    return 0;
}

static int write_checkpoint(const char *out, const st_set *s, const bpt_llama_tensor *specs, int nspecs,
                            const char *yaml) {
    char *tmp = path_suffix(out, ".tmp");
    /* at most: the tensors in fp32, 4 KiB of headers each, 1 MiB of metadata */
    double need = (double)(1 << 20) + 2.0 * strlen(yaml);
    for (int i = 0; i < nspecs; i++) need += 4.0 * (double)shape_numel(specs[i].ndim, specs[i].shape) + 4096;
    char err[1024];
    hid_t file = bpt_h5_create_written(tmp, need, 0, err, sizeof err);
    if (file < 0) {
        bpt_error(-1, "%s", err);
        free(tmp);
        return -1;
    }
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int version = BPT_CKPT_FORMAT_VERSION;
    int64_t step = 0;
    uint64_t tokens = 0;
    int rc = 0;
    rc |= bpt_h5_attr_str(file, "format", BPT_CKPT_FORMAT);
    rc |= bpt_h5_attr_num(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version);
    rc |= bpt_h5_attr_num(file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step);
    rc |= bpt_h5_attr_num(file, "tokens_consumed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokens);
    rc |= bpt_h5_attr_str(file, "config", yaml);
    rc |= bpt_h5_attr_str(file, "bpt_version", PACKAGE_VERSION);
    rc |= bpt_h5_attr_str(file, "created", created);
    rc |= bpt_h5_attr_str(file, "mesh", "1,1,1");
    rc |= bpt_h5_attr_str(file, "float_dtype", "fp32");
    hid_t g = rc == 0 ? H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (g < 0) rc = -1;
    const char *failed = rc ? "the root attributes" : NULL;

    size_t maxn = 1;
    for (int i = 0; i < nspecs; i++)
        if (shape_numel(specs[i].ndim, specs[i].shape) > maxn) maxn = shape_numel(specs[i].ndim, specs[i].shape);
    float *x = bpt_xmalloc(maxn * sizeof *x);
    int read_failed = 0;
    for (int i = 0; i < nspecs && rc == 0; i++) {
        const st_tensor *t = &s->t[st_find(s, specs[i].name)];
        if (st_read_f32(s, t, x) != 0) { rc = -1; read_failed = 1; break; }
        if (write_tensor_f32(g, &specs[i], x) != 0) { rc = -1; failed = specs[i].name; }
    }
    free(x);
    if (g >= 0 && H5Gclose(g) < 0) rc = -1;
    char why[256];
    if (bpt_h5_close_written(file, tmp, 0, rc == 0, why, sizeof why) != 0 && !read_failed) {
        bpt_error(-1, "%s: cannot write %s: %s", tmp, rc && failed ? failed : "the file", why);
        rc = -1;
    }
    return finish_file(tmp, out, rc == 0);
}

/* The llama section a user needs to run the imported checkpoint, as YAML. */
static void print_llama_yaml(const char *dir, const char *out, const bpt_llama_config *l, size_t nparams) {
    char eps[64], theta[64], init[64];
    fmt_double(eps, sizeof eps, l->rms_norm_eps);
    fmt_double(theta, sizeof theta, l->rope_theta);
    fmt_double(init, sizeof init, l->initializer_range);
    printf("# %s -> %s: %zu parameters. The model config to use with it\n", dir, out, nparams);
    printf("# (put it in your --config YAML, with load_llama_config: ''):\n");
    printf("llama:\n");
    printf("  vocab_size: %d\n", l->vocab_size);
    printf("  hidden_size: %d\n", l->hidden_size);
    printf("  intermediate_size: %d\n", l->intermediate_size);
    printf("  num_hidden_layers: %d\n", l->num_hidden_layers);
    printf("  num_attention_heads: %d\n", l->num_attention_heads);
    printf("  num_key_value_heads: %d\n", bpt_kv_heads(l));
    printf("  max_sequence_length: %d\n", l->max_sequence_length);
    printf("  rms_norm_eps: %s\n", eps);
    printf("  rope_theta: %s\n", theta);
    printf("  tie_word_embeddings: %s\n", l->tie_word_embeddings ? "true" : "false");
    printf("  bos_token_id: %d\n", l->bos_token_id);
    printf("  eos_token_id: %d\n", l->eos_token_id);
    printf("  initializer_range: %s\n", init);
}

static int import_main(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--output", 8) && (a[8] == 0 || a[8] == '=')) {
            if (a[8] == '=') out = a + 9;
            else if (i + 1 < argc) out = argv[++i];
            else return usage_error(USAGE_IMPORT, "--output needs a value");
        } else if (a[0] == '-' && a[1]) {
            return usage_error(USAGE_IMPORT, "unknown option '%s' for ckpt import (expected --output)", a);
        } else if (dir) {
            return usage_error(USAGE_IMPORT, "ckpt import takes one DIR, got '%s' and '%s'", dir, a);
        } else {
            dir = a;
        }
    }
    if (!dir) return usage_error(USAGE_IMPORT, "ckpt import needs a DIR (a Hugging Face model directory)");
    if (!out || !out[0]) return usage_error(USAGE_IMPORT, "ckpt import needs --output FILE");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        bpt_error(-1, "%s: no such directory", dir);
        return 1;
    }

    bpt_config *cfg = bpt_xcalloc(1, sizeof *cfg);
    char *cj = path_join(dir, "config.json");
    int rc = hf_config_read(cj, cfg);
    free(cj);
    st_set s;
    memset(&s, 0, sizeof s);
    bpt_llama_tensor *specs = NULL;
    int nspecs = 0;
    if (rc == 0) rc = st_open_dir(dir, &s);
    if (rc == 0) {
        nspecs = bpt_llama_tensors(&cfg->llama, &specs);
        rc = check_import_tensors(dir, &s, specs, nspecs, cfg->llama.tie_word_embeddings);
    }
    if (rc == 0) {
        char *yaml = bpt_config_to_yaml(cfg);
        rc = write_checkpoint(out, &s, specs, nspecs, yaml);
        free(yaml);
    }
    if (rc == 0) {
        size_t n = 0;
        for (int i = 0; i < nspecs; i++) n += shape_numel(specs[i].ndim, specs[i].shape);
        print_llama_yaml(dir, out, &cfg->llama, n);
    }
    free(specs);
    st_free(&s);
    free(cfg);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------- */

int bpt_ckpt_main(int argc, char **argv) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (argc < 1) return usage_error(USAGE_ALL, "ckpt needs a subcommand");
    const char *sub = argv[0];
    if (!strcmp(sub, "inspect")) return inspect_main(argc - 1, argv + 1);
    if (!strcmp(sub, "export")) return export_main(argc - 1, argv + 1);
    if (!strcmp(sub, "import")) return import_main(argc - 1, argv + 1);
    if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        printf("usage: " USAGE_INSPECT "\n       " USAGE_EXPORT "\n       " USAGE_IMPORT "\n");
        return 0;
    }
    return usage_error(USAGE_ALL, "unknown ckpt subcommand '%s' (expected inspect, export or import)", sub);
}
