/* data_jsonl.c — the json source (src/data_internal.h): a JSONL file streamed and
 * tokenized on the fly, in tokenizer_processes threads.
 *
 * The stream is the documents of the file in order, tokenized by the text processor,
 * repeated from the start at the end of the file (an epoch), exactly the stream the
 * text source builds at open. Every rank streams it all and keeps its rows, so the
 * batches do not depend on the mesh; the state is still the tokens consumed (going
 * back rewinds the file and streams forward again).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "data_internal.h"

typedef struct {
    data_source base;
    FILE *jf;
    const bpt_tokenizer *jtk;   /* borrowed from the loader */
    bpt_text_processor **jtp;   /* one per thread */
    int jthreads;
    bpt_tokens jbuf;            /* holds stream[jbase, jbase + jbuf.n) */
    uint64_t jbase;
    uint64_t jepoch;
    int jfile_tokens;           /* the current pass over the file produced tokens */
    uint64_t first_malformed_line;  /* 1-based line number, 0 if none */
    char first_malformed_why[200];
    uint64_t jlines;            /* lines read in this pass over the file */
    uint64_t jcounted;          /* lines of the first pass whose malformed ones are counted */
} json_source;

static int json_open(data_source *s, const data_open_args *a, char *err, size_t errlen) {
    json_source *l = (json_source *)s;
    const bpt_dataset_config *d = a->d;
    const bpt_tokenizer *tk = a->tk;
    int vocab_size = a->vocab_size, bos_id = a->bos_id, eos_id = a->eos_id;
    l->jtk = tk;
    if (vocab_size < bpt_tokenizer_vocab_size(l->jtk))
        return bpt_err(err, errlen, "llama.vocab_size = %d is smaller than the %s tokenizer's %d tokens "
                       "(json dataset %s)", vocab_size, bpt_tokenizer_kind(l->jtk),
                       bpt_tokenizer_vocab_size(l->jtk), l->base.path);
    l->jthreads = d->tokenizer_processes > 0 ? d->tokenizer_processes : 1;
    l->jtp = bpt_xcalloc((size_t)l->jthreads, sizeof *l->jtp);
    for (int i = 0; i < l->jthreads; i++) {
        l->jtp[i] = bpt_text_processor_new(d, l->jtk, bos_id, eos_id, vocab_size, err, errlen);
        if (!l->jtp[i]) return -1;
    }
    l->jf = fopen(l->base.path, "rb");
    if (!l->jf) return bpt_err(err, errlen, "%s: cannot open: %s", l->base.path, strerror(errno));
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
static int json_produce(json_source *l, char *err, size_t errlen) {
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
                if (l->base.malformed_lines)
                    return bpt_err(err, errlen, "%s: no tokens in the whole file (%llu malformed line%s, first "
                                   "at line %llu: %s)", l->base.path, (unsigned long long)l->base.malformed_lines,
                                   l->base.malformed_lines == 1 ? "" : "s", (unsigned long long)l->first_malformed_line,
                                   l->first_malformed_why);
                return bpt_err(err, errlen, "%s: no tokens in the whole file", l->base.path);
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
            if (l->base.malformed_lines == 0) {
                l->first_malformed_line = l->jlines + (uint64_t)(t * per + jobs[t].first_malformed) + 1;
                snprintf(l->first_malformed_why, sizeof l->first_malformed_why, "%s", jobs[t].why);
            }
            l->base.malformed_lines += jobs[t].malformed;
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
static int json_read(data_source *s, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask,
                     char *err, size_t errlen) {
    json_source *l = (json_source *)s;
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

static uint64_t json_length(const data_source *s) { return UINT64_MAX; }   /* endless */

static void json_close(data_source *s) {
    json_source *l = (json_source *)s;
    if (l->jf) fclose(l->jf);
    for (int i = 0; i < l->jthreads; i++) bpt_text_processor_free(l->jtp[i]);
    free(l->jtp);
    bpt_tokens_free(&l->jbuf);
    free(l);
}

const data_source_ops data_jsonl_ops = { sizeof(json_source), json_open, json_read, json_length, json_close };
