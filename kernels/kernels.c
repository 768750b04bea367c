/* kernels.c — backend lookup by name. */
#ifdef HAVE_CONFIG_H
#include "config.h"  /* BPT_HAVE_CUDA */
#endif
#include <string.h>

#include "kernels/kernels.h"

const bpt_kernels *bpt_kernels_get(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return &bpt_kernels_cpu;
    if (strcmp(name, "null") == 0) return &bpt_kernels_null;
#ifdef BPT_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) return &bpt_kernels_cuda;
#endif
    return NULL;
}

/* "null" is internal (bpt plan, benchmarks) and not listed. */
const char *bpt_kernels_list(void) {
#ifdef BPT_HAVE_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}
