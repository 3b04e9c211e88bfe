//! The training loop: batches in, Adam steps out, with a progress bar, `metrics.jsonl`, a
//! loss plot, and a held-out evaluation at the end.

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::data::{Batch, Batcher, BatcherPosition, DataSource, Example, TrainData, Vocab, encode_source};
use crate::decode::greedy;
use crate::loss::{sequence_loss, token_hits};
use crate::model::Seq2Seq;
use crate::nn::Ctx;
use crate::optim::{Adam, AdamConfig, AdamW, Constant, Noam, Optimizer, Schedule, WarmupLinear, grad_clip};
use crate::session::{
    CHECKPOINT_DIR, Resumed, RngState, Session, State, checkpoint_files, find_checkpoint, resume_from, stored_run,
    write_dir_atomically,
};
use crate::{Error, Result};
use autograd::{Gradients, ParamStore, Tape};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How to train: what `transformer train` fills in from its flags.
///
/// Everything but the last four fields is saved in a checkpoint, and a resumed run takes its
/// settings from there ([`resume_options`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The model shape; `vocab_size` is set from the data.
    pub model: ModelConfig,
    /// The examples: a built-in task or a TSV file.
    pub data: DataSource,
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Seeds the data of a task, initialization, batching and dropout.
    pub seed: u64,
    /// Peak learning rate, reached after `warmup` steps, then decayed linearly to 0.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// ε of label smoothing in the loss.
    pub label_smoothing: f64,
    /// Gradients are scaled down to this global norm when larger.
    pub clip_norm: f64,
    /// How the learning rate moves over the run.
    pub schedule: ScheduleKind,
    /// Micro-batches per optimizer step: their gradients are combined into the gradient of one
    /// batch `accumulate` times larger (see [`accumulate`]).
    pub accumulate: usize,
    /// Shards each batch is split into, their passes run side by side on the thread pool (see
    /// [`run_shards`]). A checkpoint written before this setting existed ran one.
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// Decoupled weight decay λ: above 0 the optimizer is AdamW, at 0 Adam.
    pub weight_decay: f64,
    /// Adam's β1, the decay of its running mean of gradients.
    pub beta1: f64,
    /// Adam's β2, the decay of its running mean of squared gradients.
    pub beta2: f64,
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
    /// Stop after this step as an interruption would: save the checkpoint and return
    /// [`Error::interrupted`]. For splitting a run into sessions.
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// When this flag turns true (a Ctrl-C handler sets it), the run stops after the step under
    /// way, as with `stop_after`.
    #[serde(skip)]
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            model: ModelConfig::default(),
            data: DataSource::Task("dates".into()),
            steps: 3000,
            batch_size: 64,
            seed: 0,
            lr: 3e-3,
            warmup: 200,
            label_smoothing: 0.1,
            clip_norm: 1.0,
            schedule: ScheduleKind::Linear,
            weight_decay: 0.0,
            accumulate: 1,
            shards: DEFAULT_SHARDS,
            beta1: 0.9,
            beta2: 0.98,
            log_every: 50,
            save_every: 0,
            eval_every: 0,
            out: PathBuf::from("runs/dates"),
            progress: true,
            stop_after: None,
            interrupt: None,
        }
    }
}

impl TrainOptions {
    /// The optimizer these options ask for: Adam with the paper's ε, AdamW when weight decay is on.
    pub fn optimizer(&self) -> Box<dyn Optimizer> {
        let adam = AdamConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.weight_decay,
            ..AdamConfig::paper(self.lr)
        };
        if self.weight_decay > 0.0 { Box::new(AdamW::new(adam)) } else { Box::new(Adam::new(adam)) }
    }

    /// The learning-rate schedule. A run shorter than the warm-up warms up over its first
    /// tenth instead.
    pub fn lr_schedule(&self, d_model: usize) -> Box<dyn Schedule> {
        let warmup = if self.warmup < self.steps { self.warmup } else { self.steps / 10 };
        self.schedule.build(self.lr, warmup, self.steps, d_model)
    }
}

/// The learning-rate schedules `train --schedule` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warm-up to the peak, then linear decay to 0 at the last step ([`WarmupLinear`]).
    Linear,
    /// The paper's warm-up then 1/√step decay ([`Noam`]), scaled so its peak is the given rate.
    Noam,
    /// The peak rate at every step, no warm-up ([`Constant`]).
    Constant,
}

impl ScheduleKind {
    /// `linear`, `noam` or `constant`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(ScheduleKind::Linear),
            "noam" => Some(ScheduleKind::Noam),
            "constant" => Some(ScheduleKind::Constant),
            _ => None,
        }
    }

    /// The schedule peaking at `peak` (after `warmup` steps, except `Constant`) over `steps`.
    pub fn build(self, peak: f64, warmup: usize, steps: usize, d_model: usize) -> Box<dyn Schedule> {
        match self {
            ScheduleKind::Linear => Box::new(WarmupLinear::new(peak, warmup, steps)),
            // Noam peaks at factor·(d_model·warmup)^-0.5 at step = warmup.
            ScheduleKind::Noam => {
                let warmup = warmup.max(1);
                Box::new(Noam::new(peak * ((d_model * warmup) as f64).sqrt(), d_model, warmup))
            }
            ScheduleKind::Constant => Box::new(Constant(peak)),
        }
    }
}

/// What a training run ends with.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Mean loss over the last logging interval.
    pub final_loss: f64,
    /// Mean loss over the first logging interval.
    pub first_loss: f64,
    /// Exact match of greedy decoding on the held-out examples.
    pub held_out_exact_match: f64,
    /// Wall-clock seconds of the training steps.
    pub seconds: f64,
    /// A few held-out examples: (source, expected, produced).
    pub samples: Vec<(String, String, String)>,
}

/// One line of `metrics.jsonl`.
pub(crate) fn metrics_line(
    step: usize,
    loss: f64,
    acc: f64,
    lr: f64,
    tokens_per_s: f64,
    elapsed: f64,
) -> serde_json::Value {
    serde_json::json!({
        "step": step, "loss": loss, "token_accuracy": acc, "lr": lr,
        "tokens_per_s": tokens_per_s.round(), "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
    })
}

/// What the forward and backward pass of one batch give.
pub struct StepGradients {
    /// The mean (label-smoothed) cross-entropy of the batch.
    pub loss: f64,
    /// Target tokens whose most likely prediction is right.
    pub hits: usize,
    /// Target tokens counted (not padding).
    pub counted: usize,
    /// The gradients of the loss.
    pub grads: Gradients<f32>,
}

/// The forward pass, the loss and the backward pass of one batch, recorded on `tape` (so the
/// caller chooses its checks, such as [`Tape::set_check_finite`]).
pub fn forward_backward(
    tape: &Tape<f32>,
    model: &Seq2Seq<f32>,
    batch: &Batch,
    label_smoothing: f64,
    ctx: &mut Ctx,
) -> StepGradients {
    let logits = model.forward(
        tape,
        &batch.src,
        [batch.batch_size, batch.src_len],
        &batch.tgt_in,
        [batch.batch_size, batch.tgt_len],
        ctx,
    );
    let loss = sequence_loss(logits, &batch.tgt_out, label_smoothing);
    let (hits, counted) = token_hits(&logits.value(), &batch.tgt_out);
    let grads = loss.backward();
    StepGradients { loss: loss.value().item() as f64, hits, counted, grads }
}

/// Shards a training step splits its batch into by default: two, whatever the number of
/// threads, so that a run gives the same bits on any number of them (see [`run_shards`]).
pub const DEFAULT_SHARDS: usize = 2;

/// What the `shards` setting of a checkpoint written before it existed was.
pub(crate) fn one_shard() -> usize {
    1
}

/// Runs `pass(rows, ctx)` on each of `shards` consecutive ranges of a batch's `rows`, side by
/// side on the thread pool, and returns the results in order.
///
/// A small model's step is many short kernels, too short to be worth splitting between threads
/// one by one: the threads then spend much of the step handing work over and waiting. Split into
/// shards whose forward and backward passes run whole on different threads, the same step keeps
/// every thread busy. Each shard is recorded on its own tape; [`accumulate`] combines their
/// gradients into the batch's, which equals the unsplit pass's up to float rounding.
///
/// The ranges are as equal as can be (the first `rows % shards` one row longer); fewer shards
/// than asked are used when there are fewer rows. With one shard, `pass` gets `ctx` itself, so
/// the step is exactly the unsplit one. With more, each shard draws dropout from a generator of
/// its own, seeded in shard order from `ctx`'s: the result depends on the number of shards but
/// never on the number of threads, which only decides how many shards run at once.
///
/// Meant for training passes: a model that keeps something of its last forward pass (attention
/// weights, in evaluation mode) would keep one shard's, whichever finished last.
pub fn run_shards<R: Send>(
    rows: usize,
    shards: usize,
    ctx: &mut Ctx,
    pass: impl Fn(std::ops::Range<usize>, &mut Ctx) -> R + Sync,
) -> Vec<R> {
    use rand::RngCore;
    use rayon::prelude::*;
    let n = shards.clamp(1, rows.max(1));
    if n == 1 {
        return vec![pass(0..rows, ctx)];
    }
    let mut parts: Vec<(std::ops::Range<usize>, Ctx)> = (0..n)
        .map(|i| {
            let start = i * (rows / n) + i.min(rows % n);
            let len = rows / n + usize::from(i < rows % n);
            let rng = rand_chacha::ChaCha12Rng::seed_from_u64(ctx.rng.next_u64());
            (start..start + len, Ctx { training: ctx.training, rng })
        })
        .collect();
    parts.par_iter_mut().with_max_len(1).map(|(range, ctx)| pass(range.clone(), ctx)).collect()
}

/// The gradients of several micro-batches combined into those of the one batch they make up:
/// each micro-batch's mean loss and gradient weighted by its share of the counted (non-pad)
/// target tokens, so the result equals, up to float rounding, one forward and backward pass
/// over all their examples together (the loss is a mean over all their tokens).
///
/// # Panics
/// If `micro` is empty.
pub fn accumulate(micro: Vec<StepGradients>, params: &ParamStore<f32>) -> StepGradients {
    let total: usize = micro.iter().map(|m| m.counted).sum();
    let weight = |m: &StepGradients| if total == 0 { 0.0 } else { m.counted as f64 / total as f64 };
    let mut parts = micro.into_iter();
    let first = parts.next().expect("accumulate: at least one micro-batch");
    let w0 = weight(&first);
    let StepGradients { mut loss, mut hits, counted: mut counted_all, mut grads } = first;
    if w0 != 1.0 {
        loss *= w0;
        for p in params.iter() {
            if let Some(g) = grads.param_mut(p) {
                g.data_mut().iter_mut().for_each(|x| *x *= w0 as f32);
            }
        }
    }
    for m in parts {
        let w = weight(&m);
        (loss, hits, counted_all) = (loss + w * m.loss, hits + m.hits, counted_all + m.counted);
        for p in params.iter() {
            match (grads.param_mut(p), m.grads.param(p)) {
                (Some(sum), Some(g)) => {
                    sum.data_mut().iter_mut().zip(g.data()).for_each(|(s, &x)| *s += w as f32 * x);
                }
                (None, Some(_)) => panic!("accumulate: {} has a gradient in a later micro-batch only", p.name()),
                _ => {}
            }
        }
    }
    StepGradients { loss, hits, counted: counted_all, grads }
}

/// How [`train_step`] turns a batch into an update, besides the optimizer.
#[derive(Clone, Copy, Debug)]
pub struct StepSettings {
    /// ε of label smoothing in the loss.
    pub label_smoothing: f64,
    /// Gradients are scaled down to this global norm when larger.
    pub clip_norm: f64,
    /// Shards the batch is split into (see [`run_shards`]).
    pub shards: usize,
}

impl Default for StepSettings {
    /// [`TrainOptions`]' defaults: label smoothing 0.1, clipping at 1, [`DEFAULT_SHARDS`].
    fn default() -> Self {
        StepSettings { label_smoothing: 0.1, clip_norm: 1.0, shards: DEFAULT_SHARDS }
    }
}

/// The forward and backward passes of `batch` in `shards` shards (see [`run_shards`]), their
/// gradients combined into the batch's.
pub fn sharded_forward_backward(
    model: &Seq2Seq<f32>,
    params: &ParamStore<f32>,
    batch: &Batch,
    label_smoothing: f64,
    shards: usize,
    ctx: &mut Ctx,
) -> StepGradients {
    let parts = run_shards(batch.batch_size, shards, ctx, |rows, ctx| {
        forward_backward(&Tape::new(), model, &batch.rows(rows), label_smoothing, ctx)
    });
    accumulate(parts, params)
}

/// Runs one training step (forward, loss, backward, clipping, optimizer) and returns
/// (loss, correct, counted).
pub fn train_step(
    model: &Seq2Seq<f32>,
    params: &ParamStore<f32>,
    optimizer: &mut dyn Optimizer,
    batch: &Batch,
    settings: &StepSettings,
    ctx: &mut Ctx,
) -> (f64, usize, usize) {
    let _awake = autograd::keep_workers_awake(); // a step is many short kernels: no sleeping between them
    let step = sharded_forward_backward(model, params, batch, settings.label_smoothing, settings.shards, ctx);
    let clip = grad_clip(&step.grads, params, settings.clip_norm);
    optimizer.step_scaled(params, &step.grads, clip.scale);
    (step.loss, step.hits, step.counted)
}

/// The warning `train` prints after its first step when some parameters got no useful
/// gradient (see [`Gradients::coverage`]); `None` when all did.
pub fn coverage_warning(grads: &Gradients<f32>, params: &ParamStore<f32>) -> Option<String> {
    let coverage = grads.coverage(params);
    (!coverage.is_complete()).then(|| format!("warning: after the first step, {coverage}"))
}

/// Re-runs a step whose loss or gradients were not finite with the finite-value check on, and
/// says where the first NaN or infinity came from.
/// Each micro-batch is split into the step's shards again, so the dropout masks are the step's.
fn diagnose(model: &Seq2Seq<f32>, micro: &[Batch], label_smoothing: f64, shards: usize, mut ctx: Ctx) -> String {
    for batch in micro {
        let reports = run_shards(batch.batch_size, shards, &mut ctx, |rows, ctx| {
            let tape = Tape::new();
            tape.set_check_finite(true);
            autograd::catch_nonfinite(|| forward_backward(&tape, model, &batch.rows(rows), label_smoothing, ctx)).err()
        });
        if let Some(report) = reports.into_iter().flatten().next() {
            return report.to_string();
        }
    }
    "re-running the step with the finite-value check found every value finite".into()
}

/// Exact match of greedy decoding over `examples`, decoded in batches.
pub fn exact_match(model: &Seq2Seq<f32>, vocab: &Vocab, examples: &[Example]) -> (f64, Vec<String>) {
    let mut outputs = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(256) {
        let sources: Vec<Vec<usize>> = chunk.iter().map(|e| encode_source(vocab, &e.source)).collect();
        let max_len = chunk.iter().map(|e| e.target.chars().count()).max().unwrap_or(0) * 2 + 10;
        outputs.extend(greedy(model, &sources, max_len).iter().map(|ids| vocab.decode(ids)));
    }
    let hits = outputs.iter().zip(examples).filter(|(o, e)| **o == e.target).count();
    (hits as f64 / examples.len().max(1) as f64, outputs)
}

/// Trains a model on `data.train`, evaluates on `data.held_out`, and writes under `opts.out`
/// the model directory `model/`, the checkpoint `checkpoint/` (at the end, every
/// `opts.save_every` steps, and when stopped), `metrics.jsonl` and `loss.png`.
///
/// `data` must be what `opts.data.load(opts.seed)` gives.
pub fn train(opts: &TrainOptions, data: &TrainData) -> Result<TrainSummary> {
    run(opts, data, None)
}

/// The settings of the run whose checkpoint is in `out` (see [`crate::session`]), with `out`
/// set: load its data with `opts.data.load(opts.seed)` and pass both to [`resume`].
pub fn resume_options(out: &Path) -> Result<TrainOptions> {
    Ok(TrainOptions { out: out.to_path_buf(), ..stored_run::<TrainOptions, Position>(out, FAMILY)? })
}

/// Continues the run whose checkpoint is in `opts.out` to its `opts.steps`, appending to its
/// `metrics.jsonl`. On the same number of threads, it ends with the model an uninterrupted run
/// ends with, bit for bit, and logs the same losses.
pub fn resume(opts: &TrainOptions, data: &TrainData) -> Result<TrainSummary> {
    let dir = find_checkpoint(&opts.out)?;
    run(opts, data, Some(&dir))
}

/// `state.json`'s name for this model family.
const FAMILY: &str = "translator";

/// Where the translator's run stands in its data.
#[derive(Serialize, Deserialize)]
struct Position {
    /// [`TrainData::fingerprint`] of the examples trained on.
    fingerprint: String,
    batcher: BatcherPosition,
}

impl crate::session::DataPosition for Position {
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn run(opts: &TrainOptions, data: &TrainData, checkpoint: Option<&Path>) -> Result<TrainSummary> {
    let vocab = Vocab::from_examples(&[&data.train[..], &data.held_out].concat());
    let cfg = ModelConfig { vocab_size: vocab.len(), ..opts.model.clone() };
    cfg.validate().map_err(Error::new)?;
    let longest =
        data.train.iter().map(|e| e.source.chars().count().max(e.target.chars().count())).max().unwrap_or(0) + 1;
    if longest > cfg.max_len {
        return Err(Error::new(format!(
            "the data holds a sequence of {longest} tokens, longer than the model's max_len of {}",
            cfg.max_len
        )));
    }
    if opts.batch_size > data.train.len() {
        return Err(Error::flag(
            "--batch-size",
            format!("{} is more than the {} training examples", opts.batch_size, data.train.len()),
        ));
    }
    let mut params = ParamStore::new();
    let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(opts.seed));
    let mut batches = Batcher::new(&data.train, &vocab, opts.batch_size, opts.seed)?;
    let mut optimizer = opts.optimizer();
    let schedule = opts.lr_schedule(cfg.d_model);
    let mut ctx = Ctx::train(opts.seed ^ 0x5eed);
    let (mut session, done) = match checkpoint {
        None => (Session::start(&opts.out, opts.interrupt.clone())?, 0),
        Some(dir) => {
            let back: Resumed<Position> = resume_from::<TrainOptions, _>(
                dir,
                FAMILY,
                &opts.out,
                opts.interrupt.clone(),
                (data.fingerprint.as_str(), format!("other data than {} gives", opts.data.describe())),
                &vocab,
                &params,
                &mut *optimizer,
            )?;
            ctx.rng = back.dropout;
            batches.restore(&back.data.batcher).map_err(|e| Error::file(&dir.join("state.json"), e))?;
            (back.session, back.step)
        }
    };
    // The settings as saved: the model's vocab_size is the data's.
    let run = TrainOptions { model: cfg.clone(), ..opts.clone() };
    let save_checkpoint =
        |session: &Session, step: usize, complete: bool, optimizer: &dyn Optimizer, ctx: &Ctx, batches: &Batcher| {
            let optimizer = optimizer.state(&params);
            let rngs = [("dropout".to_string(), RngState::of(&ctx.rng))].into();
            let progress = session.progress(step, &optimizer, rngs, complete)?;
            let position = Position { fingerprint: data.fingerprint.clone(), batcher: batches.position() };
            let files = checkpoint_files(
                (cfg.to_json(), &vocab, &params),
                &optimizer,
                &State::new(FAMILY, &run, progress, &position),
            );
            write_dir_atomically(&opts.out.join(CHECKPOINT_DIR), &files)
        };
    let bar = progress_bar(opts);
    bar.set_position(done as u64);
    for step in done + 1..=opts.steps {
        let _awake = autograd::keep_workers_awake(); // as in train_step
        let micro: Vec<Batch> = (0..opts.accumulate.max(1)).map(|_| batches.next_batch()).collect();
        optimizer.set_lr(schedule.lr(step));
        let ctx_before = ctx.clone();
        // Each micro-batch's shards are combined at once, so a step holds one set of gradients
        // per micro-batch, as without shards.
        let parts = micro
            .iter()
            .map(|b| sharded_forward_backward(&model, &params, b, opts.label_smoothing, opts.shards, &mut ctx))
            .collect();
        let StepGradients { loss, hits, counted, grads } = accumulate(parts, &params);
        let clip = grad_clip(&grads, &params, opts.clip_norm);
        if !loss.is_finite() || !clip.total_norm.is_finite() {
            // Nothing of this step is applied: the parameters are still the last good ones.
            bar.finish_and_clear();
            let report = diagnose(&model, &micro, opts.label_smoothing, opts.shards, ctx_before);
            let saved = opts.out.join("model");
            Checkpoint::save(&saved, &model, &params, &vocab)?;
            return Err(Error::run_failed(format!(
                "training diverged at step {step}: the loss is {loss} and the gradient norm {}; \
                 try a lower learning rate\n{report}\nthe model from before step {step} is saved in {}",
                clip.total_norm,
                saved.display()
            )));
        }
        if step == 1
            && let Some(warning) = coverage_warning(&grads, &params)
        {
            bar.suspend(|| eprintln!("{warning}"));
        }
        optimizer.step_scaled(&params, &grads, clip.scale);
        session.window.add(loss, hits, counted, micro.iter().map(|b| b.batch_size * b.tgt_len).sum());
        if step % opts.log_every == 0 || step == opts.steps {
            let (mean, acc, tps) = session.window.take();
            session.log(&metrics_line(step, mean, acc, schedule.lr(step), tps, session.elapsed()))?;
            session.curve.push((step, mean));
            bar.set_message(format!("loss {mean:.3}  acc {:.1}%  {:.0} tok/s", acc * 100.0, tps));
        }
        if opts.eval_every > 0 && step % opts.eval_every == 0 && step != opts.steps {
            let (exact, _) = exact_match(&model, &vocab, &data.held_out);
            session.log(&serde_json::json!({ "step": step, "held_out_exact_match": exact }))?;
        }
        bar.inc(1);
        let stop = session.interrupted() || opts.stop_after == Some(step);
        if stop || (opts.save_every > 0 && step % opts.save_every == 0) {
            save_checkpoint(&session, step, false, &*optimizer, &ctx, &batches)?;
        }
        if stop {
            bar.finish_and_clear();
            return Err(stopped(&opts.out, step, opts.steps, "train"));
        }
    }
    bar.finish();
    let seconds = session.elapsed();
    Checkpoint::save(&opts.out.join("model"), &model, &params, &vocab)?;
    let plot = opts.out.join("loss.png");
    if let Err(e) = plot_loss(&plot, &session.curve) {
        eprintln!("warning: could not draw {}: {e}", plot.display());
    }
    let (held_out_exact_match, outputs) = exact_match(&model, &vocab, &data.held_out);
    session.log(&serde_json::json!({ "step": opts.steps, "held_out_exact_match": held_out_exact_match }))?;
    save_checkpoint(&session, opts.steps, true, &*optimizer, &ctx, &batches)?;
    let samples =
        data.held_out.iter().zip(outputs).take(8).map(|(e, o)| (e.source.clone(), e.target.clone(), o)).collect();
    Ok(TrainSummary {
        first_loss: session.curve.first().map_or(f64::NAN, |c| c.1),
        final_loss: session.curve.last().map_or(f64::NAN, |c| c.1),
        held_out_exact_match,
        seconds,
        samples,
    })
}

/// The error of a run stopped on request, saying how to continue it.
pub(crate) fn stopped(out: &Path, step: usize, steps: usize, command: &str) -> Error {
    Error::interrupted(format!(
        "stopped after step {step} of {steps}; the checkpoint is saved in {}: continue with `transformer {command} \
         --resume {}`",
        out.join(CHECKPOINT_DIR).display(),
        out.display()
    ))
}

fn progress_bar(opts: &TrainOptions) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    new_progress_bar(opts.steps)
}

/// The progress bar of `train` and `lm train`: steps, the latest figures, elapsed time and ETA.
pub(crate) fn new_progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
            .expect("a valid template"),
    );
    bar
}

/// Draws the loss curve as a PNG.
pub fn plot_loss(path: &Path, curve: &[(usize, f64)]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    if curve.is_empty() {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_step = curve.last().map_or(1, |c| c.0).max(1);
    let (lo, hi) = curve.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| (lo.min(c.1), hi.max(c.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption("training loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0..max_step, (lo * 0.9)..(hi * 1.05))?;
    chart.configure_mesh().x_desc("step").y_desc("cross-entropy (nats)").draw()?;
    chart.draw_series(LineSeries::new(curve.iter().copied(), &BLUE))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ScheduleKind, coverage_warning};

    use super::{StepGradients, accumulate, forward_backward, run_shards, sharded_forward_backward};
    use crate::data::{Batch, Example, Vocab};
    use crate::nn::Ctx;
    use crate::{ModelConfig, Seq2Seq};

    /// A small model and a batch of words to reverse.
    fn reversal(words: &[&str]) -> (Vec<Example>, Vocab, ParamStore<f32>, Seq2Seq<f32>) {
        let examples: Vec<Example> =
            words.iter().map(|s| Example::new(*s, s.chars().rev().collect::<String>())).collect();
        let vocab = Vocab::from_examples(&examples);
        let cfg = ModelConfig { vocab_size: vocab.len(), d_model: 16, n_heads: 2, d_ff: 32, ..ModelConfig::default() };
        let mut params = ParamStore::<f32>::new();
        let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(1));
        (examples, vocab, params, model)
    }

    /// `got` has `want`'s counts, and its loss and gradients up to float rounding.
    fn assert_same_step(got: &StepGradients, want: &StepGradients, params: &ParamStore<f32>, what: &str) {
        assert!(want.loss.is_finite(), "{what}: the reference loss is {}", want.loss);
        assert_eq!((got.counted, got.hits), (want.counted, want.hits), "{what}");
        assert!((got.loss - want.loss).abs() <= 1e-6 * want.loss, "{what}: {} vs {}", got.loss, want.loss);
        for p in params.iter() {
            let (a, b) = (got.grads.param(p).unwrap(), want.grads.param(p).unwrap());
            assert!(autograd::largest_magnitude(b).is_finite(), "{what}, {}: the reference is not finite", p.name());
            let scale = autograd::largest_magnitude(b).max(1e-30);
            let worst = autograd::max_relative_error(a, b, scale);
            assert!(worst.is_none_or(|w| w.error <= 1e-5), "{what}, {}: {worst:?}", p.name());
        }
    }

    /// Two micro-batches accumulated give the loss and gradients of the batch they make up.
    #[test]
    fn accumulated_micro_batches_equal_one_large_batch() {
        let (examples, vocab, params, model) = reversal(&["ab", "hello", "x", "reverse me", "tape", "qz"]);
        let run = |batch: &Batch| forward_backward(&Tape::new(), &model, batch, 0.1, &mut Ctx::train(0));
        let whole = run(&Batch::from_examples(&examples, &vocab));
        let parts = vec![
            run(&Batch::from_examples(&examples[..2], &vocab)),
            run(&Batch::from_examples(&examples[2..], &vocab)),
        ];
        assert_same_step(&accumulate(parts, &params), &whole, &params, "two micro-batches");
    }

    /// A batch split into shards gives the unsplit batch's loss and gradients: the same bits
    /// with one shard, up to rounding with more, including more shards than rows and uneven
    /// ones. And the shards are the batch's rows in order, with their lengths.
    #[test]
    fn sharded_passes_equal_the_unsplit_one() {
        let (examples, vocab, params, model) = reversal(&["ab", "hello", "x", "reverse me", "tape", "qz", "shard"]);
        let batch = Batch::from_examples(&examples, &vocab);
        let whole = forward_backward(&Tape::new(), &model, &batch, 0.1, &mut Ctx::train(0));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("thread pool");
        for shards in [1, 2, 3, 7, 50] {
            let split =
                pool.install(|| sharded_forward_backward(&model, &params, &batch, 0.1, shards, &mut Ctx::train(0)));
            assert_same_step(&split, &whole, &params, &format!("{shards} shards"));
            if shards == 1 {
                assert_eq!(split.loss.to_bits(), whole.loss.to_bits());
                for p in params.iter() {
                    let same = split.grads.param(p).unwrap().bit_eq(whole.grads.param(p).unwrap());
                    assert!(same, "{}: one shard is not the unsplit pass", p.name());
                }
            }
        }
        // Each shard draws dropout from a generator of its own, and keeps the training flag.
        let draws = run_shards(4, 2, &mut Ctx::train(0), |_, ctx| (ctx.training, ctx.rng.next_u64()));
        assert!(draws[0].0 && draws[1].0 && draws[0].1 != draws[1].1, "{draws:?}");
        let ranges = run_shards(7, 3, &mut Ctx::train(0), |rows, _| rows);
        assert_eq!(ranges, [0..3, 3..5, 5..7]);
        assert_eq!(run_shards(2, 5, &mut Ctx::train(0), |rows, _| rows), [0..1, 1..2]);
        assert_eq!(run_shards(0, 2, &mut Ctx::train(0), |rows, _| rows.len()), [0]);
        let third = batch.rows(5..7);
        assert_eq!((third.batch_size, third.src_len, third.tgt_len), (2, batch.src_len, batch.tgt_len));
        assert_eq!(third.src_row(1), batch.src_row(6));
        assert_eq!(third.tgt_out_row(0), batch.tgt_out_row(5));
    }

    /// A run's settings saved before `shards` existed resume with the one shard it ran.
    #[test]
    fn settings_saved_without_shards_ran_one() {
        use super::{DEFAULT_SHARDS, TrainOptions};
        let mut saved = serde_json::to_value(TrainOptions::default()).unwrap();
        assert_eq!(saved["shards"], DEFAULT_SHARDS);
        saved.as_object_mut().unwrap().remove("shards");
        assert_eq!(serde_json::from_value::<TrainOptions>(saved).unwrap().shards, 1);
    }

    #[test]
    fn every_schedule_peaks_at_the_given_rate() {
        for kind in [ScheduleKind::Linear, ScheduleKind::Noam, ScheduleKind::Constant] {
            let s = kind.build(2e-3, 40, 1000, 64);
            let peak = (1..=1000).map(|step| s.lr(step)).fold(0.0, f64::max);
            assert!((peak - 2e-3).abs() < 1e-15, "{kind:?}: peak {peak}");
            assert!(
                kind == ScheduleKind::Constant || (s.lr(40) - 2e-3).abs() < 1e-15,
                "{kind:?} peaks after the warm-up"
            );
        }
        assert_eq!(ScheduleKind::from_name("cosine"), None);
    }
    use crate::nn::Linear;
    use autograd::{ParamStore, Tape, Tensor};
    use rand::{RngCore, SeedableRng};

    /// A residual stack whose middle layer is deliberately detached: the first-step check of
    /// `train` names exactly that layer's parameters, and is quiet once the layer is attached.
    #[test]
    fn the_coverage_warning_names_a_detached_layer() {
        let mut params = ParamStore::<f32>::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let layers: Vec<Linear> =
            (0..3).map(|i| Linear::new(4, 4, true, params.prefix(&format!("layers.{i}")), &mut rng)).collect();
        let warning = |detach: bool| {
            let tape = Tape::new();
            let x = tape.constant(Tensor::rand_uniform([5, 4], -1.0, 1.0, &mut rand::rngs::StdRng::seed_from_u64(1)));
            let h0 = layers[0].forward(x).relu();
            let h1 = layers[1].forward(h0);
            let h1 = if detach { h1.detach() } else { h1 };
            let out = layers[2].forward(h0 + h1);
            coverage_warning(&(out * out).mean_all().backward(), &params)
        };
        let text = warning(true).expect("a warning");
        assert!(text.starts_with("warning: after the first step, 2 of 6 parameters got no useful gradient:"), "{text}");
        assert_eq!(
            text.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect::<Vec<_>>(),
            ["layers.1.weight", "layers.1.bias"]
        );
        assert_eq!(warning(false), None);
    }
}
