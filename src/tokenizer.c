/* tokenizer.c — text to token ids and back: bytes, SentencePiece BPE, Hugging Face
 * byte-level BPE. See include/bpt/tokenizer.h and docs/tokenizers.md.
 *
 * The file has five parts:
 *   1. small containers: a growable byte buffer, a string->int hash map, a u64 map
 *   2. UTF-8 helpers (sentencepiece's decoder, Rust's from_utf8_lossy)
 *   3. SentencePiece: a protobuf wire-format reader for ModelProto, the normalizer
 *      (flags + precompiled charsmap), BPE by piece score (bpe_model.cc), decoding
 *   4. Hugging Face tokenizer.json: added tokens, Split/ByteLevel pre-tokenizers
 *      (PCRE2), BPE by merge rank (tokenizers' word.rs), ByteLevel decoding
 *   5. the public API
 *
 * Encoding touches no shared mutable state: every call works in its own buffers
 * (and its own PCRE2 match data), so concurrent calls on one tokenizer are safe.
 */
#include "bpt/tokenizer.h"
#include "bpt/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ========================================================================== */
/* 1. containers                                                              */
/* ========================================================================== */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = bpt_xrealloc(b->p, cap);
    b->cap = cap;
    b->p[b->n] = 0;   /* NUL-terminated from the first allocation on: an empty result is "" */
}

static void buf_add(buf_t *b, const void *s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_addc(buf_t *b, char c) { buf_add(b, &c, 1); }

static int ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
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

static uint32_t hash_bytes(const char *s, size_t n) {   /* FNV-1a, 32 bit */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* String -> int map with open addressing. Keys are not copied: they must outlive
 * the map (they point into the tokenizer's own storage). */
typedef struct {
    const char *key;
    uint32_t len, hash;
    int32_t val;
} smap_slot;

typedef struct {
    smap_slot *slot;
    size_t mask, n;
} smap_t;

static void smap_init(smap_t *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2 + 2) cap *= 2;
    m->slot = bpt_xcalloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    m->n = 0;
}

static void smap_free(smap_t *m) { free(m->slot); memset(m, 0, sizeof *m); }

static int32_t smap_get(const smap_t *m, const char *s, size_t n) {
    if (!m->slot) return -1;
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const smap_slot *e = &m->slot[i];
        if (!e->key) return -1;
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) return e->val;
    }
}

/* Insert or overwrite. */
static void smap_put(smap_t *m, const char *s, size_t n, int32_t val) {
    if ((m->n + 1) * 2 > m->mask + 1) {              /* grow to keep load <= 1/2 */
        smap_t g;
        smap_init(&g, m->mask + 1);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slot[i].key) smap_put(&g, m->slot[i].key, m->slot[i].len, m->slot[i].val);
        smap_free(m);
        *m = g;
    }
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        smap_slot *e = &m->slot[i];
        if (!e->key) {
            e->key = s;
            e->len = (uint32_t)n;
            e->hash = h;
            e->val = val;
            m->n++;
            return;
        }
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) { e->val = val; return; }
    }
}

/* (id, id) pair -> (rank, new id), for BPE merges. */
typedef struct {
    uint64_t key;
    int32_t rank, id;     /* rank < 0: empty slot */
} pmap_slot;

typedef struct {
    pmap_slot *slot;
    size_t mask, n;
} pmap_t;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static void pmap_init(pmap_t *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2 + 2) cap *= 2;
    m->slot = bpt_xmalloc(cap * sizeof *m->slot);
    for (size_t i = 0; i < cap; i++) m->slot[i].rank = -1;
    m->mask = cap - 1;
    m->n = 0;
}

/* Insert or overwrite. */
static void pmap_put(pmap_t *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->mask + 1) {              /* grow to keep load <= 1/2 */
        pmap_t g;
        pmap_init(&g, m->mask + 1);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slot[i].rank >= 0)
                pmap_put(&g, (int32_t)(m->slot[i].key >> 32), (int32_t)(uint32_t)m->slot[i].key,
                         m->slot[i].rank, m->slot[i].id);
        free(m->slot);
        *m = g;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        pmap_slot *e = &m->slot[i];
        if (e->rank < 0) { m->n++; e->key = k; e->rank = rank; e->id = id; return; }
        if (e->key == k) { e->rank = rank; e->id = id; return; }
    }
}

static const pmap_slot *pmap_get(const pmap_t *m, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        const pmap_slot *e = &m->slot[i];
        if (e->rank < 0) return NULL;
        if (e->key == k) return e;
    }
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bpt_err(err, errlen, "%s: cannot open the tokenizer file: %s", path, strerror(errno));
        return NULL;
    }
    buf_t b = {0};
    char chunk[1 << 16];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&b, chunk, k);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        bpt_err(err, errlen, "%s: cannot read the tokenizer file: %s", path, strerror(errno));
        return NULL;
    }
    if (!b.p) buf_reserve(&b, 0);
    *len = b.n;
    return b.p;
}

/* ========================================================================== */
/* 2. UTF-8                                                                   */
/* ========================================================================== */

static int is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }

static int valid_cp(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

/* sentencepiece's string_util::DecodeUTF8: the code point at s (n >= 1 bytes) and
 * its length; 0xFFFD with length 1 for a malformed sequence. */
static uint32_t sp_decode_utf8(const unsigned char *s, size_t n, size_t *mblen) {
    if (s[0] < 0x80) { *mblen = 1; return s[0]; }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80 && valid_cp(cp)) { *mblen = 2; return cp; }
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_cp(cp)) { *mblen = 3; return cp; }
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) {
            *mblen = 4;
            return cp;
        }
    }
    *mblen = 1;
    return 0xFFFD;
}

/* sentencepiece's IsValidDecodeUTF8: false only for a malformed byte (length 1). */
static int sp_valid_utf8(const unsigned char *s, size_t n, size_t *mblen) {
    return sp_decode_utf8(s, n, mblen) != 0xFFFD || *mblen == 3;
}

/* sentencepiece's OneCharLen: the length announced by the lead byte. */
static size_t sp_one_char_len(unsigned char c) {
    return (size_t)"\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4];
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust's String::from_utf8_lossy: each maximal ill-formed subsequence of s becomes
 * one U+FFFD. Appends to out. */
static void utf8_lossy(const unsigned char *s, size_t n, buf_t *out) {
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        unsigned char c = s[i++];
        int ok = 1;
        if (c >= 0x80) {
            #define AT(k) ((k) < n ? s[k] : 0)
            ok = 0;
            if (c >= 0xC2 && c <= 0xDF) {
                if (is_trail(AT(i))) { i++; ok = 1; }
            } else if (c >= 0xE0 && c <= 0xEF) {
                unsigned char d = AT(i);
                int second = (c == 0xE0) ? (d >= 0xA0 && d <= 0xBF)
                           : (c == 0xED) ? (d >= 0x80 && d <= 0x9F)
                           : is_trail(d);
                if (second) {
                    i++;
                    if (is_trail(AT(i))) { i++; ok = 1; }
                }
            } else if (c >= 0xF0 && c <= 0xF4) {
                unsigned char d = AT(i);
                int second = (c == 0xF0) ? (d >= 0x90 && d <= 0xBF)
                           : (c == 0xF4) ? (d >= 0x80 && d <= 0x8F)
                           : is_trail(d);
                if (second) {
                    i++;
                    if (is_trail(AT(i))) {
                        i++;
                        if (is_trail(AT(i))) { i++; ok = 1; }
                    }
                }
            }
            #undef AT
        }
        if (ok) buf_add(out, s + start, i - start);
        else buf_add(out, "\xEF\xBF\xBD", 3);
    }
}

/* ========================================================================== */
/* 3. SentencePiece                                                           */
/* ========================================================================== */

/* ModelProto.SentencePiece.Type */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };
/* TrainerSpec.ModelType */
enum { SP_MODEL_UNIGRAM = 1, SP_MODEL_BPE = 2, SP_MODEL_WORD = 3, SP_MODEL_CHAR = 4 };

static const char kSpace[] = "\xe2\x96\x81";   /* U+2581, the whitespace symbol */

typedef struct {
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    uint32_t *trie;          /* darts-clone double array of the precompiled charsmap */
    size_t ntrie;
    char *pool;              /* the replacement strings, NUL-terminated, indexed by trie values */
    size_t npool;
} sp_norm;

typedef struct {
    int n;                   /* number of pieces = vocab size */
    char **piece;            /* piece text (NUL-terminated) */
    uint32_t *len;
    float *score;
    unsigned char *type;
    int16_t *byteval;        /* the byte of a BYTE piece, else -1 */
    smap_t normal;           /* NORMAL, USER_DEFINED, UNUSED pieces (pieces_ in sentencepiece) */
    smap_t reserved;         /* CONTROL, UNKNOWN, BYTE pieces (reserved_id_map_) */
    pmap_t pairs;            /* (id of A, id of B) -> id of the normal piece A+B: the merge
                              * candidates of pieces_ as integer pairs (a faster lookup) */
    int unk_id, bos_id, eos_id;
    int byte_fallback, treat_ws_as_suffix, has_unused;
    int32_t byte_id[256];    /* PieceToId("<0xXX>") */
    int32_t ascii_id[128];   /* pieces_ id of each one-byte character, -1 if none */
    char *unk_surface;
    /* user-defined symbols: matched greedily (longest) before anything else */
    int n_user, user_maxlen;
    unsigned char user_first[256];
    sp_norm norm;
    sp_norm denorm;          /* used on decode when the model has a denormalizer charsmap */
    int has_denorm;
} sp_model;

/* ---- protobuf wire format ---- */

typedef struct {
    const unsigned char *p, *end;
    const unsigned char *fail;   /* on -1: where the field that could not be read starts */
    int past_end;                /* on -1: it runs past the end (else: a bad key or wire type) */
} pb_t;

static int pb_varint(pb_t *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char c = *r->p++;
        x |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) { *v = x; return 0; }
    }
    return -1;
}

/* Next field of the message in r: 1 and its number, wire type and value (varint or
 * fixed in *v; bytes in *data, *len), 0 at the end, -1 when malformed. */
static int pb_next(pb_t *r, int *field, int *wire, uint64_t *v, const unsigned char **data, size_t *len) {
    if (r->p == r->end) return 0;
    uint64_t key;
    r->fail = r->p;
    r->past_end = 1;
    if (pb_varint(r, &key) < 0) return -1;
    *field = (int)(key >> 3);
    *wire = (int)(key & 7);
    r->past_end = 0;
    if (*field == 0 || key >> 32) return -1;
    r->past_end = 1;
    switch (*wire) {
    case 0:
        return pb_varint(r, v) < 0 ? -1 : 1;
    case 1:
        if (r->end - r->p < 8) return -1;
        memcpy(v, r->p, 8);
        r->p += 8;
        return 1;
    case 5: {
        if (r->end - r->p < 4) return -1;
        uint32_t x;
        memcpy(&x, r->p, 4);
        *v = x;
        r->p += 4;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (pb_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p)) return -1;
        *data = r->p;
        *len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        r->past_end = 0;
        return -1;             /* groups (3, 4) and 6, 7 do not occur in ModelProto */
    }
}

typedef struct {
    const unsigned char *piece;
    size_t len;
    float score;
    int type;
} pb_piece;

static int pb_parse_piece(const unsigned char *d, size_t n, pb_piece *out) {
    pb_t r = {d, d + n, NULL, 0};
    int f, w, k;
    uint64_t v = 0;
    const unsigned char *data = NULL;
    size_t len = 0;
    out->piece = NULL;
    out->len = 0;
    out->score = 0;
    out->type = SP_NORMAL;
    while ((k = pb_next(&r, &f, &w, &v, &data, &len)) > 0) {
        if (f == 1 && w == 2) { out->piece = data; out->len = len; }
        else if (f == 2 && w == 5) { uint32_t x = (uint32_t)v; memcpy(&out->score, &x, 4); }
        else if (f == 3 && w == 0) out->type = (int)v;
    }
    return k;
}

typedef struct {
    int model_type, byte_fallback, treat_ws_as_suffix;
    const unsigned char *unk_surface, *unk_piece, *bos_piece, *eos_piece;
    size_t unk_surface_len, unk_piece_len, bos_piece_len, eos_piece_len;
    int has_unk_surface;
} pb_trainer;

static int pb_parse_trainer(const unsigned char *d, size_t n, pb_trainer *t, const unsigned char **fail) {
    pb_t r = {d, d + n, NULL, 0};
    int f, w, k;
    uint64_t v = 0;
    const unsigned char *data = NULL;
    size_t len = 0;
    while ((k = pb_next(&r, &f, &w, &v, &data, &len)) > 0) {
        if (w == 0) {
            if (f == 3) t->model_type = (int)v;
            else if (f == 35) t->byte_fallback = v != 0;
            else if (f == 24) t->treat_ws_as_suffix = v != 0;
        } else if (w == 2) {
            if (f == 44) { t->unk_surface = data; t->unk_surface_len = len; t->has_unk_surface = 1; }
            else if (f == 45) { t->unk_piece = data; t->unk_piece_len = len; }
            else if (f == 46) { t->bos_piece = data; t->bos_piece_len = len; }
            else if (f == 47) { t->eos_piece = data; t->eos_piece_len = len; }
        }
    }
    if (k < 0) *fail = r.fail;
    return k;
}

typedef struct {
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    const unsigned char *charsmap;
    size_t charsmap_len;
    const unsigned char *name;
    size_t name_len;
} pb_normspec;

static int pb_parse_normspec(const unsigned char *d, size_t n, pb_normspec *s, const unsigned char **fail) {
    pb_t r = {d, d + n, NULL, 0};
    int f, w, k;
    uint64_t v = 0;
    const unsigned char *data = NULL;
    size_t len = 0;
    while ((k = pb_next(&r, &f, &w, &v, &data, &len)) > 0) {
        if (w == 0) {
            if (f == 3) s->add_dummy_prefix = v != 0;
            else if (f == 4) s->remove_extra_whitespaces = v != 0;
            else if (f == 5) s->escape_whitespaces = v != 0;
        } else if (w == 2) {
            if (f == 1) { s->name = data; s->name_len = len; }
            else if (f == 2) { s->charsmap = data; s->charsmap_len = len; }
        }
    }
    if (k < 0) *fail = r.fail;
    return k;
}

/* ---- normalizer ---- */

/* Decode the precompiled charsmap: <u32 trie size><double array><strings>. */
static int sp_norm_init(sp_norm *nz, const pb_normspec *s) {
    nz->add_dummy_prefix = s->add_dummy_prefix;
    nz->remove_extra_whitespaces = s->remove_extra_whitespaces;
    nz->escape_whitespaces = s->escape_whitespaces;
    if (!s->charsmap || s->charsmap_len == 0) return 0;
    const unsigned char *b = s->charsmap;
    if (s->charsmap_len <= 4) return -1;
    uint32_t tsize = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (tsize >= s->charsmap_len - 4 + 1 || tsize % 4 || tsize == 0) return -1;
    nz->ntrie = tsize / 4;
    nz->trie = bpt_xmalloc(tsize);
    for (size_t i = 0; i < nz->ntrie; i++) {
        const unsigned char *u = b + 4 + 4 * i;
        nz->trie[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    nz->npool = s->charsmap_len - 4 - tsize;
    nz->pool = bpt_xmalloc(nz->npool + 1);
    memcpy(nz->pool, b + 4 + tsize, nz->npool);
    nz->pool[nz->npool] = 0;
    return 0;
}

static void sp_norm_free(sp_norm *nz) {
    free(nz->trie);
    free(nz->pool);
}

/* darts-clone DoubleArray::commonPrefixSearch, keeping the longest match:
 * the length of the longest key that is a prefix of s (0 if none) and its value. */
static size_t darts_longest_prefix(const uint32_t *a, size_t na, const unsigned char *s, size_t n,
                                   uint32_t *value) {
    #define D_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    #define D_LABEL(u) ((u) & ((1u << 31) | 0xFFu))
    #define D_HAS_LEAF(u) (((u) >> 8) & 1u)
    #define D_VALUE(u) ((u) & ((1u << 31) - 1))
    size_t best = 0, pos = 0;
    uint32_t unit = a[0];
    pos ^= D_OFFSET(unit);
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= na) break;
        unit = a[pos];
        if (D_LABEL(unit) != s[i]) break;
        pos ^= D_OFFSET(unit);
        if (pos >= na) break;
        if (D_HAS_LEAF(unit)) { best = i + 1; *value = D_VALUE(a[pos]); }
    }
    return best;
    #undef D_OFFSET
    #undef D_LABEL
    #undef D_HAS_LEAF
    #undef D_VALUE
}

/* Length of the longest user-defined piece at the start of s, 0 if none. */
static size_t sp_user_match(const sp_model *m, const char *s, size_t n) {
    if (m->n_user == 0 || !m->user_first[(unsigned char)s[0]]) return 0;
    size_t k = n < (size_t)m->user_maxlen ? n : (size_t)m->user_maxlen;
    for (; k > 0; k--) {
        int32_t id = smap_get(&m->normal, s, k);
        if (id >= 0 && m->type[id] == SP_USER_DEFINED) return k;
    }
    return 0;
}

/* Normalizer::NormalizePrefix: consumes a prefix of s and gives its normalized form. */
static size_t sp_norm_prefix(const sp_model *m, const sp_norm *nz, const char *s, size_t n,
                             const char **out, size_t *outlen) {
    if (m) {
        size_t k = sp_user_match(m, s, n);
        if (k) { *out = s; *outlen = k; return k; }
    }
    if (nz->trie) {
        uint32_t v = 0;
        size_t k = darts_longest_prefix(nz->trie, nz->ntrie, (const unsigned char *)s, n, &v);
        if (k) {
            if (v < nz->npool) { *out = nz->pool + v; *outlen = strlen(nz->pool + v); }
            else { *out = ""; *outlen = 0; }
            return k;
        }
    }
    size_t k;
    if (!sp_valid_utf8((const unsigned char *)s, n, &k)) {
        *out = "\xEF\xBF\xBD";     /* malformed byte -> U+FFFD, one byte consumed */
        *outlen = 3;
        return 1;
    }
    *out = s;
    *outlen = k;
    return k;
}

/* Normalizer::Normalize (m != NULL: user-defined symbols pass through unchanged). */
static void sp_normalize(const sp_model *m, const sp_norm *nz, int ws_suffix,
                         const char *in, size_t n, buf_t *out) {
    out->n = 0;
    buf_reserve(out, n * 3 + 8);
    out->p[0] = 0;
    if (n == 0) return;
    size_t i = 0;
    const char *p;
    size_t plen;
    if (nz->remove_extra_whitespaces) {             /* drop leading spaces */
        while (i < n) {
            size_t c = sp_norm_prefix(m, nz, in + i, n - i, &p, &plen);
            if (!(plen == 1 && p[0] == ' ')) break;
            i += c;
        }
    }
    if (i == n) return;
    const char *ws = nz->escape_whitespaces ? kSpace : " ";
    size_t wslen = strlen(ws);
    if (!ws_suffix && nz->add_dummy_prefix) buf_add(out, ws, wslen);
    int prev_space = nz->remove_extra_whitespaces;
    while (i < n) {
        size_t c = sp_norm_prefix(m, nz, in + i, n - i, &p, &plen);
        while (prev_space && plen > 0 && p[0] == ' ') { p++; plen--; }
        if (plen > 0) {
            for (size_t k = 0; k < plen; k++) {
                if (nz->escape_whitespaces && p[k] == ' ') buf_add(out, kSpace, 3);
                else buf_addc(out, p[k]);
            }
            prev_space = p[plen - 1] == ' ';
        }
        i += c;
        if (!nz->remove_extra_whitespaces) prev_space = 0;
    }
    if (nz->remove_extra_whitespaces) {             /* drop trailing spaces */
        while (out->n >= wslen && memcmp(out->p + out->n - wslen, ws, wslen) == 0) out->n -= wslen;
        out->p[out->n] = 0;
    }
    if (ws_suffix && nz->add_dummy_prefix) buf_add(out, ws, wslen);
}

/* ---- model ---- */

static void sp_free(sp_model *m) {
    if (!m) return;
    if (m->piece) for (int i = 0; i < m->n; i++) free(m->piece[i]);
    free(m->piece);
    free(m->len);
    free(m->score);
    free(m->type);
    free(m->byteval);
    smap_free(&m->normal);
    smap_free(&m->reserved);
    free(m->pairs.slot);
    free(m->unk_surface);
    sp_norm_free(&m->norm);
    sp_norm_free(&m->denorm);
    free(m);
}

/* ModelInterface::PieceToId: reserved pieces first, then normal ones, else unk. */
static int sp_piece_to_id(const sp_model *m, const char *s, size_t n) {
    int32_t id = smap_get(&m->reserved, s, n);
    if (id >= 0) return id;
    id = smap_get(&m->normal, s, n);
    return id >= 0 ? id : m->unk_id;
}

static sp_model *sp_load(const char *path, const char *data, size_t size, char *err, size_t errlen) {
    const unsigned char *d = (const unsigned char *)data;
    pb_t r = {d, d + size, NULL, 0};
    int f, w, k;
    uint64_t v = 0;
    const unsigned char *fd = NULL, *inner = NULL;
    size_t flen = 0;
    int npieces = 0;
    pb_trainer tr = {0};
    tr.model_type = SP_MODEL_UNIGRAM;                 /* proto default */
    pb_normspec ns = {1, 1, 1, NULL, 0, NULL, 0};     /* proto defaults */
    pb_normspec dn = {1, 1, 1, NULL, 0, NULL, 0};
    int has_trainer = 0, has_norm = 0;
    const char *inside = NULL;                        /* the sub-message that is malformed */

    /* pass 1: count pieces, read the specs */
    while ((k = pb_next(&r, &f, &w, &v, &fd, &flen)) > 0) {
        if (f == 1 && w == 2) npieces++;
        else if (f == 2 && w == 2) {
            if (pb_parse_trainer(fd, flen, &tr, &inner) < 0) { k = -1; inside = "trainer_spec"; }
            has_trainer = 1;
        } else if (f == 3 && w == 2) {
            if (pb_parse_normspec(fd, flen, &ns, &inner) < 0) { k = -1; inside = "normalizer_spec"; }
            has_norm = 1;
        } else if (f == 5 && w == 2) {
            if (pb_parse_normspec(fd, flen, &dn, &inner) < 0) { k = -1; inside = "denormalizer_spec"; }
        }
        if (k < 0) break;
    }
    if (k < 0 && inside) {
        bpt_err(err, errlen, "%s: SentencePiece model is malformed at byte offset %zu (inside its %s)", path,
                (size_t)(inner - d), inside);
        return NULL;
    }
    if (k < 0 && r.past_end) {
        bpt_err(err, errlen, "%s: SentencePiece model is truncated at byte offset %zu (the field that starts "
                "there runs past the end of the file at byte %zu)", path, (size_t)(r.fail - d), size);
        return NULL;
    }
    if (k < 0) {
        bpt_err(err, errlen, "%s: not a SentencePiece model (malformed protobuf at byte offset %zu)", path,
                (size_t)(r.fail - d));
        return NULL;
    }
    if (npieces == 0) {
        bpt_err(err, errlen, "%s: not a SentencePiece model (no pieces in the ModelProto)", path);
        return NULL;
    }
    /* every model sentencepiece writes has both specs, after the pieces: a file
     * without them was cut at a field boundary */
    if (!has_trainer || !has_norm) {
        bpt_err(err, errlen, "%s: SentencePiece model is truncated or malformed at byte offset %zu (the file "
                "ends after %d pieces, without its %s)", path, size, npieces,
                !has_trainer ? "trainer_spec, field 2" : "normalizer_spec, field 3");
        return NULL;
    }
    if (tr.model_type == SP_MODEL_UNIGRAM) {
        bpt_err(err, errlen, "%s: unigram SentencePiece models are not supported "
                "(trainer_spec.model_type = UNIGRAM); only BPE models (as LLaMA's) are", path);
        return NULL;
    }
    if (tr.model_type != SP_MODEL_BPE) {
        bpt_err(err, errlen, "%s: SentencePiece trainer_spec.model_type %d is not supported "
                "(only BPE)", path, tr.model_type);
        return NULL;
    }

    sp_model *m = bpt_xcalloc(1, sizeof *m);
    m->n = npieces;
    m->piece = bpt_xcalloc((size_t)npieces, sizeof *m->piece);
    m->len = bpt_xcalloc((size_t)npieces, sizeof *m->len);
    m->score = bpt_xcalloc((size_t)npieces, sizeof *m->score);
    m->type = bpt_xcalloc((size_t)npieces, 1);
    m->byteval = bpt_xcalloc((size_t)npieces, sizeof *m->byteval);
    m->byte_fallback = tr.byte_fallback;
    m->treat_ws_as_suffix = tr.treat_ws_as_suffix;
    m->unk_id = -1;
    smap_init(&m->normal, (size_t)npieces);
    smap_init(&m->reserved, 300);

    /* pass 2: the pieces */
    r.p = d;
    int i = 0;
    while ((k = pb_next(&r, &f, &w, &v, &fd, &flen)) > 0) {
        if (!(f == 1 && w == 2)) continue;
        pb_piece pc;
        if (pb_parse_piece(fd, flen, &pc) < 0 || pc.len == 0 || memchr(pc.piece, 0, pc.len)) {
            bpt_err(err, errlen, "%s: SentencePiece piece %d (at byte offset %zu) is empty or malformed", path, i,
                    (size_t)(fd - (const unsigned char *)data));
            goto fail;
        }
        if (pc.type < SP_NORMAL || pc.type > SP_BYTE) {
            bpt_err(err, errlen, "%s: SentencePiece piece %d has unknown type %d", path, i, pc.type);
            goto fail;
        }
        m->piece[i] = bpt_xmalloc(pc.len + 1);
        memcpy(m->piece[i], pc.piece, pc.len);
        m->piece[i][pc.len] = 0;
        m->len[i] = (uint32_t)pc.len;
        m->score[i] = pc.score;
        m->type[i] = (unsigned char)pc.type;
        int normal = pc.type == SP_NORMAL || pc.type == SP_USER_DEFINED || pc.type == SP_UNUSED;
        smap_t *map = normal ? &m->normal : &m->reserved;
        if (smap_get(map, m->piece[i], pc.len) >= 0) {
            bpt_err(err, errlen, "%s: SentencePiece piece \"%s\" is defined twice", path, m->piece[i]);
            i++;
            goto fail;
        }
        smap_put(map, m->piece[i], pc.len, i);
        if (pc.type == SP_UNKNOWN) {
            if (m->unk_id >= 0) {
                bpt_err(err, errlen, "%s: SentencePiece model defines unk twice", path);
                i++;
                goto fail;
            }
            m->unk_id = i;
        }
        m->byteval[i] = -1;
        if (pc.type == SP_BYTE) {             /* must be "<0xXX>", upper-case hex */
            unsigned v2 = 0;
            char want[8] = "";
            if (pc.len == 6 && sscanf(m->piece[i], "<0x%2X>", &v2) == 1)
                snprintf(want, sizeof want, "<0x%02X>", v2);
            if (!m->byte_fallback || strcmp(want, m->piece[i]) != 0) {
                bpt_err(err, errlen, "%s: byte piece \"%s\" is invalid (or "
                        "trainer_spec.byte_fallback is off)", path, m->piece[i]);
                i++;
                goto fail;
            }
            m->byteval[i] = (int16_t)v2;
        }
        if (pc.type == SP_UNUSED) m->has_unused = 1;
        if (pc.type == SP_USER_DEFINED) {
            m->n_user++;
            if ((int)pc.len > m->user_maxlen) m->user_maxlen = (int)pc.len;
            m->user_first[pc.piece[0]] = 1;
        }
        i++;
    }
    if (m->unk_id < 0) {
        bpt_err(err, errlen, "%s: SentencePiece model has no unknown piece (unk is not defined)", path);
        goto fail;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_id[b] = sp_piece_to_id(m, name, 6);
        if (m->byte_fallback && m->type[m->byte_id[b]] != SP_BYTE) {
            bpt_err(err, errlen, "%s: byte_fallback is set but piece %s is missing", path, name);
            goto fail;
        }
    }
    /* bos/eos: the control piece named by trainer_spec (default <s>, </s>) */
    {
        const char *bp = tr.bos_piece_len ? (const char *)tr.bos_piece : "<s>";
        size_t bl = tr.bos_piece_len ? tr.bos_piece_len : 3;
        const char *ep = tr.eos_piece_len ? (const char *)tr.eos_piece : "</s>";
        size_t el = tr.eos_piece_len ? tr.eos_piece_len : 4;
        int id = sp_piece_to_id(m, bp, bl);
        m->bos_id = m->type[id] == SP_CONTROL ? id : -1;
        id = sp_piece_to_id(m, ep, el);
        m->eos_id = m->type[id] == SP_CONTROL ? id : -1;
    }
    if (tr.has_unk_surface) {
        m->unk_surface = bpt_xmalloc(tr.unk_surface_len + 1);
        memcpy(m->unk_surface, tr.unk_surface, tr.unk_surface_len);
        m->unk_surface[tr.unk_surface_len] = 0;
    } else {
        m->unk_surface = bpt_xstrdup(" \xE2\x81\x87 ");   /* " ⁇ " */
    }
    /* every way to write a normal piece as two normal pieces */
    pmap_init(&m->pairs, (size_t)m->n * 4);
    for (int id = 0; id < m->n; id++) {
        if (smap_get(&m->normal, m->piece[id], m->len[id]) != id) continue;
        for (uint32_t cut = 1; cut < m->len[id]; cut++) {
            int32_t a = smap_get(&m->normal, m->piece[id], cut);
            int32_t b = a >= 0 ? smap_get(&m->normal, m->piece[id] + cut, m->len[id] - cut) : -1;
            if (b >= 0) pmap_put(&m->pairs, a, b, 0, id);
        }
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        m->ascii_id[c] = smap_get(&m->normal, &ch, 1);
    }
    if (sp_norm_init(&m->norm, &ns) < 0) {
        bpt_err(err, errlen, "%s: normalizer_spec.precompiled_charsmap is broken", path);
        goto fail;
    }
    if (dn.charsmap_len > 0) {
        if (sp_norm_init(&m->denorm, &dn) < 0) {
            bpt_err(err, errlen, "%s: denormalizer_spec.precompiled_charsmap is broken", path);
            goto fail;
        }
        m->has_denorm = 1;
    }
    return m;
fail:
    m->n = i;
    sp_free(m);
    return NULL;
}

/* ---- BPE encoding (bpe_model.cc) ---- */

typedef struct {
    int prev, next;
    int freeze;
    int id;          /* id of the piece in pieces_, -1 if it is not one */
    const char *p;
    size_t len;
} sp_sym;

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

static int cand_before(const bpe_cand *a, const bpe_cand *b) {
    return a->key > b->key || (a->key == b->key && a->pos < b->pos);
}

typedef struct {
    bpe_cand *a;
    size_t n, cap;
} bpe_heap;

static void bpe_heap_push(bpe_heap *h, bpe_cand x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->a = bpt_xrealloc(h->a, h->cap * sizeof *h->a);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!cand_before(&x, &h->a[up])) break;
        h->a[i] = h->a[up];
        i = up;
    }
    h->a[i] = x;
}

static bpe_cand bpe_heap_pop(bpe_heap *h) {
    bpe_cand top = h->a[0], x = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->a[c + 1], &h->a[c])) c++;
        if (!cand_before(&h->a[c], &x)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = x;
    return top;
}

/* rev_merge entries for UNUSED pieces: piece -> (left, right) */
typedef struct {
    const char *p, *l, *r;
    size_t pn, ln, rn;
} sp_rev;

typedef struct {
    sp_rev *a;
    size_t n, cap;
} sp_revs;

typedef struct {
    const sp_model *m;
    sp_sym *sym;
    bpe_heap heap;
    sp_revs rev;
} sp_state;

static void sp_maybe_add_pair(sp_state *st, int left, int right) {
    if (left < 0 || right < 0) return;
    sp_sym *l = &st->sym[left], *r = &st->sym[right];
    if (l->freeze || r->freeze) return;
    size_t size = l->len + r->len;
    int32_t id;
    if (l->id >= 0 && r->id >= 0) {
        const pmap_slot *e = pmap_get(&st->m->pairs, l->id, r->id);
        id = e ? e->id : -1;
    } else {
        id = smap_get(&st->m->normal, l->p, size);        /* l and r are adjacent in memory */
    }
    if (id < 0) return;
    bpe_cand pr = {st->m->score[id], left, right, size, id};
    bpe_heap_push(&st->heap, pr);
    if (st->m->type[id] == SP_UNUSED) {
        sp_rev *e = NULL;
        for (size_t i = 0; i < st->rev.n; i++)
            if (st->rev.a[i].pn == size && memcmp(st->rev.a[i].p, l->p, size) == 0) e = &st->rev.a[i];
        if (!e) {
            if (st->rev.n == st->rev.cap) {
                st->rev.cap = st->rev.cap ? 2 * st->rev.cap : 16;
                st->rev.a = bpt_xrealloc(st->rev.a, st->rev.cap * sizeof *st->rev.a);
            }
            e = &st->rev.a[st->rev.n++];
        }
        e->p = l->p; e->pn = size;
        e->l = l->p; e->ln = l->len;
        e->r = r->p; e->rn = r->len;
    }
}

typedef struct {
    int32_t **ids;
    size_t *n, *cap;
    int prev_unk;
    int fail;
} sp_out;

/* PopulateSentencePieceText for one (piece, id): byte fallback for unknown pieces,
 * runs of unknown pieces merged into one unk when there is no byte fallback. */
static void sp_emit(const sp_model *m, sp_out *o, const char *p, size_t n, int id) {
    int is_unk = id == m->unk_id;
    if (m->type[id] == SP_CONTROL) {
        if (ids_push(o->ids, o->n, o->cap, id) < 0) o->fail = 1;
    } else if (is_unk && m->byte_fallback) {
        for (size_t i = 0; i < n; i++)
            if (ids_push(o->ids, o->n, o->cap, m->byte_id[(unsigned char)p[i]]) < 0) o->fail = 1;
    } else if (!(is_unk && o->prev_unk)) {
        if (ids_push(o->ids, o->n, o->cap, id) < 0) o->fail = 1;
    }
    o->prev_unk = is_unk;
}

static void sp_resegment(sp_state *st, sp_out *o, const char *p, size_t n, int depth) {
    const sp_model *m = st->m;
    int id = sp_piece_to_id(m, p, n);
    if (m->type[id] == SP_UNUSED && depth < 64) {
        for (size_t i = 0; i < st->rev.n; i++) {
            const sp_rev *e = &st->rev.a[i];
            if (e->pn == n && memcmp(e->p, p, n) == 0) {
                sp_resegment(st, o, e->l, e->ln, depth + 1);
                sp_resegment(st, o, e->r, e->rn, depth + 1);
                return;
            }
        }
    }
    sp_emit(m, o, p, n, id);
}

static int sp_encode(const sp_model *m, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    buf_t norm = {0};
    sp_normalize(m, &m->norm, m->treat_ws_as_suffix, text, len, &norm);
    if (norm.n == 0) { free(norm.p); return 0; }

    sp_state st = {m, NULL, {0}, {0}};
    st.sym = bpt_xmalloc(norm.n * sizeof *st.sym);
    int nsym = 0;
    /* split into characters; user-defined symbols are single, frozen symbols */
    for (size_t i = 0; i < norm.n;) {
        sp_sym *s = &st.sym[nsym];
        size_t k = sp_user_match(m, norm.p + i, norm.n - i);
        s->freeze = k > 0;
        if (!k) {
            k = sp_one_char_len((unsigned char)norm.p[i]);
            if (k > norm.n - i) k = norm.n - i;
        }
        s->p = norm.p + i;
        s->len = k;
        s->id = (k == 1 && (unsigned char)s->p[0] < 128) ? m->ascii_id[(unsigned char)s->p[0]]
                                                         : smap_get(&m->normal, s->p, k);
        s->prev = nsym - 1;
        i += k;
        s->next = i < norm.n ? nsym + 1 : -1;
        nsym++;
    }
    for (int i = 1; i < nsym; i++) sp_maybe_add_pair(&st, i - 1, i);

    while (st.heap.n > 0) {
        bpe_cand top = bpe_heap_pop(&st.heap);
        sp_sym *l = &st.sym[top.pos], *r = &st.sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;   /* stale */
        l->len += r->len;
        l->id = top.id;
        l->next = r->next;
        if (r->next >= 0) st.sym[r->next].prev = top.pos;
        r->len = 0;
        sp_maybe_add_pair(&st, l->prev, top.pos);
        sp_maybe_add_pair(&st, top.pos, l->next);
    }

    sp_out o = {ids, n, cap, 0, 0};
    for (int i = 0; i != -1; i = st.sym[i].next) sp_resegment(&st, &o, st.sym[i].p, st.sym[i].len, 0);

    free(st.sym);
    free(st.heap.a);
    free(st.rev.a);
    free(norm.p);
    return o.fail ? -1 : 0;
}

/* Byte pieces b[0..n) to text: each valid UTF-8 character as is, each malformed
 * byte as U+FFFD (SentencePieceProcessor::Decode's ProcessBytePieces). */
static void sp_flush_bytes(buf_t *out, const unsigned char *b, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k;
        if (!sp_valid_utf8(b + i, n - i, &k)) { buf_add(out, "\xEF\xBF\xBD", 3); k = 1; }
        else buf_add(out, b + i, k);
        i += k;
    }
}

static char *sp_decode(const sp_model *m, const int32_t *ids, size_t n, size_t *outlen) {
    buf_t text = {0}, bytes = {0};
    buf_reserve(&text, 16);
    int is_bos_ws = 1, bos_ws_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= m->n) { free(text.p); free(bytes.p); return NULL; }
        int t = m->type[id];
        if (t == SP_BYTE) { buf_addc(&bytes, (char)m->byteval[id]); continue; }
        sp_flush_bytes(&text, (const unsigned char *)bytes.p, bytes.n);
        bytes.n = 0;
        if (bos_ws_seen || text.n > 0) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (t == SP_CONTROL) continue;
        if (t == SP_UNKNOWN) { buf_add(&text, m->unk_surface, strlen(m->unk_surface)); continue; }
        const char *p = m->piece[id];
        size_t len = m->len[id];
        if (is_bos_ws && (m->norm.add_dummy_prefix || m->norm.remove_extra_whitespaces)) {
            if (len >= 3 && memcmp(p, kSpace, 3) == 0) {
                p += 3;
                len -= 3;
                bos_ws_seen = !m->norm.remove_extra_whitespaces;
            }
        }
        for (size_t k = 0; k < len;) {
            if (k + 3 <= len && memcmp(p + k, kSpace, 3) == 0) { buf_addc(&text, ' '); k += 3; }
            else buf_addc(&text, p[k++]);
        }
    }
    sp_flush_bytes(&text, (const unsigned char *)bytes.p, bytes.n);
    free(bytes.p);
    if (m->has_denorm) {
        buf_t d = {0};
        sp_normalize(NULL, &m->denorm, 0, text.p, text.n, &d);
        free(text.p);
        text = d;
        buf_reserve(&text, 0);
    }
    *outlen = text.n;
    return text.p;
}

/* ========================================================================== */
/* 4. Hugging Face tokenizer.json, byte-level BPE                             */
/* ========================================================================== */

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

static const char kGPT2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void hf_free(hf_bpe *h) {
    if (!h) return;
    for (int i = 0; i < h->n_ids; i++) {
        free(h->tok[i]);
        free(h->dec[i]);
    }
    free(h->tok);
    free(h->toklen);
    free(h->added_of);
    free(h->dec);
    free(h->declen);
    free(h->skip);
    smap_free(&h->vocab);
    free(h->merges.slot);
    free(h->prefix);
    free(h->suffix);
    for (int i = 0; i < h->n_added; i++) free(h->added[i].content);
    free(h->added);
    for (int i = 0; i < h->n_split; i++) pcre2_code_free(h->split[i].re);
    free(h->split);
    pcre2_code_free(h->bl_re);
    pcre2_code_free(h->word_re);
    free(h);
}

static pcre2_code *hf_compile(const char *pat, size_t len, int literal, char *msg, size_t msglen) {
    int ec;
    PCRE2_SIZE eo;
    /* PCRE2_LITERAL (a Split "String" pattern) refuses PCRE2_UCP, which only matters
     * to \w, \d and the like anyway */
    uint32_t opt = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opt, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR e[256];
        pcre2_get_error_message(ec, e, sizeof e);
        snprintf(msg, msglen, "%s at offset %zu", (const char *)e, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* best effort; interpreted otherwise */
    return re;
}

/* The GPT-2 byte -> unicode map: printable bytes map to themselves, the others
 * to U+0100 and up, in byte order. */
static void hf_bytes_char(uint32_t cp[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int hf_set_token(hf_bpe *h, int id, const char *s, size_t len) {
    if (id < 0 || id >= h->n_ids || h->tok[id]) return -1;
    h->tok[id] = bpt_xmalloc(len + 1);
    memcpy(h->tok[id], s, len);
    h->tok[id][len] = 0;
    h->toklen[id] = (uint32_t)len;
    return 0;
}

/* One pre-tokenizer of the JSON (recursing into Sequence). */
static int hf_add_pretok(hf_bpe *h, json_t *pt, int *seen_bytelevel, const char *path, char *err, size_t errlen) {
    const char *type = jstr(pt, "type");
    if (!type) return bpt_err(err, errlen, "%s: pre_tokenizer without a \"type\"", path);
    if (*seen_bytelevel)
        return bpt_err(err, errlen, "%s: pre_tokenizer %s after ByteLevel is not supported "
                       "(ByteLevel must be the last step)", path, type);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pt, "pretokenizers");
        if (!json_is_array(list))
            return bpt_err(err, errlen, "%s: pre_tokenizer.pretokenizers is not a list", path);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
            if (hf_add_pretok(h, e, seen_bytelevel, path, err, errlen) < 0) return -1;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        h->add_prefix_space = jbool(pt, "add_prefix_space", 1);
        h->use_regex = jbool(pt, "use_regex", 1);
        *seen_bytelevel = 1;
        return 0;
    }
    if (strcmp(type, "Split") == 0 || strcmp(type, "Digits") == 0) {
        hf_split s = {0};
        char msg[300];
        if (type[0] == 'S') {
            json_t *pat = json_object_get(pt, "pattern");
            const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
            if (!re && !lit)
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.pattern needs \"Regex\" or \"String\"", path);
            const char *src = re ? re : lit;
            json_t *jsrc = json_object_get(pat, re ? "Regex" : "String");
            s.re = hf_compile(src, json_string_length(jsrc), !re, msg, sizeof msg);
            if (!s.re)
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.pattern: %s", path, msg);
            const char *b = jstr(pt, "behavior");
            if (!b) b = "Removed";
            if (strcmp(b, "Removed") == 0) s.behavior = SPLIT_REMOVED;
            else if (strcmp(b, "Isolated") == 0) s.behavior = SPLIT_ISOLATED;
            else if (strcmp(b, "MergedWithPrevious") == 0) s.behavior = SPLIT_MERGED_PREV;
            else if (strcmp(b, "MergedWithNext") == 0) s.behavior = SPLIT_MERGED_NEXT;
            else if (strcmp(b, "Contiguous") == 0) s.behavior = SPLIT_CONTIGUOUS;
            else {
                pcre2_code_free(s.re);
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.behavior \"%s\" is unknown", path, b);
            }
            s.invert = jbool(pt, "invert", 0);
        } else {                          /* Digits: digits isolated, one by one or in runs */
            int each = jbool(pt, "individual_digits", 0);
            s.re = hf_compile(each ? "\\p{N}" : "\\p{N}+", PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
            BPT_CHECK(s.re, "digits regex: %s", msg);
            s.behavior = SPLIT_ISOLATED;
        }
        h->split = bpt_xrealloc(h->split, (size_t)(h->n_split + 1) * sizeof *h->split);
        h->split[h->n_split++] = s;
        return 0;
    }
    return bpt_err(err, errlen, "%s: pre_tokenizer type \"%s\" is not supported "
                   "(supported: ByteLevel, Split, Digits, Sequence of those)", path, type);
}

/* BOS/EOS from a TemplateProcessing post-processor: a special token first / last in "single". */
static void hf_template_ids(hf_bpe *h, json_t *pp) {
    const char *type = jstr(pp, "type");
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pp, "processors");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) hf_template_ids(h, e);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    json_t *single = json_object_get(pp, "single");
    json_t *specials = json_object_get(pp, "special_tokens");
    size_t n = json_array_size(single);
    for (int end = 0; end < 2 && n > 0; end++) {
        json_t *e = json_object_get(json_array_get(single, end ? n - 1 : 0), "SpecialToken");
        const char *name = jstr(e, "id");
        if (!name) continue;
        json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (json_array_size(ids) != 1 || !json_is_integer(json_array_get(ids, 0))) continue;
        int id = (int)json_integer_value(json_array_get(ids, 0));
        if (id < 0 || id >= h->n_ids) continue;
        if (end) h->eos_id = id;
        else h->bos_id = id;
    }
}

static int hf_find_added(const hf_bpe *h, const char *const *names) {
    for (int k = 0; names[k]; k++)
        for (int i = 0; i < h->n_added; i++)
            if (strcmp(h->added[i].content, names[k]) == 0) return h->added[i].id;
    return -1;
}

/* The type of a normalizer / pre-tokenizer / decoder object as "Sequence[A, B]" into b
 * (list: the key of a Sequence's members); whether any step is SentencePiece-style:
 * Metaspace, ByteFallback, Prepend, or a Replace to or from U+2581. */
static int hf_sp_steps(json_t *o, const char *list, buf_t *b) {
    const char *type = jstr(o, "type");
    if (!type) return 0;
    buf_add(b, type, strlen(type));
    if (strcmp(type, "Sequence") == 0) {
        json_t *items = json_object_get(o, list), *e;
        size_t i;
        int sp = 0;
        buf_addc(b, '[');
        json_array_foreach(items, i, e) {
            if (i) buf_add(b, ", ", 2);
            sp |= hf_sp_steps(e, list, b);
        }
        buf_addc(b, ']');
        return sp;
    }
    if (!strcmp(type, "Metaspace") || !strcmp(type, "ByteFallback") || !strcmp(type, "Prepend")) return 1;
    if (!strcmp(type, "Replace")) {
        const char *pat = jstr(json_object_get(o, "pattern"), "String"), *content = jstr(o, "content");
        return (pat && strstr(pat, kSpace)) || (content && strstr(content, kSpace));
    }
    return 0;
}

/* "normalizer Sequence[Prepend, Replace]" etc. for the first SentencePiece-style part
 * of a tokenizer.json (as LLaMA 1/2's, converted by transformers), or NULL. */
static char *hf_sp_style(json_t *root) {
    static const char *const parts[][2] = {{"normalizer", "normalizers"}, {"pre_tokenizer", "pretokenizers"},
                                           {"decoder", "decoders"}};
    for (int k = 0; k < 3; k++) {
        buf_t b = {0};
        buf_add(&b, parts[k][0], strlen(parts[k][0]));
        buf_addc(&b, ' ');
        if (hf_sp_steps(json_object_get(root, parts[k][0]), parts[k][1], &b)) {
            buf_addc(&b, 0);
            return b.p;
        }
        free(b.p);
    }
    return NULL;
}

/* path names the file for messages; data (len bytes) is its content, read once */
static hf_bpe *hf_load(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        bpt_err(err, errlen, "%s: not valid JSON (line %d, column %d: %s)", path, jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    hf_bpe *h = bpt_xcalloc(1, sizeof *h);
    h->unk_id = h->bos_id = h->eos_id = -1;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    const char *mtype = jstr(model, "type");
    if (!json_is_object(root) || !json_is_object(model)) {
        bpt_err(err, errlen, "%s: not a Hugging Face tokenizer.json (no \"model\" object)", path);
        goto fail;
    }
    if (mtype ? strcmp(mtype, "BPE") != 0 : !merges) {
        bpt_err(err, errlen, "%s: model.type \"%s\" is not supported (only BPE)", path,
                mtype ? mtype : "?");
        goto fail;
    }
    char *sp_style = hf_sp_style(root);
    if (sp_style) {
        bpt_err(err, errlen, "%s: a SentencePiece-style BPE tokenizer.json (%s) is not supported, only "
                "byte-level BPE (HINT: for LLaMA 1/2 use the SentencePiece tokenizer.model)", path, sp_style);
        free(sp_style);
        goto fail;
    }
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        bpt_err(err, errlen, "%s: model.vocab must be an object and model.merges a list", path);
        goto fail;
    }
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *t = jstr(norm, "type");
        bpt_err(err, errlen, "%s: normalizer \"%s\" is not supported (only null, as in "
                "GPT-2 and LLaMA 3; for LLaMA 1/2 use the SentencePiece tokenizer.model)", path, t ? t : "?");
        goto fail;
    }
    json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec) && (!jstr(dec, "type") || strcmp(jstr(dec, "type"), "ByteLevel") != 0)) {
        const char *t = jstr(dec, "type");
        bpt_err(err, errlen, "%s: decoder \"%s\" is not supported (only ByteLevel)", path, t ? t : "?");
        goto fail;
    }

    /* ids: vocab and added tokens. They must be dense, 0..n-1 with every id used, n
     * the number of distinct ids: an id past the entries present (1e9, say) is an error
     * before anything is sized by it. An added token may repeat a vocab entry's id. */
    size_t nentries = json_object_size(vocab) + json_array_size(added);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0) {
            bpt_err(err, errlen, "%s: model.vocab[\"%s\"] is not a valid id (a non-negative integer)", path, key);
            goto fail;
        }
    }
    size_t ai;
    json_t *at;
    json_array_foreach(added, ai, at) {
        json_t *id = json_object_get(at, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !jstr(at, "content")) {
            bpt_err(err, errlen, "%s: added_tokens[%zu] needs an \"id\" (a non-negative integer) and a "
                    "\"content\"", path, ai);
            goto fail;
        }
    }
    if (nentries >= (1u << 30)) {
        bpt_err(err, errlen, "%s: %zu vocabulary entries; at most 2^30 are supported", path, nentries);
        goto fail;
    }
    {
        /* ids < nentries are marked; V, the vocab size, is the number of distinct ids
         * (those >= nentries counted once each: they are wrong anyway) */
        unsigned char *used = bpt_xcalloc(nentries + 1, 1);
        size_t V = 0;
        json_object_foreach(vocab, key, val) {
            json_int_t id = json_integer_value(val);
            if (id >= (json_int_t)nentries) V++;
            else if (!used[id]) { used[id] = 1; V++; }
        }
        json_array_foreach(added, ai, at) {
            json_int_t id = json_integer_value(json_object_get(at, "id"));
            if (id >= (json_int_t)nentries) V++;
            else if (!used[id]) { used[id] = 1; V++; }
        }
        /* dense exactly when no id is >= V; name the largest that is */
        json_int_t big = -1;
        const char *big_tok = NULL, *big_where = NULL;
        json_object_foreach(vocab, key, val) {
            json_int_t id = json_integer_value(val);
            if (id >= (json_int_t)V && id > big) { big = id; big_tok = key; big_where = "model.vocab"; }
        }
        json_array_foreach(added, ai, at) {
            json_int_t id = json_integer_value(json_object_get(at, "id"));
            if (id >= (json_int_t)V && id > big) { big = id; big_tok = jstr(at, "content"); big_where = "added"; }
        }
        size_t missing = 0;
        while (missing < V && used[missing]) missing++;
        free(used);
        if (big >= 0) {
            bpt_err(err, errlen, "%s: %s token \"%s\" has id %lld, but the vocabulary holds %zu tokens "
                    "(model.vocab and added_tokens); ids must be 0..%zu with each used (no token has id %zu)",
                    path, big_where, big_tok, (long long)big, V, V - 1, missing);
            goto fail;
        }
        h->n_ids = (int)V;
    }
    h->tok = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->tok);
    h->toklen = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->toklen);
    h->dec = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->dec);
    h->declen = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->declen);
    h->skip = bpt_xcalloc((size_t)h->n_ids + 1, 1);
    h->added_of = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->added_of);
    smap_init(&h->vocab, json_object_size(vocab));
    json_object_foreach(vocab, key, val) {
        int id = (int)json_integer_value(val);
        /* jansson keys are NUL-terminated; byte-level tokens never contain NUL */
        if (hf_set_token(h, id, key, strlen(key)) < 0) {
            bpt_err(err, errlen, "%s: model.vocab uses id %d twice", path, id);
            goto fail;
        }
        smap_put(&h->vocab, h->tok[id], h->toklen[id], id);
    }

    /* model options */
    h->ignore_merges = jbool(model, "ignore_merges", 0);
    h->fuse_unk = jbool(model, "fuse_unk", 0);
    h->byte_fallback = jbool(model, "byte_fallback", 0);
    if (jstr(model, "continuing_subword_prefix") && *jstr(model, "continuing_subword_prefix"))
        h->prefix = bpt_xstrdup(jstr(model, "continuing_subword_prefix"));
    if (jstr(model, "end_of_word_suffix") && *jstr(model, "end_of_word_suffix"))
        h->suffix = bpt_xstrdup(jstr(model, "end_of_word_suffix"));
    if (jstr(model, "unk_token")) {
        const char *u = jstr(model, "unk_token");
        h->unk_id = smap_get(&h->vocab, u, strlen(u));
        if (h->unk_id < 0) {
            bpt_err(err, errlen, "%s: model.unk_token \"%s\" is not in model.vocab", path, u);
            goto fail;
        }
    }

    /* merges: "a b" strings or [a, b] pairs; a later duplicate overrides */
    pmap_init(&h->merges, json_array_size(merges));
    size_t prefix_len = h->prefix ? strlen(h->prefix) : 0;
    buf_t tmp = {0};
    size_t mi;
    json_t *me;
    json_array_foreach(merges, mi, me) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (json_is_string(me)) {
            const char *s = json_string_value(me), *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) { a = s; al = (size_t)(sp - s); b = sp + 1; bl = strlen(b); }
        } else if (json_array_size(me) == 2 && json_is_string(json_array_get(me, 0)) &&
                   json_is_string(json_array_get(me, 1))) {
            a = json_string_value(json_array_get(me, 0));
            al = json_string_length(json_array_get(me, 0));
            b = json_string_value(json_array_get(me, 1));
            bl = json_string_length(json_array_get(me, 1));
        }
        if (!a) {
            bpt_err(err, errlen, "%s: model.merges[%zu] is not \"a b\" or [a, b]", path, mi);
            free(tmp.p);
            goto fail;
        }
        int ia = smap_get(&h->vocab, a, al), ib = smap_get(&h->vocab, b, bl);
        tmp.n = 0;
        buf_add(&tmp, a, al);
        if (bl >= prefix_len) buf_add(&tmp, b + prefix_len, bl - prefix_len);
        int inew = smap_get(&h->vocab, tmp.p, tmp.n);
        if (ia < 0 || ib < 0 || inew < 0) {
            bpt_err(err, errlen, "%s: model.merges[%zu] uses a token missing from model.vocab", path, mi);
            free(tmp.p);
            goto fail;
        }
        pmap_put(&h->merges, ia, ib, (int32_t)mi, inew);
    }
    free(tmp.p);

    /* the byte-level alphabet */
    uint32_t cp[256];
    hf_bytes_char(cp);
    for (int b = 0; b < 256; b++) {
        h->bytechar_len[b] = (unsigned char)utf8_encode(cp[b], h->bytechar[b]);
        h->byte_id[b] = smap_get(&h->vocab, h->bytechar[b], h->bytechar_len[b]);
    }

    /* added tokens (override the vocab's text for their ids) */
    h->n_added = (int)json_array_size(added);
    h->added = bpt_xcalloc((size_t)h->n_added + 1, sizeof *h->added);
    json_array_foreach(added, ai, at) {
        hf_added *a = &h->added[ai];
        json_t *c = json_object_get(at, "content");
        a->len = json_string_length(c);
        a->content = bpt_xmalloc(a->len + 1);
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->id = (int)json_integer_value(json_object_get(at, "id"));
        a->special = jbool(at, "special", 0);
        a->normalized = jbool(at, "normalized", !a->special);
        a->lstrip = jbool(at, "lstrip", 0);
        a->rstrip = jbool(at, "rstrip", 0);
        a->single_word = jbool(at, "single_word", 0);
        h->added_of[a->id] = a;
        if (a->len) h->added_first[(unsigned char)a->content[0]] = 1;
    }
    for (int i = 0; i < h->n_added; i++)       /* special-ness is by content, as in tokenizers */
        if (h->added[i].special)
            for (int j = 0; j < h->n_added; j++)
                if (strcmp(h->added[j].content, h->added[i].content) == 0) h->skip[h->added[j].id] = 1;

    /* decoded bytes of every id (ByteLevel decoder): a token whose characters are
     * all in the byte-level alphabet gives those bytes, any other its own text */
    int16_t rev[0x100 + 68];
    for (int c = 0; c < 0x100 + 68; c++) rev[c] = -1;
    for (int b = 0; b < 256; b++) rev[cp[b]] = (int16_t)b;
    for (int id = 0; id < h->n_ids; id++) {
        const char *text = h->added_of[id] ? h->added_of[id]->content : h->tok[id];
        size_t n = h->added_of[id] ? h->added_of[id]->len : h->toklen[id], i = 0;
        if (!text) continue;
        buf_t d = {0};
        buf_reserve(&d, n);
        while (i < n) {
            size_t k;
            uint32_t c = sp_decode_utf8((const unsigned char *)text + i, n - i, &k);
            if (c >= 0x100 + 68 || rev[c] < 0 || (c == 0xFFFD && k == 1)) break;
            buf_addc(&d, (char)rev[c]);
            i += k;
        }
        if (i < n) { d.n = 0; buf_add(&d, text, n); }
        h->dec[id] = d.p;
        h->declen[id] = (uint32_t)d.n;
    }

    /* pre-tokenizer */
    json_t *pt = json_object_get(root, "pre_tokenizer");
    int seen_bl = 0;
    if (pt && !json_is_null(pt) && hf_add_pretok(h, pt, &seen_bl, path, err, errlen) < 0) goto fail;
    if (!seen_bl) {
        bpt_err(err, errlen, "%s: pre_tokenizer has no ByteLevel step: not a byte-level "
                "BPE tokenizer (for LLaMA 1/2 use the SentencePiece tokenizer.model)", path);
        goto fail;
    }
    char msg[300];
    if (h->use_regex) {
        h->bl_re = hf_compile(kGPT2Pattern, PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
        BPT_CHECK(h->bl_re, "GPT-2 regex: %s", msg);
    }
    h->word_re = hf_compile("\\w", PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
    BPT_CHECK(h->word_re, "word regex: %s", msg);

    /* BOS/EOS: the post-processor's template, else well-known names */
    hf_template_ids(h, json_object_get(root, "post_processor"));
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", NULL};
    if (h->bos_id < 0) h->bos_id = hf_find_added(h, bos_names);
    if (h->eos_id < 0) h->eos_id = hf_find_added(h, eos_names);

    json_decref(root);
    return h;
fail:
    json_decref(root);
    hf_free(h);
    return NULL;
}

/* ---- encoding ---- */

typedef struct {
    int c;           /* token id */
    int prev, next;
    size_t len;      /* bytes covered; 0 = merged away */
} hf_sym;

/* Per-call scratch space, reused across the words of one encode call. */
typedef struct {
    hf_sym *sym;
    size_t symcap;
    bpe_heap heap;
    buf_t word;      /* the byte-level string of the current word */
    buf_t tmp;
    pcre2_match_data *md;
    int32_t **ids;
    size_t *n, *cap;
    int fail;
} hf_ctx;

static void hf_push(hf_ctx *cx, int32_t id) {
    if (ids_push(cx->ids, cx->n, cx->cap, id) < 0) cx->fail = 1;
}

static void hf_sym_add(hf_ctx *cx, int *nsym, int c, size_t len) {
    if ((size_t)*nsym == cx->symcap) {
        cx->symcap = cx->symcap ? 2 * cx->symcap : 64;
        cx->sym = bpt_xrealloc(cx->sym, cx->symcap * sizeof *cx->sym);
    }
    hf_sym *s = &cx->sym[*nsym];
    s->c = c;
    s->len = len;
    s->prev = *nsym - 1;
    s->next = -1;
    if (*nsym > 0) cx->sym[*nsym - 1].next = *nsym;
    (*nsym)++;
}

/* BPE of one pre-token w (raw bytes; its byte-level form is made here). */
static void hf_bpe_word(const hf_bpe *h, hf_ctx *cx, const unsigned char *w, size_t n) {
    if (n == 0) return;
    if (h->ignore_merges) {
        cx->word.n = 0;
        for (size_t i = 0; i < n; i++) buf_add(&cx->word, h->bytechar[w[i]], h->bytechar_len[w[i]]);
        int id = smap_get(&h->vocab, cx->word.p, cx->word.n);
        if (id >= 0) { hf_push(cx, id); return; }
    }
    /* BPE::merge_word: one symbol per character, unknowns handled */
    int nsym = 0;
    int unk_on = 0;
    size_t unk_len = 0;
    for (size_t i = 0; i < n; i++) {
        int id;
        if (!h->prefix && !h->suffix) {
            id = h->byte_id[w[i]];
        } else {
            cx->tmp.n = 0;
            if (h->prefix && i > 0) buf_add(&cx->tmp, h->prefix, strlen(h->prefix));
            buf_add(&cx->tmp, h->bytechar[w[i]], h->bytechar_len[w[i]]);
            if (h->suffix && i == n - 1) buf_add(&cx->tmp, h->suffix, strlen(h->suffix));
            id = smap_get(&h->vocab, cx->tmp.p, cx->tmp.n);
        }
        if (id >= 0) {
            if (unk_on) { hf_sym_add(cx, &nsym, h->unk_id, unk_len); unk_on = 0; }
            hf_sym_add(cx, &nsym, id, 1);
            continue;
        }
        if (h->byte_fallback) {            /* <0xXX> of each UTF-8 byte of the character */
            const char *s = h->bytechar[w[i]];
            int k, all = 1, bid[4];
            for (k = 0; k < h->bytechar_len[w[i]]; k++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", (unsigned char)s[k]);
                bid[k] = smap_get(&h->vocab, name, 6);
                if (bid[k] < 0) all = 0;
            }
            if (all) {
                for (k = 0; k < h->bytechar_len[w[i]]; k++) hf_sym_add(cx, &nsym, bid[k], 1);
                continue;
            }
        }
        if (h->unk_id >= 0) {
            if (unk_on && h->fuse_unk) unk_len += 1;
            else {
                if (unk_on) hf_sym_add(cx, &nsym, h->unk_id, unk_len);
                unk_on = 1;
                unk_len = 1;
            }
        }                                   /* no unk token: the character is dropped */
    }
    if (unk_on) hf_sym_add(cx, &nsym, h->unk_id, unk_len);
    if (nsym == 0) return;

    /* Word::merge_all: lowest rank first, then leftmost; entries checked for staleness */
    cx->heap.n = 0;
    for (int i = 0; i + 1 < nsym; i++) {
        const pmap_slot *m = pmap_get(&h->merges, cx->sym[i].c, cx->sym[i + 1].c);
        if (m) bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, i, 0, 0, m->id});
    }
    while (cx->heap.n > 0) {
        bpe_cand top = bpe_heap_pop(&cx->heap);
        hf_sym *cur = &cx->sym[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int np = cur->next;
        hf_sym right = cx->sym[np];
        const pmap_slot *m = pmap_get(&h->merges, cur->c, right.c);
        if (!m || m->id != top.id) continue;
        cur->c = top.id;
        cur->len += right.len;
        cur->next = right.next;
        cx->sym[np].len = 0;
        if (right.next >= 0) cx->sym[right.next].prev = top.pos;
        if (cur->prev >= 0) {
            m = pmap_get(&h->merges, cx->sym[cur->prev].c, cur->c);
            if (m) bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, cur->prev, 0, 0, m->id});
        }
        if (cur->next >= 0) {
            m = pmap_get(&h->merges, cur->c, cx->sym[cur->next].c);
            if (m) bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, top.pos, 0, 0, m->id});
        }
    }
    for (int i = 0; i < nsym; i++)
        if (cx->sym[i].len) hf_push(cx, cx->sym[i].c);
}

/* The matches of re in s[0..n): (start, end, is_match) ranges covering s. */
typedef struct {
    size_t a, b;
    int match;
} hf_range;

typedef struct {
    hf_range *r;
    size_t n, cap;
} hf_ranges;

static void ranges_add(hf_ranges *v, size_t a, size_t b, int match) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 32;
        v->r = bpt_xrealloc(v->r, v->cap * sizeof *v->r);
    }
    v->r[v->n++] = (hf_range){a, b, match};
}

static void hf_find_matches(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                            hf_ranges *out) {
    out->n = 0;
    if (n == 0) { ranges_add(out, 0, 0, 0); return; }
    size_t prev = 0, at = 0;
    while (at <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_JIT, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (prev != a) ranges_add(out, prev, a, 0);
        ranges_add(out, a, b, 1);
        prev = b;
        if (b > a) at = b;
        else {                                   /* empty match: step over one character */
            if (b >= n) break;
            at = b + 1;
            while (at < n && is_trail((unsigned char)s[at])) at++;
        }
    }
    if (prev != n) ranges_add(out, prev, n, 0);
}

/* NormalizedString::split with a SplitDelimiterBehavior: the kept pieces as ranges. */
static void hf_apply_behavior(const hf_ranges *m, int behavior, int invert, hf_ranges *out) {
    out->n = 0;
    int prev_match = 0;
    if (behavior == SPLIT_MERGED_NEXT) {
        /* walk backwards, merging a match into the piece after it */
        size_t start = out->n;
        for (size_t k = m->n; k-- > 0;) {
            int is = m->r[k].match ^ invert;
            if (is && !prev_match && out->n > start) out->r[out->n - 1].a = m->r[k].a;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            prev_match = is;
        }
        for (size_t i = 0, j = out->n - 1; out->n && i < j; i++, j--) {
            hf_range t = out->r[i];
            out->r[i] = out->r[j];
            out->r[j] = t;
        }
        return;
    }
    for (size_t k = 0; k < m->n; k++) {
        int is = m->r[k].match ^ invert;
        switch (behavior) {
        case SPLIT_ISOLATED:
            ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_REMOVED:
            if (!is) ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_CONTIGUOUS:
            if (is == prev_match && out->n > 0) out->r[out->n - 1].b = m->r[k].b;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_MERGED_PREV:
            if (is && !prev_match && out->n > 0) out->r[out->n - 1].b = m->r[k].b;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        }
        prev_match = is;
    }
}

/* ByteLevel on one piece, then BPE on each of its words. */
static void hf_bytelevel(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n, hf_ranges *scratch) {
    buf_t pre = {0};
    if (h->add_prefix_space && s[0] != ' ') {
        buf_addc(&pre, ' ');
        buf_add(&pre, s, n);
        s = pre.p;
        n = pre.n;
    }
    if (h->use_regex) {
        hf_find_matches(h->bl_re, cx->md, s, n, scratch);
        for (size_t k = 0; k < scratch->n; k++)
            hf_bpe_word(h, cx, (const unsigned char *)s + scratch->r[k].a, scratch->r[k].b - scratch->r[k].a);
    } else {
        hf_bpe_word(h, cx, (const unsigned char *)s, n);
    }
    free(pre.p);
}

/* A piece of text between added tokens: Split steps, then ByteLevel and BPE. */
static void hf_pretokenize(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n) {
    if (n == 0) return;
    hf_ranges cur = {0}, next = {0}, m = {0}, kept = {0};
    ranges_add(&cur, 0, n, 1);
    for (int st = 0; st < h->n_split; st++) {
        next.n = 0;
        for (size_t k = 0; k < cur.n; k++) {
            size_t a = cur.r[k].a, len = cur.r[k].b - a;
            hf_find_matches(h->split[st].re, cx->md, s + a, len, &m);
            hf_apply_behavior(&m, h->split[st].behavior, h->split[st].invert, &kept);
            for (size_t j = 0; j < kept.n; j++)
                if (kept.r[j].b > kept.r[j].a) ranges_add(&next, a + kept.r[j].a, a + kept.r[j].b, 1);
        }
        hf_ranges t = cur;
        cur = next;
        next = t;
    }
    for (size_t k = 0; k < cur.n; k++)
        if (cur.r[k].b > cur.r[k].a) hf_bytelevel(h, cx, s + cur.r[k].a, cur.r[k].b - cur.r[k].a, &m);
    free(cur.r);
    free(next.r);
    free(m.r);
    free(kept.r);
}

/* Unicode White_Space at s (length in *k), as Rust's char::is_whitespace. */
static int hf_is_space(const char *s, size_t n, size_t *k) {
    uint32_t c = sp_decode_utf8((const unsigned char *)s, n, k);
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Does a word character (\w) end at s[n] (before = 1) or start at s (before = 0)? */
static int hf_word_at(const hf_bpe *h, pcre2_match_data *md, const char *s, size_t n, int before) {
    if (n == 0) return 0;
    size_t at = 0;
    if (before) {
        at = n - 1;
        while (at > 0 && is_trail((unsigned char)s[at])) at--;
    }
    int rc = pcre2_match(h->word_re, (PCRE2_SPTR)s, n, at, PCRE2_ANCHORED, md, NULL);
    return rc > 0;
}

/* The added token matching at s (leftmost-longest), -1 if none. Only tokens with
 * normalized == want_norm take part (two passes, as AddedVocabulary does). */
static int hf_added_at(const hf_bpe *h, const char *s, size_t n, int want_norm) {
    int best = -1;
    size_t bestlen = 0;
    for (int i = 0; i < h->n_added; i++) {
        const hf_added *a = &h->added[i];
        if (a->normalized != want_norm || a->len == 0 || a->len > n || a->len <= bestlen) continue;
        if (memcmp(a->content, s, a->len) == 0) { best = i; bestlen = a->len; }
    }
    return best;
}

/* Split s[0..n) on added tokens of one kind; plain text goes to next(), or to the
 * second pass when pass == 0. */
static void hf_split_added(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n, int pass) {
    if (n == 0) return;
    size_t start = 0, i = 0;
    while (i < n) {
        if (!h->added_first[(unsigned char)s[i]]) { i++; continue; }
        int k = hf_added_at(h, s + i, n - i, pass);
        if (k < 0) { i++; continue; }
        const hf_added *a = &h->added[k];
        size_t ms = i, me = i + a->len;
        if (a->single_word && ((ms > 0 && hf_word_at(h, cx->md, s, ms, 1)) ||
                               (me < n && hf_word_at(h, cx->md, s + me, n - me, 0)))) {
            i = me;                                /* not a single word: stays text */
            continue;
        }
        if (a->lstrip) {
            size_t b = ms;
            while (b > start) {
                size_t p = b - 1, k2;
                while (p > start && is_trail((unsigned char)s[p])) p--;
                if (!hf_is_space(s + p, n - p, &k2)) break;
                b = p;
            }
            ms = b;
        }
        size_t end = me;
        if (a->rstrip) {
            size_t k2;
            while (end < n && hf_is_space(s + end, n - end, &k2)) end += k2;
        }
        if (pass == 0) hf_split_added(h, cx, s + start, ms - start, 1);
        else hf_pretokenize(h, cx, s + start, ms - start);
        hf_push(cx, a->id);
        start = end;
        i = me > end ? me : end;
    }
    if (pass == 0) hf_split_added(h, cx, s + start, n - start, 1);
    else hf_pretokenize(h, cx, s + start, n - start);
}

static int hf_encode(const hf_bpe *h, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    hf_ctx cx = {0};
    cx.ids = ids;
    cx.n = n;
    cx.cap = cap;
    cx.md = pcre2_match_data_create(8, NULL);
    BPT_CHECK(cx.md, "out of host memory");
    hf_split_added(h, &cx, text, len, 0);
    pcre2_match_data_free(cx.md);
    free(cx.sym);
    free(cx.heap.a);
    free(cx.word.p);
    free(cx.tmp.p);
    return cx.fail ? -1 : 0;
}

static char *hf_decode(const hf_bpe *h, const int32_t *ids, size_t n, size_t *outlen) {
    buf_t raw = {0}, out = {0};
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= h->n_ids || !h->dec[id]) { free(raw.p); return NULL; }
        if (h->skip[id]) continue;
        buf_add(&raw, h->dec[id], h->declen[id]);
    }
    buf_reserve(&out, raw.n + 16);
    out.p[0] = 0;
    utf8_lossy((const unsigned char *)raw.p, raw.n, &out);
    free(raw.p);
    *outlen = out.n;
    return out.p;
}

/* ========================================================================== */
/* 5. the public API                                                          */
/* ========================================================================== */

enum { TOK_BYTES, TOK_SP, TOK_BPE };

struct bpt_tokenizer {
    int kind;
    sp_model *sp;
    hf_bpe *hf;
};

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* The messages quote the file's own strings (pieces, tokens, types): keep them one
 * line, control characters as spaces (as config.c does). NULL for "return NULL". */
static bpt_tokenizer *one_line(char *err, size_t errlen) {
    for (size_t i = 0; err && i < errlen && err[i]; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) err[i] = ' ';
    return NULL;
}

bpt_tokenizer *bpt_tokenizer_open(const char *path, char *err, size_t errlen) {
    bpt_tokenizer *t = bpt_xcalloc(1, sizeof *t);
    if (!path || !*path || strcmp(path, "bytes") == 0) {
        t->kind = TOK_BYTES;
        return t;
    }
    size_t len = 0;
    char *data = read_file(path, &len, err, errlen);
    if (!data) { free(t); return one_line(err, errlen); }
    int json;
    if (ends_with(path, ".json")) json = 1;
    else if (ends_with(path, ".model")) json = 0;
    else {                                  /* other names: look at the content */
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
        json = i < len && data[i] == '{';
    }
    if (json) {
        t->kind = TOK_BPE;
        t->hf = hf_load(path, data, len, err, errlen);
        free(data);
        if (!t->hf) { free(t); return one_line(err, errlen); }
    } else {
        t->kind = TOK_SP;
        t->sp = sp_load(path, data, len, err, errlen);
        free(data);
        if (!t->sp) { free(t); return one_line(err, errlen); }
    }
    return t;
}

void bpt_tokenizer_free(bpt_tokenizer *t) {
    if (!t) return;
    sp_free(t->sp);
    hf_free(t->hf);
    free(t);
}

int bpt_tokenizer_vocab_size(const bpt_tokenizer *t) {
    switch (t->kind) {
    case TOK_SP: return t->sp->n;
    case TOK_BPE: return t->hf->n_ids;
    default: return 256;
    }
}

int bpt_tokenizer_bos_id(const bpt_tokenizer *t) {
    return t->kind == TOK_SP ? t->sp->bos_id : t->kind == TOK_BPE ? t->hf->bos_id : -1;
}

int bpt_tokenizer_eos_id(const bpt_tokenizer *t) {
    return t->kind == TOK_SP ? t->sp->eos_id : t->kind == TOK_BPE ? t->hf->eos_id : -1;
}

const char *bpt_tokenizer_kind(const bpt_tokenizer *t) {
    return t->kind == TOK_SP ? "sentencepiece" : t->kind == TOK_BPE ? "bpe" : "bytes";
}

int bpt_tokenizer_encode(const bpt_tokenizer *t, const char *text, size_t len,
                         int32_t **ids, size_t *n, size_t *cap) {
    switch (t->kind) {
    case TOK_SP: return sp_encode(t->sp, text, len, ids, n, cap);
    case TOK_BPE: return hf_encode(t->hf, text, len, ids, n, cap);
    default:
        for (size_t i = 0; i < len; i++)
            if (ids_push(ids, n, cap, (unsigned char)text[i]) < 0) return -1;
        return 0;
    }
}

char *bpt_tokenizer_decode(const bpt_tokenizer *t, const int32_t *ids, size_t n, size_t *outlen) {
    size_t dummy;
    if (!outlen) outlen = &dummy;
    switch (t->kind) {
    case TOK_SP: return sp_decode(t->sp, ids, n, outlen);
    case TOK_BPE: return hf_decode(t->hf, ids, n, outlen);
    default: {
        char *s = bpt_xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] > 255) { free(s); return NULL; }
            s[i] = (char)ids[i];
        }
        s[n] = 0;
        *outlen = n;
        return s;
    }
    }
}
