//! The fuzz suite's command-line part (the rest is `tests/tests/fuzz.rs`, which explains the
//! harness): the program's argument lists, mutated (arguments dropped, doubled, swapped, values
//! replaced by empty, negative, huge, fractional, non-numeric or very long ones, unknown flags),
//! either succeed or end with `error: ...` as the last line of standard error and exit status
//! 1 or 2. Never a panic, a crash, or a run that does not end.
//!
//! `FUZZ_CLI_CASES` sets the number of cases (2,000 by default); `FUZZ_SEED` the seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use transformer::checkpoint::Checkpoint;
use transformer::data::{Example, Vocab};
use transformer::lm::{CharLM, LmCheckpoint, LmConfig};
use transformer::{ModelConfig, Seq2Seq};

const BIN: &str = env!("CARGO_BIN_EXE_transformer");

/// Values an argument should never be trusted to hold.
const WEIRD: &[&str] = &[
    "",
    "-1",
    "0",
    "1",
    "2",
    "0.5",
    "-0.5",
    "NaN",
    "inf",
    "-inf",
    "1e999",
    "18446744073709551616",
    "99999999999",
    "--",
    "-",
    "é",
    "1,2,,3",
    "0,1",
    "linear",
    "noam",
    "cosine",
    "relu",
    "/",
    ".",
    "nowhere.tsv",
];

/// The flags whose values set how much work a run asks for: a huge value there is a long run
/// the user asked for, not a fault, so they only get the values that end quickly.
const WORK: &[&str] = &["--steps", "--max-new-tokens", "--src-len", "--tgt-len"];

/// Files the argument lists point at: a model directory of each family, data, a text and configs.
struct Inputs {
    dir: PathBuf,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = std::env::temp_dir().join(format!("transformer-fuzz-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let examples: Vec<Example> = ["abc", "hello", "xyz", "reverse", "tape", "grad", "loss", "adam"]
            .iter()
            .map(|s| Example::new(*s, s.chars().rev().collect::<String>()))
            .collect();
        let tsv: String = examples.iter().map(|e| format!("{}\t{}\n", e.source, e.target)).collect();
        std::fs::write(dir.join("data.tsv"), tsv).unwrap();
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
        std::fs::write(dir.join("config.json"), cfg.to_json()).unwrap();
        let mut params = autograd::ParamStore::new();
        let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        Checkpoint::save(&dir.join("model"), &model, &params, &vocab).unwrap();

        let text: String = (0..60).map(|i| format!("let x{i} = {};\n", i % 7)).collect();
        std::fs::write(dir.join("text.txt"), &text).unwrap();
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
        std::fs::write(dir.join("lm.json"), lm_cfg.to_json()).unwrap();
        let mut lm_params = autograd::ParamStore::new();
        let lm = CharLM::new(&lm_cfg, &mut lm_params, &mut rand::rngs::StdRng::seed_from_u64(0));
        LmCheckpoint::save(&dir.join("lm"), &lm, &lm_params, &lm_vocab).unwrap();
        Inputs { dir }
    }

    /// The valid argument lists every case starts from: each command, quick to run.
    fn commands(&self) -> Vec<Vec<String>> {
        let p = |name: &str| self.dir.join(name).display().to_string();
        let lists: Vec<Vec<String>> = vec![
            vec!["eval", "--model", &p("model"), "--data", &p("data.tsv")].into_iter().map(String::from).collect(),
            ["translate", "--model", &p("model"), "abc", "hello"].map(String::from).to_vec(),
            ["translate", "--model", &p("model"), "--beam", "2", "abc"].map(String::from).to_vec(),
            ["lm", "eval", "--model", &p("lm"), "--text", &p("text.txt"), "--threads", "1"].map(String::from).to_vec(),
            ["lm", "generate", "--model", &p("lm"), "--prompt", "let", "--max-new-tokens", "3", "--top-k", "2"]
                .map(String::from)
                .to_vec(),
            [
                "bench",
                "--config",
                &p("config.json"),
                "--batch-size",
                "2",
                "--src-len",
                "4",
                "--tgt-len",
                "4",
                "--steps",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            ["bench", "--decode", "--config", &p("lm.json"), "--batch-size", "1,2", "--tgt-len", "3", "--steps", "1"]
                .map(String::from)
                .to_vec(),
            [
                "train",
                "--data",
                &p("data.tsv"),
                "--config",
                &p("config.json"),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--warmup",
                "1",
                "--accumulate",
                "2",
                "--threads",
                "1",
                "--out",
                &p("run"),
            ]
            .map(String::from)
            .to_vec(),
            [
                "lm",
                "train",
                "--text",
                &p("text.txt"),
                "--config",
                &p("lm.json"),
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--eval-every",
                "1",
                "--save-every",
                "1",
                "--threads",
                "1",
                "--out",
                &p("lm-run"),
            ]
            .map(String::from)
            .to_vec(),
        ];
        lists
    }
}

/// Flags a mutation may add, each with a value of its own.
const FLAGS: &[&str] = &[
    "--threads",
    "--seed",
    "--beam",
    "--top-k",
    "--temperature",
    "--lr",
    "--warmup",
    "--dropout",
    "--schedule",
    "--save-every",
    "--eval-every",
    "--batch-size",
    "--label-smoothing",
    "--clip-norm",
    "--beta2",
    "--weight-decay",
];

/// A value for `flag`: a weird one, except that flags setting the amount of work keep small
/// values (a huge step count is a long run the user asked for, not a fault).
fn value_for(flag: &str, rng: &mut StdRng) -> String {
    if rng.random_bool(0.4) {
        // A plausible value, so that the run gets past the parser and its range checks.
        return ["1", "2", "3", "0", "0.1", "0.9", "1,2", "8"][rng.random_range(0..8)].into();
    }
    let weird = WEIRD[rng.random_range(0..WEIRD.len())];
    let huge = weird.len() > 6 && weird.bytes().all(|b| b.is_ascii_digit());
    if huge && WORK.contains(&flag) { "3".into() } else { weird.into() }
}

/// One or two mutations of an argument list: most replace a flag's value or drop or add a
/// flag, which keeps the list parseable and reaches the checks behind the parser; the rest
/// drop, double, swap or replace single arguments.
fn mutate(args: &[String], rng: &mut StdRng) -> Vec<String> {
    let mut out = args.to_vec();
    for _ in 0..1 + rng.random_range(0..2) {
        let flags: Vec<usize> = (0..out.len()).filter(|&i| out[i].starts_with("--")).collect();
        let i = rng.random_range(0..out.len());
        match rng.random_range(0..10) {
            0..=4 if !flags.is_empty() => {
                let f = flags[rng.random_range(0..flags.len())];
                let value = value_for(&out[f], rng);
                if f + 1 < out.len() && !out[f + 1].starts_with("--") {
                    out[f + 1] = value;
                } else {
                    out.insert(f + 1, value);
                }
            }
            5 if !flags.is_empty() => {
                let f = flags[rng.random_range(0..flags.len())];
                let with_value = f + 1 < out.len() && !out[f + 1].starts_with("--");
                out.drain(f..f + 1 + usize::from(with_value));
            }
            6 => {
                let flag = FLAGS[rng.random_range(0..FLAGS.len())];
                let value = value_for(flag, rng);
                out.extend([flag.to_string(), value]);
            }
            7 if out.len() > 1 => {
                out.remove(i);
            }
            8 => {
                let j = rng.random_range(0..out.len());
                out.swap(i, j);
            }
            _ => {
                out[i] = ["x".repeat(rng.random_range(1..5000)), "--bogus".into(), "--resume".into()]
                    [rng.random_range(0..3)]
                .clone()
            }
        }
    }
    out
}

/// Runs the program: `None` if it succeeded, its error line if it refused the arguments, or
/// `Err` saying how it broke the contract.
fn check(args: &[String], work: &Path) -> Result<Option<String>, String> {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("still running after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        _ if stderr.contains("panicked") => Err(format!("panicked: {stderr}")),
        Some(0) => Ok(None),
        Some(1 | 2) if stderr.lines().last().is_some_and(|l| l.starts_with("error: ")) => {
            Ok(stderr.lines().last().map(str::to_string))
        }
        code => Err(format!("exit status {code:?} with stderr {stderr:?}")),
    }
}

#[test]
fn every_argument_list_succeeds_or_ends_with_one_error_line() {
    let cases: u64 = std::env::var("FUZZ_CLI_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let inputs = Inputs::new();
    let commands = inputs.commands();
    // Every list the cases start from is valid: it runs as it is.
    for args in &commands {
        assert_eq!(check(args, &inputs.dir), Ok(None), "transformer {}", args.join(" "));
    }
    let next = AtomicU64::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let succeeded = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (commands, next, failures, dir, succeeded) = (&commands, &next, &failures, &inputs.dir, &succeeded);
            scope.spawn(move || {
                let work = dir.join(format!("work{worker}"));
                std::fs::create_dir_all(&work).unwrap();
                loop {
                    let case = next.fetch_add(1, Ordering::Relaxed);
                    if case >= cases {
                        break;
                    }
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ case);
                    let args = mutate(&commands[case as usize % commands.len()], &mut rng);
                    match check(&args, &work) {
                        Ok(None) => drop(succeeded.fetch_add(1, Ordering::Relaxed)),
                        Ok(Some(error)) if std::env::var_os("FUZZ_CLI_VERBOSE").is_some() => {
                            println!("transformer {}\n    {error}", args.join(" "))
                        }
                        Ok(Some(_)) => {}
                        Err(what) => failures
                            .lock()
                            .unwrap()
                            .push(format!("case {case}: transformer {}: {what}", args.join(" "))),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let succeeded = succeeded.into_inner();
    println!(
        "{cases} argument lists (seed {seed}) in {:.1} s: {succeeded} ran, {} were refused",
        start.elapsed().as_secs_f64(),
        cases - succeeded - failures.len() as u64
    );
    for f in failures.iter().take(10) {
        println!("{f}");
    }
    assert!(failures.is_empty(), "{} of {cases} argument lists broke the contract", failures.len());
    assert!(succeeded > cases / 20, "too few argument lists ran ({succeeded}): the cases test little but parsing");
    std::fs::remove_dir_all(&inputs.dir).unwrap();
}
