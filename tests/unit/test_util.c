/* test_util — bpt_utf8_decode, the one UTF-8 decoder (tokenizers, config strings),
 * against its definition: the well-formed sequences are exactly the encodings of the
 * scalar values (U+0000..U+10FFFF without the surrogates), and an ill-formed one is
 * replaced by its maximal subpart (Unicode 3.9, "U+FFFD substitution of maximal
 * subparts"): the longest prefix that some well-formed sequence starts with. Every
 * sequence of up to three bytes is tried, and every four-byte lead with its prefixes. */
#include "bpt/util.h"
#include "unit_test.h"

#include <stdint.h>
#include <stdlib.h>

static int encode(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | cp >> 6; o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) { o[0] = 0xE0 | cp >> 12; o[1] = 0x80 | (cp >> 6 & 0x3F); o[2] = 0x80 | (cp & 0x3F); return 3; }
    o[0] = 0xF0 | cp >> 18; o[1] = 0x80 | (cp >> 12 & 0x3F); o[2] = 0x80 | (cp >> 6 & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

static int scalar(uint32_t cp) { return cp < 0xD800 || (cp >= 0xE000 && cp <= 0x10FFFF); }

/* A bit per L-byte string (L = 1..3): prefix, it begins some well-formed sequence;
 * whole, it is one */
static unsigned char *prefix[3], *whole[3];
static int bit(unsigned char *const *set, const unsigned char *b, int len) {
    uint32_t i = 0;
    for (int k = 0; k < len; k++) i = i << 8 | b[k];
    return set[len - 1][i >> 3] >> (i & 7) & 1;
}
static int is_prefix(const unsigned char *b, int len) { return bit(prefix, b, len); }
/* b[0..len) is well-formed: a three-byte prefix of a four-byte form and a trail byte */
static int is_whole(const unsigned char *b, int len) {
    return len < 4 ? bit(whole, b, len) : b[0] >= 0xF0 && is_prefix(b, 3) && (b[3] & 0xC0) == 0x80;
}

int main(void) {
    for (int l = 0; l < 3; l++) {
        prefix[l] = calloc((size_t)1 << (8 * (l + 1) - 3), 1);
        whole[l] = calloc((size_t)1 << (8 * (l + 1) - 3), 1);
    }
    int roundtrip = 1;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (!scalar(cp)) continue;
        unsigned char b[4];
        int n = encode(cp, b);
        uint32_t got = 0;
        size_t bad = 0;
        if (bpt_utf8_decode(b, (size_t)n, &got, &bad) != n || got != cp) roundtrip = 0;
        uint32_t i = 0;
        for (int l = 0; l < n && l < 3; l++) {
            i = i << 8 | b[l];
            prefix[l][i >> 3] |= (unsigned char)(1u << (i & 7));
        }
        if (n < 4) whole[n - 1][i >> 3] |= (unsigned char)(1u << (i & 7));
    }
    CHECK(roundtrip, "every scalar value's encoding decodes to it, with its length");

    /* every string of 1..3 bytes; a 4-byte tail is filled with a trail byte or not */
    long wrong_valid = 0, wrong_bad = 0;
    for (int n = 1; n <= 4; n++) {
        uint32_t count = n == 4 ? 1u << 24 : 1u << (8 * n);
        for (uint32_t x = 0; x < count; x++)
            for (int tail = 0; tail < (n == 4 ? 2 : 1); tail++) {
                unsigned char b[4];
                for (int k = 0; k < n && k < 3; k++) b[k] = (unsigned char)(x >> (8 * ((n < 3 ? n : 3) - 1 - k)));
                if (n == 4) b[3] = tail ? 0x80 : 0x41;
                uint32_t cp = 0;
                size_t bad = 0;
                int k = bpt_utf8_decode(b, (size_t)n, &cp, &bad);
                if (k > 0) {
                    unsigned char e[4];
                    if (!scalar(cp) || encode(cp, e) != k || memcmp(e, b, (size_t)k) != 0) wrong_valid++;
                } else {
                    /* the maximal subpart; and no well-formed sequence is a prefix of b */
                    size_t want = 1;
                    for (int l = 1; l <= n && l <= 3; l++) if (is_prefix(b, l)) want = (size_t)l;
                    int wf = 0;
                    for (int l = 1; l <= n; l++) wf |= is_whole(b, l);
                    if (bad != want || wf) wrong_bad++;
                }
            }
    }
    CHECK(wrong_valid == 0, "what is decoded is the encoding of a scalar value (%ld wrong)", wrong_valid);
    CHECK(wrong_bad == 0, "what is rejected is rejected at its maximal subpart (%ld wrong)", wrong_bad);

    uint32_t cp;
    size_t bad;
    CHECK(bpt_utf8_decode((const unsigned char *)"\xED\xA0\x80", 3, &cp, &bad) == 0 && bad == 1,
          "a surrogate (ED A0 80) is ill-formed at its first byte");
    CHECK(bpt_utf8_decode((const unsigned char *)"\xF4\x90\x80\x80", 4, &cp, &bad) == 0 && bad == 1,
          "beyond U+10FFFF (F4 90 80 80) is ill-formed at its first byte");
    CHECK(bpt_utf8_decode((const unsigned char *)"\xE2\x82", 2, &cp, &bad) == 0 && bad == 2,
          "a truncated sequence (E2 82) is one maximal subpart of two bytes");
    CHECK(bpt_utf8_decode((const unsigned char *)"\xC0\xAF", 2, &cp, &bad) == 0 && bad == 1,
          "an overlong form (C0 AF) is ill-formed at its first byte");
    for (int l = 0; l < 3; l++) {
        free(prefix[l]);
        free(whole[l]);
    }
    return tap_done();
}
