/* fuzz_tokenizer_spm.c — the SentencePiece .model reader (src/tok_sentencepiece.c): the
 * protobuf reader (varints, lengths, nested messages, truncation), pieces and
 * their types, trainer_spec and normalizer_spec (precompiled charsmap), then BPE
 * encode with byte fallback and decode (fuzz_tokenizer.h). */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    return fuzz_tokenizer(data, n, "tokenizer.model");
}
