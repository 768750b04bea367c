/* tokenizer.h — text to token ids and back, in C, equal to the reference libraries.
 *
 * The kind is chosen by the file given (tokenizer.vocab_file):
 *   ""  or "bytes"      the built-in byte-level tokenizer: id = byte value (vocab 256)
 *   *.model             a SentencePiece model (LLaMA 1/2): protobuf read by our own
 *                       reader; BPE by piece score, U+2581 whitespace, byte fallback,
 *                       unknown pieces; equal to the sentencepiece package
 *   *.json              a Hugging Face tokenizer.json with a byte-level BPE model
 *                       (GPT-2 / LLaMA 3 style, pre-tokenizer split by its regex);
 *                       equal to the tokenizers package
 * A file that is not what its name claims is an error naming the file.
 * Encoding never adds BOS/EOS; the text processor does (data.h).
 */
#ifndef BPT_TOKENIZER_H
#define BPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct bpt_tokenizer bpt_tokenizer;

/* Load the tokenizer of path (see above). NULL with a one-line message on error. */
bpt_tokenizer *bpt_tokenizer_open(const char *path, char *err, size_t errlen);
void bpt_tokenizer_free(bpt_tokenizer *t);

int bpt_tokenizer_vocab_size(const bpt_tokenizer *t);
int bpt_tokenizer_bos_id(const bpt_tokenizer *t);   /* -1 if none */
int bpt_tokenizer_eos_id(const bpt_tokenizer *t);   /* -1 if none */
const char *bpt_tokenizer_kind(const bpt_tokenizer *t);   /* "bytes", "sentencepiece", "bpe" */

/* Encode len bytes of UTF-8 text. Appends to *ids (realloc'd; *n ids, *cap capacity).
 * Thread-safe for concurrent calls on the same tokenizer. 0 or -1. */
int bpt_tokenizer_encode(const bpt_tokenizer *t, const char *text, size_t len,
                         int32_t **ids, size_t *n, size_t *cap);

/* Decode n ids to a malloc'd NUL-terminated string (*outlen bytes). NULL on a bad id. */
char *bpt_tokenizer_decode(const bpt_tokenizer *t, const int32_t *ids, size_t n, size_t *outlen);

#endif
