"""llama_ref.py — a small pure-PyTorch LLaMA, the oracle for bpt's model tests.

The math is Hugging Face LlamaForCausalLM's, written out plainly and computed in
float64 (no transformers dependency):

    x = embed_tokens[input_tokens]                                  (B,T,D)
    per layer:
        x = x + o_proj(attn(input_layernorm(x)))
        h = post_attention_layernorm(x)
        x = x + down_proj(silu(gate_proj(h)) * up_proj(h))
    logits = lm_head(norm(x))            lm_head = embed_tokens when tied
    loss   = sum(mask * nll) / sum(mask)  (token-weighted masked mean)

RMSNorm: y = w * x / sqrt(mean(x^2) + eps). RoPE: HF rotate_half on (x[:Dh/2], x[Dh/2:]),
inv_freq = 1 / theta^(arange(0, Dh, 2) / Dh), positions 0..T-1. Attention: causal softmax
with scale 1/sqrt(Dh); grouped-query attention repeats kv heads, so query head h reads kv
head h // (H / KVH). Parameters are a dict keyed by the Hugging Face names, in HF shapes
(linear weights are [out, in]).

`python3 llama_ref.py` runs a self-test: autograd gradcheck on a tiny config, and the
tensorised forward against an independent loop-based numpy implementation (RoPE as a
complex rotation, attention one query at a time).
"""

import math
from collections import OrderedDict

import numpy as np
import torch

DTYPE = torch.float64


class Config:
    """Model dimensions, named as in bpt (V, D, H, KVH, F, L) plus the few scalars that matter."""

    def __init__(self, V, D, H, F, L, KVH=0, eps=1e-6, theta=10000.0, tie=False):
        self.V, self.D, self.H, self.F, self.L = V, D, H, F, L
        self.KVH = KVH if KVH > 0 else H
        self.eps, self.theta, self.tie = float(eps), float(theta), bool(tie)
        assert D % H == 0 and H % self.KVH == 0
        self.Dh = D // H
        assert self.Dh % 2 == 0

    def __repr__(self):
        return ("Config(V=%d, D=%d, H=%d, KVH=%d, F=%d, L=%d, eps=%g, theta=%g, tie=%s)"
                % (self.V, self.D, self.H, self.KVH, self.F, self.L, self.eps, self.theta, self.tie))


def param_shapes(cfg):
    """Ordered {HF name: shape}, the order of include/bpt/model.h."""
    V, D, H, KVH, Dh, F = cfg.V, cfg.D, cfg.H, cfg.KVH, cfg.Dh, cfg.F
    s = OrderedDict()
    s["model.embed_tokens.weight"] = (V, D)
    for l in range(cfg.L):
        p = "model.layers.%d." % l
        s[p + "input_layernorm.weight"] = (D,)
        s[p + "self_attn.q_proj.weight"] = (H * Dh, D)
        s[p + "self_attn.k_proj.weight"] = (KVH * Dh, D)
        s[p + "self_attn.v_proj.weight"] = (KVH * Dh, D)
        s[p + "self_attn.o_proj.weight"] = (D, H * Dh)
        s[p + "post_attention_layernorm.weight"] = (D,)
        s[p + "mlp.gate_proj.weight"] = (F, D)
        s[p + "mlp.up_proj.weight"] = (F, D)
        s[p + "mlp.down_proj.weight"] = (D, F)
    s["model.norm.weight"] = (D,)
    if not cfg.tie:
        s["lm_head.weight"] = (V, D)
    return s


def random_params(cfg, rng, std=0.02, norm_std=0.1):
    """float32-representable random weights (numpy rng): matrices ~ N(0, std),
    norm weights 1 + N(0, norm_std) so their gradients are not trivially symmetric."""
    out = OrderedDict()
    for name, shape in param_shapes(cfg).items():
        if len(shape) == 1:
            a = 1.0 + norm_std * rng.standard_normal(shape)
        else:
            a = std * rng.standard_normal(shape)
        out[name] = a.astype(np.float32)
    return out


# --- the layers ----------------------------------------------------------------------

def rms_norm(x, w, eps):
    # x (..., D), w (D) -> (..., D)
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_cos_sin(T, Dh, theta):
    # -> cos, sin (T, Dh): HF layout, the Dh/2 frequencies repeated twice
    inv_freq = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=DTYPE) / Dh))
    freqs = torch.outer(torch.arange(T, dtype=DTYPE), inv_freq)        # (T, Dh/2)
    emb = torch.cat([freqs, freqs], dim=-1)                             # (T, Dh)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, cos, sin):
    # x (B, heads, T, Dh)
    return x * cos + rotate_half(x) * sin


def attention(x, p, prefix, cfg, cos, sin):
    # x (B,T,D) -> (B,T,D)
    B, T, _ = x.shape
    H, KVH, Dh = cfg.H, cfg.KVH, cfg.Dh
    q = (x @ p[prefix + "q_proj.weight"].T).view(B, T, H, Dh).transpose(1, 2)    # (B,H,T,Dh)
    k = (x @ p[prefix + "k_proj.weight"].T).view(B, T, KVH, Dh).transpose(1, 2)  # (B,KVH,T,Dh)
    v = (x @ p[prefix + "v_proj.weight"].T).view(B, T, KVH, Dh).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    rep = H // KVH                                   # query head h reads kv head h // rep
    k = k.repeat_interleave(rep, dim=1)              # (B,H,T,Dh)
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)    # (B,H,T,T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~causal, float("-inf"))
    a = torch.softmax(s, dim=-1) @ v                 # (B,H,T,Dh)
    a = a.transpose(1, 2).reshape(B, T, H * Dh)
    return a @ p[prefix + "o_proj.weight"].T


def mlp(h, p, prefix):
    # h (B,T,D) -> (B,T,D)
    g = h @ p[prefix + "gate_proj.weight"].T
    u = h @ p[prefix + "up_proj.weight"].T
    return (torch.nn.functional.silu(g) * u) @ p[prefix + "down_proj.weight"].T


def logits_fn(p, cfg, input_tokens):
    # input_tokens (B,T) int64 -> logits (B,T,V)
    B, T = input_tokens.shape
    cos, sin = rope_cos_sin(T, cfg.Dh, cfg.theta)
    x = p["model.embed_tokens.weight"][input_tokens]
    for l in range(cfg.L):
        pre = "model.layers.%d." % l
        x = x + attention(rms_norm(x, p[pre + "input_layernorm.weight"], cfg.eps),
                          p, pre + "self_attn.", cfg, cos, sin)
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], cfg.eps)
        x = x + mlp(h, p, pre + "mlp.")
    x = rms_norm(x, p["model.norm.weight"], cfg.eps)
    w_out = p["model.embed_tokens.weight"] if cfg.tie else p["lm_head.weight"]
    return x @ w_out.T


def predict(logits, rtol=1e-12):
    """argmax over the vocab, ties to the lowest id. Logits within rtol of the maximum
    count as tied, so two identical lm_head rows tie although float64 BLAS may round
    their dot products differently in the last bit."""
    m = logits.max(-1, keepdim=True).values
    tied = logits >= m - rtol * m.abs().clamp(min=1.0)
    return tied.to(torch.int64).argmax(-1)     # first True = lowest id


def loss_fn(p, cfg, input_tokens, target_tokens, loss_masks):
    """-> (loss tensor, accuracy float, logits). loss = sum(mask*nll)/sum(mask);
    accuracy = sum(mask*[predict(logits) == target])/sum(mask) (argmax, ties to the lowest id)."""
    logits = logits_fn(p, cfg, input_tokens)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target_tokens.unsqueeze(-1)).squeeze(-1)   # (B,T)
    msum = loss_masks.sum()
    loss = (loss_masks * nll).sum() / msum
    correct = (predict(logits) == target_tokens).to(DTYPE)
    acc = float((loss_masks * correct).sum() / msum)
    return loss, acc, logits


def to_torch(params_np, requires_grad=True):
    return OrderedDict((k, torch.tensor(np.asarray(v), dtype=DTYPE, requires_grad=requires_grad))
                       for k, v in params_np.items())


def reference(cfg, params_np, input_tokens, target_tokens, loss_masks, grads=True):
    """numpy in, numpy out: {'loss': float, 'accuracy': float, 'grads': {name: float64 array},
    'logits': (B,T,V) float64}."""
    p = to_torch(params_np, requires_grad=grads)
    inp = torch.as_tensor(np.asarray(input_tokens), dtype=torch.int64)
    tgt = torch.as_tensor(np.asarray(target_tokens), dtype=torch.int64)
    msk = torch.as_tensor(np.asarray(loss_masks), dtype=DTYPE)
    loss, acc, logits = loss_fn(p, cfg, inp, tgt, msk)
    out = {"loss": float(loss.detach()), "accuracy": acc, "logits": logits.detach().numpy()}
    if grads:
        names = list(p.keys())
        g = torch.autograd.grad(loss, [p[n] for n in names])
        out["grads"] = OrderedDict((n, gi.numpy()) for n, gi in zip(names, g))
    return out


# --- self-test ----------------------------------------------------------------------

def _naive_numpy_loss(cfg, P, inp, tgt, msk):
    """An independent float64 implementation with loops: RoPE as complex rotation of
    pairs (x[i], x[i+Dh/2]), attention one (batch, head, query) at a time."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in P.items()}
    B, T = inp.shape
    H, KVH, Dh, D = cfg.H, cfg.KVH, cfg.Dh, cfg.D
    half = Dh // 2

    def norm(x, w):
        return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + cfg.eps)

    def rope(vec, t):  # vec (Dh)
        z = vec[:half] + 1j * vec[half:]
        ang = np.array([t / cfg.theta ** (2.0 * i / Dh) for i in range(half)])
        z = z * np.exp(1j * ang)
        return np.concatenate([z.real, z.imag])

    x = P["model.embed_tokens.weight"][inp]                   # (B,T,D)
    for l in range(cfg.L):
        pre = "model.layers.%d." % l
        hn = norm(x, P[pre + "input_layernorm.weight"])
        q = hn @ P[pre + "self_attn.q_proj.weight"].T
        k = hn @ P[pre + "self_attn.k_proj.weight"].T
        v = hn @ P[pre + "self_attn.v_proj.weight"].T
        att = np.zeros((B, T, H * Dh))
        for b in range(B):
            for h in range(H):
                kh = h // (H // KVH)
                ks = [rope(k[b, j, kh * Dh:(kh + 1) * Dh], j) for j in range(T)]
                for i in range(T):
                    qi = rope(q[b, i, h * Dh:(h + 1) * Dh], i)
                    sc = np.array([qi @ ks[j] for j in range(i + 1)]) / math.sqrt(Dh)
                    w = np.exp(sc - sc.max())
                    w /= w.sum()
                    att[b, i, h * Dh:(h + 1) * Dh] = sum(
                        w[j] * v[b, j, kh * Dh:(kh + 1) * Dh] for j in range(i + 1))
        x = x + att @ P[pre + "self_attn.o_proj.weight"].T
        hn = norm(x, P[pre + "post_attention_layernorm.weight"])
        g = hn @ P[pre + "mlp.gate_proj.weight"].T
        u = hn @ P[pre + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ P[pre + "mlp.down_proj.weight"].T
    x = norm(x, P["model.norm.weight"])
    W = P["model.embed_tokens.weight"] if cfg.tie else P["lm_head.weight"]
    logits = x @ W.T
    tot, cnt = 0.0, 0.0
    for b in range(B):
        for t in range(T):
            z = logits[b, t]
            m = z.max()
            lse = m + math.log(np.exp(z - m).sum())
            tot += msk[b, t] * (lse - z[tgt[b, t]])
            cnt += msk[b, t]
    return tot / cnt, logits


def self_test():
    ok = True
    rng = np.random.default_rng(1)
    # 1. forward against the naive implementation, several shapes
    for cfg in [Config(V=13, D=16, H=4, F=24, L=2, KVH=2, theta=10000.0),
                Config(V=11, D=12, H=3, F=20, L=1, KVH=1, theta=500000.0, tie=True),
                Config(V=17, D=16, H=2, F=8, L=2, KVH=0, eps=1e-5)]:
        B, T = 2, 7
        P = random_params(cfg, rng, std=0.3)
        inp = rng.integers(0, cfg.V, (B, T))
        tgt = rng.integers(0, cfg.V, (B, T))
        msk = (rng.random((B, T)) < 0.7).astype(np.float64)
        msk[:, 0] = 1
        ref = reference(cfg, P, inp, tgt, msk, grads=False)
        nl, nlogits = _naive_numpy_loss(cfg, P, inp, tgt, msk)
        el = abs(ref["loss"] - nl) / abs(nl)
        eg = np.abs(ref["logits"] - nlogits).max()
        good = el < 1e-12 and eg < 1e-12
        ok &= good
        print("forward vs naive %-70s loss rel %.2e logits abs %.2e %s"
              % (cfg, el, eg, "ok" if good else "FAIL"))
    # 2. autograd gradcheck of the whole loss w.r.t. every parameter
    for cfg in [Config(V=9, D=8, H=2, F=12, L=2, KVH=1),
                Config(V=9, D=8, H=2, F=12, L=1, KVH=2, tie=True, theta=500000.0)]:
        B, T = 2, 5
        P = to_torch(random_params(cfg, rng, std=0.3))
        inp = torch.as_tensor(rng.integers(0, cfg.V, (B, T)))
        tgt = torch.as_tensor(rng.integers(0, cfg.V, (B, T)))
        msk = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=DTYPE)
        names = list(P.keys())

        def f(*ts):
            return loss_fn(dict(zip(names, ts)), cfg, inp, tgt, msk)[0]
        good = torch.autograd.gradcheck(f, tuple(P[n] for n in names), eps=1e-6, atol=1e-8,
                                        rtol=1e-6, raise_exception=False)
        ok &= bool(good)
        print("gradcheck %-70s %s" % (cfg, "ok" if good else "FAIL"))
    # 3. Hugging Face, when installed (never installed for this)
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("transformers not installed: Hugging Face comparison skipped")
    else:
        ok &= _hf_check(rng)
    print("self-test:", "PASS" if ok else "FAIL")
    return ok


def _hf_check(rng):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = Config(V=19, D=16, H=4, F=24, L=2, KVH=2, theta=500000.0)
    hc = LlamaConfig(vocab_size=cfg.V, hidden_size=cfg.D, intermediate_size=cfg.F,
                     num_hidden_layers=cfg.L, num_attention_heads=cfg.H,
                     num_key_value_heads=cfg.KVH, rms_norm_eps=cfg.eps, rope_theta=cfg.theta,
                     max_position_embeddings=64, tie_word_embeddings=cfg.tie)
    model = LlamaForCausalLM(hc).to(DTYPE)
    P = random_params(cfg, rng, std=0.3)
    sd = {k: torch.tensor(v, dtype=DTYPE) for k, v in P.items()}
    model.load_state_dict(sd, strict=False)
    inp = rng.integers(0, cfg.V, (2, 9))
    with torch.no_grad():
        hl = model(torch.as_tensor(inp)).logits.numpy()
    ours = reference(cfg, P, inp, inp, np.ones(inp.shape), grads=False)["logits"]
    e = np.abs(hl - ours).max()
    print("vs transformers LlamaForCausalLM: logits abs %.2e %s" % (e, "ok" if e < 1e-10 else "FAIL"))
    return e < 1e-10


if __name__ == "__main__":
    import sys
    sys.exit(0 if self_test() else 1)
