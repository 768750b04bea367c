/* tok_sentencepiece.c — SentencePiece models (tokenizer.model): a protobuf
 * wire-format reader for ModelProto, the normalizer (flags + precompiled charsmap),
 * BPE by piece score (bpe_model.cc), decoding. See src/tok_internal.h and
 * docs/tokenizers.md.
 */
#include "tok_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ModelProto.SentencePiece.Type */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };
/* TrainerSpec.ModelType */
enum { SP_MODEL_UNIGRAM = 1, SP_MODEL_BPE = 2, SP_MODEL_WORD = 3, SP_MODEL_CHAR = 4 };

typedef struct {
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    uint32_t *trie;          /* darts-clone double array of the precompiled charsmap */
    size_t ntrie;
    char *pool;              /* the replacement strings, NUL-terminated, indexed by trie values */
    size_t npool;
} sp_norm;

struct sp_model {
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
};


/* sentencepiece's IsValidDecodeUTF8: false only for a malformed byte (length 1). */
static int sp_valid_utf8(const unsigned char *s, size_t n, size_t *mblen) {
    return tok_sp_decode_utf8(s, n, mblen) != 0xFFFD || *mblen == 3;
}

/* sentencepiece's OneCharLen: the length announced by the lead byte. */
static size_t sp_one_char_len(unsigned char c) {
    return (size_t)"\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4];
}

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

/* The scalar and bytes fields a message's struct takes, by field number; pb_parse reads a
 * message into such a struct and skips every field it does not name. */
typedef enum { PB_BOOL, PB_INT, PB_F32, PB_BYTES } pb_kind;

typedef struct {
    int field;
    pb_kind kind;
    size_t off;        /* int (BOOL, INT), float (F32) or const unsigned char * (BYTES) */
    size_t len_off;    /* BYTES: its size_t length */
} pb_field;

#define PB_SCALAR(type, num, kind, member) { num, kind, offsetof(type, member), 0 }
#define PB_BYTES_OF(type, num, member) \
    { num, PB_BYTES, offsetof(type, member), offsetof(type, member##_len) }

static int pb_parse(const unsigned char *d, size_t n, const pb_field *fields, size_t nfields,
                    void *out, const unsigned char **fail) {
    static const int wire_of[] = { [PB_BOOL] = 0, [PB_INT] = 0, [PB_F32] = 5, [PB_BYTES] = 2 };
    pb_t r = {d, d + n, NULL, 0};
    int f, w, k;
    uint64_t v = 0;
    const unsigned char *data = NULL;
    size_t len = 0;
    char *o = out;
    while ((k = pb_next(&r, &f, &w, &v, &data, &len)) > 0) {
        for (size_t i = 0; i < nfields; i++) {
            const pb_field *x = &fields[i];
            if (x->field != f || wire_of[x->kind] != w) continue;
            switch (x->kind) {
            case PB_BOOL: *(int *)(o + x->off) = v != 0; break;
            case PB_INT: *(int *)(o + x->off) = (int)v; break;
            case PB_F32: { uint32_t b = (uint32_t)v; memcpy(o + x->off, &b, 4); break; }
            case PB_BYTES:
                *(const unsigned char **)(o + x->off) = data;
                *(size_t *)(o + x->len_off) = len;
                break;
            }
        }
    }
    if (k < 0 && fail) *fail = r.fail;
    return k;
}

/* SentencePiece (ModelProto.pieces) */
typedef struct {
    const unsigned char *piece;
    size_t piece_len;
    float score;
    int type;
} pb_piece;

static const pb_field pb_piece_fields[] = {
    PB_BYTES_OF(pb_piece, 1, piece),
    PB_SCALAR(pb_piece, 2, PB_F32, score),
    PB_SCALAR(pb_piece, 3, PB_INT, type),
};

/* TrainerSpec: what decoding needs of it */
typedef struct {
    int model_type, byte_fallback, treat_ws_as_suffix;
    const unsigned char *unk_surface, *unk_piece, *bos_piece, *eos_piece;  /* NULL: absent */
    size_t unk_surface_len, unk_piece_len, bos_piece_len, eos_piece_len;
} pb_trainer;

static const pb_field pb_trainer_fields[] = {
    PB_SCALAR(pb_trainer, 3, PB_INT, model_type),
    PB_SCALAR(pb_trainer, 35, PB_BOOL, byte_fallback),
    PB_SCALAR(pb_trainer, 24, PB_BOOL, treat_ws_as_suffix),
    PB_BYTES_OF(pb_trainer, 44, unk_surface),
    PB_BYTES_OF(pb_trainer, 45, unk_piece),
    PB_BYTES_OF(pb_trainer, 46, bos_piece),
    PB_BYTES_OF(pb_trainer, 47, eos_piece),
};

/* NormalizerSpec (normalizer_spec and denormalizer_spec) */
typedef struct {
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    const unsigned char *charsmap;
    size_t charsmap_len;
    const unsigned char *name;
    size_t name_len;
} pb_normspec;

static const pb_field pb_normspec_fields[] = {
    PB_BYTES_OF(pb_normspec, 1, name),
    PB_BYTES_OF(pb_normspec, 2, charsmap),
    PB_SCALAR(pb_normspec, 3, PB_BOOL, add_dummy_prefix),
    PB_SCALAR(pb_normspec, 4, PB_BOOL, remove_extra_whitespaces),
    PB_SCALAR(pb_normspec, 5, PB_BOOL, escape_whitespaces),
};

#define PB_PARSE(d, n, table, out, fail) \
    pb_parse(d, n, table, sizeof table / sizeof table[0], out, fail)

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

void tok_sp_free(sp_model *m) {
    if (!m) return;
    if (m->piece) for (int i = 0; i < m->n; i++) free(m->piece[i]);
    tok_smap_free(&m->normal);
    tok_smap_free(&m->reserved);
    sp_norm_free(&m->norm);
    sp_norm_free(&m->denorm);
    TOK_FREE(m->piece, m->len, m->score, m->type, m->byteval, m->pairs.slot, m->unk_surface, m);
}

void tok_sp_ids(const sp_model *m, int *vocab_size, int *bos_id, int *eos_id) {
    *vocab_size = m->n;
    *bos_id = m->bos_id;
    *eos_id = m->eos_id;
}

/* ModelInterface::PieceToId: reserved pieces first, then normal ones, else unk. */
static int sp_piece_to_id(const sp_model *m, const char *s, size_t n) {
    int32_t id = smap_get(&m->reserved, s, n);
    if (id >= 0) return id;
    id = smap_get(&m->normal, s, n);
    return id >= 0 ? id : m->unk_id;
}

sp_model *tok_sp_load(const char *path, const char *data, size_t size, char *err, size_t errlen) {
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
            if (PB_PARSE(fd, flen, pb_trainer_fields, &tr, &inner) < 0) { k = -1; inside = "trainer_spec"; }
            has_trainer = 1;
        } else if (f == 3 && w == 2) {
            if (PB_PARSE(fd, flen, pb_normspec_fields, &ns, &inner) < 0) { k = -1; inside = "normalizer_spec"; }
            has_norm = 1;
        } else if (f == 5 && w == 2) {
            if (PB_PARSE(fd, flen, pb_normspec_fields, &dn, &inner) < 0) { k = -1; inside = "denormalizer_spec"; }
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
    tok_smap_init(&m->normal, (size_t)npieces);
    tok_smap_init(&m->reserved, 300);

    /* pass 2: the pieces */
    r.p = d;
    int i = 0;
    while ((k = pb_next(&r, &f, &w, &v, &fd, &flen)) > 0) {
        if (!(f == 1 && w == 2)) continue;
        pb_piece pc = { NULL, 0, 0.0f, SP_NORMAL };
        if (PB_PARSE(fd, flen, pb_piece_fields, &pc, NULL) < 0 || pc.piece_len == 0 ||
            memchr(pc.piece, 0, pc.piece_len)) {
            bpt_err(err, errlen, "%s: SentencePiece piece %d (at byte offset %zu) is empty or malformed", path, i,
                    (size_t)(fd - (const unsigned char *)data));
            goto fail;
        }
        if (pc.type < SP_NORMAL || pc.type > SP_BYTE) {
            bpt_err(err, errlen, "%s: SentencePiece piece %d has unknown type %d", path, i, pc.type);
            goto fail;
        }
        m->piece[i] = bpt_xmalloc(pc.piece_len + 1);
        memcpy(m->piece[i], pc.piece, pc.piece_len);
        m->piece[i][pc.piece_len] = 0;
        m->len[i] = (uint32_t)pc.piece_len;
        m->score[i] = pc.score;
        m->type[i] = (unsigned char)pc.type;
        int normal = pc.type == SP_NORMAL || pc.type == SP_USER_DEFINED || pc.type == SP_UNUSED;
        smap_t *map = normal ? &m->normal : &m->reserved;
        if (smap_get(map, m->piece[i], pc.piece_len) >= 0) {
            bpt_err(err, errlen, "%s: SentencePiece piece \"%s\" is defined twice", path, m->piece[i]);
            i++;
            goto fail;
        }
        tok_smap_put(map, m->piece[i], pc.piece_len, i);
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
            if (pc.piece_len == 6 && sscanf(m->piece[i], "<0x%2X>", &v2) == 1)
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
            if ((int)pc.piece_len > m->user_maxlen) m->user_maxlen = (int)pc.piece_len;
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
    if (tr.unk_surface) {
        m->unk_surface = bpt_xmalloc(tr.unk_surface_len + 1);
        memcpy(m->unk_surface, tr.unk_surface, tr.unk_surface_len);
        m->unk_surface[tr.unk_surface_len] = 0;
    } else {
        m->unk_surface = bpt_xstrdup(" \xE2\x81\x87 ");   /* " ⁇ " */
    }
    /* every way to write a normal piece as two normal pieces */
    tok_pmap_init(&m->pairs, (size_t)m->n * 4);
    for (int id = 0; id < m->n; id++) {
        if (smap_get(&m->normal, m->piece[id], m->len[id]) != id) continue;
        for (uint32_t cut = 1; cut < m->len[id]; cut++) {
            int32_t a = smap_get(&m->normal, m->piece[id], cut);
            int32_t b = a >= 0 ? smap_get(&m->normal, m->piece[id] + cut, m->len[id] - cut) : -1;
            if (b >= 0) tok_pmap_put(&m->pairs, a, b, 0, id);
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
    tok_sp_free(m);
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
    tok_bpe_heap_push(&st->heap, pr);
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

int tok_sp_encode(const sp_model *m, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
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
        bpe_cand top = tok_bpe_heap_pop(&st.heap);
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

char *tok_sp_decode(const sp_model *m, const int32_t *ids, size_t n, size_t *outlen) {
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

