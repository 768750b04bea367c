/* test_safetensors.c — the safetensors container (include/bpt/safetensors.h): a written
 * header parsed back, every malformed header (shapes whose byte size overflows 64 bits
 * or exceeds the file included) rejected with one line, and tensors read from a file
 * as fp32 from F32, BF16 and F16.
 *
 * One TAP line per check (tests/unit/unit_test.h); files go to a scratch directory
 * (tests/unit/scratch.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpt/safetensors.h"
#include "bpt/util.h"
#include "scratch.h"

static char err[4096];

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* A file image: the 8-byte length, the JSON header json, then data_len zero bytes. */
static unsigned char *image(const char *json, size_t data_len, size_t *len) {
    size_t n = strlen(json);
    unsigned char *p = calloc(8 + n + data_len + 1, 1);
    for (int b = 0; b < 8; b++) p[b] = (unsigned char)((uint64_t)n >> (8 * b));
    memcpy(p + 8, json, n);
    *len = 8 + n + data_len;
    return p;
}

/* Parse json followed by data_len bytes: the return code; err holds the message. */
static int parse(const char *json, size_t data_len, bpt_safetensors_header *h) {
    size_t len;
    unsigned char *p = image(json, data_len, &len);
    err[0] = 0;
    int rc = bpt_safetensors_parse_header(p, len, len, h, err, sizeof err);
    free(p);
    return rc;
}

/* json must be rejected with a message containing want. */
static void rejects(const char *what, const char *json, size_t data_len, const char *want) {
    bpt_safetensors_header h;
    int rc = parse(json, data_len, &h);
    CHECK(rc == -1 && h.n == 0 && h.t == NULL && contains(err, want) && !strchr(err, '\n'),
          "%s: rejected (%s)", what, err);
    bpt_safetensors_header_free(&h);
}

static void test_round_trip(void) {
    bpt_safetensors_tensor t[3] = {
        { .name = "a.weight", .dtype = BPT_ST_F32, .ndim = 2, .shape = { 2, 3 } },
        { .name = "b", .dtype = BPT_ST_BF16, .ndim = 1, .shape = { 5 } },
        { .name = "empty", .dtype = BPT_ST_F16, .ndim = 2, .shape = { 0, 7 } },
    };
    size_t hlen;
    unsigned char *hdr = bpt_safetensors_header_write(t, 3, &hlen);
    CHECK(hlen % 8 == 0 && hdr[8] == '{', "header written: %zu bytes, a multiple of 8", hlen);
    CHECK(t[0].offset == hlen && t[0].nbytes == 24 && t[1].offset == hlen + 24 && t[1].nbytes == 10 &&
          t[2].nbytes == 0, "offsets and sizes filled in");
    size_t len = hlen + 34;
    unsigned char *file = calloc(len, 1);
    memcpy(file, hdr, hlen);
    bpt_safetensors_header h;
    int rc = bpt_safetensors_parse_header(file, len, len, &h, err, sizeof err);
    CHECK(rc == 0 && h.n == 3 && h.data_start == hlen, "the written header parses (%s)", rc ? err : "3 tensors");
    if (rc == 0) {
        int k = bpt_safetensors_find(&h, "b");
        CHECK(k == 1 && h.t[1].dtype == BPT_ST_BF16 && h.t[1].ndim == 1 && h.t[1].shape[0] == 5 &&
              h.t[1].offset == t[1].offset && h.t[1].nbytes == 10, "tensor b: BF16 [5] where it was written");
        CHECK(bpt_safetensors_find(&h, "c") == -1, "an absent name is not found");
    }
    bpt_safetensors_header_free(&h);
    /* the header alone is enough to parse, the rest of the file need not be in memory */
    rc = bpt_safetensors_parse_header(file, hlen, len, &h, err, sizeof err);
    CHECK(rc == 0 && h.n == 3, "the header bytes alone parse against the file size");
    bpt_safetensors_header_free(&h);
    rc = bpt_safetensors_parse_header(file, hlen, hlen + 33, &h, err, sizeof err);
    CHECK(rc == -1 && contains(err, "truncated: tensor b ends at data byte 34"), "one byte short: %s", err);
    bpt_safetensors_header_free(&h);
    rc = bpt_safetensors_parse_header(file, hlen - 1, len, &h, err, sizeof err);
    CHECK(rc == -1 && contains(err, "truncated"), "a buffer shorter than the header: %s", err);
    bpt_safetensors_header_free(&h);
    free(file);
    free(hdr);
}

static void test_malformed(void) {
    bpt_safetensors_header h;
    CHECK(parse("{\"__metadata__\": {\"format\": \"pt\"}}", 0, &h) == 0 && h.n == 0, "metadata only: no tensors");
    bpt_safetensors_header_free(&h);
    CHECK(parse("{\"x\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 0], \"data_offsets\": [0, 0]}}", 0,
                &h) == 0 && h.n == 1 && h.t[0].nbytes == 0, "a huge dim times 0 is 0 bytes");
    bpt_safetensors_header_free(&h);

    /* overflow: 2^62 * 4 elements of 4 bytes wrap to 0 bytes, which data_offsets [0, 0] matched */
    rejects("shape [2^62, 4] F32", "{\"x\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], "
            "\"data_offsets\": [0, 0]}}", 0, "more than 2^64 bytes");
    rejects("shape [2^32, 2^32] F32", "{\"x\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], "
            "\"data_offsets\": [0, 0]}}", 0, "more than 2^64 bytes");
    rejects("shape [2^31, 2^31, 2^2] BF16", "{\"x\": {\"dtype\": \"BF16\", \"shape\": [2147483648, 2147483648, 4], "
            "\"data_offsets\": [0, 0]}}", 16, "more than 2^64 bytes");
    rejects("shape [2^61] F64", "{\"x\": {\"dtype\": \"F64\", \"shape\": [2305843009213693952], "
            "\"data_offsets\": [0, 0]}}", 0, "more than 2^64 bytes");
    /* within 64 bits but beyond the file */
    rejects("shape [2^40] F32 in a small file", "{\"x\": {\"dtype\": \"F32\", \"shape\": [1099511627776], "
            "\"data_offsets\": [0, 4398046511104]}}", 64, "truncated: tensor x ends at data byte 4398046511104");
    rejects("offsets beyond the file", "{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
            16, "truncated");
    rejects("offsets not the shape's size", "{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 12]}}",
            16, "its shape and dtype need 16 bytes");
    rejects("end before begin", "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 16,
            "bad data_offsets");
    rejects("a negative dim", "{\"x\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}", 0,
            "bad shape");
    rejects("rank 9", "{\"x\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
            "rank 9");
    rejects("dtype I8", "{\"x\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "dtype I8");
    rejects("no data_offsets", "{\"x\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "needs dtype, shape and data_offsets");
    rejects("a duplicate name", "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
            "\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "malformed header");
    rejects("not JSON", "{\"x\": ", 0, "malformed header");
    rejects("not an object", "[1, 2]", 0, "not a JSON object");

    unsigned char buf[16] = { 0 };
    buf[0] = 100;                                  /* a 100-byte header in a 16-byte file */
    CHECK(bpt_safetensors_parse_header(buf, 16, 16, &h, err, sizeof err) == -1 &&
          contains(err, "the header needs 100 bytes, the file has 8"), "header longer than the file: %s", err);
    CHECK(bpt_safetensors_parse_header(buf, 5, 5, &h, err, sizeof err) == -1 && contains(err, "8-byte"),
          "shorter than the length: %s", err);
    memset(buf, 0xff, 8);
    CHECK(bpt_safetensors_parse_header(buf, 16, 16, &h, err, sizeof err) == -1 && contains(err, "over 100 MiB"),
          "length over 100 MiB: %s", err);
}

static void test_read(void) {
    CHECK(bpt_bf16_to_f32(0x3f80) == 1.0f && bpt_bf16_to_f32(0xc040) == -3.0f, "bf16 1 and -3");
    CHECK(bpt_f16_to_f32(0x3c00) == 1.0f && bpt_f16_to_f32(0xc500) == -5.0f &&
          bpt_f16_to_f32(0x0001) == ldexpf(1.0f, -24) && isinf(bpt_f16_to_f32(0x7c00)) &&
          isnan(bpt_f16_to_f32(0x7e00)), "f16 1, -5, the smallest subnormal, inf, nan");

    bpt_safetensors_tensor t[3] = {
        { .name = "f32", .dtype = BPT_ST_F32, .ndim = 1, .shape = { 3 } },
        { .name = "bf16", .dtype = BPT_ST_BF16, .ndim = 1, .shape = { 2 } },
        { .name = "f16", .dtype = BPT_ST_F16, .ndim = 2, .shape = { 1, 2 } },
    };
    size_t hlen;
    unsigned char *hdr = bpt_safetensors_header_write(t, 3, &hlen);
    const float f32[3] = { 0.5f, -2.0f, 1e-3f };
    const uint16_t bf16[2] = { 0x3f80, 0xc040 }, f16[2] = { 0x3c00, 0x0001 };
    unsigned char *file = malloc(hlen + 12 + 4 + 4);
    memcpy(file, hdr, hlen);
    memcpy(file + hlen, f32, 12);
    memcpy(file + hlen + 12, bf16, 4);
    memcpy(file + hlen + 16, f16, 4);
    write_file(tmp("model.safetensors"), file, hlen + 20);
    write_file(tmp("short.safetensors"), file, hlen + 10);
    free(file);
    free(hdr);

    bpt_safetensors_file f;
    int rc = bpt_safetensors_open(tmp("model.safetensors"), &f, err, sizeof err);
    CHECK(rc == 0 && f.h.n == 3, "open a file of F32, BF16, F16 (%s)", rc ? err : "3 tensors");
    if (rc == 0) {
        float x[3] = { 0 };
        CHECK(bpt_safetensors_read_f32(&f, &f.h.t[0], x, err, sizeof err) == 0 && x[0] == 0.5f && x[1] == -2.0f &&
              x[2] == 1e-3f, "F32 read back");
        CHECK(bpt_safetensors_read_f32(&f, &f.h.t[1], x, err, sizeof err) == 0 && x[0] == 1.0f && x[1] == -3.0f,
              "BF16 read as fp32");
        CHECK(bpt_safetensors_read_f32(&f, &f.h.t[2], x, err, sizeof err) == 0 && x[0] == 1.0f &&
              x[1] == ldexpf(1.0f, -24), "F16 read as fp32");
        bpt_safetensors_close(&f);
    }
    rc = bpt_safetensors_open(tmp("short.safetensors"), &f, err, sizeof err);
    CHECK(rc == -1 && contains(err, "short.safetensors: truncated: tensor f32 ends at data byte 12"),
          "a truncated file names itself: %s", err);
    rc = bpt_safetensors_open(tmp("none.safetensors"), &f, err, sizeof err);
    CHECK(rc == -1 && contains(err, "none.safetensors: cannot open"), "a missing file: %s", err);
}

int main(void) {
    scratch_begin("safetensors");
    test_round_trip();
    test_malformed();
    test_read();
    scratch_end();
    return tap_done();
}
