/* safetensors.c — the safetensors container (include/bpt/safetensors.h): the header
 * parsed and validated from bytes, files opened and their tensors read as fp32, and
 * the header of a file to write. Which tensors a model needs is not its business
 * (src/ckpt_import.c, src/ckpt_export.c).
 */
#include "bpt/safetensors.h"
#include "bpt/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

static const char *const dtype_names[] = { "F32", "F16", "BF16", "F64" };
static const int dtype_sizes[] = { 4, 2, 2, 8 };

const char *bpt_safetensors_dtype_name(bpt_st_dtype d) { return dtype_names[d]; }
int bpt_safetensors_dtype_size(bpt_st_dtype d) { return dtype_sizes[d]; }

float bpt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* subnormals, infinities and NaNs included */
float bpt_f16_to_f32(uint16_t h) {
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

/* The bytes of a tensor: numel * size, 0 when a dim is 0. -1 when over 64 bits. */
static int shape_bytes(int ndim, const int64_t *shape, int size, uint64_t *out) {
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) { *out = 0; return 0; }
    uint64_t n = (uint64_t)size;
    for (int d = 0; d < ndim; d++) {
        uint64_t x = (uint64_t)shape[d];
        if (n > UINT64_MAX / x) return -1;
        n *= x;
    }
    *out = n;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* the header                                                                */

int bpt_safetensors_header_size(const void *buf, size_t len, uint64_t file_size, uint64_t *size,
                                char *err, size_t errlen) {
    if (file_size < 8 || len < 8) return bpt_err(err, errlen, "truncated: shorter than the 8-byte header length");
    const unsigned char *lb = buf;
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--) hlen = (hlen << 8) | lb[b];
    if (hlen > BPT_SAFETENSORS_MAX_HEADER)
        return bpt_err(err, errlen, "not a safetensors file (header length %llu is over 100 MiB)",
                       (unsigned long long)hlen);
    if (hlen > file_size - 8)
        return bpt_err(err, errlen, "truncated: the header needs %llu bytes, the file has %llu after the length",
                       (unsigned long long)hlen, (unsigned long long)(file_size - 8));
    *size = 8 + hlen;
    return 0;
}

/* One header entry into t; data_bytes is the size of the data region. */
static int parse_entry(const char *name, json_t *v, uint64_t data_start, uint64_t data_bytes,
                       bpt_safetensors_tensor *t, char *err, size_t errlen) {
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return bpt_err(err, errlen, "malformed header: entry '%s' needs dtype, shape and data_offsets [begin, end]",
                       name);
    const char *dts = json_string_value(dt);
    int dtype = -1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(dts, dtype_names[k])) dtype = k;
    if (dtype < 0) return bpt_err(err, errlen, "tensor %s has dtype %s (supported: F32, BF16, F16, F64)", name, dts);
    if (json_array_size(shape) > BPT_SAFETENSORS_MAX_DIMS)
        return bpt_err(err, errlen, "malformed header: tensor %s has rank %zu", name, json_array_size(shape));
    t->dtype = (bpt_st_dtype)dtype;
    t->ndim = (int)json_array_size(shape);
    for (int d = 0; d < t->ndim; d++) {
        json_t *x = json_array_get(shape, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return bpt_err(err, errlen, "malformed header: tensor %s has a bad shape", name);
        t->shape[d] = json_integer_value(x);
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return bpt_err(err, errlen, "malformed header: tensor %s has bad data_offsets", name);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e), want;
    if (shape_bytes(t->ndim, t->shape, dtype_sizes[dtype], &want) != 0)
        return bpt_err(err, errlen, "malformed header: tensor %s has a shape of more than 2^64 bytes", name);
    if (end - begin != want)
        return bpt_err(err, errlen, "malformed header: tensor %s has data_offsets [%llu, %llu] (%llu bytes), "
                       "its shape and dtype need %llu bytes", name, (unsigned long long)begin,
                       (unsigned long long)end, (unsigned long long)(end - begin), (unsigned long long)want);
    if (end > data_bytes)
        return bpt_err(err, errlen, "truncated: tensor %s ends at data byte %llu, the file holds %llu bytes of data",
                       name, (unsigned long long)end, (unsigned long long)data_bytes);
    t->offset = data_start + begin;
    t->nbytes = want;
    return 0;
}

int bpt_safetensors_parse_header(const void *buf, size_t len, uint64_t file_size,
                                 bpt_safetensors_header *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    uint64_t size;
    if (bpt_safetensors_header_size(buf, len, file_size, &size, err, errlen) != 0) return -1;
    if (size > len)
        return bpt_err(err, errlen, "truncated: the header needs %llu bytes, %zu were given after the length",
                       (unsigned long long)(size - 8), len - 8);
    json_error_t jerr;
    json_t *h = json_loadb((const char *)buf + 8, (size_t)(size - 8), JSON_REJECT_DUPLICATES, &jerr);
    if (!h) return bpt_err(err, errlen, "malformed header: %s (header byte %d)", jerr.text, jerr.position);
    if (!json_is_object(h)) {
        json_decref(h);
        return bpt_err(err, errlen, "malformed header: not a JSON object");
    }
    out->data_start = size;
    out->t = bpt_xcalloc(json_object_size(h) + 1, sizeof *out->t);
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(h, name, v) {
        if (!strcmp(name, "__metadata__")) continue;
        bpt_safetensors_tensor *t = &out->t[out->n];
        if (parse_entry(name, v, size, file_size - size, t, err, errlen) != 0) { rc = -1; break; }
        t->name = bpt_xstrdup(name);
        out->n++;
    }
    json_decref(h);
    if (rc != 0) bpt_safetensors_header_free(out);
    return rc;
}

void bpt_safetensors_header_free(bpt_safetensors_header *h) {
    for (int i = 0; i < h->n; i++) free(h->t[i].name);
    free(h->t);
    memset(h, 0, sizeof *h);
}

int bpt_safetensors_find(const bpt_safetensors_header *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->t[i].name, name)) return i;
    return -1;
}

unsigned char *bpt_safetensors_header_write(bpt_safetensors_tensor *t, int n, size_t *len) {
    json_t *h = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(h, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        BPT_CHECK(shape_bytes(t[i].ndim, t[i].shape, dtype_sizes[t[i].dtype], &t[i].nbytes) == 0,
                  "tensor %s is over 2^64 bytes", t[i].name);
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + t[i].nbytes)));
        json_object_set_new(e, "dtype", json_string(dtype_names[t[i].dtype]));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(h, t[i].name, e);
        t[i].offset = off;
        off += t[i].nbytes;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    BPT_CHECK(text, "cannot format a safetensors header");
    size_t tlen = strlen(text), padded = (tlen + 7) / 8 * 8;
    unsigned char *out = bpt_xmalloc(8 + padded);
    for (int b = 0; b < 8; b++) out[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    memcpy(out + 8, text, tlen);
    memset(out + 8 + tlen, ' ', padded - tlen);
    free(text);
    for (int i = 0; i < n; i++) t[i].offset += 8 + padded;
    *len = 8 + padded;
    return out;
}

/* ------------------------------------------------------------------------- */
/* files                                                                     */

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

int bpt_safetensors_open(const char *path, bpt_safetensors_file *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0) return bpt_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    f->path = bpt_xstrdup(path);
    struct stat st;
    unsigned char lb[8];
    char why[4096];
    uint64_t size = 0, hsize = 0;
    int rc = 0;
    if (fstat(f->fd, &st) != 0) {
        rc = bpt_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    } else {
        size = (uint64_t)st.st_size;
        int got = size >= 8 && read_exact(f->fd, lb, 8, 0) == 0;
        if (bpt_safetensors_header_size(lb, got ? 8 : 0, size, &hsize, why, sizeof why) != 0)
            rc = bpt_err(err, errlen, "%s: %s", path, why);
    }
    unsigned char *buf = rc == 0 ? bpt_xmalloc((size_t)hsize) : NULL;
    if (rc == 0 && read_exact(f->fd, buf, hsize, 0) != 0) rc = bpt_err(err, errlen, "%s: cannot read the header", path);
    if (rc == 0 && bpt_safetensors_parse_header(buf, (size_t)hsize, size, &f->h, why, sizeof why) != 0)
        rc = bpt_err(err, errlen, "%s: %s", path, why);
    free(buf);
    if (rc != 0) bpt_safetensors_close(f);
    return rc;
}

int bpt_safetensors_read_f32(const bpt_safetensors_file *f, const bpt_safetensors_tensor *t, float *out,
                             char *err, size_t errlen) {
    size_t n = (size_t)(t->nbytes / (uint64_t)dtype_sizes[t->dtype]);
    if (t->dtype == BPT_ST_F32) {
        if (read_exact(f->fd, out, t->nbytes, t->offset) != 0)
            return bpt_err(err, errlen, "%s: truncated: cannot read tensor %s", f->path, t->name);
        return 0;
    }
    void *raw = bpt_xmalloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (read_exact(f->fd, raw, t->nbytes, t->offset) != 0) {
        free(raw);
        return bpt_err(err, errlen, "%s: truncated: cannot read tensor %s", f->path, t->name);
    }
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == BPT_ST_F64) {
            double d;
            memcpy(&d, (char *)raw + 8 * i, 8);
            out[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, (char *)raw + 2 * i, 2);
            out[i] = t->dtype == BPT_ST_BF16 ? bpt_bf16_to_f32(h) : bpt_f16_to_f32(h);
        }
    }
    free(raw);
    return 0;
}

void bpt_safetensors_close(bpt_safetensors_file *f) {
    if (f->fd >= 0 && f->path) close(f->fd);
    free(f->path);
    bpt_safetensors_header_free(&f->h);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}
