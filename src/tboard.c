/* tboard.c — TensorBoard event files (include/bpt/tboard.h): TFRecord framing, CRC-32C
 * and the few protocol-buffer fields of Event and Summary that scalars and text need. */
#include "bpt/tboard.h"
#include "bpt/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------------- CRC-32C -- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;   /* reflected Castagnoli */
        crc_table[i] = c;
    }
}

uint32_t bpt_crc32c(const void *data, size_t n) {
    if (!crc_table[1]) crc_init();
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t bpt_crc32c_masked(const void *data, size_t n) {
    uint32_t c = bpt_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ------------------------------------------------------ protocol buffers -- */

typedef struct pbuf { unsigned char *p; size_t n, cap; } pbuf;

static void pb_bytes(pbuf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = bpt_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void pb_varint(pbuf *b, uint64_t v) {
    unsigned char t[10];
    int k = 0;
    do { t[k++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0)); v >>= 7; } while (v);
    pb_bytes(b, t, (size_t)k);
}
enum { WIRE_VARINT = 0, WIRE_64 = 1, WIRE_LEN = 2, WIRE_32 = 5 };
static void pb_key(pbuf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_len(pbuf *b, int field, const void *x, size_t n) {
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    pb_bytes(b, x, n);
}
static void pb_str(pbuf *b, int field, const char *s) { pb_len(b, field, s, strlen(s)); }
static void pb_double(pbuf *b, int field, double v) {   /* little-endian hosts (x86-64, aarch64) */
    pb_key(b, field, WIRE_64);
    pb_bytes(b, &v, 8);
}
static void pb_float(pbuf *b, int field, float v) {
    pb_key(b, field, WIRE_32);
    pb_bytes(b, &v, 4);
}
static void pb_sub(pbuf *b, int field, pbuf *sub) {   /* a nested message; sub is emptied */
    pb_len(b, field, sub->p, sub->n);
    sub->n = 0;
}

/* ----------------------------------------------------------------- files -- */

struct bpt_tboard {
    FILE *f;
    char path[4096];
    pbuf ev, sum, val;   /* the event being built, its summary, the value being built */
    int64_t step;
    double wall;
};

/* One TFRecord around data. */
static void record(bpt_tboard *t, const pbuf *data) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)data->n >> (8 * i));
    uint32_t c1 = bpt_crc32c_masked(len, 8), c2 = bpt_crc32c_masked(data->p, data->n);
    fwrite(len, 1, 8, t->f);
    fwrite(&c1, 4, 1, t->f);
    fwrite(data->p, 1, data->n, t->f);
    fwrite(&c2, 4, 1, t->f);
}

bpt_tboard *bpt_tboard_open(const char *dir, char *err, size_t errlen) {
    if (bpt_mkdirs(dir) != 0) {
        bpt_err(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return NULL;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, "/")] = 0;
    bpt_tboard *t = bpt_xcalloc(1, sizeof *t);
    long long now = (long long)time(NULL);
    int fd = -1;
    for (int k = 0; k < 1000 && fd < 0; k++) {
        if (k == 0) snprintf(t->path, sizeof t->path, "%s/events.out.tfevents.%lld.%s", dir, now, host);
        else snprintf(t->path, sizeof t->path, "%s/events.out.tfevents.%lld.%s.%d", dir, now, host, k);
        fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0 || !(t->f = fdopen(fd, "wb"))) {
        bpt_err(err, errlen, "%s: cannot create: %s", t->path, strerror(errno));
        if (fd >= 0) close(fd);
        free(t);
        return NULL;
    }
    pbuf ev = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pb_double(&ev, 1, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    pb_str(&ev, 3, "brain.Event:2");
    record(t, &ev);
    free(ev.p);
    return t;
}

const char *bpt_tboard_path(const bpt_tboard *t) { return t->path; }

void bpt_tboard_begin(bpt_tboard *t, int64_t step, double wall_time) {
    t->step = step;
    t->wall = wall_time;
    t->sum.n = 0;
}

void bpt_tboard_scalar(bpt_tboard *t, const char *tag, double value) {
    pb_str(&t->val, 1, tag);
    pb_float(&t->val, 2, (float)value);
    pb_sub(&t->sum, 1, &t->val);
}

void bpt_tboard_end(bpt_tboard *t) {
    t->ev.n = 0;
    pb_double(&t->ev, 1, t->wall);
    pb_key(&t->ev, 2, WIRE_VARINT);
    pb_varint(&t->ev, (uint64_t)t->step);
    pb_sub(&t->ev, 5, &t->sum);
    record(t, &t->ev);
}

void bpt_tboard_text(bpt_tboard *t, int64_t step, double wall_time, const char *tag, const char *text) {
    pbuf plugin = {0}, meta = {0}, shape = {0}, dim = {0}, tensor = {0};
    pb_str(&plugin, 1, "text");
    pb_sub(&meta, 1, &plugin);
    pb_key(&dim, 1, WIRE_VARINT);   /* a 1-element vector, as TensorBoard's own text summaries */
    pb_varint(&dim, 1);
    pb_sub(&shape, 2, &dim);
    pb_key(&tensor, 1, WIRE_VARINT);
    pb_varint(&tensor, 7);          /* DT_STRING */
    pb_sub(&tensor, 2, &shape);
    pb_len(&tensor, 8, text, strlen(text));
    bpt_tboard_begin(t, step, wall_time);
    pb_str(&t->val, 1, tag);
    pb_sub(&t->val, 8, &tensor);
    pb_sub(&t->val, 9, &meta);
    pb_sub(&t->sum, 1, &t->val);
    bpt_tboard_end(t);
    free(plugin.p); free(meta.p); free(shape.p); free(dim.p); free(tensor.p);
}

int bpt_tboard_flush(bpt_tboard *t, char *err, size_t errlen) {
    if (fflush(t->f) != 0 || ferror(t->f))
        return bpt_err(err, errlen, "%s: cannot write the TensorBoard events: %s", t->path, bpt_write_failure(t->path));
    return 0;
}

void bpt_tboard_close(bpt_tboard *t) {
    if (!t) return;
    fclose(t->f);
    free(t->ev.p);
    free(t->sum.p);
    free(t->val.p);
    free(t);
}
