/* data_internal.h — the parts of the data module (include/bpt/data.h) that its files
 * share; private to them. See docs/data.md.
 *
 *   data.c                 the loader: the batch rule, mixtures, shuffling
 *   data_hdf5.c            source: a prepared HDF5 token file, read window by window
 *   data_text.c            source: a text or JSONL file, tokenized whole at open
 *   data_jsonl.c           source: a JSONL file streamed and tokenized on the fly
 *   data_text_processor.c  one JSONL line to tokens (text_processor.*; jansson)
 */
#ifndef BPT_DATA_INTERNAL_H
#define BPT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bpt/data.h"
#include "bpt/util.h"

/* ---- a source: one file's token stream ---- */

typedef struct data_source data_source;

/* What a loader opens each file with; tk, vocab_size, bos_id and eos_id as for
 * bpt_loader_open (tk is borrowed). */
typedef struct {
    const bpt_dataset_config *d;
    const bpt_tokenizer *tk;
    int vocab_size, bos_id, eos_id;
} data_open_args;

typedef struct {
    size_t size;    /* of the source's struct, whose first member is its data_source */
    /* Open the file s->path into the zeroed struct s: 0, or -1 with "<path>: ..." in err
     * (close then frees what it made). */
    int (*open)(data_source *s, const data_open_args *a, char *err, size_t errlen);
    /* stream[start, start + count) into tok and mask (1 where the source has no
     * mask). A finite source is asked only for ranges inside [0, length) (the loader
     * wraps) and fails without a message; an endless one takes any range, 0 or -1
     * with message. */
    int (*read_range)(data_source *s, uint64_t start, uint64_t count, uint32_t *tok, uint8_t *mask,
                      char *err, size_t errlen);
    uint64_t (*length)(const data_source *s);   /* tokens; UINT64_MAX: endless */
    void (*close)(data_source *s);
} data_source_ops;

/* The first member of every source. */
struct data_source {
    const data_source_ops *ops;
    char path[BPT_STR];
    uint64_t malformed_lines;   /* JSONL lines skipped as malformed (json: so far) */
};

/* The sources (data_hdf5.c, data_text.c, data_jsonl.c). */
extern const data_source_ops data_hdf5_ops, data_text_ops, data_jsonl_ops;

/* Open path (an existing file) as a source of kind ops; NULL with "<path>: ..." in err. */
data_source *data_source_open(const data_source_ops *ops, const char *path, const data_open_args *a,
                              char *err, size_t errlen);

/* ---- a growable byte buffer ---- */

typedef struct { char *s; size_t n, cap; } sbuf;

static inline void sb_reserve(sbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    b->s = bpt_xrealloc(b->s, cap);
    b->cap = cap;
}

static inline void sb_putc(sbuf *b, char c) { sb_reserve(b, 1); b->s[b->n++] = c; }

#endif
