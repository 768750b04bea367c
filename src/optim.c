/* optim.c — learning-rate schedule, global-norm clipping and AdamW. */
#include "bpt/optim.h"
#include "kernels/kernels.h"

#include <math.h>

double bpt_lr_schedule(const bpt_adamw_config *o, int64_t t) {
    double W = o->lr_warmup_steps, Dc = o->lr_decay_steps;
    if (t < W) return o->init_lr + (o->lr - o->init_lr) * (double)t / W;
    if (t > Dc || Dc <= W) return o->end_lr;
    double cosv = 0.5 * (1.0 + cos(M_PI * ((double)t - W) / (Dc - W)));
    return o->end_lr + (o->lr - o->end_lr) * cosv;
}

void bpt_optim_step(bpt_model *m, const bpt_adamw_config *o, int64_t t, bpt_optim_stats *st) {
    const bpt_kernels *k = m->k;
    double norm = sqrt(bpt_model_sumsq(m, BPT_BUF_GRAD));
    /* clip to global norm (optax clip_by_global_norm): scale only when above */
    double gscale = (o->clip_gradient > 0 && norm > o->clip_gradient) ? o->clip_gradient / norm : 1.0;
    double lr = bpt_lr_schedule(o, t);
    float bc1 = (float)(1.0 - pow(o->b1, (double)(t + 1)));
    float bc2 = (float)(1.0 - pow(o->b2, (double)(t + 1)));
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *tn = &m->tensors[i];
        size_t off = tn->offset;
        k->adamw(m->buf[BPT_BUF_PARAM] + off, m->buf[BPT_BUF_GRAD] + off, m->buf[BPT_BUF_M] + off,
                 m->buf[BPT_BUF_V] + off, tn->numel, (float)lr, (float)o->b1, (float)o->b2,
                 (float)o->eps, tn->decay ? (float)o->weight_decay : 0.0f, bc1, bc2, (float)gscale);
    }
    st->lr = lr;
    st->grad_norm = norm;
    st->param_norm = sqrt(bpt_model_sumsq(m, BPT_BUF_PARAM));
}
