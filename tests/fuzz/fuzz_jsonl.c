/* fuzz_jsonl.c — the JSONL text processor (bpt_text_processor_*, data.h, src/data_text_processor.c),
 * which `bpt data prepare` and the json/text datasets run on every line: its JSON
 * reading (jansson; strings, escapes, \u surrogates, numbers, nesting), text_processor.fields
 * (`a+b`, `[prompt]`, `<|bos|>`, `<|eos|>`), fields_from_example, prepend_text and
 * subfield_separator.
 *
 * Input: four header lines — fields, fields_from_example, prepend_text,
 * subfield_separator (each may be empty) — then JSONL lines, each handed over in a
 * buffer of exactly its length. A line either appends tokens (all < 256 with the byte
 * tokenizer, masks 0 or 1) or appends nothing and says why in one line.
 */
#include "bpt/data.h"
#include "fuzz.h"

static const uint8_t *next_line(const uint8_t **p, const uint8_t *end, size_t *len) {
    const uint8_t *s = *p;
    if (s >= end) { *len = 0; return NULL; }
    const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
    *len = (size_t)((nl ? nl : end) - s);
    *p = nl ? nl + 1 : end;
    return s;
}

static void header(char *dst, const uint8_t **p, const uint8_t *end) {
    size_t len;
    const uint8_t *s = next_line(p, end, &len);
    if (len >= BPT_STR) len = BPT_STR - 1;
    if (s) memcpy(dst, s, len);
    dst[len] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static bpt_tokenizer *bytes;
    static bpt_dataset_config d;
    char err[1024];
    if (!bytes) bytes = bpt_tokenizer_open("bytes", err, sizeof err);
    const uint8_t *p = data, *end = data + n;
    memset(&d, 0, sizeof d);
    header(d.fields, &p, end);
    header(d.fields_from_example, &p, end);
    header(d.prepend_text, &p, end);
    header(d.subfield_separator, &p, end);
    d.add_bos_token = n % 2;
    d.add_eos_token = n % 3 == 0;
    err[0] = 0;
    bpt_text_processor *tp = bpt_text_processor_new(&d, bytes, 1, 2, 256, err, sizeof err);
    if (!tp) {
        fuzz_check_err("bpt_text_processor_new", err);
        return 0;
    }
    bpt_tokens out = {0};
    size_t len;
    const uint8_t *s;
    while ((s = next_line(&p, end, &len)) != NULL) {
        char *line = malloc(len ? len : 1);
        if (!line) abort();
        memcpy(line, s, len);
        size_t n0 = out.n;
        if (bpt_text_processor_line(tp, line, len, &out) != 0) {
            FUZZ_ASSERT(out.n == n0, "a malformed line appended %zu tokens", out.n - n0);
            fuzz_check_err("bpt_text_processor_line", bpt_text_processor_why(tp));
        } else {
            for (size_t i = n0; i < out.n; i++)
                FUZZ_ASSERT(out.tok[i] < 256 && out.mask[i] <= 1, "token %u mask %u", out.tok[i], out.mask[i]);
        }
        free(line);
    }
    bpt_tokens_free(&out);
    bpt_text_processor_free(tp);
    return 0;
}
