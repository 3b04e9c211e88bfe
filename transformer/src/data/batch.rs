//! Token sequences, padded batches, and the length-bucketed `Batcher` that feeds training.
//!
//! For an example `source → target`:
//! - encoder input   = chars(source) + `<eos>`
//! - decoder input   = `<bos>` + chars(target)
//! - decoder target  = chars(target) + `<eos>`
//!
//! so the decoder learns to predict `tgt_out[t]` having seen `tgt_in[..=t]`.

use std::borrow::Borrow;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;

use super::tsv::Example;
use super::vocab::{BOS, EOS, PAD, Vocab};
use crate::error::{Error, Result};
use crate::session::RngState;

/// A [`Batcher`]'s place in its data: the epoch, the next batch of it, and the generator the
/// epoch was planned from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BatcherPosition {
    epoch: usize,
    next: usize,
    rng: RngState,
}

/// Encoder input ids: chars(text) + `<eos>`.
pub fn encode_source(vocab: &Vocab, text: &str) -> Vec<usize> {
    let mut ids = vocab.encode(text);
    ids.push(EOS);
    ids
}

/// Decoder ids for a target text: (`<bos>` + chars(text), chars(text) + `<eos>`), the input and
/// the expected output, one position apart.
pub fn encode_target(vocab: &Vocab, text: &str) -> (Vec<usize>, Vec<usize>) {
    let chars = vocab.encode(text);
    let input = [&[BOS], chars.as_slice()].concat();
    let output = [chars.as_slice(), &[EOS]].concat();
    (input, output)
}

/// A batch of examples as padded, row-major id matrices.
///
/// ```
/// use transformer::data::{Batch, Example, Vocab, BOS, EOS, PAD};
///
/// let examples = [Example::new("ab", "b"), Example::new("a", "ba")];
/// let vocab = Vocab::from_examples(&examples); // a = 4, b = 5
/// let batch = Batch::from_examples(&examples, &vocab);
/// assert_eq!((batch.batch_size, batch.src_len, batch.tgt_len), (2, 3, 3));
/// assert_eq!(batch.src, [4, 5, EOS, /**/ 4, EOS, PAD]);
/// assert_eq!(batch.tgt_in, [BOS, 5, PAD, /**/ BOS, 5, 4]);
/// assert_eq!(batch.tgt_out, [5, EOS, PAD, /**/ 5, 4, EOS]);
/// assert_eq!(batch.n_target_tokens(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of examples (rows).
    pub batch_size: usize,
    /// Length of the longest encoder input in the batch, `<eos>` included.
    pub src_len: usize,
    /// Length of the longest decoder sequence in the batch (its target length + 1).
    pub tgt_len: usize,
    /// Encoder inputs, `batch_size × src_len`, row-major, padded with [`PAD`].
    pub src: Vec<usize>,
    /// Decoder inputs, `batch_size × tgt_len`, row-major, padded with [`PAD`].
    pub tgt_in: Vec<usize>,
    /// Decoder targets (what the model should predict at each position), `batch_size × tgt_len`,
    /// row-major, padded with [`PAD`].
    pub tgt_out: Vec<usize>,
}

impl Batch {
    /// Encodes and pads a batch; takes `&[Example]` or `&[&Example]`. No examples give an empty
    /// batch (every size 0).
    pub fn from_examples<E: Borrow<Example>>(examples: &[E], vocab: &Vocab) -> Batch {
        let encoded: Vec<Encoded> = examples.iter().map(|e| Encoded::new(e.borrow(), vocab)).collect();
        Batch::from_encoded(encoded.iter())
    }

    fn from_encoded<'a>(rows: impl ExactSizeIterator<Item = &'a Encoded> + Clone) -> Batch {
        let batch_size = rows.len();
        let src_len = rows.clone().map(|row| row.src.len()).max().unwrap_or(0);
        let tgt_len = rows.clone().map(|row| row.tgt.len() + 1).max().unwrap_or(0);
        let mut src = vec![PAD; batch_size * src_len];
        let mut tgt_in = vec![PAD; batch_size * tgt_len];
        let mut tgt_out = vec![PAD; batch_size * tgt_len];
        for (b, row) in rows.enumerate() {
            let n = row.tgt.len();
            src[b * src_len..][..row.src.len()].copy_from_slice(&row.src);
            let tgt_in_row = &mut tgt_in[b * tgt_len..][..n + 1];
            tgt_in_row[0] = BOS;
            tgt_in_row[1..].copy_from_slice(&row.tgt);
            let tgt_out_row = &mut tgt_out[b * tgt_len..][..n + 1];
            tgt_out_row[..n].copy_from_slice(&row.tgt);
            tgt_out_row[n] = EOS;
        }
        Batch { batch_size, src_len, tgt_len, src, tgt_in, tgt_out }
    }

    /// Number of non-pad decoder targets: the tokens the loss averages over.
    pub fn n_target_tokens(&self) -> usize {
        self.tgt_out.iter().filter(|&&id| id != PAD).count()
    }

    /// The examples of `rows`, as a batch of their own with the same padded lengths.
    ///
    /// # Panics
    /// If `rows` reaches past the batch.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Batch {
        let (src_len, tgt_len) = (self.src_len, self.tgt_len);
        Batch {
            batch_size: rows.len(),
            src_len,
            tgt_len,
            src: self.src[rows.start * src_len..rows.end * src_len].to_vec(),
            tgt_in: self.tgt_in[rows.start * tgt_len..rows.end * tgt_len].to_vec(),
            tgt_out: self.tgt_out[rows.start * tgt_len..rows.end * tgt_len].to_vec(),
        }
    }

    /// Row `b` of [`Batch::src`].
    pub fn src_row(&self, b: usize) -> &[usize] {
        &self.src[b * self.src_len..][..self.src_len]
    }

    /// Row `b` of [`Batch::tgt_in`].
    pub fn tgt_in_row(&self, b: usize) -> &[usize] {
        &self.tgt_in[b * self.tgt_len..][..self.tgt_len]
    }

    /// Row `b` of [`Batch::tgt_out`].
    pub fn tgt_out_row(&self, b: usize) -> &[usize] {
        &self.tgt_out[b * self.tgt_len..][..self.tgt_len]
    }
}

/// One example's ids, encoded once: the source with its `<eos>`, the target's characters alone.
#[derive(Debug, Clone)]
struct Encoded {
    src: Vec<usize>,
    tgt: Vec<usize>,
}

impl Encoded {
    fn new(example: &Example, vocab: &Vocab) -> Encoded {
        Encoded { src: encode_source(vocab, &example.source), tgt: vocab.encode(&example.target) }
    }

    /// Sort key that puts examples of similar shape together, so batches need little padding.
    fn length_key(&self) -> (usize, usize) {
        (self.src.len(), self.tgt.len())
    }
}

/// How many batches' worth of examples are sorted by length together (fairseq and tensor2tensor
/// do the same): large enough that each batch holds similar lengths, small enough that the
/// batches of an epoch still differ from one seed to the next.
pub const DEFAULT_CHUNK_BATCHES: usize = 32;

/// Length-bucketed batches, forever: an [`Iterator`] that never ends, so training takes as many
/// steps as it wants.
///
/// Each epoch: shuffle all examples, sort each chunk of `batch_size × chunk_batches` examples by
/// (source length, target length), cut into batches of `batch_size` (only the epoch's last batch
/// may be smaller), and shuffle the order of the batches. Every example appears once per epoch and
/// the whole stream is determined by the seed.
///
/// ```
/// use transformer::data::{Batcher, Example, Vocab};
///
/// let examples: Vec<Example> = (0..10).map(|i| Example::new("x".repeat(i + 1), "y")).collect();
/// let vocab = Vocab::from_examples(&examples);
/// let mut batcher = Batcher::new(&examples, &vocab, 4, 7)?;
/// assert_eq!(batcher.batches_per_epoch(), 3);
/// let rows: usize = batcher.by_ref().take(3).map(|batch| batch.batch_size).sum();
/// assert_eq!(rows, 10); // one epoch: every example once
/// # Ok::<(), transformer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batcher {
    examples: Vec<Encoded>,
    batch_size: usize,
    chunk_batches: usize,
    rng: ChaCha12Rng,
    /// The generator as it was when this epoch was planned: with `next` and `epoch`, the
    /// position a checkpoint saves.
    epoch_rng: ChaCha12Rng,
    /// This epoch's batches, as indices into `examples`.
    plan: Vec<Vec<usize>>,
    /// Index into `plan` of the next batch.
    next: usize,
    epoch: usize,
}

impl Batcher {
    /// A batcher over `examples`, encoded once with `vocab`. Errors on a batch size of 0
    /// (`--batch-size`) or no examples.
    pub fn new(examples: &[Example], vocab: &Vocab, batch_size: usize, seed: u64) -> Result<Batcher> {
        if batch_size == 0 {
            return Err(Error::flag("--batch-size", "must be at least 1, found 0"));
        }
        if examples.is_empty() {
            return Err(Error::new("no training examples to batch"));
        }
        Ok(Batcher {
            examples: examples.iter().map(|e| Encoded::new(e, vocab)).collect(),
            batch_size,
            chunk_batches: DEFAULT_CHUNK_BATCHES,
            rng: ChaCha12Rng::seed_from_u64(seed),
            epoch_rng: ChaCha12Rng::seed_from_u64(seed),
            plan: Vec::new(),
            next: 0,
            epoch: 0,
        })
    }

    /// Sorts `chunk_batches` batches' worth of examples by length together instead of
    /// [`DEFAULT_CHUNK_BATCHES`]; 1 turns bucketing off (batches of shuffled examples). Takes
    /// effect from the next epoch; 0 counts as 1.
    pub fn with_chunk_batches(mut self, chunk_batches: usize) -> Batcher {
        self.chunk_batches = chunk_batches.max(1);
        self
    }

    /// Examples per batch (the epoch's last batch may hold fewer).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of examples.
    pub fn n_examples(&self) -> usize {
        self.examples.len()
    }

    /// Batches in one epoch: ⌈examples / batch size⌉.
    pub fn batches_per_epoch(&self) -> usize {
        self.examples.len().div_ceil(self.batch_size)
    }

    /// Epochs begun so far: 0 before the first batch, 1 during the first epoch, and so on.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The next batch, starting a new epoch when this one is used up.
    pub fn next_batch(&mut self) -> Batch {
        if self.next == self.plan.len() {
            self.plan_epoch();
        }
        let rows = &self.plan[self.next];
        self.next += 1;
        Batch::from_encoded(rows.iter().map(|&i| &self.examples[i]))
    }

    /// Where the batcher stands, for a training checkpoint.
    pub(crate) fn position(&self) -> BatcherPosition {
        BatcherPosition { epoch: self.epoch, next: self.next, rng: RngState::of(&self.epoch_rng) }
    }

    /// Moves the batcher to a position [`Batcher::position`] gave for the same examples and
    /// batch size: the batches that follow are those that followed there.
    pub(crate) fn restore(&mut self, at: &BatcherPosition) -> std::result::Result<(), String> {
        self.rng = at.rng.restore()?;
        self.plan.clear();
        self.next = 0;
        if at.epoch > 0 {
            self.plan_epoch();
        }
        if at.next > self.plan.len() {
            return Err(format!("the data position {} is past the epoch's {} batches", at.next, self.plan.len()));
        }
        (self.epoch, self.next) = (at.epoch, at.next);
        Ok(())
    }

    fn plan_epoch(&mut self) {
        self.epoch_rng = self.rng.clone();
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        order.shuffle(&mut self.rng);
        // A stable sort, so examples of equal length stay in their shuffled order.
        for chunk in order.chunks_mut(self.batch_size * self.chunk_batches) {
            chunk.sort_by_key(|&i| self.examples[i].length_key());
        }
        self.plan = order.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        self.plan.shuffle(&mut self.rng);
        self.next = 0;
        self.epoch += 1;
    }
}

impl Iterator for Batcher {
    type Item = Batch;

    /// Always `Some`: the stream of batches never ends.
    fn next(&mut self) -> Option<Batch> {
        Some(self.next_batch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples whose source is `i` as letters and whose target has length `i % 5`, so lengths vary.
    fn examples(n: usize) -> Vec<Example> {
        (0..n).map(|i| Example::new("s".repeat(1 + i % 13) + &i.to_string(), "t".repeat(i % 5))).collect()
    }

    /// A batcher moved to a saved position gives the batches that followed it, across the
    /// end of an epoch, for a position at the start, inside and at the end of an epoch.
    #[test]
    fn a_saved_position_continues_the_same_batches() {
        let examples = examples(37);
        let vocab = Vocab::from_examples(&examples);
        for skip in [0, 3, 5, 9] {
            let mut batcher = Batcher::new(&examples, &vocab, 8, 3).unwrap();
            (0..skip).for_each(|_| drop(batcher.next_batch()));
            let at = batcher.position();
            let mut moved = Batcher::new(&examples, &vocab, 8, 3).unwrap();
            moved.restore(&at).unwrap();
            for _ in 0..12 {
                assert_eq!(moved.next_batch(), batcher.next_batch(), "after {skip} batches");
            }
            assert_eq!(moved.epoch(), batcher.epoch());
        }
    }

    #[test]
    fn sequences_follow_the_design() {
        let vocab = Vocab::from_texts(["abc"]);
        assert_eq!(encode_source(&vocab, "cab"), [6, 4, 5, EOS]);
        assert_eq!(encode_target(&vocab, "ba"), (vec![BOS, 5, 4], vec![5, 4, EOS]));
        assert_eq!(encode_target(&vocab, ""), (vec![BOS], vec![EOS]));
        assert_eq!(encode_source(&vocab, "x"), [3, EOS], "unknown characters become <unk>");
    }

    #[test]
    fn batch_rows_are_padded_sequences() {
        let examples = [Example::new("abc", "a"), Example::new("", "cba")];
        let vocab = Vocab::from_examples(&examples);
        let batch = Batch::from_examples(&examples, &vocab);
        assert_eq!((batch.batch_size, batch.src_len, batch.tgt_len), (2, 4, 4));
        assert_eq!(batch.src_row(0), [4, 5, 6, EOS]);
        assert_eq!(batch.src_row(1), [EOS, PAD, PAD, PAD]);
        assert_eq!(batch.tgt_in_row(0), [BOS, 4, PAD, PAD]);
        assert_eq!(batch.tgt_out_row(0), [4, EOS, PAD, PAD]);
        assert_eq!(batch.tgt_in_row(1), [BOS, 6, 5, 4]);
        assert_eq!(batch.tgt_out_row(1), [6, 5, 4, EOS]);
        assert_eq!(batch.n_target_tokens(), 2 + 4);
    }

    #[test]
    fn batch_takes_references_and_empty_input() {
        let examples = [Example::new("ab", "ba")];
        let vocab = Vocab::from_examples(&examples);
        let by_ref: Vec<&Example> = examples.iter().collect();
        assert_eq!(Batch::from_examples(&by_ref, &vocab), Batch::from_examples(&examples, &vocab));
        let empty = Batch::from_examples::<Example>(&[], &vocab);
        assert_eq!((empty.batch_size, empty.src_len, empty.tgt_len, empty.n_target_tokens()), (0, 0, 0, 0));
    }

    #[test]
    fn batch_size_zero_and_no_examples_are_errors() {
        let vocab = Vocab::from_texts(["a"]);
        let message = Batcher::new(&examples(3), &vocab, 0, 1).unwrap_err().to_string();
        assert_eq!(message, "--batch-size: must be at least 1, found 0");
        assert!(Batcher::new(&[], &vocab, 4, 1).is_err());
    }

    #[test]
    fn each_epoch_uses_every_example_once() {
        let data = examples(103);
        let vocab = Vocab::from_examples(&data);
        let mut batcher = Batcher::new(&data, &vocab, 8, 42).unwrap().with_chunk_batches(4);
        assert_eq!(batcher.batches_per_epoch(), 13);
        assert_eq!(batcher.epoch(), 0);
        for epoch in 1..=3 {
            let mut sources: Vec<String> = Vec::new();
            let mut sizes = Vec::new();
            for batch in batcher.by_ref().take(13) {
                sizes.push(batch.batch_size);
                for b in 0..batch.batch_size {
                    let row = batch.src_row(b);
                    sources.push(vocab.decode(row));
                }
            }
            assert_eq!(batcher.epoch(), epoch);
            sizes.sort_unstable();
            assert_eq!(sizes[0], 103 % 8, "only the last batch of an epoch is short");
            assert!(sizes[1..].iter().all(|&s| s == 8));
            let mut expected: Vec<String> = data.iter().map(|e| e.source.clone()).collect();
            expected.sort();
            sources.sort();
            assert_eq!(sources, expected);
        }
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let data = examples(200);
        let vocab = Vocab::from_examples(&data);
        let stream = |seed| Batcher::new(&data, &vocab, 16, seed).unwrap().take(40).collect::<Vec<_>>();
        assert_eq!(stream(5), stream(5));
        assert_ne!(stream(5), stream(6));
        let epochs = stream(5);
        assert_ne!(epochs[..13], epochs[13..26], "each epoch is shuffled anew");
    }

    #[test]
    fn bucketing_cuts_padding() {
        let data = examples(4096);
        let vocab = Vocab::from_examples(&data);
        let padding = |chunk_batches| {
            let batcher = Batcher::new(&data, &vocab, 32, 3).unwrap().with_chunk_batches(chunk_batches);
            batcher.take(128).map(|b| b.src.iter().filter(|&&id| id == PAD).count()).sum::<usize>()
        };
        let (bucketed, shuffled) = (padding(DEFAULT_CHUNK_BATCHES), padding(1));
        assert!(bucketed * 4 < shuffled, "bucketed {bucketed} pads vs shuffled {shuffled}");
    }

    #[test]
    fn a_batch_larger_than_the_data_holds_all_of_it() {
        let data = examples(5);
        let vocab = Vocab::from_examples(&data);
        let mut batcher = Batcher::new(&data, &vocab, 64, 0).unwrap();
        assert_eq!(batcher.batches_per_epoch(), 1);
        assert_eq!(batcher.next_batch().batch_size, 5);
        assert_eq!(batcher.next_batch().batch_size, 5);
        assert_eq!(batcher.epoch(), 2);
    }
}
