/* tok_driver.c — the C tokenizers from the command line, for tests/ref/test_tokenizers.py
 * and for benchmarks.
 *
 *   tok_driver info TOKENIZER
 *       prints "kind vocab_size bos_id eos_id"
 *   tok_driver encode TOKENIZER IN OUT [THREADS]
 *       IN has one text per line, as hex of its bytes (an empty line is the empty text).
 *       OUT gets one line per text: the ids separated by spaces, a tab, and the hex of
 *       decode(ids) ("!" when decode failed). With THREADS > 1 every text is encoded
 *       again by THREADS threads at once, and any difference is an error (exit 1).
 *   tok_driver decode TOKENIZER IN OUT
 *       IN has one id list per line (ids separated by spaces); OUT gets the hex of each
 *       decoded text, or "!" when decode failed (a bad id).
 *   tok_driver bench TOKENIZER FILE [REPS]
 *       encodes every line of FILE (as is), REPS times (default 3), on one thread;
 *       prints "bytes tokens seconds MB/s" for the best repetition.
 * Exit 0 on success, 1 on a failure, 2 on bad usage.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpt/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    size_t cap = 1 << 16, n = 0, k;
    char *p = malloc(cap + 1);
    while (p && (k = fread(p + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) { cap *= 2; p = realloc(p, cap + 1); }
    }
    fclose(f);
    if (!p) return NULL;
    p[n] = 0;
    *len = n;
    return p;
}

typedef struct {
    char *s;
    size_t n;
} text_t;

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Lines of data; hex-decoded when hex is set. */
static text_t *split_lines(char *data, size_t len, int hex, size_t *count) {
    size_t cap = 64, n = 0;
    text_t *t = malloc(cap * sizeof *t);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        if (n == cap) { cap *= 2; t = realloc(t, cap * sizeof *t); }
        if (hex) {
            size_t k = 0;
            for (size_t q = i; q + 1 < j; q += 2) {
                int a = hexval(data[q]), b = hexval(data[q + 1]);
                if (a < 0 || b < 0) { fprintf(stderr, "bad hex on input line %zu\n", n + 1); exit(1); }
                data[i + k++] = (char)(a * 16 + b);
            }
            t[n].s = data + i;
            t[n].n = k;
        } else {
            t[n].s = data + i;
            t[n].n = j - i;
        }
        n++;
        i = j + 1;
    }
    *count = n;
    return t;
}

typedef struct {
    const bpt_tokenizer *tok;
    const text_t *texts;
    size_t count;
    int32_t **ids;
    size_t *nids;
    int rc;
} job_t;

static void *encode_all(void *arg) {
    job_t *j = arg;
    for (size_t i = 0; i < j->count; i++) {
        size_t cap = 0;
        j->ids[i] = NULL;
        j->nids[i] = 0;
        if (bpt_tokenizer_encode(j->tok, j->texts[i].s, j->texts[i].n, &j->ids[i], &j->nids[i], &cap) < 0)
            j->rc = -1;
    }
    return NULL;
}

static int cmd_encode(const bpt_tokenizer *tok, const char *in, const char *out, int threads) {
    size_t len, count;
    char *data = slurp(in, &len);
    if (!data) return 1;
    text_t *texts = split_lines(data, len, 1, &count);
    int32_t **ids = calloc(count + 1, sizeof *ids);
    size_t *nids = calloc(count + 1, sizeof *nids);
    job_t j = {tok, texts, count, ids, nids, 0};
    encode_all(&j);
    if (j.rc < 0) { fprintf(stderr, "encode failed\n"); return 1; }
    FILE *f = fopen(out, "w");
    if (!f) { perror(out); return 1; }
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < nids[i]; k++) fprintf(f, k ? " %d" : "%d", ids[i][k]);
        fputc('\t', f);
        size_t dlen = 0;
        char *d = bpt_tokenizer_decode(tok, ids[i], nids[i], &dlen);
        if (!d) fputc('!', f);
        else for (size_t k = 0; k < dlen; k++) fprintf(f, "%02x", (unsigned char)d[k]);
        free(d);
        fputc('\n', f);
    }
    fclose(f);

    int rc = 0;
    if (threads > 1) {                      /* the same texts, encoded concurrently */
        pthread_t *th = calloc((size_t)threads, sizeof *th);
        job_t *jobs = calloc((size_t)threads, sizeof *jobs);
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job_t){tok, texts, count, calloc(count + 1, sizeof(int32_t *)),
                              calloc(count + 1, sizeof(size_t)), 0};
            pthread_create(&th[t], NULL, encode_all, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            for (size_t i = 0; i < count; i++) {
                if (jobs[t].rc < 0 || jobs[t].nids[i] != nids[i] ||
                    (nids[i] && memcmp(jobs[t].ids[i], ids[i], nids[i] * sizeof(int32_t)) != 0)) {
                    fprintf(stderr, "thread %d: text %zu encoded differently\n", t, i);
                    rc = 1;
                }
                free(jobs[t].ids[i]);
            }
            free(jobs[t].ids);
            free(jobs[t].nids);
        }
        free(th);
        free(jobs);
    }
    for (size_t i = 0; i < count; i++) free(ids[i]);
    free(ids);
    free(nids);
    free(texts);
    free(data);
    return rc;
}

static int cmd_decode(const bpt_tokenizer *tok, const char *in, const char *out) {
    size_t len, count;
    char *data = slurp(in, &len);
    if (!data) return 1;
    text_t *lines = split_lines(data, len, 0, &count);
    FILE *f = fopen(out, "w");
    if (!f) { perror(out); return 1; }
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    for (size_t i = 0; i < count; i++) {
        size_t n = 0;
        char *p = lines[i].s, *end = lines[i].s + lines[i].n;
        while (p < end) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            ids[n++] = (int32_t)v;
            p = q;
        }
        size_t dlen = 0;
        char *d = bpt_tokenizer_decode(tok, ids, n, &dlen);
        if (!d) fputc('!', f);
        else for (size_t k = 0; k < dlen; k++) fprintf(f, "%02x", (unsigned char)d[k]);
        free(d);
        fputc('\n', f);
    }
    fclose(f);
    free(ids);
    free(lines);
    free(data);
    return 0;
}

static int cmd_bench(const bpt_tokenizer *tok, const char *file, int reps) {
    size_t len, count;
    char *data = slurp(file, &len);
    if (!data) return 1;
    text_t *texts = split_lines(data, len, 0, &count);
    int32_t *ids = NULL;
    size_t cap = 0, total = 0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        total = 0;
        for (size_t i = 0; i < count; i++) {
            size_t n = 0;
            if (bpt_tokenizer_encode(tok, texts[i].s, texts[i].n, &ids, &n, &cap) < 0) return 1;
            total += n;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%zu %zu %.4f %.2f\n", len, total, best, len / best / 1e6);
    free(ids);
    free(texts);
    free(data);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tok_driver info|encode|decode|bench TOKENIZER ...\n");
        return 2;
    }
    char err[512];
    bpt_tokenizer *tok = bpt_tokenizer_open(argv[2], err, sizeof err);
    if (!tok) { fprintf(stderr, "%s\n", err); return 1; }
    int rc = 2;
    if (strcmp(argv[1], "info") == 0) {
        printf("%s %d %d %d\n", bpt_tokenizer_kind(tok), bpt_tokenizer_vocab_size(tok),
               bpt_tokenizer_bos_id(tok), bpt_tokenizer_eos_id(tok));
        rc = 0;
    } else if (strcmp(argv[1], "encode") == 0 && argc >= 5) {
        rc = cmd_encode(tok, argv[3], argv[4], argc >= 6 ? atoi(argv[5]) : 1);
    } else if (strcmp(argv[1], "decode") == 0 && argc >= 5) {
        rc = cmd_decode(tok, argv[3], argv[4]);
    } else if (strcmp(argv[1], "bench") == 0 && argc >= 4) {
        rc = cmd_bench(tok, argv[3], argc >= 5 ? atoi(argv[4]) : 3);
    } else {
        fprintf(stderr, "usage: tok_driver info|encode|decode|bench TOKENIZER ...\n");
    }
    bpt_tokenizer_free(tok);
    return rc;
}
