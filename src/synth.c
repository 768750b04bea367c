/* synth.c — the built-in synthetic corpus (see docs/data.md).
 *
 * English-like text from a small seeded grammar: a few sentence templates over
 * ~60 nouns, ~40 verbs (with their -s and past forms), adjectives, adverbs,
 * places, number words and "the X of the Y" phrases; 3 to 7 sentences a paragraph,
 * paragraphs separated by a newline. The spelling of a few hundred words and the
 * sentence shapes are easy for a byte-level model to pick up, so its loss falls
 * visibly from ln(256) = 5.5 within a few hundred steps, and the word choices keep
 * it from reaching zero. The generator is splitmix64, so a seed gives the same bytes
 * everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "bpt/data.h"
#include "bpt/util.h"
#include "bpt/h5util.h"

typedef struct { uint64_t s; } rng;

static uint64_t rng_next(rng *r) {          /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rng_int(rng *r, int n) { return (int)((rng_next(r) >> 11) % (uint64_t)n); }
#define PICK(r, arr) (arr[rng_int(r, (int)(sizeof arr / sizeof arr[0]))])

/* word lists (pick): singular, plural */
static const char nouns[] =
    "cat cats, dog dogs, bird birds, horse horses, fox foxes, child children, man men, "
    "woman women, teacher teachers, farmer farmers, king kings, queen queens, "
    "doctor doctors, sailor sailors, student students, baker bakers, river rivers, "
    "mountain mountains, forest forests, city cities, village villages, garden gardens, "
    "house houses, road roads, bridge bridges, tower towers, ship ships, boat boats, "
    "tree trees, flower flowers, stone stones, book books, letter letters, song songs, "
    "story stories, window windows, door doors, table tables, chair chairs, lamp lamps, "
    "apple apples, loaf loaves, cup cups, box boxes, key keys, clock clocks, map maps, "
    "coin coins, star stars, cloud clouds, storm storms, wind winds, machine machines, "
    "engine engines, wheel wheels, lake lakes, field fields, market markets, "
    "school schools, island islands, painter painters, friend friends, ";

/* base, third person singular, past */
static const char verbs[] =
    "see sees saw, find finds found, take takes took, make makes made, "
    "carry carries carried, follow follows followed, watch watches watched, "
    "build builds built, paint paints painted, open opens opened, close closes closed, "
    "move moves moved, push pushes pushed, pull pulls pulled, lift lifts lifted, "
    "hold holds held, keep keeps kept, give gives gave, sell sells sold, "
    "buy buys bought, read reads read, write writes wrote, hear hears heard, "
    "love loves loved, help helps helped, visit visits visited, leave leaves left, "
    "reach reaches reached, cross crosses crossed, clean cleans cleaned, "
    "count counts counted, draw draws drew, catch catches caught, throw throws threw, "
    "hide hides hid, fix fixes fixed, break breaks broke, bring brings brought, "
    "call calls called, remember remembers remembered, ";

/* intransitive: base, third person singular, past */
static const char iverbs[] =
    "sleep sleeps slept, run runs ran, sing sings sang, wait waits waited, "
    "laugh laughs laughed, fall falls fell, walk walks walked, shine shines shone, "
    "grow grows grew, rest rests rested, ";

static const char *const adjs[] = {
    "big", "small", "old", "young", "red", "blue", "green", "white", "black", "quiet",
    "loud", "happy", "tired", "bright", "dark", "warm", "cold", "tall", "short", "strange",
    "gentle", "clever", "heavy", "empty", "golden", "wooden",
};

static const char *const advs[] = {
    "slowly", "quickly", "quietly", "often", "never", "always", "carefully", "again", "today",
    "yesterday",
};

static const char *const preps[] = {
    "near", "behind", "under", "above", "beside", "across", "inside", "around",
};

static const char *const numbers[] = {
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
};

static const char *const names[] = {
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas",
};

/* Text buffer with a little grammar help. */
typedef struct { char *s; size_t n, cap; } text;

static void put(text *t, const char *s) {
    size_t k = strlen(s);
    if (t->n + k + 1 > t->cap) {
        while (t->n + k + 1 > t->cap) t->cap = t->cap ? 2 * t->cap : 4096;
        t->s = realloc(t->s, t->cap);
        BPT_CHECK(t->s != NULL, "out of memory");
    }
    memcpy(t->s + t->n, s, k + 1);
    t->n += k;
}

static int starts_with_vowel(const char *w) { return strchr("aeiou", w[0]) != NULL; }

/* A word list is its entries, each ending in ", ", and an entry its forms separated by
 * spaces ("see sees saw, "). pick draws an entry (one draw, as PICK does) and copies
 * its form'th word into w. */
static const char *pick(rng *r, const char *list, int form, char w[32]) {
    int n = 0;
    for (const char *c = list; *c; c++) n += *c == ',';
    const char *p = list;
    for (int i = rng_int(r, n); i > 0; i--) p = strchr(p, ',') + 2;
    for (; form > 0; form--) p = strchr(p, ' ') + 1;
    size_t k = strcspn(p, " ,");
    BPT_CHECK(k < 32, "synthetic word too long");
    memcpy(w, p, k);
    w[k] = 0;
    return w;
}

static void put_pick(rng *r, text *t, const char *list, int form) {
    char w[32];
    put(t, pick(r, list, form, w));
}

/* A singular noun phrase: "the old cat", "a horse", "the king of the island". */
static void np_sing(rng *r, text *t, int definite) {
    const char *adj = rng_int(r, 3) == 0 ? PICK(r, adjs) : NULL;
    char w[32];
    const char *noun = pick(r, nouns, 0, w);
    const char *first = adj ? adj : noun;
    put(t, definite ? "the " : starts_with_vowel(first) ? "an " : "a ");
    if (adj) { put(t, adj); put(t, " "); }
    put(t, noun);
    if (rng_int(r, 8) == 0) { put(t, " of the "); put_pick(r, t, nouns, 0); }
}

/* A plural noun phrase: "three red apples", "the birds". */
static void np_plur(rng *r, text *t) {
    int k = rng_int(r, 3);
    if (k == 0) put(t, "the ");
    else if (k == 1) { put(t, PICK(r, numbers)); put(t, " "); }
    else put(t, "some ");
    if (rng_int(r, 3) == 0) { put(t, PICK(r, adjs)); put(t, " "); }
    put_pick(r, t, nouns, 1);
}

/* Any object: mostly singular, sometimes plural, sometimes a name. */
static void np_obj(rng *r, text *t) {
    int k = rng_int(r, 6);
    if (k < 3) np_sing(r, t, rng_int(r, 2));
    else if (k < 5) np_plur(r, t);
    else put(t, PICK(r, names));
}

static void sentence(rng *r, text *t) {
    size_t start = t->n;
    switch (rng_int(r, 9)) {
    case 0:   /* The old cat saw a horse near the river. */
        np_sing(r, t, 1); put(t, " "); put_pick(r, t, verbs, 2); put(t, " ");
        np_obj(r, t);
        if (rng_int(r, 2)) { put(t, " "); put(t, PICK(r, preps)); put(t, " "); np_sing(r, t, 1); }
        put(t, ".");
        break;
    case 1:   /* A farmer often carries three apples. */
        np_sing(r, t, rng_int(r, 2));
        if (rng_int(r, 3) == 0) { put(t, " "); put(t, PICK(r, advs)); }
        put(t, " "); put_pick(r, t, verbs, 1); put(t, " "); np_obj(r, t); put(t, ".");
        break;
    case 2:   /* The birds sang quietly. */
        np_plur(r, t); put(t, " "); put_pick(r, t, iverbs, 2);
        if (rng_int(r, 2)) { put(t, " "); put(t, PICK(r, advs)); }
        put(t, ".");
        break;
    case 3:   /* There are five small boats in the lake. */
        put(t, "there are "); put(t, PICK(r, numbers)); put(t, " ");
        if (rng_int(r, 2)) { put(t, PICK(r, adjs)); put(t, " "); }
        put_pick(r, t, nouns, 1); put(t, " "); put(t, PICK(r, preps)); put(t, " ");
        np_sing(r, t, 1); put(t, ".");
        break;
    case 4:   /* Did the king see the map? */
        put(t, "did "); np_sing(r, t, 1); put(t, " "); put_pick(r, t, verbs, 0); put(t, " ");
        np_obj(r, t); put(t, "?");
        break;
    case 5:   /* Anna wanted to paint the old door. */
        put(t, PICK(r, names)); put(t, rng_int(r, 2) ? " wanted to " : " will ");
        put_pick(r, t, verbs, 0); put(t, " "); np_obj(r, t); put(t, ".");
        break;
    case 6: { /* The house is big and warm. */
        np_sing(r, t, 1); put(t, rng_int(r, 2) ? " is " : " was ");
        put(t, PICK(r, adjs));
        if (rng_int(r, 2)) { put(t, " and "); put(t, PICK(r, adjs)); }
        put(t, ".");
        break;
    }
    case 7:   /* When the storm came, the sailors waited. */
        put(t, "when "); np_sing(r, t, 1); put(t, " came, "); np_plur(r, t); put(t, " ");
        put_pick(r, t, iverbs, 2); put(t, ".");
        break;
    default: { /* In 1987 the baker built a house. */
        char year[16];
        snprintf(year, sizeof year, "%d", 1800 + rng_int(r, 220));
        put(t, "in "); put(t, year); put(t, " "); np_sing(r, t, 1); put(t, " ");
        put_pick(r, t, verbs, 2); put(t, " "); np_obj(r, t); put(t, ".");
        break;
    }
    }
    if (t->s[start] >= 'a' && t->s[start] <= 'z') t->s[start] = (char)(t->s[start] - 'a' + 'A');
}

static void paragraph(rng *r, text *t) {
    int k = 3 + rng_int(r, 5);
    for (int i = 0; i < k; i++) {
        if (i) put(t, " ");
        sentence(r, t);
    }
    put(t, "\n");
}

int bpt_data_write_synthetic(const char *path, uint64_t ntokens, uint64_t seed, char *err,
                             size_t errlen) {
    if (ntokens < 2) return bpt_err(err, errlen, "synthetic corpus: need at least 2 tokens");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return bpt_err(err, errlen, "%s: cannot create the file", path);

    hsize_t dim = ntokens;
    hid_t fspace = H5Screate_simple(1, &dim, NULL);
    hid_t ds = H5Dcreate2(file, "tokens", H5T_STD_U16LE, fspace, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    int rc = ds >= 0 ? 0 : -1;

    /* Generate paragraphs and write them out in pieces of about 1 MiB. */
    rng r = { seed ^ 0x6270742073796E74ull };   /* "bpt synt" */
    text t = { 0 };
    const size_t piece = 1 << 20;
    uint16_t *buf = NULL;
    size_t bufcap = 0;
    uint64_t written = 0;
    while (rc == 0 && written < ntokens) {
        t.n = 0;
        while (t.n < piece) paragraph(&r, &t);
        hsize_t cnt = t.n;
        if (cnt > ntokens - written) cnt = ntokens - written;
        if (cnt > bufcap) {
            free(buf);
            bufcap = cnt;
            buf = bpt_xmalloc(bufcap * sizeof *buf);
        }
        for (hsize_t i = 0; i < cnt; i++) buf[i] = (unsigned char)t.s[i];
        hsize_t off = written;
        hid_t mem = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_UINT16, mem, fspace, H5P_DEFAULT, buf) < 0)
            rc = -1;
        H5Sclose(mem);
        written += cnt;
    }
    free(buf);
    free(t.s);

    int vocab = 256;
    if (rc == 0) rc = bpt_h5_attr_str(file, "tokenizer", "bytes");
    if (rc == 0) rc = bpt_h5_attr_num(file, "vocab_size", H5T_STD_I32LE, H5T_NATIVE_INT, &vocab);
    if (rc == 0) rc = bpt_h5_attr_str(file, "source", "bpt synthetic corpus");
    if (rc == 0) rc = bpt_h5_attr_num(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(fspace);
    if (H5Fclose(file) < 0) rc = -1;
    if (rc) {
        remove(path);
        return bpt_err(err, errlen, "%s: cannot write the synthetic corpus", path);
    }
    return 0;
}
