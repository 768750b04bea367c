/* h5util.c — scalar HDF5 attributes (see include/bpt/h5util.h). */
#include "bpt/h5util.h"
#include "bpt/util.h"

#include <stdio.h>
#include <stdlib.h>

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
