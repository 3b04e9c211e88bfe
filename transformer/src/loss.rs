//! The training loss: cross-entropy over the vocabulary, ignoring padding, with optional label
//! smoothing in PyTorch's `CrossEntropyLoss(ignore_index=pad, label_smoothing=ε)` meaning.

use crate::data::PAD;
use autograd::{CrossEntropyOptions, Element, Tensor, Var};

/// Mean cross-entropy in nats of logits `(batch, t, vocab)` against target ids `(batch, t)`,
/// over the non-pad targets.
#[track_caller]
pub fn sequence_loss<'t, T: Element>(logits: Var<'t, T>, targets: &[usize], label_smoothing: f64) -> Var<'t, T> {
    logits.cross_entropy(targets, CrossEntropyOptions { ignore_index: Some(PAD), label_smoothing })
}

/// (correct, counted): how many non-pad targets the logits' argmax gets right.
pub fn token_hits<T: Element>(logits: &Tensor<T>, targets: &[usize]) -> (usize, usize) {
    let vocab = logits.dims()[logits.rank() - 1];
    let mut hits = (0, 0);
    for (row, &t) in logits.data().chunks(vocab).zip(targets) {
        if t == PAD {
            continue;
        }
        hits.1 += 1;
        if argmax(row) == t {
            hits.0 += 1;
        }
    }
    hits
}

/// Index of the largest value (the first, on ties).
pub fn argmax<T: Element>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
