//! The five built-in tasks, generated from a seed: `dates`, `numbers`, `copy`, `reverse`, `sort`,
//! each split into training and held-out examples that never share a source.

pub mod copy;
pub mod dates;
pub mod numbers;
pub mod reverse;
pub mod sort;

use std::collections::HashSet;
use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tsv::Example;
use crate::error::{Error, Result};

/// A built-in task: a rule that draws random examples.
///
/// ```
/// use transformer::data::Task;
///
/// let task = Task::from_name("dates")?;
/// let (train, held_out) = task.generate(1, 1000, 100)?;
/// assert_eq!((train.len(), held_out.len()), (1000, 100));
/// assert!(held_out.iter().all(|h| train.iter().all(|t| t.source != h.source)));
/// # Ok::<(), transformer::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Task {
    /// A date written in one of many human styles → ISO 8601: "Mar 3, 21" → "2021-03-03".
    #[default]
    Dates,
    /// An integer 0–999,999 → American English words: "1984" → "one thousand nine hundred eighty-four".
    Numbers,
    /// Random letters → the same letters: "hello" → "hello".
    Copy,
    /// Random letters → the letters reversed: "hello" → "olleh".
    Reverse,
    /// Random letters → the letters in alphabetical order: "hello" → "ehllo".
    Sort,
}

impl Task {
    /// Every task, in the order the command line lists them.
    pub const ALL: [Task; 5] = [Task::Dates, Task::Numbers, Task::Copy, Task::Reverse, Task::Sort];

    /// The task's name on the command line (`--task dates`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Dates => "dates",
            Task::Numbers => "numbers",
            Task::Copy => "copy",
            Task::Reverse => "reverse",
            Task::Sort => "sort",
        }
    }

    /// The task with this name; an unknown name is a `--task` error listing the valid ones.
    pub fn from_name(name: &str) -> Result<Task> {
        Task::ALL.into_iter().find(|task| task.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|task| task.name()).collect();
            Error::flag("--task", format!("unknown task {name:?}; expected one of {}", names.join(", ")))
        })
    }

    /// One random example.
    pub fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> Example {
        match self {
            Task::Dates => dates::sample(rng),
            Task::Numbers => numbers::sample(rng),
            Task::Copy => copy::sample(rng),
            Task::Reverse => reverse::sample(rng),
            Task::Sort => sort::sample(rng),
        }
    }

    /// `(train, held_out)`: `n_train` random examples (repeats allowed, as in any i.i.d. sample)
    /// and `n_held_out` examples with distinct sources, no source in both.
    ///
    /// Each source belongs to one side by a hash of the source and the seed (one source in
    /// [`HELD_OUT_SHARE`] is held out), so even in a small space such as the one-digit numbers
    /// the held-out set cannot take every case away from training. The held-out set depends only
    /// on `seed` and `n_held_out`, not on `n_train`. Everything is determined by `seed`.
    ///
    /// Errors only when the task has too few distinct held-out sources for `n_held_out`.
    pub fn generate(self, seed: u64, n_train: usize, n_held_out: usize) -> Result<(Vec<Example>, Vec<Example>)> {
        let held_out_side = |example: &Example| is_held_out(seed, &example.source);

        let mut rng = StdRng::seed_from_u64(mix(seed ^ HELD_OUT_STREAM));
        let mut seen = HashSet::with_capacity(n_held_out);
        let held_out =
            self.draw(&mut rng, n_held_out, "held-out", |e| held_out_side(e) && seen.insert(e.source.clone()))?;

        let mut rng = StdRng::seed_from_u64(mix(seed ^ TRAIN_STREAM));
        let train = self.draw(&mut rng, n_train, "training", |e| !held_out_side(e))?;
        Ok((train, held_out))
    }

    /// `n` samples that `keep` accepts, giving up after [`MAX_MISSES`] rejections in a row.
    fn draw(
        self,
        rng: &mut StdRng,
        n: usize,
        side: &str,
        mut keep: impl FnMut(&Example) -> bool,
    ) -> Result<Vec<Example>> {
        let mut examples = Vec::with_capacity(n);
        let mut misses = 0;
        while examples.len() < n {
            let example = self.sample(rng);
            if keep(&example) {
                examples.push(example);
                misses = 0;
            } else {
                misses += 1;
                if misses == MAX_MISSES {
                    return Err(Error::new(format!(
                        "task {self}: found only {} distinct {side} examples of the {n} asked for; ask for fewer",
                        examples.len()
                    )));
                }
            }
        }
        Ok(examples)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One source in this many belongs to the held-out side.
pub const HELD_OUT_SHARE: u64 = 8;

/// Rejected samples in a row after which a task is taken to have no more examples to give.
const MAX_MISSES: usize = 100_000;

/// Seeds of the two random streams, so the held-out set does not depend on `n_train`.
const HELD_OUT_STREAM: u64 = 0x6865_6c64_2d6f_7574; // "held-out"
const TRAIN_STREAM: u64 = 0x7472_6169_6e69_6e67; // "training"

/// Whether `source` is on the held-out side for `seed`: a fixed hash (FNV-1a, then mixed), so the
/// split is the same on every platform and Rust version.
fn is_held_out(seed: u64, source: &str) -> bool {
    let fnv = source.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    mix(fnv ^ mix(seed)).is_multiple_of(HELD_OUT_SHARE)
}

/// SplitMix64's finalizer: spreads every input bit over the whole output.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lowercase letters, `MIN_LETTERS..=MAX_LETTERS` of them: the sources of `copy`, `reverse` and
/// `sort`.
pub fn random_letters<R: Rng + ?Sized>(rng: &mut R) -> String {
    let n = rng.random_range(MIN_LETTERS..=MAX_LETTERS);
    (0..n).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect()
}

/// Shortest source of the letter tasks.
pub const MIN_LETTERS: usize = 1;
/// Longest source of the letter tasks.
pub const MAX_LETTERS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for task in Task::ALL {
            assert_eq!(Task::from_name(task.name()), Ok(task));
            assert_eq!(task.to_string(), task.name());
        }
        assert_eq!(Task::default(), Task::Dates);
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let message = Task::from_name("Dates").unwrap_err().to_string();
        assert_eq!(message, "--task: unknown task \"Dates\"; expected one of dates, numbers, copy, reverse, sort");
    }

    #[test]
    fn generation_is_deterministic_in_the_seed() {
        for task in Task::ALL {
            let a = task.generate(11, 300, 50).unwrap();
            assert_eq!(a, task.generate(11, 300, 50).unwrap(), "{task}");
            assert_ne!(a, task.generate(12, 300, 50).unwrap(), "{task}");
        }
    }

    #[test]
    fn held_out_never_overlaps_training() {
        for task in Task::ALL {
            let (train, held_out) = task.generate(3, 20_000, 1_000).unwrap();
            assert_eq!((train.len(), held_out.len()), (20_000, 1_000), "{task}");
            let train_sources: HashSet<&str> = train.iter().map(|e| e.source.as_str()).collect();
            let held_out_sources: HashSet<&str> = held_out.iter().map(|e| e.source.as_str()).collect();
            assert_eq!(held_out_sources.len(), held_out.len(), "{task}: held-out sources are distinct");
            assert!(train_sources.is_disjoint(&held_out_sources), "{task}: a held-out source is in training");
        }
    }

    #[test]
    fn held_out_does_not_depend_on_the_training_size() {
        let (_, small) = Task::Numbers.generate(9, 10, 200).unwrap();
        let (_, large) = Task::Numbers.generate(9, 5_000, 200).unwrap();
        assert_eq!(small, large);
    }

    #[test]
    fn small_spaces_keep_examples_for_training() {
        // 10 one-digit numbers: a few are held out, most stay trainable.
        let (train, _) = Task::Numbers.generate(5, 20_000, 1_000).unwrap();
        let one_digit: HashSet<&str> = train.iter().map(|e| e.source.as_str()).filter(|s| s.len() == 1).collect();
        assert!(one_digit.len() >= 5, "{one_digit:?}");
    }

    #[test]
    fn a_task_that_runs_out_of_examples_is_an_error_not_a_hang() {
        let mut rng = StdRng::seed_from_u64(0);
        let message = Task::Copy.draw(&mut rng, 3, "held-out", |_| false).unwrap_err().to_string();
        assert_eq!(message, "task copy: found only 0 distinct held-out examples of the 3 asked for; ask for fewer");
    }

    #[test]
    fn letters_are_lowercase_and_within_length() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut lengths = HashSet::new();
        for _ in 0..2000 {
            let s = random_letters(&mut rng);
            assert!(s.chars().all(|c| c.is_ascii_lowercase()), "{s}");
            lengths.insert(s.len());
        }
        assert_eq!(lengths, (MIN_LETTERS..=MAX_LETTERS).collect());
    }

    #[test]
    fn a_hundred_thousand_examples_are_quick() {
        // Generation must never be the slow part of training (well under a second in release).
        for task in Task::ALL {
            let start = std::time::Instant::now();
            let (train, _) = task.generate(1, 100_000, 1_000).unwrap();
            assert_eq!(train.len(), 100_000);
            let elapsed = start.elapsed();
            assert!(elapsed.as_secs_f64() < 5.0, "{task}: {elapsed:?}");
        }
    }
}
