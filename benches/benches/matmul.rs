//! Criterion benchmark of f32 matmul over the named shape table: square sizes and the products
//! of one Transformer training step.
//!
//! Throughput is `Throughput::Elements(2·B·M·N·K)`: each "element" is one floating-point
//! operation (a multiply or an add), so criterion's `elem/s` column reads as FLOP/s and
//! `Gelem/s` as GFLOP/s. Threads come from rayon's global pool: prefix the command with
//! `RAYON_NUM_THREADS=1` to measure one core. The timed loop runs on one of the pool's threads,
//! as a program built on autograd does (see `gemm_table`).

use benches::GEMM_SHAPES;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::{SeedableRng, rngs::StdRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The allocator the `transformer` program and `gemm_table` run with (huge pages for large
/// operands; see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn matmul(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut group = c.benchmark_group("matmul_f32");
    // Flat sampling (the same number of calls in each of the ten samples): linear sampling
    // would need 55 calls, seconds for the larger products.
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_millis(300));
    for shape in GEMM_SHAPES {
        let (a, b) = shape.operands(&mut rng);
        // Room for about fifteen calls, so criterion never has to stretch the time and warn,
        // but at least one second.
        let start = Instant::now();
        black_box(shape.run(&a, &b));
        group.measurement_time((start.elapsed() * 15).max(Duration::from_secs(1)));
        group.throughput(Throughput::Elements(shape.flops()));
        group.bench_function(shape.name, |bench| {
            bench.iter_custom(|calls| {
                rayon::scope(|_| {
                    let start = Instant::now();
                    for _ in 0..calls {
                        black_box(shape.run(black_box(&a), black_box(&b)));
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
