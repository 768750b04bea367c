/* data.h — token datasets and the batch loader.
 *
 * A dataset is one stream of token ids (and, where the source has one, a loss mask).
 * Sources (bpt_dataset_config.type):
 *   hdf5 — a prepared file with a 1-D integer dataset /tokens (uint16 or uint32; any
 *          integer type up to 8 bytes is read), optionally /loss_mask of the same length;
 *   text — a plain text file (bytes), or a .jsonl file whose text_processor.fields
 *          are concatenated per line; tokenized by the built-in byte-level tokenizer
 *          (token id = byte value; add_bos_token / add_eos_token put bos/eos ids
 *          around each JSONL document).
 * Batch i of a global batch of B rows and T tokens takes the window
 *   stream[i*B*T + r*T + t]      as inputs  (row r, position t)
 *   stream[i*B*T + r*T + t + 1]  as targets (and mask[...] as loss mask)
 * wrapping around the end of the stream. The loader state is the number of tokens
 * consumed (i*B*T): mesh-independent, so any data-parallel layout resumes the same.
 */
#ifndef BPT_DATA_H
#define BPT_DATA_H

#include <stdint.h>
#include <stddef.h>
#include "config.h"

typedef struct bpt_batch {
    int rows, T;           /* rows held here (a slice of the global batch) */
    int32_t *inputs;       /* (rows, T) host */
    int32_t *targets;      /* (rows, T) */
    float *mask;           /* (rows, T) 1 = counted in the loss */
} bpt_batch;

typedef struct bpt_loader bpt_loader;

/* Open the dataset. Checks that the file exists and is non-empty, and that every
 * token id is < vocab_size (error names the file and the offset). NULL on error. */
bpt_loader *bpt_loader_open(const bpt_dataset_config *d, int vocab_size,
                            int bos_id, int eos_id, char *err, size_t errlen);
void bpt_loader_close(bpt_loader *l);

/* Allocate a batch of rows x T. */
void bpt_batch_alloc(bpt_batch *b, int rows, int T);
void bpt_batch_free(bpt_batch *b);

/* Fill b with rows [row0, row0 + b->rows) of the next global batch of batch_rows
 * rows, then advance the state by one global batch. 0 or -1 with message. */
int bpt_loader_next(bpt_loader *l, bpt_batch *b, int batch_rows, int row0, char *err, size_t errlen);

uint64_t bpt_loader_tokens_consumed(const bpt_loader *l);
void     bpt_loader_set_tokens_consumed(bpt_loader *l, uint64_t tokens);
uint64_t bpt_loader_stream_length(const bpt_loader *l);   /* tokens in the stream */
uint64_t bpt_loader_malformed_lines(const bpt_loader *l); /* JSONL lines skipped */

/* Write a byte-level token stream of n tokens of the built-in synthetic corpus
 * (simple English-like sentences from a seeded grammar) to an HDF5 file /tokens
 * (uint16). Used by quickstart and tests. 0 or -1. */
int bpt_data_write_synthetic(const char *path, uint64_t ntokens, uint64_t seed, char *err, size_t errlen);

#endif
