"""Times one training step of the same Transformer in Rust (`transformer bench`) and PyTorch, and
prints the two side by side.

Run from the repository root after `cargo build --release -p transformer`:

    ~/torchenv/bin/python benches/transformer/compare.py                 # d64, d128, d256; 2 threads
    ~/torchenv/bin/python benches/transformer/compare.py --runs 3        # median of 3 runs per side
    ~/torchenv/bin/python benches/transformer/compare.py --configs benches/transformer/d64.json

A step is the same on both sides: forward on random token ids in 4..vocab_size (no padding, so
the padding masks are all false), cross-entropy over the vocabulary with label smoothing 0.1
ignoring pad (id 0), backward, global-norm gradient clipping to 1.0, Adam (lr 1e-4, betas
(0.9, 0.98), eps 1e-9). Like `train_step` in transformer/src/train.rs, the PyTorch step also reads
the loss and counts the argmax hits. The time is the median of --steps timed steps after 3 warm-up
steps (the upper median, as `transformer bench` takes it). The Rust step splits its batch into
shards that run side by side (`--shards`, 2 by default): the same gradient up to float rounding,
computed in two halves; the PyTorch step runs the batch whole, as a PyTorch training loop does.

The PyTorch model is the Seq2Seq class of tests/fixtures/generate_transformer.py, the mirror of
transformer::Seq2Seq that the parity tests are made with (torch.nn.TransformerEncoder/Decoder,
batch_first, pre-LN here, in train mode with dropout 0 so PyTorch stays off its inference fast
path). One change is made to it here: its `sinusoidal` table builder, a pure-Python double loop
over max_len × d_model that it calls on every forward, is wrapped in a cache, so the timing is of
the model and not of that loop (the Rust model also builds the table once). The values are the
same.
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import generate_transformer as fixture  # noqa: E402

fixture.sinusoidal = functools.lru_cache(maxsize=None)(fixture.sinusoidal)

PAD = fixture.PAD
WARMUP = 3
DEFAULT_CONFIGS = [os.path.join("benches", "transformer", f"d{d}.json") for d in (64, 128, 256)]
# The reference configs and their batch shapes (batch, src-len, tgt-len): tiny, small and base.
REFERENCE = [("tiny", 64, 16, 16), ("small", 32, 32, 32), ("base", 32, 64, 64)]


def rust_bench(binary, config, batch, src_len, tgt_len, steps, threads, shards=None):
    cmd = [binary, "bench", "--config", config, "--batch-size", str(batch), "--src-len", str(src_len),
           "--tgt-len", str(tgt_len), "--steps", str(steps), "--threads", str(threads)]
    if shards is not None:
        cmd += ["--shards", str(shards)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["ms_per_step"], r["params"]


def make_adam(params, kind):
    """torch.optim.Adam with the paper's settings, as `kind`: fused (one kernel over every
    parameter), foreach (one op per kind of update over every parameter) or single (the loop
    over parameters)."""
    extra = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}[kind]
    return torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-9, **extra)


def torch_bench(cfg, batch, src_len, tgt_len, steps, adam="fused"):
    torch.manual_seed(0)
    model = fixture.Seq2Seq(cfg)
    model.train()
    assert cfg["dropout"] == 0.0, "the comparison is made with dropout 0"
    params = sum(p.numel() for p in model.parameters())
    vocab = cfg["vocab_size"]
    src = torch.randint(4, vocab, (batch, src_len))
    tgt_in = torch.randint(4, vocab, (batch, tgt_len))
    tgt_out = torch.randint(4, vocab, (batch, tgt_len))
    optimizer = make_adam(model.parameters(), adam)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=PAD,
                               label_smoothing=0.1)
        hits = (logits.detach().argmax(-1) == tgt_out).sum().item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item(), hits

    times = []
    for i in range(WARMUP + steps):
        start = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3, params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join("target", "release", "transformer"))
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="config.json files")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--src-len", type=int, default=32)
    ap.add_argument("--tgt-len", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="timed steps after 3 warm-up steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1,
                    help="run each side this many times (alternating) and report the median of the runs")
    ap.add_argument("--adam", choices=["fused", "foreach", "single"], default="fused",
                    help="PyTorch's Adam implementation (default fused, its fastest on CPU)")
    ap.add_argument("--shards", type=int, default=None,
                    help="passed to `transformer bench --shards` (default: its own, 2): the shards a Rust step "
                         "splits its batch into")
    ap.add_argument("--reference", action="store_true",
                    help="the reference configs tiny, small and base, each at its own batch shape "
                         "(64x16, 32x32, 32x64); overrides --configs and the shape flags")
    args = ap.parse_args()
    if args.reference:
        return reference(args)

    torch.set_num_threads(args.threads)
    shape = (args.batch_size, args.src_len, args.tgt_len)
    tokens = args.batch_size * args.tgt_len
    print(f"# torch {torch.__version__}, torch threads {torch.get_num_threads()}, rust --threads {args.threads}; "
          f"batch {args.batch_size}, src-len {args.src_len}, tgt-len {args.tgt_len}; "
          f"median of {args.steps} steps after {WARMUP} warm-up, median of {args.runs} run(s); "
          f"tokens = batch x tgt-len = {tokens}", flush=True)
    rows = []
    for path in args.configs:
        with open(path) as f:
            cfg = json.load(f)
        name = os.path.splitext(os.path.basename(path))[0]
        rust_runs, torch_runs = [], []
        for _ in range(args.runs):
            ms, rust_params = rust_bench(args.binary, path, *shape, args.steps, args.threads, args.shards)
            rust_runs.append(ms)
            ms, torch_params = torch_bench(cfg, *shape, args.steps, args.adam)
            torch_runs.append(ms)
            assert rust_params == torch_params, f"{name}: Rust has {rust_params} parameters, PyTorch {torch_params}"
            print(f"# {name}: rust {rust_runs[-1]:.1f} ms, torch {torch_runs[-1]:.1f} ms", file=sys.stderr,
                  flush=True)
        rust_ms, torch_ms = statistics.median(rust_runs), statistics.median(torch_runs)
        rows.append((f"{name} (d_model {cfg['d_model']}, {cfg['n_heads']} heads, d_ff {cfg['d_ff']})", rust_params,
                     torch_params, rust_ms, torch_ms, rust_ms / torch_ms, tokens / rust_ms * 1e3,
                     tokens / torch_ms * 1e3))

    print("| config | params (Rust) | params (PyTorch) | Rust ms/step | PyTorch ms/step | Rust / PyTorch "
          "| Rust tokens/s | PyTorch tokens/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rp, tp, rm, tm, ratio, rt, tt in rows:
        print(f"| {name} | {rp:,} | {tp:,} | {rm:.1f} | {tm:.1f} | {ratio:.2f} | {rt:,.0f} | {tt:,.0f} |")


def reference(args):
    """The reference configs, alternating sides, with medians and ranges."""
    torch.set_num_threads(args.threads)
    shards = "default" if args.shards is None else args.shards
    print(f"# torch {torch.__version__} (Adam {args.adam}), torch threads {torch.get_num_threads()}, rust --threads "
          f"{args.threads} --shards {shards}; median of {args.steps} steps after {WARMUP} warm-up per run; {args.runs} alternating "
          f"run(s) per side", flush=True)
    print("| config | batch x len | Rust ms/step, median (range) | PyTorch ms/step, median (range) | Rust / PyTorch, "
          "median (range of run pairs) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, batch, src_len, tgt_len in REFERENCE:
        path = os.path.join("benches", "transformer", f"{name}.json")
        with open(path) as f:
            cfg = json.load(f)
        rust_runs, torch_runs = [], []
        for _ in range(args.runs):
            rust_runs.append(rust_bench(args.binary, path, batch, src_len, tgt_len, args.steps, args.threads, args.shards)[0])
            torch_runs.append(torch_bench(cfg, batch, src_len, tgt_len, args.steps, args.adam)[0])
            print(f"# {name}: rust {rust_runs[-1]:.1f} ms, torch {torch_runs[-1]:.1f} ms", file=sys.stderr,
                  flush=True)
        ratios = [r / t for r, t in zip(rust_runs, torch_runs)]
        med = statistics.median
        print(f"| {name} | {batch}x{tgt_len} | {med(rust_runs):.2f} ({min(rust_runs):.2f}-{max(rust_runs):.2f}) | "
              f"{med(torch_runs):.2f} ({min(torch_runs):.2f}-{max(torch_runs):.2f}) | {med(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
