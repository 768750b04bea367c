/* h5util.h — scalar HDF5 attributes, and opening a file or a 1-D integer dataset with
 * a one-line error that says what is wrong; shared by checkpoints, token files, tools. */
#ifndef BPT_H5UTIL_H
#define BPT_H5UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <hdf5.h>

/* Write a scalar attribute: a variable-length UTF-8 string, or a number stored as
 * ftype from memory type mtype. 0 or -1. */
int bpt_h5_attr_str(hid_t obj, const char *name, const char *value);
int bpt_h5_attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v);
/* Read a scalar string (variable- or fixed-length) into buf, or a number as mtype.
 * -1 when absent or of the wrong kind. */
int bpt_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len);
int bpt_h5_read_attr_num(hid_t obj, const char *name, hid_t mtype, void *v);

/* Open path read-only (H5Eset_auto2 off). The file id, or -1 with one of, in err:
 *   "<path>: no such file"              "<path>: is a directory, expected an HDF5 file"
 *   "<path>: cannot read: <errno text>" "<path>: is empty, expected an HDF5 file"
 *   "<path>: not an HDF5 file (no HDF5 signature)"
 *   "<path>: truncated HDF5 file (N bytes; its superblock says M)"
 *   "<path>: cannot lock the HDF5 file (...HDF5_USE_FILE_LOCKING=FALSE)"
 *   "<path>: corrupt HDF5 file (<what the library found>)" */
hid_t bpt_h5_open_read(const char *path, char *err, size_t errlen);

/* Open dataset /name of f (path names the file in messages) and check that it holds
 * integers of at most 8 bytes (want describes them, e.g. "uint16 or uint32 token ids"),
 * is 1-D and can be decoded by this HDF5 (its filters are available). The dataset id
 * and its length in *n, or -1 with "<path>: no /name dataset", "<path>: /name is a
 * group, not a dataset", "<path>: /name holds float32, expected <want>", "<path>: /name
 * has rank 2 (2 x 5), expected 1-D", "<path>: /name is compressed with HDF5 filter ..."
 * in err. */
hid_t bpt_h5_open_int_1d(hid_t f, const char *path, const char *name, const char *want,
                         int64_t *n, char *err, size_t errlen);

#endif
