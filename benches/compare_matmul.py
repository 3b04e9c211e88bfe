#!/usr/bin/env python3
"""Times PyTorch CPU f32 matmul over the shape table of `gemm_table`, printed in its layout.

    ~/torchenv/bin/python benches/compare_matmul.py --threads 2 > torch_t2.tsv
    ~/torchenv/bin/python benches/compare_matmul.py --threads 2 --rust rust_t2.tsv

Each shape is run for a warm-up, then --reps repetitions of at least 5 ms each; the time
reported is the median of one call, and GFLOP/s = 2*B*M*N*K / time: the same method as
`benches::median_time` in Rust. With --rust FILE (the output of `gemm_table`) it also prints a
merged table with the ratio of Rust's GFLOP/s to PyTorch's (below 1: Rust is slower).

The shape table repeats `GEMM_SHAPES` in benches/src/lib.rs; change them together.
"""

import argparse
import sys
import time

import torch

WARMUP_S = 0.200
MIN_REPETITION_S = 0.005

# (name, batch, m, k, n, ta, tb): op(A) is m x k, op(B) is k x n; a transposed operand is
# stored transposed and read through a transposed view, as the Rust side folds it into strides.
SHAPES = [
    ("square 64", 1, 64, 64, 64, False, False),
    ("square 128", 1, 128, 128, 128, False, False),
    ("square 256", 1, 256, 256, 256, False, False),
    ("square 512", 1, 512, 512, 512, False, False),
    ("square 1024", 1, 1024, 1024, 1024, False, False),
    ("square 2048", 1, 2048, 2048, 2048, False, False),
    ("qkv 2048x128x384", 1, 2048, 128, 384, False, False),
    ("ffn_up 2048x128x512", 1, 2048, 128, 512, False, False),
    ("ffn_down 2048x512x128", 1, 2048, 512, 128, False, False),
    ("ffn_up x*W^T 2048x128x512", 1, 2048, 128, 512, False, True),
    ("ffn_up dW x^T*g 128x2048x512", 1, 128, 2048, 512, True, False),
    ("logits x*W^T 2048x128x40", 1, 2048, 128, 40, False, True),
    ("attn_scores 64x(32x32x32)", 64, 32, 32, 32, False, True),
    ("attn_values 64x(32x32x32)", 64, 32, 32, 32, False, False),
]

HEADER = "# impl\tthreads\tname\tbatch\tm\tk\tn\tmedian_ms\tgflops"


def operands(batch, m, k, n, ta, tb, gen):
    """Random operands in their stored layout, returned as the views the product reads."""

    def stored(rows, cols):
        dims = (rows, cols) if batch == 1 else (batch, rows, cols)
        return torch.randn(dims, generator=gen, dtype=torch.float32)

    a = stored(k, m).mT if ta else stored(m, k)
    b = stored(n, k).mT if tb else stored(k, n)
    return a, b


def median_time(reps, f):
    """Median seconds of one call of f, after a warm-up (see the module docstring)."""
    start = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - start < WARMUP_S:
        f()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    inner = max(1, int(-(-MIN_REPETITION_S // max(per_call, 1e-9))))
    times = []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        for _ in range(inner):
            f()
        times.append((time.perf_counter() - t) / inner)
    times.sort()
    return times[len(times) // 2]


def thread_line():
    """The at::get_num_threads() line of torch's parallel_info, to show what really ran."""
    for line in torch.__config__.parallel_info().splitlines():
        if "at::get_num_threads" in line:
            return line.strip()
    return f"at::get_num_threads() : {torch.get_num_threads()}"


def measure(threads, reps):
    """Rows (name, batch, m, k, n, ms, gflops) for every shape, printed as they are measured."""
    print(f"# compare_matmul: torch {torch.__version__} CPU f32 matmul, {thread_line()}")
    print(
        f"# method: {WARMUP_S * 1e3:.0f} ms warm-up, then median of {reps} repetitions "
        f"of >= {MIN_REPETITION_S * 1e3:.0f} ms each"
    )
    print(HEADER)
    gen = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for name, batch, m, k, n, ta, tb in SHAPES:
            a, b = operands(batch, m, k, n, ta, tb, gen)
            seconds = median_time(reps, lambda: torch.matmul(a, b))
            gflops = 2 * batch * m * k * n / seconds / 1e9
            rows.append((name, batch, m, k, n, seconds * 1e3, gflops))
            print(f"torch\t{threads}\t{name:<30}\t{batch}\t{m}\t{k}\t{n}\t{seconds * 1e3:.4f}\t{gflops:.2f}")
            sys.stdout.flush()
    return rows


def read_table(path):
    """{name: (batch, m, k, n, ms, gflops)} from a file written by gemm_table (or this script)."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [x.strip() for x in line.rstrip("\n").split("\t")]
            if len(fields) != 9:
                sys.exit(f"{path}:{number}: expected 9 tab-separated fields ({HEADER[2:]}), got {len(fields)}")
            name = fields[2]
            batch, m, k, n = (int(x) for x in fields[3:7])
            table[name] = (batch, m, k, n, float(fields[7]), float(fields[8]))
    return table


def print_merged(rust, torch_rows, threads):
    print()
    print(f"# side by side, {threads} thread(s); ratio = Rust GFLOP/s / PyTorch GFLOP/s (below 1: Rust slower)")
    print("# name\tbatch\tm\tk\tn\trust_ms\ttorch_ms\trust_gflops\ttorch_gflops\tratio")
    for name, batch, m, k, n, t_ms, t_gf in torch_rows:
        if name not in rust:
            print(f"# {name}: not in the Rust table")
            continue
        r_batch, r_m, r_k, r_n, r_ms, r_gf = rust[name]
        if (r_batch, r_m, r_k, r_n) != (batch, m, k, n):
            sys.exit(f"{name}: Rust measured {r_batch}x{r_m}x{r_k}x{r_n}, this table has {batch}x{m}x{k}x{n}")
        print(
            f"{name:<30}\t{batch}\t{m}\t{k}\t{n}\t{r_ms:.4f}\t{t_ms:.4f}\t{r_gf:.2f}\t{t_gf:.2f}\t{r_gf / t_gf:.2f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(T); default: torch's own")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per shape (default 15)")
    parser.add_argument("--rust", metavar="FILE", help="gemm_table output to merge with, for a ratio column")
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be a positive integer")
        torch.set_num_threads(args.threads)
    rust = read_table(args.rust) if args.rust else None
    rows = measure(torch.get_num_threads(), args.reps)
    if rust is not None:
        print_merged(rust, rows, torch.get_num_threads())


if __name__ == "__main__":
    main()
