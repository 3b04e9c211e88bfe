//! End-to-end tests of the `transformer` program: a short training run whose loss must fall, the
//! contracts of `eval`, `translate` and `bench` (the README, "The `transformer` program"), and every
//! kind of bad input, which must end with exit status 2, nothing on standard output, and exactly
//! one line `error: ...` on standard error that names the file, line, field or flag.
//!
//! One model is trained once (into a temp dir) and shared by the tests that need one. Every test
//! works in its own temp dir, so the tests run in parallel.

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_transformer");

/// Steps of the shared training run: long enough for the loss to fall clearly, a couple of
/// seconds in the test profile.
const TRAIN_STEPS: usize = 300;

// ---------------------------------------------------------------------------------------------
// Temp dirs, fixtures and running the program
// ---------------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, unique per process and call, removed on drop
/// when the test passed (kept for inspection when it failed).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("transformer-cli-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file in the dir and returns its path.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A path as a command-line argument (temp paths are UTF-8).
fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// The tiny model of these tests, as a train config (no vocab_size: train takes it from the data).
fn tiny_train_config() -> Value {
    json!({
        "d_model": 16, "n_heads": 2, "n_encoder_layers": 1, "n_decoder_layers": 1, "d_ff": 32,
        "dropout": 0.0, "activation": "relu", "norm_first": true, "layer_norm_eps": 1e-5,
        "positional": "sinusoidal", "max_len": 32, "scale_embeddings": true, "tie_output": false
    })
}

/// The tiny model with a vocab_size, as `bench` and model directories need.
fn tiny_config(vocab_size: usize) -> Value {
    let mut cfg = tiny_train_config();
    cfg["vocab_size"] = json!(vocab_size);
    cfg
}

fn to_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

/// What one run of the program did.
struct Output {
    command: String,
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn report(&self) -> String {
        format!(
            "command: {}\nexit status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the program with `args` in `dir`, feeding `stdin` (or nothing) on standard input.
fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.unwrap_or("").to_string();
    let writer = std::thread::spawn(move || {
        // The program may exit before reading its input; a broken pipe is fine then.
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for the program");
    writer.join().unwrap();
    Output {
        command: format!("transformer {}", args.join(" ")),
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the program and asserts it succeeded; returns its standard output.
fn succeeds(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(dir, args, stdin);
    assert_eq!(out.status, Some(0), "the program failed\n{}", out.report());
    assert!(!out.stderr.contains("panicked"), "the program panicked\n{}", out.report());
    out.stdout
}

/// Runs the program on bad input and asserts the error is clean: exit status 2, nothing on
/// stdout, exactly one line on stderr starting with `error: `, no panic or backtrace, and the
/// line contains every one of `names` (the file, line, field or flag it is about).
fn fails_cleanly(dir: &Path, args: &[&str], stdin: Option<&str>, names: &[&str]) {
    let out = run(dir, args, stdin);
    let report = out.report();
    let lower = out.stderr.to_lowercase();
    assert!(!lower.contains("panicked") && !lower.contains("backtrace"), "the program panicked\n{report}");
    assert_eq!(out.status, Some(2), "expected exit status 2\n{report}");
    assert!(out.stdout.is_empty(), "expected nothing on stdout\n{report}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr\n{report}");
    assert!(out.stderr.ends_with('\n'), "the error line should end with a newline\n{report}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "expected the line to start with `error: `\n{report}");
    assert!(line.len() > "error: ".len() + 10, "the error says too little\n{report}");
    for name in names {
        assert!(line.contains(name), "expected the error to name {name:?}\n{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// The shared model
// ---------------------------------------------------------------------------------------------

/// The output directory of one training run (`<dir>/model`, `metrics.jsonl`, `loss.png`), trained
/// once per test process on the `reverse` task with the tiny config.
fn trained() -> &'static Path {
    static RUN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = RUN.get_or_init(|| {
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!("transformer-cli-{}-shared-run", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let config = dir.join("tiny.json");
        std::fs::write(&config, to_json(&tiny_train_config())).map_err(|e| e.to_string())?;
        let out = dir.join("run");
        let steps = TRAIN_STEPS.to_string();
        let args = ["train", "--task", "reverse", "--steps", &steps, "--batch-size", "16", "--seed", "0", "--config"];
        let args: Vec<&str> = args.into_iter().chain([arg(&config), "--out", arg(&out)]).collect();
        let start = std::time::Instant::now();
        let output = run(&dir, &args, None);
        eprintln!("shared training run: {:.1} s", start.elapsed().as_secs_f64());
        if output.status != Some(0) {
            return Err(format!("the shared training run failed\n{}", output.report()));
        }
        Ok(out)
    });
    match result {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

/// Removes the temp dirs earlier runs of this suite left behind (the shared run, which no test
/// owns, and the dirs of failed tests), where the process that made them has exited. Only where
/// `/proc` tells which processes are alive.
fn remove_stale_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("transformer-cli-")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|pid| pid.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The shared model directory.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| trained().join("model"))
}

/// A copy of the shared model directory in `tmp`, to break one file of.
fn model_copy(tmp: &TempDir) -> PathBuf {
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "vocab.json", "model.safetensors"] {
        std::fs::copy(model().join(file), dir.join(file)).unwrap();
    }
    dir
}

/// The shared model's config.json, parsed.
fn model_config() -> Value {
    serde_json::from_str(&std::fs::read_to_string(model().join("config.json")).unwrap()).unwrap()
}

/// Runs `eval` on a model directory with a small valid data file and asserts a clean error.
fn eval_fails(tmp: &TempDir, model: &Path, names: &[&str]) {
    let data = tmp.write("ok.tsv", "abc\tcba\n");
    fails_cleanly(tmp.path(), &["eval", "--model", arg(model), "--data", arg(&data)], None, names);
}

/// Parses standard output that must be exactly one JSON object on one line.
fn one_json_object(stdout: &str) -> serde_json::Map<String, Value> {
    assert_eq!(stdout.lines().count(), 1, "expected exactly one line of output:\n{stdout}");
    match serde_json::from_str(stdout.trim_end()) {
        Ok(Value::Object(object)) => object,
        other => panic!("expected one JSON object, got {other:?} from:\n{stdout}"),
    }
}

fn keys(object: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The number of parameters of a model with this config, counted by hand from the tensors that
/// a model directory holds (PyTorch's names and shapes, as `torch.nn.Transformer` names them).
fn param_count(cfg: &Value) -> u64 {
    let get = |field: &str| cfg[field].as_u64().unwrap_or_else(|| panic!("{field} in {cfg}"));
    let (v, d, ff) = (get("vocab_size"), get("d_model"), get("d_ff"));
    let attention = (3 * d * d + 3 * d) + (d * d + d); // in_proj weight and bias, out_proj
    let feed_forward = (ff * d + ff) + (d * ff + d); // linear1, linear2
    let norm = 2 * d;
    let encoder = get("n_encoder_layers") * (attention + feed_forward + 2 * norm) + norm;
    let decoder = get("n_decoder_layers") * (2 * attention + feed_forward + 3 * norm) + norm;
    let embed = v * d;
    let generator = if cfg["tie_output"] == json!(true) { 0 } else { v * d } + v;
    let positions = if cfg["positional"] == json!("learned") { get("max_len") * d } else { 0 };
    encoder + decoder + embed + generator + positions
}

// ---------------------------------------------------------------------------------------------
// train
// ---------------------------------------------------------------------------------------------

#[test]
fn train_writes_the_model_dir_metrics_and_plot_and_the_loss_falls() {
    let run = trained();
    for file in ["config.json", "vocab.json", "model.safetensors"] {
        assert!(run.join("model").join(file).is_file(), "train wrote no model/{file} in {}", run.display());
    }
    let cfg = model_config();
    assert_eq!(cfg["d_model"], json!(16), "config.json keeps the given config: {cfg}");
    assert_eq!(cfg["max_len"], json!(32), "config.json keeps the given config: {cfg}");
    let vocab: Value = serde_json::from_str(&std::fs::read_to_string(run.join("model/vocab.json")).unwrap()).unwrap();
    let tokens = vocab["tokens"].as_array().expect("vocab.json has a tokens array");
    assert_eq!(tokens[..4], [json!("<pad>"), json!("<bos>"), json!("<eos>"), json!("<unk>")]);
    assert_eq!(cfg["vocab_size"], json!(tokens.len()), "vocab_size is the vocabulary's size");

    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let mut losses = Vec::new();
    for (i, line) in metrics.lines().enumerate() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("metrics.jsonl:{}: not JSON ({e}): {line}", i + 1));
        assert!(value.is_object(), "metrics.jsonl:{}: not a JSON object: {line}", i + 1);
        if let Some(loss) = value.get("loss") {
            let loss = loss.as_f64().unwrap_or_else(|| panic!("metrics.jsonl:{}: loss is not a number", i + 1));
            assert!(loss.is_finite() && loss > 0.0, "metrics.jsonl:{}: loss {loss}", i + 1);
            losses.push(loss);
        }
    }
    assert!(losses.len() >= 2, "metrics.jsonl logs the loss at least twice:\n{metrics}");
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.9 * first, "the loss did not fall clearly: {first} -> {last}\n{metrics}");

    let png = std::fs::read(run.join("loss.png")).expect("train draws loss.png");
    assert_eq!(png_size(&png), (800, 480), "loss.png");
}

/// The width and height of a PNG file, after checking that it is one: the signature, the IHDR
/// chunk first, and the IEND chunk last.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: it lacks the signature");
    assert_eq!(&png[12..16], b"IHDR", "not a PNG: the first chunk is not IHDR");
    assert!(png.ends_with(b"IEND\xae\x42\x60\x82"), "not a whole PNG: it does not end with IEND");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A run shorter than the learning-rate warm-up (200 steps by default) is a normal small run:
/// it must train, not panic in the schedule.
#[test]
fn train_a_run_shorter_than_the_warmup() {
    let tmp = TempDir::new("short-run");
    let config = tmp.write("tiny.json", to_json(&tiny_train_config()));
    let out = tmp.join("run");
    let args = ["train", "--task", "reverse", "--steps", "80", "--batch-size", "16", "--config"];
    let args: Vec<&str> = args.into_iter().chain([arg(&config), "--out", arg(&out)]).collect();
    let output = run(tmp.path(), &args, None);
    assert_eq!(output.status, Some(0), "{}", output.report());
    // Every parameter of the model gets a gradient: the first step's coverage check is quiet.
    assert!(!output.stderr.contains("warning"), "{}", output.report());
    for file in ["model/config.json", "model/vocab.json", "model/model.safetensors", "metrics.jsonl", "loss.png"] {
        assert!(out.join(file).is_file(), "train wrote no {file}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> =
        metrics.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()?.get("loss")?.as_f64()).collect();
    assert!(losses.len() >= 2 && losses[losses.len() - 1] < losses[0], "the loss did not fall:\n{metrics}");
}

/// A learning rate far too high makes the loss NaN within a few steps. The program stops before
/// applying that step, re-runs it with the engine's finite-value check, prints where the first
/// NaN or infinity came from (op and source line), keeps the last good model and exits with 1.
#[test]
fn train_that_diverges_reports_where_and_keeps_the_last_good_model() {
    let tmp = TempDir::new("diverge");
    let config = tmp.write("tiny.json", to_json(&tiny_train_config()));
    let out = tmp.join("run");
    let args = ["train", "--task", "reverse", "--steps", "30", "--batch-size", "16", "--lr", "1e30", "--config"];
    let args: Vec<&str> = args.into_iter().chain([arg(&config), "--out", arg(&out)]).collect();
    let output = run(tmp.path(), &args, None);
    let report = output.report();
    assert_eq!(output.status, Some(1), "a diverged run exits with 1\n{report}");
    assert!(!output.stderr.contains("panicked"), "{report}");
    assert!(output.stderr.contains("error: training diverged at step "), "{report}");
    let check = output.stderr.lines().find(|l| l.starts_with("non-finite ")).unwrap_or_else(|| panic!("{report}"));
    assert!(
        check.contains(" at transformer/src/") || check.contains(" at autograd/src/"),
        "names a source line: {check}"
    );
    assert!(output.stderr.contains("the model from before step"), "{report}");
    let weights = std::fs::read(out.join("model/model.safetensors")).expect("the last good model is saved");
    // Every saved weight is finite: the bad step was not applied.
    let (header_len, rest) = weights.split_at(8);
    let header_len = u64::from_le_bytes(header_len.try_into().unwrap()) as usize;
    let data = &rest[header_len..];
    assert!(data.chunks_exact(4).all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite()), "{report}");
}

#[test]
fn train_flags_out_of_range_are_named() {
    let tmp = TempDir::new("bad-lr");
    for lr in ["0", "-1", "inf", "NaN"] {
        fails_cleanly(tmp.path(), &["train", "--steps", "1", "--lr", lr], None, &["--lr", lr]);
    }
    for (flag, value, range) in [
        ("--label-smoothing", "1", "[0, 1)"),
        ("--label-smoothing", "-0.1", "[0, 1)"),
        ("--dropout", "1.5", "[0, 1)"),
        ("--beta1", "1", "[0, 1)"),
        ("--beta2", "NaN", "[0, 1)"),
        ("--clip-norm", "0", "above 0"),
        ("--clip-norm", "inf", "above 0"),
        ("--warmup", "-3", "--warmup"),
        ("--schedule", "cosine", "linear, noam or constant"),
        ("--weight-decay", "-1", ">= 0"),
        ("--accumulate", "0", "1..=1024"),
        ("--shards", "0", "1..=1024"),
        ("--shards", "1025", "1..=1024"),
    ] {
        fails_cleanly(tmp.path(), &["train", "--steps", "1", flag, value], None, &[flag, range]);
    }
}

#[test]
fn train_takes_every_optimizer_and_loss_flag() {
    let tmp = TempDir::new("train-flags");
    let config = tmp.write("tiny.json", to_json(&tiny_train_config()));
    let out = tmp.join("run");
    let args = [
        "train",
        "--task",
        "reverse",
        "--config",
        arg(&config),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--label-smoothing",
        "0",
        "--clip-norm",
        "0.5",
        "--dropout",
        "0.2",
        "--beta1",
        "0.8",
        "--beta2",
        "0.99",
        "--out",
        arg(&out),
    ];
    succeeds(tmp.path(), &args, None);
    for (schedule, decay) in [("noam", "0.01"), ("constant", "0")] {
        let more = ["--schedule", schedule, "--weight-decay", decay, "--accumulate", "2", "--shards", "1"];
        succeeds(tmp.path(), &[&args[..], &more[..]].concat(), None);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let first: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        let lr = first["lr"].as_f64().unwrap();
        assert!(lr > 0.0 && lr <= 3e-3 * (1.0 + 1e-9), "{schedule}: lr {lr} at step {}", first["step"]);
    }
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["dropout"], json!(0.2), "--dropout is saved in the model's config");
}

#[test]
fn train_on_a_tsv_file() {
    let tmp = TempDir::new("train-tsv");
    let config = tmp.write("tiny.json", to_json(&tiny_train_config()));
    let lines: String =
        (0..40).map(|i| format!("{i}\t{}\n", i.to_string().chars().rev().collect::<String>())).collect();
    let data = tmp.write("numbers.tsv", lines);
    let out = tmp.join("run");
    let args = ["train", "--data", arg(&data), "--steps", "200", "--batch-size", "8", "--config", arg(&config)];
    let args: Vec<&str> = args.into_iter().chain(["--out", arg(&out)]).collect();
    succeeds(tmp.path(), &args, None);
    let vocab = std::fs::read_to_string(out.join("model/vocab.json")).unwrap();
    let vocab: Value = serde_json::from_str(&vocab).unwrap();
    assert_eq!(vocab["tokens"].as_array().unwrap().len(), 4 + 10, "the specials and the ten digits: {vocab}");
}

// ---------------------------------------------------------------------------------------------
// eval, translate, bench
// ---------------------------------------------------------------------------------------------

#[test]
fn eval_prints_one_json_object() {
    let tmp = TempDir::new("eval");
    // Targets of several lengths, one with characters the vocabulary lacks (counted as chars).
    let examples = [("abc", "cba"), ("hello", "olleh"), ("xy", "yx"), ("q", "q"), ("日本", "本日")];
    let text: String = examples.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    let data = tmp.write("data.tsv", text);
    let stdout = succeeds(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None);
    let object = one_json_object(&stdout);
    assert_eq!(keys(&object), ["exact_match", "examples", "loss", "token_accuracy", "tokens"], "{stdout}");
    assert_eq!(object["examples"].as_u64(), Some(examples.len() as u64), "{stdout}");
    let tokens: usize = examples.iter().map(|(_, t)| t.chars().count() + 1).sum();
    assert_eq!(object["tokens"].as_u64(), Some(tokens as u64), "one per target char plus <eos>: {stdout}");
    let loss = object["loss"].as_f64().expect("loss is a number");
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    for key in ["token_accuracy", "exact_match"] {
        let value = object[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number: {stdout}"));
        assert!((0.0..=1.0).contains(&value), "{key} = {value} is outside [0, 1]");
    }
    // The same file with a trailing blank line and CRLF line ends gives the same result.
    let crlf: String = examples.iter().map(|(s, t)| format!("{s}\t{t}\r\n")).collect::<String>() + "\r\n";
    let data = tmp.write("crlf.tsv", crlf);
    let again = succeeds(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None);
    assert_eq!(again, stdout);
}

#[test]
fn translate_prints_one_line_per_input() {
    let tmp = TempDir::new("translate");
    let model = arg(model());
    let greedy = succeeds(tmp.path(), &["translate", "--model", model, "a", "b"], None);
    assert_eq!(greedy.matches('\n').count(), 2, "two inputs, two lines:\n{greedy:?}");
    assert!(greedy.ends_with('\n'));

    let inputs = ["abc", "hello", "xy", "ponml"];
    let from_args = succeeds(tmp.path(), &[&["translate", "--model", model][..], &inputs].concat(), None);
    assert_eq!(from_args.matches('\n').count(), inputs.len(), "{from_args:?}");
    let stdin = inputs.join("\n") + "\n";
    let from_stdin = succeeds(tmp.path(), &["translate", "--model", model], Some(&stdin));
    assert_eq!(from_stdin, from_args, "stdin (one input a line) translates like arguments");

    let beam = succeeds(tmp.path(), &[&["translate", "--model", model, "--beam", "3"][..], &inputs].concat(), None);
    assert_eq!(beam.matches('\n').count(), inputs.len(), "{beam:?}");
    let beam_stdin = succeeds(tmp.path(), &["translate", "--model", model, "--beam", "3"], Some(&stdin));
    assert_eq!(beam_stdin, beam);
    let beam1 = succeeds(tmp.path(), &[&["translate", "--model", model, "--beam", "1"][..], &inputs].concat(), None);
    assert_eq!(beam1, from_args, "beam search of width 1 is greedy decoding");
}

/// `--attention` draws a row of panels per input, one panel per head, with a cell per source
/// token (and `<eos>`) across and per output token (and `<eos>`) down.
#[test]
fn translate_draws_the_cross_attention() {
    let tmp = TempDir::new("translate-attention");
    let png = tmp.join("attention.png");
    let inputs = ["abc", "hello"];
    let args = [&["translate", "--model", arg(model()), "--attention", arg(&png)][..], &inputs].concat();
    let outputs = succeeds(tmp.path(), &args, None);
    let without = succeeds(tmp.path(), &[&["translate", "--model", arg(model())][..], &inputs].concat(), None);
    assert_eq!(outputs, without, "drawing changes no translation");
    let heads = model_config()["n_heads"].as_u64().unwrap() as u32;
    // The layout: 16 px around panels, 22 px a cell, 26 px of labels, 22 px of title.
    let chars = |s: &str| s.chars().count() as u32;
    let width = inputs.iter().map(|i| 16 + heads * (26 + 22 * (chars(i) + 1) + 16)).max().unwrap();
    let height = 16 + outputs.lines().map(|o| 22 + 26 + 22 * (chars(o) + 1) + 16).sum::<u32>();
    let bytes = std::fs::read(&png).expect("translate --attention writes the file");
    assert_eq!(png_size(&bytes), (width, height), "outputs {outputs:?}");
}

#[test]
fn translate_takes_empty_and_unknown_inputs_and_names_an_overlong_one() {
    let tmp = TempDir::new("translate-long");
    let fits = "abcdefghij".repeat(3) + "a"; // 31 characters + <eos> = max_len 32
    let long = fits.clone() + "b";
    for beam in [None, Some("2")] {
        let mut args = vec!["translate", "--model", arg(model())];
        args.extend(beam.map(|k| ["--beam", k]).into_iter().flatten());
        let stdout = succeeds(tmp.path(), &[&args[..], &[fits.as_str(), "", "héllo wörld"]].concat(), None);
        assert_eq!(stdout.matches('\n').count(), 3, "{stdout:?}");
        fails_cleanly(tmp.path(), &[&args[..], &["ok", long.as_str()]].concat(), None, &["input 2", "33", "32"]);
        fails_cleanly(tmp.path(), &args, Some(&format!("ok\n{long}\n")), &["stdin:2", "max_len of 32"]);
    }
}

#[test]
fn bench_prints_one_json_object() {
    let tmp = TempDir::new("bench");
    let base = tiny_config(30);
    let mut variant = base.clone();
    variant["tie_output"] = json!(true);
    variant["positional"] = json!("learned");
    variant["activation"] = json!("gelu");
    variant["norm_first"] = json!(false);
    for (name, cfg, expected_params) in [("tiny.json", &base, 6622), ("tied.json", &variant, 6622 - 30 * 16 + 32 * 16)]
    {
        assert_eq!(param_count(cfg), expected_params, "the hand count of {name}");
        let config = tmp.write(name, to_json(cfg));
        let args = [
            "bench",
            "--config",
            arg(&config),
            "--batch-size",
            "4",
            "--src-len",
            "8",
            "--tgt-len",
            "8",
            "--steps",
            "2",
        ];
        let stdout = succeeds(tmp.path(), &args, None);
        let object = one_json_object(&stdout);
        assert_eq!(keys(&object), ["ms_per_step", "params", "tokens_per_s"], "{stdout}");
        assert_eq!(object["params"].as_u64(), Some(expected_params), "{name}: {stdout}");
        let ms = object["ms_per_step"].as_f64().expect("ms_per_step is a number");
        let tokens_per_s = object["tokens_per_s"].as_f64().expect("tokens_per_s is a number");
        assert!(ms.is_finite() && ms >= 0.0, "ms_per_step {ms}");
        assert!(tokens_per_s.is_finite() && tokens_per_s > 0.0, "tokens_per_s {tokens_per_s}");
        if ms >= 1.0 {
            // tokens = batch × tgt-len per step; ms_per_step is rounded to 0.1 ms.
            let implied = 4.0 * 8.0 * 1000.0 / ms;
            assert!((tokens_per_s / implied - 1.0).abs() < 0.1, "{tokens_per_s} tokens/s vs {ms} ms per step");
        }
        // Any number of shards, more than the batch's rows too, times the same step.
        for shards in ["1", "3", "9"] {
            let stdout = succeeds(tmp.path(), &[&args[..], &["--shards", shards]].concat(), None);
            assert_eq!(one_json_object(&stdout)["params"].as_u64(), Some(expected_params), "{stdout}");
        }
        fails_cleanly(tmp.path(), &[&args[..], &["--shards", "0"]].concat(), None, &["--shards", "1..=1024"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad model directories
// ---------------------------------------------------------------------------------------------

#[test]
fn error_missing_model_dir() {
    let tmp = TempDir::new("no-model");
    let missing = tmp.join("no-such-model");
    eval_fails(&tmp, &missing, &["no-such-model"]);
    fails_cleanly(tmp.path(), &["translate", "--model", arg(&missing), "abc"], None, &["no-such-model"]);
}

#[test]
fn error_model_dir_without_config() {
    let tmp = TempDir::new("no-config");
    let dir = model_copy(&tmp);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    eval_fails(&tmp, &dir, &["config.json"]);
}

#[test]
fn error_model_dir_without_vocab_or_weights() {
    let tmp = TempDir::new("no-vocab");
    let dir = model_copy(&tmp);
    std::fs::remove_file(dir.join("vocab.json")).unwrap();
    eval_fails(&tmp, &dir, &["vocab.json"]);
    let dir = model_copy(&tmp);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    eval_fails(&tmp, &dir, &["model.safetensors"]);
}

#[test]
fn error_config_not_json() {
    let tmp = TempDir::new("config-not-json");
    let dir = model_copy(&tmp);
    std::fs::write(dir.join("config.json"), "{ \"vocab_size\": 30, d_model: 16 ").unwrap();
    eval_fails(&tmp, &dir, &["config.json"]);
    std::fs::write(dir.join("config.json"), "").unwrap();
    eval_fails(&tmp, &dir, &["config.json"]);
}

/// A copy of the shared model in a new temp dir whose config.json has `edit` applied.
fn model_with_config(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> (TempDir, PathBuf) {
    // A neutral dir name: the names an error must contain are looked for in the whole line.
    let tmp = TempDir::new("cfg");
    let dir = model_copy(&tmp);
    let mut cfg = model_config();
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(dir.join("config.json"), to_json(&cfg)).unwrap();
    (tmp, dir)
}

/// Asserts that `eval` fails cleanly on a model whose config.json has `edit` applied, naming
/// config.json and every one of `names`.
fn config_fails(edit: impl FnOnce(&mut serde_json::Map<String, Value>), names: &[&str]) {
    let (tmp, dir) = model_with_config(edit);
    eval_fails(&tmp, &dir, &[&["config.json"][..], names].concat());
}

#[test]
fn error_config_wrong_type_names_the_field() {
    config_fails(|c| _ = c.insert("d_model".into(), json!("sixteen")), &["d_model"]);
    config_fails(|c| _ = c.insert("norm_first".into(), json!("yes")), &["norm_first"]);
}

#[test]
fn error_config_unknown_activation_names_the_field() {
    config_fails(|c| _ = c.insert("activation".into(), json!("swish")), &["activation", "swish"]);
}

#[test]
fn error_config_missing_field_names_the_field() {
    config_fails(|c| _ = c.remove("d_ff"), &["d_ff"]);
    config_fails(|c| _ = c.remove("vocab_size"), &["vocab_size"]);
}

#[test]
fn error_config_absurd_sizes_are_refused_before_any_allocation() {
    config_fails(|c| _ = c.insert("max_len".into(), json!(9223372036854775807u64)), &["max_len", "65536"]);
    config_fails(|c| _ = c.insert("d_ff".into(), json!(1u64 << 40)), &["d_ff"]);
    config_fails(|c| _ = c.insert("vocab_size".into(), json!(1u64 << 40)), &["vocab_size"]);
}

#[test]
fn error_config_unknown_field_names_the_field() {
    config_fails(|c| _ = c.insert("colour".into(), json!(1)), &["colour"]);
}

#[test]
fn error_config_invalid_values_name_the_field() {
    config_fails(|c| _ = c.insert("n_heads".into(), json!(3)), &["n_heads"]);
    config_fails(|c| _ = c.insert("dropout".into(), json!(1.5)), &["dropout"]);
    config_fails(|c| _ = c.insert("d_model".into(), json!(0)), &["d_model"]);
}

#[test]
fn error_vocab_not_json() {
    let tmp = TempDir::new("vocab-json");
    let dir = model_copy(&tmp);
    std::fs::write(dir.join("vocab.json"), "{\"tokens\": [\"<pad>\", ").unwrap();
    eval_fails(&tmp, &dir, &["vocab.json"]);
    std::fs::write(dir.join("vocab.json"), "[\"<pad>\"]").unwrap();
    eval_fails(&tmp, &dir, &["vocab.json"]);
}

#[test]
fn error_vocab_size_differs_from_config() {
    let tmp = TempDir::new("vocab-count");
    let dir = model_copy(&tmp);
    std::fs::write(dir.join("vocab.json"), r#"{"tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]}"#).unwrap();
    eval_fails(&tmp, &dir, &["vocab.json", "vocab_size"]);
}

#[test]
fn error_safetensors_truncated() {
    let tmp = TempDir::new("truncated");
    let dir = model_copy(&tmp);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    for keep in [4, 500, bytes.len() / 2, bytes.len() - 10] {
        std::fs::write(dir.join("model.safetensors"), &bytes[..keep]).unwrap();
        eval_fails(&tmp, &dir, &["model.safetensors"]);
    }
}

#[test]
fn error_safetensors_from_a_different_config() {
    // Wider, deeper, and tied: a tensor with the wrong shape, a missing one, an extra one.
    for (field, value) in [("d_model", json!(32)), ("n_encoder_layers", json!(2)), ("tie_output", json!(true))] {
        let (tmp, dir) = model_with_config(|c| _ = c.insert(field.into(), value));
        eval_fails(&tmp, &dir, &["model.safetensors", "tensor"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad data files
// ---------------------------------------------------------------------------------------------

#[test]
fn error_data_file_missing() {
    let tmp = TempDir::new("no-data");
    let missing = tmp.join("no-such.tsv");
    fails_cleanly(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&missing)], None, &["no-such.tsv"]);
    fails_cleanly(tmp.path(), &["train", "--data", arg(&missing), "--out", "run"], None, &["no-such.tsv"]);
}

#[test]
fn error_data_line_without_tab_names_file_and_line() {
    let tmp = TempDir::new("no-tab");
    let data = tmp.write("bad.tsv", "abc\tcba\nhello\tolleh\nno tab here\nxy\tyx\n");
    let at = format!("{}:3", data.display());
    fails_cleanly(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None, &[&at]);
    fails_cleanly(tmp.path(), &["train", "--data", arg(&data), "--out", "run"], None, &[&at]);
}

#[test]
fn error_data_file_empty() {
    let tmp = TempDir::new("empty-data");
    for (name, text) in [("empty.tsv", ""), ("blank.tsv", "\n\n")] {
        let data = tmp.write(name, text);
        fails_cleanly(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None, &[name]);
        fails_cleanly(tmp.path(), &["train", "--data", arg(&data), "--out", "run"], None, &[name]);
    }
}

#[test]
fn error_data_file_not_utf8_names_the_line() {
    let tmp = TempDir::new("latin1");
    let data = tmp.write("latin1.tsv", b"abc\tcba\ncaf\xe9\tx\n");
    let at = format!("{}:2", data.display());
    fails_cleanly(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None, &[&at]);
}

/// An example longer than the model's max_len cannot be evaluated: that is an error about that
/// line of the data file, not a panic in the model.
#[test]
fn error_eval_example_longer_than_max_len_names_the_line() {
    let tmp = TempDir::new("eval-long");
    let long = "ab".repeat(20); // 40 characters + <eos> > max_len 32
    for (name, line) in [("long-source.tsv", format!("{long}\tab")), ("long-target.tsv", format!("ab\t{long}"))] {
        let data = tmp.write(name, format!("abc\tcba\n{line}\n"));
        let at = format!("{}:2", data.display());
        fails_cleanly(tmp.path(), &["eval", "--model", arg(model()), "--data", arg(&data)], None, &[&at, "max_len"]);
    }
}

#[test]
fn error_stdin_not_utf8() {
    let tmp = TempDir::new("stdin-latin1");
    // Invalid UTF-8 cannot go through a &str; write it to a file and pass it as stdin.
    let input = tmp.write("input.txt", b"ab\xffc\n");
    let out = Command::new(BIN)
        .args(["translate", "--model", arg(model())])
        .current_dir(tmp.path())
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("stdin"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Bad flags
// ---------------------------------------------------------------------------------------------

#[test]
fn error_unknown_task() {
    let tmp = TempDir::new("unknown-name");
    fails_cleanly(tmp.path(), &["train", "--task", "nosuch", "--out", "run"], None, &["--task", "nosuch"]);
}

#[test]
fn error_zero_batch_size_steps_threads() {
    let tmp = TempDir::new("zeros");
    for flag in ["--batch-size", "--steps", "--threads"] {
        fails_cleanly(tmp.path(), &["train", "--task", "reverse", flag, "0", "--out", "run"], None, &[flag]);
    }
    assert!(!tmp.join("run").exists(), "a rejected run must not write its output dir");
}

#[test]
fn error_translate_beam_zero() {
    let tmp = TempDir::new("translate-zero");
    fails_cleanly(tmp.path(), &["translate", "--model", arg(model()), "--beam", "0", "abc"], None, &["--beam"]);
    fails_cleanly(tmp.path(), &["translate", "--model", arg(model()), "--beam", "wide", "abc"], None, &["--beam"]);
}

#[test]
fn error_bench_flags() {
    let tmp = TempDir::new("bench-bad");
    let config = tmp.write("tiny.json", to_json(&tiny_config(30)));
    let config = arg(&config);
    let good = [("--batch-size", "4"), ("--src-len", "8"), ("--tgt-len", "8"), ("--steps", "2"), ("--threads", "1")];
    // Each flag zero in turn, and lengths past the config's max_len (32).
    let bad = [
        ("--batch-size", "0"),
        ("--src-len", "0"),
        ("--tgt-len", "0"),
        ("--steps", "0"),
        ("--threads", "0"),
        ("--src-len", "33"),
        ("--tgt-len", "100"),
    ];
    for (flag, value) in bad {
        let mut args = vec!["bench", "--config", config];
        for (f, v) in good {
            args.extend([f, if f == flag { value } else { v }]);
        }
        fails_cleanly(tmp.path(), &args, None, &[flag]);
    }
    // A config without vocab_size is a train config, not a bench config.
    let train_config = tmp.write("train.json", to_json(&tiny_train_config()));
    let args = ["bench", "--config", arg(&train_config), "--batch-size", "4", "--src-len", "8", "--tgt-len", "8"];
    fails_cleanly(tmp.path(), &args, None, &["train.json", "vocab_size"]);
    let missing = tmp.join("missing.json");
    let args = ["bench", "--config", arg(&missing), "--batch-size", "4", "--src-len", "8", "--tgt-len", "8"];
    fails_cleanly(tmp.path(), &args, None, &["missing.json"]);
}

#[test]
fn error_unknown_flag() {
    let tmp = TempDir::new("unknown-flag");
    let data = tmp.write("ok.tsv", "abc\tcba\n");
    let args = ["eval", "--model", arg(model()), "--data", arg(&data), "--frobnicate"];
    fails_cleanly(tmp.path(), &args, None, &["--frobnicate"]);
    fails_cleanly(tmp.path(), &["train", "--stepz", "10"], None, &["--stepz"]);
    fails_cleanly(tmp.path(), &["nosuchcommand"], None, &["nosuchcommand"]);
}

#[test]
fn error_non_numeric_flag_values() {
    let tmp = TempDir::new("non-numeric");
    fails_cleanly(tmp.path(), &["train", "--task", "reverse", "--steps", "ten"], None, &["--steps", "ten"]);
    fails_cleanly(tmp.path(), &["train", "--task", "reverse", "--batch-size", "1.5"], None, &["--batch-size", "1.5"]);
    fails_cleanly(tmp.path(), &["train", "--task", "reverse", "--seed", "x"], None, &["--seed"]);
}

/// A missing required flag is named, not left on a second line clap would print.
#[test]
fn error_missing_required_flag_names_it() {
    let tmp = TempDir::new("req");
    let data = tmp.write("ok.tsv", "abc\tcba\n");
    fails_cleanly(tmp.path(), &["eval", "--data", arg(&data)], None, &["--model"]);
    fails_cleanly(tmp.path(), &["eval", "--model", arg(model())], None, &["--data"]);
    fails_cleanly(tmp.path(), &["translate"], None, &["--model"]);
    let config = tmp.write("tiny.json", to_json(&tiny_config(30)));
    fails_cleanly(tmp.path(), &["bench", "--config", arg(&config), "--batch-size", "4"], None, &["--src-len"]);
}

/// Running the program with no subcommand says a subcommand is needed (not the program's blurb).
#[test]
fn error_no_subcommand() {
    let tmp = TempDir::new("bare");
    fails_cleanly(tmp.path(), &[], None, &["subcommand"]);
}

#[test]
fn help_and_version_succeed() {
    let tmp = TempDir::new("help");
    let help = succeeds(tmp.path(), &["--help"], None);
    for command in ["train", "eval", "translate", "bench"] {
        assert!(help.contains(command), "--help lists {command}:\n{help}");
    }
    let version = succeeds(tmp.path(), &["--version"], None);
    assert!(version.starts_with("transformer "), "{version}");
}

// ---------------------------------------------------------------------------------------------
// Bad train configs and outputs
// ---------------------------------------------------------------------------------------------

/// Runs `train` with each (file name, config text) and asserts a clean error naming `names`.
fn train_config_fails(cases: &[(&str, String, &[&str])]) {
    let tmp = TempDir::new("train-cfg");
    for (name, text, names) in cases {
        let config = tmp.write(name, text);
        let args = ["train", "--task", "reverse", "--steps", "5", "--config", arg(&config), "--out", "run"];
        fails_cleanly(tmp.path(), &args, None, names);
    }
}

#[test]
fn error_train_config_bad() {
    let mut heads = tiny_train_config();
    heads["n_heads"] = json!(3);
    let mut missing_field = tiny_train_config();
    missing_field.as_object_mut().unwrap().remove("d_ff");
    train_config_fails(&[
        ("c1.json", "{ d_model: 16".to_string(), &["c1.json"]),
        ("c2.json", to_json(&heads), &["c2.json", "n_heads"]),
        ("c3.json", to_json(&missing_field), &["c3.json", "d_ff"]),
    ]);
    let tmp = TempDir::new("train-cfg");
    let missing = tmp.join("missing.json");
    let args = ["train", "--task", "reverse", "--config", arg(&missing), "--out", "run"];
    fails_cleanly(tmp.path(), &args, None, &["missing.json"]);
}

#[test]
fn error_train_config_wrong_type_or_activation_names_the_field() {
    let mut activation = tiny_train_config();
    activation["activation"] = json!("swish");
    let mut wrong_type = tiny_train_config();
    wrong_type["d_ff"] = json!("thirty-two");
    train_config_fails(&[
        ("c1.json", to_json(&activation), &["c1.json", "activation"]),
        ("c2.json", to_json(&wrong_type), &["c2.json", "d_ff"]),
    ]);
}

/// A config whose max_len is shorter than the task's sequences: one clean line that names the
/// config file and max_len (and no "training on ..." line before it).
#[test]
fn error_train_config_max_len_too_short() {
    let tmp = TempDir::new("train-short-cfg");
    let mut cfg = tiny_train_config();
    cfg["max_len"] = json!(4);
    let config = tmp.write("short.json", to_json(&cfg));
    let args = ["train", "--task", "reverse", "--steps", "5", "--config", arg(&config), "--out", "run"];
    fails_cleanly(tmp.path(), &args, None, &["short.json", "max_len"]);
}

/// An --out that is a file, not a directory: one clean line that names it.
#[test]
fn error_train_out_is_a_file() {
    let tmp = TempDir::new("train-out");
    let config = tmp.write("tiny.json", to_json(&tiny_train_config()));
    let out = tmp.write("taken", "not a directory");
    let args = ["train", "--task", "reverse", "--steps", "5", "--config", arg(&config), "--out", arg(&out)];
    fails_cleanly(tmp.path(), &args, None, &["taken"]);
}

// ---------------------------------------------------------------------------------------------
// The language model: lm train, lm eval, lm generate, bench --decode
// ---------------------------------------------------------------------------------------------

/// A tiny LM config.json (vocab_size is taken from the text).
fn tiny_lm_config() -> Value {
    json!({
        "architecture": "decoder_only", "d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32,
        "dropout": 0.1, "activation": "gelu", "layer_norm_eps": 1e-5, "max_len": 24, "tie_output": true
    })
}

/// A small text with a pattern to learn, several thousand characters long.
fn lm_text() -> String {
    (0..300).map(|i| format!("let x{} = {};\n", i % 7, i % 10)).collect()
}

/// One trained language model, shared: (temp dir, model dir, text file).
fn trained_lm() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("transformer-cli-{}-lm", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("code.txt");
        std::fs::write(&text, lm_text()).unwrap();
        let config = dir.join("lm.json");
        std::fs::write(&config, to_json(&tiny_lm_config())).unwrap();
        let args =
            ["lm", "train", "--text", arg(&text), "--config", arg(&config), "--steps", "150", "--batch-size", "8"];
        let stdout = succeeds(&dir, &[&args[..], &["--out", arg(&dir.join("run"))]].concat(), None);
        assert!(stdout.contains("held-out loss:") && stdout.contains("bits per character"), "{stdout}");
        assert!(stdout.contains("sample:\npub fn "), "{stdout}");
        (text, dir.join("run"))
    })
}

#[test]
fn lm_train_writes_the_model_dir_metrics_and_plot_and_learns() {
    let (_, run) = trained_lm();
    for file in ["model/config.json", "model/vocab.json", "model/model.safetensors", "metrics.jsonl", "loss.png"] {
        assert!(run.join(file).is_file(), "lm train should write {file}");
    }
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(run.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "decoder_only");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> =
        metrics.lines().filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["loss"].as_f64()).collect();
    assert!(losses.len() >= 3 && losses.last().unwrap() < &(losses[0] * 0.6), "the loss should fall: {losses:?}");
    let last: Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(last["held_out_bits_per_char"].as_f64().is_some_and(f64::is_finite), "{last}");
}

#[test]
fn lm_eval_prints_characters_loss_and_bits() {
    let (text, run) = trained_lm();
    let tmp = TempDir::new("lm-eval");
    let stdout = succeeds(tmp.path(), &["lm", "eval", "--model", arg(&run.join("model")), "--text", arg(text)], None);
    let object = one_json_object(&stdout);
    assert_eq!(keys(&object), ["bits_per_char", "characters", "loss"], "{stdout}");
    assert_eq!(object["characters"].as_u64(), Some(lm_text().chars().count() as u64));
    let (loss, bits) = (object["loss"].as_f64().unwrap(), object["bits_per_char"].as_f64().unwrap());
    assert!(loss.is_finite() && loss > 0.0 && loss < 2.0, "a model trained on this text: {stdout}");
    assert!((bits - loss / std::f64::consts::LN_2).abs() < 1e-9, "{stdout}");
}

#[test]
fn lm_generate_is_reproducible_and_fits_max_len() {
    let (_, run) = trained_lm();
    let tmp = TempDir::new("lm-generate");
    let model = run.join("model");
    let generate = |extra: &[&str]| {
        let args = [&["lm", "generate", "--model", arg(&model), "--prompt", "let x"][..], extra].concat();
        succeeds(tmp.path(), &args, None)
    };
    let greedy = generate(&["--temperature", "0", "--max-new-tokens", "12"]);
    assert_eq!(
        greedy,
        generate(&["--temperature", "0", "--max-new-tokens", "12", "--seed", "5"]),
        "greedy ignores the seed"
    );
    assert!(greedy.starts_with("let x") && greedy.trim_end_matches('\n').chars().count() >= 5 + 12 - 1, "{greedy:?}");
    let sampled = generate(&["--seed", "3", "--top-k", "4"]);
    assert_eq!(sampled, generate(&["--seed", "3", "--top-k", "4"]), "a seed fixes the sample");
    // Without --max-new-tokens the text fills the context: 24 characters in all.
    assert_eq!(sampled.strip_suffix('\n').unwrap().chars().count(), 24, "{sampled:?}");
}

#[test]
fn lm_bad_input_is_named() {
    let (text, run) = trained_lm();
    let tmp = TempDir::new("lm-bad");
    let lm_model = run.join("model");
    let m = arg(&lm_model);
    fails_cleanly(
        tmp.path(),
        &["lm", "generate", "--model", m, "--max-new-tokens", "30"],
        None,
        &["--max-new-tokens", "24"],
    );
    fails_cleanly(tmp.path(), &["lm", "generate", "--model", m, "--temperature", "-1"], None, &["--temperature"]);
    fails_cleanly(tmp.path(), &["lm", "generate", "--model", m, "--top-k", "0"], None, &["--top-k"]);
    let long_prompt = "x".repeat(24);
    fails_cleanly(tmp.path(), &["lm", "generate", "--model", m, "--prompt", &long_prompt], None, &["--prompt"]);
    // A translator's directory is not a language model.
    fails_cleanly(
        tmp.path(),
        &["lm", "eval", "--model", arg(model()), "--text", arg(text)],
        None,
        &["config.json", "decoder_only"],
    );
    fails_cleanly(tmp.path(), &["lm", "train", "--text", "missing.txt", "--steps", "1"], None, &["missing.txt"]);
    let binary = tmp.write("binary.txt", [0x66u8, 0x6f, 0xff, 0xfe]);
    fails_cleanly(tmp.path(), &["lm", "train", "--text", arg(&binary), "--steps", "1"], None, &["binary.txt", "UTF-8"]);
    let mut bad = tiny_lm_config();
    bad["n_heads"] = json!(3);
    let config = tmp.write("bad.json", to_json(&bad));
    fails_cleanly(
        tmp.path(),
        &["lm", "train", "--config", arg(&config), "--steps", "1"],
        None,
        &["bad.json", "n_heads"],
    );
    let short = tmp.write("short.txt", "tiny");
    let ok_config = tmp.write("lm.json", to_json(&tiny_lm_config()));
    fails_cleanly(
        tmp.path(),
        &["lm", "train", "--text", arg(&short), "--config", arg(&ok_config), "--steps", "1"],
        None,
        &["short.txt", "max_len"],
    );
}

#[test]
fn bench_decode_prints_one_line_per_batch_and_cache() {
    let tmp = TempDir::new("bench-decode");
    let mut cfg = tiny_lm_config();
    cfg["vocab_size"] = json!(20);
    let config = tmp.write("lm.json", to_json(&cfg));
    let stdout = succeeds(
        tmp.path(),
        &["bench", "--decode", "--config", arg(&config), "--batch-size", "1,3", "--steps", "1"],
        None,
    );
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(u64, bool)> =
        lines.iter().map(|l| (l["batch"].as_u64().unwrap(), l["cache"].as_bool().unwrap())).collect();
    assert_eq!(seen, [(1, true), (1, false), (3, true), (3, false)], "{stdout}");
    for l in &lines {
        assert_eq!(l["new_tokens"].as_u64(), Some(23), "{stdout}");
        assert!(l["tokens_per_s"].as_f64().is_some_and(|t| t.is_finite() && t > 0.0), "{stdout}");
    }
}

#[test]
fn lm_train_takes_every_knob_train_takes_and_names_bad_ones() {
    let tmp = TempDir::new("lm-knobs");
    let text = tmp.write("code.txt", lm_text());
    let config = tmp.write("lm.json", to_json(&tiny_lm_config()));
    let base = ["lm", "train", "--text", arg(&text), "--config", arg(&config), "--steps", "4", "--batch-size", "2"];
    for (flag, value, range) in [
        ("--label-smoothing", "1", "[0, 1)"),
        ("--beta2", "1", "[0, 1)"),
        ("--dropout", "-0.5", "[0, 1)"),
        ("--accumulate", "0", "1..=1024"),
        ("--shards", "0", "1..=1024"),
        ("--schedule", "cosine", "linear, noam or constant"),
        ("--clip-norm", "-1", "above 0"),
        ("--lr", "0", "above 0"),
    ] {
        fails_cleanly(tmp.path(), &[&base[..], &[flag, value]].concat(), None, &[flag, range]);
    }
    let out = tmp.join("run");
    let knobs = [
        "--warmup",
        "1",
        "--schedule",
        "noam",
        "--label-smoothing",
        "0.1",
        "--clip-norm",
        "0.5",
        "--dropout",
        "0",
        "--weight-decay",
        "0",
        "--beta1",
        "0.8",
        "--beta2",
        "0.95",
        "--accumulate",
        "2",
        "--shards",
        "3",
        "--eval-every",
        "2",
        "--save-every",
        "3",
        "--out",
        arg(&out),
    ];
    succeeds(tmp.path(), &[&base[..], &knobs].concat(), None);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let evals = metrics.lines().filter(|l| l.contains("held_out_loss")).count();
    assert_eq!(evals, 2, "--eval-every 2 over 4 steps: at step 2, and the final one\n{metrics}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["run"]["accumulate"], json!(2));
    assert_eq!(state["run"]["shards"], json!(3));
    assert_eq!(state["run"]["schedule"], json!("noam"));
    assert_eq!(state["progress"]["complete"], json!(true));
}

#[test]
fn resume_takes_only_threads_and_names_what_is_missing() {
    let tmp = TempDir::new("resume-flags");
    for extra in [["--steps", "9"], ["--lr", "0.1"], ["--task", "copy"], ["--save-every", "2"]] {
        fails_cleanly(
            tmp.path(),
            &[&["train", "--resume", "somewhere"][..], &extra].concat(),
            None,
            &["--resume", extra[0]],
        );
    }
    fails_cleanly(
        tmp.path(),
        &["lm", "train", "--resume", "somewhere", "--text", "t.txt"],
        None,
        &["--resume", "--text"],
    );
    fails_cleanly(tmp.path(), &["train", "--resume", "nowhere"], None, &["nowhere", "not a directory"]);
    std::fs::create_dir_all(tmp.join("empty")).unwrap();
    fails_cleanly(tmp.path(), &["train", "--resume", "empty"], None, &["checkpoint", "no checkpoint to resume"]);
    // A finished run has nothing left to do, and says so.
    let (_, lm_run) = trained_lm();
    fails_cleanly(tmp.path(), &["lm", "train", "--resume", arg(lm_run)], None, &["is complete", "150 of 150"]);
    fails_cleanly(tmp.path(), &["train", "--resume", arg(lm_run)], None, &["state.json", "lm train --resume"]);
    // A damaged state.json is named, not a panic.
    let copy = tmp.join("damaged");
    std::fs::create_dir_all(copy.join("checkpoint")).unwrap();
    for file in ["config.json", "vocab.json", "model.safetensors", "optimizer.safetensors", "state.json"] {
        std::fs::copy(lm_run.join("checkpoint").join(file), copy.join("checkpoint").join(file)).unwrap();
    }
    let state = std::fs::read_to_string(copy.join("checkpoint/state.json")).unwrap();
    std::fs::write(copy.join("checkpoint/state.json"), state.replace("\"steps\": 150", "\"steps\": \"many\"")).unwrap();
    fails_cleanly(tmp.path(), &["lm", "train", "--resume", arg(&copy)], None, &["state.json", "steps"]);
}
