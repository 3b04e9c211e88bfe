//! The fuzz suite: every parser and loader, fed mutated valid inputs, either succeeds or
//! returns a one-line error. Never a panic, an abort, an allocation of absurd size or a hang.
//!
//! How it works, and the command for a longer run, are in `tests/tests/fuzz/README.md`.
//! `FUZZ_CASES` sets the number of cases (100,000 by default), `FUZZ_SEED` the seed, and
//! `FUZZ_ONLY=N` replays case N alone.

#[path = "fuzz/mutate.rs"]
mod mutate;

use autograd::ParamStore;
use mutate::Mutator;
use rand::SeedableRng;
use rayon::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use transformer::checkpoint::Checkpoint;
use transformer::data::{Batcher, Example, Vocab, parse_tsv};
use transformer::lm::{CharLM, LmCheckpoint, LmConfig, LmTrainOptions, Sampling};
use transformer::{ModelConfig, Seq2Seq};

// ---------------------------------------------------------------------------------------------
// Guards: absurd allocations and hangs end the run with the case that caused them.
// ---------------------------------------------------------------------------------------------

/// The largest single allocation a case may ask for. The models here are tiny: anything near
/// this is a size read from a mutated input and trusted.
const ALLOCATION_LIMIT: usize = 1 << 30;

/// The system allocator, refusing (with a message and an abort) any request above the limit.
struct Guard;

// SAFETY: every call is forwarded to the system allocator unchanged, or the process aborts.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            absurd_allocation();
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            absurd_allocation();
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            absurd_allocation();
        }
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Guard = Guard;

/// The cases under way (one per worker thread), for the messages of the guards.
static RUNNING: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn absurd_allocation() -> ! {
    // Nothing here may allocate.
    let _ = std::io::stderr().write_all(b"fuzz: a case asked for an allocation above 1 GiB; cases under way:");
    report_running();
    std::process::abort();
}

fn report_running() {
    if let Ok(running) = RUNNING.try_lock() {
        for &case in running.iter() {
            let mut digits = [0u8; 20];
            let mut n = case;
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let _ = std::io::stderr().write_all(b" ");
            let _ = std::io::stderr().write_all(&digits[at..]);
        }
    }
    let _ = std::io::stderr().write_all(b" (replay one with FUZZ_ONLY=N)\n");
}

/// Milliseconds since the start of the run when the latest case began, per worker.
static LAST_START: AtomicU64 = AtomicU64::new(0);

/// Aborts when no case has started for `limit`: one of them hangs.
fn watchdog(start: Instant, limit: Duration) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let last = Duration::from_millis(LAST_START.load(Ordering::Relaxed));
            if start.elapsed().saturating_sub(last) > limit {
                let _ = std::io::stderr().write_all(b"fuzz: no case finished for 60 s; cases under way:");
                report_running();
                std::process::abort();
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The valid inputs every case starts from
// ---------------------------------------------------------------------------------------------

/// A model directory's three files.
struct Files {
    config: String,
    vocab: String,
    weights: Vec<u8>,
}

struct Seeds {
    translator: Files,
    lm: Files,
    tsv: String,
    text: String,
    /// The unmutated models, to run mutated data and inputs through.
    checkpoint: Checkpoint,
    lm_checkpoint: LmCheckpoint,
}

fn seeds() -> Seeds {
    let examples: Vec<Example> = ["2024-01-05\tJan 5, 2024", "hello\tolleh", "abc\tcba", "\t", "x y\ty x"]
        .iter()
        .map(|l| {
            let (s, t) = l.split_once('\t').unwrap();
            Example::new(s, t)
        })
        .collect();
    let tsv: String = examples.iter().map(|e| format!("{}\t{}\n", e.source, e.target)).collect();
    let vocab = Vocab::from_examples(&examples);
    let cfg = ModelConfig {
        vocab_size: vocab.len(),
        d_model: 8,
        n_heads: 2,
        n_encoder_layers: 1,
        n_decoder_layers: 1,
        d_ff: 16,
        max_len: 24,
        ..ModelConfig::default()
    };
    let mut params = ParamStore::new();
    Seq2Seq::<f32>::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
    let translator = Files { config: cfg.to_json(), vocab: vocab.to_json(), weights: params.to_safetensors_bytes() };

    let text: String = (0..40).map(|i| format!("fn f{i}() -> u32 {{ {i} }}\n")).collect();
    let lm_vocab = Vocab::from_texts([text.as_str()]);
    let lm_cfg = LmConfig {
        vocab_size: lm_vocab.len(),
        d_model: 8,
        n_heads: 2,
        n_layers: 1,
        d_ff: 16,
        max_len: 16,
        ..LmConfig::default()
    };
    let mut lm_params = ParamStore::new();
    CharLM::<f32>::new(&lm_cfg, &mut lm_params, &mut rand::rngs::StdRng::seed_from_u64(0));
    let lm = Files { config: lm_cfg.to_json(), vocab: lm_vocab.to_json(), weights: lm_params.to_safetensors_bytes() };

    let dir = Path::new("model");
    let checkpoint =
        Checkpoint::from_bytes(dir, translator.config.as_bytes(), translator.vocab.as_bytes(), &translator.weights)
            .unwrap();
    let lm_checkpoint = LmCheckpoint::from_bytes(dir, lm.config.as_bytes(), lm.vocab.as_bytes(), &lm.weights).unwrap();
    Seeds { translator, lm, tsv, text, checkpoint, lm_checkpoint }
}

// ---------------------------------------------------------------------------------------------
// The targets: what each case mutates and runs, as the program would
// ---------------------------------------------------------------------------------------------

const TARGETS: [&str; 9] = [
    "config.json",
    "vocab.json",
    "model.safetensors",
    "LM config.json",
    "LM vocab.json",
    "LM model.safetensors",
    "TSV data",
    "text corpus",
    "translate inputs",
];

/// Runs one case: `Ok` if the input was taken, or the error the program would print.
fn run_case(seeds: &Seeds, target: usize, m: &mut Mutator) -> Result<(), String> {
    let dir = Path::new("model");
    let (t, l) = (&seeds.translator, &seeds.lm);
    let err = |e: transformer::Error| e.to_string();
    match target {
        0..=2 => {
            let config = if target == 0 { m.json(&t.config) } else { t.config.clone().into_bytes() };
            let vocab = if target == 1 { m.json(&t.vocab) } else { t.vocab.clone().into_bytes() };
            let weights = if target == 2 { m.safetensors(&t.weights) } else { t.weights.clone() };
            let ckpt = Checkpoint::from_bytes(dir, &config, &vocab, &weights).map_err(err)?;
            use_translator(&ckpt, &["ab".to_string(), String::new()], m)
        }
        3..=5 => {
            let config = if target == 3 { m.json(&l.config) } else { l.config.clone().into_bytes() };
            let vocab = if target == 4 { m.json(&l.vocab) } else { l.vocab.clone().into_bytes() };
            let weights = if target == 5 { m.safetensors(&l.weights) } else { l.weights.clone() };
            let ckpt = LmCheckpoint::from_bytes(dir, &config, &vocab, &weights).map_err(err)?;
            use_lm(&ckpt, "fn f1()", m)
        }
        6 => {
            let bytes = m.lines(&seeds.tsv);
            let path = Path::new("data.tsv");
            let text = std::str::from_utf8(&bytes).map_err(|e| format!("data.tsv: not UTF-8 ({e})"))?;
            let examples = parse_tsv(text, path).map_err(err)?;
            // What `train --data` does with them: a vocabulary and batches.
            let vocab = Vocab::from_examples(&examples);
            let mut batches = Batcher::new(&examples, &vocab, 1 + m.below(4), 0).map_err(err)?;
            batches.next_batch();
            // What `eval --data` does with them, on the first few.
            let ckpt = &seeds.checkpoint;
            transformer::eval::check_lengths(&examples, ckpt.model.cfg.max_len, path).map_err(err)?;
            let report = transformer::eval::evaluate(ckpt, &examples[..examples.len().min(3)]);
            serde_json::to_string(&report.to_json()).map(drop).map_err(|e| e.to_string())
        }
        7 => {
            let bytes = m.lines(&seeds.text);
            let text = String::from_utf8(bytes).map_err(|e| format!("text: not UTF-8 ({e})"))?;
            // What `lm train` does with it before training: the split and the vocabulary.
            let opts = LmTrainOptions { model: seeds.lm_checkpoint.model.cfg.clone(), ..LmTrainOptions::default() };
            let (train, _) = opts.split(&text).map_err(err)?;
            let vocab = Vocab::from_texts([train]);
            vocab.encode(train);
            // What `lm eval` does, on its start, with the seed model (unknown characters are <unk>).
            let head: String = text.chars().take(40).collect();
            use_lm(&seeds.lm_checkpoint, &head, m)
        }
        _ => {
            let lines = String::from_utf8_lossy(&m.lines("abc\nhello\n\nx y z\n")).into_owned();
            let inputs: Vec<String> = lines.lines().map(str::to_string).collect();
            use_translator(&seeds.checkpoint, &inputs, m)
        }
    }
}

/// What `translate` and `eval` do with a loaded model.
fn use_translator(ckpt: &Checkpoint, inputs: &[String], m: &mut Mutator) -> Result<(), String> {
    transformer::eval::check_inputs(inputs, ckpt.model.cfg.max_len, |i| format!("input {}", i + 1))
        .map_err(|e| e.to_string())?;
    let beam = [None, Some(1), Some(3)][m.below(3)];
    for input in inputs.iter().take(2) {
        transformer::eval::translate(ckpt, input, beam);
    }
    Ok(())
}

/// What `lm eval` and `lm generate` do with a loaded model.
fn use_lm(ckpt: &LmCheckpoint, prompt: &str, m: &mut Mutator) -> Result<(), String> {
    if !prompt.is_empty() {
        transformer::lm::evaluate(&ckpt.model, &ckpt.vocab, prompt);
    }
    let ids: Vec<usize> = ckpt.vocab.encode(prompt).into_iter().take(ckpt.model.cfg.max_len - 1).collect();
    let new = (ckpt.model.cfg.max_len - ids.len()).min(4);
    let sampling = Sampling { temperature: [0.0, 0.8][m.below(2)], top_k: [None, Some(3)][m.below(2)] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    transformer::lm::generate(&ckpt.model, &[ids], new, sampling, &mut rng, true);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Models are not shared between threads: each worker builds its own seeds.
    static SEEDS: Seeds = seeds();
}

/// A case that broke the contract.
struct Failure {
    case: u64,
    target: &'static str,
    what: String,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

#[test]
fn every_parser_and_loader_survives_mutated_inputs() {
    let cases = env("FUZZ_CASES", 100_000);
    let seed = env("FUZZ_SEED", 1);
    let only = std::env::var("FUZZ_ONLY").ok().and_then(|v| v.parse::<u64>().ok());
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
    }));
    let start = Instant::now();
    watchdog(start, Duration::from_secs(60));
    let range: Vec<u64> = match only {
        Some(case) => vec![case],
        None => (0..cases).collect(),
    };
    let outcomes: Vec<(usize, Result<bool, Failure>)> = range
        .par_iter()
        .map(|&case| {
            let target = (case % TARGETS.len() as u64) as usize;
            RUNNING.lock().unwrap().push(case);
            let mut m = Mutator::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ case);
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| SEEDS.with(|seeds| run_case(seeds, target, &mut m))));
            RUNNING.lock().unwrap().retain(|&c| c != case);
            LAST_START.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            let fail = |what: String| Err(Failure { case, target: TARGETS[target], what });
            let outcome = match result {
                Ok(Ok(())) => Ok(true),
                Ok(Err(message)) if message.is_empty() || message.contains('\n') => {
                    fail(format!("an error that is not one line: {message:?}"))
                }
                Ok(Err(_)) => Ok(false),
                Err(_) => fail(format!("panic: {}", PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default())),
            };
            (target, outcome)
        })
        .collect();
    let _ = std::panic::take_hook();

    let mut table = vec![(0u64, 0u64); TARGETS.len()];
    let mut failures = Vec::new();
    for (target, outcome) in outcomes {
        match outcome {
            Ok(true) => table[target].0 += 1,
            Ok(false) => table[target].1 += 1,
            Err(f) => failures.push(f),
        }
    }
    println!("{} cases (seed {seed}) in {:.1} s:", cases, start.elapsed().as_secs_f64());
    println!("{:<22} {:>9} {:>9}", "input", "accepted", "refused");
    for (name, (ok, refused)) in TARGETS.iter().zip(&table) {
        println!("{name:<22} {ok:>9} {refused:>9}");
    }
    for f in failures.iter().take(20) {
        println!("case {} ({}): {}", f.case, f.target, f.what);
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases broke the contract (replay one with FUZZ_ONLY=N)",
        failures.len()
    );
    if only.is_none() {
        assert!(table.iter().all(|&(ok, refused)| ok > 0 && refused > 0), "every input is both taken and refused");
    }
}
