"""torch_peer.py — bpt's benchmark model in PyTorch: the peer bench/compare_torch.sh runs
side by side with bpt.

The model is bench_throughput's: LLaMA bench512 (V=32000, D=512, L=8, H=8, F=1408,
untied), batch 1, fp32, trained with AdamW (fused where this PyTorch has it). One
process times one variant at one T and prints one JSON line:

    {"variant": ..., "T": ..., "tokens_per_s": ..., "step_s": ..., "cpu_s_per_step": ...,
     "peak_rss_bytes": ..., "loss": ..., "torch": ..., "threads": ...}

Variants (what a user would pick instead of bpt):
    eager         the plain model: F.scaled_dot_product_attention(is_causal=True) (the
                  CPU flash kernel), full logits and F.cross_entropy
    ckpt          the same with torch.utils.checkpoint around every layer
    ckpt_chunked  checkpointing, and the loss in chunks of --loss_chunk tokens, each
                  checkpointed, so the (T, V) logits never exist at once: bpt's memory peer
    compile       torch.compile of the eager model (inductor), compiled in the warm-up

step_s is the best of --steps timed steps (after --warmup untimed ones); cpu_s_per_step
the user + system CPU seconds of the timed steps per step (getrusage); peak_rss_bytes
the process's peak resident set (ru_maxrss), which includes PyTorch itself.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(x, cos, sin):
    """Hugging Face rotate_half on (B, H, T, Dh)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Layer(nn.Module):
    def __init__(self, D, H, KVH, Fd, eps):
        super().__init__()
        self.H, self.KVH, self.Dh = H, KVH, D // H
        self.input_layernorm = RMSNorm(D, eps)
        self.q_proj = nn.Linear(D, H * self.Dh, bias=False)
        self.k_proj = nn.Linear(D, KVH * self.Dh, bias=False)
        self.v_proj = nn.Linear(D, KVH * self.Dh, bias=False)
        self.o_proj = nn.Linear(H * self.Dh, D, bias=False)
        self.post_attention_layernorm = RMSNorm(D, eps)
        self.gate_proj = nn.Linear(D, Fd, bias=False)
        self.up_proj = nn.Linear(D, Fd, bias=False)
        self.down_proj = nn.Linear(Fd, D, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.H, self.Dh).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.KVH, self.Dh).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.KVH, self.Dh).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.KVH != self.H:
            k = k.repeat_interleave(self.H // self.KVH, dim=1)
            v = v.repeat_interleave(self.H // self.KVH, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(B, T, D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, V, D, L, H, KVH, Fd, eps=1e-6, theta=10000.0, ckpt=False, loss_chunk=0):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, D)
        self.layers = nn.ModuleList(Layer(D, H, KVH, Fd, eps) for _ in range(L))
        self.norm = RMSNorm(D, eps)
        self.lm_head = nn.Linear(D, V, bias=False)
        self.Dh, self.theta, self.ckpt, self.loss_chunk = D // H, theta, ckpt, loss_chunk
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def rope_tables(self, T):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.Dh, 2, dtype=torch.float64) / self.Dh))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        return ang.cos().float(), ang.sin().float()

    def chunk_loss(self, xc, tc):
        return F.cross_entropy(self.lm_head(xc), tc, reduction="sum")

    def forward(self, tokens, targets, cos, sin):
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = checkpoint(layer, x, cos, sin, use_reentrant=False) if self.ckpt else layer(x, cos, sin)
        x = self.norm(x)
        B, T, D = x.shape
        x, t = x.reshape(B * T, D), targets.reshape(B * T)
        if not self.loss_chunk:
            return F.cross_entropy(self.lm_head(x), t)
        total = x.new_zeros(())
        for c0 in range(0, B * T, self.loss_chunk):
            xc, tc = x[c0:c0 + self.loss_chunk], t[c0:c0 + self.loss_chunk]
            total = total + checkpoint(self.chunk_loss, xc, tc, use_reentrant=False)
        return total / (B * T)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", required=True, choices=["eager", "ckpt", "ckpt_chunked", "compile"])
    ap.add_argument("--t", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loss_chunk", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv_heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=1408)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    v = a.variant
    model = Llama(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, ckpt=v.startswith("ckpt"),
                  loss_chunk=a.loss_chunk if v == "ckpt_chunked" else 0)
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4,
                                fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4)
    fwd = torch.compile(model) if v == "compile" else model
    T = a.t
    tokens = (torch.arange(T, dtype=torch.long) * 7 % a.vocab)[None, :]
    targets = (torch.arange(T, dtype=torch.long) * 11 % a.vocab)[None, :]
    cos, sin = model.rope_tables(T)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = fwd(tokens, targets, cos, sin)
        loss.backward()
        opt.step()
        return float(loss.detach())

    for _ in range(a.warmup):
        step()
    best, loss, c0 = math.inf, 0.0, cpu_seconds()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        best = min(best, time.perf_counter() - t0)
    cpu = (cpu_seconds() - c0) / a.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": v, "T": T, "tokens_per_s": T / best, "step_s": best, "cpu_s_per_step": cpu,
                      "peak_rss_bytes": rss, "loss": loss, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
