/* test_tokenizer.c — the tokenizers without any Python: the byte tokenizer, tiny
 * SentencePiece models and tokenizer.json files written here by hand, error messages,
 * concurrent encoding.
 *
 * With BPT_TOK_SP and/or BPT_TOK_JSON naming a tokenizer file that has a companion
 * "<file>.expect" (lines "hex of the text<TAB>expected ids", written by
 * tests/ref/test_tokenizers.py), the ids are compared with the reference libraries' too.
 *
 * One TAP line per check (tests/unit/unit_test.h); exits 0 when everything passed, else 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpt/tokenizer.h"
#include "scratch.h"
#include "unit_test.h"

static char err[1024];

/* Encode text; the ids as "1 2 3" in a static buffer. */
static const char *enc(const bpt_tokenizer *t, const char *text, size_t len) {
    static char out[4096];
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, k = 0;
    out[0] = 0;
    if (bpt_tokenizer_encode(t, text, len, &ids, &n, &cap) < 0) return "(error)";
    for (size_t i = 0; i < n && k + 16 < sizeof out; i++)
        k += (size_t)snprintf(out + k, sizeof out - k, i ? " %d" : "%d", ids[i]);
    free(ids);
    return out;
}

static const char *enc_s(const bpt_tokenizer *t, const char *text) { return enc(t, text, strlen(text)); }

/* decode(ids) compared with want (NULL: decode must fail) */
static int dec_is(const bpt_tokenizer *t, const int32_t *ids, size_t n, const char *want) {
    size_t len = 0;
    char *s = bpt_tokenizer_decode(t, ids, n, &len);
    int ok = want ? (s && len == strlen(want) && memcmp(s, want, len) == 0) : s == NULL;
    if (!ok) tap_note("decode gave \"%s\", want \"%s\"", s ? s : "(NULL)", want ? want : "(NULL)");
    free(s);
    return ok;
}

/* ---- a protobuf writer, just enough for ModelProto ---- */

typedef struct {
    unsigned char b[16384];
    size_t n;
} pb_w;

static void pbw_varint(pb_w *w, unsigned long long v) {
    do {
        unsigned char c = v & 0x7F;
        v >>= 7;
        w->b[w->n++] = c | (v ? 0x80 : 0);
    } while (v);
}

static void pbw_bytes(pb_w *w, int field, const void *d, size_t n) {
    pbw_varint(w, (unsigned long long)field << 3 | 2);
    pbw_varint(w, n);
    memcpy(w->b + w->n, d, n);
    w->n += n;
}

static void pbw_int(pb_w *w, int field, long long v) {
    pbw_varint(w, (unsigned long long)field << 3);
    pbw_varint(w, (unsigned long long)v);
}

static void pbw_piece(pb_w *w, const char *piece, float score, int type) {
    pb_w p = {{0}, 0};
    pbw_bytes(&p, 1, piece, strlen(piece));
    p.b[p.n++] = 2 << 3 | 5;                 /* score: fixed32 float */
    memcpy(p.b + p.n, &score, 4);
    p.n += 4;
    pbw_int(&p, 3, type);
    pbw_bytes(w, 1, p.b, p.n);
}

/* model_type: 1 unigram, 2 BPE */
static void pbw_specs(pb_w *w, int model_type, int byte_fallback, int add_dummy_prefix, int remove_extra_ws) {
    pb_w t = {{0}, 0}, n = {{0}, 0};
    pbw_int(&t, 3, model_type);
    pbw_int(&t, 35, byte_fallback);
    pbw_int(&t, 41, 1);
    pbw_int(&t, 42, 2);
    pbw_int(&t, 43, -1);
    pbw_bytes(w, 2, t.b, t.n);
    pbw_bytes(&n, 1, "identity", 8);
    pbw_int(&n, 3, add_dummy_prefix);
    pbw_int(&n, 4, remove_extra_ws);
    pbw_int(&n, 5, 1);
    pbw_bytes(w, 3, n.b, n.n);
}

#define SPC "\xe2\x96\x81"   /* U+2581 */

static void test_bytes(void) {
    const char *names[] = {NULL, "", "bytes"};
    for (int k = 0; k < 3; k++) {
        bpt_tokenizer *t = bpt_tokenizer_open(names[k], err, sizeof err);
        CHECK(t && strcmp(bpt_tokenizer_kind(t), "bytes") == 0 && bpt_tokenizer_vocab_size(t) == 256 &&
              bpt_tokenizer_bos_id(t) == -1 && bpt_tokenizer_eos_id(t) == -1,
              "bytes tokenizer from %s%s%s: kind, vocab 256, no bos/eos", names[k] ? "\"" : "",
              names[k] ? names[k] : "NULL", names[k] ? "\"" : "");
        bpt_tokenizer_free(t);
    }
    bpt_tokenizer *t = bpt_tokenizer_open("bytes", err, sizeof err);
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int ok = bpt_tokenizer_encode(t, all, 256, &ids, &n, &cap) == 0 && n == 256;
    for (int i = 0; ok && i < 256; i++) ok = ids[i] == i;
    CHECK(ok, "bytes: encode of all 256 byte values is the identity");
    size_t len = 0;
    char *back = bpt_tokenizer_decode(t, ids, n, &len);
    CHECK(back && len == 256 && memcmp(back, all, 256) == 0, "bytes: decode(encode(x)) == x");
    free(back);
    ok = bpt_tokenizer_encode(t, "hi", 2, &ids, &n, &cap) == 0 && n == 258 && ids[256] == 'h' && ids[257] == 'i';
    CHECK(ok, "bytes: encode appends to the ids already there");
    size_t n0 = n;
    CHECK(bpt_tokenizer_encode(t, "", 0, &ids, &n, &cap) == 0 && n == n0, "bytes: empty text adds nothing");
    int32_t bad1[] = {65, 256}, bad2[] = {-1};
    CHECK(dec_is(t, bad1, 2, NULL) && dec_is(t, bad2, 1, NULL), "bytes: decode rejects ids outside 0..255");
    CHECK(dec_is(t, NULL, 0, ""), "bytes: decode of no ids is \"\"");
    free(ids);
    bpt_tokenizer_free(t);
}

static void test_errors(void) {
    /* Files that must not open: the message names what is wrong (has, and also has2 when
     * given), on one line where one_line is set. text NULL: no file is written. */
    static const struct {
        const char *file, *text, *has, *has2;
        int one_line;
        const char *what;
    } bad[] = {
        {"missing.model", NULL, "missing.model", "cannot open", 1, "missing file: one line naming it"},
        {"missing.json", NULL, "missing.json", NULL, 0, "missing .json file: names it"},
        {"garbage.model", "this is not a protobuf {[", "garbage.model", "SentencePiece", 1,
         "garbage .model: one line naming the file"},
        {"empty.model", "", "empty.model", NULL, 0, "empty .model rejected"},
        {"garbage.json", "{\"model\": [1, 2", "garbage.json", "JSON", 1, "garbage .json: one line naming the file"},
        {"other.json", "{\"a\": 1}", "other.json", "model", 0, "JSON that is no tokenizer"},
        {"wp.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "model.type", "WordPiece", 0,
         "WordPiece model names model.type"},
        {"nfc.json",
         "{\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
         " \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
         "normalizer", "NFC", 0, "NFC normalizer names normalizer"},
        {"nobl.json", "{\"pre_tokenizer\": null, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "ByteLevel", NULL, 0, "BPE without ByteLevel rejected"},
        {"badmerge.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
         "\"vocab\": {\"a\": 0}, \"merges\": [\"a zz\"]}}",
         "model.merges[0]", NULL, 0, "merge with an unknown token names model.merges[0]"},
        {"badre.json",
         "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}, "
         "\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
         "Split.pattern", NULL, 0, "bad Split regex names Split.pattern"},
    };
    bpt_tokenizer *t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].text) write_file(tmp(bad[i].file), bad[i].text, strlen(bad[i].text));
        t = bpt_tokenizer_open(tmp(bad[i].file), err, sizeof err);
        CHECK(!t && strstr(err, bad[i].has) && (!bad[i].has2 || strstr(err, bad[i].has2)) &&
              (!bad[i].one_line || !strchr(err, '\n')), "%s (%s)", bad[i].what, err);
        bpt_tokenizer_free(t);
    }

    pb_w w = {{0}, 0};
    pbw_piece(&w, "<unk>", 0, 2);
    pbw_piece(&w, "a", -1, 1);
    pbw_specs(&w, 1, 0, 1, 0);
    write_file(tmp("unigram.model"), w.b, w.n);
    t = bpt_tokenizer_open(tmp("unigram.model"), err, sizeof err);
    CHECK(!t && strstr(err, "unigram SentencePiece models are not supported") && strstr(err, "unigram.model"),
          "unigram model rejected (%s)", err);
    /* a truncated model: said so, with the byte offset, wherever it was cut */
    w.n = 0;
    pbw_piece(&w, "<unk>", 0, 2);
    pbw_piece(&w, "a", -1, 1);
    size_t pieces_end = w.n, second = 0;
    pb_w one = {{0}, 0};
    pbw_piece(&one, "<unk>", 0, 2);
    second = one.n;                              /* where the second piece starts */
    pbw_specs(&w, 2, 0, 1, 0);
    write_file(tmp("cut1.model"), w.b, second + 3);
    t = bpt_tokenizer_open(tmp("cut1.model"), err, sizeof err);
    char want[64];
    snprintf(want, sizeof want, "truncated at byte offset %zu", second);
    CHECK(!t && strncmp(err, tmp("cut1.model"), strlen(tmp("cut1.model"))) == 0 && strstr(err, want) &&
          !strstr(err, "unigram") && !strchr(err, '\n'), "model cut inside a piece: %s (%s)", want, err);
    write_file(tmp("cut2.model"), w.b, pieces_end);
    t = bpt_tokenizer_open(tmp("cut2.model"), err, sizeof err);
    snprintf(want, sizeof want, "truncated or malformed at byte offset %zu", pieces_end);
    CHECK(!t && strstr(err, "cut2.model") && strstr(err, want) && strstr(err, "trainer_spec") &&
          !strstr(err, "unigram"), "model cut after its pieces: %s (%s)", want, err);
    write_file(tmp("cut3.model"), w.b, w.n - 2);
    t = bpt_tokenizer_open(tmp("cut3.model"), err, sizeof err);
    CHECK(!t && strstr(err, "cut3.model") && strstr(err, "truncated at byte offset") && !strstr(err, "unigram"),
          "model cut inside normalizer_spec: %s", err);
    CHECK(strncmp(err, "tokenizer ", 10) != 0, "tokenizer errors start with the file, no prefix of their own (%s)", err);

    w.n = 0;
    pbw_piece(&w, "a", -1, 1);
    pbw_specs(&w, 2, 0, 1, 0);
    write_file(tmp("nounk.model"), w.b, w.n);
    t = bpt_tokenizer_open(tmp("nounk.model"), err, sizeof err);
    CHECK(!t && strstr(err, "unk"), "model without <unk> rejected (%s)", err);
    bpt_tokenizer_free(t);
    /* a piece name with a newline in an error (found by tests/fuzz/fuzz_tokenizer_spm):
     * still one line */
    w.n = 0;
    pbw_piece(&w, "<unk>", 0, 2);
    pbw_piece(&w, "<0x0\n>", 0, 6);
    pbw_specs(&w, 2, 1, 1, 0);
    write_file(tmp("nlpiece.model"), w.b, w.n);
    t = bpt_tokenizer_open(tmp("nlpiece.model"), err, sizeof err);
    CHECK(!t && strstr(err, "nlpiece.model") && strstr(err, "<0x0 >") && !strchr(err, '\n'),
          "a piece name holding a newline: the error is one line (%s)", err);

    /* a LLaMA-2 tokenizer.json as transformers writes it (4.x: normalizer Prepend +
     * Replace; 5.x: Metaspace pre-tokenizer; both with a Sequence decoder): the hint
     * to use tokenizer.model, not the decoder's name */
    const char *l2v4 =
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"" SPC "\"},"
        " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" SPC "\"}]},"
        " \"pre_tokenizer\": null,"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"" SPC "\"},"
        " \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \","
        " \"start\": 1, \"stop\": 0}]},"
        " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"fuse_unk\": true, \"unk_token\": \"<unk>\","
        " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"" SPC "\": 3, \"a\": 4}, \"merges\": []}}";
    write_file(tmp("llama2.json"), l2v4, strlen(l2v4));
    t = bpt_tokenizer_open(tmp("llama2.json"), err, sizeof err);
    CHECK(!t && strstr(err, "llama2.json") && strstr(err, "SentencePiece-style") && strstr(err, "Prepend") &&
          strstr(err, "HINT: for LLaMA 1/2 use the SentencePiece tokenizer.model") && !strstr(err, "decoder \""),
          "LLaMA-2 tokenizer.json (transformers 4): the tokenizer.model hint (%s)", err);
    const char *l2v5 =
        "{\"normalizer\": null,"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"" SPC "\", \"prepend_scheme\": \"first\", \"split\": false},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"" SPC "\"},"
        " \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"
        " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, \"a\": 1}, \"merges\": []}}";
    write_file(tmp("llama2v5.json"), l2v5, strlen(l2v5));
    t = bpt_tokenizer_open(tmp("llama2v5.json"), err, sizeof err);
    CHECK(!t && strstr(err, "llama2v5.json") && strstr(err, "Metaspace") &&
          strstr(err, "HINT: for LLaMA 1/2 use the SentencePiece tokenizer.model"),
          "LLaMA-2 tokenizer.json (transformers 5, Metaspace): the tokenizer.model hint (%s)", err);
    const char *l2dec =
        "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}]},"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    write_file(tmp("bfdec.json"), l2dec, strlen(l2dec));
    t = bpt_tokenizer_open(tmp("bfdec.json"), err, sizeof err);
    CHECK(!t && strstr(err, "decoder Sequence[ByteFallback]") && strstr(err, "tokenizer.model"),
          "a ByteFallback decoder alone: the hint too (%s)", err);

    /* ids must be dense: 0..n-1, n = distinct ids of model.vocab and added_tokens */
    static const char *const ids_cases[][3] = {
        {"\"c\": 1000000000", "", "model.vocab token \"c\" has id 1000000000"},
        {"\"c\": 3", "{\"id\": 7777777, \"content\": \"<x>\", \"special\": true}", "added token \"<x>\" has id 7777777"},
        {"\"c\": 5", "", "model.vocab token \"c\" has id 5"},
        {"\"c\": 3", "{\"id\": 2, \"content\": \"ab\"}, {\"id\": 5, \"content\": \"<y>\"}", "added token \"<y>\" has id 5"},
    };
    for (int k = 0; k < 4; k++) {
        char js[1024];
        snprintf(js, sizeof js, "{\"added_tokens\": [%s], \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
                 " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, %s}, \"merges\": [\"a b\"]}}",
                 ids_cases[k][1], ids_cases[k][0]);
        write_file(tmp("ids.json"), js, strlen(js));
        t = bpt_tokenizer_open(tmp("ids.json"), err, sizeof err);
        CHECK(!t && strstr(err, "ids.json") && strstr(err, ids_cases[k][2]) &&
              strstr(err, k % 2 ? "holds 5 tokens" : "holds 4 tokens") && strstr(err, "no token has id"),
              "sparse ids rejected: %s (%s)", ids_cases[k][2], err);
        bpt_tokenizer_free(t);
    }
    const char *dup = "{\"added_tokens\": [{\"id\": 2, \"content\": \"ab\"}, {\"id\": 3, \"content\": \"<y>\"}],"
                      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
                      " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}";
    write_file(tmp("ids.json"), dup, strlen(dup));
    t = bpt_tokenizer_open(tmp("ids.json"), err, sizeof err);
    CHECK(t && bpt_tokenizer_vocab_size(t) == 4, "an added token may share its vocab entry's id: vocab 4 (%s)", t ? "" : err);
    bpt_tokenizer_free(t);
}

/* A hand-made LLaMA-like SentencePiece BPE model. */
static void test_sentencepiece(void) {
    pb_w w = {{0}, 0};
    pbw_piece(&w, "<unk>", 0, 2);       /* 0 */
    pbw_piece(&w, "<s>", 0, 3);         /* 1 */
    pbw_piece(&w, "</s>", 0, 3);        /* 2 */
    pbw_piece(&w, SPC, -1, 1);          /* 3 */
    pbw_piece(&w, "a", -2, 1);          /* 4 */
    pbw_piece(&w, "b", -3, 1);          /* 5 */
    pbw_piece(&w, "ab", -0.5f, 1);      /* 6 */
    pbw_piece(&w, SPC "ab", -0.25f, 1); /* 7 */
    pbw_piece(&w, "aa", -0.75f, 1);     /* 8 */
    pbw_piece(&w, "<sep>", 0, 4);       /* 9: user defined */
    pbw_specs(&w, 2, 0, 1, 0);
    write_file(tmp("tiny.model"), w.b, w.n);
    bpt_tokenizer *t = bpt_tokenizer_open(tmp("tiny.model"), err, sizeof err);
    CHECK(t != NULL, "tiny SentencePiece model loads (%s)", t ? "" : err);
    if (!t) return;
    CHECK(strcmp(bpt_tokenizer_kind(t), "sentencepiece") == 0 && bpt_tokenizer_vocab_size(t) == 10 &&
          bpt_tokenizer_bos_id(t) == 1 && bpt_tokenizer_eos_id(t) == 2, "sp: kind, vocab, bos, eos");
    const char *s;
    CHECK(strcmp(s = enc_s(t, "ab ab c"), "7 7 3 0") == 0, "sp: \"ab ab c\" -> 7 7 3 0 (got %s)", s);
    CHECK(strcmp(s = enc_s(t, "cc"), "3 0") == 0, "sp: a run of unknowns is one <unk> (got %s)", s);
    CHECK(strcmp(s = enc_s(t, "aaa"), "3 8 4") == 0, "sp: equal scores merge leftmost first (got %s)", s);
    CHECK(strcmp(s = enc_s(t, "a<sep>b"), "3 4 9 5") == 0, "sp: user-defined symbols kept whole (got %s)", s);
    CHECK(strcmp(s = enc_s(t, ""), "") == 0, "sp: empty text -> no ids (got %s)", s);
    CHECK(strcmp(s = enc_s(t, " "), "3 3") == 0, "sp: \" \" -> dummy prefix + space (got %s)", s);
    int32_t d1[] = {1, 7, 7, 3, 0, 2};
    CHECK(dec_is(t, d1, 6, "ab ab  \xE2\x81\x87 "), "sp: decode drops control pieces and the dummy prefix");
    int32_t d2[] = {10};
    CHECK(dec_is(t, d2, 1, NULL), "sp: decode rejects an id past the vocab");
    /* found by tests/fuzz/fuzz_tokenizer_spm: nothing to decode is "", NUL-terminated
     * (under --enable-sanitizers fresh memory is 0xbe, never a lucky 0) */
    int32_t d5[] = {1, 2};
    size_t l5 = 99, l0 = 99;
    char *s5 = bpt_tokenizer_decode(t, d5, 2, &l5), *s0 = bpt_tokenizer_decode(t, NULL, 0, &l0);
    CHECK(s5 && l5 == 0 && s5[0] == 0 && s0 && l0 == 0 && s0[0] == 0,
          "sp: decode of only control pieces, and of no ids, is \"\" NUL-terminated");
    free(s5);
    free(s0);
    bpt_tokenizer_free(t);

    /* byte fallback */
    w.n = 0;
    pbw_piece(&w, "<unk>", 0, 2);
    pbw_piece(&w, "<s>", 0, 3);
    pbw_piece(&w, "</s>", 0, 3);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        pbw_piece(&w, name, 0, 6);                  /* 3 + b */
    }
    pbw_piece(&w, SPC, -1, 1);                      /* 259 */
    pbw_piece(&w, "a", -2, 1);                      /* 260 */
    pbw_specs(&w, 2, 1, 1, 0);
    write_file(tmp("bytes.model"), w.b, w.n);
    t = bpt_tokenizer_open(tmp("bytes.model"), err, sizeof err);
    CHECK(t != NULL, "byte-fallback SentencePiece model loads (%s)", t ? "" : err);
    if (!t) return;
    CHECK(strcmp(s = enc_s(t, "a\xC3\xA9"), "259 260 198 172") == 0, "sp: byte fallback for \"\xC3\xA9\" (got %s)", s);
    int32_t d3[] = {259, 260, 198, 172};
    CHECK(dec_is(t, d3, 4, "a\xC3\xA9"), "sp: byte pieces reassembled into UTF-8");
    int32_t d4[] = {260, 198, 260};
    CHECK(dec_is(t, d4, 3, "a\xEF\xBF\xBD" "a"), "sp: a lone byte piece decodes to U+FFFD");
    CHECK(strcmp(s = enc(t, "a\xFF", 2), "259 260 242 194 192") == 0,
          "sp: invalid UTF-8 input -> U+FFFD -> its bytes (got %s)", s);
    bpt_tokenizer_free(t);
}

static const char *tiny_json =
    "{\"version\": \"1.0\",\n"
    " \"added_tokens\": [{\"id\": 6, \"content\": \"<|endoftext|>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true}],\n"
    " \"normalizer\": null,\n"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
    " \"use_regex\": true},\n"
    " \"post_processor\": null,\n"
    " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"fuse_unk\": false,"
    " \"byte_fallback\": false, \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, \"ab\": 3, \"\\u0120ab\": 4,"
    " \"aa\": 5, \"<|endoftext|>\": 6, \"\\u010a\": 7},\n"
    " \"merges\": [\"a b\", [\"\\u0120\", \"ab\"], \"a a\"]}}\n";

typedef struct {
    const bpt_tokenizer *t;
    const char *text;
    const char *want;
    int ok;
} thr_arg;

static void *thr_encode(void *p) {
    thr_arg *a = p;
    a->ok = 1;
    for (int r = 0; r < 200; r++) {
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        if (bpt_tokenizer_encode(a->t, a->text, strlen(a->text), &ids, &n, &cap) < 0) a->ok = 0;
        char got[4096];
        size_t k = 0;
        got[0] = 0;
        for (size_t i = 0; i < n && k + 16 < sizeof got; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d" : "%d", ids[i]);
        if (strcmp(got, a->want) != 0) a->ok = 0;
        free(ids);
    }
    return NULL;
}

static void test_hf(void) {
    write_file(tmp("tiny.json"), tiny_json, strlen(tiny_json));
    bpt_tokenizer *t = bpt_tokenizer_open(tmp("tiny.json"), err, sizeof err);
    CHECK(t != NULL, "tiny tokenizer.json loads (%s)", t ? "" : err);
    if (!t) return;
    CHECK(strcmp(bpt_tokenizer_kind(t), "bpe") == 0 && bpt_tokenizer_vocab_size(t) == 8 &&
          bpt_tokenizer_eos_id(t) == 6 && bpt_tokenizer_bos_id(t) == -1, "bpe: kind, vocab, eos by name");
    const char *s;
    CHECK(strcmp(s = enc_s(t, "ab ab<|endoftext|>ab"), "3 4 6 3") == 0,
          "bpe: merges by rank and a special token split out (got %s)", s);
    CHECK(strcmp(s = enc_s(t, "aaa"), "5 0") == 0, "bpe: equal ranks merge leftmost first (got %s)", s);
    CHECK(strcmp(s = enc_s(t, "a\nzb"), "0 7 1") == 0, "bpe: characters outside the vocab are dropped (got %s)", s);
    CHECK(strcmp(s = enc_s(t, ""), "") == 0, "bpe: empty text -> no ids (got %s)", s);
    int32_t d1[] = {3, 4, 6, 2, 7};
    CHECK(dec_is(t, d1, 5, "ab ab \n"), "bpe: ByteLevel decode, special tokens skipped");
    int32_t d2[] = {8};
    CHECK(dec_is(t, d2, 1, NULL), "bpe: decode rejects an id past the vocab");

    /* Split with a "String" pattern is a literal (PCRE2_LITERAL, which refuses PCRE2_UCP:
     * such files did not load before); "Regex" is a regex. Ids from the tokenizers package. */
    for (int k = 0; k < 2; k++) {
        char js[1024];
        snprintf(js, sizeof js, "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                 "{\"type\": \"Split\", \"pattern\": {\"%s\": \"a.b\"}, \"behavior\": \"Removed\", \"invert\": false},"
                 " {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
                 " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \".\": 2, \"x\": 3, \"xa\": 4},"
                 " \"merges\": [\"x a\"]}}", k ? "Regex" : "String");
        write_file(tmp("split.json"), js, strlen(js));
        bpt_tokenizer *ts = bpt_tokenizer_open(tmp("split.json"), err, sizeof err);
        const char *want = k ? "3 2" : "4 3 1 2";
        CHECK(ts && strcmp(s = enc_s(ts, "a.bxaxb."), want) == 0, "bpe: Split %s pattern \"a.b\" Removed: \"a.bxaxb.\" -> %s (%s)",
              k ? "Regex" : "String", want, ts ? s : err);
        bpt_tokenizer_free(ts);
    }

    /* concurrent encoding gives the same ids */
    pthread_t th[4];
    thr_arg a[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (thr_arg){t, "ab ab aaa ab<|endoftext|> ab", "3 4 2 5 0 4 6 4", 0};
        pthread_create(&th[k], NULL, thr_encode, &a[k]);
    }
    int ok = 1;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        ok &= a[k].ok;
    }
    CHECK(ok, "bpe: 4 threads encoding at once agree");
    bpt_tokenizer_free(t);
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Compare with the ids the reference library gave (the .expect file). */
static void test_expect(const char *env) {
    const char *path = getenv(env);
    if (!path || !*path) {
        tap_note("%s not set (tests/ref/test_tokenizers.py sets it): no comparison with the reference", env);
        return;
    }
    bpt_tokenizer *t = bpt_tokenizer_open(path, err, sizeof err);
    CHECK(t != NULL, "%s=%s loads (%s)", env, path, t ? "" : err);
    if (!t) return;
    char ex[1024];
    snprintf(ex, sizeof ex, "%s.expect", path);
    FILE *f = fopen(ex, "r");
    CHECK(f != NULL, "%s exists", ex);
    if (!f) { bpt_tokenizer_free(t); return; }
    size_t cap = 1 << 20, lines = 0, same = 0;
    char *line = malloc(cap), *text = malloc(cap);
    int32_t *ids = NULL;
    size_t nid = 0, idcap = 0;
    while (fgets(line, (int)cap, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        size_t n = 0;
        for (char *p = line; p + 1 < tab; p += 2) text[n++] = (char)(hexval(p[0]) * 16 + hexval(p[1]));
        nid = 0;
        int ok = bpt_tokenizer_encode(t, text, n, &ids, &nid, &idcap) == 0;
        char *p = tab + 1;
        size_t k = 0;
        for (;;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            if (k >= nid || ids[k] != v) ok = 0;
            k++;
            p = q;
        }
        if (k != nid) ok = 0;
        lines++;
        same += ok;
    }
    CHECK(lines > 0 && same == lines, "%s: ids equal to the reference on %zu/%zu lines", env, same, lines);
    fclose(f);
    free(line);
    free(text);
    free(ids);
    bpt_tokenizer_free(t);
}

int main(void) {
    scratch_begin("tok");
    test_bytes();
    test_errors();
    test_sentencepiece();
    test_hf();
    test_expect("BPT_TOK_SP");
    test_expect("BPT_TOK_JSON");
    scratch_end();
    return tap_done();
}
