//! Training that survives interruption, tested on the program itself:
//! - SIGKILL at many random moments, most of them in the middle of a checkpoint save (a save
//!   every step), of fresh and of resumed runs: every time, a whole checkpoint is left that
//!   loads, and resuming from whatever survived ends with the `model.safetensors` of an
//!   uninterrupted run, byte for byte, and the same figures in `metrics.jsonl`;
//! - SIGTERM (what Ctrl-C does, from a service manager): the run saves, stops with exit status
//!   130 and says how to continue.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use transformer::checkpoint::Checkpoint;
use transformer::session::find_checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_transformer");

/// A small translator: a step takes milliseconds, so a save (with its flushes to disk) is a
/// large share of each step and kills often land inside one.
const TINY: &str = r#"{"d_model": 16, "n_heads": 2, "n_encoder_layers": 1, "n_decoder_layers": 1, "d_ff": 32,
  "dropout": 0.1, "activation": "relu", "norm_first": false, "layer_norm_eps": 1e-5,
  "positional": "sinusoidal", "max_len": 32, "scale_embeddings": true, "tie_output": false}"#;

/// Long enough for many kills per run even where a flush to disk costs nothing.
const STEPS: usize = 1500;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transformer-interrupt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `transformer train` on the tiny model, one thread, into `out`.
fn train(dir: &Path, out: &Path, extra: &[&str]) -> Command {
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["train", "--task", "reverse", "--steps", &STEPS.to_string(), "--batch-size", "8", "--threads", "1"])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn resume(out: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["train", "--threads", "1", "--resume"]).arg(out).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// `metrics.jsonl` without its clock readings.
fn figures(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("tokens_per_s");
            object.remove("elapsed_s");
            value
        })
        .collect()
}

fn model_bytes(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("model/model.safetensors")).unwrap()
}

/// The uninterrupted run every interrupted one must end up equal to.
fn reference(dir: &Path) -> (Vec<u8>, Vec<serde_json::Value>) {
    let out = dir.join("reference");
    let done = train(dir, &out, &[]).output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    (model_bytes(&out), figures(&out))
}

/// The checkpoint left in `out` is whole: its model directory loads, and so do the run's
/// settings.
fn assert_loadable(out: &Path, what: &str) {
    let dir = find_checkpoint(out).unwrap_or_else(|e| panic!("{what}: no whole checkpoint: {e}"));
    Checkpoint::load(&dir).unwrap_or_else(|e| panic!("{what}: {} does not load: {e}", dir.display()));
    transformer::train::resume_options(out).unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[test]
fn sigkill_at_random_moments_never_loses_the_checkpoint() {
    let dir = scratch("kill");
    let (want_bytes, want_figures) = reference(&dir);
    let out = dir.join("killed");
    // A fixed xorshift sequence of delays: the same moments on every run of the test.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut delay_ms = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        60 + state % 240
    };
    let (mut kills, mut mid_save, mut checkpointed, mut finished) = (0, 0, false, false);
    for round in 0..40 {
        let mut child = if checkpointed { resume(&out) } else { train(&dir, &out, &["--save-every", "1"]) };
        let mut child = child.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_millis(delay_ms());
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "round {round}: {}", String::from_utf8_lossy(&output.stderr));
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if out.join("checkpoint.partial").exists() || out.join("checkpoint.old").exists() {
            mid_save += 1;
        }
        checkpointed |= out.join("checkpoint").exists() || out.join("checkpoint.old").exists();
        if checkpointed {
            assert_loadable(&out, &format!("after kill {kills}"));
        }
    }
    // Whatever survived, resuming ends where the uninterrupted run ended. (A kill after the
    // last save of a finished run leaves nothing to resume: that is said, and is fine.)
    if !finished {
        let finish = if checkpointed { resume(&out) } else { train(&dir, &out, &[]) }.output().unwrap();
        let stderr = String::from_utf8_lossy(&finish.stderr);
        assert!(finish.status.success() || stderr.contains("is complete"), "{stderr}");
    }
    assert!(
        model_bytes(&out) == want_bytes,
        "after {kills} kills, model.safetensors differs from the uninterrupted run"
    );
    assert_eq!(figures(&out), want_figures, "after {kills} kills");
    println!("{kills} kills, {mid_save} of them in the middle of a save; the resumed run matched byte for byte");
    assert!(kills >= 10, "only {kills} kills landed: the runs finished too fast for the test to mean much");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_saves_a_checkpoint_and_stops() {
    let dir = scratch("term");
    let (want_bytes, want_figures) = reference(&dir);
    let out = dir.join("stopped");
    let child = train(&dir, &out, &["--save-every", "5"]).spawn().unwrap();
    // Wait for the first periodic checkpoint, so the run is well under way.
    let start = Instant::now();
    while !out.join("checkpoint/state.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint after a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        println!("the run finished before SIGTERM arrived; nothing to resume");
    } else {
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        let last = stderr.lines().last().unwrap_or("");
        assert!(last.starts_with("error: stopped after step ") && last.contains("--resume"), "{stderr}");
        assert_loadable(&out, "after SIGTERM");
        let finish = resume(&out).output().unwrap();
        assert!(finish.status.success(), "{}", String::from_utf8_lossy(&finish.stderr));
    }
    assert!(model_bytes(&out) == want_bytes, "model.safetensors differs from the uninterrupted run");
    assert_eq!(figures(&out), want_figures);
    std::fs::remove_dir_all(&dir).unwrap();
}
