/* data.c — the batch loader (see include/bpt/data.h, docs/data.md) over sources
 * (src/data_internal.h): hdf5 (data_hdf5.c), text (data_text.c), json (data_jsonl.c).
 *
 * The batch rule (the only thing resume depends on): with c = tokens consumed, row r
 * of the next global batch of B rows x T tokens reads the window that starts at
 * s = c + r*T, inputs stream[s+t], targets stream[s+t+1], loss mask mask[s+t+1], all
 * indices modulo the stream length; then c += B*T. Consecutive rows share their
 * boundary token, so rows [row0, row0+rows) are one contiguous range of
 * rows*T + 1 tokens starting at c + row0*T.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_internal.h"


struct bpt_loader {
    data_source **src;          /* the files: one, or the files of a mixture */
    int nsrc;
    int sampled;                /* a mixture or a shuffled order: rows by next_sampled */
    double *cum;                /* sampled: cumulative normalised weights, one per file */
    int shuffle;
    uint64_t seed;
    uint64_t consumed;          /* tokens consumed: the loader state */

    /* the window of the current call: rows*T + 1 tokens (sampled: T + 1) */
    uint32_t *wtok;
    uint8_t *wmask;
    size_t wcap;

    /* text and json: the tokenizer, loaded once by bpt_loader_open and freed with the
     * loader; the sources borrow it */
    bpt_tokenizer *tk;
};

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

data_source *data_source_open(const data_source_ops *ops, const char *path, const data_open_args *a,
                              char *err, size_t errlen) {
    data_source *s = bpt_xcalloc(1, ops->size);
    s->ops = ops;
    snprintf(s->path, sizeof s->path, "%s", path);
    if (ops->open(s, a, err, errlen)) {
        ops->close(s);
        return NULL;
    }
    return s;
}

/* One file of type d->type. */
static data_source *open_one(const bpt_dataset_config *d, const char *path, const bpt_tokenizer *tk,
                             int vocab_size, int bos_id, int eos_id, char *err, size_t errlen) {
    bpt_data_type src = d->type;
    if (src != BPT_DATA_HDF5 && src != BPT_DATA_TEXT && src != BPT_DATA_JSON) {
        bpt_err(err, errlen, "bad dataset type %d (expected hdf5, text or json)", (int)src);
        return NULL;
    }
    if (check_file(path, err, errlen)) return NULL;
    if (vocab_size <= 0) {
        bpt_err(err, errlen, "llama.vocab_size = %d must be positive", vocab_size);
        return NULL;
    }
    data_open_args a = { d, tk, vocab_size, bos_id, eos_id };
    const data_source_ops *ops = src == BPT_DATA_HDF5 ? &data_hdf5_ops
                               : src == BPT_DATA_JSON ? &data_jsonl_ops : &data_text_ops;
    return data_source_open(ops, path, &a, err, errlen);
}

static void add_source(bpt_loader *l, data_source *s) {
    l->src = bpt_xrealloc(l->src, (size_t)(l->nsrc + 1) * sizeof *l->src);
    l->src[l->nsrc++] = s;
}

/* One file, or several comma-separated files with sampling weights, and/or a
 * shuffled order. */
static bpt_loader *open_sources(const bpt_dataset_config *d, const bpt_tokenizer *tk, int vocab_size,
                                int bos_id, int eos_id, char *err, size_t errlen) {
    const bpt_source_config *s = bpt_dataset_source(d);
    bpt_loader *l = bpt_xcalloc(1, sizeof *l);
    if (!strchr(s->path, ',') && !d->shuffle && !d->weights[0]) {
        data_source *one = open_one(d, s->path, tk, vocab_size, bos_id, eos_id, err, errlen);
        if (!one) goto fail;
        add_source(l, one);
        return l;
    }
    if (d->type == BPT_DATA_JSON) {
        bpt_err(err, errlen, "a streamed json dataset is one file read in order (no shuffle, weights or "
                "comma-separated paths); prepare an hdf5 file for those");
        goto fail;
    }
    l->sampled = 1;
    l->shuffle = d->shuffle;
    l->seed = (uint64_t)d->shuffle_seed;
    char paths[BPT_STR], ws[BPT_STR];
    snprintf(paths, sizeof paths, "%s", s->path);
    snprintf(ws, sizeof ws, "%s", d->weights);
    char *sv = NULL;
    for (char *t = strtok_r(paths, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        data_source *one = open_one(d, t, tk, vocab_size, bos_id, eos_id, err, errlen);
        if (!one) goto fail;
        add_source(l, one);
    }
    if (l->nsrc == 0) { bpt_err(err, errlen, "no file in path '%s'", s->path); goto fail; }
    double total = 0, *w = bpt_xmalloc((size_t)l->nsrc * sizeof *w);   /* then cum holds their sums */
    l->cum = w;
    for (int k = 0; k < l->nsrc; k++) w[k] = 1.0;
    if (ws[0]) {
        int k = 0;
        for (char *t = strtok_r(ws, ",", &sv); t; t = strtok_r(NULL, ",", &sv), k++) {
            char *end;
            double v = strtod(t, &end);
            if (k >= l->nsrc || *end || !(v >= 0)) { k = -1; break; }
            w[k] = v;
        }
        if (k != l->nsrc) {
            bpt_err(err, errlen, "bad value for weights: '%s' (expected %d non-negative numbers, one per file of path)",
                    d->weights, l->nsrc);
            goto fail;
        }
    }
    for (int k = 0; k < l->nsrc; k++) total += w[k];
    if (!(total > 0)) { bpt_err(err, errlen, "bad value for weights: '%s' (they sum to 0)", d->weights); goto fail; }
    for (int k = 0; k < l->nsrc; k++) l->cum[k] = (k ? l->cum[k - 1] : 0) + w[k] / total;
    l->cum[l->nsrc - 1] = 1.0;
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
    if (d->type == BPT_DATA_TEXT || d->type == BPT_DATA_JSON) {
        tk = bpt_tokenizer_open(tokenizer ? tokenizer : "", err, errlen);
        if (!tk) return NULL;
    }
    bpt_loader *l = open_sources(d, tk, vocab_size, bos_id, eos_id, err, errlen);
    if (!l) { bpt_tokenizer_free(tk); return NULL; }
    l->tk = tk;
    return l;
}

void bpt_loader_close(bpt_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->nsrc; i++) l->src[i]->ops->close(l->src[i]);
    free(l->src);
    free(l->cum);
    bpt_tokenizer_free(l->tk);
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

/* The window buffers hold at least need tokens. */
static void window_reserve(bpt_loader *l, size_t need) {
    if (need <= l->wcap) return;
    free(l->wtok);
    free(l->wmask);
    l->wtok = bpt_xmalloc(need * sizeof *l->wtok);
    l->wmask = bpt_xmalloc(need);
    l->wcap = need;
}

/* stream[start, start+count) modulo the length of the finite source s into tok and mask. */
static int read_wrapped(data_source *s, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask) {
    uint64_t n = s->ops->length(s), pos = start % n, done = 0;
    while (done < count) {
        uint64_t k = n - pos;
        if (k > count - done) k = count - done;
        if (s->ops->read_range(s, pos, k, tok + done, mask + done, NULL, 0)) return -1;
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
    window_reserve(l, T + 1);
    for (int r = 0; r < b->rows; r++) {
        uint64_t s = s0 + (uint64_t)r;
        int k = 0;
        if (l->nsrc > 1) {
            uint32_t o[4];
            bpt_philox(l->seed ^ 0x6d697874ull, 0, s, o);
            double u = (o[0] + 0.5) / 4294967296.0;
            while (k < l->nsrc - 1 && u >= l->cum[k]) k++;
        }
        data_source *src = l->src[k];
        uint64_t n = src->ops->length(src), W = (n - 1) / T;
        if (W == 0)
            return bpt_err(err, errlen, "%s: %llu tokens hold no window of seq_length %llu + 1", src->path,
                           (unsigned long long)n, (unsigned long long)T);
        uint64_t w = s % W;
        if (l->shuffle) w = permute(w, W, l->seed + (uint64_t)k * 0x9e3779b97f4a7c15ull, s / W);
        if (read_wrapped(src, w * T, T + 1, l->wtok, l->wmask))
            return bpt_err(err, errlen, "%s: cannot read window %llu", src->path, (unsigned long long)w);
        for (uint64_t t = 0; t < T; t++) {
            size_t i = (size_t)r * T + t;
            b->inputs[i] = (int32_t)l->wtok[t];
            b->targets[i] = (int32_t)l->wtok[t + 1];
            b->mask[i] = l->wmask[t + 1] ? 1.0f : 0.0f;
        }
    }
    l->consumed += (uint64_t)batch_rows * T;
    return 0;
}

int bpt_loader_next(bpt_loader *l, bpt_batch *b, int batch_rows, int row0, char *err, size_t errlen) {
    if (batch_rows <= 0 || b->T <= 0 || b->rows < 0 || row0 < 0 || row0 + b->rows > batch_rows)
        return bpt_err(err, errlen, "bpt_loader_next: rows [%d, %d) of T=%d do not fit a global "
                       "batch of %d rows", row0, row0 + b->rows, b->T, batch_rows);
    if (l->sampled) return next_sampled(l, b, batch_rows, row0, err, errlen);
    uint64_t T = (uint64_t)b->T;
    size_t nt = (size_t)b->rows * (size_t)b->T;
    size_t need = nt + 1;
    window_reserve(l, need);
    uint64_t start = l->consumed + (uint64_t)row0 * T;
    data_source *s = l->src[0];
    uint64_t n = s->ops->length(s);
    if (n == UINT64_MAX) {                   /* endless: the source says what went wrong */
        if (s->ops->read_range(s, start, need, l->wtok, l->wmask, err, errlen)) return -1;
    } else if (read_wrapped(s, start, need, l->wtok, l->wmask))
        return bpt_err(err, errlen, "%s: cannot read tokens [%llu, %llu) of the stream", s->path,
                       (unsigned long long)(start % n),
                       (unsigned long long)(start % n + need));
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
    if (!l->sampled) return l->src[0]->ops->length(l->src[0]);
    uint64_t n = 0;
    for (int i = 0; i < l->nsrc; i++) n += l->src[i]->ops->length(l->src[i]);
    return n;
}

uint64_t bpt_loader_malformed_lines(const bpt_loader *l) {
    uint64_t n = 0;
    for (int i = 0; i < l->nsrc; i++) n += l->src[i]->malformed_lines;
    return n;
}
