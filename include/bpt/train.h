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

#include "config.h"

/* Return the process exit status. */
int bpt_train_main(bpt_config *c);
int bpt_eval_main(bpt_config *c);

/* Exact arena bytes one training step needs (run on the null backend). */
size_t bpt_plan_peak_bytes(const bpt_config *c, int B, int T);

#endif
