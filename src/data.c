/* data.c — token datasets and the batch loader (see include/bpt/data.h, docs/data.md).
 *
 * Two sources:
 *   hdf5 — /tokens (1-D integer) and optional /loss_mask in a prepared file. The file
 *          stays open; each batch window is read with hyperslab selections, so the
 *          stream is never loaded whole. Every token id is checked at open.
 *   text — the whole file is read and tokenized at open by the byte-level tokenizer
 *          (token id = byte value). A .jsonl / .json file holds one JSON object per
 *          line; text_processor.fields picks the string fields of each line.
 *
 * The batch rule (the only thing resume depends on): with c = tokens consumed, row r
 * of the next global batch of B rows x T tokens reads the window that starts at
 * s = c + r*T, inputs stream[s+t], targets stream[s+t+1], loss mask mask[s+t+1], all
 * indices modulo the stream length; then c += B*T. Consecutive rows share their
 * boundary token, so rows [row0, row0+rows) are one contiguous range of
 * rows*T + 1 tokens starting at c + row0*T.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <mpi.h>

#include "bpt/data.h"
#include "bpt/h5util.h"
#include "bpt/util.h"

enum { SRC_HDF5 = 1, SRC_TEXT = 2, SRC_JSON = 3 };

struct bpt_loader {
    /* a mixture of several files, or a shuffled order: sources in sub, picked per
     * sample (see next_sampled); the fields below are then unused */
    bpt_loader **sub;
    int nsub;
    double cum[16];             /* cumulative normalised weights */
    int shuffle;
    uint64_t seed;

    char path[BPT_STR];
    int src;                    /* SRC_HDF5 or SRC_TEXT */
    uint64_t n;                 /* stream length in tokens */
    uint64_t consumed;          /* tokens consumed: the loader state */

    /* text: the whole stream in memory */
    uint32_t *tokens;
    uint8_t *mask;              /* NULL = all ones */

    /* hdf5: the open file; windows are read on demand */
    hid_t file, dtok, dmask, stok, smask;   /* datasets and their file dataspaces */

    /* the window of the current call: rows*T + 1 tokens */
    uint32_t *wtok;
    uint8_t *wmask;
    size_t wcap;

    /* text and json: the tokenizer, loaded once by bpt_loader_open and freed with the
     * loader it returned; the single-file loaders under it borrow it */
    bpt_tokenizer *tk;

    /* json: the stream produced on the fly; buf holds stream[base, base + buf.n) */
    FILE *jf;
    const bpt_tokenizer *jtk;   /* borrowed from tk */
    bpt_text_processor **jtp;   /* one per thread */
    int jthreads;
    bpt_tokens jbuf;
    uint64_t jbase;
    uint64_t jepoch;
    int jfile_tokens;           /* the current pass over the file produced tokens */

    /* JSONL lines skipped because they were not a JSON object with the wanted
     * string fields (a warning is printed once, at open). */
    uint64_t malformed_lines;
    uint64_t first_malformed_line;  /* 1-based line number, 0 if none */
    char first_malformed_why[200];
    uint64_t jlines;                /* json: lines read in this pass over the file */
    uint64_t jcounted;              /* json: lines of the first pass whose malformed ones are counted */
};

/* Bad input messages print on rank 0 only (or always when MPI is not running). */
static int is_rank0(void) {
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
}

/* 0 if path is a readable regular file, else -1 with "<path>: ..." in err. */
static int check_file(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (path[0] == '\0')
        return bpt_err(err, errlen, "dataset path is empty (set <dataset>.<type>_dataset.path)");
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return bpt_err(err, errlen, "%s: no such file", path);
        return bpt_err(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return bpt_err(err, errlen, "%s: is a directory, expected a file", path);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ------------------------------------------------------------------------- */
/* growable byte and token buffers                                           */

typedef struct { char *s; size_t n, cap; } sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    b->s = bpt_xrealloc(b->s, cap);
    b->cap = cap;
}
static void sb_putc(sbuf *b, char c) { sb_reserve(b, 1); b->s[b->n++] = c; }

void bpt_tokens_free(bpt_tokens *b) {
    free(b->tok);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

void bpt_tokens_push(bpt_tokens *b, uint32_t tok, uint8_t mask) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        b->tok = bpt_xrealloc(b->tok, cap * sizeof *b->tok);
        b->mask = bpt_xrealloc(b->mask, cap);
        b->cap = cap;
    }
    b->tok[b->n] = tok;
    b->mask[b->n] = mask;
    b->n++;
}

/* ------------------------------------------------------------------------- */
/* A small JSON reader: one object per line, string values of top-level keys. */

typedef struct { const char *p, *end; } jcur;

static void jws(jcur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Four hex digits at c->p into *v. */
static int jhex4(jcur *c, unsigned *v) {
    if (c->end - c->p < 4) return -1;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(c->p[i]);
        if (h < 0) return -1;
        x = x * 16 + (unsigned)h;
    }
    c->p += 4;
    *v = x;
    return 0;
}

static void put_utf8(sbuf *b, unsigned cp) {
    if (cp < 0x80) {
        sb_putc(b, (char)cp);
    } else if (cp < 0x800) {
        sb_putc(b, (char)(0xC0 | (cp >> 6)));
        sb_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sb_putc(b, (char)(0xE0 | (cp >> 12)));
        sb_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        sb_putc(b, (char)(0xF0 | (cp >> 18)));
        sb_putc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        sb_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_putc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A JSON string at c->p (the opening quote), decoded to UTF-8 into out (or only
 * checked if out is NULL). Escapes: \" \\ \/ \b \f \n \r \t \uXXXX; a surrogate pair
 * \uD8xx\uDCxx becomes one code point; a lone surrogate becomes U+FFFD. Raw control
 * characters are invalid. Other bytes are copied as they are. 0 or -1. */
static int jstring(jcur *c, sbuf *out) {
    if (c->p >= c->end || *c->p != '"') return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"') return 0;
        if (ch < 0x20) return -1;
        if (ch != '\\') {
            if (out) sb_putc(out, (char)ch);
            continue;
        }
        if (c->p >= c->end) return -1;
        ch = (unsigned char)*c->p++;
        char e;
        switch (ch) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '/': e = '/'; break;
        case 'b': e = '\b'; break;
        case 'f': e = '\f'; break;
        case 'n': e = '\n'; break;
        case 'r': e = '\r'; break;
        case 't': e = '\t'; break;
        case 'u': {
            unsigned cp;
            if (jhex4(c, &cp)) return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* high surrogate: a low one must follow to make a pair */
                const char *save = c->p;
                unsigned lo;
                if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                    c->p += 2;
                    if (jhex4(c, &lo)) return -1;
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        c->p = save;          /* reread that escape on its own */
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;                  /* lone low surrogate */
            }
            if (out) put_utf8(out, cp);
            continue;
        }
        default:
            return -1;
        }
        if (out) sb_putc(out, e);
    }
    return -1;                                /* unterminated */
}

static int jdigits(jcur *c) {
    const char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > s ? 0 : -1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jnumber(jcur *c) {
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p < c->end && *c->p == '0') c->p++;
    else if (jdigits(c)) return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (jdigits(c)) return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (jdigits(c)) return -1;
    }
    return 0;
}

static int jliteral(jcur *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return -1;
    c->p += n;
    return 0;
}

/* Skip any JSON value (nesting limited to 64 levels). 0 or -1. */
static int jskip(jcur *c, int depth) {
    if (depth > 64 || c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') return jstring(c, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        jws(c);
        if (c->p < c->end && *c->p == close) { c->p++; return 0; }
        for (;;) {
            if (ch == '{') {
                if (jstring(c, NULL)) return -1;
                jws(c);
                if (c->p >= c->end || *c->p != ':') return -1;
                c->p++;
                jws(c);
            }
            if (jskip(c, depth + 1)) return -1;
            jws(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') { c->p++; jws(c); continue; }
            if (*c->p == close) { c->p++; return 0; }
            return -1;
        }
    }
    if (ch == 't') return jliteral(c, "true");
    if (ch == 'f') return jliteral(c, "false");
    if (ch == 'n') return jliteral(c, "null");
    return jnumber(c);
}

/* One top-level member of the line's object. */
typedef struct { size_t key_off, key_len; const char *val; int is_string; } jmember;

typedef struct {
    sbuf keys;                 /* decoded keys, back to back */
    jmember *m;
    size_t n, cap;
} jobject;

/* Parse the line [p, end) as exactly one JSON object; record its members. 0, or -1
 * with c at (about) where it stopped making sense. */
static int jparse_body(jobject *o, jcur *cp) {
    jcur c = *cp;
    int rc = -1;
    o->keys.n = 0;
    o->n = 0;
    jws(&c);
    if (c.p >= c.end || *c.p != '{') goto out;
    c.p++;
    jws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            size_t key_off = o->keys.n;
            if (jstring(&c, &o->keys)) goto out;
            jws(&c);
            if (c.p >= c.end || *c.p != ':') goto out;
            c.p++;
            jws(&c);
            const char *val = c.p;
            if (jskip(&c, 1)) goto out;
            if (o->n == o->cap) {
                o->cap = o->cap ? 2 * o->cap : 16;
                o->m = bpt_xrealloc(o->m, o->cap * sizeof *o->m);
            }
            o->m[o->n].key_off = key_off;
            o->m[o->n].key_len = o->keys.n - key_off;
            o->m[o->n].val = val;
            o->m[o->n].is_string = *val == '"';
            o->n++;
            jws(&c);
            if (c.p >= c.end) goto out;
            if (*c.p == ',') { c.p++; jws(&c); continue; }
            if (*c.p == '}') { c.p++; break; }
            goto out;
        }
    }
    jws(&c);
    if (c.p == c.end) rc = 0;
out:
    *cp = c;
    return rc;
}

static int jparse_object(jobject *o, const char *p, const char *end, const char **stop) {
    jcur c = { p, end };
    int rc = jparse_body(o, &c);
    *stop = c.p;
    return rc;
}

/* The member called key (the last one, as Python's json does with duplicates). */
static const jmember *jfind(const jobject *o, const char *key, size_t key_len) {
    for (size_t i = o->n; i-- > 0;) {
        const jmember *m = &o->m[i];
        if (m->key_len == key_len && memcmp(o->keys.s + m->key_off, key, key_len) == 0) return m;
    }
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* text_processor.fields                                                     */

/* One comma-separated item: a field (or a+b subfields joined by ' '), <|bos|> or
 * <|eos|>; [item] gives its tokens loss mask 0. */
typedef struct { const char *name; size_t len; uint8_t mask; int special; } field_item;
enum { FIELD_TEXT = 0, FIELD_BOS, FIELD_EOS };

#define MAX_FIELDS 64

static int parse_fields(const char *spec, char *store, field_item *items, int *nitems,
                        char *err, size_t errlen) {
    strcpy(store, spec);
    int n = 0;
    char *p = store;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        while (*p == ' ' || *p == '\t') p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        if (*p) {
            if (n == MAX_FIELDS)
                return bpt_err(err, errlen, "text_processor.fields: more than %d fields", MAX_FIELDS);
            field_item *it = &items[n++];
            it->mask = 1;
            if (p[0] == '[' && e > p + 1 && e[-1] == ']') {
                it->mask = 0;
                p++;
                *--e = '\0';
            }
            if (*p == '\0')
                return bpt_err(err, errlen, "text_processor.fields: empty field name in '%s'", spec);
            it->name = p;
            it->len = strlen(p);
            it->special = strcmp(p, "<|bos|>") == 0 ? FIELD_BOS
                        : strcmp(p, "<|eos|>") == 0 ? FIELD_EOS : FIELD_TEXT;
        }
        if (!comma) break;
        p = comma + 1;
    }
    *nitems = n;
    return 0;
}

struct bpt_text_processor {
    const bpt_tokenizer *tk;
    char store[BPT_STR];
    field_item items[MAX_FIELDS];
    int nitems, add_bos, add_eos;
    uint32_t bos, eos;
    char sep[BPT_STR], prepend[BPT_STR];
    char from_example[BPT_STR];  /* fields_from_example: the key holding each line's fields */
    char exstore[BPT_STR];
    field_item exitems[MAX_FIELDS];
    jobject obj;
    sbuf text;
    int32_t *ids;
    size_t nids, capids;
    char why[160];               /* why the last line was malformed */
};

/* Control characters (a field name may hold a \n) as spaces: messages stay one line. */
static void one_line(char *s) {
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

bpt_text_processor *bpt_text_processor_new(const bpt_dataset_config *d, const bpt_tokenizer *tk,
                                           int bos_id, int eos_id, int vocab_size,
                                           char *err, size_t errlen) {
    bpt_text_processor *tp = bpt_xcalloc(1, sizeof *tp);
    tp->tk = tk;
    if (parse_fields(d->fields, tp->store, tp->items, &tp->nitems, err, errlen)) {
        free(tp);
        if (err && errlen) one_line(err);
        return NULL;
    }
    if (tp->nitems == 0) {                     /* default: the "text" field */
        tp->items[0] = (field_item){ "text", 4, 1, FIELD_TEXT };
        tp->nitems = 1;
    }
    if (bpt_tokenizer_bos_id(tk) >= 0) bos_id = bpt_tokenizer_bos_id(tk);
    if (bpt_tokenizer_eos_id(tk) >= 0) eos_id = bpt_tokenizer_eos_id(tk);
    /* with fields_from_example any line may ask for <|bos|> or <|eos|> */
    int uses_bos = d->add_bos_token || d->fields_from_example[0], uses_eos = d->add_eos_token || d->fields_from_example[0];
    for (int i = 0; i < tp->nitems; i++) {
        if (tp->items[i].special == FIELD_BOS) uses_bos = 1;
        if (tp->items[i].special == FIELD_EOS) uses_eos = 1;
    }
    if (uses_bos && (bos_id < 0 || bos_id >= vocab_size)) {
        free(tp);
        bpt_err(err, errlen, "llama.bos_token_id = %d is outside the vocabulary [0, %d)", bos_id, vocab_size);
        return NULL;
    }
    if (uses_eos && (eos_id < 0 || eos_id >= vocab_size)) {
        free(tp);
        bpt_err(err, errlen, "llama.eos_token_id = %d is outside the vocabulary [0, %d)", eos_id, vocab_size);
        return NULL;
    }
    tp->add_bos = d->add_bos_token;
    tp->add_eos = d->add_eos_token;
    tp->bos = (uint32_t)bos_id;
    tp->eos = (uint32_t)eos_id;
    snprintf(tp->sep, sizeof tp->sep, "%s", d->subfield_separator);
    snprintf(tp->from_example, sizeof tp->from_example, "%s", d->fields_from_example);
    snprintf(tp->prepend, sizeof tp->prepend, "%s", d->prepend_text);
    return tp;
}

void bpt_text_processor_free(bpt_text_processor *tp) {
    if (!tp) return;
    free(tp->obj.m);
    free(tp->obj.keys.s);
    free(tp->text.s);
    free(tp->ids);
    free(tp);
}

/* Tokenize one JSONL document into out. -1 if the line is malformed (not an object,
 * or a wanted field missing or not a string); out is then left as it was. */
const char *bpt_text_processor_why(const bpt_text_processor *tp) { return tp->why; }

/* "no string field "name"" or ""name" is a number, not a string" into tp->why; -1. */
static int missing_field(bpt_text_processor *tp, const jmember *m, const char *name, size_t len, const char *what) {
    int k = (int)(len < 60 ? len : 60);
    if (!m) {
        snprintf(tp->why, sizeof tp->why, "no %s \"%.*s\"", what, k, name);
    } else {
        char c = *m->val;
        const char *kind = c == '{' ? "an object" : c == '[' ? "an array" : c == 'n' ? "null"
                         : c == 't' || c == 'f' ? "a boolean" : "a number";
        snprintf(tp->why, sizeof tp->why, "\"%.*s\" is %s, not a string", k, name, kind);
    }
    return -1;
}

static int text_processor_line(bpt_text_processor *tp, const char *line, size_t len, bpt_tokens *out);
int bpt_text_processor_line(bpt_text_processor *tp, const char *line, size_t len, bpt_tokens *out) {
    int rc = text_processor_line(tp, line, len, out);
    if (rc) one_line(tp->why);
    return rc;
}

static int text_processor_line(bpt_text_processor *tp, const char *line, size_t len, bpt_tokens *out) {
    const char *end = line + len, *stop = line;
    tp->why[0] = '\0';
    if (jparse_object(&tp->obj, line, end, &stop)) {
        const char *q = line;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < end && *q != '{')
            snprintf(tp->why, sizeof tp->why, "not a JSON object (it starts with '%c')",
                     (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f ? *q : '?');
        else
            snprintf(tp->why, sizeof tp->why, "not valid JSON at column %zu", (size_t)(stop - line) + 1);
        return -1;
    }
    size_t n0 = out->n;
    /* fields_from_example: this line names its own field list under that key */
    const field_item *items = tp->items;
    int nitems = tp->nitems;
    if (tp->from_example[0]) {
        const jmember *m = jfind(&tp->obj, tp->from_example, strlen(tp->from_example));
        if (!m || !m->is_string)
            return missing_field(tp, m, tp->from_example, strlen(tp->from_example), "fields_from_example key");
        sbuf spec = { 0 };
        jcur c = { m->val, end };
        int bad = jstring(&c, &spec) || spec.n >= BPT_STR;
        if (!bad) {
            sb_putc(&spec, '\0');
            bad = parse_fields(spec.s, tp->exstore, tp->exitems, &nitems, NULL, 0) != 0 || nitems == 0;
        }
        free(spec.s);
        if (bad) {
            snprintf(tp->why, sizeof tp->why, "its \"%s\" is not a list of fields", tp->from_example);
            return -1;
        }
        items = tp->exitems;
    }
    if (tp->add_bos) bpt_tokens_push(out, tp->bos, 0);
    int first = 1;
    for (int i = 0; i < nitems; i++) {
        const field_item *it = &items[i];
        if (it->special == FIELD_BOS) { bpt_tokens_push(out, tp->bos, it->mask); continue; }
        if (it->special == FIELD_EOS) { bpt_tokens_push(out, tp->eos, it->mask); continue; }
        tp->text.n = 0;
        if (first && tp->prepend[0])
            for (const char *c = tp->prepend; *c; c++) sb_putc(&tp->text, *c);
        first = 0;
        const char *s = it->name, *stop = it->name + it->len;
        while (s < stop) {                  /* a+b: subfields joined by the separator */
            const char *plus = memchr(s, '+', (size_t)(stop - s));
            const char *se = plus ? plus : stop;
            const jmember *m = jfind(&tp->obj, s, (size_t)(se - s));
            if (!m || !m->is_string) { out->n = n0; return missing_field(tp, m, s, (size_t)(se - s), "string field"); }
            if (s != it->name)
                for (const char *c = tp->sep; *c; c++) sb_putc(&tp->text, *c);
            jcur c = { m->val, end };
            if (jstring(&c, &tp->text)) {
                out->n = n0;
                snprintf(tp->why, sizeof tp->why, "field \"%.*s\" is not a valid string", (int)(se - s), s);
                return -1;
            }
            s = plus ? plus + 1 : stop;
        }
        tp->nids = 0;
        if (bpt_tokenizer_encode(tp->tk, tp->text.s ? tp->text.s : "", tp->text.n, &tp->ids, &tp->nids, &tp->capids)) {
            out->n = n0;
            snprintf(tp->why, sizeof tp->why, "the tokenizer failed on item %d", i + 1);
            return -1;
        }
        for (size_t k = 0; k < tp->nids; k++) bpt_tokens_push(out, (uint32_t)tp->ids[k], it->mask);
    }
    if (tp->add_eos) bpt_tokens_push(out, tp->eos, 1);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* text source                                                               */

static int read_whole_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return bpt_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    sbuf b = { 0 };
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sb_reserve(&b, got);
        memcpy(b.s + b.n, chunk, got);
        b.n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.s);
        return bpt_err(err, errlen, "%s: read error", path);
    }
    *data = b.s;
    *len = b.n;
    return 0;
}

static int open_text(bpt_loader *l, const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                     int bos_id, int eos_id, char *err, size_t errlen) {
    if (vocab_size < bpt_tokenizer_vocab_size(tk))
        return bpt_err(err, errlen, "llama.vocab_size = %d is smaller than the %s tokenizer's %d tokens "
                       "(text dataset %s)", vocab_size, bpt_tokenizer_kind(tk), bpt_tokenizer_vocab_size(tk), l->path);
    char *data = NULL;
    size_t len = 0;
    if (read_whole_file(l->path, &data, &len, err, errlen)) return -1;

    bpt_tokens out = { 0 };
    int jsonl = ends_with(l->path, ".jsonl") || ends_with(l->path, ".json");
    if (!jsonl) {
        /* plain text: the whole file through the tokenizer, every mask 1 */
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        if (bpt_tokenizer_encode(tk, data, len, &ids, &n, &cap)) {
            free(data);
            return bpt_err(err, errlen, "%s: the tokenizer failed on this text", l->path);
        }
        out.tok = bpt_xmalloc((n ? n : 1) * sizeof *out.tok);
        for (size_t i = 0; i < n; i++) out.tok[i] = (uint32_t)ids[i];
        out.n = n;
        free(ids);
    } else {
        bpt_text_processor *tp = bpt_text_processor_new(d, tk, bos_id, eos_id, vocab_size, err, errlen);
        if (!tp) { free(data); return -1; }
        const char *p = data, *stop = data + len;
        uint64_t lineno = 0, docs = 0, blank = 0;
        char why[200] = "";
        while (p < stop) {
            const char *nl = memchr(p, '\n', (size_t)(stop - p));
            const char *e = nl ? nl : stop;
            lineno++;
            const char *q = p;                 /* blank lines are skipped silently */
            while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
            if (q == e) {
                blank++;
            } else if (bpt_text_processor_line(tp, p, (size_t)(e - p), &out)) {
                if (l->malformed_lines++ == 0) {
                    l->first_malformed_line = lineno;
                    snprintf(why, sizeof why, "%s", bpt_text_processor_why(tp));
                }
            } else {
                docs++;
            }
            p = nl ? nl + 1 : stop;
        }
        bpt_text_processor_free(tp);
        char wanted[BPT_STR + 40];             /* what each line needs, for the messages */
        if (d->fields_from_example[0]) snprintf(wanted, sizeof wanted, "named by its key %s", d->fields_from_example);
        else snprintf(wanted, sizeof wanted, "%s", d->fields[0] ? d->fields : "text");
        if (docs == 0 && l->malformed_lines > 0) {
            /* the error says it all: no warning before it */
            free(data);
            bpt_tokens_free(&out);
            char all[64];
            if (l->malformed_lines == 1) snprintf(all, sizeof all, "its one %sline is", blank ? "non-blank " : "");
            else snprintf(all, sizeof all, "all %llu %slines are", (unsigned long long)l->malformed_lines,
                          blank ? "non-blank " : "");
            return bpt_err(err, errlen, "%s: 0 tokens: %s malformed (first at line %llu: %s; each line must "
                           "be a JSON object with string fields %s)", l->path, all,
                           (unsigned long long)l->first_malformed_line, why, wanted);
        }
        if (out.n < 2) {
            free(data);
            uint64_t n = out.n;
            bpt_tokens_free(&out);
            char skipped[300] = "";
            if (l->malformed_lines)
                snprintf(skipped, sizeof skipped, " (%llu malformed line%s skipped, first at line %llu: %s)",
                         (unsigned long long)l->malformed_lines, l->malformed_lines == 1 ? "" : "s",
                         (unsigned long long)l->first_malformed_line, why);
            return bpt_err(err, errlen, "%s: the dataset has %llu token%s from %llu document%s; at least 2 are "
                           "needed%s", l->path, (unsigned long long)n, n == 1 ? "" : "s",
                           (unsigned long long)docs, docs == 1 ? "" : "s", skipped);
        }
        if (l->malformed_lines > 0 && is_rank0())
            fprintf(stderr, "bpt: warning: %s: skipped %llu malformed line%s (first: line %llu, %s; "
                    "each line must be a JSON object with string fields %s)\n",
                    l->path, (unsigned long long)l->malformed_lines,
                    l->malformed_lines == 1 ? "" : "s",
                    (unsigned long long)l->first_malformed_line, why, wanted);
    }
    free(data);

    if (out.n < 2) {
        free(out.tok);
        free(out.mask);
        return bpt_err(err, errlen, "%s: the dataset has %zu token%s; at least 2 are needed",
                       l->path, out.n, out.n == 1 ? "" : "s");
    }
    l->tokens = out.tok;
    l->mask = out.mask;                        /* NULL for plain text: all ones */
    l->n = out.n;
    return 0;
}


/* ------------------------------------------------------------------------- */
/* json source: JSONL streamed and tokenized on the fly                       */

/* The stream is the documents of the file in order, tokenized by the text processor,
 * repeated from the start at the end of the file (an epoch), exactly the stream the
 * text source builds at open. Every rank streams it all and keeps its rows, so the
 * batches do not depend on the mesh; the state is still the tokens consumed (going
 * back rewinds the file and streams forward again). */

static int open_json(bpt_loader *l, const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                     int bos_id, int eos_id, char *err, size_t errlen) {
    l->jtk = tk;
    if (vocab_size < bpt_tokenizer_vocab_size(l->jtk))
        return bpt_err(err, errlen, "llama.vocab_size = %d is smaller than the %s tokenizer's %d tokens "
                       "(json dataset %s)", vocab_size, bpt_tokenizer_kind(l->jtk),
                       bpt_tokenizer_vocab_size(l->jtk), l->path);
    l->jthreads = d->tokenizer_processes > 0 ? d->tokenizer_processes : 1;
    l->jtp = bpt_xcalloc((size_t)l->jthreads, sizeof *l->jtp);
    for (int i = 0; i < l->jthreads; i++) {
        l->jtp[i] = bpt_text_processor_new(d, l->jtk, bos_id, eos_id, vocab_size, err, errlen);
        if (!l->jtp[i]) return -1;
    }
    l->jf = fopen(l->path, "rb");
    if (!l->jf) return bpt_err(err, errlen, "%s: cannot open: %s", l->path, strerror(errno));
    l->n = UINT64_MAX;                /* endless */
    return 0;
}

typedef struct json_job {
    bpt_text_processor *tp;
    char **lines;
    size_t *lens;
    int n;
    bpt_tokens out;
    uint64_t malformed;
    int first_malformed;           /* index into lines, -1 if none */
    char why[200];
} json_job;

static void *json_work(void *arg) {
    json_job *j = arg;
    j->first_malformed = -1;
    for (int i = 0; i < j->n; i++) {
        const char *q = j->lines[i];
        size_t k = 0;
        while (k < j->lens[i] && (q[k] == ' ' || q[k] == '\t' || q[k] == '\r')) k++;
        if (k < j->lens[i] && bpt_text_processor_line(j->tp, j->lines[i], j->lens[i], &j->out)) {
            if (j->malformed++ == 0) {
                j->first_malformed = i;
                snprintf(j->why, sizeof j->why, "%s", bpt_text_processor_why(j->tp));
            }
        }
    }
    return NULL;
}

/* Read up to 256 lines per thread, tokenize them in parallel, append in file order. */
static int json_produce(bpt_loader *l, char *err, size_t errlen) {
    enum { PER_THREAD = 256 };
    int cap = PER_THREAD * l->jthreads, n = 0;
    char **lines = bpt_xcalloc((size_t)cap, sizeof *lines);
    size_t *lens = bpt_xcalloc((size_t)cap, sizeof *lens), lcap = 0;
    char *line = NULL;
    ssize_t got;
    while (n < cap) {
        got = getline(&line, &lcap, l->jf);
        if (got < 0) {                      /* the end of the file: the next epoch */
            if (n > 0) break;
            if (!l->jfile_tokens && l->jepoch > 0) {
                free(line); free(lines); free(lens);
                if (l->malformed_lines)
                    return bpt_err(err, errlen, "%s: no tokens in the whole file (%llu malformed line%s, first "
                                   "at line %llu: %s)", l->path, (unsigned long long)l->malformed_lines,
                                   l->malformed_lines == 1 ? "" : "s", (unsigned long long)l->first_malformed_line,
                                   l->first_malformed_why);
                return bpt_err(err, errlen, "%s: no tokens in the whole file", l->path);
            }
            rewind(l->jf);
            l->jepoch++;
            l->jlines = 0;
            l->jfile_tokens = 0;
            continue;
        }
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        lines[n] = bpt_xmalloc(len + 1);
        memcpy(lines[n], line, len);
        lines[n][len] = 0;
        lens[n++] = len;
    }
    free(line);
    int T = l->jthreads, per = (n + T - 1) / T;
    json_job *jobs = bpt_xcalloc((size_t)T, sizeof *jobs);
    pthread_t *th = bpt_xcalloc((size_t)T, sizeof *th);
    for (int t = 0; t < T; t++) {
        int a = t * per, b = a + per < n ? a + per : n;
        jobs[t] = (json_job){.tp = l->jtp[t], .lines = lines + a, .lens = lens + a, .n = b > a ? b - a : 0};
        if (t > 0) BPT_CHECK(pthread_create(&th[t], NULL, json_work, &jobs[t]) == 0, "cannot start a tokenizer thread");
    }
    json_work(&jobs[0]);
    for (int t = 0; t < T; t++) {
        if (t > 0) pthread_join(th[t], NULL);
        for (size_t k = 0; k < jobs[t].out.n; k++) bpt_tokens_push(&l->jbuf, jobs[t].out.tok[k], jobs[t].out.mask[k]);
        if (jobs[t].out.n) l->jfile_tokens = 1;
        /* counted once: a rewind (going back) reads the first pass again */
        if (jobs[t].malformed && l->jepoch == 0 && l->jlines >= l->jcounted) {
            if (l->malformed_lines == 0) {
                l->first_malformed_line = l->jlines + (uint64_t)(t * per + jobs[t].first_malformed) + 1;
                snprintf(l->first_malformed_why, sizeof l->first_malformed_why, "%s", jobs[t].why);
            }
            l->malformed_lines += jobs[t].malformed;
        }
        bpt_tokens_free(&jobs[t].out);
    }
    l->jlines += (uint64_t)n;
    if (l->jepoch == 0 && l->jlines > l->jcounted) l->jcounted = l->jlines;
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines); free(lens); free(jobs); free(th);
    return 0;
}

/* stream[start, start + count) into tok/mask. */
static int json_read(bpt_loader *l, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask,
                     char *err, size_t errlen) {
    if (start < l->jbase) {                 /* going back: stream again from the start */
        rewind(l->jf);
        l->jbuf.n = 0;
        l->jbase = 0;
        l->jepoch = 0;
        l->jlines = 0;
    }
    for (;;) {
        /* drop what no later call needs, then stop once the range is buffered */
        if (start > l->jbase) {
            uint64_t drop = start - l->jbase < l->jbuf.n ? start - l->jbase : l->jbuf.n;
            memmove(l->jbuf.tok, l->jbuf.tok + drop, (l->jbuf.n - drop) * sizeof *l->jbuf.tok);
            memmove(l->jbuf.mask, l->jbuf.mask + drop, l->jbuf.n - drop);
            l->jbuf.n -= drop;
            l->jbase += drop;
        }
        if (l->jbase == start && l->jbuf.n >= count) break;
        if (json_produce(l, err, errlen)) return -1;
    }
    memcpy(tok, l->jbuf.tok, count * sizeof *tok);
    memcpy(mask, l->jbuf.mask, count);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* hdf5 source                                                               */

/* Read stream[start, start+count) (no wrap) from the open HDF5 datasets. */
static int h5_read(bpt_loader *l, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask) {
    hsize_t off = start, cnt = count;
    hid_t mem = H5Screate_simple(1, &cnt, NULL);
    if (mem < 0) return -1;
    int rc = -1;
    if (H5Sselect_hyperslab(l->stok, H5S_SELECT_SET, &off, NULL, &cnt, NULL) >= 0 &&
        H5Dread(l->dtok, H5T_NATIVE_UINT32, mem, l->stok, H5P_DEFAULT, tok) >= 0) {
        rc = 0;
        if (mask && l->dmask >= 0) {
            if (H5Sselect_hyperslab(l->smask, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
                H5Dread(l->dmask, H5T_NATIVE_UINT8, mem, l->smask, H5P_DEFAULT, mask) < 0)
                rc = -1;
        } else if (mask) {
            memset(mask, 1, count);
        }
    }
    H5Sclose(mem);
    return rc;
}

static int open_hdf5(bpt_loader *l, int vocab_size, char *err, size_t errlen) {
    const char *path = l->path;
    l->file = bpt_h5_open_read(path, err, errlen);   /* our own one-line errors */
    if (l->file < 0) return -1;
    int64_t n = 0;
    l->dtok = bpt_h5_open_int_1d(l->file, path, "tokens", "integer token ids (uint16, uint32, int32 or int64)",
                                 &n, err, errlen);
    if (l->dtok < 0) return -1;
    l->stok = H5Dget_space(l->dtok);
    if (n < 2)
        return bpt_err(err, errlen, "%s: /tokens has %lld token%s; at least 2 are needed", path,
                       (long long)n, n == 1 ? "" : "s");
    l->n = (uint64_t)n;

    if (H5Lexists(l->file, "loss_mask", H5P_DEFAULT) > 0) {
        int64_t nm = 0;
        l->dmask = bpt_h5_open_int_1d(l->file, path, "loss_mask", "integers (uint8: 1 = counted in the loss)",
                                      &nm, err, errlen);
        if (l->dmask < 0) return -1;
        l->smask = H5Dget_space(l->dmask);
        if (nm != n)
            return bpt_err(err, errlen, "%s: /loss_mask has %lld elements, /tokens %lld; they "
                           "must be of the same length", path, (long long)nm, (long long)n);
    }

    /* Every token id must be in [0, vocab_size). Read as int64 so that negative ids
     * in a signed dataset are seen as such, in blocks of 1M tokens. */
    const uint64_t blk = 1u << 20;
    int64_t *buf = bpt_xmalloc(blk * sizeof *buf);
    int rc = 0;
    for (uint64_t s = 0; s < l->n && rc == 0; s += blk) {
        hsize_t off = s, cnt = l->n - s < blk ? l->n - s : blk;
        hid_t mem = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(l->stok, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dread(l->dtok, H5T_NATIVE_INT64, mem, l->stok, H5P_DEFAULT, buf) < 0) {
            rc = bpt_err(err, errlen, "%s: cannot read /tokens at offset %llu (a truncated or "
                         "corrupt file?)", path, (unsigned long long)s);
        } else {
            for (hsize_t i = 0; i < cnt; i++) {
                if (buf[i] < 0 || buf[i] >= vocab_size) {
                    rc = bpt_err(err, errlen, "%s: token id %lld at offset %llu is outside the "
                                 "vocabulary [0, %d) (llama.vocab_size)", path, (long long)buf[i],
                                 (unsigned long long)(s + i), vocab_size);
                    break;
                }
            }
        }
        H5Sclose(mem);
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------- */

static bpt_loader *open_one(const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                            int bos_id, int eos_id, char *err, size_t errlen);

/* Several comma-separated files with sampling weights, and/or a shuffled order: a
 * loader over single-file loaders. */
static bpt_loader *open_sources(const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                                int bos_id, int eos_id, char *err, size_t errlen) {
    const bpt_source_config *s = bpt_dataset_source(d);
    if (!strchr(s->path, ',') && !d->shuffle && !d->weights[0])
        return open_one(d, tk, vocab_size, bos_id, eos_id, err, errlen);
    if (!strcmp(d->type, "json")) {
        bpt_err(err, errlen, "a streamed json dataset is one file read in order (no shuffle, weights or "
                "comma-separated paths); prepare an hdf5 file for those");
        return NULL;
    }
    bpt_loader *l = bpt_xcalloc(1, sizeof *l);
    l->file = l->dtok = l->dmask = l->stok = l->smask = H5I_INVALID_HID;
    l->shuffle = d->shuffle;
    l->seed = (uint64_t)d->shuffle_seed;
    snprintf(l->path, sizeof l->path, "%s", s->path);
    char paths[BPT_STR], ws[BPT_STR];
    snprintf(paths, sizeof paths, "%s", s->path);
    snprintf(ws, sizeof ws, "%s", d->weights);
    double w[16], total = 0;
    char *sv = NULL;
    for (char *t = strtok_r(paths, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        if (l->nsub == 16) { bpt_err(err, errlen, "%s: at most 16 files in a mixture", s->path); goto fail; }
        bpt_dataset_config one = *d;
        bpt_source_config *os = (bpt_source_config *)bpt_dataset_source(&one);
        snprintf(os->path, sizeof os->path, "%s", t);
        l->sub = bpt_xrealloc(l->sub, (size_t)(l->nsub + 1) * sizeof *l->sub);
        l->sub[l->nsub] = open_one(&one, tk, vocab_size, bos_id, eos_id, err, errlen);
        if (!l->sub[l->nsub]) goto fail;
        w[l->nsub++] = 1.0;
    }
    if (l->nsub == 0) { bpt_err(err, errlen, "no file in path '%s'", s->path); goto fail; }
    if (ws[0]) {
        int k = 0;
        for (char *t = strtok_r(ws, ",", &sv); t; t = strtok_r(NULL, ",", &sv), k++) {
            char *end;
            double v = strtod(t, &end);
            if (k >= l->nsub || *end || !(v >= 0)) { k = -1; break; }
            w[k] = v;
        }
        if (k != l->nsub) {
            bpt_err(err, errlen, "bad value for weights: '%s' (expected %d non-negative numbers, one per file of path)",
                    d->weights, l->nsub);
            goto fail;
        }
    }
    for (int k = 0; k < l->nsub; k++) total += w[k];
    if (!(total > 0)) { bpt_err(err, errlen, "bad value for weights: '%s' (they sum to 0)", d->weights); goto fail; }
    for (int k = 0; k < l->nsub; k++) l->cum[k] = (k ? l->cum[k - 1] : 0) + w[k] / total;
    l->cum[l->nsub - 1] = 1.0;
    return l;
fail:
    bpt_loader_close(l);
    return NULL;
}

/* The text and json sources tokenize: their tokenizer is loaded here once, for every
 * file of a mixture, and freed with the loader. */
bpt_loader *bpt_loader_open(const bpt_dataset_config *d, const char *tokenizer, int vocab_size,
                            int bos_id, int eos_id, char *err, size_t errlen) {
    bpt_tokenizer *tk = NULL;
    if (!strcmp(d->type, "text") || !strcmp(d->type, "json")) {
        tk = bpt_tokenizer_open(tokenizer ? tokenizer : "", err, errlen);
        if (!tk) return NULL;
    }
    bpt_loader *l = open_sources(d, tk, vocab_size, bos_id, eos_id, err, errlen);
    if (!l) { bpt_tokenizer_free(tk); return NULL; }
    l->tk = tk;
    return l;
}

static bpt_loader *open_one(const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                            int bos_id, int eos_id, char *err, size_t errlen) {
    int src = strcmp(d->type, "hdf5") == 0 ? SRC_HDF5 : strcmp(d->type, "text") == 0 ? SRC_TEXT
            : strcmp(d->type, "json") == 0 ? SRC_JSON : 0;
    if (!src) {
        bpt_err(err, errlen, "bad dataset type '%s' (expected hdf5 or text)", d->type);
        return NULL;
    }
    const bpt_source_config *s = bpt_dataset_source(d);
    if (check_file(s->path, err, errlen)) return NULL;
    if (vocab_size <= 0) {
        bpt_err(err, errlen, "llama.vocab_size = %d must be positive", vocab_size);
        return NULL;
    }

    bpt_loader *l = bpt_xcalloc(1, sizeof *l);
    snprintf(l->path, sizeof l->path, "%s", s->path);
    l->src = src;
    l->file = l->dtok = l->dmask = l->stok = l->smask = H5I_INVALID_HID;
    int rc = src == SRC_HDF5 ? open_hdf5(l, vocab_size, err, errlen)
           : src == SRC_JSON ? open_json(l, d, tk, vocab_size, bos_id, eos_id, err, errlen)
                             : open_text(l, d, tk, vocab_size, bos_id, eos_id, err, errlen);
    if (rc) {
        bpt_loader_close(l);
        return NULL;
    }
    return l;
}

void bpt_loader_close(bpt_loader *l) {
    if (!l) return;
    if (l->jf) fclose(l->jf);
    for (int i = 0; i < l->jthreads; i++) bpt_text_processor_free(l->jtp[i]);
    free(l->jtp);
    bpt_tokenizer_free(l->tk);
    bpt_tokens_free(&l->jbuf);
    for (int i = 0; i < l->nsub; i++) bpt_loader_close(l->sub[i]);
    free(l->sub);
    if (l->smask >= 0) H5Sclose(l->smask);
    if (l->dmask >= 0) H5Dclose(l->dmask);
    if (l->stok >= 0) H5Sclose(l->stok);
    if (l->dtok >= 0) H5Dclose(l->dtok);
    if (l->file >= 0) H5Fclose(l->file);
    free(l->tokens);
    free(l->mask);
    free(l->wtok);
    free(l->wmask);
    free(l);
}

void bpt_batch_alloc(bpt_batch *b, int rows, int T) {
    size_t n = (size_t)(rows > 0 ? rows : 0) * (size_t)(T > 0 ? T : 0);
    if (n == 0) n = 1;
    b->rows = rows;
    b->T = T;
    b->inputs = bpt_xmalloc(n * sizeof *b->inputs);
    b->targets = bpt_xmalloc(n * sizeof *b->targets);
    b->mask = bpt_xmalloc(n * sizeof *b->mask);
}

void bpt_batch_free(bpt_batch *b) {
    free(b->inputs);
    free(b->targets);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

/* stream[start, start+count) modulo the stream length into tok and mask. */
static int read_range(bpt_loader *l, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask) {
    uint64_t pos = start % l->n, done = 0;
    while (done < count) {
        uint64_t k = l->n - pos;
        if (k > count - done) k = count - done;
        if (l->src == SRC_HDF5) {
            if (h5_read(l, pos, k, tok + done, mask + done)) return -1;
        } else {
            memcpy(tok + done, l->tokens + pos, k * sizeof *tok);
            if (l->mask) memcpy(mask + done, l->mask + pos, k);
            else memset(mask + done, 1, k);
        }
        done += k;
        pos = 0;
    }
    return 0;
}

/* A bijection of [0, n): a 4-round Feistel network on the next power of four,
 * keyed by (seed, epoch), cycle-walking back into range. Same on every rank. */
static uint64_t permute(uint64_t x, uint64_t n, uint64_t seed, uint64_t epoch) {
    int bits = 2;
    while (((uint64_t)1 << bits) < n) bits += 2;
    int h = bits / 2;
    uint64_t mask = ((uint64_t)1 << h) - 1;
    do {
        uint64_t L = x >> h, R = x & mask;
        for (int r = 0; r < 4; r++) {
            uint32_t o[4];
            bpt_philox(seed, epoch * 4 + (uint64_t)r, R, o);
            uint64_t t = L ^ (o[0] & mask);
            L = R;
            R = t;
        }
        x = (L << h) | R;
    } while (x >= n);
    return x;
}

/* Sample s of the global order (row r of batch i is s = i*B + r): its file is drawn by
 * weight from a counter-based uniform keyed by (seed, s); within the file it reads
 * window w = s mod W of T+1 tokens starting at w*T (W = windows of the file),
 * permuted per epoch s / W when shuffling. Everything follows from s: mesh-independent. */
static int next_sampled(bpt_loader *l, bpt_batch *b, int batch_rows, int row0, char *err, size_t errlen) {
    uint64_t T = (uint64_t)b->T, s0 = l->consumed / T + (uint64_t)row0;
    for (int r = 0; r < b->rows; r++) {
        uint64_t s = s0 + (uint64_t)r;
        int k = 0;
        if (l->nsub > 1) {
            uint32_t o[4];
            bpt_philox(l->seed ^ 0x6d697874ull, 0, s, o);
            double u = (o[0] + 0.5) / 4294967296.0;
            while (k < l->nsub - 1 && u >= l->cum[k]) k++;
        }
        bpt_loader *src = l->sub[k];
        uint64_t W = (src->n - 1) / T;
        if (W == 0)
            return bpt_err(err, errlen, "%s: %llu tokens hold no window of seq_length %llu + 1", src->path,
                           (unsigned long long)src->n, (unsigned long long)T);
        uint64_t w = s % W;
        if (l->shuffle) w = permute(w, W, l->seed + (uint64_t)k * 0x9e3779b97f4a7c15ull, s / W);
        if (T + 1 > src->wcap) {
            free(src->wtok);
            free(src->wmask);
            src->wtok = bpt_xmalloc((T + 1) * sizeof *src->wtok);
            src->wmask = bpt_xmalloc(T + 1);
            src->wcap = T + 1;
        }
        if (read_range(src, w * T, T + 1, src->wtok, src->wmask))
            return bpt_err(err, errlen, "%s: cannot read window %llu", src->path, (unsigned long long)w);
        for (uint64_t t = 0; t < T; t++) {
            size_t i = (size_t)r * T + t;
            b->inputs[i] = (int32_t)src->wtok[t];
            b->targets[i] = (int32_t)src->wtok[t + 1];
            b->mask[i] = src->wmask[t + 1] ? 1.0f : 0.0f;
        }
    }
    l->consumed += (uint64_t)batch_rows * T;
    return 0;
}

int bpt_loader_next(bpt_loader *l, bpt_batch *b, int batch_rows, int row0, char *err, size_t errlen) {
    if (batch_rows <= 0 || b->T <= 0 || b->rows < 0 || row0 < 0 || row0 + b->rows > batch_rows)
        return bpt_err(err, errlen, "bpt_loader_next: rows [%d, %d) of T=%d do not fit a global "
                       "batch of %d rows", row0, row0 + b->rows, b->T, batch_rows);
    if (l->nsub) return next_sampled(l, b, batch_rows, row0, err, errlen);
    uint64_t T = (uint64_t)b->T;
    size_t nt = (size_t)b->rows * (size_t)b->T;
    size_t need = nt + 1;
    if (need > l->wcap) {
        free(l->wtok);
        free(l->wmask);
        l->wtok = bpt_xmalloc(need * sizeof *l->wtok);
        l->wmask = bpt_xmalloc(need);
        l->wcap = need;
    }
    uint64_t start = l->consumed + (uint64_t)row0 * T;
    if (l->src == SRC_JSON) {
        if (json_read(l, start, need, l->wtok, l->wmask, err, errlen)) return -1;
    } else if (read_range(l, start, need, l->wtok, l->wmask))
        return bpt_err(err, errlen, "%s: cannot read tokens [%llu, %llu) of the stream", l->path,
                       (unsigned long long)(start % l->n),
                       (unsigned long long)(start % l->n + need));
    for (size_t i = 0; i < nt; i++) {
        b->inputs[i] = (int32_t)l->wtok[i];
        b->targets[i] = (int32_t)l->wtok[i + 1];
        b->mask[i] = l->wmask[i + 1] ? 1.0f : 0.0f;
    }
    l->consumed += (uint64_t)batch_rows * T;
    return 0;
}

uint64_t bpt_loader_tokens_consumed(const bpt_loader *l) { return l->consumed; }
void bpt_loader_set_tokens_consumed(bpt_loader *l, uint64_t tokens) { l->consumed = tokens; }
uint64_t bpt_loader_stream_length(const bpt_loader *l) {
    uint64_t n = l->n;
    for (int i = 0; i < l->nsub; i++) n += l->sub[i]->n;
    return n;
}

/* Not (yet) in data.h: JSONL lines skipped as malformed at open. */
uint64_t bpt_loader_malformed_lines(const bpt_loader *l);
uint64_t bpt_loader_malformed_lines(const bpt_loader *l) {
    uint64_t n = l->malformed_lines;
    for (int i = 0; i < l->nsub; i++) n += l->sub[i]->malformed_lines;
    return n;
}
