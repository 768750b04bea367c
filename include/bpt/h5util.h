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

/* Create (truncate) path for writing a file of at most need bytes, so that a full disk
 * is found before anything is written: the free space is checked first, then need bytes
 * are reserved for the file (bpt_reserve_space), so no write half-way through can meet
 * a full disk. The file id, or -1 with err: "<path>: No space left on device (needs up
 * to X, Y are free)", "<path>: cannot create the file: ...". collective: through MPI-IO
 * on MPI_COMM_WORLD; every rank calls it, rank 0 checks and reserves, all return the
 * same. Close it with bpt_h5_close_written. A test hook (testhooks.h) skips the check
 * and the reservation, to exercise a disk that fills up during the writes. */
hid_t bpt_h5_create_written(const char *path, double need, int collective, char *err, size_t errlen);

/* Close a file opened for writing at path so that no failure can crash the process
 * later, and say whether it is complete. ok: every write into it succeeded. The file is
 * flushed first; when a write or the flush failed, it is cut to zero bytes before
 * H5Fclose, so that the close's own metadata writes find room on a full disk and HDF5
 * lets go of the file (a failed H5Fclose leaves HDF5 holding a half-closed file that its
 * exit hooks crash on; should the close fail even so, bpt_mpi_finalize_unsafe keeps
 * them from running). 0 when the file is complete, else -1 with why (n bytes) saying
 * what stopped it (bpt_write_failure: "No space left on device", ...). collective: the
 * file was opened through MPI-IO on MPI_COMM_WORLD and every rank calls this, each with
 * its own ok; all return the same, with the lowest failing rank's why. */
int bpt_h5_close_written(hid_t file, const char *path, int collective, int ok, char *why, size_t n);

#endif
