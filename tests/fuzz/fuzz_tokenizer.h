/* fuzz_tokenizer.h — the body of fuzz_tokenizer_json and fuzz_tokenizer_spm.
 *
 * The input is the tokenizer file. bpt_tokenizer_open either fails with a one-line
 * message naming the file, or gives a tokenizer for which: bos/eos are -1 or inside
 * the vocabulary; encoding sample texts (and the input's own first bytes, which hold
 * its vocabulary's strings) gives ids inside the vocabulary, and those ids decode;
 * every decode result is NUL-terminated at *outlen; ids outside the vocabulary do
 * not decode.
 */
#include "bpt/tokenizer.h"
#include "fuzz.h"

static const char *const fuzz_texts[] = {
    "", " ", "a", "ab ab c", "Hello, world! It's 2024.\n", "  two  spaces\t\ttabs\r\n",
    "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "\xFF\xFE invalid \xC3", "<s></s><unk><|endoftext|>",
    "\xE2\x96\x81" "a" "\xE2\x96\x81\xE2\x96\x81", "12345 67", "a\0b",
};

static void fuzz_decode_ok(const bpt_tokenizer *t, const int32_t *ids, size_t n, int must) {
    size_t len = (size_t)-1;
    char *s = bpt_tokenizer_decode(t, ids, n, &len);
    FUZZ_ASSERT(s || !must, "decode of %zu ids that encode gave failed", n);
    if (s) {
        FUZZ_ASSERT(len != (size_t)-1, "decode did not set *outlen");
        FUZZ_ASSERT(s[len] == 0, "decode result is not NUL-terminated at *outlen = %zu", len);
    }
    free(s);
}

static int fuzz_tokenizer(const uint8_t *data, size_t n, const char *name) {
    char err[1024];
    const char *path = fuzz_file(name, data, n);
    err[0] = 0;
    bpt_tokenizer *t = bpt_tokenizer_open(path, err, sizeof err);
    if (!t) {
        fuzz_check_err("bpt_tokenizer_open", err);
        FUZZ_ASSERT(strstr(err, name), "the error does not name the file: %s", err);
        return 0;
    }
    int V = bpt_tokenizer_vocab_size(t), bos = bpt_tokenizer_bos_id(t), eos = bpt_tokenizer_eos_id(t);
    FUZZ_ASSERT(V > 0, "vocab size %d", V);
    FUZZ_ASSERT(bos >= -1 && bos < V && eos >= -1 && eos < V, "bos %d / eos %d outside [-1, %d)", bos, eos, V);
    int32_t *ids = NULL;
    size_t nids = 0, cap = 0;
    size_t nt = sizeof fuzz_texts / sizeof *fuzz_texts;
    for (size_t k = 0; k <= nt; k++) {
        const char *s = k < nt ? fuzz_texts[k] : (const char *)data;
        size_t len = k < nt ? (k == nt - 1 ? 3 : strlen(s)) : (n < 256 ? n : 256);
        size_t n0 = nids;
        FUZZ_ASSERT(bpt_tokenizer_encode(t, s, len, &ids, &nids, &cap) == 0, "encode of sample %zu failed", k);
        FUZZ_ASSERT(nids >= n0, "encode dropped ids");
        for (size_t i = n0; i < nids; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < V, "encode gave id %d of %d", ids[i], V);
        fuzz_decode_ok(t, ids ? ids + n0 : NULL, nids - n0, 1);
    }
    fuzz_decode_ok(t, ids, nids, 1);
    fuzz_decode_ok(t, NULL, 0, 1);
    for (int32_t id = 0; id < V && id < 512; id++) fuzz_decode_ok(t, &id, 1, 0);
    int32_t bad[2] = { -1, V };
    FUZZ_ASSERT(!bpt_tokenizer_decode(t, bad, 1, NULL) && !bpt_tokenizer_decode(t, bad + 1, 1, NULL),
                "ids -1 and %d (the vocab size) decode", V);
    free(ids);
    bpt_tokenizer_free(t);
    return 0;
}
