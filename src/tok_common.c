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

/* ---- UTF-8 ---- */

uint32_t tok_sp_decode_utf8(const unsigned char *s, size_t n, size_t *mblen) {
    if (s[0] < 0x80) { *mblen = 1; return s[0]; }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80 && valid_cp(cp)) { *mblen = 2; return cp; }
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_cp(cp)) { *mblen = 3; return cp; }
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) {
            *mblen = 4;
            return cp;
        }
    }
    *mblen = 1;
    return 0xFFFD;
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
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        unsigned char c = s[i++];
        int ok = 1;
        if (c >= 0x80) {
            #define AT(k) ((k) < n ? s[k] : 0)
            ok = 0;
            if (c >= 0xC2 && c <= 0xDF) {
                if (is_trail(AT(i))) { i++; ok = 1; }
            } else if (c >= 0xE0 && c <= 0xEF) {
                unsigned char d = AT(i);
                int second = (c == 0xE0) ? (d >= 0xA0 && d <= 0xBF)
                           : (c == 0xED) ? (d >= 0x80 && d <= 0x9F)
                           : is_trail(d);
                if (second) {
                    i++;
                    if (is_trail(AT(i))) { i++; ok = 1; }
                }
            } else if (c >= 0xF0 && c <= 0xF4) {
                unsigned char d = AT(i);
                int second = (c == 0xF0) ? (d >= 0x90 && d <= 0xBF)
                           : (c == 0xF4) ? (d >= 0x80 && d <= 0x8F)
                           : is_trail(d);
                if (second) {
                    i++;
                    if (is_trail(AT(i))) {
                        i++;
                        if (is_trail(AT(i))) { i++; ok = 1; }
                    }
                }
            }
            #undef AT
        }
        if (ok) buf_add(out, s + start, i - start);
        else buf_add(out, "\xEF\xBF\xBD", 3);
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
