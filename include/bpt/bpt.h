/* bpt.h — the whole public API. */
#ifndef BPT_BPT_H
#define BPT_BPT_H
#include "util.h"
#include "arena.h"
#include "config.h"
#include "comm.h"
#include "mesh.h"
#include "model.h"
#include "optim.h"
#include "data.h"
#include "ckpt.h"
#include "safetensors.h"
#include "train.h"
#endif
