/* arena.h — all step memory of a rank comes from one arena with a high-water mark.
 *
 * The arena is a stack: bpt_arena_alloc bumps, bpt_arena_mark/bpt_arena_release pop
 * back to a mark. Its capacity is reserved once through the backend's alloc (one
 * mmap or one cudaMalloc), so `peak` is the exact number of bytes the program ever
 * needed at once: parameters, gradients, optimizer moments and activations.
 * Allocations are 256-byte aligned.
 */
#ifndef BPT_ARENA_H
#define BPT_ARENA_H

#include <stddef.h>

/* The backend whose memory the arena holds (kernels/kernels.h, private to the
 * implementation: users of the arena need not see the kernel table). */
typedef struct bpt_kernels bpt_kernels;

/* One allocation: what it holds (the string passed to bpt_arena_alloc), where, how big. */
typedef struct bpt_arena_entry { const char *what; size_t offset, bytes; } bpt_arena_entry;

typedef struct bpt_arena {
    const bpt_kernels *k;
    char *base;            /* backend memory */
    size_t capacity;
    size_t used;
    size_t peak;
    /* with bpt_arena_track: the live allocations, and a copy of them at the peak */
    bpt_arena_entry *live, *at_peak;
    int nlive, npeak, cap;
} bpt_arena;

/* Reserve capacity bytes from backend k. Returns 0 or -1 (backend alloc failed).
 * A backend with a workspace (k->workspace bytes) gets it first, from the bottom. */
int    bpt_arena_init(bpt_arena *a, const bpt_kernels *k, size_t capacity);
void   bpt_arena_destroy(bpt_arena *a);
/* bytes from the top; dies with a clear message naming what and the sizes when full. */
void  *bpt_arena_alloc(bpt_arena *a, size_t bytes, const char *what);
size_t bpt_arena_mark(const bpt_arena *a);
void   bpt_arena_release(bpt_arena *a, size_t mark);
/* Keep a record of every live allocation from now on, and of those live at the peak
 * (a.at_peak[0..npeak), bottom first): what fills the memory when it is fullest. Used
 * by the plan (bpt plan prints it); costs a copy of the live list per new peak. */
void   bpt_arena_track(bpt_arena *a);

#endif
