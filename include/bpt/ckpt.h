/* ckpt.h — checkpoints as HDF5 files (format: docs/checkpoint-format.md).
 *
 *   /                       attributes: format "bpt-checkpoint", format_version 1,
 *                           step (optimizer updates applied), tokens_consumed,
 *                           config (resolved YAML), bpt_version, created (ISO time)
 *   /params/<HF name>       fp32, Hugging Face shape
 *   /optimizer/m/<HF name>  fp32 (only with checkpointer.save_optimizer_state)
 *   /optimizer/v/<HF name>  fp32
 * Files are written to NAME.tmp and renamed, so a crash never leaves a half file.
 */
#ifndef BPT_CKPT_H
#define BPT_CKPT_H

#include <stdint.h>
#include <stddef.h>
#include "model.h"

typedef enum { BPT_LOAD_PARAMS = 0, BPT_LOAD_TRAINSTATE, BPT_LOAD_TRAINSTATE_PARAMS } bpt_load_kind;

typedef struct bpt_ckpt_meta {
    int64_t step;
    uint64_t tokens_consumed;
} bpt_ckpt_meta;

/* Parse load_checkpoint "params::F", "trainstate::F", "trainstate_params::F".
 * path receives F. 0 or -1 with message naming load_checkpoint. */
int bpt_ckpt_parse_spec(const char *spec, bpt_load_kind *kind, char *path, size_t pathlen,
                        char *err, size_t errlen);

/* Save params (and moments if with_optimizer) plus meta and the config YAML text. */
int bpt_ckpt_save(const char *path, const bpt_model *m, const bpt_ckpt_meta *meta,
                  const char *config_yaml, int with_optimizer, char *err, size_t errlen);

/* Load into m. PARAMS and TRAINSTATE_PARAMS read /params only; TRAINSTATE also reads
 * /optimizer and meta. A missing tensor or a shape mismatch is an error naming the
 * file, the tensor and both shapes. meta may be NULL. */
int bpt_ckpt_load(const char *path, bpt_load_kind kind, bpt_model *m, bpt_ckpt_meta *meta,
                  char *err, size_t errlen);

/* bpt ckpt inspect|export|import (src/ckpt_tools.c); argv after "ckpt".
 * Returns the process exit status. Runs on one rank; needs no model. */
int bpt_ckpt_main(int argc, char **argv);

#endif
