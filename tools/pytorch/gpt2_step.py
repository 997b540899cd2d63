#!/usr/bin/env python3
"""PyTorch peer for `npm run bench -- train-step`.

A plain GPT-2 (no `transformers`): reads config.json and the safetensors files directly, runs one
training step (forward + backward + AdamW) on a seeded random token batch and reports the step time
and the first-step loss. The token batch comes from the same mulberry32 generator as
bench/lib/common.mjs so both sides train on identical ids without passing files around.

Threads are fixed before torch is imported: OpenBLAS threads from OPENBLAS_NUM_THREADS (default 2),
torch intra-op threads from --threads (default 1). That is the fastest configuration measured on the
project machines (../shared/docs/backend-notes.md), so the comparison is against PyTorch at its best.

Prints progress to stderr and one JSON object as the last stdout line.
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MASK32 = 0xFFFFFFFF


def log(message):
    print(f"[gpt2_step.py] {message}", file=sys.stderr, flush=True)


def mulberry32(seed):
    """Same sequence as mulberry32() in bench/lib/common.mjs (uint32 outputs)."""
    state = seed & MASK32

    def next_u32():
        nonlocal state
        state = (state + 0x6D2B79F5) & MASK32
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & MASK32
        t = ((t + (((t ^ (t >> 7)) * (t | 61)) & MASK32)) & MASK32) ^ t
        return (t ^ (t >> 14)) & MASK32

    return next_u32


def random_token_batch(seed, batch, seq, vocab):
    next_u32 = mulberry32(seed)
    flat = [(next_u32() * vocab) >> 32 for _ in range(batch * seq)]
    return np.asarray(flat, dtype=np.int64).reshape(batch, seq)


# ---------------------------------------------------------------------------------------------
# safetensors, read by hand: u64 little-endian header length, JSON header, raw little-endian data.

def _decode(raw, dtype, shape):
    if dtype == "F32":
        array = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        array = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "I64":
        array = np.frombuffer(raw, dtype="<i8")
    else:
        raise ValueError(f"unsupported safetensors dtype {dtype}")
    return array.reshape(shape)


def read_safetensors_file(path):
    with open(path, "rb") as handle:
        data = handle.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        tensors[name] = _decode(data[base + start : base + end], entry["dtype"], entry["shape"])
    return tensors


def read_checkpoint(model_dir):
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as handle:
            weight_map = json.load(handle)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors_file(os.path.join(model_dir, shard)))
        return tensors
    return read_safetensors_file(os.path.join(model_dir, "model.safetensors"))


# ---------------------------------------------------------------------------------------------
# GPT-2 (HF GPT2LMHeadModel semantics: Conv1D weights [in, out], tied LM head, gelu_new).

class GPT2(torch.nn.Module):
    def __init__(self, config, tensors):
        super().__init__()
        self.n_layer = config["n_layer"]
        self.n_head = config["n_head"]
        self.eps = config.get("layer_norm_epsilon", 1e-5)
        stripped = {}
        for name, value in tensors.items():
            key = name[len("transformer.") :] if name.startswith("transformer.") else name
            # Causal-mask buffers some older checkpoints store; not parameters.
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias") or key == "lm_head.weight":
                continue
            stripped[key] = value
        self.names = sorted(stripped)
        self.params = torch.nn.ParameterDict(
            {key.replace(".", "__"): torch.nn.Parameter(torch.from_numpy(np.array(value, dtype=np.float32)))
             for key, value in stripped.items()}
        )

    def p(self, key):
        return self.params[key.replace(".", "__")]

    def _ln(self, x, prefix):
        return F.layer_norm(x, (x.shape[-1],), self.p(prefix + ".weight"), self.p(prefix + ".bias"), self.eps)

    def forward(self, ids):
        batch, seq = ids.shape
        wte = self.p("wte.weight")
        positions = torch.arange(seq, dtype=torch.long)
        x = wte[ids] + self.p("wpe.weight")[positions]
        d = x.shape[-1]
        head_dim = d // self.n_head
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        for layer in range(self.n_layer):
            pre = f"h.{layer}"
            h = self._ln(x, pre + ".ln_1")
            qkv = torch.addmm(self.p(pre + ".attn.c_attn.bias"), h.reshape(-1, d), self.p(pre + ".attn.c_attn.weight"))
            q, k, v = qkv.view(batch, seq, 3, self.n_head, head_dim).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
            scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1) @ v
            attn = attn.transpose(1, 2).reshape(-1, d)
            x = x + torch.addmm(self.p(pre + ".attn.c_proj.bias"), attn, self.p(pre + ".attn.c_proj.weight")).view(batch, seq, d)
            h = self._ln(x, pre + ".ln_2").reshape(-1, d)
            h = F.gelu(torch.addmm(self.p(pre + ".mlp.c_fc.bias"), h, self.p(pre + ".mlp.c_fc.weight")), approximate="tanh")
            x = x + torch.addmm(self.p(pre + ".mlp.c_proj.bias"), h, self.p(pre + ".mlp.c_proj.weight")).view(batch, seq, d)
        x = self._ln(x, "ln_f")
        return x @ wte.t()

    def loss(self, ids):
        logits = self.forward(ids)
        vocab = logits.shape[-1]
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))


def reference_check(model, reference_path, key):
    """Max |logit - HF logit| over the listed positions: proves this peer is the same model."""
    with open(reference_path) as handle:
        rows = json.load(handle)["models"][key]
    worst = 0.0
    checked = 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["ids"]], dtype=torch.long)
            logits = model(ids)[0]
            for position, expected in row["logits"].items():
                diff = (logits[int(position)] - torch.tensor(expected, dtype=torch.float32)).abs().max().item()
                worst = max(worst, diff)
                checked += 1
    return worst, checked


def blas_alternative():
    """Which libblas.so.3 Debian's alternatives point at (netlib reference BLAS is ~10x slower)."""
    try:
        return os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    except OSError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="HF GPT-2 directory (config.json + safetensors)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--reference", help="reference-logits.json for a forward sanity check")
    parser.add_argument("--reference-key", default="tiny")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(os.path.join(args.model, "config.json")) as handle:
        config = json.load(handle)
    if config.get("model_type") != "gpt2":
        raise SystemExit(f"gpt2_step.py: {args.model}/config.json has model_type {config.get('model_type')!r}, expected 'gpt2'")
    if args.seq > config["n_positions"]:
        raise SystemExit(f"gpt2_step.py: --seq {args.seq} exceeds n_positions {config['n_positions']}")

    started = time.perf_counter()
    model = GPT2(config, read_checkpoint(args.model))
    load_s = time.perf_counter() - started
    n_params = sum(p.numel() for p in model.parameters())
    log(f"loaded {args.model}: {n_params} parameters in {load_s:.3f} s; torch {torch.__version__}, "
        f"intra-op threads {torch.get_num_threads()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")

    result = {
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "blas": blas_alternative(),
        "params": n_params,
        "batch": args.batch,
        "seq": args.seq,
        "seed": args.seed,
    }
    if args.reference:
        worst, checked = reference_check(model, args.reference, args.reference_key)
        result["reference_max_abs_diff"] = worst
        result["reference_positions"] = checked
        log(f"forward vs {os.path.basename(args.reference)}[{args.reference_key}]: max |diff| {worst:.3g} over {checked} positions")

    ids_np = random_token_batch(args.seed, args.batch, args.seq, config["vocab_size"])
    result["ids_sum"] = int(ids_np.sum())
    result["ids_head"] = ids_np[0, :8].tolist()
    ids = torch.from_numpy(ids_np)

    # Decay matrices and embeddings only (biases and LayerNorm weights excluded), as our AdamW does.
    decayed = [p for p in model.parameters() if p.ndim >= 2]
    plain = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": args.weight_decay}, {"params": plain, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    times = []
    losses = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids)
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - t0
        losses.append(loss.item())
        phase = "warmup" if step < args.warmup else "timed"
        log(f"step {step + 1}/{args.warmup + args.steps} ({phase}): {elapsed:.3f} s, loss {losses[-1]:.6f}")
        if step >= args.warmup:
            times.append(elapsed)

    result["first_loss"] = losses[0]
    result["losses"] = losses
    result["step_times_s"] = times
    result["median_step_s"] = statistics.median(times) if times else None
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
