/* cpu_tile.c — the attention microkernels (cpu_tile.h) for AVX-512F, for AVX2 + FMA, and
 * the AVX-512 ones compiled for AVX2 (a test instance); and the run-time choice. GCC on
 * x86-64 only: elsewhere there are none and the attention runs on sgemm. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_tile.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BPT_TILE_X86 1

#define VW 8
#define MRV 6
#define TGT "avx2,fma"
#define SFX _avx2
#define NAME "avx2"
#include "kernels/cpu/cpu_tile_body.h"

#define VW 16
#define MRV 12
#define TGT "avx2,fma"
#define SFX _w16
#define NAME "avx2-w16"
#include "kernels/cpu/cpu_tile_body.h"

#define VW 16
#define MRV 12
#define TGT "avx512f,fma"
#define SFX _avx512
#define NAME "avx512"
#include "kernels/cpu/cpu_tile_body.h"
#endif

static const bpt_cpu_tile *chosen;

/* The set named `name`, if this CPU runs it: 0 and *t (NULL for "off"), else -1. */
static int lookup(const char *name, const bpt_cpu_tile **t) {
    if (!strcmp(name, "off")) { *t = NULL; return 0; }
#ifdef BPT_TILE_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f");
    struct { const bpt_cpu_tile *t; int ok; } sets[] = { { &tile_avx512, avx512 }, { &tile_avx2, avx2 }, { &tile_w16, avx2 } };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (!strcmp(name, sets[i].t->name) && sets[i].ok) { *t = sets[i].t; return 0; }
#endif
    return -1;
}

static void init(void) {
    /* AVX-512 only by default: the 6 x 16 AVX2 tiles measured 5-34% slower than
     * OpenBLAS's Haswell sgemm, the 12 x 32 AVX-512 ones faster (docs/benchmarks.md) */
    if (lookup("avx512", &chosen) != 0) chosen = NULL;
    const char *want = getenv("BPT_CPU_TILE");
    const bpt_cpu_tile *t;
    if (want && *want && lookup(want, &t) == 0)
        chosen = t;
    else if (want && *want)
        fprintf(stderr, "bpt: note: BPT_CPU_TILE=%s: not one of avx512, avx2, avx2-w16, off that this CPU runs; "
                "using %s\n", want, chosen ? chosen->name : "off");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

const bpt_cpu_tile *bpt_cpu_tile_get(void) {
    pthread_once(&once, init);
    return chosen;
}

int bpt_cpu_tile_use(const char *name) {
    pthread_once(&once, init);
    const bpt_cpu_tile *t;
    if (lookup(name, &t) != 0) return -1;
    chosen = t;
    return 0;
}
