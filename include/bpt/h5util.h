/* h5util.h — scalar HDF5 attributes, shared by checkpoints, token files and tools. */
#ifndef BPT_H5UTIL_H
#define BPT_H5UTIL_H

#include <stddef.h>
#include <hdf5.h>

/* Write a scalar attribute: a variable-length UTF-8 string, or a number stored as
 * ftype from memory type mtype. 0 or -1. */
int bpt_h5_attr_str(hid_t obj, const char *name, const char *value);
int bpt_h5_attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v);
/* Read a scalar string (variable- or fixed-length) into buf, or a number as mtype.
 * -1 when absent or of the wrong kind. */
int bpt_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len);
int bpt_h5_read_attr_num(hid_t obj, const char *name, hid_t mtype, void *v);

#endif
