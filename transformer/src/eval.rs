//! Evaluation on a set of examples: what `transformer eval` prints.

use crate::checkpoint::Checkpoint;
use crate::data::{Batch, Example};
use crate::loss::{sequence_loss, token_hits};
use crate::nn::Ctx;
use crate::train::exact_match;
use autograd::Tape;

/// Teacher-forced loss and accuracy, and greedy exact match, over a set of examples.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// Number of examples.
    pub examples: usize,
    /// Non-pad target tokens: each target's characters plus its `<eos>`.
    pub tokens: usize,
    /// Mean cross-entropy in nats over those tokens (no label smoothing, no dropout).
    pub loss: f64,
    /// Share of those tokens the model ranks first.
    pub token_accuracy: f64,
    /// Share of examples whose greedy decoding equals the target exactly.
    pub exact_match: f64,
}

impl EvalReport {
    /// The JSON object `transformer eval` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "examples": self.examples,
            "tokens": self.tokens,
            "loss": self.loss,
            "token_accuracy": self.token_accuracy,
            "exact_match": self.exact_match,
        })
    }
}

/// Loss and token accuracy by teacher forcing, in batches of up to 128 examples (each batch's
/// mean weighted by its token count), then greedy exact match.
pub fn evaluate(ckpt: &Checkpoint, examples: &[Example]) -> EvalReport {
    let (mut loss_sum, mut tokens, mut hits) = (0.0f64, 0usize, 0usize);
    for chunk in examples.chunks(128) {
        let batch = Batch::from_examples(chunk, &ckpt.vocab);
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let logits = ckpt.model.forward(
            &tape,
            &batch.src,
            [batch.batch_size, batch.src_len],
            &batch.tgt_in,
            [batch.batch_size, batch.tgt_len],
            &mut Ctx::eval(),
        );
        let n = batch.n_target_tokens();
        let loss = sequence_loss(logits, &batch.tgt_out, 0.0).value().item() as f64;
        loss_sum += loss * n as f64;
        tokens += n;
        hits += token_hits(&logits.value(), &batch.tgt_out).0;
    }
    let (exact, _) = exact_match(&ckpt.model, &ckpt.vocab, examples);
    EvalReport {
        examples: examples.len(),
        tokens,
        loss: loss_sum / tokens.max(1) as f64,
        token_accuracy: hits as f64 / tokens.max(1) as f64,
        exact_match: exact,
    }
}
