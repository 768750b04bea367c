/* data_text.c — the text source (src/data_internal.h): the whole file is read and
 * tokenized at open, by tokenizer.vocab_file (default: bytes, token id = byte
 * value). A .jsonl / .json file holds one JSON object per line, each through the
 * text processor (text_processor.fields picks its string fields); any other file is
 * plain text, every loss mask 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "data_internal.h"

typedef struct {
    data_source base;
    uint64_t n;                 /* stream length in tokens */
    uint32_t *tokens;
    uint8_t *mask;              /* NULL = all ones */
} text_source;

/* Bad input messages print on rank 0 only (or always when MPI is not running). */
static int is_rank0(void) {
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
}


static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

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

static int text_open(data_source *s, const data_open_args *a, char *err, size_t errlen) {
    text_source *l = (text_source *)s;
    const bpt_dataset_config *d = a->d;
    const bpt_tokenizer *tk = a->tk;
    int vocab_size = a->vocab_size, bos_id = a->bos_id, eos_id = a->eos_id;
    if (vocab_size < bpt_tokenizer_vocab_size(tk))
        return bpt_err(err, errlen, "llama.vocab_size = %d is smaller than the %s tokenizer's %d tokens "
                       "(text dataset %s)", vocab_size, bpt_tokenizer_kind(tk), bpt_tokenizer_vocab_size(tk), l->base.path);
    char *data = NULL;
    size_t len = 0;
    if (read_whole_file(l->base.path, &data, &len, err, errlen)) return -1;

    bpt_tokens out = { 0 };
    int jsonl = ends_with(l->base.path, ".jsonl") || ends_with(l->base.path, ".json");
    if (!jsonl) {
        /* plain text: the whole file through the tokenizer, every mask 1 */
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        if (bpt_tokenizer_encode(tk, data, len, &ids, &n, &cap)) {
            free(data);
            return bpt_err(err, errlen, "%s: the tokenizer failed on this text", l->base.path);
        }
        out.tok = bpt_xmalloc((n ? n : 1) * sizeof *out.tok);
        for (size_t i = 0; i < n; i++) out.tok[i] = (uint32_t)ids[i];
        out.n = n;
        free(ids);
    } else {
        bpt_text_processor *tp = bpt_text_processor_new(d, tk, bos_id, eos_id, vocab_size, err, errlen);
        if (!tp) { free(data); return -1; }
        const char *p = data, *stop = data + len;
        uint64_t lineno = 0, docs = 0, blank = 0, first_malformed_line = 0;
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
                if (l->base.malformed_lines++ == 0) {
                    first_malformed_line = lineno;
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
        if (docs == 0 && l->base.malformed_lines > 0) {
            /* the error says it all: no warning before it */
            free(data);
            bpt_tokens_free(&out);
            char all[64];
            if (l->base.malformed_lines == 1) snprintf(all, sizeof all, "its one %sline is", blank ? "non-blank " : "");
            else snprintf(all, sizeof all, "all %llu %slines are", (unsigned long long)l->base.malformed_lines,
                          blank ? "non-blank " : "");
            return bpt_err(err, errlen, "%s: 0 tokens: %s malformed (first at line %llu: %s; each line must "
                           "be a JSON object with string fields %s)", l->base.path, all,
                           (unsigned long long)first_malformed_line, why, wanted);
        }
        if (out.n < 2) {
            free(data);
            uint64_t n = out.n;
            bpt_tokens_free(&out);
            char skipped[300] = "";
            if (l->base.malformed_lines)
                snprintf(skipped, sizeof skipped, " (%llu malformed line%s skipped, first at line %llu: %s)",
                         (unsigned long long)l->base.malformed_lines, l->base.malformed_lines == 1 ? "" : "s",
                         (unsigned long long)first_malformed_line, why);
            return bpt_err(err, errlen, "%s: the dataset has %llu token%s from %llu document%s; at least 2 are "
                           "needed%s", l->base.path, (unsigned long long)n, n == 1 ? "" : "s",
                           (unsigned long long)docs, docs == 1 ? "" : "s", skipped);
        }
        if (l->base.malformed_lines > 0 && is_rank0())
            fprintf(stderr, "bpt: warning: %s: skipped %llu malformed line%s (first: line %llu, %s; "
                    "each line must be a JSON object with string fields %s)\n",
                    l->base.path, (unsigned long long)l->base.malformed_lines,
                    l->base.malformed_lines == 1 ? "" : "s",
                    (unsigned long long)first_malformed_line, why, wanted);
    }
    free(data);

    if (out.n < 2) {
        free(out.tok);
        free(out.mask);
        return bpt_err(err, errlen, "%s: the dataset has %zu token%s; at least 2 are needed",
                       l->base.path, out.n, out.n == 1 ? "" : "s");
    }
    l->tokens = out.tok;
    l->mask = out.mask;                        /* NULL for plain text: all ones */
    l->n = out.n;
    return 0;
}

static int text_read(data_source *s, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask,
                     char *err, size_t errlen) {
    const text_source *l = (const text_source *)s;
    memcpy(tok, l->tokens + start, count * sizeof *tok);
    if (l->mask) memcpy(mask, l->mask + start, count);
    else memset(mask, 1, count);
    return 0;
}

static uint64_t text_length(const data_source *s) { return ((const text_source *)s)->n; }

static void text_close(data_source *s) {
    text_source *l = (text_source *)s;
    free(l->tokens);
    free(l->mask);
    free(l);
}

const data_source_ops data_text_ops = { sizeof(text_source), text_open, text_read, text_length, text_close };
