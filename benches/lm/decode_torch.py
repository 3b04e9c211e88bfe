"""Tokens per second of greedy generation by the PyTorch CharLM, with a KV cache written here
(nn.TransformerEncoder has none) and without one: the reference for `transformer bench --decode`.

    python benches/lm/decode_torch.py [--config benches/lm/default.json] [--batch-sizes 1,32]
                                      [--new-tokens N] [--runs R] [--threads T]

Same model as `transformer bench --decode`: the config's CharLM with the LM init, a one-token
prompt after <bos>, max_len - 1 new tokens by default, the median of R timed runs after one
warm-up. The cached step runs each block as nn.TransformerEncoderLayer(norm_first=True) does:
x + out_proj(attention(norm1(x))), then x + linear2(activation(linear1(norm2(x)))), with the
new position's keys and values appended to the cache. Before timing, it checks that the cached
logits equal the uncached model's within 1e-5. One JSON line per (batch, cache).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "lm"))

from charlm import BOS, from_config, lm_init_  # noqa: E402


def cached_step(model, ids, caches):
    """Logits (batch, vocab) of the newest position `ids` (batch, 1), given and extending caches."""
    start = caches[0][0].shape[1] if caches[0] else 0
    x = model.embed(ids) + model.pos_embed.weight[start:start + 1]
    for layer, cache in zip(model.blocks.layers, caches):
        attn = layer.self_attn
        d, h = attn.embed_dim, attn.num_heads
        y = layer.norm1(x)
        q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).split(d, dim=-1)
        if cache:
            k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
        cache[:] = [k, v]
        heads = lambda t: t.reshape(t.shape[0], t.shape[1], h, d // h).transpose(1, 2)  # noqa: E731
        o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))  # one query sees every key
        x = x + attn.out_proj(o.transpose(1, 2).reshape(x.shape[0], 1, d))
        x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
    return model.lm_head(model.blocks.norm(x))[:, -1]


def generate(model, batch, new_tokens, cache):
    ids = torch.full((batch, 1), BOS, dtype=torch.long)
    ids = torch.cat([ids, torch.full((batch, 1), 4 % model.embed.num_embeddings)], 1)
    steps = []
    if cache:
        caches = [[] for _ in model.blocks.layers]
        for t in range(ids.shape[1] - 1):  # feed the prompt, one position at a time
            cached_step(model, ids[:, t:t + 1], caches)
        for _ in range(new_tokens):
            logits = cached_step(model, ids[:, -1:], caches)
            steps.append(logits)
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    else:
        for _ in range(new_tokens):
            logits = model(ids)[:, -1]
            steps.append(logits)
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids, steps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=os.path.join(ROOT, "benches", "lm", "default.json"))
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--new-tokens", type=int)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config) as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    model = lm_init_(from_config(cfg)).eval()
    new_tokens = args.new_tokens or cfg["max_len"] - 1
    with torch.inference_mode():
        a, sa = generate(model, 3, 8, True)
        b, sb = generate(model, 3, 8, False)
        worst = max((x - y).abs().max().item() for x, y in zip(sa, sb))
        assert torch.equal(a, b) and worst < 1e-5, f"the cached step differs from the model by {worst}"
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            for cache in [True, False]:
                times = []
                for run in range(args.runs + 1):
                    start = time.perf_counter()
                    generate(model, batch, new_tokens, cache)
                    if run:
                        times.append(time.perf_counter() - start)
                seconds = statistics.median(times)
                print(json.dumps({"batch": batch, "cache": cache, "new_tokens": new_tokens,
                                  "tokens_per_s": round(batch * new_tokens / seconds)}))


if __name__ == "__main__":
    main()
