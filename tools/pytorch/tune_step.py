#!/usr/bin/env python3
"""PyTorch peer for scripts/gpu-check.sh: the same adapter-tuning job as `scaleot tune` on a uniform emulator.

Loads the HF model with transformers (float32), keeps only the emulator's blocks (--layers, original
indices, in order), trains only the adapter blocks (--train) with AdamW on random token windows of
--seq tokens (+1 for the shifted targets; the FLOPs of a window do not depend on its tokens), and
reports tokens/s over the timed steps on CUDA when present, else CPU. One JSON object, last stdout line.
"""

import argparse
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def log(message):
    print(f"[tune_step.py] {message}", file=sys.stderr, flush=True)


def ints(text):
    return [int(x) for x in text.split(",") if x.strip() != ""]


def block_list(model):
    if hasattr(model, "transformer") and hasattr(model.transformer, "h"):
        return model.transformer, "h"
    if hasattr(model, "model") and hasattr(model.model, "layers"):
        return model.model, "layers"
    if hasattr(model, "model") and hasattr(model.model, "decoder"):
        return model.model.decoder, "layers"
    raise SystemExit(f"unknown block layout for {type(model).__name__}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--layers", required=True, type=ints)
    p.add_argument("--train", required=True, type=ints)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as on our side
    torch.backends.cudnn.allow_tf32 = False
    try:  # transformers >= 4.56 (5.x) takes dtype=, older ones torch_dtype=
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    owner, name = block_list(model)
    blocks = getattr(owner, name)
    setattr(owner, name, torch.nn.ModuleList([blocks[i] for i in a.layers]))
    model.config.num_hidden_layers = len(a.layers)
    for param in model.parameters():
        param.requires_grad_(False)
    trained = []
    for pos, i in enumerate(a.layers):
        if i in a.train:
            for param in getattr(owner, name)[pos].parameters():
                param.requires_grad_(True)
                trained.append(param)
    model.to(device).train()
    opt = torch.optim.AdamW(trained, lr=a.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    times = []
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=gen).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        logits = model(input_ids=ids[:, :-1], use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()  # a host sync, as our side reads the loss every step
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        log(f"step {step + 1}/{a.warmup + a.steps}: {seconds:.4f} s, loss {loss_value:.4f}")
        if step >= a.warmup:
            times.append(seconds)
    total = sum(times)
    print(json.dumps({
        "torch_version": torch.__version__,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "dtype": "float32",
        "tf32": False,
        "layers": a.layers,
        "trained_blocks": a.train,
        "trained_parameters": sum(t.numel() for t in trained),
        "step_seconds": times,
        "tokens_per_second": a.batch * a.seq * len(times) / total,
    }))


if __name__ == "__main__":
    main()
