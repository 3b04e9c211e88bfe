//! Criterion benchmark of the main elementwise, reduction and fused NN ops on f32 tensors, and
//! of one forward + backward pass of a small MLP on a tape.
//!
//! Throughput is in elements of the input tensor (`elem/s`); the MLP reports rows (examples)
//! per second. Sizes straddle the engine's parallel threshold (2^15 elements): the smallest
//! runs on one thread, the larger ones on rayon's global pool (`RAYON_NUM_THREADS` sets it).

use autograd::{CrossEntropyOptions, Param, Tape, Tensor};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::hint::black_box;
use std::time::Duration;

/// [rows, cols]: below the parallel threshold, a Transformer activation (batch·seq, d_ff), and
/// one that no longer fits in cache.
const SIZES: &[[usize; 2]] = &[[32, 512], [2048, 512], [8192, 512]];

fn label([rows, cols]: [usize; 2]) -> String {
    format!("{rows}x{cols}")
}

/// A group sampled flat (the same iteration count in every sample): the larger inputs take
/// milliseconds per call, too long for criterion's default linear sampling in one second.
fn flat_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    group
}

/// Benchmarks `f(x)` for an input of every size in [`SIZES`], as group `name`.
fn unary(c: &mut Criterion, rng: &mut StdRng, name: &str, f: impl Fn(&Tensor<f32>) -> Tensor<f32>) {
    let mut group = flat_group(c, name);
    for &size in SIZES {
        let x = Tensor::randn(size, 0.0, 1.0, rng);
        group.throughput(Throughput::Elements(x.numel() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label(size)), &x, |bench, x| bench.iter(|| f(black_box(x))));
    }
    group.finish();
}

/// Benchmarks `f(x, y)` for `x` of every size in [`SIZES`] and `y` of `y_shape(size)`.
fn binary(
    c: &mut Criterion,
    rng: &mut StdRng,
    name: &str,
    y_shape: impl Fn([usize; 2]) -> Vec<usize>,
    f: impl Fn(&Tensor<f32>, &Tensor<f32>) -> Tensor<f32>,
) {
    let mut group = flat_group(c, name);
    for &size in SIZES {
        let x = Tensor::randn(size, 0.0, 1.0, rng);
        let y = Tensor::randn(y_shape(size), 0.0, 1.0, rng);
        group.throughput(Throughput::Elements(x.numel() as u64));
        group.bench_function(BenchmarkId::from_parameter(label(size)), |bench| {
            bench.iter(|| f(black_box(&x), black_box(&y)))
        });
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let rng = &mut StdRng::seed_from_u64(0);
    binary(c, rng, "add", |s| s.to_vec(), |x, y| x + y);
    // A bias row broadcast over every row, as in a Linear layer.
    binary(c, rng, "add_broadcast_row", |[_, cols]| vec![cols], |x, y| x + y);
    binary(c, rng, "mul", |s| s.to_vec(), |x, y| x * y);
    unary(c, rng, "exp", Tensor::exp);
    unary(c, rng, "relu", Tensor::relu);
    unary(c, rng, "gelu", Tensor::gelu);
}

fn reductions(c: &mut Criterion) {
    let rng = &mut StdRng::seed_from_u64(1);
    unary(c, rng, "sum_last_axis", |x| x.sum(&[-1], false));
    unary(c, rng, "softmax_last_axis", |x| x.softmax(-1));
    unary(c, rng, "layer_norm", |x| x.layer_norm(&[x.dims()[1]], None, None, 1e-5));

    // Logits (rows, classes) against one class per row: the fused loss kernel.
    let mut group = flat_group(c, "cross_entropy");
    for &size in SIZES {
        let [rows, classes] = size;
        let logits = Tensor::<f32>::randn(size, 0.0, 1.0, rng);
        let targets: Vec<usize> = (0..rows).map(|_| rng.random_range(0..classes)).collect();
        group.throughput(Throughput::Elements(logits.numel() as u64));
        group.bench_function(BenchmarkId::from_parameter(label(size)), |bench| {
            bench.iter(|| black_box(&logits).cross_entropy(black_box(&targets), CrossEntropyOptions::default()))
        });
    }
    group.finish();
}

/// One training step's worth of autodiff without the optimizer: a two-layer MLP
/// (x·W1ᵀ + b1 → gelu → ·W2ᵀ + b2 → cross-entropy) recorded on a fresh tape, then backward.
fn mlp_step(c: &mut Criterion) {
    let rng = &mut StdRng::seed_from_u64(2);
    let (rows, d_in, d_hidden, classes) = (256, 128, 512, 40);
    let w1 = Param::new("w1", Tensor::randn([d_hidden, d_in], 0.0, 0.05, rng));
    let b1 = Param::new("b1", Tensor::zeros([d_hidden]));
    let w2 = Param::new("w2", Tensor::randn([classes, d_hidden], 0.0, 0.05, rng));
    let b2 = Param::new("b2", Tensor::zeros([classes]));
    let x = Tensor::randn([rows, d_in], 0.0, 1.0, rng);
    let targets: Vec<usize> = (0..rows).map(|_| rng.random_range(0..classes)).collect();

    let mut group = flat_group(c, "mlp_forward_backward");
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::from_parameter(format!("{rows}x{d_in}-{d_hidden}-{classes}")), |bench| {
        bench.iter(|| {
            let tape = Tape::new();
            let x = tape.constant(x.clone());
            let (w1, b1, w2, b2) = (tape.param(&w1), tape.param(&b1), tape.param(&w2), tape.param(&b2));
            let h = (x.matmul_t(w1, false, true) + b1).gelu(); // (rows, d_hidden)
            let logits = h.matmul_t(w2, false, true) + b2; // (rows, classes)
            let loss = logits.cross_entropy(&targets, CrossEntropyOptions::default());
            black_box(loss.backward())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = elementwise, reductions, mlp_step
}
criterion_main!(benches);
