/* optim.h — learning-rate schedule and AdamW over the model's flat buffers.
 *
 * Schedule (reference): linear warmup from init_lr to lr over lr_warmup_steps, then
 * cosine decay to end_lr at lr_decay_steps (which includes the warmup), end_lr after.
 * Update: global gradient norm (before clipping) -> scale min(1, clip/norm) ->
 * AdamW with decoupled weight decay on tensors whose `decay` flag is set (matrices
 * and embeddings; not the RMSNorm weights), bias-corrected moments, eps 1e-8.
 */
#ifndef BPT_OPTIM_H
#define BPT_OPTIM_H

#include <stdint.h>
#include "config.h"
#include "model.h"

/* Learning rate for update number t (0-based). */
double bpt_lr_schedule(const bpt_adamw_config *o, int64_t t);

typedef struct bpt_optim_stats {
    double lr;             /* learning rate used */
    double grad_norm;      /* global L2 norm of the raw gradients */
    double param_norm;     /* global L2 norm of the parameters after the update */
} bpt_optim_stats;

/* Apply update number t (0-based) with the grads in m's grad buffer. */
void bpt_optim_step(bpt_model *m, const bpt_adamw_config *o, int64_t t, bpt_optim_stats *st);

#endif
