//! What the benchmarks share: the named GEMM shape table and a warm-up-then-median timer.
//!
//! The criterion benches in `benches/` and the `gemm_table` binary read the same table, and
//! `compare_matmul.py` repeats it for PyTorch; change them together.

use autograd::Tensor;
use rand::Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One matrix product `op(A) · op(B)` as the Transformer (or a plain square test) runs it.
#[derive(Clone, Copy, Debug)]
pub struct GemmShape {
    /// Label printed in every table; `name MxKxN`, with the batch as `B x (MxKxN)`.
    pub name: &'static str,
    /// Independent products in one call; 1 means a plain 2-D matmul.
    pub batch: usize,
    /// Rows of the output.
    pub m: usize,
    /// The inner (summed) dimension.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    /// A is stored `[k, m]` and read transposed, as `xᵀ·g` in a weight gradient.
    pub ta: bool,
    /// B is stored `[n, k]` and read transposed, as `x·Wᵀ` with PyTorch's `[out, in]` weights.
    pub tb: bool,
}

impl GemmShape {
    const fn plain(name: &'static str, m: usize, k: usize, n: usize) -> Self {
        GemmShape { name, batch: 1, m, k, n, ta: false, tb: false }
    }

    /// Floating-point operations of one call: a multiply and an add per term, 2·B·M·N·K.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.m * self.k * self.n) as u64
    }

    /// Random operands in their stored layout (transposed ones stored transposed).
    pub fn operands(&self, rng: &mut impl Rng) -> (Tensor<f32>, Tensor<f32>) {
        let a = if self.ta { [self.k, self.m] } else { [self.m, self.k] };
        let b = if self.tb { [self.n, self.k] } else { [self.k, self.n] };
        let with_batch = |dims: [usize; 2]| -> Vec<usize> {
            if self.batch == 1 { dims.to_vec() } else { vec![self.batch, dims[0], dims[1]] }
        };
        (Tensor::randn(with_batch(a), 0.0, 1.0, rng), Tensor::randn(with_batch(b), 0.0, 1.0, rng))
    }

    /// The product, exactly the call the model makes.
    pub fn run(&self, a: &Tensor<f32>, b: &Tensor<f32>) -> Tensor<f32> {
        a.matmul_t(b, self.ta, self.tb)
    }
}

/// Square products, then the products of one training step of the default Transformer
/// (d_model 128, 4 heads of d_k 32, d_ff 512, vocabulary 40) on 64 sequences of 32 tokens,
/// so batch·seq = 2048 rows.
pub const GEMM_SHAPES: &[GemmShape] = &[
    GemmShape::plain("square 64", 64, 64, 64),
    GemmShape::plain("square 128", 128, 128, 128),
    GemmShape::plain("square 256", 256, 256, 256),
    GemmShape::plain("square 512", 512, 512, 512),
    GemmShape::plain("square 1024", 1024, 1024, 1024),
    GemmShape::plain("square 2048", 2048, 2048, 2048),
    // (batch·seq, d_model) · (d_model, 3·d_model): Q, K and V in one product.
    GemmShape::plain("qkv 2048x128x384", 2048, 128, 384),
    // (batch·seq, d_model) · (d_model, d_ff)
    GemmShape::plain("ffn_up 2048x128x512", 2048, 128, 512),
    // (batch·seq, d_ff) · (d_ff, d_model)
    GemmShape::plain("ffn_down 2048x512x128", 2048, 512, 128),
    // The same product as a Linear layer runs it: weight stored (d_ff, d_model), read as Wᵀ.
    GemmShape { name: "ffn_up x*W^T 2048x128x512", batch: 1, m: 2048, k: 128, n: 512, ta: false, tb: true },
    // Its weight gradient in backward: xᵀ·g, (d_model, batch·seq) · (batch·seq, d_ff).
    GemmShape { name: "ffn_up dW x^T*g 128x2048x512", batch: 1, m: 128, k: 2048, n: 512, ta: true, tb: false },
    // Output projection to the vocabulary: (batch·seq, d_model) · (vocab, d_model)ᵀ.
    GemmShape { name: "logits x*W^T 2048x128x40", batch: 1, m: 2048, k: 128, n: 40, ta: false, tb: true },
    // (batch·heads, T, d_k) · (batch·heads, T, d_k)ᵀ: attention scores Q·Kᵀ.
    GemmShape { name: "attn_scores 64x(32x32x32)", batch: 64, m: 32, k: 32, n: 32, ta: false, tb: true },
    // (batch·heads, T, T) · (batch·heads, T, d_k): attention-weighted values P·V.
    GemmShape { name: "attn_values 64x(32x32x32)", batch: 64, m: 32, k: 32, n: 32, ta: false, tb: false },
];

/// How long to run the function before measuring: lets caches, the allocator and the thread
/// pool settle, and estimates the time of one call.
pub const WARMUP: Duration = Duration::from_millis(200);

/// Each repetition runs the function enough times to last at least this long, so a
/// microsecond-sized call is not measured at the clock's resolution.
pub const MIN_REPETITION: Duration = Duration::from_millis(5);

/// Runs `f` for [`WARMUP`], then `reps` repetitions of at least [`MIN_REPETITION`] each, and
/// returns the median time of one call. `compare_matmul.py` measures PyTorch the same way.
pub fn median_time<R>(reps: usize, mut f: impl FnMut() -> R) -> Duration {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 2 || start.elapsed() < WARMUP {
        black_box(f());
        calls += 1;
    }
    let per_call = start.elapsed() / calls;
    let inner = (MIN_REPETITION.as_secs_f64() / per_call.as_secs_f64().max(1e-9)).ceil().max(1.0) as u32;
    let mut times: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                black_box(f());
            }
            t.elapsed() / inner
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// GFLOP/s of `flops` operations done in `time`.
pub fn gflops(flops: u64, time: Duration) -> f64 {
    flops as f64 / time.as_secs_f64() / 1e9
}
