/* tok_common.c — what the tokenizer module's files share (src/tok_internal.h): the
 * maps behind vocabularies and merges, reading a tokenizer file, UTF-8 decoding,
 * encoding and lossy repair, and the BPE merge heap of both tokenizers.
 */
#include "tok_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- containers ---- */

void tok_smap_init(smap_t *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2 + 2) cap *= 2;
    m->slot = bpt_xcalloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    m->n = 0;
}

void tok_smap_free(smap_t *m) { free(m->slot); memset(m, 0, sizeof *m); }

/* Insert or overwrite. */
void tok_smap_put(smap_t *m, const char *s, size_t n, int32_t val) {
    if ((m->n + 1) * 2 > m->mask + 1) {              /* grow to keep load <= 1/2 */
        smap_t g;
        tok_smap_init(&g, m->mask + 1);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slot[i].key) tok_smap_put(&g, m->slot[i].key, m->slot[i].len, m->slot[i].val);
        tok_smap_free(m);
        *m = g;
    }
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        smap_slot *e = &m->slot[i];
        if (!e->key) {
            e->key = s;
            e->len = (uint32_t)n;
            e->hash = h;
            e->val = val;
            m->n++;
            return;
        }
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) { e->val = val; return; }
    }
}

void tok_pmap_init(pmap_t *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2 + 2) cap *= 2;
    m->slot = bpt_xmalloc(cap * sizeof *m->slot);
    for (size_t i = 0; i < cap; i++) m->slot[i].rank = -1;
    m->mask = cap - 1;
    m->n = 0;
}

/* Insert or overwrite. */
void tok_pmap_put(pmap_t *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->mask + 1) {              /* grow to keep load <= 1/2 */
        pmap_t g;
        tok_pmap_init(&g, m->mask + 1);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slot[i].rank >= 0)
                tok_pmap_put(&g, (int32_t)(m->slot[i].key >> 32), (int32_t)(uint32_t)m->slot[i].key,
                         m->slot[i].rank, m->slot[i].id);
        free(m->slot);
        *m = g;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        pmap_slot *e = &m->slot[i];
        if (e->rank < 0) { m->n++; e->key = k; e->rank = rank; e->id = id; return; }
        if (e->key == k) { e->rank = rank; e->id = id; return; }
    }
}

char *tok_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bpt_err(err, errlen, "%s: cannot open the tokenizer file: %s", path, strerror(errno));
        return NULL;
    }
    buf_t b = {0};
    char chunk[1 << 16];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&b, chunk, k);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        bpt_err(err, errlen, "%s: cannot read the tokenizer file: %s", path, strerror(errno));
        return NULL;
    }
    if (!b.p) buf_reserve(&b, 0);
    *len = b.n;
    return b.p;
}

void tok_free_each(void *const *p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i]);
}

/* ---- UTF-8 ---- */

uint32_t tok_sp_decode_utf8(const unsigned char *s, size_t n, size_t *mblen) {
    uint32_t cp;
    size_t bad;
    int k = bpt_utf8_decode(s, n, &cp, &bad);
    *mblen = k ? (size_t)k : 1;          /* SentencePiece skips one byte of a bad sequence */
    return k ? cp : 0xFFFD;
}

size_t tok_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void tok_utf8_lossy(const unsigned char *s, size_t n, buf_t *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t bad;
        int k = bpt_utf8_decode(s + i, n - i, &cp, &bad);
        if (k) buf_add(out, s + i, (size_t)k);
        else buf_add(out, "\xEF\xBF\xBD", 3);
        i += k ? (size_t)k : bad;
    }
}

/* ---- the BPE merge heap ---- */

static int cand_before(const bpe_cand *a, const bpe_cand *b) {
    return a->key > b->key || (a->key == b->key && a->pos < b->pos);
}

void tok_bpe_heap_push(bpe_heap *h, bpe_cand x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->a = bpt_xrealloc(h->a, h->cap * sizeof *h->a);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!cand_before(&x, &h->a[up])) break;
        h->a[i] = h->a[up];
        i = up;
    }
    h->a[i] = x;
}

bpe_cand tok_bpe_heap_pop(bpe_heap *h) {
    bpe_cand top = h->a[0], x = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->a[c + 1], &h->a[c])) c++;
        if (!cand_before(&h->a[c], &x)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = x;
    return top;
}
