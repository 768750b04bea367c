/* test_data.c — the data loader, the synthetic corpus and checkpoints.
 *
 * One TAP line per check (tests/unit/unit_test.h); exits 0 when everything passed, else 1.
 * Files go to a fresh directory under $TMPDIR (or /tmp), removed at the end unless
 * BPT_TEST_KEEP is set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "bpt/ckpt.h"
#include "kernels/kernels.h"
#include "bpt/data.h"
#include "bpt/model.h"
#include "bpt/util.h"
#include "scratch.h"
#include "unit_test.h"

static char err[1024];

/* Defined in data.c, not (yet) declared in data.h. */
uint64_t bpt_loader_malformed_lines(const bpt_loader *l);

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* First occurrence of needle (k bytes) in hay (n bytes), or NULL. */
static char *find_bytes(char *hay, size_t n, const char *needle, size_t k) {
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return hay + i;
    return NULL;
}

/* /tokens of n values with file type ftype (and /loss_mask when mask != NULL). */
static void write_tokens(const char *path, hid_t ftype, const int64_t *v, size_t n,
                         const uint8_t *mask) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(f, "tokens", ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (n) H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    if (mask) {
        d = H5Dcreate2(f, "loss_mask", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Fclose(f);
}

/* A dataset name of file type ftype and shape dims[0..rank) (rank 0: a scalar), holding v
 * (int64) when v != NULL, in a new HDF5 file at path, or added to the one there (add). */
static void write_dataset(const char *path, int add, const char *name, hid_t ftype, int rank,
                          const hsize_t *dims, const int64_t *v) {
    hid_t f = add ? H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT) : H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (v) H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static bpt_dataset_config hdf5_cfg(const char *path) {
    bpt_dataset_config d;
    memset(&d, 0, sizeof d);
    d.type = BPT_DATA_HDF5;
    snprintf(d.hdf5.path, sizeof d.hdf5.path, "%s", path);
    return d;
}

static bpt_dataset_config text_cfg(const char *path, const char *fields, int bos, int eos) {
    bpt_dataset_config d;
    memset(&d, 0, sizeof d);
    d.type = BPT_DATA_TEXT;
    snprintf(d.text.path, sizeof d.text.path, "%s", path);
    snprintf(d.fields, sizeof d.fields, "%s", fields);
    d.add_bos_token = bos;
    d.add_eos_token = eos;
    strcpy(d.subfield_separator, " ");
    return d;
}

/* Does batch b equal rows [row0, row0+rows) of the global batch starting at consumed
 * over stream (tok, mask) of length n? */
static int batch_matches(const bpt_batch *b, const int64_t *tok, const uint8_t *mask, uint64_t n,
                         uint64_t consumed, int row0) {
    for (int r = 0; r < b->rows; r++)
        for (int t = 0; t < b->T; t++) {
            uint64_t s = consumed + (uint64_t)(row0 + r) * b->T + t;
            size_t i = (size_t)r * b->T + t;
            float m = mask ? (float)(mask[(s + 1) % n] != 0) : 1.0f;
            if (b->inputs[i] != tok[s % n] || b->targets[i] != tok[(s + 1) % n] || b->mask[i] != m)
                return 0;
        }
    return 1;
}

/* ------------------------------------------------------------------------- */

static void test_synthetic(void) {
    const char *p1 = tmp("synth1.h5"), *p2 = tmp("synth2.h5"), *p3 = tmp("synth3.h5");
    int rc = bpt_data_write_synthetic(p1, 50000, 7, err, sizeof err);
    CHECK(rc == 0, "synthetic corpus written (%s)", rc ? err : "50000 tokens");
    bpt_data_write_synthetic(p2, 50000, 7, err, sizeof err);
    bpt_data_write_synthetic(p3, 50000, 8, err, sizeof err);

    bpt_dataset_config d = hdf5_cfg(p1);
    bpt_loader *l = bpt_loader_open(&d, "", 256, 0, 1, err, sizeof err);
    CHECK(l != NULL, "synthetic corpus opens as an hdf5 dataset (%s)", l ? "" : err);
    if (!l) return;
    CHECK(bpt_loader_stream_length(l) == 50000, "synthetic corpus has exactly ntokens tokens");

    /* read it back whole: one row of 49999 tokens */
    bpt_batch b;
    bpt_batch_alloc(&b, 1, 49999);
    bpt_loader_next(l, &b, 1, 0, err, sizeof err);
    int text = 1, newlines = 0, spaces = 0;
    for (int i = 0; i < b.T; i++) {
        int c = b.inputs[i];
        if (c == '\n') newlines++;
        else if (c == ' ') spaces++;
        else if (c < 32 || c > 126) text = 0;
    }
    CHECK(text && newlines > 50 && spaces > 5000, "synthetic corpus is printable text with "
          "paragraphs (%d newlines, %d spaces)", newlines, spaces);
    char sample[121];
    for (int i = 0; i < 120; i++) sample[i] = b.inputs[i] == '\n' ? '|' : (char)b.inputs[i];
    sample[120] = 0;
    tap_note("sample: \"%s\"", sample);
    bpt_loader_close(l);

    /* the same seed gives the same bytes, another seed other bytes */
    bpt_batch b2;
    bpt_batch_alloc(&b2, 1, 49999);
    d = hdf5_cfg(p2);
    l = bpt_loader_open(&d, "", 256, 0, 1, err, sizeof err);
    bpt_loader_next(l, &b2, 1, 0, err, sizeof err);
    bpt_loader_close(l);
    CHECK(memcmp(b.inputs, b2.inputs, 49999 * sizeof(int32_t)) == 0, "synthetic: same seed, same corpus");
    d = hdf5_cfg(p3);
    l = bpt_loader_open(&d, "", 256, 0, 1, err, sizeof err);
    bpt_loader_next(l, &b2, 1, 0, err, sizeof err);
    bpt_loader_close(l);
    CHECK(memcmp(b.inputs, b2.inputs, 49999 * sizeof(int32_t)) != 0, "synthetic: other seed, other corpus");
    bpt_batch_free(&b);
    bpt_batch_free(&b2);

    /* attributes */
    hid_t f = H5Fopen(p1, H5F_ACC_RDONLY, H5P_DEFAULT);
    int vocab = 0;
    uint64_t seed = 0;
    hid_t a = H5Aopen(f, "vocab_size", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT, &vocab);
    H5Aclose(a);
    a = H5Aopen(f, "seed", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_UINT64, &seed);
    H5Aclose(a);
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t ty = H5Dget_type(ds);
    int u16 = H5Tget_size(ty) == 2 && H5Tget_sign(ty) == H5T_SGN_NONE;
    H5Tclose(ty);
    H5Dclose(ds);
    CHECK(vocab == 256 && seed == 7 && u16 && H5Aexists(f, "tokenizer") > 0 &&
          H5Aexists(f, "source") > 0, "synthetic: uint16 /tokens, attributes vocab_size, seed, "
          "tokenizer, source");
    H5Fclose(f);
}

/* Windows and wrap-around against the direct computation. */
static void test_windows(void) {
    enum { N = 37, V = 64, B = 3, T = 5 };
    int64_t tok[N];
    uint8_t mask[N];
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 7 + 3) % V;
        mask[i] = (uint8_t)(i % 4 != 0);
    }
    const char *p32 = tmp("u32.h5"), *p16 = tmp("u16.h5"), *p64 = tmp("i64.h5"), *pm = tmp("mask.h5");
    write_tokens(p32, H5T_STD_U32LE, tok, N, NULL);
    write_tokens(p16, H5T_STD_U16LE, tok, N, NULL);
    write_tokens(p64, H5T_STD_I64LE, tok, N, NULL);
    write_tokens(pm, H5T_STD_U32LE, tok, N, mask);

    const char *paths[] = { p32, p16, p64, pm };
    const char *what[] = { "uint32", "uint16", "int64", "uint32 + /loss_mask" };
    for (int f = 0; f < 4; f++) {
        bpt_dataset_config d = hdf5_cfg(paths[f]);
        const uint8_t *m = f == 3 ? mask : NULL;
        /* slices: all rows, rows 1..2, row 2 only */
        int slices[3][2] = { { 0, 3 }, { 1, 2 }, { 2, 1 } };
        int ok = 1;
        for (int s = 0; s < 3; s++) {
            bpt_loader *l = bpt_loader_open(&d, "", V, 0, 1, err, sizeof err);
            if (!l) { ok = 0; tap_note("%s", err); break; }
            bpt_batch b;
            bpt_batch_alloc(&b, slices[s][1], T);
            for (int step = 0; step < 8; step++) {   /* 8*15 = 120 tokens: wraps 3 times */
                uint64_t c = bpt_loader_tokens_consumed(l);
                if (c != (uint64_t)step * B * T) ok = 0;
                if (bpt_loader_next(l, &b, B, slices[s][0], err, sizeof err)) { ok = 0; break; }
                if (!batch_matches(&b, tok, m, N, c, slices[s][0])) ok = 0;
            }
            bpt_batch_free(&b);
            bpt_loader_close(l);
        }
        CHECK(ok, "hdf5 %s: 8 batches of B=%d T=%d over %d tokens (wrapping), row slices "
              "[0,3) [1,3) [2,3) match the window rule", what[f], B, T, N);
    }

    /* a window longer than the stream wraps more than once */
    bpt_dataset_config d = hdf5_cfg(p16);
    bpt_loader *l = bpt_loader_open(&d, "", V, 0, 1, err, sizeof err);
    bpt_batch b;
    bpt_batch_alloc(&b, 2, 50);
    bpt_loader_set_tokens_consumed(l, 30);
    int rc = bpt_loader_next(l, &b, 2, 0, err, sizeof err);
    CHECK(rc == 0 && batch_matches(&b, tok, NULL, N, 30, 0),
          "hdf5: rows of T=50 > stream length 37 wrap correctly");
    CHECK(bpt_loader_tokens_consumed(l) == 130, "tokens_consumed advances by batch_rows*T");
    /* a slice outside the global batch is an error */
    rc = bpt_loader_next(l, &b, 1, 0, err, sizeof err);
    CHECK(rc != 0, "rows beyond batch_rows rejected (%s)", err);
    bpt_batch_free(&b);
    bpt_loader_close(l);
}

static void test_resume(void) {
    const char *p = tmp("synth1.h5");
    bpt_dataset_config d = hdf5_cfg(p);
    bpt_loader *a = bpt_loader_open(&d, "", 256, 0, 1, err, sizeof err);
    bpt_loader *b = bpt_loader_open(&d, "", 256, 0, 1, err, sizeof err);
    if (!a || !b) { CHECK(0, "resume: open (%s)", err); return; }
    bpt_batch x, y;
    bpt_batch_alloc(&x, 4, 64);
    bpt_batch_alloc(&y, 4, 64);
    for (int i = 0; i < 5; i++) bpt_loader_next(a, &x, 4, 0, err, sizeof err);
    uint64_t c = bpt_loader_tokens_consumed(a);
    bpt_loader_next(a, &x, 4, 0, err, sizeof err);
    bpt_loader_set_tokens_consumed(b, c);
    CHECK(bpt_loader_tokens_consumed(b) == c && c == 5 * 4 * 64, "tokens_consumed set and get");
    bpt_loader_next(b, &y, 4, 0, err, sizeof err);
    CHECK(memcmp(x.inputs, y.inputs, 4 * 64 * 4) == 0 && memcmp(x.targets, y.targets, 4 * 64 * 4) == 0 &&
          memcmp(x.mask, y.mask, 4 * 64 * 4) == 0, "resume from tokens_consumed gives the same next batch");
    bpt_batch_free(&x);
    bpt_batch_free(&y);
    bpt_loader_close(a);
    bpt_loader_close(b);
}

static void test_hdf5_errors(void) {
    int64_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = i % 10;
    tok[23] = 64;
    const char *p = tmp("bad.h5");
    write_tokens(p, H5T_STD_U32LE, tok, 40, NULL);
    bpt_dataset_config d = hdf5_cfg(p);
    bpt_loader *l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, p) && contains(err, "offset 23") && contains(err, "64") &&
          contains(err, "vocab_size"), "token >= vocab_size: %s", err);
    l = bpt_loader_open(&d, "", 65, 0, 1, err, sizeof err);
    CHECK(l != NULL, "the same file opens with vocab_size 65");
    bpt_loader_close(l);

    tok[23] = 3;
    tok[5] = -2;
    write_tokens(p, H5T_STD_I32LE, tok, 40, NULL);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, "offset 5") && contains(err, "-2"), "negative token id: %s", err);

    d = hdf5_cfg(tmp("nonexistent.h5"));
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, "nonexistent.h5") && contains(err, "no such file"), "missing file: %s", err);

    const char *pn = tmp("notokens.h5");
    hsize_t dim = 4;
    write_dataset(pn, 0, "ids", H5T_STD_U32LE, 1, &dim, NULL);
    d = hdf5_cfg(pn);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pn) && contains(err, "no /tokens dataset") && !contains(err, "no such file"),
          "missing /tokens: %s", err);

    /* /tokens a group, of rank 2, or a scalar: each named as such */
    const char *pg = tmp("group.h5");
    hid_t f = H5Fcreate(pg, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    d = hdf5_cfg(pg);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pg) && contains(err, "/tokens is a group, not a dataset"), "/tokens a group: %s", err);
    const char *pr = tmp("rank2.h5");
    hsize_t dims2[2] = {4, 10};
    write_dataset(pr, 0, "tokens", H5T_STD_U16LE, 2, dims2, tok);
    d = hdf5_cfg(pr);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pr) && contains(err, "/tokens has rank 2 (4 x 10), expected 1-D"),
          "/tokens of rank 2: %s", err);
    const char *pm = tmp("scalarmask.h5");
    write_tokens(pm, H5T_STD_U16LE, tok, 40, NULL);
    write_dataset(pm, 1, "loss_mask", H5T_STD_U8LE, 0, NULL, NULL);
    d = hdf5_cfg(pm);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pm) && contains(err, "/loss_mask is a scalar, expected 1-D"),
          "/loss_mask a scalar: %s", err);

    /* a truncated file: said so, with no hint about file locking */
    char pk[512];                              /* tmp() reuses its buffers: a copy */
    snprintf(pk, sizeof pk, "%s", tmp("good.h5"));
    write_tokens(pk, H5T_STD_U32LE, tok, 40, NULL);
    FILE *fp = fopen(pk, "rb");
    char whole[8192];
    size_t got = fread(whole, 1, sizeof whole, fp);
    fclose(fp);
    const char *ptr = tmp("truncated.h5");
    write_file(ptr, whole, got / 2);
    d = hdf5_cfg(ptr);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, ptr) && contains(err, "truncated HDF5 file") && !contains(err, "LOCKING"),
          "truncated file (%zu of %zu bytes): %s", got / 2, got, err);
    write_file(ptr, whole, 4);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, ptr) && contains(err, "not an HDF5 file") && !contains(err, "LOCKING"),
          "file cut inside the signature: %s", err);
    write_file(ptr, whole, 0);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, ptr) && contains(err, "is empty"), "empty file: %s", err);

    /* a file another process holds locked: the locking hint, and only then */
    const char *use_locking = getenv("HDF5_USE_FILE_LOCKING");
    if (!use_locking || (strcasecmp(use_locking, "FALSE") && strcmp(use_locking, "0"))) {
        int fd = open(pk, O_RDONLY);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            d = hdf5_cfg(pk);
            l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
            CHECK(!l && contains(err, pk) && contains(err, "cannot lock") && contains(err, "HDF5_USE_FILE_LOCKING"),
                  "a locked file: %s", err);
            bpt_loader_close(l);
        }
        if (fd >= 0) close(fd);
    }
    if (geteuid() != 0) {                       /* root reads anything */
        chmod(pk, 0);
        d = hdf5_cfg(pk);
        l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
        CHECK(!l && contains(err, pk) && contains(err, "cannot read") && !contains(err, "not an HDF5"),
              "an unreadable file: %s", err);
        chmod(pk, 0644);
    }

    const char *pe = tmp("empty.h5");
    write_tokens(pe, H5T_STD_U16LE, tok, 0, NULL);
    d = hdf5_cfg(pe);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pe) && contains(err, "0 tokens"), "empty /tokens: %s", err);
    write_tokens(pe, H5T_STD_U16LE, tok, 1, NULL);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, "1 token"), "one-token /tokens: %s", err);

    const char *pt = tmp("plain.txt");
    write_text(pt, "not hdf5 at all\n");
    d = hdf5_cfg(pt);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pt) && contains(err, "not an HDF5 file"), "text file as hdf5: %s", err);

    const char *pf = tmp("float.h5");
    write_dataset(pf, 0, "tokens", H5T_IEEE_F32LE, 1, &dim, NULL);
    d = hdf5_cfg(pf);
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, pf) && contains(err, "/tokens holds float32, expected integer"), "float /tokens: %s", err);

    d = hdf5_cfg(p);
    d.type = (bpt_data_type)7;   /* not one of the enum's (the config parser rejects names it lacks) */
    l = bpt_loader_open(&d, "", 64, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, "bad dataset type 7"), "a dataset type outside the enum: %s", err);
}

/* The whole stream of a loader (n tokens, mask), via one row of n-1 tokens. */
static int whole_stream(bpt_loader *l, int32_t *tok, float *mask) {
    uint64_t n = bpt_loader_stream_length(l);
    bpt_batch b;
    bpt_batch_alloc(&b, 1, (int)n - 1);
    int rc = bpt_loader_next(l, &b, 1, 0, err, sizeof err);
    tok[0] = b.inputs[0];
    mask[0] = -1;      /* the first token's mask is never a target's; not observable */
    for (uint64_t i = 1; i < n; i++) {
        tok[i] = b.targets[i - 1];
        mask[i] = b.mask[i - 1];
    }
    bpt_batch_free(&b);
    return rc;
}

static void test_text(void) {
    const char *pt = tmp("plain.txt");
    write_text(pt, "hello, world\n");
    bpt_dataset_config d = text_cfg(pt, "", 1, 1);
    bpt_loader *l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(l && bpt_loader_stream_length(l) == 13, "plain text: one token per byte, no bos/eos");
    if (l) {
        int32_t tok[13];
        float m[13];
        whole_stream(l, tok, m);
        int ok = 1;
        for (int i = 0; i < 13; i++) ok &= tok[i] == (unsigned char)"hello, world\n"[i];
        for (int i = 1; i < 13; i++) ok &= m[i] == 1.0f;
        CHECK(ok, "plain text: tokens are the bytes, mask 1");
        bpt_loader_close(l);
    }
    l = bpt_loader_open(&d, "", 200, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, "llama.vocab_size") && contains(err, "256"),
          "byte tokenizer needs vocab >= 256: %s", err);

    write_text(pt, "");
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, pt) && contains(err, "0 tokens"), "empty text file: %s", err);

    /* JSONL: escapes, \u, surrogate pairs, malformed lines, blank lines, bos/eos */
    const char *pj = tmp("docs.jsonl");
    write_text(pj,
               "{\"text\": \"ab\\u00e9\\ud83d\\ude00\\n\\\"q\\\"\", \"n\": [1, {\"x\": null}], \"f\": -1.5e3}\n"
               "this is not json\n"
               "{\"title\": \"T\", \"text\": \"x\"}\r\n"
               "{\"text\": 5}\n"
               "\n"
               "  {\"text\": \"c\\\\d\\/\\t\"}  \n"
               "{\"text\": \"unterminated}\n"
               "{\"text\": \"z\", \"text\": \"last\"}");
    d = text_cfg(pj, "text", 1, 1);
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(l != NULL, "jsonl opens (%s)", l ? "" : err);
    if (l) {
        const unsigned char want_doc[][16] = {
            { 'a', 'b', 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, '\n', '"', 'q', '"' },
            { 'x' },
            { 'c', '\\', 'd', '/', '\t' },
            { 'l', 'a', 's', 't' },
        };
        const int doc_len[] = { 12, 1, 5, 4 };
        int32_t want[64];
        float want_m[64];
        int n = 0;
        for (int k = 0; k < 4; k++) {
            want[n] = 1; want_m[n++] = 0;
            for (int i = 0; i < doc_len[k]; i++) { want[n] = want_doc[k][i]; want_m[n++] = 1; }
            want[n] = 2; want_m[n++] = 1;
        }
        CHECK((int)bpt_loader_stream_length(l) == n, "jsonl: stream length %llu (expected %d)",
              (unsigned long long)bpt_loader_stream_length(l), n);
        if ((int)bpt_loader_stream_length(l) == n) {
            int32_t tok[64];
            float m[64];
            whole_stream(l, tok, m);
            int ok = 1;
            for (int i = 0; i < n; i++) ok &= tok[i] == want[i] && (i == 0 || m[i] == want_m[i]);
            CHECK(ok, "jsonl: escapes, \\u00e9 and a surrogate pair to UTF-8, bos (mask 0) and "
                  "eos around each document, duplicate key takes the last");
        }
        CHECK(bpt_loader_malformed_lines(l) == 3, "jsonl: 3 malformed lines skipped and counted "
              "(got %llu)", (unsigned long long)bpt_loader_malformed_lines(l));
        bpt_loader_close(l);
    }

    /* fields: several, a masked one, a+b, special tokens */
    write_text(pj, "{\"q\": \"Q\", \"a\": \"A\", \"b\": \"B\"}\n");
    d = text_cfg(pj, "[q], a+b,<|eos|>", 0, 0);
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    if (l) {
        int32_t tok[8];
        float m[8];
        int ok = bpt_loader_stream_length(l) == 5;
        if (ok) {
            whole_stream(l, tok, m);
            ok = tok[0] == 'Q' && tok[1] == 'A' && tok[2] == ' ' && tok[3] == 'B' && tok[4] == 2 &&
                 m[1] == 1 && m[2] == 1 && m[3] == 1 && m[4] == 1;
        }
        CHECK(ok, "text_processor.fields: [q] a+b <|eos|>");
        bpt_loader_close(l);
    } else {
        CHECK(0, "text_processor.fields: open (%s)", err);
    }
    /* a masked field: its tokens are not targets */
    d = text_cfg(pj, "a,[q]", 0, 0);
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    if (l) {
        int32_t tok[4];
        float m[4];
        whole_stream(l, tok, m);
        CHECK(bpt_loader_stream_length(l) == 2 && tok[0] == 'A' && tok[1] == 'Q' && m[1] == 0,
              "text_processor.fields: [q] has loss mask 0");
        bpt_loader_close(l);
    }
    /* a field missing everywhere: every line malformed, then empty */
    d = text_cfg(pj, "body", 0, 0);
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, "0 tokens") && contains(err, "its one line is malformed") &&
          contains(err, "first at line 1: no string field \"body\""), "jsonl without the wanted field: %s", err);
    /* every line malformed: how many, and the first one's line and reason */
    const char *pb = tmp("broken.jsonl");
    write_text(pb, "{broken 1\n{broken 2\n{broken 3\n{broken 4\n{broken 5\n{broken 6\n"
                   "{broken 7\n{broken 8\n{broken 9\n{broken 10\n{broken 11\n{broken 12\n");
    d = text_cfg(pb, "text", 0, 0);
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, pb) && contains(err, "0 tokens: all 12 lines are malformed (first at line 1: "
          "not valid JSON at column 2"), "jsonl with every line malformed: %s", err);
    write_text(pb, "\n{\"text\": 5}\n[1]\n");
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, "all 2 non-blank lines are malformed (first at line 2: \"text\" is a number, not a string"),
          "jsonl with blank and malformed lines: %s", err);
    write_text(pb, "{\"text\": \"\"}\n{\"text\": \"a\"}\n{\"x\": 1}\n");
    l = bpt_loader_open(&d, "", 256, 1, 2, err, sizeof err);
    CHECK(!l && contains(err, "1 token from 2 documents") && contains(err, "1 malformed line skipped, first at line 3"),
          "jsonl with one token: %s", err);

    /* why a line is malformed */
    bpt_tokenizer *btk = bpt_tokenizer_open("bytes", err, sizeof err);
    d = text_cfg(pb, "a+b,[q]", 0, 0);
    bpt_text_processor *tp = bpt_text_processor_new(&d, btk, 1, 2, 256, err, sizeof err);
    static const char *const why_cases[][2] = {
        {"[1, 2]", "not a JSON object (it starts with '[')"},
        {"{\"a\": \"x\", }", "not valid JSON at column 12"},
        {"{\"a\": \"x\"}", "no string field \"b\""},
        {"{\"a\": \"x\", \"b\": null}", "\"b\" is null, not a string"},
        {"{\"a\": \"x\", \"b\": \"y\", \"q\": [1]}", "\"q\" is an array, not a string"},
    };
    for (int k = 0; k < 5; k++) {
        bpt_tokens out = {0};
        int rc = bpt_text_processor_line(tp, why_cases[k][0], strlen(why_cases[k][0]), &out);
        CHECK(rc == -1 && out.n == 0 && strcmp(bpt_text_processor_why(tp), why_cases[k][1]) == 0,
              "malformed line %s: \"%s\"", why_cases[k][0], bpt_text_processor_why(tp));
        bpt_tokens_free(&out);
    }
    bpt_text_processor_free(tp);
    /* a field name with a newline (fields_from_example; found by tests/fuzz/fuzz_jsonl):
     * the reason stays one line */
    d = text_cfg(pb, "", 0, 0);
    snprintf(d.fields_from_example, sizeof d.fields_from_example, "fields");
    tp = bpt_text_processor_new(&d, btk, 1, 2, 256, err, sizeof err);
    const char *nl_line = "{\"fields\": \"x,te\\nxt\", \"x\": \"a\"}";
    bpt_tokens nl_out = {0};
    int nl_rc = tp ? bpt_text_processor_line(tp, nl_line, strlen(nl_line), &nl_out) : 0;
    CHECK(nl_rc == -1 && nl_out.n == 0 && strcmp(bpt_text_processor_why(tp), "no string field \"te xt\"") == 0,
          "a field name holding a newline: one line \"%s\"", tp ? bpt_text_processor_why(tp) : err);
    bpt_tokens_free(&nl_out);
    bpt_text_processor_free(tp);
    /* lone surrogates: each decodes to U+FFFD, a high one not followed by a low one
     * leaves what follows to be read on its own (a pair after it still pairs); a
     * \u0000 in a key names no field but leaves the line valid; nesting deeper than
     * 64 levels below the line's object is malformed */
    d = text_cfg(pb, "text", 0, 0);
    tp = bpt_text_processor_new(&d, btk, 1, 2, 256, err, sizeof err);
    {
        const char *sur = "{\"text\": \"a\\uD800b\\uDC00c\\uDBFF\\u0041\\uD800\\uD83D\\uDE00\\\\uD800\", \"k\\u0000\": 1}";
        const unsigned char want_sur[] = { 'a', 0xEF, 0xBF, 0xBD, 'b', 0xEF, 0xBF, 0xBD, 'c', 0xEF, 0xBF, 0xBD, 'A',
                                           0xEF, 0xBF, 0xBD, 0xF0, 0x9F, 0x98, 0x80, '\\', 'u', 'D', '8', '0', '0' };
        bpt_tokens out = {0};
        int rc = tp ? bpt_text_processor_line(tp, sur, strlen(sur), &out) : -1;
        int ok = rc == 0 && out.n == sizeof want_sur;
        for (size_t i = 0; ok && i < out.n; i++) ok = out.tok[i] == want_sur[i];
        CHECK(ok, "lone surrogates to U+FFFD, pairs kept, \\\\uD800 is no escape (rc %d, %zu tokens: %s)",
              rc, out.n, rc ? bpt_text_processor_why(tp) : "");
        bpt_tokens_free(&out);
        char deep[256];
        for (int depth = 64; depth <= 65; depth++) {
            int k = snprintf(deep, sizeof deep, "{\"text\": \"x\", \"d\": ");
            for (int i = 0; i < depth; i++) deep[k++] = '[';
            for (int i = 0; i < depth; i++) deep[k++] = ']';
            deep[k++] = '}';
            rc = bpt_text_processor_line(tp, deep, (size_t)k, &out);
            CHECK(depth == 64 ? rc == 0 : rc == -1 && contains(bpt_text_processor_why(tp), "not valid JSON"),
                  "a value nested %d levels deep: rc %d", depth, rc);
            bpt_tokens_free(&out);
        }
    }
    bpt_text_processor_free(tp);
    bpt_tokenizer_free(btk);
    d = text_cfg(pj, "a", 1, 0);
    l = bpt_loader_open(&d, "", 256, 300, 2, err, sizeof err);
    CHECK(!l && contains(err, "llama.bos_token_id"), "bos id outside the vocabulary: %s", err);
}

/* ------------------------------------------------------------------------- */
/* checkpoints, with a host-memory backend that has only the memory functions */

static void *h_alloc(size_t n) { return calloc(1, n ? n : 1); }
static void h_free(void *p, size_t n) { free(p); }
static void h_copy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
static void h_zero(void *d, size_t n) { memset(d, 0, n); }
static void h_sync(void) {}
static const bpt_kernels host_kernels = {
    .name = "host", .alloc = h_alloc, .free = h_free, .copy_h2d = h_copy, .copy_d2h = h_copy,
    .copy_d2d = h_copy, .zero = h_zero, .sync = h_sync,
};

static bpt_llama_config tiny_cfg(int D, int L) {
    bpt_llama_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 64;
    c.hidden_size = D;
    c.intermediate_size = 2 * D;
    c.num_hidden_layers = L;
    c.num_attention_heads = 2;
    c.max_sequence_length = 16;
    c.rms_norm_eps = 1e-6;
    c.initializer_range = 0.02;
    c.rope_theta = 10000;
    return c;
}

typedef struct { bpt_arena a; bpt_model *m; } tiny;

static void tiny_make(tiny *t, int D, int L, int with_opt) {
    bpt_llama_config c = tiny_cfg(D, L);
    bpt_arena_init(&t->a, &host_kernels, 8u << 20);
    t->m = bpt_model_create(&c, &host_kernels, &t->a, 1, 8, with_opt, NULL);
}

static void tiny_free(tiny *t) {
    bpt_model_free(t->m);
    bpt_arena_destroy(&t->a);
}

static int same_buf(const bpt_model *a, const bpt_model *b, bpt_buf w) {
    return a->nparams == b->nparams &&
           memcmp(a->buf[w], b->buf[w], a->nparams * sizeof(float)) == 0;
}

static void test_ckpt(void) {
    bpt_load_kind kind;
    char path[256];
    int rc = bpt_ckpt_parse_spec("trainstate::/x/y.h5", &kind, path, sizeof path, err, sizeof err);
    CHECK(rc == 0 && kind == BPT_LOAD_TRAINSTATE && strcmp(path, "/x/y.h5") == 0, "parse trainstate::");
    rc = bpt_ckpt_parse_spec("params::a.h5", &kind, path, sizeof path, err, sizeof err);
    CHECK(rc == 0 && kind == BPT_LOAD_PARAMS && strcmp(path, "a.h5") == 0, "parse params::");
    rc = bpt_ckpt_parse_spec("trainstate_params::b", &kind, path, sizeof path, err, sizeof err);
    CHECK(rc == 0 && kind == BPT_LOAD_TRAINSTATE_PARAMS && strcmp(path, "b") == 0, "parse trainstate_params::");
    rc = bpt_ckpt_parse_spec("flax_params::c", &kind, path, sizeof path, err, sizeof err);
    CHECK(rc != 0 && contains(err, "load_checkpoint") && contains(err, "flax_params::c"),
          "bad spec: %s", err);
    rc = bpt_ckpt_parse_spec("params::", &kind, path, sizeof path, err, sizeof err);
    CHECK(rc != 0, "empty path rejected");

    tiny a, b, c;
    tiny_make(&a, 16, 2, 1);
    bpt_model_init_weights(a.m, 1234);
    /* give the moments distinct contents */
    for (size_t i = 0; i < a.m->nparams; i++) {
        a.m->buf[BPT_BUF_M][i] = 0.001f * (float)(i % 977) - 0.3f;
        a.m->buf[BPT_BUF_V][i] = 1e-6f * (float)(i % 313);
    }
    const char *pts = tmp("ts.h5"), *pp = tmp("params.h5");
    bpt_ckpt_meta meta = { 17, 123456789012ull, 3, 0, 0 };
    rc = bpt_ckpt_save(pts, a.m, &meta, "seed: 3\nllama:\n  hidden_size: 16\n", 1, err, sizeof err);
    CHECK(rc == 0 && access(pts, F_OK) == 0 && access(tmp("ts.h5.tmp"), F_OK) != 0,
          "save trainstate (%s)", rc ? err : "no .tmp left");
    rc = bpt_ckpt_save(pp, a.m, &meta, "seed: 3\n", 0, err, sizeof err);
    CHECK(rc == 0, "save params only (%s)", rc ? err : "");

    tiny_make(&b, 16, 2, 1);
    bpt_ckpt_meta got = { -1, 1, 0, 0, 0 };
    rc = bpt_ckpt_load(pts, BPT_LOAD_TRAINSTATE, b.m, &got, err, sizeof err);
    CHECK(rc == 0 && same_buf(a.m, b.m, BPT_BUF_PARAM) && same_buf(a.m, b.m, BPT_BUF_M) &&
          same_buf(a.m, b.m, BPT_BUF_V) && got.step == 17 && got.tokens_consumed == 123456789012ull,
          "trainstate round trip: params, m, v bitwise, step and tokens_consumed (%s)", rc ? err : "");
    tiny_free(&b);

    tiny_make(&b, 16, 2, 1);
    got.step = 5;
    rc = bpt_ckpt_load(pts, BPT_LOAD_TRAINSTATE_PARAMS, b.m, &got, err, sizeof err);
    int zero_m = 1;
    for (size_t i = 0; i < b.m->nparams; i++) zero_m &= b.m->buf[BPT_BUF_M][i] == 0.0f;
    CHECK(rc == 0 && same_buf(a.m, b.m, BPT_BUF_PARAM) && zero_m && got.step == 0 &&
          got.tokens_consumed == 0, "trainstate_params: params only, fresh moments, meta zero");
    rc = bpt_ckpt_load(pp, BPT_LOAD_PARAMS, b.m, NULL, err, sizeof err);
    CHECK(rc == 0 && same_buf(a.m, b.m, BPT_BUF_PARAM), "params round trip (meta NULL)");
    rc = bpt_ckpt_load(pp, BPT_LOAD_TRAINSTATE, b.m, &got, err, sizeof err);
    CHECK(rc != 0 && contains(err, pp) && contains(err, "checkpointer.save_optimizer_state"),
          "trainstate from a params-only file: %s", err);
    tiny_free(&b);

    tiny_make(&c, 32, 2, 0);
    rc = bpt_ckpt_load(pp, BPT_LOAD_PARAMS, c.m, NULL, err, sizeof err);
    CHECK(rc != 0 && contains(err, "model.embed_tokens.weight has shape [64, 16], model expects [64, 32]"),
          "shape mismatch: %s", err);
    tiny_free(&c);
    tiny_make(&c, 16, 3, 0);
    rc = bpt_ckpt_load(pp, BPT_LOAD_PARAMS, c.m, NULL, err, sizeof err);
    CHECK(rc != 0 && contains(err, "missing tensor model.layers.2."), "missing tensor: %s", err);
    tiny_free(&c);
    tiny_make(&c, 16, 1, 0);
    rc = bpt_ckpt_load(pp, BPT_LOAD_PARAMS, c.m, NULL, err, sizeof err);
    CHECK(rc != 0 && contains(err, "model.layers.1.") && contains(err, "not in the model"),
          "extra tensor in the file: %s", err);
    tiny_free(&c);

    rc = bpt_ckpt_load(tmp("synth1.h5"), BPT_LOAD_PARAMS, a.m, NULL, err, sizeof err);
    CHECK(rc != 0 && contains(err, "not a bpt checkpoint"), "not a checkpoint: %s", err);
    rc = bpt_ckpt_load(tmp("nope.h5"), BPT_LOAD_PARAMS, a.m, NULL, err, sizeof err);
    CHECK(rc != 0 && contains(err, "no such file"), "missing checkpoint: %s", err);
    rc = bpt_ckpt_save(tmp("no/such/dir/x.h5"), a.m, &meta, "", 0, err, sizeof err);
    CHECK(rc != 0 && contains(err, "no/such/dir/x.h5.tmp"), "save into a missing directory: %s", err);

    /* Corrupt one byte inside one tensor's data: find its first 16 bytes in the file. */
    int ti = bpt_model_find(a.m, "model.layers.1.mlp.down_proj.weight");
    const bpt_tensor *t = &a.m->tensors[ti];
    const char *pc = tmp("corrupt.h5");
    bpt_ckpt_save(pc, a.m, &meta, "", 0, err, sizeof err);
    FILE *f = fopen(pc, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *bytes = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    size_t nread = fread(bytes, 1, (size_t)size, f);
    const char *needle = (const char *)(a.m->buf[BPT_BUF_PARAM] + t->offset);
    char *hit = nread == (size_t)size ? find_bytes(bytes, (size_t)size, needle, 16) : NULL;
    if (hit) {
        long off = (long)(hit - bytes) + 40;
        fseek(f, off, SEEK_SET);
        fputc(bytes[off] ^ 0x10, f);
    }
    fclose(f);
    free(bytes);
    tiny_make(&b, 16, 2, 0);
    rc = bpt_ckpt_load(pc, BPT_LOAD_PARAMS, b.m, NULL, err, sizeof err);
    CHECK(hit && rc != 0 && contains(err, pc) && contains(err, t->name),
          "corrupted byte detected (Fletcher-32): %s", hit ? err : "tensor bytes not found");
    tiny_free(&b);
    tiny_free(&a);
}

/* Shuffling and mixtures: a file whose window w (tokens [w*T, w*T+T]) holds the value
 * 1000*file + w, so the first input of a row names the file and window it came from. */
static void test_shuffle_mixture(void) {
    enum { T = 8, W = 37 };
    char pa[600], pb[600], both[1300];
    snprintf(pa, sizeof pa, "%s", tmp("mixa.h5"));
    snprintf(pb, sizeof pb, "%s", tmp("mixb.h5"));
    int64_t *v = malloc(sizeof(int64_t) * (W * T + 1));
    for (int f = 0; f < 2; f++) {
        for (int i = 0; i <= W * T; i++) v[i] = 1000 * f + (i / T < W ? i / T : W - 1);
        write_tokens(f ? pb : pa, H5T_STD_U32LE, v, W * T + 1, NULL);
    }
    free(v);
    char err[512];
    bpt_dataset_config d = hdf5_cfg(pa);
    d.shuffle = 1;
    d.shuffle_seed = 7;
    bpt_loader *l = bpt_loader_open(&d, "", 4096, 0, 1, err, sizeof err);
    CHECK(l != NULL, "shuffled loader opens (%s)", l ? "" : err);
    if (!l) return;
    bpt_batch b;
    bpt_batch_alloc(&b, W, T);
    int seen[2][W] = {{0}}, inorder = 1, differ = 0, first[W];
    for (int e = 0; e < 2; e++) {
        bpt_loader_next(l, &b, W, 0, err, sizeof err);   /* one global batch = one epoch */
        for (int r = 0; r < W; r++) {
            int w = b.inputs[r * T];
            if (w >= 0 && w < W) seen[e][w]++;
            if (e == 0) { first[r] = w; inorder &= w == r; }
            else differ |= w != first[r];
        }
    }
    int once = 1;
    for (int e = 0; e < 2; e++) for (int w = 0; w < W; w++) once &= seen[e][w] == 1;
    CHECK(once && !inorder && differ, "shuffle: every window exactly once per epoch, permuted, a new order each epoch");
    /* mesh independence: rows [10, 20) read alone equal rows 10..19 of the whole batch */
    bpt_loader_set_tokens_consumed(l, 3 * (uint64_t)W * T);
    bpt_loader_next(l, &b, W, 0, err, sizeof err);
    int32_t want[10];
    for (int r = 0; r < 10; r++) want[r] = b.inputs[(10 + r) * T];
    bpt_batch part;
    bpt_batch_alloc(&part, 10, T);
    bpt_loader_set_tokens_consumed(l, 3 * (uint64_t)W * T);
    bpt_loader_next(l, &part, W, 10, err, sizeof err);
    int same = 1;
    for (int r = 0; r < 10; r++) same &= part.inputs[r * T] == want[r];
    CHECK(same, "shuffle: a replica's rows equal the same rows of the global batch");
    bpt_batch_free(&part);
    bpt_loader_close(l);

    snprintf(both, sizeof both, "%s,%s", pa, pb);
    d = hdf5_cfg(both);
    snprintf(d.weights, sizeof d.weights, "3,1");
    d.shuffle_seed = 11;
    l = bpt_loader_open(&d, "", 4096, 0, 1, err, sizeof err);
    CHECK(l != NULL, "mixture of two files opens (%s)", l ? "" : err);
    if (!l) { bpt_batch_free(&b); return; }
    int from_b = 0, total = 0, ok_rows = 1;
    for (int i = 0; i < 40; i++) {
        bpt_loader_next(l, &b, W, 0, err, sizeof err);
        for (int r = 0; r < W; r++) {
            int x = b.inputs[r * T];
            from_b += x >= 1000;
            total++;
            for (int t = 1; t < T; t++) ok_rows &= b.inputs[r * T + t] == x;   /* whole windows */
        }
    }
    double frac = (double)from_b / total;
    CHECK(frac > 0.20 && frac < 0.30 && ok_rows, "mixture weights 3,1: %.3f of rows from the second file (want 0.25)", frac);
    bpt_loader_close(l);
    snprintf(d.weights, sizeof d.weights, "1");
    l = bpt_loader_open(&d, "", 4096, 0, 1, err, sizeof err);
    CHECK(!l && contains(err, "weights") && contains(err, "'1'"), "weights of the wrong length: %s", err);
    bpt_loader_close(l);
    bpt_batch_free(&b);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    scratch_begin("data");
    test_synthetic();
    test_windows();
    test_resume();
    test_hdf5_errors();
    test_text();
    test_shuffle_mixture();
    test_ckpt();
    scratch_end();
    return tap_done();
}
