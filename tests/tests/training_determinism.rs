//! A whole training step — forward, loss, backward, gradient clipping and Adam — leaves the
//! parameters bit-identical on one and on two threads: unsplit, at a size where the products,
//! the attention batches and the row kernels all run in parallel (checked), and split into
//! shards that run side by side, each with its own dropout generator.

use autograd::{ParallelRuns, ParamStore, parallel_runs};
use rand::{Rng, SeedableRng};
use transformer::ModelConfig;
use transformer::data::Batch;
use transformer::model::Seq2Seq;
use transformer::nn::Ctx;
use transformer::optim::Adam;
use transformer::train::{StepSettings, train_step};

/// Three steps of the reference "small" shape (d_model 128, post-LN, dropout on, so the dropout
/// masks are covered too) with the batch split into `shards`; returns the losses, every
/// parameter and the parallel runs.
fn three_steps(shards: usize) -> (Vec<f64>, Vec<autograd::Tensor<f32>>, ParallelRuns) {
    let cfg = ModelConfig {
        vocab_size: 64,
        d_model: 128,
        n_heads: 4,
        n_encoder_layers: 2,
        n_decoder_layers: 2,
        d_ff: 512,
        dropout: 0.1,
        norm_first: false,
        ..ModelConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut params = ParamStore::new();
    let model = Seq2Seq::new(&cfg, &mut params, &mut rng);
    let (batch_size, len) = (32, 32);
    let mut tokens = |n: usize| (0..n).map(|_| rng.random_range(4..cfg.vocab_size)).collect::<Vec<_>>();
    let batch = Batch {
        batch_size,
        src_len: len,
        tgt_len: len,
        src: tokens(batch_size * len),
        tgt_in: tokens(batch_size * len),
        tgt_out: tokens(batch_size * len),
    };
    let mut adam = Adam::paper(1e-3);
    let mut ctx = Ctx::train(7);
    let start = parallel_runs();
    let settings = StepSettings { label_smoothing: 0.1, clip_norm: 1.0, shards };
    let losses = (0..3).map(|_| train_step(&model, &params, &mut adam, &batch, &settings, &mut ctx).0).collect();
    let runs = parallel_runs() - start;
    (losses, params.iter().map(|p| p.value()).collect(), runs)
}

#[test]
fn a_training_step_is_bit_identical_on_one_and_two_threads() {
    let (runs, _) = same_bits_on_one_and_two_threads(1);
    assert!(
        runs.split_products > 0 && runs.batched_products > 0 && runs.rows > 0 && runs.elementwise > 0,
        "the step did not run its kernels in parallel: {runs:?}"
    );
}

#[test]
fn a_step_split_into_shards_is_bit_identical_on_one_and_two_threads() {
    let unsplit = three_steps(1).0;
    for shards in [2, 3] {
        let (_, losses) = same_bits_on_one_and_two_threads(shards);
        // Other dropout masks than the unsplit step's, so other losses, but close ones.
        for (a, b) in losses.iter().zip(&unsplit) {
            assert!((a - b).abs() < 0.05 * b.abs(), "{shards} shards: {losses:?} against {unsplit:?}");
        }
    }
}

/// Checks that [`three_steps`] gives the same bits on pools of one and two threads; returns the
/// two-thread run's parallel runs and losses.
fn same_bits_on_one_and_two_threads(shards: usize) -> (ParallelRuns, Vec<f64>) {
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("thread pool");
    let (losses1, params1, _) = pool(1).install(|| three_steps(shards));
    let (losses2, params2, runs) = pool(2).install(|| three_steps(shards));
    assert!(losses1.iter().all(|l| l.is_finite()), "{losses1:?}");
    assert_eq!(
        losses1.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
        losses2.iter().map(|l| l.to_bits()).collect::<Vec<_>>()
    );
    let differ: Vec<usize> = (0..params1.len()).filter(|&i| !params1[i].bit_eq(&params2[i])).collect();
    assert!(differ.is_empty(), "{shards} shards: parameters {differ:?} depend on the thread count");
    (runs, losses2)
}
