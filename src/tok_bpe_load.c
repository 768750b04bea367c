/* tok_bpe_load.c — a Hugging Face tokenizer.json to an hf_bpe (src/tok_internal.h):
 * the vocabulary and merges of its BPE model, added tokens, the Split and ByteLevel
 * pre-tokenizers (PCRE2), the post-processor's BOS/EOS, and the refusals of what is
 * not supported. See docs/tokenizers.md.
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char kGPT2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void tok_hf_free(hf_bpe *h) {
    if (!h) return;
    for (int i = 0; i < h->n_ids; i++) {
        free(h->tok[i]);
        free(h->dec[i]);
    }
    tok_smap_free(&h->vocab);
    for (int i = 0; i < h->n_added; i++) free(h->added[i].content);
    for (int i = 0; i < h->n_split; i++) pcre2_code_free(h->split[i].re);
    pcre2_code_free(h->bl_re);
    pcre2_code_free(h->word_re);
    TOK_FREE(h->tok, h->toklen, h->added_of, h->dec, h->declen, h->skip, h->merges.slot, h->prefix,
             h->suffix, h->added, h->split, h);
}

static pcre2_code *hf_compile(const char *pat, size_t len, int literal, char *msg, size_t msglen) {
    int ec;
    PCRE2_SIZE eo;
    /* PCRE2_LITERAL (a Split "String" pattern) refuses PCRE2_UCP, which only matters
     * to \w, \d and the like anyway */
    uint32_t opt = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opt, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR e[256];
        pcre2_get_error_message(ec, e, sizeof e);
        snprintf(msg, msglen, "%s at offset %zu", (const char *)e, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* best effort; interpreted otherwise */
    return re;
}

/* The GPT-2 byte -> unicode map: printable bytes map to themselves, the others
 * to U+0100 and up, in byte order. */
static void hf_bytes_char(uint32_t cp[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int hf_set_token(hf_bpe *h, int id, const char *s, size_t len) {
    if (id < 0 || id >= h->n_ids || h->tok[id]) return -1;
    h->tok[id] = bpt_xmalloc(len + 1);
    memcpy(h->tok[id], s, len);
    h->tok[id][len] = 0;
    h->toklen[id] = (uint32_t)len;
    return 0;
}

/* One pre-tokenizer of the JSON (recursing into Sequence). */
static int hf_add_pretok(hf_bpe *h, json_t *pt, int *seen_bytelevel, const char *path, char *err, size_t errlen) {
    const char *type = jstr(pt, "type");
    if (!type) return bpt_err(err, errlen, "%s: pre_tokenizer without a \"type\"", path);
    if (*seen_bytelevel)
        return bpt_err(err, errlen, "%s: pre_tokenizer %s after ByteLevel is not supported "
                       "(ByteLevel must be the last step)", path, type);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pt, "pretokenizers");
        if (!json_is_array(list))
            return bpt_err(err, errlen, "%s: pre_tokenizer.pretokenizers is not a list", path);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
            if (hf_add_pretok(h, e, seen_bytelevel, path, err, errlen) < 0) return -1;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        h->add_prefix_space = jbool(pt, "add_prefix_space", 1);
        h->use_regex = jbool(pt, "use_regex", 1);
        *seen_bytelevel = 1;
        return 0;
    }
    if (strcmp(type, "Split") == 0 || strcmp(type, "Digits") == 0) {
        hf_split s = {0};
        char msg[300];
        if (type[0] == 'S') {
            json_t *pat = json_object_get(pt, "pattern");
            const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
            if (!re && !lit)
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.pattern needs \"Regex\" or \"String\"", path);
            const char *src = re ? re : lit;
            json_t *jsrc = json_object_get(pat, re ? "Regex" : "String");
            s.re = hf_compile(src, json_string_length(jsrc), !re, msg, sizeof msg);
            if (!s.re)
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.pattern: %s", path, msg);
            const char *b = jstr(pt, "behavior");
            if (!b) b = "Removed";
            if (strcmp(b, "Removed") == 0) s.behavior = SPLIT_REMOVED;
            else if (strcmp(b, "Isolated") == 0) s.behavior = SPLIT_ISOLATED;
            else if (strcmp(b, "MergedWithPrevious") == 0) s.behavior = SPLIT_MERGED_PREV;
            else if (strcmp(b, "MergedWithNext") == 0) s.behavior = SPLIT_MERGED_NEXT;
            else if (strcmp(b, "Contiguous") == 0) s.behavior = SPLIT_CONTIGUOUS;
            else {
                pcre2_code_free(s.re);
                return bpt_err(err, errlen, "%s: pre_tokenizer Split.behavior \"%s\" is unknown", path, b);
            }
            s.invert = jbool(pt, "invert", 0);
        } else {                          /* Digits: digits isolated, one by one or in runs */
            int each = jbool(pt, "individual_digits", 0);
            s.re = hf_compile(each ? "\\p{N}" : "\\p{N}+", PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
            BPT_CHECK(s.re, "digits regex: %s", msg);
            s.behavior = SPLIT_ISOLATED;
        }
        h->split = bpt_xrealloc(h->split, (size_t)(h->n_split + 1) * sizeof *h->split);
        h->split[h->n_split++] = s;
        return 0;
    }
    return bpt_err(err, errlen, "%s: pre_tokenizer type \"%s\" is not supported "
                   "(supported: ByteLevel, Split, Digits, Sequence of those)", path, type);
}

/* BOS/EOS from a TemplateProcessing post-processor: a special token first / last in "single". */
static void hf_template_ids(hf_bpe *h, json_t *pp) {
    const char *type = jstr(pp, "type");
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pp, "processors");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) hf_template_ids(h, e);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    json_t *single = json_object_get(pp, "single");
    json_t *specials = json_object_get(pp, "special_tokens");
    size_t n = json_array_size(single);
    for (int end = 0; end < 2 && n > 0; end++) {
        json_t *e = json_object_get(json_array_get(single, end ? n - 1 : 0), "SpecialToken");
        const char *name = jstr(e, "id");
        if (!name) continue;
        json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (json_array_size(ids) != 1 || !json_is_integer(json_array_get(ids, 0))) continue;
        int id = (int)json_integer_value(json_array_get(ids, 0));
        if (id < 0 || id >= h->n_ids) continue;
        if (end) h->eos_id = id;
        else h->bos_id = id;
    }
}

static int hf_find_added(const hf_bpe *h, const char *const *names) {
    for (int k = 0; names[k]; k++)
        for (int i = 0; i < h->n_added; i++)
            if (strcmp(h->added[i].content, names[k]) == 0) return h->added[i].id;
    return -1;
}

/* The type of a normalizer / pre-tokenizer / decoder object as "Sequence[A, B]" into b
 * (list: the key of a Sequence's members); whether any step is SentencePiece-style:
 * Metaspace, ByteFallback, Prepend, or a Replace to or from U+2581. */
static int hf_sp_steps(json_t *o, const char *list, buf_t *b) {
    const char *type = jstr(o, "type");
    if (!type) return 0;
    buf_add(b, type, strlen(type));
    if (strcmp(type, "Sequence") == 0) {
        json_t *items = json_object_get(o, list), *e;
        size_t i;
        int sp = 0;
        buf_addc(b, '[');
        json_array_foreach(items, i, e) {
            if (i) buf_add(b, ", ", 2);
            sp |= hf_sp_steps(e, list, b);
        }
        buf_addc(b, ']');
        return sp;
    }
    if (!strcmp(type, "Metaspace") || !strcmp(type, "ByteFallback") || !strcmp(type, "Prepend")) return 1;
    if (!strcmp(type, "Replace")) {
        const char *pat = jstr(json_object_get(o, "pattern"), "String"), *content = jstr(o, "content");
        return (pat && strstr(pat, kSpace)) || (content && strstr(content, kSpace));
    }
    return 0;
}

/* "normalizer Sequence[Prepend, Replace]" etc. for the first SentencePiece-style part
 * of a tokenizer.json (as LLaMA 1/2's, converted by transformers), or NULL. */
static char *hf_sp_style(json_t *root) {
    static const char *const parts[][2] = {{"normalizer", "normalizers"}, {"pre_tokenizer", "pretokenizers"},
                                           {"decoder", "decoders"}};
    for (int k = 0; k < 3; k++) {
        buf_t b = {0};
        buf_add(&b, parts[k][0], strlen(parts[k][0]));
        buf_addc(&b, ' ');
        if (hf_sp_steps(json_object_get(root, parts[k][0]), parts[k][1], &b)) {
            buf_addc(&b, 0);
            return b.p;
        }
        free(b.p);
    }
    return NULL;
}

/* path names the file for messages; data (len bytes) is its content, read once */
hf_bpe *tok_hf_load(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        bpt_err(err, errlen, "%s: not valid JSON (line %d, column %d: %s)", path, jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    hf_bpe *h = bpt_xcalloc(1, sizeof *h);
    h->unk_id = h->bos_id = h->eos_id = -1;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    const char *mtype = jstr(model, "type");
    if (!json_is_object(root) || !json_is_object(model)) {
        bpt_err(err, errlen, "%s: not a Hugging Face tokenizer.json (no \"model\" object)", path);
        goto fail;
    }
    if (mtype ? strcmp(mtype, "BPE") != 0 : !merges) {
        bpt_err(err, errlen, "%s: model.type \"%s\" is not supported (only BPE)", path,
                mtype ? mtype : "?");
        goto fail;
    }
    char *sp_style = hf_sp_style(root);
    if (sp_style) {
        bpt_err(err, errlen, "%s: a SentencePiece-style BPE tokenizer.json (%s) is not supported, only "
                "byte-level BPE (HINT: for LLaMA 1/2 use the SentencePiece tokenizer.model)", path, sp_style);
        free(sp_style);
        goto fail;
    }
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        bpt_err(err, errlen, "%s: model.vocab must be an object and model.merges a list", path);
        goto fail;
    }
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *t = jstr(norm, "type");
        bpt_err(err, errlen, "%s: normalizer \"%s\" is not supported (only null, as in "
                "GPT-2 and LLaMA 3; for LLaMA 1/2 use the SentencePiece tokenizer.model)", path, t ? t : "?");
        goto fail;
    }
    json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec) && (!jstr(dec, "type") || strcmp(jstr(dec, "type"), "ByteLevel") != 0)) {
        const char *t = jstr(dec, "type");
        bpt_err(err, errlen, "%s: decoder \"%s\" is not supported (only ByteLevel)", path, t ? t : "?");
        goto fail;
    }

    /* ids: vocab and added tokens. They must be dense, 0..n-1 with every id used, n
     * the number of distinct ids: an id past the entries present (1e9, say) is an error
     * before anything is sized by it. An added token may repeat a vocab entry's id. */
    size_t nentries = json_object_size(vocab) + json_array_size(added);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0) {
            bpt_err(err, errlen, "%s: model.vocab[\"%s\"] is not a valid id (a non-negative integer)", path, key);
            goto fail;
        }
    }
    size_t ai;
    json_t *at;
    json_array_foreach(added, ai, at) {
        json_t *id = json_object_get(at, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !jstr(at, "content")) {
            bpt_err(err, errlen, "%s: added_tokens[%zu] needs an \"id\" (a non-negative integer) and a "
                    "\"content\"", path, ai);
            goto fail;
        }
    }
    if (nentries >= (1u << 30)) {
        bpt_err(err, errlen, "%s: %zu vocabulary entries; at most 2^30 are supported", path, nentries);
        goto fail;
    }
    {
        /* ids < nentries are marked; V, the vocab size, is the number of distinct ids
         * (those >= nentries counted once each: they are wrong anyway) */
        unsigned char *used = bpt_xcalloc(nentries + 1, 1);
        size_t V = 0;
        json_object_foreach(vocab, key, val) {
            json_int_t id = json_integer_value(val);
            if (id >= (json_int_t)nentries) V++;
            else if (!used[id]) { used[id] = 1; V++; }
        }
        json_array_foreach(added, ai, at) {
            json_int_t id = json_integer_value(json_object_get(at, "id"));
            if (id >= (json_int_t)nentries) V++;
            else if (!used[id]) { used[id] = 1; V++; }
        }
        /* dense exactly when no id is >= V; name the largest that is */
        json_int_t big = -1;
        const char *big_tok = NULL, *big_where = NULL;
        json_object_foreach(vocab, key, val) {
            json_int_t id = json_integer_value(val);
            if (id >= (json_int_t)V && id > big) { big = id; big_tok = key; big_where = "model.vocab"; }
        }
        json_array_foreach(added, ai, at) {
            json_int_t id = json_integer_value(json_object_get(at, "id"));
            if (id >= (json_int_t)V && id > big) { big = id; big_tok = jstr(at, "content"); big_where = "added"; }
        }
        size_t missing = 0;
        while (missing < V && used[missing]) missing++;
        free(used);
        if (big >= 0) {
            bpt_err(err, errlen, "%s: %s token \"%s\" has id %lld, but the vocabulary holds %zu tokens "
                    "(model.vocab and added_tokens); ids must be 0..%zu with each used (no token has id %zu)",
                    path, big_where, big_tok, (long long)big, V, V - 1, missing);
            goto fail;
        }
        h->n_ids = (int)V;
    }
    h->tok = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->tok);
    h->toklen = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->toklen);
    h->dec = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->dec);
    h->declen = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->declen);
    h->skip = bpt_xcalloc((size_t)h->n_ids + 1, 1);
    h->added_of = bpt_xcalloc((size_t)h->n_ids + 1, sizeof *h->added_of);
    tok_smap_init(&h->vocab, json_object_size(vocab));
    json_object_foreach(vocab, key, val) {
        int id = (int)json_integer_value(val);
        /* jansson keys are NUL-terminated; byte-level tokens never contain NUL */
        if (hf_set_token(h, id, key, strlen(key)) < 0) {
            bpt_err(err, errlen, "%s: model.vocab uses id %d twice", path, id);
            goto fail;
        }
        tok_smap_put(&h->vocab, h->tok[id], h->toklen[id], id);
    }

    /* model options */
    h->ignore_merges = jbool(model, "ignore_merges", 0);
    h->fuse_unk = jbool(model, "fuse_unk", 0);
    h->byte_fallback = jbool(model, "byte_fallback", 0);
    if (jstr(model, "continuing_subword_prefix") && *jstr(model, "continuing_subword_prefix"))
        h->prefix = bpt_xstrdup(jstr(model, "continuing_subword_prefix"));
    if (jstr(model, "end_of_word_suffix") && *jstr(model, "end_of_word_suffix"))
        h->suffix = bpt_xstrdup(jstr(model, "end_of_word_suffix"));
    if (jstr(model, "unk_token")) {
        const char *u = jstr(model, "unk_token");
        h->unk_id = smap_get(&h->vocab, u, strlen(u));
        if (h->unk_id < 0) {
            bpt_err(err, errlen, "%s: model.unk_token \"%s\" is not in model.vocab", path, u);
            goto fail;
        }
    }

    /* merges: "a b" strings or [a, b] pairs; a later duplicate overrides */
    tok_pmap_init(&h->merges, json_array_size(merges));
    size_t prefix_len = h->prefix ? strlen(h->prefix) : 0;
    buf_t tmp = {0};
    size_t mi;
    json_t *me;
    json_array_foreach(merges, mi, me) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (json_is_string(me)) {
            const char *s = json_string_value(me), *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) { a = s; al = (size_t)(sp - s); b = sp + 1; bl = strlen(b); }
        } else if (json_array_size(me) == 2 && json_is_string(json_array_get(me, 0)) &&
                   json_is_string(json_array_get(me, 1))) {
            a = json_string_value(json_array_get(me, 0));
            al = json_string_length(json_array_get(me, 0));
            b = json_string_value(json_array_get(me, 1));
            bl = json_string_length(json_array_get(me, 1));
        }
        if (!a) {
            bpt_err(err, errlen, "%s: model.merges[%zu] is not \"a b\" or [a, b]", path, mi);
            free(tmp.p);
            goto fail;
        }
        int ia = smap_get(&h->vocab, a, al), ib = smap_get(&h->vocab, b, bl);
        tmp.n = 0;
        buf_add(&tmp, a, al);
        if (bl >= prefix_len) buf_add(&tmp, b + prefix_len, bl - prefix_len);
        int inew = smap_get(&h->vocab, tmp.p, tmp.n);
        if (ia < 0 || ib < 0 || inew < 0) {
            bpt_err(err, errlen, "%s: model.merges[%zu] uses a token missing from model.vocab", path, mi);
            free(tmp.p);
            goto fail;
        }
        tok_pmap_put(&h->merges, ia, ib, (int32_t)mi, inew);
    }
    free(tmp.p);

    /* the byte-level alphabet */
    uint32_t cp[256];
    hf_bytes_char(cp);
    for (int b = 0; b < 256; b++) {
        h->bytechar_len[b] = (unsigned char)tok_utf8_encode(cp[b], h->bytechar[b]);
        h->byte_id[b] = smap_get(&h->vocab, h->bytechar[b], h->bytechar_len[b]);
    }

    /* added tokens (override the vocab's text for their ids) */
    h->n_added = (int)json_array_size(added);
    h->added = bpt_xcalloc((size_t)h->n_added + 1, sizeof *h->added);
    json_array_foreach(added, ai, at) {
        hf_added *a = &h->added[ai];
        json_t *c = json_object_get(at, "content");
        a->len = json_string_length(c);
        a->content = bpt_xmalloc(a->len + 1);
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->id = (int)json_integer_value(json_object_get(at, "id"));
        a->special = jbool(at, "special", 0);
        a->normalized = jbool(at, "normalized", !a->special);
        a->lstrip = jbool(at, "lstrip", 0);
        a->rstrip = jbool(at, "rstrip", 0);
        a->single_word = jbool(at, "single_word", 0);
        h->added_of[a->id] = a;
        if (a->len) h->added_first[(unsigned char)a->content[0]] = 1;
    }
    for (int i = 0; i < h->n_added; i++)       /* special-ness is by content, as in tokenizers */
        if (h->added[i].special)
            for (int j = 0; j < h->n_added; j++)
                if (strcmp(h->added[j].content, h->added[i].content) == 0) h->skip[h->added[j].id] = 1;

    /* decoded bytes of every id (ByteLevel decoder): a token whose characters are
     * all in the byte-level alphabet gives those bytes, any other its own text */
    int16_t rev[0x100 + 68];
    for (int c = 0; c < 0x100 + 68; c++) rev[c] = -1;
    for (int b = 0; b < 256; b++) rev[cp[b]] = (int16_t)b;
    for (int id = 0; id < h->n_ids; id++) {
        const char *text = h->added_of[id] ? h->added_of[id]->content : h->tok[id];
        size_t n = h->added_of[id] ? h->added_of[id]->len : h->toklen[id], i = 0;
        if (!text) continue;
        buf_t d = {0};
        buf_reserve(&d, n);
        while (i < n) {
            size_t k;
            uint32_t c = tok_sp_decode_utf8((const unsigned char *)text + i, n - i, &k);
            if (c >= 0x100 + 68 || rev[c] < 0 || (c == 0xFFFD && k == 1)) break;
            buf_addc(&d, (char)rev[c]);
            i += k;
        }
        if (i < n) { d.n = 0; buf_add(&d, text, n); }
        h->dec[id] = d.p;
        h->declen[id] = (uint32_t)d.n;
    }

    /* pre-tokenizer */
    json_t *pt = json_object_get(root, "pre_tokenizer");
    int seen_bl = 0;
    if (pt && !json_is_null(pt) && hf_add_pretok(h, pt, &seen_bl, path, err, errlen) < 0) goto fail;
    if (!seen_bl) {
        bpt_err(err, errlen, "%s: pre_tokenizer has no ByteLevel step: not a byte-level "
                "BPE tokenizer (for LLaMA 1/2 use the SentencePiece tokenizer.model)", path);
        goto fail;
    }
    char msg[300];
    if (h->use_regex) {
        h->bl_re = hf_compile(kGPT2Pattern, PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
        BPT_CHECK(h->bl_re, "GPT-2 regex: %s", msg);
    }
    h->word_re = hf_compile("\\w", PCRE2_ZERO_TERMINATED, 0, msg, sizeof msg);
    BPT_CHECK(h->word_re, "word regex: %s", msg);

    /* BOS/EOS: the post-processor's template, else well-known names */
    hf_template_ids(h, json_object_get(root, "post_processor"));
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>", NULL};
    if (h->bos_id < 0) h->bos_id = hf_find_added(h, bos_names);
    if (h->eos_id < 0) h->eos_id = hf_find_added(h, eos_names);

    json_decref(root);
    return h;
fail:
    json_decref(root);
    tok_hf_free(h);
    return NULL;
}

