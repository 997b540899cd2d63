#!/usr/bin/env python3
"""Independent cross-check of scaleot's evaluation numbers.

Reads a GPT-2 checkpoint straight from its safetensors files (JSON header + raw buffer; no
`transformers`, no `safetensors`, no `tokenizers`), runs a plain re-implementation of the GPT-2 forward
pass, and evaluates the token ids that scaleot's own protocol code produced (dumped by
`dump-eval-ids.mjs`), so that any disagreement is about the model/metric, not about tokenisation:

  node tools/reference/dump-eval-ids.mjs --model ../shared/fixtures/models/sotu-gpt2-tiny \
       --data ../shared/fixtures/data --out /tmp/eval-ids.json
  python3 tools/reference/eval_protocol.py --model ../shared/fixtures/models/sotu-gpt2-tiny \
       --ids /tmp/eval-ids.json [--check ../shared/fixtures/reference-logits.json]

Protocols (../shared/fixtures/README.md):
  lm:             perplexity = exp(sum NLL of tokens 1..ctx of every block / number of those tokens)
  classification: score(candidate) = sum log p(candidate tokens | prompt + previous candidate tokens);
                  prediction = highest score, exact ties -> first candidate; metric = accuracy.
Sums are accumulated in float64; the forward runs in --dtype (default float32, as HF does).

Dependencies: torch (preferred) or numpy (--backend numpy, or automatically when torch is missing),
json and the standard library only.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

try:
    import torch
except ImportError:  # numpy fallback keeps the script usable where torch is not installed
    torch = None

# ---------------------------------------------------------------------------------------------
# safetensors


def _decode(dtype, raw, shape):
    if dtype == "F32":
        arr = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F64":
        arr = np.frombuffer(raw, dtype="<f8")
    else:
        raise ValueError(f"unsupported dtype {dtype}")
    return arr.reshape(shape).astype(np.float64 if dtype == "F64" else np.float32)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = _decode(info["dtype"], data[base + begin:base + end], info["shape"])
    return tensors


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors(os.path.join(model_dir, shard)))
    else:
        tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    out = {}
    for name, value in tensors.items():
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias"):
            continue  # causal-mask buffers, not parameters
        out[key] = value
    return out


def read_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    if c.get("model_type", "gpt2") != "gpt2":
        raise SystemExit(f"only GPT-2 checkpoints are supported, got model_type {c.get('model_type')}")
    act = c.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise SystemExit(f"unsupported activation_function {act}")
    return {
        "n_layer": c.get("n_layer", c.get("num_hidden_layers")),
        "n_head": c.get("n_head", c.get("num_attention_heads")),
        "n_positions": c.get("n_positions", c.get("max_position_embeddings")),
        "eps": c.get("layer_norm_epsilon", 1e-5),
    }


# ---------------------------------------------------------------------------------------------
# GPT-2 forward: input ids [B, T] -> log-softmax over the vocabulary [B, T, V]


class TorchGpt2:
    def __init__(self, weights, config, dtype):
        self.dt = torch.float64 if dtype == "float64" else torch.float32
        self.w = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.dt) for k, v in weights.items()}
        self.c = config
        if "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["wte.weight"]  # tied
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    def _ln(self, x, p):
        mu = x.mean(-1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdim=True)
        return xc / torch.sqrt(var + self.c["eps"]) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def log_probs(self, ids):
        with torch.no_grad():
            return self._log_probs(ids)

    def _log_probs(self, ids):
        w, c = self.w, self.c
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        b, t = ids.shape
        h = w["wte.weight"][ids] + w["wpe.weight"][:t][None]
        nh = c["n_head"]
        d = h.shape[-1]
        hd = d // nh
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        for i in range(c["n_layer"]):
            p = f"h.{i}."
            x = self._ln(h, p + "ln_1")
            qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = qkv.split(d, dim=-1)
            q, k, v = (z.reshape(b, t, nh, hd).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, d)
            h = h + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
            x = self._ln(h, p + "ln_2")
            x = x @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
            x = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
            h = h + x @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        h = self._ln(h, "ln_f")
        logits = h @ w["lm_head.weight"].T
        return logits, logits.log_softmax(-1)

    def to_numpy(self, x):
        return x.double().numpy()


class NumpyGpt2:
    def __init__(self, weights, config, dtype):
        self.dt = np.float64 if dtype == "float64" else np.float32
        self.w = {k: v.astype(self.dt) for k, v in weights.items()}
        self.c = config
        if "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["wte.weight"]

    def _ln(self, x, p):
        mu = x.mean(-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdims=True)
        return xc / np.sqrt(var + self.dt(self.c["eps"])) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def log_probs(self, ids):
        w, c, dt = self.w, self.c, self.dt
        ids = np.asarray(ids, dtype=np.int64)
        b, t = ids.shape
        h = w["wte.weight"][ids] + w["wpe.weight"][:t][None]
        nh = c["n_head"]
        d = h.shape[-1]
        hd = d // nh
        mask = np.triu(np.ones((t, t), dtype=bool), 1)
        for i in range(c["n_layer"]):
            p = f"h.{i}."
            x = self._ln(h, p + "ln_1")
            qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(b, t, nh, hd).transpose(0, 2, 1, 3) for j in range(3))
            att = (q @ k.transpose(0, 1, 3, 2)) / dt(math.sqrt(hd))
            att = np.where(mask, -np.inf, att)
            att = np.exp(att - att.max(-1, keepdims=True))
            att = att / att.sum(-1, keepdims=True)
            y = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
            h = h + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
            x = self._ln(h, p + "ln_2")
            x = x @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
            x = dt(0.5) * x * (dt(1.0) + np.tanh(dt(math.sqrt(2.0 / math.pi)) * (x + dt(0.044715) * x * x * x)))
            h = h + x @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        h = self._ln(h, "ln_f")
        logits = h @ w["lm_head.weight"].T
        m = logits.max(-1, keepdims=True)
        lse = m + np.log(np.exp(logits - m).sum(-1, keepdims=True))
        return logits, logits - lse

    def to_numpy(self, x):
        return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# protocols


def target_logprobs(model, sequences):
    """Per sequence of one length T: log p(seq[i+1] | seq[..i]) for i = 0..T-2 (float64 numpy)."""
    seqs = np.asarray(sequences, dtype=np.int64)
    _, lp = model.log_probs(seqs[:, :-1])
    lp = model.to_numpy(lp)
    return np.take_along_axis(lp, seqs[:, 1:, None], axis=-1)[..., 0]


def batches_by_length(sequences, batch_size):
    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
    batch = []
    for i in order:
        if batch and (len(batch) == batch_size or len(sequences[batch[0]]) != len(sequences[i])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def eval_lm(model, blocks, batch_size, ctx):
    for b in blocks:
        if len(b) != ctx + 1:
            raise SystemExit(f"LM block of {len(b)} tokens; the protocol makes blocks of ctx + 1 = {ctx + 1}")
    total, tokens = 0.0, 0
    for idx in batches_by_length(blocks, batch_size):
        lp = target_logprobs(model, [blocks[i] for i in idx])
        total += float(-lp.sum(dtype=np.float64))
        tokens += lp.size
    nll = total / tokens
    return {"perplexity": math.exp(nll), "nll": nll, "total_nll": total, "tokens": tokens, "blocks": len(blocks)}


def eval_classification(model, examples, batch_size, ctx):
    seqs, owner = [], []
    for e, ex in enumerate(examples):
        for k, cand in enumerate(ex["candidateIds"]):
            seq = ex["promptIds"] + cand
            if len(seq) > ctx:
                raise SystemExit(f"example {e}: prompt + candidate = {len(seq)} tokens > ctx {ctx}")
            seqs.append(seq)
            owner.append((e, k))
    scores = [[0.0] * len(ex["candidateIds"]) for ex in examples]
    for idx in batches_by_length(seqs, batch_size):
        lp = target_logprobs(model, [seqs[i] for i in idx])
        for row, i in zip(lp, idx):
            e, k = owner[i]
            start = len(examples[e]["promptIds"]) - 1
            scores[e][k] = float(row[start:start + len(examples[e]["candidateIds"][k])].sum(dtype=np.float64))
    predictions = [max(range(len(s)), key=lambda k: (s[k], -k)) for s in scores]  # ties -> first
    correct = sum(int(p == ex["labelIndex"]) for p, ex in zip(predictions, examples))
    return {
        "accuracy": correct / len(examples),
        "correct": correct,
        "total": len(examples),
        "predictions": predictions,
        "scores": scores,
    }


def check_reference(model, reference_path, key):
    """Compares NLL and logits with the HF reference rows of `models[key]` in reference-logits.json."""
    with open(reference_path) as f:
        ref = json.load(f)
    worst_nll, worst_logit = 0.0, 0.0
    for row in ref["models"][key]:
        ids = np.asarray([row["ids"]], dtype=np.int64)
        logits, lp = model.log_probs(ids)
        logits, lp = model.to_numpy(logits)[0], model.to_numpy(lp)[0]
        nll = -lp[np.arange(len(row["ids"]) - 1), ids[0, 1:]]
        worst_nll = max(worst_nll, float(np.abs(nll - np.asarray(row["nll"])).max()))
        for pos, vec in row["logits"].items():
            worst_logit = max(worst_logit, float(np.abs(logits[int(pos)] - np.asarray(vec)).max()))
    return {"model": key, "max_abs_nll_diff": worst_nll, "max_abs_logit_diff": worst_logit}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF GPT-2 checkpoint dir (config.json + safetensors)")
    ap.add_argument("--ids", help="JSON written by dump-eval-ids.mjs")
    ap.add_argument("--check", help="reference-logits.json: also report the max difference to HF's logits/NLL")
    ap.add_argument("--check-key", help="which models.* rows of --check (default: tiny/small from the dir name)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--backend", choices=["auto", "torch", "numpy"], default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", help="also write the results JSON here")
    args = ap.parse_args()

    backend = args.backend
    if backend == "auto":
        backend = "torch" if torch is not None else "numpy"
    if backend == "torch" and torch is None:
        raise SystemExit("torch is not installed; use --backend numpy")
    config = read_config(args.model)
    weights = read_checkpoint(args.model)
    model = (TorchGpt2 if backend == "torch" else NumpyGpt2)(weights, config, args.dtype)
    result = {"model": os.path.abspath(args.model), "backend": backend, "dtype": args.dtype}

    if args.check:
        key = args.check_key or ("tiny" if "tiny" in os.path.basename(os.path.normpath(args.model)) else "small")
        result["reference_check"] = check_reference(model, args.check, key)
        print(f"reference check: {json.dumps(result['reference_check'])}", file=sys.stderr)
    if args.ids:
        with open(args.ids) as f:
            dump = json.load(f)
        ctx = dump["ctx"]
        if ctx > config["n_positions"]:
            raise SystemExit(f"ids were cut for ctx {ctx} > n_positions {config['n_positions']}")
        result.update({"ctx": ctx, "protocol_version": dump.get("protocolVersion"), "tasks": {}})
        for name, task in dump["tasks"].items():
            t0 = time.time()
            if task["type"] == "lm":
                r = eval_lm(model, task["blocks"], args.batch_size, ctx)
                r["metric"] = "perplexity"
                r["value"] = r["perplexity"]
            else:
                r = eval_classification(model, task["examples"], args.batch_size, ctx)
                r["metric"] = "accuracy"
                r["value"] = r["accuracy"]
            r["seconds"] = round(time.time() - t0, 2)
            result["tasks"][name] = r
            print(f"{name}: {r['metric']} = {r['value']:.6f} ({r['seconds']} s)", file=sys.stderr)

    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    summary = {k: v for k, v in result.items() if k != "tasks"}
    summary["tasks"] = {
        n: {k: v for k, v in r.items() if k not in ("predictions", "scores")} for n, r in result.get("tasks", {}).items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
