//! Times autograd's f32 matmul over the shared shape table and prints one tab-separated line
//! per shape, in the layout `compare_matmul.py` prints for PyTorch.
//!
//! ```text
//! cargo build --release -p benches --bin gemm_table
//! target/release/gemm_table --threads 2 [--reps 15] [--only square] > rust_t2.tsv
//! ```
//!
//! Each shape is run for a warm-up, then `--reps` repetitions; the time reported is the median
//! of one call, and GFLOP/s = 2·B·M·N·K / time. `--threads T` builds a rayon pool of T threads
//! (matmul's only source of parallelism); without it rayon picks one per core. The table is
//! timed from inside the pool, as a program built on autograd runs (the `transformer` program
//! does the same): the calling thread is one of the T, as PyTorch's is one of its OpenMP
//! threads. `--only TEXT` keeps the shapes whose name contains TEXT.

use benches::{GEMM_SHAPES, MIN_REPETITION, WARMUP, gflops, median_time};
use rand::{SeedableRng, rngs::StdRng};
use std::process::ExitCode;

/// The allocator the `transformer` program runs with. It backs large allocations with
/// transparent huge pages, which matters for products of a few thousand rows: with 4 KiB pages
/// their operands need more address translations than the TLB holds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: gemm_table [--threads T] [--reps N] [--only TEXT]";

struct Args {
    threads: Option<usize>,
    reps: usize,
    /// Only the shapes whose name contains this.
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { threads: None, reps: 15, only: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value: {what}"))?;
            match value.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} {value}: expected {what}, a positive integer")),
            }
        };
        match flag.as_str() {
            "--threads" => args.threads = Some(number("the number of threads")?),
            "--reps" => args.reps = number("the number of timed repetitions")?,
            "--only" => args.only = Some(it.next().ok_or("--only needs a value: part of a shape's name")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = args.threads {
        pool = pool.num_threads(threads);
    }
    match pool.build() {
        Ok(pool) => pool.install(|| print_table(&args)),
        Err(e) => {
            eprintln!("gemm_table: could not build a rayon pool: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Times every selected shape on the current rayon pool and prints the table.
fn print_table(args: &Args) {
    let threads = rayon::current_num_threads();
    let kernel = autograd::gemm_kernel().name();
    println!("# gemm_table: autograd f32 matmul (kernel {kernel}, AUTOGRAD_GEMM chooses), rayon threads: {threads}");
    println!(
        "# method: {} ms warm-up, then median of {} repetitions of >= {} ms each",
        WARMUP.as_millis(),
        args.reps,
        MIN_REPETITION.as_millis()
    );
    println!("# impl\tthreads\tname\tbatch\tm\tk\tn\tmedian_ms\tgflops");
    let mut rng = StdRng::seed_from_u64(0);
    for shape in GEMM_SHAPES.iter().filter(|s| args.only.as_ref().is_none_or(|only| s.name.contains(only.as_str()))) {
        let (a, b) = shape.operands(&mut rng);
        let time = median_time(args.reps, || shape.run(&a, &b));
        println!(
            "rust\t{threads}\t{:<30}\t{}\t{}\t{}\t{}\t{:.4}\t{:.2}",
            shape.name,
            shape.batch,
            shape.m,
            shape.k,
            shape.n,
            time.as_secs_f64() * 1e3,
            gflops(shape.flops(), time)
        );
    }
}
