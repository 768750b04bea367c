/* arena.c — one stack allocator per rank with a high-water mark. */
#include "bpt/arena.h"
#include "kernels/kernels.h"
#include "bpt/util.h"

#define ARENA_ALIGN 256

#include <stdlib.h>
#include <string.h>

int bpt_arena_init(bpt_arena *a, const bpt_kernels *k, size_t capacity) {
    memset(a, 0, sizeof *a);
    a->k = k;
    a->capacity = (capacity + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    a->used = a->peak = 0;
    a->base = k->alloc(a->capacity);
    if (!a->base) return -1;
    if (k->workspace && k->set_workspace)   /* the backend's own scratch comes first */
        k->set_workspace(bpt_arena_alloc(a, k->workspace, "backend workspace"), k->workspace);
    return 0;
}

void bpt_arena_destroy(bpt_arena *a) {
    if (a->base) a->k->free(a->base, a->capacity);
    a->base = NULL;
    free(a->live);
    free(a->at_peak);
    a->live = a->at_peak = NULL;
    a->nlive = a->npeak = a->cap = 0;
}

void bpt_arena_track(bpt_arena *a) {
    if (a->cap) return;
    a->cap = 256;
    a->live = bpt_xmalloc((size_t)a->cap * sizeof *a->live);
    a->at_peak = bpt_xmalloc((size_t)a->cap * sizeof *a->at_peak);
}

static void track(bpt_arena *a, const char *what, size_t offset, size_t bytes) {
    if (a->nlive == a->cap) {
        a->cap *= 2;
        a->live = bpt_xrealloc(a->live, (size_t)a->cap * sizeof *a->live);
        a->at_peak = bpt_xrealloc(a->at_peak, (size_t)a->cap * sizeof *a->at_peak);
    }
    a->live[a->nlive++] = (bpt_arena_entry){what, offset, bytes};
    if (a->used >= a->peak) {
        memcpy(a->at_peak, a->live, (size_t)a->nlive * sizeof *a->live);
        a->npeak = a->nlive;
    }
}

void *bpt_arena_alloc(bpt_arena *a, size_t bytes, const char *what) {
    size_t n = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (a->used + n > a->capacity) {
        char b1[32], b2[32], b3[32];
        /* arena_bytes is checked against the planned peak before the first step, so
         * this is a planning error, and it may hit one rank only: abort the job */
        bpt_panic(__FILE__, __LINE__, "out of arena memory allocating %s (%s): %s of %s in use, beyond the "
                  "planned peak (please report it; HINT: a larger arena_bytes works around it)",
                what, bpt_fmt_bytes((double)bytes, b1, sizeof b1),
                bpt_fmt_bytes((double)a->used, b2, sizeof b2),
                bpt_fmt_bytes((double)a->capacity, b3, sizeof b3));
    }
    void *p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    if (a->cap) track(a, what, a->used - n, n);
    return p;
}

size_t bpt_arena_mark(const bpt_arena *a) { return a->used; }

void bpt_arena_release(bpt_arena *a, size_t mark) {
    BPT_CHECK(mark <= a->used, "arena release above top (%zu > %zu)", mark, a->used);
    a->used = mark;
    while (a->nlive && a->live[a->nlive - 1].offset >= mark) a->nlive--;
}
