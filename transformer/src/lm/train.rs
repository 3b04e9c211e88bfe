//! `lm train`: AdamW on chunks sampled at random offsets of a text, with the translator's
//! progress bar, `metrics.jsonl` and loss plot, ending with held-out bits per character and a
//! sample.

use super::{CharLM, LmCheckpoint, LmConfig, LmEvalReport, Sampling, batch, evaluate, generate};
use crate::data::Vocab;
use crate::loss::{sequence_loss, token_hits};
use crate::nn::Ctx;
use crate::optim::{AdamConfig, AdamW, Optimizer, grad_clip};
use crate::session::{
    CHECKPOINT_DIR, Resumed, RngState, Session, State, checkpoint_files, find_checkpoint, fingerprint, resume_from,
    stored_run, write_dir_atomically,
};
use crate::train::{
    DEFAULT_SHARDS, ScheduleKind, StepGradients, accumulate, metrics_line, new_progress_bar, one_shard, plot_loss,
    run_shards, stopped,
};
use crate::{Error, Result};
use autograd::{ParamStore, Tape};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How to train a language model: what `transformer lm train` fills in from its flags.
///
/// Everything but the last four fields is saved in a checkpoint, and a resumed run takes its
/// settings from there ([`resume_options`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LmTrainOptions {
    /// The model shape; `vocab_size` is set from the text.
    pub model: LmConfig,
    /// The text: a file, or this program's own sources.
    pub text: TextSource,
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
    /// How the learning rate moves over the run.
    pub schedule: ScheduleKind,
    /// ε of label smoothing in the loss.
    pub label_smoothing: f64,
    /// AdamW's decoupled weight decay, on every parameter.
    pub weight_decay: f64,
    /// AdamW's β1.
    pub beta1: f64,
    /// AdamW's β2.
    pub beta2: f64,
    /// Gradients are scaled down to this global norm when larger.
    pub clip_norm: f64,
    /// Micro-batches per optimizer step, combined as one batch `accumulate` times larger.
    pub accumulate: usize,
    /// Shards each batch is split into, run side by side on the thread pool (see
    /// [`crate::train::run_shards`]). A checkpoint written before this setting existed ran one.
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// The share of the text held out for the final evaluation: its last characters.
    pub held_out_fraction: f64,
    /// Steps between lines of `metrics.jsonl`.
    pub log_every: usize,
    /// Steps between checkpoints (0: only at the end and when interrupted).
    pub save_every: usize,
    /// Steps between held-out evaluations in `metrics.jsonl` (0: only at the end).
    pub eval_every: usize,
    /// Where the model directory, checkpoint, metrics and plot go.
    #[serde(skip)]
    pub out: PathBuf,
    /// Show a progress bar.
    #[serde(skip)]
    pub progress: bool,
    /// Stop after this step as an interruption would (see [`crate::train::TrainOptions`]).
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// When this flag turns true, stop after the step under way, saving the checkpoint.
    #[serde(skip)]
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Default for LmTrainOptions {
    fn default() -> Self {
        LmTrainOptions {
            model: LmConfig::default(),
            text: TextSource::Builtin,
            steps: 1200,
            batch_size: 32,
            seed: 0,
            lr: 3e-3,
            warmup: 100,
            schedule: ScheduleKind::Linear,
            label_smoothing: 0.0,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            clip_norm: 1.0,
            accumulate: 1,
            shards: DEFAULT_SHARDS,
            held_out_fraction: 0.1,
            log_every: 50,
            save_every: 0,
            eval_every: 0,
            out: PathBuf::from("runs/lm"),
            progress: true,
            stop_after: None,
            interrupt: None,
        }
    }
}

/// The text a language model trains on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// The Rust sources and book this program was built from ([`super::BUILTIN_CORPUS`]).
    Builtin,
    /// A UTF-8 text file.
    File(PathBuf),
}

impl TextSource {
    /// The whole text.
    pub fn load(&self) -> Result<String> {
        match self {
            TextSource::Builtin => Ok(super::BUILTIN_CORPUS.to_string()),
            TextSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
                String::from_utf8(bytes).map_err(|e| {
                    Error::file(path, format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
                })
            }
        }
    }

    /// What the progress line calls it.
    pub fn describe(&self) -> String {
        match self {
            TextSource::Builtin => "this program's own sources".into(),
            TextSource::File(path) => path.display().to_string(),
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
    /// A sampled continuation of the prompt `"pub fn "` (`SAMPLE_PROMPT`).
    pub sample: String,
}

/// The prompt of the sample shown at the end of training.
pub const SAMPLE_PROMPT: &str = "pub fn ";

/// The optimizer of `lm train`: AdamW with ε 1e-8 and the options' β1, β2 (0.9 and 0.99 by
/// default, as nanoGPT) and weight decay.
pub fn lm_optimizer(opts: &LmTrainOptions) -> AdamW {
    AdamW::new(AdamConfig {
        lr: opts.lr,
        beta1: opts.beta1,
        beta2: opts.beta2,
        eps: 1e-8,
        weight_decay: opts.weight_decay,
    })
}

/// Trains a model on the first part of `text` and evaluates on the rest; writes under
/// `opts.out` the model directory `model/`, the checkpoint `checkpoint/` (at the end, every
/// `opts.save_every` steps and when stopped), `metrics.jsonl` and `loss.png`.
///
/// `text` must be what `opts.text.load()` gives.
pub fn train(opts: &LmTrainOptions, text: &str) -> Result<LmTrainSummary> {
    run(opts, text, None)
}

/// The settings of the language-model run whose checkpoint is in `out`, with `out` set: load
/// its text with `opts.text.load()` and pass both to [`resume`].
pub fn resume_options(out: &Path) -> Result<LmTrainOptions> {
    Ok(LmTrainOptions { out: out.to_path_buf(), ..stored_run::<LmTrainOptions, Position>(out, FAMILY)? })
}

/// Continues the run whose checkpoint is in `opts.out` to its `opts.steps`: on the same number
/// of threads, to the model and losses of an uninterrupted run, bit for bit.
pub fn resume(opts: &LmTrainOptions, text: &str) -> Result<LmTrainSummary> {
    let dir = find_checkpoint(&opts.out)?;
    run(opts, text, Some(&dir))
}

/// `state.json`'s name for this model family.
const FAMILY: &str = "language_model";

/// Where a language-model run stands in its text: chunks are drawn at random offsets, so the
/// generator that draws them is the position.
#[derive(Serialize, Deserialize)]
struct Position {
    /// A hash of the whole text.
    fingerprint: String,
    chunks: RngState,
}

impl crate::session::DataPosition for Position {
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn run(opts: &LmTrainOptions, text: &str, checkpoint: Option<&Path>) -> Result<LmTrainSummary> {
    let vocab = Vocab::from_texts([text]);
    let cfg = LmConfig { vocab_size: vocab.len(), ..opts.model.clone() };
    cfg.validate().map_err(Error::new)?;
    let (train_text, held_out) = opts.split(text)?;
    let train_ids = vocab.encode(train_text);
    let offsets = train_ids.len() - cfg.max_len + 1;
    if opts.batch_size > offsets {
        return Err(Error::flag(
            "--batch-size",
            format!(
                "{} chunks is more than the {offsets} places a chunk can start in the training text",
                opts.batch_size
            ),
        ));
    }
    let fingerprint = fingerprint([text]);
    let mut params = ParamStore::<f32>::new();
    let mut rng = ChaCha12Rng::seed_from_u64(opts.seed);
    let model = CharLM::new(&cfg, &mut params, &mut rng);
    let mut optimizer = lm_optimizer(opts);
    let warmup = if opts.warmup < opts.steps { opts.warmup } else { opts.steps / 10 };
    let schedule = opts.schedule.build(opts.lr, warmup, opts.steps, cfg.d_model);
    let mut ctx = Ctx::train(opts.seed ^ 0x5eed);
    let (mut session, done) = match checkpoint {
        None => (Session::start(&opts.out, opts.interrupt.clone())?, 0),
        Some(dir) => {
            let back: Resumed<Position> = resume_from::<LmTrainOptions, _>(
                dir,
                FAMILY,
                &opts.out,
                opts.interrupt.clone(),
                (fingerprint.as_str(), format!("another text than {} holds", opts.text.describe())),
                &vocab,
                &params,
                &mut optimizer,
            )?;
            ctx.rng = back.dropout;
            rng = back.data.chunks.restore().map_err(|e| Error::file(&dir.join("state.json"), e))?;
            (back.session, back.step)
        }
    };
    // The settings as saved: the model's vocab_size is the data's.
    let run = LmTrainOptions { model: cfg.clone(), ..opts.clone() };
    let save_checkpoint =
        |session: &Session, step: usize, complete: bool, optimizer: &AdamW, ctx: &Ctx, rng: &ChaCha12Rng| {
            let optimizer = optimizer.state(&params);
            let rngs = [("dropout".to_string(), RngState::of(&ctx.rng))].into();
            let progress = session.progress(step, &optimizer, rngs, complete)?;
            let position = Position { fingerprint: fingerprint.clone(), chunks: RngState::of(rng) };
            let files = checkpoint_files(
                (cfg.to_json(), &vocab, &params),
                &optimizer,
                &State::new(FAMILY, &run, progress, &position),
            );
            write_dir_atomically(&opts.out.join(CHECKPOINT_DIR), &files)
        };
    let bar = if opts.progress { new_progress_bar(opts.steps) } else { ProgressBar::hidden() };
    bar.set_position(done as u64);
    for step in done + 1..=opts.steps {
        let _awake = autograd::keep_workers_awake(); // a step is many short kernels: no sleeping between them
        let mut micro = Vec::with_capacity(opts.accumulate.max(1));
        for _ in 0..opts.accumulate.max(1) {
            let chunks: Vec<super::Chunk> = (0..opts.batch_size)
                .map(|_| {
                    let offset = rng.random_range(0..=train_ids.len() - cfg.max_len);
                    super::Chunk::new(&train_ids[offset..offset + cfg.max_len])
                })
                .collect();
            // The shards are combined at once: a step holds one set of gradients per micro-batch.
            let shards = run_shards(chunks.len(), opts.shards, &mut ctx, |rows, ctx| {
                let (inputs, targets, shape) = batch(&chunks[rows]);
                let tape = Tape::new();
                let logits = model.forward(&tape, &inputs, shape, ctx); // (batch, max_len, vocab)
                let loss = sequence_loss(logits, &targets, opts.label_smoothing);
                let (hits, counted) = token_hits(&logits.value(), &targets);
                let value = f64::from(loss.value().item());
                StepGradients { loss: value, hits, counted, grads: loss.backward() }
            });
            micro.push(accumulate(shards, &params));
        }
        let StepGradients { loss, hits, counted, grads } = accumulate(micro, &params);
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
        session.window.add(loss, hits, counted, opts.accumulate.max(1) * opts.batch_size * cfg.max_len);
        if step % opts.log_every == 0 || step == opts.steps {
            let (mean, acc, tps) = session.window.take();
            session.log(&metrics_line(step, mean, acc, schedule.lr(step), tps, session.elapsed()))?;
            session.curve.push((step, mean));
            bar.set_message(format!("loss {mean:.3}  acc {:.1}%  {tps:.0} tok/s", acc * 100.0));
        }
        if opts.eval_every > 0 && step % opts.eval_every == 0 && step != opts.steps {
            let report = evaluate(&model, &vocab, held_out);
            session.log(&serde_json::json!({ "step": step, "held_out_loss": report.loss, "held_out_bits_per_char": report.bits_per_char }))?;
        }
        bar.inc(1);
        let stop = session.interrupted() || opts.stop_after == Some(step);
        if stop || (opts.save_every > 0 && step % opts.save_every == 0) {
            save_checkpoint(&session, step, false, &optimizer, &ctx, &rng)?;
        }
        if stop {
            bar.finish_and_clear();
            return Err(stopped(&opts.out, step, opts.steps, "lm train"));
        }
    }
    bar.finish();
    let seconds = session.elapsed();
    LmCheckpoint::save(&opts.out.join("model"), &model, &params, &vocab)?;
    let plot = opts.out.join("loss.png");
    if let Err(e) = plot_loss(&plot, &session.curve) {
        eprintln!("warning: could not draw {}: {e}", plot.display());
    }
    let held_out = evaluate(&model, &vocab, held_out);
    session.log(&serde_json::json!({ "step": opts.steps, "held_out_loss": held_out.loss, "held_out_bits_per_char": held_out.bits_per_char }))?;
    save_checkpoint(&session, opts.steps, true, &optimizer, &ctx, &rng)?;
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
        first_loss: session.curve.first().map_or(f64::NAN, |c| c.1),
        final_loss: session.curve.last().map_or(f64::NAN, |c| c.1),
        held_out,
        seconds,
        sample: SAMPLE_PROMPT.chars().take(prompt.len()).chain(vocab.decode(&out.tokens[0]).chars()).collect(),
    })
}
