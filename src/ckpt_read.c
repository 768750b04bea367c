/* ckpt_read.c — a bpt checkpoint (docs/checkpoint-format.md) read by the ckpt tools with
 * serial HDF5 calls, not through src/ckpt.c: the file opened (a checkpoint directory
 * through its latest) and its format checked, the root attributes, the datasets of a
 * group in natural order, each read whole as fp32, and the llama config the file was
 * written with. Declared in src/ckpt_tools.h.
 */
#include "ckpt_tools.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpt/ckpt.h"
#include "bpt/h5util.h"
#include "bpt/safetensors.h"
#include "bpt/util.h"

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

void ckpt_close(ckpt_file *c) {
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
int ckpt_open(const char *path, ckpt_file *c) {
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

const char *ckpt_float_dtype(const ckpt_file *c) {
    return c->float_dtype ? c->float_dtype : "fp32";
}

int ckpt_link_exists(hid_t loc, const char *name) {
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

/* Shape and storage type of dataset gname/name. */
int ckpt_dset_probe(const ckpt_file *c, hid_t ds, const char *gname, const char *name, dset_info *di) {
    memset(di, 0, sizeof *di);
    hid_t space = H5Dget_space(ds);
    hid_t type = H5Dget_type(ds);
    int ndim = H5Sget_simple_extent_ndims(space);
    int rc = 0;
    if (ndim < 0 || ndim > CKPT_MAX_DIMS) {
        rc = bpt_error(-1, "%s: %s/%s has an unsupported rank %d", c->path, gname, name, ndim);
    } else {
        hsize_t dims[CKPT_MAX_DIMS];
        H5Sget_simple_extent_dims(space, dims, NULL);
        di->ndim = ndim;
        for (int d = 0; d < ndim; d++) di->shape[d] = (int64_t)dims[d];
        di->numel = ckpt_shape_numel(ndim, di->shape);
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
int ckpt_dset_read(const ckpt_file *c, hid_t ds, const char *gname, const char *name,
                     const dset_info *di, float *out) {
    herr_t st;
    if (di->bf16) {
        uint16_t *bits = bpt_xmalloc((di->numel ? di->numel : 1) * sizeof *bits);
        st = H5Dread(ds, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits);
        for (size_t i = 0; st >= 0 && i < di->numel; i++) out[i] = bpt_bf16_to_f32(bits[i]);
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
int ckpt_group_names(const ckpt_file *c, const char *gname, char ***names) {
    *names = NULL;
    if (!ckpt_link_exists(c->file, gname)) return 0;
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

void ckpt_free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The llama config of a checkpoint from its config attribute. If the whole config
 * does not validate here (a newer bpt wrote it?), the llama section alone is tried. */
int ckpt_llama_config(const ckpt_file *c, bpt_llama_config *out) {
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
