//! Where a translator's training run gets its examples: a built-in task or a TSV file, named
//! so that a checkpoint can record it and a resumed run load the same examples again.

use super::{Example, Task, read_tsv};
use crate::Result;
use crate::session::fingerprint;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A built-in task by name, or a TSV file of `source<TAB>target` lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// `dates`, `numbers`, `copy`, `reverse` or `sort`: 100,000 training examples and 1,000
    /// held out, drawn from the run's seed ([`Task::generate`]).
    Task(String),
    /// A TSV file: every 20th line (at most 1,000) is held out, the rest trained on; a file of
    /// fewer than 20 lines is both trained on and evaluated on whole.
    File(PathBuf),
}

/// The examples of a [`DataSource`], split for training and evaluation.
#[derive(Clone, Debug)]
pub struct TrainData {
    /// The task's name or the file's stem (the default output directory is `runs/<name>`).
    pub name: String,
    /// What the model is trained on.
    pub train: Vec<Example>,
    /// What it is evaluated on at the end.
    pub held_out: Vec<Example>,
    /// A hash of every example, in order: a resumed run checks it finds the same data.
    pub fingerprint: String,
}

impl DataSource {
    /// What the progress line and errors call it: `the task dates`, or the file's path.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Task(name) => format!("the task {name}"),
            DataSource::File(path) => path.display().to_string(),
        }
    }

    /// The examples, generated from `seed` for a task or read from the file.
    pub fn load(&self, seed: u64) -> Result<TrainData> {
        let (name, train, held_out) = match self {
            DataSource::Task(name) => {
                let task = Task::from_name(name)?;
                let (train, held_out) = task.generate(seed, 100_000, 1000)?;
                (task.name().to_string(), train, held_out)
            }
            DataSource::File(path) => {
                let (train, held_out) = split_file(read_tsv(path)?);
                (path.file_stem().map_or("data".into(), |s| s.to_string_lossy().into_owned()), train, held_out)
            }
        };
        let fingerprint = fingerprint(train.iter().chain(&held_out).flat_map(|e| [e.source.as_str(), &e.target]));
        Ok(TrainData { name, train, held_out, fingerprint })
    }
}

/// Holds out every 20th example (at most 1000) of a data file for the final evaluation.
fn split_file(examples: Vec<Example>) -> (Vec<Example>, Vec<Example>) {
    if examples.len() < 20 {
        return (examples.clone(), examples);
    }
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (i, e) in examples.into_iter().enumerate() {
        if i % 20 == 19 && held_out.len() < 1000 { held_out.push(e) } else { train.push(e) }
    }
    (train, held_out)
}
