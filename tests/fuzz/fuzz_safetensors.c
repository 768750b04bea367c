/* fuzz_safetensors.c — the safetensors reader: the header parser
 * (bpt_safetensors_parse_header, include/bpt/safetensors.h) on the input in memory,
 * then `bpt ckpt import` of it (src/ckpt_import.c): the 8-byte header length, the JSON
 * header (dtype, shape, data_offsets, __metadata__, duplicates), offsets and byte sizes
 * against the file size, the tensors' shapes against config.json, and reading
 * F32/F16/BF16/F64 data.
 *
 * The input is a model.safetensors. The parser accepts it, every tensor lying within
 * the input with the byte size of its shape and dtype, or rejects it with a one-line
 * message. Import goes through the file: the input is written next to a fixed
 * config.json (a one-layer model with vocabulary 8, hidden size 4, feed-forward 8, tied
 * embeddings; tests/fuzz/make_seeds.py writes matching files) and ckpt import DIR
 * --output OUT runs; it succeeds (OUT written) only on what the parser accepts, or
 * fails with exit status 1 and no OUT.
 */
#include <hdf5.h>
#include <sys/stat.h>

#include "bpt/safetensors.h"
#include "src/ckpt_tools.h"
#include "fuzz.h"

static const char config_json[] =
    "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8,\n"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
    " \"max_position_embeddings\": 16, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}\n";

/* What an accepted header must satisfy. */
static void check_header(const bpt_safetensors_header *h, size_t n) {
    FUZZ_ASSERT(h->data_start >= 8 && h->data_start <= n, "data_start %llu in a %zu-byte input",
                (unsigned long long)h->data_start, n);
    for (int i = 0; i < h->n; i++) {
        const bpt_safetensors_tensor *t = &h->t[i];
        uint64_t bytes = (uint64_t)bpt_safetensors_dtype_size(t->dtype);
        int zero = 0, over = 0;
        for (int d = 0; d < t->ndim; d++) zero |= t->shape[d] == 0;
        for (int d = 0; d < t->ndim && !zero; d++) over |= __builtin_mul_overflow(bytes, (uint64_t)t->shape[d], &bytes);
        FUZZ_ASSERT(!over, "tensor %s: accepted a shape of more than 2^64 bytes", t->name);
        FUZZ_ASSERT(t->nbytes == (zero ? 0 : bytes), "tensor %s: %llu bytes, its shape needs %llu", t->name,
                    (unsigned long long)t->nbytes, (unsigned long long)(zero ? 0 : bytes));
        FUZZ_ASSERT(t->offset >= h->data_start && t->offset <= n && t->nbytes <= n - t->offset,
                    "tensor %s: bytes [%llu, +%llu) outside the %zu-byte input", t->name,
                    (unsigned long long)t->offset, (unsigned long long)t->nbytes, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static char dir[200], out[240];
    if (!dir[0]) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);     /* as bpt_ckpt_main does */
        snprintf(dir, sizeof dir, "%s/model", fuzz_dir());
        snprintf(out, sizeof out, "%s/imported.h5", fuzz_dir());
        if (mkdir(dir, 0700) != 0) { perror(dir); abort(); }
        fuzz_file("model/config.json", config_json, sizeof config_json - 1);
    }
    char err[4096];
    bpt_safetensors_header h;
    int parsed = bpt_safetensors_parse_header(data, n, n, &h, err, sizeof err);
    FUZZ_ASSERT(parsed == 0 || parsed == -1, "parse returned %d", parsed);
    if (parsed == 0) check_header(&h, n);
    else {
        fuzz_check_err("bpt_safetensors_parse_header", err);
        FUZZ_ASSERT(h.n == 0 && h.t == NULL, "a rejected header left %d tensors", h.n);
    }
    bpt_safetensors_header_free(&h);

    fuzz_file("model/model.safetensors", data, n);
    unlink(out);
    char *argv[] = { dir, "--output", out, NULL };
    int rc = ckpt_import_main(3, argv);
    struct stat st;
    FUZZ_ASSERT(rc == 0 || rc == 1, "ckpt import exit status %d", rc);
    FUZZ_ASSERT(rc == 1 || parsed == 0, "ckpt import accepted what the parser rejects: %s", err);
    FUZZ_ASSERT((rc == 0) == (stat(out, &st) == 0), "ckpt import exit %d but the output %s", rc,
                rc ? "exists" : "is missing");
    return 0;
}
