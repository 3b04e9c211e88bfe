//! The `transformer` command-line program: train, eval, translate and bench.

use clap::{Parser, Subcommand};

/// Training allocates and frees many large buffers each step; mimalloc keeps them for reuse
/// instead of returning pages to the system and faulting them back in, zeroed, every step.
///
/// It is mimalloc v2 (the `v2` feature) built without transparent huge pages (`no_thp`). Both
/// were measured on the reference training steps, at the same speed: v3 held 1.2 to 1.8 times
/// the peak memory of v2, and huge pages another quarter, since every partly used 2 MiB page
/// counts whole.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped: a training step frees and reallocates the same large buffers,
/// and returning them to the system makes every step fault them back in as fresh zeroed pages.
fn keep_freed_memory() {
    // SAFETY: setting an option is allowed at any time; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use transformer::attention_map::{self, AttentionMap};
use transformer::checkpoint::Checkpoint;
use transformer::data::{DataSource, TrainData, read_tsv};
use transformer::lm::{LmCheckpoint, LmConfig, LmTrainOptions, LmTrainSummary, Sampling, TextSource};
use transformer::train::{ScheduleKind, TrainOptions, TrainSummary, train};
use transformer::{Error, ModelConfig, Result};

#[derive(Parser)]
#[command(name = "transformer", version, about = "Train, evaluate and run an encoder-decoder Transformer on a CPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a built-in task or a TSV file and save it.
    ///
    /// Writes OUT/model/ (the model directory), OUT/metrics.jsonl, OUT/loss.png and
    /// OUT/checkpoint/, which `--resume OUT` continues from. Ctrl-C or SIGTERM stops after the
    /// step under way and saves the checkpoint (a second Ctrl-C quits at once).
    Train {
        /// Built-in task: dates, numbers, copy, reverse or sort.
        #[arg(long, default_value = "dates", conflicts_with = "data")]
        task: String,
        /// Train on a TSV file (source<TAB>target per line) instead of a built-in task.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Model config.json (vocab_size is taken from the data).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Optimizer steps.
        #[arg(long, default_value_t = TrainOptions::default().steps)]
        steps: usize,
        /// Examples per batch.
        #[arg(long, default_value_t = TrainOptions::default().batch_size)]
        batch_size: usize,
        /// Seed for data, initialization and dropout.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        knobs: Box<Knobs>,
        /// Continue the run whose checkpoint is in OUT/checkpoint/, with the settings saved
        /// there, to its --steps (only --threads may be given with it).
        #[arg(long, value_name = "OUT", conflicts_with_all = RESUME_CONFLICTS)]
        resume: Option<PathBuf>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Output directory (default: runs/<task>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Evaluate a model on a TSV file; prints one JSON object.
    Eval {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// TSV file of source<TAB>target lines.
        #[arg(long)]
        data: PathBuf,
    },
    /// Translate texts given as arguments, or one a line from standard input.
    Translate {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Beam width (greedy decoding if absent).
        #[arg(long)]
        beam: Option<usize>,
        /// Also draw the last decoder layer's cross-attention as a PNG: a row of panels per
        /// input, one panel per head, source tokens across, output tokens down.
        #[arg(long, value_name = "FILE.png")]
        attention: Option<PathBuf>,
        /// Texts to translate.
        text: Vec<String>,
    },
    /// Time training steps on random tokens; prints one JSON object.
    ///
    /// With --decode, time greedy generation by a language model instead (an LM config.json):
    /// one JSON object per batch size, with and without the KV cache.
    Bench {
        /// Model config.json.
        #[arg(long)]
        config: PathBuf,
        /// Examples per batch (with --decode: a comma-separated list, default 1,32).
        #[arg(long)]
        batch_size: Option<String>,
        /// Source length in tokens.
        #[arg(long, required_unless_present = "decode")]
        src_len: Option<usize>,
        /// Target length in tokens (with --decode: new tokens per sequence, default max_len - 1).
        #[arg(long, required_unless_present = "decode")]
        tgt_len: Option<usize>,
        /// Time greedy generation (tokens/s) of an LM config instead of training steps.
        #[arg(long, conflicts_with_all = ["src_len", "memory"])]
        decode: bool,
        /// Timed steps (after 3 warm-up steps); with --decode, timed generations (after 1).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Also print to stderr what one step's tape holds in memory, by op and by source line
        /// (the batch run whole: with shards, each shard's tape holds its share of it).
        #[arg(long)]
        memory: bool,
        /// Shards each step splits its batch into, run side by side on the threads (as train's --shards)
        #[arg(long, default_value_t = transformer::train::DEFAULT_SHARDS, conflicts_with = "decode")]
        shards: usize,
    },
    /// Train, evaluate and sample a decoder-only character language model.
    Lm {
        #[command(subcommand)]
        command: LmCommand,
    },
}

#[derive(Subcommand)]
enum LmCommand {
    /// Train a language model on a text file, or on this program's own sources, and save it.
    ///
    /// Writes OUT/model/, OUT/metrics.jsonl, OUT/loss.png and OUT/checkpoint/, as `train` does,
    /// and stops and resumes the same way.
    Train {
        /// A UTF-8 text file (default: the Rust sources and book this program was built from).
        #[arg(long)]
        text: Option<PathBuf>,
        /// LM config.json ("architecture": "decoder_only"; vocab_size is taken from the text).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Optimizer steps.
        #[arg(long, default_value_t = LmTrainOptions::default().steps)]
        steps: usize,
        /// Chunks of max_len characters per batch.
        #[arg(long, default_value_t = LmTrainOptions::default().batch_size)]
        batch_size: usize,
        /// Seed for initialization, chunk sampling and dropout.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        knobs: Box<Knobs>,
        /// Continue the run whose checkpoint is in OUT/checkpoint/, with the settings saved
        /// there, to its --steps (only --threads may be given with it).
        #[arg(long, value_name = "OUT", conflicts_with_all = LM_RESUME_CONFLICTS)]
        resume: Option<PathBuf>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Output directory.
        #[arg(long, default_value = "runs/lm")]
        out: PathBuf,
    },
    /// Mean cross-entropy over every character of a text; prints one JSON object.
    Eval {
        /// LM model directory.
        #[arg(long)]
        model: PathBuf,
        /// A UTF-8 text file.
        #[arg(long)]
        text: PathBuf,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print the prompt followed by generated text.
    ///
    /// The prompt plus the new characters may not exceed the model's max_len (no sliding
    /// window). Keys and values of earlier positions are cached, so each new character costs
    /// time linear in the text so far.
    Generate {
        /// LM model directory.
        #[arg(long)]
        model: PathBuf,
        /// The text to continue.
        #[arg(long, default_value = "")]
        prompt: String,
        /// Characters to generate (default: up to max_len).
        #[arg(long)]
        max_new_tokens: Option<usize>,
        /// 0 is greedy and deterministic; above 0 samples from softmax(logits / temperature).
        #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
        temperature: f64,
        /// Sample only among the k most likely characters.
        #[arg(long)]
        top_k: Option<usize>,
        /// Seed of the sampler: the same seed gives the same text.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// The flags `train` and `lm train` share: how the optimizer, schedule and loss are set up,
/// and how often to save and evaluate. Defaults differ between the two families; each is
/// given as `train / lm train`.
#[derive(clap::Args)]
struct Knobs {
    /// Peak learning rate, reached after the warm-up [default: 0.003]
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Steps of linear warm-up to the peak (a tenth of the run if it is shorter) [default: 200 / 100]
    #[arg(long, allow_negative_numbers = true)]
    warmup: Option<usize>,
    /// Learning-rate schedule: linear (warm-up, then linear decay to 0), noam (warm-up, then
    /// 1/√step, peaking at --lr) or constant [default: linear]
    #[arg(long)]
    schedule: Option<String>,
    /// Micro-batches per optimizer step, their gradients combined as one batch N times larger [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    accumulate: Option<usize>,
    /// Shards each batch is split into, their forward and backward passes run side by side on
    /// the threads; the gradient is the batch's up to rounding, and the same on any number of
    /// threads [default: 2]
    #[arg(long, allow_negative_numbers = true)]
    shards: Option<usize>,
    /// Decoupled weight decay (AdamW) at or above 0; for train, 0 means Adam [default: 0 / 0.01]
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Label smoothing ε of the loss, in [0, 1) [default: 0.1 / 0]
    #[arg(long, allow_negative_numbers = true)]
    label_smoothing: Option<f64>,
    /// Gradients are scaled down to this global norm when larger (above 0) [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    clip_norm: Option<f64>,
    /// Dropout probability in [0, 1) [default: the config's, 0 in the default configs]
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// Adam's β1 in [0, 1) [default: 0.9]
    #[arg(long, allow_negative_numbers = true)]
    beta1: Option<f64>,
    /// Adam's β2 in [0, 1) [default: 0.98 / 0.99]
    #[arg(long, allow_negative_numbers = true)]
    beta2: Option<f64>,
    /// Also save OUT/checkpoint/ every K steps (it is always saved at the end and on Ctrl-C) [default: 0, never]
    #[arg(long, value_name = "K")]
    save_every: Option<usize>,
    /// Write the held-out evaluation to metrics.jsonl every K steps (it always runs at the end) [default: 0, never]
    #[arg(long, value_name = "K")]
    eval_every: Option<usize>,
}

/// The flags `--resume` refuses: a resumed run keeps the settings it was started with.
const RESUME_CONFLICTS: [&str; 20] = [
    "eval_every",
    "task",
    "data",
    "config",
    "steps",
    "batch_size",
    "seed",
    "out",
    "lr",
    "warmup",
    "schedule",
    "accumulate",
    "shards",
    "weight_decay",
    "label_smoothing",
    "clip_norm",
    "dropout",
    "beta1",
    "beta2",
    "save_every",
];
/// As [`RESUME_CONFLICTS`], for `lm train`.
const LM_RESUME_CONFLICTS: [&str; 19] = [
    "eval_every",
    "text",
    "config",
    "steps",
    "batch_size",
    "seed",
    "out",
    "lr",
    "warmup",
    "schedule",
    "accumulate",
    "shards",
    "weight_decay",
    "label_smoothing",
    "clip_norm",
    "dropout",
    "beta1",
    "beta2",
    "save_every",
];

/// A `$ty` struct literal with the knob fields [`Settings`], `TrainOptions` and `LmTrainOptions`
/// share copied from `$from`, the other fields as given: the knobs are named once, here.
macro_rules! with_knobs {
    ($from:expr => $ty:ident { $($field:ident: $value:expr),* $(; ..$base:expr)? }) => {{
        let from = $from;
        $ty {
            $($field: $value,)*
            lr: from.lr,
            warmup: from.warmup,
            schedule: from.schedule,
            accumulate: from.accumulate,
            shards: from.shards,
            weight_decay: from.weight_decay,
            label_smoothing: from.label_smoothing,
            clip_norm: from.clip_norm,
            beta1: from.beta1,
            beta2: from.beta2,
            save_every: from.save_every,
            eval_every: from.eval_every,
            $(..$base)?
        }
    }};
}

/// [`Knobs`] checked, with a family's defaults filled in.
struct Settings {
    lr: f64,
    warmup: usize,
    schedule: ScheduleKind,
    accumulate: usize,
    shards: usize,
    weight_decay: f64,
    label_smoothing: f64,
    clip_norm: f64,
    dropout: Option<f64>,
    beta1: f64,
    beta2: f64,
    save_every: usize,
    eval_every: usize,
}

impl Knobs {
    /// The flags checked, each error naming its flag and range; `defaults` fills the rest.
    fn settings(&self, defaults: Settings) -> Result<Settings> {
        let schedule = match &self.schedule {
            None => defaults.schedule,
            Some(name) => ScheduleKind::from_name(name).ok_or_else(|| {
                Error::flag("--schedule", format!("expected linear, noam or constant, found {name:?}"))
            })?,
        };
        let s = Settings {
            lr: self.lr.unwrap_or(defaults.lr),
            warmup: self.warmup.unwrap_or(defaults.warmup),
            schedule,
            accumulate: self.accumulate.unwrap_or(defaults.accumulate),
            shards: self.shards.unwrap_or(defaults.shards),
            weight_decay: self.weight_decay.unwrap_or(defaults.weight_decay),
            label_smoothing: self.label_smoothing.unwrap_or(defaults.label_smoothing),
            clip_norm: self.clip_norm.unwrap_or(defaults.clip_norm),
            dropout: self.dropout,
            beta1: self.beta1.unwrap_or(defaults.beta1),
            beta2: self.beta2.unwrap_or(defaults.beta2),
            save_every: self.save_every.unwrap_or(defaults.save_every),
            eval_every: self.eval_every.unwrap_or(defaults.eval_every),
        };
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return Err(Error::flag("--lr", format!("must be a finite number above 0, found {}", s.lr)));
        }
        if !(1..=MAX_ACCUMULATE).contains(&s.accumulate) {
            return Err(Error::flag(
                "--accumulate",
                format!("must be in 1..={MAX_ACCUMULATE}, found {}", s.accumulate),
            ));
        }
        check_shards(s.shards)?;
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            return Err(Error::flag(
                "--weight-decay",
                format!("must be a finite number >= 0, found {}", s.weight_decay),
            ));
        }
        let unit = |flag: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::flag(flag, format!("must be in [0, 1), found {v}")))
            }
        };
        unit("--label-smoothing", s.label_smoothing)?;
        unit("--beta1", s.beta1)?;
        unit("--beta2", s.beta2)?;
        if let Some(p) = s.dropout {
            unit("--dropout", p)?;
        }
        if !(s.clip_norm.is_finite() && s.clip_norm > 0.0) {
            return Err(Error::flag("--clip-norm", format!("must be a finite number above 0, found {}", s.clip_norm)));
        }
        Ok(s)
    }
}

/// A flag that turns true at the first Ctrl-C or SIGTERM: the training loop then saves its
/// checkpoint and stops. A second one ends the program at once; the last whole checkpoint
/// survives, since checkpoints are replaced atomically.
fn interrupt_flag() -> Option<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step to save a checkpoint (Ctrl-C again quits at once)");
    });
    match installed {
        Ok(()) => Some(flag),
        Err(e) => {
            eprintln!("warning: Ctrl-C will not save a checkpoint: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {} (see --help)", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command-line parsing error in one line: clap's message with the lines that name the
/// arguments folded in, without the usage block.
fn one_line(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        return "a subcommand is required: train, eval, translate, bench or lm (lm train, lm eval, lm generate)".into();
    }
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

/// `--shards`: from 1 to [`MAX_SHARDS`].
fn check_shards(shards: usize) -> Result<()> {
    if (1..=MAX_SHARDS).contains(&shards) {
        Ok(())
    } else {
        Err(Error::flag("--shards", format!("must be in 1..={MAX_SHARDS}, found {shards}")))
    }
}

/// The most shards `--shards` may split a batch into.
const MAX_SHARDS: usize = 1024;

/// The most micro-batches `--accumulate` may combine into one step.
const MAX_ACCUMULATE: usize = 1024;

/// The most worker threads `--threads` may ask for.
const MAX_THREADS: usize = 1024;

/// The most tokens (batch × length) one `bench` step or generation may hold: a bound on what a
/// mistyped size can make the program allocate.
const MAX_BENCH_TOKENS: usize = 1 << 22;

/// Runs `f` inside a rayon pool of `threads` workers (all cores by default). Running the work on
/// a pool thread, rather than handing each parallel kernel over from the main thread, keeps
/// small kernels from paying a thread wake-up each.
fn in_pool<R: Send>(threads: Option<usize>, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    if let Some(n) = threads
        && !(1..=MAX_THREADS).contains(&n)
    {
        return Err(Error::flag("--threads", format!("must be in 1..={MAX_THREADS}, found {n}")));
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build().map_err(|e| Error::flag("--threads", e))?.install(f)
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train { task, data, config, steps, batch_size, seed, knobs, resume, threads, out } => {
            in_pool(threads, || {
                let interrupt = interrupt_flag();
                if let Some(out) = resume {
                    let opts = TrainOptions { interrupt, ..transformer::train::resume_options(&out)? };
                    let data = opts.data.load(opts.seed)?;
                    eprintln!("resuming the run in {} ({} steps of {})", out.display(), opts.steps, opts.batch_size);
                    let summary = transformer::train::resume(&opts, &data)?;
                    return print_train_summary(&opts, &data, &summary);
                }
                check_training_flags(steps, batch_size)?;
                let k = knobs.settings(with_knobs!(TrainOptions::default() => Settings { dropout: None }))?;
                let mut model = match &config {
                    Some(path) => load_train_config(path)?,
                    None => ModelConfig::default(),
                };
                if let Some(p) = k.dropout {
                    model.dropout = p;
                }
                let source = match &data {
                    // Absolute, so that `--resume` finds the file from any directory.
                    Some(path) => DataSource::File(std::path::absolute(path).map_err(|e| Error::file(path, e))?),
                    None => DataSource::Task(task),
                };
                let loaded = source.load(seed)?;
                let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&loaded.name));
                let longest = loaded
                    .train
                    .iter()
                    .chain(&loaded.held_out)
                    .map(|e| e.source.chars().count().max(e.target.chars().count()) + 1)
                    .max()
                    .unwrap_or(0);
                if longest > model.max_len {
                    let what = format!(
                        "max_len is {} but the data holds a sequence of {longest} tokens (characters + <eos>)",
                        model.max_len
                    );
                    return Err(match &config {
                        Some(path) => Error::file(path, what),
                        None => Error::flag("--data", what),
                    });
                }
                std::fs::create_dir_all(&out)
                    .map_err(|e| Error::file(&out, format!("cannot create the output directory: {e}")))?;
                let opts = with_knobs!(k => TrainOptions {
                    model: model, data: source, steps: steps, batch_size: batch_size, seed: seed, out: out,
                    interrupt: interrupt; ..TrainOptions::default()
                });
                eprintln!(
                    "training on {} ({} examples, {} held out) for {steps} steps of {batch_size}",
                    loaded.name,
                    loaded.train.len(),
                    loaded.held_out.len()
                );
                let summary = train(&opts, &loaded)?;
                print_train_summary(&opts, &loaded, &summary)
            })
        }
        Command::Eval { model, data } => {
            let ckpt = Checkpoint::load(&model)?;
            let examples = read_tsv(&data)?;
            transformer::eval::check_lengths(&examples, ckpt.model.cfg.max_len, &data)?;
            println!("{}", transformer::eval::evaluate(&ckpt, &examples).to_json());
            Ok(())
        }
        Command::Translate { model, beam, attention, text } => {
            if beam == Some(0) {
                return Err(Error::flag("--beam", "must be at least 1, found 0"));
            }
            let ckpt = Checkpoint::load(&model)?;
            if let Some(k) = beam
                && k > ckpt.vocab.len()
            {
                return Err(Error::flag(
                    "--beam",
                    format!("{k} is wider than the model's {} tokens (at most that many)", ckpt.vocab.len()),
                ));
            }
            let from_stdin = text.is_empty();
            let inputs: Vec<String> = if from_stdin {
                std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<std::io::Result<_>>()
                    .map_err(|e| Error::new(format!("stdin: {e}")))?
            } else {
                text
            };
            // Every input is checked before any is translated: an over-long one is an error, not
            // a silently cut source.
            let place = |i: usize| if from_stdin { format!("stdin:{}", i + 1) } else { format!("input {}", i + 1) };
            transformer::eval::check_inputs(&inputs, ckpt.model.cfg.max_len, place)?;
            let mut maps = Vec::new();
            for line in inputs {
                let ids = transformer::eval::translate_ids(&ckpt, &line, beam);
                println!("{}", ckpt.vocab.decode(&ids));
                if attention.is_some() {
                    maps.push(AttentionMap::new(&ckpt.model, &ckpt.vocab, &line, &ids));
                }
            }
            if let Some(path) = attention {
                attention_map::draw(&path, &maps).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
            }
            Ok(())
        }
        Command::Bench { config, batch_size, src_len, tgt_len, decode, steps, threads, memory, shards } => {
            in_pool(threads, || {
                if decode {
                    return bench_decode(&config, batch_size.as_deref(), tgt_len, steps);
                }
                let batch_size = match batch_size.as_deref().map(str::parse::<usize>) {
                    Some(Ok(b)) => b,
                    Some(Err(e)) => return Err(Error::flag("--batch-size", e)),
                    None => return Err(Error::flag("--batch-size", "is required to time training steps")),
                };
                let (src_len, tgt_len) = (src_len.unwrap_or(0), tgt_len.unwrap_or(0));
                let cfg = ModelConfig::load(&config)?;
                for (flag, v) in
                    [("--batch-size", batch_size), ("--src-len", src_len), ("--tgt-len", tgt_len), ("--steps", steps)]
                {
                    if v == 0 {
                        return Err(Error::flag(flag, "must be at least 1, found 0"));
                    }
                }
                for (flag, v) in [("--src-len", src_len), ("--tgt-len", tgt_len)] {
                    if v > cfg.max_len {
                        return Err(Error::flag(
                            flag,
                            format!("{v} is longer than the config's max_len of {}", cfg.max_len),
                        ));
                    }
                }
                if batch_size.saturating_mul(src_len.max(tgt_len)) > MAX_BENCH_TOKENS {
                    return Err(Error::flag(
                        "--batch-size",
                        format!(
                            "{batch_size} sequences of up to {} tokens exceed the {MAX_BENCH_TOKENS} tokens a timed step may hold",
                            src_len.max(tgt_len)
                        ),
                    ));
                }
                check_shards(shards)?;
                let r = transformer::bench::run(&cfg, batch_size, src_len, tgt_len, steps, shards);
                println!(
                    "{}",
                    serde_json::json!({ "ms_per_step": r.ms_per_step, "tokens_per_s": r.tokens_per_s, "params": r.params })
                );
                if memory {
                    let (forward, peak) = transformer::bench::step_memory(&cfg, batch_size, src_len, tgt_len);
                    eprintln!("the tape at the end of one step's forward pass: {forward}");
                    eprintln!("peak during its backward pass: {:.1} MiB", peak as f64 / (1024.0 * 1024.0));
                }
                Ok(())
            })
        }
        Command::Lm { command } => run_lm(command),
    }
}

/// What `train` prints when it ends.
fn print_train_summary(opts: &TrainOptions, data: &TrainData, summary: &TrainSummary) -> Result<()> {
    println!(
        "trained {} steps in {:.1} s: loss {:.3} -> {:.3}",
        opts.steps, summary.seconds, summary.first_loss, summary.final_loss
    );
    println!("held-out exact match: {:.1}% of {}", summary.held_out_exact_match * 100.0, data.held_out.len());
    for (source, expected, got) in &summary.samples {
        let mark = if got == expected { "ok " } else { "BAD" };
        println!("  {mark} {source:>30}  ->  {got}");
    }
    println!("model saved to {}", opts.out.join("model").display());
    Ok(())
}

/// What `lm train` prints when it ends.
fn print_lm_summary(opts: &LmTrainOptions, summary: &LmTrainSummary) -> Result<()> {
    println!(
        "trained {} steps in {:.1} s: loss {:.3} -> {:.3}",
        opts.steps, summary.seconds, summary.first_loss, summary.final_loss
    );
    println!(
        "held-out loss: {:.4} nats = {:.3} bits per character, over {} characters",
        summary.held_out.loss, summary.held_out.bits_per_char, summary.held_out.characters
    );
    println!("sample:\n{}", summary.sample);
    println!("model saved to {}", opts.out.join("model").display());
    Ok(())
}

fn run_lm(command: LmCommand) -> Result<()> {
    match command {
        LmCommand::Train { text, config, steps, batch_size, seed, knobs, resume, threads, out } => {
            in_pool(threads, || {
                let interrupt = interrupt_flag();
                if let Some(out) = resume {
                    let opts = LmTrainOptions { interrupt, ..transformer::lm::resume_options(&out)? };
                    let corpus = opts.text.load()?;
                    eprintln!("resuming the run in {} ({} steps of {})", out.display(), opts.steps, opts.batch_size);
                    let summary = transformer::lm::resume(&opts, &corpus)?;
                    return print_lm_summary(&opts, &summary);
                }
                check_training_flags(steps, batch_size)?;
                let k = knobs.settings(with_knobs!(LmTrainOptions::default() => Settings { dropout: None }))?;
                let mut model = match &config {
                    Some(path) => load_lm_train_config(path)?,
                    None => LmConfig::default(),
                };
                if let Some(p) = k.dropout {
                    model.dropout = p;
                }
                let source = match &text {
                    Some(path) => TextSource::File(std::path::absolute(path).map_err(|e| Error::file(path, e))?),
                    None => TextSource::Builtin,
                };
                let corpus = source.load()?;
                let opts = with_knobs!(k => LmTrainOptions {
                    model: model, text: source, steps: steps, batch_size: batch_size, seed: seed, out: out.clone(),
                    interrupt: interrupt; ..LmTrainOptions::default()
                });
                if let Err(e) = opts.split(&corpus) {
                    return Err(match &text {
                        Some(path) => Error::file(path, e),
                        None => e,
                    });
                }
                eprintln!(
                    "training on {} ({} characters) for {steps} steps of {batch_size}",
                    opts.text.describe(),
                    corpus.chars().count()
                );
                let summary = transformer::lm::train(&opts, &corpus).map_err(|e| match &text {
                    Some(path) if !e.message().starts_with(&path.display().to_string()) && e.exit_code() == 2 => {
                        Error::file(path, e)
                    }
                    _ => e,
                })?;
                print_lm_summary(&opts, &summary)
            })
        }
        LmCommand::Eval { model, text, threads } => in_pool(threads, || {
            let ckpt = LmCheckpoint::load(&model)?;
            let path = text;
            let text = TextSource::File(path.clone()).load()?;
            if text.is_empty() {
                return Err(Error::file(&path, "is empty: there is no character to predict"));
            }
            println!("{}", transformer::lm::evaluate(&ckpt.model, &ckpt.vocab, &text).to_json());
            Ok(())
        }),
        LmCommand::Generate { model, prompt, max_new_tokens, temperature, top_k, seed } => {
            if !(temperature.is_finite() && temperature >= 0.0) {
                return Err(Error::flag("--temperature", format!("must be a finite number >= 0, found {temperature}")));
            }
            if top_k == Some(0) {
                return Err(Error::flag("--top-k", "must be at least 1, found 0"));
            }
            let ckpt = LmCheckpoint::load(&model)?;
            let max_len = ckpt.model.cfg.max_len;
            let ids = ckpt.vocab.encode(&prompt);
            if ids.len() >= max_len {
                return Err(Error::flag(
                    "--prompt",
                    format!(
                        "{} characters leave no room for new ones within the model's max_len of {max_len}",
                        ids.len()
                    ),
                ));
            }
            let new = max_new_tokens.unwrap_or(max_len - ids.len());
            if new > max_len - ids.len() {
                return Err(Error::flag(
                    "--max-new-tokens",
                    format!(
                        "the prompt's {} characters and {new} new ones exceed the model's max_len of {max_len} \
                         (at most {} new)",
                        ids.len(),
                        max_len - ids.len()
                    ),
                ));
            }
            let sampling = Sampling { temperature, top_k };
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let out = transformer::lm::generate(&ckpt.model, &[ids], new, sampling, &mut rng, true);
            println!("{prompt}{}", ckpt.vocab.decode(&out.tokens[0]));
            Ok(())
        }
    }
}

/// `bench --decode`: tokens/s of greedy generation, with and without the cache, per batch size.
fn bench_decode(
    config: &std::path::Path,
    batch_sizes: Option<&str>,
    new_tokens: Option<usize>,
    runs: usize,
) -> Result<()> {
    let cfg = LmConfig::load(config)?;
    let sizes: Vec<usize> = batch_sizes
        .unwrap_or("1,32")
        .split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(b) if b > 0 => Ok(b),
            _ => Err(Error::flag("--batch-size", format!("expected batch sizes above 0 like 1,32, found {b:?}"))),
        })
        .collect::<Result<_>>()?;
    let new_tokens = new_tokens.unwrap_or(cfg.max_len - 1);
    if new_tokens == 0 || new_tokens >= cfg.max_len {
        return Err(Error::flag(
            "--tgt-len",
            format!("{new_tokens} new tokens after a one-token prompt must be in 1..={}", cfg.max_len - 1),
        ));
    }
    if runs == 0 {
        return Err(Error::flag("--steps", "must be at least 1, found 0"));
    }
    if let Some(&b) = sizes.iter().find(|&&b| b.saturating_mul(cfg.max_len) > MAX_BENCH_TOKENS) {
        return Err(Error::flag(
            "--batch-size",
            format!(
                "{b} sequences of {} tokens exceed the {MAX_BENCH_TOKENS} tokens a timed generation may hold",
                cfg.max_len
            ),
        ));
    }
    for batch in sizes {
        for cache in [true, false] {
            let r = transformer::bench::decode(&cfg, batch, new_tokens, cache, runs);
            println!(
                "{}",
                serde_json::json!({ "batch": r.batch, "cache": r.cache, "new_tokens": new_tokens, "tokens_per_s": r.tokens_per_s.round() })
            );
        }
    }
    Ok(())
}

/// The flags both `train` and `lm train` take besides the [`Knobs`], checked.
fn check_training_flags(steps: usize, batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::flag("--batch-size", "must be at least 1, found 0"));
    }
    if steps == 0 {
        return Err(Error::flag("--steps", "must be at least 1, found 0"));
    }
    Ok(())
}

/// An LM config for training: vocab_size is replaced by the text's.
fn load_lm_train_config(path: &std::path::Path) -> Result<LmConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(path, e))?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("vocab_size").or_insert(serde_json::json!(1000));
    }
    LmConfig::from_value(value).map_err(|e| Error::file(path, e))
}

/// A config for training: a full config.json whose vocab_size is replaced by the data's.
fn load_train_config(path: &std::path::Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(path, e))?;
    if let Some(obj) = value.as_object_mut() {
        // The vocabulary comes from the data; any placeholder will do while parsing.
        obj.entry("vocab_size").or_insert(serde_json::json!(1000));
    }
    ModelConfig::from_value(value).map_err(|e| Error::file(path, e))
}
