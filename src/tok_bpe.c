/* tok_bpe.c — Hugging Face byte-level BPE at work on an hf_bpe (src/tok_internal.h):
 * added tokens split out first, the Split/ByteLevel pre-tokenizers, BPE by merge
 * rank (tokenizers' word.rs), ByteLevel decoding. See docs/tokenizers.md.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- encoding ---- */

typedef struct {
    int c;           /* token id */
    int prev, next;
    size_t len;      /* bytes covered; 0 = merged away */
} hf_sym;

/* Per-call scratch space, reused across the words of one encode call. */
typedef struct {
    hf_sym *sym;
    size_t symcap;
    bpe_heap heap;
    buf_t word;      /* the byte-level string of the current word */
    buf_t tmp;
    pcre2_match_data *md;
    int32_t **ids;
    size_t *n, *cap;
    int fail;
} hf_ctx;

static void hf_push(hf_ctx *cx, int32_t id) {
    if (ids_push(cx->ids, cx->n, cx->cap, id) < 0) cx->fail = 1;
}

static void hf_sym_add(hf_ctx *cx, int *nsym, int c, size_t len) {
    if ((size_t)*nsym == cx->symcap) {
        cx->symcap = cx->symcap ? 2 * cx->symcap : 64;
        cx->sym = bpt_xrealloc(cx->sym, cx->symcap * sizeof *cx->sym);
    }
    hf_sym *s = &cx->sym[*nsym];
    s->c = c;
    s->len = len;
    s->prev = *nsym - 1;
    s->next = -1;
    if (*nsym > 0) cx->sym[*nsym - 1].next = *nsym;
    (*nsym)++;
}

/* BPE of one pre-token w (raw bytes; its byte-level form is made here). */
static void hf_bpe_word(const hf_bpe *h, hf_ctx *cx, const unsigned char *w, size_t n) {
    if (n == 0) return;
    if (h->ignore_merges) {
        cx->word.n = 0;
        for (size_t i = 0; i < n; i++) buf_add(&cx->word, h->bytechar[w[i]], h->bytechar_len[w[i]]);
        int id = smap_get(&h->vocab, cx->word.p, cx->word.n);
        if (id >= 0) { hf_push(cx, id); return; }
    }
    /* BPE::merge_word: one symbol per character, unknowns handled */
    int nsym = 0;
    int unk_on = 0;
    size_t unk_len = 0;
    for (size_t i = 0; i < n; i++) {
        int id;
        if (!h->prefix && !h->suffix) {
            id = h->byte_id[w[i]];
        } else {
            cx->tmp.n = 0;
            if (h->prefix && i > 0) buf_add(&cx->tmp, h->prefix, strlen(h->prefix));
            buf_add(&cx->tmp, h->bytechar[w[i]], h->bytechar_len[w[i]]);
            if (h->suffix && i == n - 1) buf_add(&cx->tmp, h->suffix, strlen(h->suffix));
            id = smap_get(&h->vocab, cx->tmp.p, cx->tmp.n);
        }
        if (id >= 0) {
            if (unk_on) { hf_sym_add(cx, &nsym, h->unk_id, unk_len); unk_on = 0; }
            hf_sym_add(cx, &nsym, id, 1);
            continue;
        }
        if (h->byte_fallback) {            /* <0xXX> of each UTF-8 byte of the character */
            const char *s = h->bytechar[w[i]];
            int k, all = 1, bid[4];
            for (k = 0; k < h->bytechar_len[w[i]]; k++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", (unsigned char)s[k]);
                bid[k] = smap_get(&h->vocab, name, 6);
                if (bid[k] < 0) all = 0;
            }
            if (all) {
                for (k = 0; k < h->bytechar_len[w[i]]; k++) hf_sym_add(cx, &nsym, bid[k], 1);
                continue;
            }
        }
        if (h->unk_id >= 0) {
            if (unk_on && h->fuse_unk) unk_len += 1;
            else {
                if (unk_on) hf_sym_add(cx, &nsym, h->unk_id, unk_len);
                unk_on = 1;
                unk_len = 1;
            }
        }                                   /* no unk token: the character is dropped */
    }
    if (unk_on) hf_sym_add(cx, &nsym, h->unk_id, unk_len);
    if (nsym == 0) return;

    /* Word::merge_all: lowest rank first, then leftmost; entries checked for staleness */
    cx->heap.n = 0;
    for (int i = 0; i + 1 < nsym; i++) {
        const pmap_slot *m = pmap_get(&h->merges, cx->sym[i].c, cx->sym[i + 1].c);
        if (m) tok_bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, i, 0, 0, m->id});
    }
    while (cx->heap.n > 0) {
        bpe_cand top = tok_bpe_heap_pop(&cx->heap);
        hf_sym *cur = &cx->sym[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int np = cur->next;
        hf_sym right = cx->sym[np];
        const pmap_slot *m = pmap_get(&h->merges, cur->c, right.c);
        if (!m || m->id != top.id) continue;
        cur->c = top.id;
        cur->len += right.len;
        cur->next = right.next;
        cx->sym[np].len = 0;
        if (right.next >= 0) cx->sym[right.next].prev = top.pos;
        if (cur->prev >= 0) {
            m = pmap_get(&h->merges, cx->sym[cur->prev].c, cur->c);
            if (m) tok_bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, cur->prev, 0, 0, m->id});
        }
        if (cur->next >= 0) {
            m = pmap_get(&h->merges, cur->c, cx->sym[cur->next].c);
            if (m) tok_bpe_heap_push(&cx->heap, (bpe_cand){-(double)m->rank, top.pos, 0, 0, m->id});
        }
    }
    for (int i = 0; i < nsym; i++)
        if (cx->sym[i].len) hf_push(cx, cx->sym[i].c);
}

/* The matches of re in s[0..n): (start, end, is_match) ranges covering s. */
typedef struct {
    size_t a, b;
    int match;
} hf_range;

typedef struct {
    hf_range *r;
    size_t n, cap;
} hf_ranges;

static void ranges_add(hf_ranges *v, size_t a, size_t b, int match) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 32;
        v->r = bpt_xrealloc(v->r, v->cap * sizeof *v->r);
    }
    v->r[v->n++] = (hf_range){a, b, match};
}

static void hf_find_matches(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                            hf_ranges *out) {
    out->n = 0;
    if (n == 0) { ranges_add(out, 0, 0, 0); return; }
    size_t prev = 0, at = 0;
    while (at <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_JIT, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (prev != a) ranges_add(out, prev, a, 0);
        ranges_add(out, a, b, 1);
        prev = b;
        if (b > a) at = b;
        else {                                   /* empty match: step over one character */
            if (b >= n) break;
            at = b + 1;
            while (at < n && is_trail((unsigned char)s[at])) at++;
        }
    }
    if (prev != n) ranges_add(out, prev, n, 0);
}

/* NormalizedString::split with a SplitDelimiterBehavior: the kept pieces as ranges. */
static void hf_apply_behavior(const hf_ranges *m, int behavior, int invert, hf_ranges *out) {
    out->n = 0;
    int prev_match = 0;
    if (behavior == SPLIT_MERGED_NEXT) {
        /* walk backwards, merging a match into the piece after it */
        size_t start = out->n;
        for (size_t k = m->n; k-- > 0;) {
            int is = m->r[k].match ^ invert;
            if (is && !prev_match && out->n > start) out->r[out->n - 1].a = m->r[k].a;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            prev_match = is;
        }
        for (size_t i = 0, j = out->n - 1; out->n && i < j; i++, j--) {
            hf_range t = out->r[i];
            out->r[i] = out->r[j];
            out->r[j] = t;
        }
        return;
    }
    for (size_t k = 0; k < m->n; k++) {
        int is = m->r[k].match ^ invert;
        switch (behavior) {
        case SPLIT_ISOLATED:
            ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_REMOVED:
            if (!is) ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_CONTIGUOUS:
            if (is == prev_match && out->n > 0) out->r[out->n - 1].b = m->r[k].b;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        case SPLIT_MERGED_PREV:
            if (is && !prev_match && out->n > 0) out->r[out->n - 1].b = m->r[k].b;
            else ranges_add(out, m->r[k].a, m->r[k].b, 1);
            break;
        }
        prev_match = is;
    }
}

/* ByteLevel on one piece, then BPE on each of its words. */
static void hf_bytelevel(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n, hf_ranges *scratch) {
    buf_t pre = {0};
    if (h->add_prefix_space && s[0] != ' ') {
        buf_addc(&pre, ' ');
        buf_add(&pre, s, n);
        s = pre.p;
        n = pre.n;
    }
    if (h->use_regex) {
        hf_find_matches(h->bl_re, cx->md, s, n, scratch);
        for (size_t k = 0; k < scratch->n; k++)
            hf_bpe_word(h, cx, (const unsigned char *)s + scratch->r[k].a, scratch->r[k].b - scratch->r[k].a);
    } else {
        hf_bpe_word(h, cx, (const unsigned char *)s, n);
    }
    free(pre.p);
}

/* A piece of text between added tokens: Split steps, then ByteLevel and BPE. */
static void hf_pretokenize(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n) {
    if (n == 0) return;
    hf_ranges cur = {0}, next = {0}, m = {0}, kept = {0};
    ranges_add(&cur, 0, n, 1);
    for (int st = 0; st < h->n_split; st++) {
        next.n = 0;
        for (size_t k = 0; k < cur.n; k++) {
            size_t a = cur.r[k].a, len = cur.r[k].b - a;
            hf_find_matches(h->split[st].re, cx->md, s + a, len, &m);
            hf_apply_behavior(&m, h->split[st].behavior, h->split[st].invert, &kept);
            for (size_t j = 0; j < kept.n; j++)
                if (kept.r[j].b > kept.r[j].a) ranges_add(&next, a + kept.r[j].a, a + kept.r[j].b, 1);
        }
        hf_ranges t = cur;
        cur = next;
        next = t;
    }
    for (size_t k = 0; k < cur.n; k++)
        if (cur.r[k].b > cur.r[k].a) hf_bytelevel(h, cx, s + cur.r[k].a, cur.r[k].b - cur.r[k].a, &m);
    free(cur.r);
    free(next.r);
    free(m.r);
    free(kept.r);
}

/* Unicode White_Space at s (length in *k), as Rust's char::is_whitespace. */
static int hf_is_space(const char *s, size_t n, size_t *k) {
    uint32_t c = tok_sp_decode_utf8((const unsigned char *)s, n, k);
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Does a word character (\w) end at s[n] (before = 1) or start at s (before = 0)? */
static int hf_word_at(const hf_bpe *h, pcre2_match_data *md, const char *s, size_t n, int before) {
    if (n == 0) return 0;
    size_t at = 0;
    if (before) {
        at = n - 1;
        while (at > 0 && is_trail((unsigned char)s[at])) at--;
    }
    int rc = pcre2_match(h->word_re, (PCRE2_SPTR)s, n, at, PCRE2_ANCHORED, md, NULL);
    return rc > 0;
}

/* The added token matching at s (leftmost-longest), -1 if none. Only tokens with
 * normalized == want_norm take part (two passes, as AddedVocabulary does). */
static int hf_added_at(const hf_bpe *h, const char *s, size_t n, int want_norm) {
    int best = -1;
    size_t bestlen = 0;
    for (int i = 0; i < h->n_added; i++) {
        const hf_added *a = &h->added[i];
        if (a->normalized != want_norm || a->len == 0 || a->len > n || a->len <= bestlen) continue;
        if (memcmp(a->content, s, a->len) == 0) { best = i; bestlen = a->len; }
    }
    return best;
}

/* Split s[0..n) on added tokens of one kind; plain text goes to next(), or to the
 * second pass when pass == 0. */
static void hf_split_added(const hf_bpe *h, hf_ctx *cx, const char *s, size_t n, int pass) {
    if (n == 0) return;
    size_t start = 0, i = 0;
    while (i < n) {
        if (!h->added_first[(unsigned char)s[i]]) { i++; continue; }
        int k = hf_added_at(h, s + i, n - i, pass);
        if (k < 0) { i++; continue; }
        const hf_added *a = &h->added[k];
        size_t ms = i, me = i + a->len;
        if (a->single_word && ((ms > 0 && hf_word_at(h, cx->md, s, ms, 1)) ||
                               (me < n && hf_word_at(h, cx->md, s + me, n - me, 0)))) {
            i = me;                                /* not a single word: stays text */
            continue;
        }
        if (a->lstrip) {
            size_t b = ms;
            while (b > start) {
                size_t p = b - 1, k2;
                while (p > start && is_trail((unsigned char)s[p])) p--;
                if (!hf_is_space(s + p, n - p, &k2)) break;
                b = p;
            }
            ms = b;
        }
        size_t end = me;
        if (a->rstrip) {
            size_t k2;
            while (end < n && hf_is_space(s + end, n - end, &k2)) end += k2;
        }
        if (pass == 0) hf_split_added(h, cx, s + start, ms - start, 1);
        else hf_pretokenize(h, cx, s + start, ms - start);
        hf_push(cx, a->id);
        start = end;
        i = me > end ? me : end;
    }
    if (pass == 0) hf_split_added(h, cx, s + start, n - start, 1);
    else hf_pretokenize(h, cx, s + start, n - start);
}

int tok_hf_encode(const hf_bpe *h, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    hf_ctx cx = {0};
    cx.ids = ids;
    cx.n = n;
    cx.cap = cap;
    cx.md = pcre2_match_data_create(8, NULL);
    BPT_CHECK(cx.md, "out of host memory");
    hf_split_added(h, &cx, text, len, 0);
    pcre2_match_data_free(cx.md);
    free(cx.sym);
    free(cx.heap.a);
    free(cx.word.p);
    free(cx.tmp.p);
    return cx.fail ? -1 : 0;
}

char *tok_hf_decode(const hf_bpe *h, const int32_t *ids, size_t n, size_t *outlen) {
    buf_t raw = {0}, out = {0};
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= h->n_ids || !h->dec[id]) { free(raw.p); return NULL; }
        if (h->skip[id]) continue;
        buf_add(&raw, h->dec[id], h->declen[id]);
    }
    buf_reserve(&out, raw.n + 16);
    out.p[0] = 0;
    tok_utf8_lossy((const unsigned char *)raw.p, raw.n, &out);
    free(raw.p);
    *outlen = out.n;
    return out.p;
}

