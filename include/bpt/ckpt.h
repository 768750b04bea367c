/* ckpt.h — checkpoints as HDF5 files (format: docs/checkpoint-format.md).
 *
 *   /                       attributes: format "bpt-checkpoint", format_version 1,
 *                           step (optimizer updates applied), tokens_consumed,
 *                           config (resolved YAML), bpt_version, created (ISO time),
 *                           mesh ("dp,fsdp,tp" it was saved on), float_dtype
 *   /params/<HF name>       fp32 (or bf16 bit patterns in uint16), Hugging Face shape
 *   /optimizer/m/<HF name>  (only with checkpointer.save_optimizer_state)
 *   /optimizer/v/<HF name>
 *   /optimizer/step         scalar int64
 *   /data/tokens_consumed   scalar uint64: the loader state, mesh-independent
 *   /rng/seed               scalar int64: weights and data order derive from it
 * Save and load are collective over MPI_COMM_WORLD: every rank writes and reads its
 * own hyperslab of each logical tensor through MPI-IO, so any mesh loads any file.
 * Files are written to NAME.tmp, closed by all ranks, fsynced and renamed by rank 0,
 * so a crash never leaves a half file under NAME.
 */
#ifndef BPT_CKPT_H
#define BPT_CKPT_H

#include <stdint.h>
#include <stddef.h>
#include "model.h"

/* The root attributes format and format_version of every checkpoint bpt writes; a
 * reader refuses another format and a newer version. */
#define BPT_CKPT_FORMAT "bpt-checkpoint"
#define BPT_CKPT_FORMAT_VERSION 1

typedef enum { BPT_LOAD_PARAMS = 0, BPT_LOAD_TRAINSTATE, BPT_LOAD_TRAINSTATE_PARAMS } bpt_load_kind;

typedef struct bpt_ckpt_meta {
    int64_t step;               /* optimizer updates applied */
    uint64_t tokens_consumed;   /* the loader state (global, mesh-independent) */
    int64_t seed;               /* saved as /rng/seed */
    int bf16;                   /* save: store tensors as bfloat16 */
    int want_data;              /* load: fill step and tokens_consumed for any kind */
} bpt_ckpt_meta;

/* Parse load_checkpoint "params::F", "trainstate::F", "trainstate_params::F".
 * path receives F; when F is a directory (e.g. run/ckpt), the checkpoint its
 * `latest` names. 0 or -1 with message naming load_checkpoint. */
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

/* Read only the root attributes step and tokens_consumed (any rank, no collective). */
int bpt_ckpt_read_meta(const char *path, bpt_ckpt_meta *meta, char *err, size_t errlen);

/* <dir>/latest names the newest complete checkpoint of dir (one line, a file name).
 * Written atomically (temporary file, fsync, rename) after the checkpoint itself. */
int bpt_ckpt_set_latest(const char *dir, const char *name, char *err, size_t errlen);
/* The path of the checkpoint <dir>/latest names: 1 (found), 0 (dir has no latest: no
 * checkpoint yet), or -1 with err naming the problem (latest unreadable or empty, or
 * naming a checkpoint that does not exist: a run must not start afresh over it). */
int bpt_ckpt_latest(const char *dir, char *path, size_t len, char *err, size_t errlen);
/* Delete the regular checkpoints step_N.h5 of dir beyond the newest keep (0: keep
 * all), never protect. Milestones (milestone_N.h5) are never touched. */
void bpt_ckpt_prune(const char *dir, int keep, const char *protect);

/* bpt ckpt inspect|export|import (src/ckpt_tools.c and the files it names); argv after "ckpt".
 * Returns the process exit status. Runs on one rank; needs no model. */
int bpt_ckpt_main(int argc, char **argv);

#endif
