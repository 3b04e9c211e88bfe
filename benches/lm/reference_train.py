"""The PyTorch reference of `transformer lm train`: the same model, initialization, data
framing, optimizer, schedule, clipping, batch size and steps, so the two held-out losses can be
compared (benches/README.md).

    python benches/lm/reference_train.py [--text FILE] [--steps N] [--batch-size B] [--seed S] [--threads T]

Without --text it trains on the built-in corpus of `lm train` (this repository's Rust sources
and book, by the rule in tests/fixtures/lm/charlm.py). The recipe, as `lm train`'s defaults:
CharLM(d 128, 4 heads, 3 layers, d_ff 512, max_len 64, gelu, tied), the LM init; each step 32
chunks of 64 characters at uniformly random offsets of the first 90% of the text;
torch.optim.AdamW(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01); lr warmed up linearly to
3e-3 over 100 steps then decayed linearly to 0 at the last step; clip_grad_norm_(1.0). The
held-out loss is the eval loss (every character once) of the last 10%.
It prints a JSON line: {"steps", "seconds", "heldout_loss", "heldout_bits_per_char"}.
"""

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "lm"))

from charlm import PAD, builtin_corpus, config, encode, eval_loss, frame, from_config, lm_init_, pad_batch, vocab_of  # noqa: E402,E501


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.text:
        with open(args.text, encoding="utf-8", newline="") as f:
            text = f.read()
    else:
        text = builtin_corpus(ROOT)
    tokens = vocab_of(text)
    cfg = config(len(tokens))
    split = int(len(text) * 0.9)
    train_ids, held_out = encode(tokens, text[:split]), text[split:]
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = lm_init_(from_config(cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    warmup = args.warmup if args.warmup < args.steps else args.steps // 10
    max_len = cfg["max_len"]
    start = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        starts = [rng.randint(0, len(train_ids) - max_len) for _ in range(args.batch_size)]
        inputs, targets = pad_batch([frame(train_ids[s:s + max_len], max_len)[0] for s in starts])
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), targets.reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        fraction = step / warmup if step <= warmup else (args.steps - step) / (args.steps - warmup)
        for group in opt.param_groups:
            group["lr"] = args.lr * fraction
        opt.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.4f}", file=sys.stderr)
    seconds = time.time() - start
    result = eval_loss(model, tokens, held_out, max_len)
    print(json.dumps({"steps": args.steps, "seconds": round(seconds, 1), "heldout_loss": result["loss"],
                      "heldout_bits_per_char": result["bits_per_char"]}))


if __name__ == "__main__":
    main()
