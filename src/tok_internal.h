/* tok_internal.h — the parts of the tokenizer module (include/bpt/tokenizer.h) that
 * its files share; private to them. See docs/tokenizers.md.
 *
 *   tok_common.c       a growable byte buffer, a string->int map, an (id, id) map,
 *                      UTF-8 helpers, the BPE merge heap, reading a whole file
 *   tok_sentencepiece.c  SentencePiece: ModelProto, normalizer, BPE by piece score
 *   tok_bpe_load.c     Hugging Face tokenizer.json -> hf_bpe (below)
 *   tok_bpe.c          Hugging Face byte-level BPE: pre-tokenizers, BPE by merge
 *                      rank, ByteLevel decoding
 *   tokenizer.c        the public API: picks the kind of a file, dispatches
 *
 * Encoding touches no shared mutable state: every call works in its own buffers
 * (and its own PCRE2 match data), so concurrent calls on one tokenizer are safe.
 */
#ifndef BPT_TOK_INTERNAL_H
#define BPT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bpt/util.h"

/* ---- a growable byte buffer, NUL-terminated from the first allocation on ---- */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static inline void buf_reserve(buf_t *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = bpt_xrealloc(b->p, cap);
    b->cap = cap;
    b->p[b->n] = 0;   /* NUL-terminated from the first allocation on: an empty result is "" */
}

static inline void buf_add(buf_t *b, const void *s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static inline void buf_addc(buf_t *b, char c) { buf_add(b, &c, 1); }

/* Append id to the caller's growable id array (the public API's ids, n, cap). 0, or
 * -1 when out of memory. */
static inline int ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        int32_t *p = realloc(*ids, c * sizeof **ids);
        if (!p) return -1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

/* ---- string -> int map with open addressing ---- */

/* Keys are not copied: they must outlive the map (they point into the tokenizer's
 * own storage). */
typedef struct {
    const char *key;
    uint32_t len, hash;
    int32_t val;
} smap_slot;

typedef struct {
    smap_slot *slot;
    size_t mask, n;
} smap_t;

static inline uint32_t hash_bytes(const char *s, size_t n) {   /* FNV-1a, 32 bit */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* free() each of the pointers: TOK_FREE(a->x, a->y, ...) */
void tok_free_each(void *const *p, size_t n);
#define TOK_FREE(...) tok_free_each((void *const[]){ __VA_ARGS__ }, \
                                    sizeof((void *const[]){ __VA_ARGS__ }) / sizeof(void *))

void tok_smap_init(smap_t *m, size_t expect);
void tok_smap_free(smap_t *m);
void tok_smap_put(smap_t *m, const char *s, size_t n, int32_t val);   /* insert or overwrite */

/* The value of key s[0..n), or -1. */
static inline int32_t smap_get(const smap_t *m, const char *s, size_t n) {
    if (!m->slot) return -1;
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const smap_slot *e = &m->slot[i];
        if (!e->key) return -1;
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) return e->val;
    }
}

/* ---- (id, id) pair -> (rank, new id), for BPE merges ---- */

typedef struct {
    uint64_t key;
    int32_t rank, id;     /* rank < 0: empty slot */
} pmap_slot;

typedef struct {
    pmap_slot *slot;
    size_t mask, n;
} pmap_t;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

void tok_pmap_init(pmap_t *m, size_t expect);
void tok_pmap_put(pmap_t *m, int32_t a, int32_t b, int32_t rank, int32_t id);   /* insert or overwrite */

/* The slot of (a, b), or NULL. */
static inline const pmap_slot *pmap_get(const pmap_t *m, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        const pmap_slot *e = &m->slot[i];
        if (e->rank < 0) return NULL;
        if (e->key == k) return e;
    }
}

/* The whole file (NUL-terminated, length in *len), or NULL with "<path>: cannot
 * open/read the tokenizer file: ..." in err. */
char *tok_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* ---- UTF-8 ---- */

static inline int is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }


/* sentencepiece's string_util::DecodeUTF8: the code point at s (n >= 1 bytes) and
 * its length; 0xFFFD with length 1 for a malformed sequence. */
uint32_t tok_sp_decode_utf8(const unsigned char *s, size_t n, size_t *mblen);
/* cp as UTF-8 into out (1 to 4 bytes); its length. */
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Rust's String::from_utf8_lossy: each maximal ill-formed subsequence of s becomes
 * one U+FFFD. Appends to out. */
void tok_utf8_lossy(const unsigned char *s, size_t n, buf_t *out);

static const char kSpace[] = "\xe2\x96\x81";   /* U+2581, SentencePiece's whitespace symbol */

/* ---- the BPE merge heap ---- */

/* A merge candidate of a BPE agenda, shared by both tokenizers: the highest key comes
 * out first, then the leftmost position. SentencePiece keys by piece score (ties:
 * leftmost), Hugging Face by minus the merge rank (ties: leftmost), as the references
 * do. right and size are SentencePiece's staleness checks; id is the merged piece. */
typedef struct {
    double key;
    int pos, right;
    size_t size;
    int id;
} bpe_cand;

typedef struct {
    bpe_cand *a;
    size_t n, cap;
} bpe_heap;

void tok_bpe_heap_push(bpe_heap *h, bpe_cand x);
bpe_cand tok_bpe_heap_pop(bpe_heap *h);   /* h->n > 0 */

/* ---- SentencePiece (tok_sentencepiece.c) ---- */

typedef struct sp_model sp_model;

/* A ModelProto of size bytes; NULL with "<path>: ..." in err. */
sp_model *tok_sp_load(const char *path, const char *data, size_t size, char *err, size_t errlen);
void tok_sp_free(sp_model *m);
void tok_sp_ids(const sp_model *m, int *vocab_size, int *bos_id, int *eos_id);
int tok_sp_encode(const sp_model *m, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap);
char *tok_sp_decode(const sp_model *m, const int32_t *ids, size_t n, size_t *outlen);

/* ---- Hugging Face byte-level BPE (tok_bpe_load.c loads, tok_bpe.c runs) ---- */

/* Split pre-tokenizer behaviours */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };

typedef struct {
    pcre2_code *re;
    int behavior, invert;
} hf_split;

typedef struct {
    char *content;
    size_t len;
    int id;
    int special, normalized, lstrip, rstrip, single_word;
} hf_added;

typedef struct {
    int n_ids;                 /* max id + 1 */
    char **tok;                /* id -> model vocab token text (owned; the keys of vocab) */
    uint32_t *toklen;
    const hf_added **added_of; /* id -> its added token, if any (wins over the vocab text) */
    char **dec;                /* id -> decoded bytes (ByteLevel decoder) */
    uint32_t *declen;
    unsigned char *skip;       /* id -> special added token (dropped on decode) */
    smap_t vocab;              /* model vocab: token -> id */
    pmap_t merges;             /* (left id, right id) -> (rank, merged id) */
    int32_t byte_id[256];      /* vocab id of the byte-level character of each byte */
    char bytechar[256][3];     /* the byte-level character of each byte, UTF-8 */
    unsigned char bytechar_len[256];
    int unk_id, fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix;     /* continuing_subword_prefix, end_of_word_suffix */
    hf_added *added;
    int n_added;
    unsigned char added_first[256];
    hf_split *split;           /* Split pre-tokenizers, in order, before ByteLevel */
    int n_split;
    int add_prefix_space, use_regex;
    pcre2_code *bl_re;         /* the GPT-2 regex of ByteLevel(use_regex=true) */
    pcre2_code *word_re;       /* \w, for added tokens with single_word */
    int bos_id, eos_id;
} hf_bpe;

/* A tokenizer.json of len bytes; NULL with "<path>: ..." in err. */
hf_bpe *tok_hf_load(const char *path, const char *data, size_t len, char *err, size_t errlen);
void tok_hf_free(hf_bpe *h);
int tok_hf_encode(const hf_bpe *h, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap);
char *tok_hf_decode(const hf_bpe *h, const int32_t *ids, size_t n, size_t *outlen);

#endif
