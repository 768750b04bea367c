/* h5util.c — scalar HDF5 attributes, opening files and datasets (see include/bpt/h5util.h). */
#include "bpt/h5util.h"
#include "bpt/util.h"
#include "bpt/comm.h"
#include "bpt/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mpi.h>

int bpt_h5_attr_str(hid_t obj, const char *name, const char *value) {
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

int bpt_h5_attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, mtype, v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

/* Read a scalar string attribute (variable- or fixed-length) into buf. 0 or -1. */
int bpt_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len) {
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

int bpt_h5_read_attr_num(hid_t obj, const char *name, hid_t mtype, void *v) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, mtype, v) >= 0 ? 0 : -1;
    H5Aclose(a);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* opening a file and a 1-D integer dataset with a message that says what is wrong */

/* What H5Fopen found, from the error stack: the deepest description, and whether it
 * was a truncation or a lock. */
typedef struct { char desc[256]; int truncated, lock; unsigned long long eof, stored; } h5_why;

static herr_t why_walk(unsigned n, const H5E_error2_t *e, void *data) {
    h5_why *w = data;
    (void)n;
    if (!e->desc) return 0;
    snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    const char *t = strstr(e->desc, "truncated file");
    if (t) {
        w->truncated = 1;
        const char *a = strstr(t, "eof = "), *b = strstr(t, "stored_eof = ");
        if (a) w->eof = strtoull(a + 6, NULL, 10);
        if (b) w->stored = strtoull(b + 13, NULL, 10);
    }
    if (strstr(e->desc, "unable to lock")) w->lock = 1;
    return 0;
}

hid_t bpt_h5_open_read(const char *path, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) bpt_err(err, errlen, "%s: no such file", path);
        else bpt_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        bpt_err(err, errlen, "%s: is a directory, expected an HDF5 file", path);
        return -1;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        bpt_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    if (st.st_size == 0) {
        bpt_err(err, errlen, "%s: is empty, expected an HDF5 file", path);
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        bpt_err(err, errlen, "%s: not an HDF5 file (no HDF5 signature)", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) return f;
    h5_why w = {{0}, 0, 0, 0, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, why_walk, &w);   /* the deepest last */
    if (w.truncated && w.stored > w.eof)
        bpt_err(err, errlen, "%s: truncated HDF5 file (%llu bytes; its superblock says %llu)", path,
                (unsigned long long)st.st_size, w.stored);
    else if (w.truncated)
        bpt_err(err, errlen, "%s: truncated HDF5 file (%llu bytes)", path, (unsigned long long)st.st_size);
    else if (w.lock)
        bpt_err(err, errlen, "%s: cannot lock the HDF5 file (is another process writing it? HINT: on a "
                "file system without locking set HDF5_USE_FILE_LOCKING=FALSE)", path);
    else
        bpt_err(err, errlen, "%s: corrupt HDF5 file (%s)", path, w.desc[0] ? w.desc : "the library cannot open it");
    return -1;
}

/* "uint16", "float32", "strings", ... for messages. */
static void type_name(hid_t t, char *buf, size_t n) {
    size_t size = H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * size);
        break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", 8 * size); break;
    case H5T_STRING: snprintf(buf, n, "strings"); break;
    case H5T_ENUM: snprintf(buf, n, "an enum (as h5py stores bool)"); break;
    case H5T_COMPOUND: snprintf(buf, n, "a compound type"); break;
    case H5T_ARRAY: snprintf(buf, n, "an array type"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length sequences"); break;
    case H5T_BITFIELD: snprintf(buf, n, "a bitfield"); break;
    case H5T_OPAQUE: snprintf(buf, n, "opaque data"); break;
    case H5T_REFERENCE: snprintf(buf, n, "references"); break;
    default: snprintf(buf, n, "an unknown type"); break;
    }
}

hid_t bpt_h5_open_int_1d(hid_t f, const char *path, const char *name, const char *want,
                         int64_t *n, char *err, size_t errlen) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        bpt_err(err, errlen, "%s: no /%s dataset", path, name);
        return -1;
    }
    hid_t o = H5Oopen(f, name, H5P_DEFAULT);
    if (o < 0) {
        bpt_err(err, errlen, "%s: /%s cannot be opened (a dangling link?)", path, name);
        return -1;
    }
    H5I_type_t it = H5Iget_type(o);
    if (it != H5I_DATASET) {
        H5Oclose(o);
        bpt_err(err, errlen, "%s: /%s is a %s, not a dataset", path, name,
                it == H5I_GROUP ? "group" : it == H5I_DATATYPE ? "named datatype" : "non-dataset object");
        return -1;
    }
    hid_t d = o;
    char tn[64];
    hid_t type = H5Dget_type(d);
    type_name(type, tn, sizeof tn);
    int ok = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) <= 8;
    H5Tclose(type);
    if (!ok) {
        H5Dclose(d);
        bpt_err(err, errlen, "%s: /%s holds %s, expected %s", path, name, tn, want);
        return -1;
    }
    hid_t sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (nd > 0) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    H5Sclose(sp);
    if (nd != 1) {
        char shape[128] = "";
        size_t k = 0;
        for (int i = 0; i < nd && k + 24 < sizeof shape; i++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, i ? " x %llu" : "%llu", (unsigned long long)dims[i]);
        H5Dclose(d);
        if (sc == H5S_NULL) bpt_err(err, errlen, "%s: /%s has no dataspace (H5S_NULL), expected 1-D", path, name);
        else if (nd == 0) bpt_err(err, errlen, "%s: /%s is a scalar, expected 1-D", path, name);
        else bpt_err(err, errlen, "%s: /%s has rank %d (%s), expected 1-D", path, name, nd, shape);
        return -1;
    }
    /* a filter this library lacks (h5py's lzf, say) fails every read: say so now */
    hid_t dcpl = H5Dget_create_plist(d);
    int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        if (id >= 0 && H5Zfilter_avail(id) <= 0) {
            H5Pclose(dcpl);
            H5Dclose(d);
            bpt_err(err, errlen, "%s: /%s is compressed with HDF5 filter %d (%s), which this HDF5 library "
                    "does not have (HINT: rewrite it uncompressed or with gzip)", path, name, (int)id,
                    fname[0] ? fname : "unnamed");
            return -1;
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    *n = (int64_t)dims[0];
    return d;
}

/* ------------------------------------------------------ closing a written file -- */

static int lead_rank(int collective) {
    int rank = 0;
    if (collective) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
}

hid_t bpt_h5_create_written(const char *path, double need, int collective, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int lead = lead_rank(collective), check = !bpt_test_hooks_get()->no_space_check, rc = 0;
    int64_t have = lead && check ? bpt_fs_free_bytes(path) : -1;
    if (have >= 0 && (double)have < need) {
        char b1[32], b2[32];
        rc = bpt_err(err, errlen, "%s: %s (needs up to %s, %s are free)", path, strerror(ENOSPC),
                     bpt_fmt_bytes(need, b1, sizeof b1), bpt_fmt_bytes((double)have, b2, sizeof b2));
    }
    if (collective ? bpt_agree(rc, err, errlen) : rc) return -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (collective) H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    errno = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        rc = bpt_err(err, errlen, "%s: cannot create the file: %s", path,
                     errno ? strerror(errno) : "does the directory exist and is it writable?");
    if (collective ? bpt_agree(rc, err, errlen) : rc) {
        if (f >= 0) H5Fclose(f);
        return -1;
    }
    if (lead && check && bpt_reserve_space(path, need) < 0)
        rc = bpt_err(err, errlen, "%s: cannot reserve %.0f bytes for it: %s", path, need, strerror(errno));
    if (collective ? bpt_agree(rc, err, errlen) : rc) {
        bpt_h5_close_written(f, path, collective, 0, NULL, 0);
        if (lead) unlink(path);
        return -1;
    }
    return f;
}

int bpt_h5_close_written(hid_t file, const char *path, int collective, int ok, char *why, size_t n) {
    char msg[256] = "";
    int lead = lead_rank(collective), bad = !ok;
    if (bad) snprintf(msg, sizeof msg, "%s", bpt_write_failure(path));
    if (collective) bad = bpt_agree(bad, msg, sizeof msg) != 0;
    if (!bad && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        bad = 1;
        snprintf(msg, sizeof msg, "%s", bpt_write_failure(path));
    }
    if (collective) bad = bpt_agree(bad, msg, sizeof msg) != 0;
    if (bad) {
        /* what is written is lost anyway: free its space for the close's metadata */
        int cut = lead ? truncate(path, 0) : 0;   /* if it cannot be cut, the close may still manage */
        (void)cut;
        if (collective) bpt_agree(0, NULL, 0);   /* cut before any rank closes */
    }
    if (H5Fclose(file) < 0) {
        if (!bad) snprintf(msg, sizeof msg, "%s", bpt_write_failure(path));
        bad = 1;
        bpt_mpi_finalize_unsafe();
    }
    if (!bad && lead) bpt_release_space(path);
    if (collective) bad = bpt_agree(bad, msg, sizeof msg) != 0;
    if (bad && why && n) snprintf(why, n, "%s", msg);
    return bad ? -1 : 0;
}
