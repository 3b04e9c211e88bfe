//! `lm eval`: the mean cross-entropy of a model over every character of a text.

use super::{CharLM, batch, frame};
use crate::data::Vocab;
use crate::loss::sequence_loss;
use crate::nn::Ctx;
use autograd::{Element, Tape};

/// What `transformer lm eval` prints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LmEvalReport {
    /// Characters in the text: each one predicted once.
    pub characters: usize,
    /// Mean cross-entropy in nats per character.
    pub loss: f64,
    /// The same in bits: loss / ln 2.
    pub bits_per_char: f64,
}

impl LmEvalReport {
    /// `{"characters": N, "loss": L, "bits_per_char": B}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "characters": self.characters, "loss": self.loss, "bits_per_char": self.bits_per_char })
    }
}

/// Chunks per forward pass.
const CHUNKS_PER_BATCH: usize = 64;

/// The model's loss on `text`, framed as in training (see [`super::frame`]): no dropout, the
/// losses of all characters summed in f64 and divided by their number.
pub fn evaluate<T: Element>(model: &CharLM<T>, vocab: &Vocab, text: &str) -> LmEvalReport {
    let ids = vocab.encode(text);
    let mut total = 0.0;
    for chunks in frame(&ids, model.cfg.max_len).chunks(CHUNKS_PER_BATCH) {
        let (inputs, targets, shape) = batch(chunks);
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let logits = model.forward(&tape, &inputs, shape, &mut Ctx::eval());
        let counted = chunks.iter().map(|c| c.target.len()).sum::<usize>();
        total += sequence_loss(logits, &targets, 0.0).value().item().to_f64() * counted as f64;
    }
    // An empty text has no loss: NaN, not a perfect 0.
    let loss = if ids.is_empty() { f64::NAN } else { total / ids.len() as f64 };
    LmEvalReport { characters: ids.len(), loss, bits_per_char: loss / std::f64::consts::LN_2 }
}
