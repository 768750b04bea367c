/* train.h — the training loop and evaluation (the `bpt train` and `bpt eval` commands).
 *
 * Training: for step in [start_step, total_steps): accumulate_gradient_steps micro
 * batches -> optimizer update -> every log_freq steps a progress line on rank 0 and
 * one JSON object appended to <logger.output_dir>/metrics.jsonl:
 *   step, loss, accuracy, learning_rate, gradient_norm, param_norm,
 *   tokens_per_second, mfu, peak_memory_bytes (+ eval_loss, eval_accuracy).
 * Checkpoints (ckpt.h) under <logger.output_dir>/ckpt/: latest.h5 every
 * save_model_freq steps (and at start and end), milestone_<step>.h5 when
 * (step+1) % save_milestone_freq == 0.
 */
#ifndef BPT_TRAIN_H
#define BPT_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "comm.h"
#include "config.h"

/* Return the process exit status. */
int bpt_train_main(bpt_config *c);
int bpt_eval_main(bpt_config *c);

/* The plan of one training step on one rank of a mesh, computed without running the
 * model: the step runs on the null backend (every arena allocation, no math) with a
 * dry communicator (every collective counted, none called). */
#define BPT_PLAN_TOP 24

typedef struct bpt_plan {
    int dp, fsdp, tp, sp;             /* the mesh */
    int B, T;                         /* rows per rank per micro-batch, sequence length */
    size_t param_bytes;               /* this rank's parameter shards (= grads, = each moment) */
    size_t kept_bytes;                /* activations kept from the forward for the backward */
    size_t peak_bytes;                /* the arena's peak: everything at once */
    uint64_t comm_bytes[BPT_NAXES];   /* bytes this rank sends per step, by bpt_axis */
    /* what the arena holds at its peak, by allocation name, largest first */
    struct { const char *what; int count; size_t bytes; } at_peak[BPT_PLAN_TOP];
    int nat_peak;
} bpt_plan;

/* Check the mesh dims (dp, fsdp, tp) against the model and the batch: tp must divide
 * heads, kv heads, F and the vocabulary; dp*fsdp the batch. 0 or -1 with a message. */
int bpt_plan_check_mesh(const bpt_config *c, const int dims[4], char *err, size_t errlen);

/* Plan a training step of c on world_size ranks (mesh_dim resolved for that size). */
int bpt_plan_step(const bpt_config *c, int world_size, bpt_plan *p, char *err, size_t errlen);

/* Exact arena bytes of one training step on one rank with B rows of T tokens. */
size_t bpt_plan_peak_bytes(const bpt_config *c, int B, int T);

#endif
