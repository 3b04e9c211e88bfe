//! `lm train`: AdamW on chunks sampled at random offsets of a text, with the translator's
//! progress bar, `metrics.jsonl` and loss plot, ending with held-out bits per character and a
//! sample.

use super::{CharLM, LmCheckpoint, LmConfig, LmEvalReport, Sampling, batch, evaluate, generate};
use crate::data::Vocab;
use crate::loss::{sequence_loss, token_hits};
use crate::nn::Ctx;
use crate::optim::{AdamConfig, AdamW, Optimizer, Schedule, WarmupLinear, grad_clip};
use crate::train::{Window, metrics_line, new_progress_bar, plot_loss};
use crate::{Error, Result};
use autograd::{ParamStore, Tape};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// How to train a language model: what `transformer lm train` fills in from its flags.
#[derive(Clone, Debug)]
pub struct LmTrainOptions {
    /// The model shape; `vocab_size` is set from the text.
    pub model: LmConfig,
    /// Optimizer steps.
    pub steps: usize,
    /// Chunks per batch.
    pub batch_size: usize,
    /// Seeds initialization, sampling of chunks and dropout.
    pub seed: u64,
    /// Peak learning rate, reached after `warmup` steps, then decayed linearly to 0.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// AdamW's decoupled weight decay, on every parameter.
    pub weight_decay: f64,
    /// Gradients are scaled down to this global norm when larger.
    pub clip_norm: f64,
    /// The share of the text held out for the final evaluation: its last characters.
    pub held_out_fraction: f64,
    /// Where the model directory, metrics and plot go.
    pub out: PathBuf,
    /// Steps between lines of `metrics.jsonl`.
    pub log_every: usize,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for LmTrainOptions {
    fn default() -> Self {
        LmTrainOptions {
            model: LmConfig::default(),
            steps: 1200,
            batch_size: 32,
            seed: 0,
            lr: 3e-3,
            warmup: 100,
            weight_decay: 0.01,
            clip_norm: 1.0,
            held_out_fraction: 0.1,
            out: PathBuf::from("runs/lm"),
            log_every: 50,
            progress: true,
        }
    }
}

impl LmTrainOptions {
    /// The text cut into the part trained on and the part held out (its last
    /// `held_out_fraction` of characters); an error if the first is shorter than one chunk.
    pub fn split<'a>(&self, text: &'a str) -> Result<(&'a str, &'a str)> {
        let n = text.chars().count();
        let keep = (n as f64 * (1.0 - self.held_out_fraction)).floor() as usize;
        if keep < self.model.max_len {
            return Err(Error::new(format!(
                "the text has {keep} characters to train on, fewer than one chunk of max_len = {}",
                self.model.max_len
            )));
        }
        let at = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
        Ok(text.split_at(at))
    }
}

/// What a language-model training run ends with.
#[derive(Clone, Debug)]
pub struct LmTrainSummary {
    /// Mean training loss over the first and the last logging interval.
    pub first_loss: f64,
    /// See `first_loss`.
    pub final_loss: f64,
    /// The loss on the held-out text.
    pub held_out: LmEvalReport,
    /// Wall-clock seconds of the training steps.
    pub seconds: f64,
    /// A sampled continuation of [`SAMPLE_PROMPT`].
    pub sample: String,
}

/// The prompt of the sample shown at the end of training.
pub const SAMPLE_PROMPT: &str = "pub fn ";

/// The optimizer of `lm train`: AdamW with β2 0.99 (as nanoGPT), ε 1e-8.
pub fn lm_optimizer(opts: &LmTrainOptions) -> AdamW {
    AdamW::new(AdamConfig { lr: opts.lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: opts.weight_decay })
}

/// Trains a model on the first part of `text` and evaluates on the rest; writes the model
/// directory, `metrics.jsonl` and `loss.png` under `opts.out`.
pub fn train(opts: &LmTrainOptions, text: &str) -> Result<LmTrainSummary> {
    let vocab = Vocab::from_texts([text]);
    let cfg = LmConfig { vocab_size: vocab.len(), ..opts.model.clone() };
    cfg.validate().map_err(Error::new)?;
    let (train_text, held_out) = opts.split(text)?;
    let train_ids = vocab.encode(train_text);
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::file(&opts.out, e))?;
    let mut params = ParamStore::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let model = CharLM::new(&cfg, &mut params, &mut rng);
    let mut optimizer = lm_optimizer(opts);
    let warmup = if opts.warmup < opts.steps { opts.warmup } else { opts.steps / 10 };
    let schedule = WarmupLinear::new(opts.lr, warmup, opts.steps);
    let mut ctx = Ctx::train(opts.seed ^ 0x5eed);
    let metrics_path = opts.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| Error::file(&metrics_path, e))?;
    let bar = if opts.progress { new_progress_bar(opts.steps) } else { ProgressBar::hidden() };
    let start = Instant::now();
    let mut window = Window::new();
    let mut curve = Vec::new();
    for step in 1..=opts.steps {
        let chunks: Vec<super::Chunk> = (0..opts.batch_size)
            .map(|_| {
                let offset = rng.random_range(0..=train_ids.len() - cfg.max_len);
                super::Chunk::new(&train_ids[offset..offset + cfg.max_len])
            })
            .collect();
        let (inputs, targets, shape) = batch(&chunks);
        let tape = Tape::new();
        let logits = model.forward(&tape, &inputs, shape, &mut ctx); // (batch, max_len, vocab)
        let loss_var = sequence_loss(logits, &targets, 0.0);
        let (hits, counted) = token_hits(&logits.value(), &targets);
        let loss = f64::from(loss_var.value().item());
        let grads = loss_var.backward();
        let clip = grad_clip(&grads, &params, opts.clip_norm);
        if !loss.is_finite() || !clip.total_norm.is_finite() {
            bar.finish_and_clear();
            let saved = opts.out.join("model");
            LmCheckpoint::save(&saved, &model, &params, &vocab)?;
            return Err(Error::run_failed(format!(
                "training diverged at step {step}: the loss is {loss} and the gradient norm {}; try a lower \
                 learning rate (AUTOGRAD_CHECK=1 names the op that made the first NaN)\nthe model from before step \
                 {step} is saved in {}",
                clip.total_norm,
                saved.display()
            )));
        }
        optimizer.set_lr(schedule.lr(step));
        optimizer.step_scaled(&params, &grads, clip.scale);
        window.add(loss, hits, counted, shape[0] * shape[1]);
        if step % opts.log_every == 0 || step == opts.steps {
            let (mean, acc, tps) = window.take();
            let line = metrics_line(step, mean, acc, schedule.lr(step), tps, start.elapsed().as_secs_f64());
            writeln!(metrics, "{line}").map_err(|e| Error::file(&metrics_path, e))?;
            curve.push((step, mean));
            bar.set_message(format!("loss {mean:.3}  acc {:.1}%  {tps:.0} tok/s", acc * 100.0));
        }
        bar.inc(1);
    }
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    LmCheckpoint::save(&opts.out.join("model"), &model, &params, &vocab)?;
    if let Err(e) = plot_loss(&opts.out.join("loss.png"), &curve) {
        eprintln!("warning: could not draw {}: {e}", opts.out.join("loss.png").display());
    }
    let held_out = evaluate(&model, &vocab, held_out);
    writeln!(
        metrics,
        "{}",
        serde_json::json!({ "step": opts.steps, "held_out_loss": held_out.loss, "held_out_bits_per_char": held_out.bits_per_char })
    )
    .map_err(|e| Error::file(&metrics_path, e))?;
    // The sample's prompt, cut to leave room for at least one new character.
    let prompt: Vec<usize> = vocab.encode(SAMPLE_PROMPT).into_iter().take(cfg.max_len - 1).collect();
    let new = cfg.max_len - prompt.len();
    let sampling = Sampling { temperature: 0.8, top_k: Some(20) };
    let out = generate(
        &model,
        std::slice::from_ref(&prompt),
        new,
        sampling,
        &mut rand::rngs::StdRng::seed_from_u64(opts.seed),
        true,
    );
    Ok(LmTrainSummary {
        first_loss: curve.first().map_or(f64::NAN, |c| c.1),
        final_loss: curve.last().map_or(f64::NAN, |c| c.1),
        held_out,
        seconds,
        sample: SAMPLE_PROMPT.chars().take(prompt.len()).chain(vocab.decode(&out.tokens[0]).chars()).collect(),
    })
}
