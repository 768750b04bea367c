/* data.h — token datasets and the batch loader.
 *
 * A dataset is one stream of token ids (and, where the source has one, a loss mask).
 * Sources (bpt_dataset_config.type):
 *   hdf5 — a prepared file with a 1-D integer dataset /tokens (uint16 or uint32; any
 *          integer type up to 8 bytes is read), optionally /loss_mask of the same length;
 *   text — a plain text file, or a .jsonl file whose text_processor.fields are
 *          concatenated per line (the reference's text processor, below); tokenized
 *          at open by tokenizer.vocab_file (default: bytes, token id = byte value).
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
#include "tokenizer.h"

typedef struct bpt_batch {
    int rows, T;           /* rows held here (a slice of the global batch) */
    int32_t *inputs;       /* (rows, T) host */
    int32_t *targets;      /* (rows, T) */
    float *mask;           /* (rows, T) 1 = counted in the loss */
} bpt_batch;

typedef struct bpt_loader bpt_loader;

/* Open the dataset. Checks that the file exists and is non-empty, and that every
 * token id is < vocab_size (error names the file and the offset). tokenizer is the
 * tokenizer.vocab_file for text sources ("" = bytes). NULL on error. */
bpt_loader *bpt_loader_open(const bpt_dataset_config *d, const char *tokenizer, int vocab_size,
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

/* Growable tokens with their loss mask. */
typedef struct bpt_tokens { uint32_t *tok; uint8_t *mask; size_t n, cap; } bpt_tokens;
void bpt_tokens_push(bpt_tokens *b, uint32_t tok, uint8_t mask);
void bpt_tokens_free(bpt_tokens *b);

/* The reference's text processor, for one JSON object per line:
 *   text_processor.fields  comma list of items: `name` (loss mask 1), `[name]` (mask 0,
 *                          e.g. a prompt), `a+b` (subfields joined by
 *                          subfield_separator), `<|bos|>` / `<|eos|>` (special tokens);
 *   prepend_text           text before the first field of the document;
 *   add_bos_token          a BOS (mask 0) before, add_eos_token an EOS (mask 1) after.
 * BOS/EOS ids are the tokenizer's when it has them, else the llama config's. */
typedef struct bpt_text_processor bpt_text_processor;
bpt_text_processor *bpt_text_processor_new(const bpt_dataset_config *d, const bpt_tokenizer *tk,
                                           int bos_id, int eos_id, int vocab_size,
                                           char *err, size_t errlen);
void bpt_text_processor_free(bpt_text_processor *tp);
/* Append the tokens of one JSONL line of len bytes; -1 (nothing appended) when the
 * line is not a JSON object with the wanted string fields. Not thread-safe per tp. */
int bpt_text_processor_line(bpt_text_processor *tp, const char *line, size_t len, bpt_tokens *out);
/* Why the last line given to bpt_text_processor_line was malformed, e.g. "not valid
 * JSON at column 12", "no string field "text"", ""text" is a number, not a string". */
const char *bpt_text_processor_why(const bpt_text_processor *tp);

/* bpt data prepare / inspect (src/prepare.c); argv after "data". Exit status. */
int bpt_data_main(int argc, char **argv);

/* Write a byte-level token stream of n tokens of the built-in synthetic corpus
 * (simple English-like sentences from a seeded grammar) to an HDF5 file /tokens
 * (uint16). Used by quickstart and tests. 0 or -1. */
int bpt_data_write_synthetic(const char *path, uint64_t ntokens, uint64_t seed, char *err, size_t errlen);

#endif
