/* tokenizer.c — text to token ids and back: bytes, SentencePiece BPE, Hugging Face
 * byte-level BPE. See include/bpt/tokenizer.h and docs/tokenizers.md.
 *
 * This file is the public API: it reads a tokenizer file, picks its kind (by name,
 * else by content) and dispatches to the kind's code, whose files
 * src/tok_internal.h lists.
 */
#include "bpt/tokenizer.h"
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOK_BYTES, TOK_SP, TOK_BPE };

struct bpt_tokenizer {
    int kind;
    sp_model *sp;
    hf_bpe *hf;
    int vocab, bos, eos;     /* of sp or hf */
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
    char *data = tok_read_file(path, &len, err, errlen);
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
        t->hf = tok_hf_load(path, data, len, err, errlen);
        free(data);
        if (!t->hf) { free(t); return one_line(err, errlen); }
        t->vocab = t->hf->n_ids;
        t->bos = t->hf->bos_id;
        t->eos = t->hf->eos_id;
    } else {
        t->kind = TOK_SP;
        t->sp = tok_sp_load(path, data, len, err, errlen);
        free(data);
        if (!t->sp) { free(t); return one_line(err, errlen); }
        tok_sp_ids(t->sp, &t->vocab, &t->bos, &t->eos);
    }
    return t;
}

void bpt_tokenizer_free(bpt_tokenizer *t) {
    if (!t) return;
    tok_sp_free(t->sp);
    tok_hf_free(t->hf);
    free(t);
}

int bpt_tokenizer_vocab_size(const bpt_tokenizer *t) {
    return t->kind == TOK_BYTES ? 256 : t->vocab;
}

int bpt_tokenizer_bos_id(const bpt_tokenizer *t) {
    return t->kind == TOK_BYTES ? -1 : t->bos;
}

int bpt_tokenizer_eos_id(const bpt_tokenizer *t) {
    return t->kind == TOK_BYTES ? -1 : t->eos;
}

const char *bpt_tokenizer_kind(const bpt_tokenizer *t) {
    return t->kind == TOK_SP ? "sentencepiece" : t->kind == TOK_BPE ? "bpe" : "bytes";
}

int bpt_tokenizer_encode(const bpt_tokenizer *t, const char *text, size_t len,
                         int32_t **ids, size_t *n, size_t *cap) {
    switch (t->kind) {
    case TOK_SP: return tok_sp_encode(t->sp, text, len, ids, n, cap);
    case TOK_BPE: return tok_hf_encode(t->hf, text, len, ids, n, cap);
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
    case TOK_SP: return tok_sp_decode(t->sp, ids, n, outlen);
    case TOK_BPE: return tok_hf_decode(t->hf, ids, n, outlen);
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
