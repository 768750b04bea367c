/* data_text_processor.c — the reference's text processor (data.h): one JSONL line,
 * a JSON object read by jansson, to tokens and loss masks by text_processor.fields
 * (`a+b`, `[prompt]`, `<|bos|>`, `<|eos|>`), fields_from_example, prepend_text and
 * subfield_separator.
 *
 * Two rules of the JSON reader this file had before jansson are kept: a lone
 * surrogate escape decodes to U+FFFD (jansson refuses it), and no value nests more
 * than 64 levels below the line's object.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "data_internal.h"

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
    sbuf line;                   /* the line with its lone surrogates rewritten */
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
    free(tp->line.s);
    free(tp->text.s);
    free(tp->ids);
    free(tp);
}

const char *bpt_text_processor_why(const bpt_text_processor *tp) { return tp->why; }

/* ------------------------------------------------------------------------- */
/* the JSON of one line                                                      */

static int hex4(const char *s, size_t n, unsigned *v) {
    if (n < 4) return -1;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char ch = s[i];
        int h = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (h < 0) return -1;
        x = x * 16 + (unsigned)h;
    }
    *v = x;
    return 0;
}

/* The line with each lone surrogate escape (a \uD8xx-\uDBxx not followed by a
 * \uDCxx-\uDFxx, or a \uDCxx-\uDFxx on its own) rewritten as \uFFFD, in place of
 * the same length so that error columns stay; line itself when there is none. */
static const char *fix_lone_surrogates(sbuf *b, const char *line, size_t len) {
    const char *s = line;
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned cp, lo;
        if (s[i] != '\\') continue;
        if (s[i + 1] != 'u' || hex4(s + i + 2, len - i - 2, &cp)) { i++; continue; }
        int lone = cp >= 0xDC00 && cp <= 0xDFFF;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (len - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u' && !hex4(s + i + 8, len - i - 8, &lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                i += 11;                        /* a pair */
                continue;
            }
            lone = 1;                           /* what follows is read on its own */
        }
        if (lone) {
            if (s == line) {
                b->n = 0;
                sb_reserve(b, len);
                memcpy(b->s, line, len);
                b->n = len;
                s = b->s;
            }
            memcpy(b->s + i + 2, "FFFD", 4);
        }
        i += 5;
    }
    return s;
}

/* Each \\u0000 escape in an object key (a string followed by ':') of the line s as
 * \\u0001, in place: jansson keeps no NUL in a key, and a key holding one names no
 * field, so only which keys are equal matters. */
static void nul_keys(char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"') continue;
        size_t a = ++i;
        while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) j++;
        if (i >= n || j >= n || s[j] != ':') continue;
        for (size_t k = a; k + 5 < i; k++)
            if (s[k] == '\\') {
                if (memcmp(s + k + 1, "u0000", 5) == 0) s[k + 5] = '1';
                k++;
            }
    }
}

/* Whether v, at depth (1: a member of the line's object), nests deeper than 64. */
static int too_deep(json_t *v, int depth) {
    if (depth > 64) return 1;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (too_deep(x, depth + 1)) return 1;
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x) if (too_deep(x, depth + 1)) return 1;
    }
    return 0;
}

/* The column (1-based, in bytes) of the first value nested deeper than 64 levels. */
static size_t deep_column(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (depth > 64 && !strchr(" \t\r\n]},:", c)) return i + 1;
        if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') depth++;
        else if (c == ']' || c == '}') depth--;
    }
    return n + 1;
}

/* The column where jansson's error starts: the start of the token it names
 * ("... near 'TOKEN'"), else just past where it stopped. */
static size_t error_column(const json_error_t *e) {
    const char *near = strstr(e->text, " near '");
    size_t pos = e->position > 0 ? (size_t)e->position : 0, k = near ? strlen(near + 7) : 0;
    if (near && k > 0 && near[7 + k - 1] == '\'' && k - 1 <= pos) return pos - (k - 1) + 1;
    return pos + 1;
}

/* The line [line, line + len) as a JSON object, or NULL with the reason in tp->why. */
static json_t *parse_line(bpt_text_processor *tp, const char *line, size_t len) {
    const char *s = fix_lone_surrogates(&tp->line, line, len);
    json_error_t e;
    json_t *root = json_loadb(s, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &e);
    size_t col = 0;
    if (!root && json_error_code(&e) == json_error_null_byte_in_key) {
        if (s == line) {
            tp->line.n = 0;
            sb_reserve(&tp->line, len);
            memcpy(tp->line.s, line, len);
            s = tp->line.s;
        }
        nul_keys(tp->line.s, len);
        json_error_t e2;
        root = json_loadb(s, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &e2);
    }
    if (!root) {
        col = error_column(&e);
    } else if (json_is_object(root)) {
        const char *k;
        json_t *x;
        json_object_foreach(root, k, x) if (too_deep(x, 1)) { col = deep_column(s, len); break; }
        if (!col) return root;
    }
    json_decref(root);
    const char *q = line, *end = line + len;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
    if (q < end && *q != '{')
        snprintf(tp->why, sizeof tp->why, "not a JSON object (it starts with '%c')",
                 (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f ? *q : '?');
    else
        snprintf(tp->why, sizeof tp->why, "not valid JSON at column %zu", col ? col : len + 1);
    return NULL;
}

/* "no string field "name"" or ""name" is a number, not a string" into tp->why; -1. */
static int missing_field(bpt_text_processor *tp, json_t *m, const char *name, size_t len, const char *what) {
    int k = (int)(len < 60 ? len : 60);
    if (!m) {
        snprintf(tp->why, sizeof tp->why, "no %s \"%.*s\"", what, k, name);
    } else {
        const char *kind = json_is_object(m) ? "an object" : json_is_array(m) ? "an array"
                         : json_is_null(m) ? "null" : json_is_boolean(m) ? "a boolean" : "a number";
        snprintf(tp->why, sizeof tp->why, "\"%.*s\" is %s, not a string", k, name, kind);
    }
    return -1;
}

/* ------------------------------------------------------------------------- */
/* one line to tokens                                                        */

/* The reason a line is malformed into tp->why; -1. */
static int set_why(bpt_text_processor *tp, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->why, sizeof tp->why, fmt, ap);
    va_end(ap);
    return -1;
}

/* The tokens of the line's object o into out; -1 (out as it was) with tp->why. */
static int tokenize_object(bpt_text_processor *tp, json_t *o, bpt_tokens *out) {
    size_t n0 = out->n;
    /* fields_from_example: this line names its own field list under that key */
    const field_item *items = tp->items;
    int nitems = tp->nitems;
    if (tp->from_example[0]) {
        json_t *m = json_object_get(o, tp->from_example);
        if (!json_is_string(m))
            return missing_field(tp, m, tp->from_example, strlen(tp->from_example), "fields_from_example key");
        int bad = json_string_length(m) >= BPT_STR ||
                  parse_fields(json_string_value(m), tp->exstore, tp->exitems, &nitems, NULL, 0) != 0 || nitems == 0;
        if (bad) return set_why(tp, "its \"%s\" is not a list of fields", tp->from_example);
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
            json_t *m = json_object_getn(o, s, (size_t)(se - s));
            if (!json_is_string(m)) { out->n = n0; return missing_field(tp, m, s, (size_t)(se - s), "string field"); }
            if (s != it->name)
                for (const char *c = tp->sep; *c; c++) sb_putc(&tp->text, *c);
            size_t k = json_string_length(m);
            if (k) {                            /* (text.s is still NULL before any byte) */
                sb_reserve(&tp->text, k);
                memcpy(tp->text.s + tp->text.n, json_string_value(m), k);
                tp->text.n += k;
            }
            s = plus ? plus + 1 : stop;
        }
        tp->nids = 0;
        if (bpt_tokenizer_encode(tp->tk, tp->text.s ? tp->text.s : "", tp->text.n, &tp->ids, &tp->nids, &tp->capids)) {
            out->n = n0;
            return set_why(tp, "the tokenizer failed on item %d", i + 1);
        }
        for (size_t k = 0; k < tp->nids; k++) bpt_tokens_push(out, (uint32_t)tp->ids[k], it->mask);
    }
    if (tp->add_eos) bpt_tokens_push(out, tp->eos, 1);
    return 0;
}

int bpt_text_processor_line(bpt_text_processor *tp, const char *line, size_t len, bpt_tokens *out) {
    tp->why[0] = '\0';
    json_t *o = parse_line(tp, line, len);
    int rc = o ? tokenize_object(tp, o, out) : -1;
    json_decref(o);
    if (rc) one_line(tp->why);
    return rc;
}
