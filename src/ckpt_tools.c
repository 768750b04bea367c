/* ckpt_tools.c — bpt ckpt inspect, export, import (being written). */
#include "bpt/ckpt.h"
#include <stdio.h>
int bpt_ckpt_main(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "bpt: ckpt tools: not built yet\n"); return 2; }
