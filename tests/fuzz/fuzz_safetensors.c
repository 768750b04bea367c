/* fuzz_safetensors.c — the safetensors reader of `bpt ckpt import` (src/ckpt_tools.c):
 * the 8-byte header length, the JSON header (dtype, shape, data_offsets, __metadata__,
 * duplicates), offsets against the file size, the tensors' shapes against
 * config.json, and reading F32/F16/BF16/F64 data.
 *
 * The input is a model.safetensors. ckpt_tools.c has no entry point that parses a
 * header from memory, so the harness goes through the public bpt_ckpt_main: it
 * writes the input next to a fixed config.json (a one-layer model with vocabulary 8,
 * hidden size 4, feed-forward 8, tied embeddings; tests/fuzz/make_seeds.py writes
 * matching files) and runs `ckpt import DIR --output OUT`. Import succeeds or fails
 * with exit status 1; a valid input writes OUT.
 */
#include <sys/stat.h>

#include "bpt/ckpt.h"
#include "fuzz.h"

static const char config_json[] =
    "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8,\n"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
    " \"max_position_embeddings\": 16, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static char dir[200], out[240];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/model", fuzz_dir());
        snprintf(out, sizeof out, "%s/imported.h5", fuzz_dir());
        if (mkdir(dir, 0700) != 0) { perror(dir); abort(); }
        fuzz_file("model/config.json", config_json, sizeof config_json - 1);
    }
    fuzz_file("model/model.safetensors", data, n);
    unlink(out);
    char *argv[] = { "import", dir, "--output", out, NULL };
    int rc = bpt_ckpt_main(4, argv);
    struct stat st;
    FUZZ_ASSERT(rc == 0 || rc == 1, "ckpt import exit status %d", rc);
    FUZZ_ASSERT((rc == 0) == (stat(out, &st) == 0), "ckpt import exit %d but the output %s", rc,
                rc ? "exists" : "is missing");
    return 0;
}
