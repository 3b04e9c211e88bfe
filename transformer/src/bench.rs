//! Timing full training steps (forward, loss, backward, Adam) on random tokens: what
//! `transformer bench` reports.

use crate::config::ModelConfig;
use crate::data::Batch;
use crate::loss::sequence_loss;
use crate::model::Seq2Seq;
use crate::nn::Ctx;
use crate::optim::Adam;
use crate::train::{StepSettings, train_step};
use autograd::{MemoryReport, ParamStore, Tape};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Median time of a training step and what it amounts to.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Median milliseconds per step.
    pub ms_per_step: f64,
    /// batch · tgt_len / median seconds per step.
    pub tokens_per_s: f64,
    /// Number of trainable values.
    pub params: usize,
}

/// The model (seeded) and one batch of random token ids.
fn setup(
    cfg: &ModelConfig,
    batch_size: usize,
    src_len: usize,
    tgt_len: usize,
) -> (Seq2Seq<f32>, ParamStore<f32>, Batch) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut params = ParamStore::new();
    let model = Seq2Seq::new(cfg, &mut params, &mut rng);
    let mut token = || rng.random_range(4..cfg.vocab_size);
    let src = (0..batch_size * src_len).map(|_| token()).collect();
    let tgt_in = (0..batch_size * tgt_len).map(|_| token()).collect();
    let tgt_out = (0..batch_size * tgt_len).map(|_| token()).collect();
    (model, params, Batch { batch_size, src_len, tgt_len, src, tgt_in, tgt_out })
}

/// Times `steps` training steps (after 3 warm-up steps) of a model built from `cfg` on random
/// token ids, with dropout as configured and Adam.
pub fn run(
    cfg: &ModelConfig,
    batch_size: usize,
    src_len: usize,
    tgt_len: usize,
    steps: usize,
    shards: usize,
) -> BenchResult {
    let (model, params, batch) = setup(cfg, batch_size, src_len, tgt_len);
    let settings = StepSettings { shards, ..StepSettings::default() };
    let mut optimizer = Adam::paper(1e-4);
    let mut ctx = Ctx::train(0);
    let mut times: Vec<f64> = (0..steps + 3)
        .map(|_| {
            let start = Instant::now();
            train_step(&model, &params, &mut optimizer, &batch, &settings, &mut ctx);
            start.elapsed().as_secs_f64()
        })
        .skip(3)
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    BenchResult {
        ms_per_step: (median * 1e4).round() / 10.0,
        tokens_per_s: (batch_size * tgt_len) as f64 / median,
        params: params.num_elements(),
    }
}

/// What the tape of one training step of this benchmark holds: the report at the end of the
/// forward pass (the loss computed), and the peak bytes during the backward pass. The batch runs
/// whole, on one tape; a step split into shards records each shard's share on a tape of its own.
pub fn step_memory(cfg: &ModelConfig, batch_size: usize, src_len: usize, tgt_len: usize) -> (MemoryReport, usize) {
    let (model, _params, batch) = setup(cfg, batch_size, src_len, tgt_len);
    let tape = Tape::new();
    tape.set_track_memory(true);
    let logits = model.forward(
        &tape,
        &batch.src,
        [batch_size, src_len],
        &batch.tgt_in,
        [batch_size, tgt_len],
        &mut Ctx::train(0),
    );
    let loss = sequence_loss(logits, &batch.tgt_out, 0.1);
    let forward = tape.memory();
    loss.backward();
    (forward, tape.memory().backward_peak.expect("memory tracking is on"))
}

/// Tokens per second of greedy generation by a language model: what `transformer bench
/// --decode` reports for one batch size, with or without the KV cache.
#[derive(Clone, Debug)]
pub struct DecodeResult {
    /// Sequences generated side by side.
    pub batch: usize,
    /// Whether earlier positions' keys and values were cached.
    pub cache: bool,
    /// batch · new tokens / median seconds of a whole generation.
    pub tokens_per_s: f64,
}

/// Times greedy generation of `new_tokens` tokens after a one-token prompt (plus `<bos>`), by a
/// model built from `cfg` with random weights: one warm-up run, then the median of `runs`.
pub fn decode(cfg: &crate::lm::LmConfig, batch: usize, new_tokens: usize, cache: bool, runs: usize) -> DecodeResult {
    use crate::lm::{CharLM, Sampling, generate};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut params = ParamStore::<f32>::new();
    let model = CharLM::new(cfg, &mut params, &mut rng);
    let prompts: Vec<Vec<usize>> = (0..batch).map(|i| vec![4 + i % (cfg.vocab_size - 4)]).collect();
    let mut times: Vec<f64> = (0..runs + 1)
        .map(|_| {
            let start = Instant::now();
            generate(&model, &prompts, new_tokens, Sampling::GREEDY, &mut rng, cache);
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    DecodeResult { batch, cache, tokens_per_s: (batch * new_tokens) as f64 / median }
}
