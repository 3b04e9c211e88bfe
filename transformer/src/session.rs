//! What both training loops share: the metrics file, the logging window, and the training
//! checkpoint `OUT/checkpoint/` that lets a stopped run continue as if it had never stopped.
//!
//! A checkpoint directory is a model directory (`config.json`, `vocab.json`,
//! `model.safetensors`) plus:
//! - `optimizer.safetensors`: the optimizer's buffers, named as in `torch.optim`'s
//!   `state_dict()` (`{parameter}.exp_avg`, `{parameter}.exp_avg_sq`);
//! - `state.json`: the run's settings, the step reached, each parameter's optimizer step count,
//!   the random generators' positions, the position in the data, and the figures of the
//!   logging interval under way.
//!
//! It is replaced whole or not at all: the new one is written beside it as
//! `checkpoint.partial/`, every file and the directory flushed to disk, then the old one moved
//! aside to `checkpoint.old/` and the new one renamed into place. A crash at any moment leaves
//! either `checkpoint/` or, between the two renames, `checkpoint.old/` complete, and
//! [`find_checkpoint`] takes whichever is whole.

use crate::optim::{Optimizer, OptimizerState};
use crate::{Error, Result};
use autograd::{ParamStore, Tensor};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The checkpoint's directory under a run's output directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// What `state.json` says it is.
const FORMAT: &str = "transformer training checkpoint";
/// The version of the checkpoint layout this program writes and reads.
const VERSION: u32 = 1;

/// Writes `bytes` to `path` as one step: into a file beside it, flushed to disk, then renamed
/// over it. A crash leaves the old file or the new one, never part of either.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.partial"));
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Replaces the directory `dir` by one holding exactly `files`, atomically (see the module
/// documentation). An existing `dir` that is not a checkpoint is left alone with an error.
pub(crate) fn write_dir_atomically(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().map_or("checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let (tmp, old) = (parent.join(format!("{name}.partial")), parent.join(format!("{name}.old")));
    fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::file(path, format!("cannot write the checkpoint: {e}"))
    }
    if dir.exists() && !dir.join("state.json").exists() {
        return Err(Error::file(dir, "exists but holds no state.json: not replacing what is not a checkpoint"));
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for (file, bytes) in files {
        write_synced(&tmp.join(file), bytes)?;
    }
    sync_dir(&tmp)?;
    if dir.exists() {
        // Only now is the old `checkpoint.old/` not needed: `dir` is whole.
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    sync_dir(parent)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| Error::file(path, format!("cannot write: {e}"));
    let mut file = File::create(path).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Flushes a directory's entries (new names, renames) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::file(dir, format!("cannot flush to disk: {e}")))
}

/// The whole checkpoint of the run in `out`: `out/checkpoint/`, or `out/checkpoint.old/` when
/// a crash came between the two renames of a save.
pub fn find_checkpoint(out: &Path) -> Result<PathBuf> {
    let dir = out.join(CHECKPOINT_DIR);
    let old = out.join(format!("{CHECKPOINT_DIR}.old"));
    for candidate in [&dir, &old] {
        if candidate.join("state.json").is_file() {
            return Ok(candidate.clone());
        }
    }
    if !out.is_dir() {
        return Err(Error::file(out, "is not a directory: expected the --out directory of a training run"));
    }
    Err(Error::file(
        &dir,
        "is missing: there is no checkpoint to resume (a run writes one at its end, every --save-every steps, \
         and when stopped by Ctrl-C)",
    ))
}

/// The position of a ChaCha12 generator in its stream: enough to continue it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RngState {
    /// The 32-byte key, in hex.
    seed: String,
    stream: u64,
    /// 32-bit words drawn so far, in decimal (it is a u128).
    word_pos: String,
}

impl RngState {
    pub(crate) fn of(rng: &ChaCha12Rng) -> Self {
        let seed = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        RngState { seed, stream: rng.get_stream(), word_pos: rng.get_word_pos().to_string() }
    }

    pub(crate) fn restore(&self) -> std::result::Result<ChaCha12Rng, String> {
        use rand::SeedableRng;
        let bad = || format!("a generator's state is damaged (seed {:?}, word_pos {:?})", self.seed, self.word_pos);
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let word_pos: u128 = self.word_pos.parse().map_err(|_| bad())?;
        let mut rng = ChaCha12Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// The figures of one logging interval: summed as steps run, averaged and reset when logged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct WindowSums {
    loss: f64,
    hits: usize,
    counted: usize,
    steps: usize,
    tokens: usize,
}

/// [`WindowSums`] with the clock of its interval.
pub(crate) struct Window {
    sums: WindowSums,
    start: Instant,
}

impl Window {
    pub(crate) fn new() -> Self {
        Window::resume(WindowSums::default())
    }

    fn resume(sums: WindowSums) -> Self {
        Window { sums, start: Instant::now() }
    }

    /// One step's mean loss, correct predictions, predictions counted and tokens processed.
    pub(crate) fn add(&mut self, loss: f64, hits: usize, counted: usize, tokens: usize) {
        let s = &mut self.sums;
        s.loss += loss;
        s.hits += hits;
        s.counted += counted;
        s.steps += 1;
        s.tokens += tokens;
    }

    /// (mean loss, token accuracy, tokens per second) of the interval, and a fresh one begun.
    pub(crate) fn take(&mut self) -> (f64, f64, f64) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let s = &self.sums;
        let figures = (s.loss / s.steps.max(1) as f64, s.hits as f64 / s.counted.max(1) as f64, s.tokens as f64 / secs);
        *self = Window::new();
        figures
    }
}

/// Where a run stands, apart from its weights, optimizer and data: what `state.json` holds
/// besides the settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Optimizer steps done.
    pub step: usize,
    /// Training seconds so far, over all sessions.
    pub elapsed_s: f64,
    /// The length of `metrics.jsonl` when the checkpoint was written; a resumed run cuts
    /// lines written after it.
    pub metrics_bytes: u64,
    /// (step, mean loss) of every logged interval: the loss plot.
    pub curve: Vec<(usize, f64)>,
    window: WindowSums,
    /// Updates each parameter has taken in the optimizer, by name.
    pub optimizer_steps: BTreeMap<String, u64>,
    /// The buffer names of `optimizer.safetensors` (`exp_avg`, `exp_avg_sq`).
    pub optimizer_buffers: Vec<String>,
    /// The random generators by role (`dropout`, `data`).
    pub rngs: BTreeMap<String, RngState>,
    /// The run finished: its final evaluation is in the metrics.
    pub complete: bool,
}

/// `state.json`: a header that says what the file is, the run's settings `R`, where it stands,
/// and the position in the data `D`.
#[derive(Serialize, Deserialize)]
pub(crate) struct State<R, D> {
    format: String,
    version: u32,
    /// `translator` or `language_model`.
    family: String,
    pub run: R,
    pub progress: Progress,
    pub data: D,
}

/// Reads `state.json` of a checkpoint of `family`, with errors that say what to do.
pub(crate) fn read_state<R: serde::de::DeserializeOwned, D: serde::de::DeserializeOwned>(
    dir: &Path,
    family: &str,
) -> Result<State<R, D>> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(&path, e))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(Error::file(&path, format!("is not a training checkpoint (expected \"format\": \"{FORMAT}\")")));
    }
    if value.get("version").and_then(|v| v.as_u64()) != Some(u64::from(VERSION)) {
        return Err(Error::file(
            &path,
            format!("was written in a checkpoint layout other than version {VERSION}, which this program reads"),
        ));
    }
    match value.get("family").and_then(|f| f.as_str()) {
        Some(f) if f == family => {}
        Some("language_model") => {
            return Err(Error::file(
                &path,
                "holds a language-model run: continue it with `transformer lm train --resume`",
            ));
        }
        Some("translator") => {
            return Err(Error::file(&path, "holds a translator run: continue it with `transformer train --resume`"));
        }
        other => return Err(Error::file(&path, format!("names an unknown model family {other:?}"))),
    }
    serde_path_to_error::deserialize(value).map_err(|e| Error::file(&path, crate::config::describe_json_error(&e)))
}

/// The settings `R` of the unfinished run whose checkpoint is in `out`.
pub(crate) fn stored_run<R: serde::de::DeserializeOwned, D: serde::de::DeserializeOwned>(
    out: &Path,
    family: &str,
) -> Result<R> {
    let state: State<R, D> = read_state(&find_checkpoint(out)?, family)?;
    if state.progress.complete {
        return Err(complete(out, state.progress.step));
    }
    Ok(state.run)
}

/// The error of resuming a run that has finished.
pub(crate) fn complete(out: &Path, steps: usize) -> Error {
    Error::new(format!("the run in {} is complete ({steps} of {steps} steps): nothing to resume", out.display()))
}

/// A family's position in its data, which records the fingerprint of the data it was in.
pub(crate) trait DataPosition: serde::de::DeserializeOwned {
    /// The fingerprint of the data the run trained on.
    fn fingerprint(&self) -> &str;
}

/// What a checkpoint gives back to a freshly built run, beyond what [`resume_from`] sets in
/// place: the session to continue, the step reached, the dropout generator, and the family's
/// position in its data.
pub(crate) struct Resumed<D> {
    pub session: Session,
    pub step: usize,
    pub dropout: ChaCha12Rng,
    pub data: D,
}

/// Reads checkpoint `dir` of a `family` run back into its freshly built parts: the
/// parameters and the optimizer are set in place, the rest returned. The run must be
/// unfinished, its data's fingerprint `fingerprint` (else the error says it trained on
/// `other_data`, such as "another text than notes.txt holds"), and its vocabulary `vocab`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resume_from<R: serde::de::DeserializeOwned, D: DataPosition>(
    dir: &Path,
    family: &str,
    out: &Path,
    interrupt: Option<Arc<AtomicBool>>,
    (fingerprint, other_data): (&str, String),
    vocab: &crate::data::Vocab,
    params: &ParamStore<f32>,
    optimizer: &mut dyn Optimizer,
) -> Result<Resumed<D>> {
    let state: State<R, D> = read_state(dir, family)?;
    let progress = state.progress;
    let damaged = |what: String| Error::file(&dir.join("state.json"), what);
    let then = state.data.fingerprint();
    if then != fingerprint {
        return Err(damaged(format!(
            "the run trained on {other_data} now (fingerprint {then} then, {fingerprint} now)"
        )));
    }
    if progress.complete {
        return Err(complete(out, progress.step));
    }
    if crate::checkpoint::load_vocab(dir, vocab.len())? != *vocab {
        return Err(damaged("vocab.json differs from the vocabulary of the training data".into()));
    }
    params.load(dir.join("model.safetensors"))?;
    load_optimizer(dir, params, &progress, optimizer)?;
    let dropout = progress
        .rngs
        .get("dropout")
        .ok_or_else(|| "the dropout generator's state is missing".to_string())
        .and_then(RngState::restore)
        .map_err(damaged)?;
    let session = Session::resume(out, &progress, interrupt)?;
    Ok(Resumed { session, step: progress.step, dropout, data: state.data })
}

/// A running training loop's bookkeeping: the metrics file, the logging window, the loss
/// curve, the clock, and the checkpoint.
pub(crate) struct Session {
    metrics_path: PathBuf,
    metrics: File,
    pub window: Window,
    pub curve: Vec<(usize, f64)>,
    /// Training seconds before this session began.
    elapsed_before: f64,
    start: Instant,
    interrupt: Option<Arc<AtomicBool>>,
}

impl Session {
    /// A new run: `metrics.jsonl` is created empty.
    pub(crate) fn start(out: &Path, interrupt: Option<Arc<AtomicBool>>) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
        let metrics_path = out.join("metrics.jsonl");
        let metrics = File::create(&metrics_path).map_err(|e| Error::file(&metrics_path, e))?;
        Ok(Session {
            metrics_path,
            metrics,
            window: Window::new(),
            curve: Vec::new(),
            elapsed_before: 0.0,
            start: Instant::now(),
            interrupt,
        })
    }

    /// A resumed run: `metrics.jsonl` is cut back to what it held at the checkpoint, and
    /// appended to.
    pub(crate) fn resume(out: &Path, progress: &Progress, interrupt: Option<Arc<AtomicBool>>) -> Result<Self> {
        let metrics_path = out.join("metrics.jsonl");
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| Error::file(&metrics_path, e))?;
        let len = metrics.metadata().map_err(|e| Error::file(&metrics_path, e))?.len();
        if len >= progress.metrics_bytes {
            metrics.set_len(progress.metrics_bytes).map_err(|e| Error::file(&metrics_path, e))?;
        } else {
            eprintln!(
                "warning: {} is shorter than when the checkpoint was written; appending to it",
                metrics_path.display()
            );
        }
        Ok(Session {
            metrics_path,
            metrics,
            window: Window::resume(progress.window.clone()),
            curve: progress.curve.clone(),
            elapsed_before: progress.elapsed_s,
            start: Instant::now(),
            interrupt,
        })
    }

    /// Training seconds so far, over all sessions.
    pub(crate) fn elapsed(&self) -> f64 {
        self.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    /// Appends one line to `metrics.jsonl`.
    pub(crate) fn log(&mut self, line: &serde_json::Value) -> Result<()> {
        writeln!(self.metrics, "{line}").map_err(|e| Error::file(&self.metrics_path, e))
    }

    /// Ctrl-C or SIGTERM arrived: the loop saves and stops after the step under way.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Where the run stands, for `state.json`.
    pub(crate) fn progress(
        &self,
        step: usize,
        optimizer: &OptimizerState<f32>,
        rngs: BTreeMap<String, RngState>,
        complete: bool,
    ) -> Result<Progress> {
        let metrics_bytes = self.metrics.metadata().map_err(|e| Error::file(&self.metrics_path, e))?.len();
        let mut buffers: Vec<String> = Vec::new();
        for name in optimizer.buffers.keys() {
            let buffer = name.rsplit('.').next().unwrap_or(name).to_string();
            if !buffers.contains(&buffer) {
                buffers.push(buffer);
            }
        }
        Ok(Progress {
            step,
            elapsed_s: self.elapsed(),
            metrics_bytes,
            curve: self.curve.clone(),
            window: self.window.sums.clone(),
            optimizer_steps: optimizer.steps.clone(),
            optimizer_buffers: buffers,
            rngs,
            complete,
        })
    }
}

impl<R, D> State<R, D> {
    /// The state of a `family` run (`translator`, `language_model`).
    pub(crate) fn new(family: &str, run: R, progress: Progress, data: D) -> Self {
        State { format: FORMAT.into(), version: VERSION, family: family.into(), run, progress, data }
    }
}

/// Everything a checkpoint directory holds, as (file name, bytes): the model directory
/// (`config_json`, `vocab`, `params`), the optimizer's buffers and `state.json`.
pub(crate) fn checkpoint_files<R: Serialize, D: Serialize>(
    (config_json, vocab, params): (String, &crate::data::Vocab, &ParamStore<f32>),
    optimizer: &OptimizerState<f32>,
    state: &State<R, D>,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut buffers = ParamStore::<f32>::new();
    for (name, tensor) in &optimizer.buffers {
        buffers.insert(name.clone(), tensor.clone());
    }
    let state_json = serde_json::to_string_pretty(state).expect("the training state always serializes") + "\n";
    vec![
        ("config.json", config_json.into_bytes()),
        ("vocab.json", vocab.to_json().into_bytes()),
        ("model.safetensors", params.to_safetensors_bytes()),
        ("optimizer.safetensors", buffers.to_safetensors_bytes()),
        ("state.json", state_json.into_bytes()),
    ]
}

/// Loads `optimizer.safetensors` of checkpoint `dir` into `optimizer`: the buffers
/// `progress` names, for each parameter with a step count, every one the shape of its
/// parameter.
pub(crate) fn load_optimizer(
    dir: &Path,
    params: &ParamStore<f32>,
    progress: &Progress,
    optimizer: &mut dyn Optimizer,
) -> Result<()> {
    let path = dir.join("optimizer.safetensors");
    let mut expected = ParamStore::<f32>::new();
    for name in progress.optimizer_steps.keys() {
        let param = params.get(name).ok_or_else(|| {
            Error::file(
                &dir.join("state.json"),
                format!("optimizer state for {name}, which is not a parameter of this model"),
            )
        })?;
        for buffer in &progress.optimizer_buffers {
            expected.insert(format!("{name}.{buffer}"), Tensor::zeros(param.shape()));
        }
    }
    expected.load(&path)?;
    let state = OptimizerState {
        steps: progress.optimizer_steps.clone(),
        buffers: expected.iter().map(|p| (p.name().to_string(), p.value())).collect(),
    };
    optimizer.load_state(params, &state).map_err(|e| Error::file(&path, e))
}

/// FNV-1a, 64 bits: a fingerprint of the training data, so a run resumed on changed data is
/// refused rather than continued on something else.
pub(crate) fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_generator_continues_where_it_stopped() {
        let mut rng = ChaCha12Rng::seed_from_u64(7);
        let _: Vec<u32> = (0..13).map(|_| rng.random()).collect();
        let mut copy = RngState::of(&rng).restore().unwrap();
        let (a, b): (Vec<f64>, Vec<f64>) = (0..50).map(|_| (rng.random::<f64>(), copy.random::<f64>())).unzip();
        assert_eq!(a, b);
        let json = serde_json::to_string(&RngState::of(&rng)).unwrap();
        let back: RngState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.restore().unwrap().random::<u64>(), rng.random::<u64>());
        let bad = RngState { seed: "zz".repeat(32), ..back };
        assert!(bad.restore().unwrap_err().contains("damaged"));
    }

    /// The generator the engine has always drawn from, `StdRng`, is ChaCha12 seeded the same
    /// way: switching to the type whose position can be saved changed no run.
    #[test]
    fn chacha12_is_the_standard_generator() {
        let mut std_rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut chacha = ChaCha12Rng::seed_from_u64(42);
        for _ in 0..100 {
            assert_eq!(std_rng.random::<u64>(), chacha.random::<u64>());
        }
    }

    #[test]
    fn a_directory_is_replaced_whole() {
        let root = std::env::temp_dir().join(format!("session-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let dir = root.join("checkpoint");
        write_dir_atomically(&dir, &[("state.json", b"1".to_vec()), ("a", b"one".to_vec())]).unwrap();
        write_dir_atomically(&dir, &[("state.json", b"2".to_vec())]).unwrap();
        assert_eq!(std::fs::read(dir.join("state.json")).unwrap(), b"2");
        assert!(!dir.join("a").exists() && !root.join("checkpoint.old").exists());
        // A crash between the renames leaves only checkpoint.old: that one is found.
        std::fs::rename(&dir, root.join("checkpoint.old")).unwrap();
        std::fs::create_dir_all(root.join("checkpoint.partial")).unwrap();
        assert_eq!(find_checkpoint(&root).unwrap(), root.join("checkpoint.old"));
        write_dir_atomically(&dir, &[("state.json", b"3".to_vec())]).unwrap();
        assert_eq!(find_checkpoint(&root).unwrap(), dir);
        let entries = std::fs::read_dir(&root).unwrap().count();
        assert_eq!(entries, 1, "the partial and old directories are gone");
        // A directory that is not a checkpoint is never replaced.
        let other = root.join("mine");
        std::fs::create_dir_all(&other).unwrap();
        assert!(write_dir_atomically(&other, &[]).unwrap_err().message().contains("holds no state.json"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
