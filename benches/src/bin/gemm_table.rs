//! Times autograd's f32 matmul over the shared shape table and prints one tab-separated line
//! per shape, in the layout `compare_matmul.py` prints for PyTorch.
//!
//! ```text
//! cargo build --release -p benches --bin gemm_table
//! target/release/gemm_table --threads 2 [--reps 15] > rust_t2.tsv
//! ```
//!
//! Each shape is run for a warm-up, then `--reps` repetitions; the time reported is the median
//! of one call, and GFLOP/s = 2·B·M·N·K / time. `--threads T` builds rayon's global pool with
//! T threads (matmul's only source of parallelism); without it rayon picks one per core.

use benches::{GEMM_SHAPES, MIN_REPETITION, WARMUP, gflops, median_time};
use rand::{SeedableRng, rngs::StdRng};
use std::process::ExitCode;

const USAGE: &str = "usage: gemm_table [--threads T] [--reps N]";

struct Args {
    threads: Option<usize>,
    reps: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { threads: None, reps: 15 };
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
    if let Some(threads) = args.threads {
        let built = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
        if let Err(e) = built {
            eprintln!("gemm_table: could not build a rayon pool of {threads} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let threads = rayon::current_num_threads();

    println!("# gemm_table: autograd f32 matmul (matrixmultiply kernels), rayon threads: {threads}");
    println!(
        "# method: {} ms warm-up, then median of {} repetitions of >= {} ms each",
        WARMUP.as_millis(),
        args.reps,
        MIN_REPETITION.as_millis()
    );
    println!("# impl\tthreads\tname\tbatch\tm\tk\tn\tmedian_ms\tgflops");
    let mut rng = StdRng::seed_from_u64(0);
    for shape in GEMM_SHAPES {
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
    ExitCode::SUCCESS
}
