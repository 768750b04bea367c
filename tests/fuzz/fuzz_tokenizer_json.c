/* fuzz_tokenizer_json.c — Hugging Face tokenizer.json loading and the byte-level BPE
 * built from it (src/tok_bpe_load.c, src/tok_bpe.c): JSON, vocab/merges/added_tokens, pre-tokenizers
 * (ByteLevel, Split with Regex or String patterns, Digits, Sequence), normalizers,
 * post-processor, decoder checks; then encode and decode (fuzz_tokenizer.h). */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    return fuzz_tokenizer(data, n, "tokenizer.json");
}
