#!/usr/bin/env python3
"""PyTorch peers of `npm run bench -- tune|stage1|eval`: the same job as the shipped loop, on the same machine.

  tune    the data owner's adapter tuning on a uniform LayerDrop emulator (blocks dropped, adapters trained
          with AdamW + clipping, micro-batches accumulated token-weighted), one step = one optimizer step
  stage1  one ScaleOT stage-1 step: harmonizer gradients under a mask (LM loss + alignment term, frozen
          model), clipped AdamW on the harmonizers, then the loss of N candidate masks on a held-out batch
  eval    perplexity over non-overlapping blocks of a token stream (forward only), tokens/s

The GPT-2 is gpt2_step.py's plain implementation (HF GPT2LMHeadModel semantics, checked against HF logits
there); LLaMA checkpoints (`model_type: llama`) run as `LlamaBlocks` below (HF LlamaForCausalLM semantics:
RMSNorm, rotate_half RoPE, grouped-query attention, SwiGLU; checked against the families fixture's HF logits
by `peers.py check`). Threads are set before torch starts: --threads (torch intra-op) and OPENBLAS_NUM_THREADS from the
environment. Progress on stderr, one JSON object as the last stdout line.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_step import GPT2, blas_alternative, read_checkpoint  # noqa: E402


def log(message):
    print(f"[peers.py] {message}", file=sys.stderr, flush=True)


class Blocks(GPT2):
    """GPT-2 as embed → blocks → head, so a run can drop or replace blocks."""

    def embed(self, ids):
        seq = ids.shape[1]
        return self.p("wte.weight")[ids] + self.p("wpe.weight")[torch.arange(seq, dtype=torch.long)]

    def block(self, layer, x):
        batch, seq, d = x.shape
        head_dim = d // self.n_head
        pre = f"h.{layer}"
        h = self._ln(x, pre + ".ln_1")
        qkv = torch.addmm(self.p(pre + ".attn.c_attn.bias"), h.reshape(-1, d), self.p(pre + ".attn.c_attn.weight"))
        q, k, v = qkv.view(batch, seq, 3, self.n_head, head_dim).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") else self._attn(q, k, v)
        attn = attn.transpose(1, 2).reshape(-1, d)
        x = x + torch.addmm(self.p(pre + ".attn.c_proj.bias"), attn, self.p(pre + ".attn.c_proj.weight")).view(batch, seq, d)
        h = self._ln(x, pre + ".ln_2").reshape(-1, d)
        h = F.gelu(torch.addmm(self.p(pre + ".mlp.c_fc.bias"), h, self.p(pre + ".mlp.c_fc.weight")), approximate="tanh")
        return x + torch.addmm(self.p(pre + ".mlp.c_proj.bias"), h, self.p(pre + ".mlp.c_proj.weight")).view(batch, seq, d)

    @staticmethod
    def _attn(q, k, v):
        seq = q.shape[-2]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(~causal, torch.finfo(scores.dtype).min), dim=-1) @ v

    def head(self, x):
        return self._ln(x, "ln_f") @ self.p("wte.weight").t()

    def block_params(self, layer):
        prefix = f"h__{layer}__"
        return [p for name, p in self.params.items() if name.startswith(prefix)]


class LlamaBlocks(torch.nn.Module):
    """HF LlamaForCausalLM as embed → blocks → head (nn.Linear weights [out, in]; RoPE without scaling)."""

    def __init__(self, config, tensors):
        super().__init__()
        self.n_head = config["num_attention_heads"]
        self.n_kv = config.get("num_key_value_heads") or self.n_head
        self.head_dim = config.get("head_dim") or config["hidden_size"] // self.n_head
        self.eps = config.get("rms_norm_eps", 1e-6)
        if config.get("rope_scaling"):
            raise SystemExit("peers.py: rope_scaling is not implemented in the PyTorch peer")
        inv_freq = 1.0 / (config.get("rope_theta", 10000.0) ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        angles = torch.outer(torch.arange(config["max_position_embeddings"], dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.cos, self.sin = angles.cos(), angles.sin()
        stripped = {(name[len("model.") :] if name.startswith("model.") else name): value for name, value in tensors.items()}
        if "lm_head.weight" not in stripped:
            stripped["lm_head.weight"] = stripped["embed_tokens.weight"]
        self.params = torch.nn.ParameterDict(
            {key.replace(".", "__"): torch.nn.Parameter(torch.from_numpy(np.array(value, dtype=np.float32)))
             for key, value in stripped.items() if not key.endswith("rotary_emb.inv_freq")}
        )

    def p(self, key):
        return self.params[key.replace(".", "__")]

    def _rms(self, x, key):
        return self.p(key) * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def _rope(self, x):
        seq = x.shape[-2]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos[:seq] + rotated * self.sin[:seq]

    def embed(self, ids):
        return self.p("embed_tokens.weight")[ids]

    def block(self, layer, x):
        batch, seq, d = x.shape
        pre = f"layers.{layer}"
        h = self._rms(x, pre + ".input_layernorm.weight")

        def heads(name, count):
            return F.linear(h, self.p(f"{pre}.self_attn.{name}.weight")).view(batch, seq, count, self.head_dim).transpose(1, 2)

        q, k, v = self._rope(heads("q_proj", self.n_head)), self._rope(heads("k_proj", self.n_kv)), heads("v_proj", self.n_kv)
        repeat = self.n_head // self.n_kv
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") else Blocks._attn(q, k, v)
        x = x + F.linear(attn.transpose(1, 2).reshape(batch, seq, -1), self.p(pre + ".self_attn.o_proj.weight"))
        h = self._rms(x, pre + ".post_attention_layernorm.weight")
        gate = F.silu(F.linear(h, self.p(pre + ".mlp.gate_proj.weight")))
        return x + F.linear(gate * F.linear(h, self.p(pre + ".mlp.up_proj.weight")), self.p(pre + ".mlp.down_proj.weight"))

    def head(self, x):
        return F.linear(self._rms(x, "norm.weight"), self.p("lm_head.weight"))

    def block_params(self, layer):
        prefix = f"layers__{layer}__"
        return [p for name, p in self.params.items() if name.startswith(prefix)]


def normalised(config):
    """The few numbers the jobs need, under one set of names for GPT-2 and LLaMA configs."""
    if config.get("model_type") == "llama":
        return {"n_layer": config["num_hidden_layers"], "n_embd": config["hidden_size"], "n_positions": config["max_position_embeddings"],
                "vocab_size": config["vocab_size"], "layer_norm_epsilon": config.get("rms_norm_eps", 1e-6)}
    return config


def build_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    model_type = config.get("model_type", "gpt2")
    if model_type not in ("gpt2", "llama"):
        raise SystemExit(f"peers.py: model_type {model_type!r} has no PyTorch peer (gpt2, llama)")
    model = (LlamaBlocks if model_type == "llama" else Blocks)(config, read_checkpoint(model_dir))
    return model, normalised(config)


def run_check(args, model, config):
    """The peer against HF transformers' own logits for a fixture (families-reference.json rows without
    padding; the benches never pad): the largest |Δlogit| and |Δnll|, so the peer is the model we bench."""
    with open(args.reference) as handle:
        entry = json.load(handle)["models"][args.reference_key]
    worst_logit = worst_nll = 0.0
    with torch.no_grad():
        for row in entry["rows"]:
            ids = torch.tensor([row["ids"]], dtype=torch.long)
            x = model.embed(ids)
            for layer in range(config["n_layer"]):
                x = model.block(layer, x)
            logits = model.head(x)[0]
            for position, expected in row["logits"].items():
                worst_logit = max(worst_logit, (logits[int(position)] - torch.tensor(expected)).abs().max().item())
            nll = F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
            worst_nll = max(worst_nll, (nll - torch.tensor(row["nll"][: nll.shape[0]])).abs().max().item())
    log(f"check {args.reference_key}: max |logit - HF| {worst_logit:.2e}, max |nll - HF| {worst_nll:.2e} over {len(entry['rows'])} rows")
    return {"step_times_s": [0.0], "max_abs_logit": worst_logit, "max_abs_nll": worst_nll}


def nll_sum(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")


def adamw(params, lr, weight_decay):
    decayed = [p for p in params if p.ndim >= 2]
    plain = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999), eps=1e-8)


def windows(rng, stream_len, count, length):
    starts = rng.integers(0, stream_len - length + 1, size=count)
    return starts


def timed(label, steps, warmup, fn):
    times = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        info = fn(step)
        elapsed = time.perf_counter() - t0
        log(f"{label} step {step + 1}/{warmup + steps} ({'warmup' if step < warmup else 'timed'}): {elapsed:.3f} s {info}")
        if step >= warmup:
            times.append(elapsed)
    return times


def run_tune(args, model, config):
    drop = {int(x) for x in args.drop.split(",") if x}
    adapters = [int(x) for x in args.adapters.split(",") if x]
    kept = [i for i in range(config["n_layer"]) if i not in drop]
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [p for layer in adapters for p in model.block_params(layer)]
    for p in trained:
        p.requires_grad_(True)
    optimizer = adamw(trained, args.lr, 0.01)
    rng = np.random.default_rng(args.seed)
    vocab = config["vocab_size"]

    def step(_):
        ids = torch.from_numpy(rng.integers(0, vocab, size=(args.batch, args.seq + 1))).long()
        tokens = args.batch * args.seq
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, args.batch, args.micro):
            part = ids[start : start + args.micro]
            x = model.embed(part[:, :-1])
            for layer in kept:
                x = model.block(layer, x)
            loss = nll_sum(model.head(x), part[:, 1:]) / tokens
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        return f"loss {total:.4f}"

    return {"step_times_s": timed("tune", args.steps, args.warmup, step), "trained_params": sum(p.numel() for p in trained)}


class Harmonizer(torch.nn.Module):
    def __init__(self, d, rank, eps):
        super().__init__()
        self.ln = torch.nn.LayerNorm(d, eps=eps)
        self.down = torch.nn.Parameter(torch.randn(d, rank) * 0.02)
        self.down_bias = torch.nn.Parameter(torch.zeros(rank))
        self.up = torch.nn.Parameter(torch.zeros(rank, d))
        self.up_bias = torch.nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return x + F.gelu(self.ln(x) @ self.down + self.down_bias, approximate="tanh") @ self.up + self.up_bias


def run_stage1(args, model, config):
    n_layer = config["n_layer"]
    d = config["n_embd"]
    bottom = args.adapter_blocks // 2
    top = args.adapter_blocks - bottom
    middle = list(range(bottom, n_layer - top))
    for p in model.parameters():
        p.requires_grad_(False)
    rank = args.rank or d // 2
    harmonizers = {i: Harmonizer(d, rank, config.get("layer_norm_epsilon", 1e-5)) for i in middle}
    params = [p for h in harmonizers.values() for p in h.parameters()]
    optimizer = adamw(params, 1e-3, 0.0)
    rng = np.random.default_rng(args.seed)
    vocab = config["vocab_size"]
    groups = [middle[i : i + 4] for i in range(0, len(middle), 4)]

    def sample_mask():
        mask = [1] * n_layer
        for g in groups:
            for i in rng.choice(g, size=len(g) - max(1, round(len(g) * 0.5)), replace=False):
                mask[int(i)] = 0
        return mask

    def forward(ids, mask, with_align):
        x = model.embed(ids[:, :-1])
        terms = []
        for layer in range(n_layer):
            if mask[layer] == 1:
                x = model.block(layer, x)
                continue
            h = harmonizers[layer]
            if with_align:
                inp = x.detach()
                with torch.no_grad():
                    target = model.block(layer, inp)
                    denom = ((target - inp) ** 2).sum() + 1e-12
                terms.append(((h(inp) - target) ** 2).sum() / denom)
            x = h(x)
        nll = nll_sum(model.head(x), ids[:, 1:])
        align = torch.stack(terms).mean() if terms else None
        return nll, align

    def step(_):
        mask = sample_mask()
        ids = torch.from_numpy(rng.integers(0, vocab, size=(args.batch, args.seq + 1))).long()
        tokens = args.batch * args.seq
        optimizer.zero_grad(set_to_none=True)
        for start in range(0, args.batch, args.micro):
            part = ids[start : start + args.micro]
            nll, align = forward(part, mask, True)
            loss = nll / tokens
            if align is not None:
                loss = loss + align * part.shape[0] / args.batch
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        val = torch.from_numpy(rng.integers(0, vocab, size=(args.rl_batch, args.seq + 1))).long()
        losses = []
        with torch.no_grad():
            for _ in range(args.candidates):
                candidate = sample_mask()
                total = 0.0
                for start in range(0, args.rl_batch, args.micro):
                    total += forward(val[start : start + args.micro], candidate, False)[0].item()
                losses.append(total / (args.rl_batch * args.seq))
        return f"rollout losses {[round(v, 3) for v in losses]}"

    return {"step_times_s": timed("stage1", args.steps, args.warmup, step), "harmonizer_params": sum(p.numel() for p in params)}


def run_eval(args, model, config):
    """--tokens holds the evaluation blocks ([count, n_positions + 1] int32, as the protocol cuts them)."""
    block = config["n_positions"] + 1
    flat = np.fromfile(args.tokens, dtype="<i4")
    blocks = torch.from_numpy(flat.reshape(-1, block).astype(np.int64))
    count = blocks.shape[0]
    times = []
    total = 0.0
    with torch.no_grad():
        for n, start in enumerate(range(0, count, args.batch)):
            t0 = time.perf_counter()
            part = blocks[start : start + args.batch]
            x = model.embed(part[:, :-1])
            for layer in range(config["n_layer"]):
                x = model.block(layer, x)
            total += nll_sum(model.head(x), part[:, 1:]).item()
            elapsed = time.perf_counter() - t0
            if n >= args.warmup and part.shape[0] == args.batch:
                times.append(elapsed)
    tokens = count * (block - 1)
    nll = total / tokens
    log(f"eval: {count} blocks, median batch {statistics.median(times):.3f} s, perplexity {math.exp(nll):.4f}")
    return {"step_times_s": times, "tokens": tokens, "blocks": count, "nll": nll, "perplexity": math.exp(nll), "tokens_per_s": args.batch * (block - 1) / statistics.median(times)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["tune", "stage1", "eval", "check"])
    parser.add_argument("--model", required=True, help="HF GPT-2 or LLaMA directory")
    parser.add_argument("--batch", type=int, default=16, help="rows per step (eval: blocks per forward)")
    parser.add_argument("--micro", type=int, default=4, help="rows per forward/backward")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--drop", default="3,5,7,9", help="tune: dropped blocks")
    parser.add_argument("--adapters", default="0,1,10,11", help="tune: trained blocks")
    parser.add_argument("--adapter-blocks", type=int, default=4, help="stage1: N_a")
    parser.add_argument("--rank", type=int, default=0, help="stage1: harmonizer rank (default d/2)")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--rl-batch", type=int, default=8)
    parser.add_argument("--tokens", help="eval: int32 token stream file")
    parser.add_argument("--max-blocks", type=int)
    parser.add_argument("--reference", help="check: families-reference.json")
    parser.add_argument("--reference-key", default="sotu_llama_24l", help="check: the model's key in it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, config = build_model(args.model)
    result = {"job": args.job, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "blas": blas_alternative()}
    result.update({"tune": run_tune, "stage1": run_stage1, "eval": run_eval, "check": run_check}[args.job](args, model, config))
    result["median_step_s"] = statistics.median(result["step_times_s"])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
