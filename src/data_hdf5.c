/* data_hdf5.c — the hdf5 source (src/data_internal.h): /tokens (1-D integer) and
 * optional /loss_mask in a prepared file. The file stays open; each range is read
 * with hyperslab selections, so the stream is never loaded whole. Every token id is
 * checked at open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "data_internal.h"
#include "bpt/h5util.h"

typedef struct {
    data_source base;
    uint64_t n;                             /* stream length in tokens */
    hid_t file, dtok, dmask, stok, smask;   /* datasets and their file dataspaces */
} h5_source;

static uint64_t h5_length(const data_source *s) { return ((const h5_source *)s)->n; }

static void h5_close(data_source *s) {
    h5_source *l = (h5_source *)s;
    if (l->smask >= 0) H5Sclose(l->smask);
    if (l->dmask >= 0) H5Dclose(l->dmask);
    if (l->stok >= 0) H5Sclose(l->stok);
    if (l->dtok >= 0) H5Dclose(l->dtok);
    if (l->file >= 0) H5Fclose(l->file);
    free(l);
}

/* Read stream[start, start+count) (no wrap) from the open HDF5 datasets. */
static int h5_read(data_source *s, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask,
                   char *err, size_t errlen) {
    h5_source *l = (h5_source *)s;
    hsize_t off = start, cnt = count;
    hid_t mem = H5Screate_simple(1, &cnt, NULL);
    if (mem < 0) return -1;
    int rc = -1;
    if (H5Sselect_hyperslab(l->stok, H5S_SELECT_SET, &off, NULL, &cnt, NULL) >= 0 &&
        H5Dread(l->dtok, H5T_NATIVE_UINT32, mem, l->stok, H5P_DEFAULT, tok) >= 0) {
        rc = 0;
        if (mask && l->dmask >= 0) {
            if (H5Sselect_hyperslab(l->smask, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
                H5Dread(l->dmask, H5T_NATIVE_UINT8, mem, l->smask, H5P_DEFAULT, mask) < 0)
                rc = -1;
        } else if (mask) {
            memset(mask, 1, count);
        }
    }
    H5Sclose(mem);
    return rc;
}

static int h5_open(data_source *s, const data_open_args *a, char *err, size_t errlen) {
    h5_source *l = (h5_source *)s;
    const char *path = l->base.path;
    int vocab_size = a->vocab_size;
    l->file = l->dtok = l->dmask = l->stok = l->smask = H5I_INVALID_HID;
    l->file = bpt_h5_open_read(path, err, errlen);   /* our own one-line errors */
    if (l->file < 0) return -1;
    int64_t n = 0;
    l->dtok = bpt_h5_open_int_1d(l->file, path, "tokens", "integer token ids (uint16, uint32, int32 or int64)",
                                 &n, err, errlen);
    if (l->dtok < 0) return -1;
    l->stok = H5Dget_space(l->dtok);
    if (n < 2)
        return bpt_err(err, errlen, "%s: /tokens has %lld token%s; at least 2 are needed", path,
                       (long long)n, n == 1 ? "" : "s");
    l->n = (uint64_t)n;

    if (H5Lexists(l->file, "loss_mask", H5P_DEFAULT) > 0) {
        int64_t nm = 0;
        l->dmask = bpt_h5_open_int_1d(l->file, path, "loss_mask", "integers (uint8: 1 = counted in the loss)",
                                      &nm, err, errlen);
        if (l->dmask < 0) return -1;
        l->smask = H5Dget_space(l->dmask);
        if (nm != n)
            return bpt_err(err, errlen, "%s: /loss_mask has %lld elements, /tokens %lld; they "
                           "must be of the same length", path, (long long)nm, (long long)n);
    }

    /* Every token id must be in [0, vocab_size). Read as int64 so that negative ids
     * in a signed dataset are seen as such, in blocks of 1M tokens. */
    const uint64_t blk = 1u << 20;
    int64_t *buf = bpt_xmalloc(blk * sizeof *buf);
    int rc = 0;
    for (uint64_t s = 0; s < l->n && rc == 0; s += blk) {
        hsize_t off = s, cnt = l->n - s < blk ? l->n - s : blk;
        hid_t mem = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(l->stok, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dread(l->dtok, H5T_NATIVE_INT64, mem, l->stok, H5P_DEFAULT, buf) < 0) {
            rc = bpt_err(err, errlen, "%s: cannot read /tokens at offset %llu (a truncated or "
                         "corrupt file?)", path, (unsigned long long)s);
        } else {
            for (hsize_t i = 0; i < cnt; i++) {
                if (buf[i] < 0 || buf[i] >= vocab_size) {
                    rc = bpt_err(err, errlen, "%s: token id %lld at offset %llu is outside the "
                                 "vocabulary [0, %d) (llama.vocab_size)", path, (long long)buf[i],
                                 (unsigned long long)(s + i), vocab_size);
                    break;
                }
            }
        }
        H5Sclose(mem);
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------- */

const data_source_ops data_hdf5_ops = { sizeof(h5_source), h5_open, h5_read, h5_length, h5_close };
