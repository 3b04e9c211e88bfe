//! Evaluation on a set of examples: what `transformer eval` prints.

use crate::checkpoint::Checkpoint;
use crate::data::{Batch, Example, encode_source};
use crate::decode::{beam_search, greedy};
use crate::loss::{sequence_loss, token_hits};
use crate::nn::Ctx;
use crate::train::exact_match;
use crate::{Error, Result};
use autograd::Tape;
use std::path::Path;

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

/// An error naming the first example of `path` whose source or target, with its `<eos>`, is
/// longer than the model's `max_len`.
pub fn check_lengths(examples: &[Example], max_len: usize, path: &Path) -> Result<()> {
    for (i, e) in examples.iter().enumerate() {
        let len = e.source.chars().count().max(e.target.chars().count()) + 1;
        if len > max_len {
            return Err(Error::line(
                path,
                i + 1,
                format!("a sequence of {len} tokens is longer than the model's max_len of {max_len}"),
            ));
        }
    }
    Ok(())
}

/// An error naming the first input that, with its `<eos>`, is longer than the model's
/// `max_len`; `place(i)` names input `i` (from 0), as `stdin:3` or `input 2`. `translate`
/// checks every input before it translates any.
pub fn check_inputs(inputs: &[String], max_len: usize, place: impl Fn(usize) -> String) -> Result<()> {
    for (i, line) in inputs.iter().enumerate() {
        let len = line.chars().count() + 1;
        if len > max_len {
            return Err(Error::new(format!(
                "{}: {len} tokens (the characters and <eos>) exceed the model's max_len of {max_len}",
                place(i)
            )));
        }
    }
    Ok(())
}

/// One translation, as `transformer translate` prints it: greedy, or beam search of width
/// `beam` (length penalty 0.6), at most twice the input's length plus 10 tokens long. The
/// input must fit the model ([`check_inputs`]).
pub fn translate(ckpt: &Checkpoint, text: &str, beam: Option<usize>) -> String {
    ckpt.vocab.decode(&translate_ids(ckpt, text, beam))
}

/// The ids of [`translate`]'s output, without `<eos>`.
pub fn translate_ids(ckpt: &Checkpoint, text: &str, beam: Option<usize>) -> Vec<usize> {
    let source = encode_source(&ckpt.vocab, text);
    let max_len = (text.chars().count() * 2 + 10).min(ckpt.model.cfg.max_len - 1);
    let mut ids = match beam {
        Some(k) => beam_search(&ckpt.model, &source, k, 0.6, max_len).tokens,
        None => greedy(&ckpt.model, &[source], max_len).swap_remove(0),
    };
    if let Some(end) = ids.iter().position(|&id| id == crate::data::EOS) {
        ids.truncate(end);
    }
    ids
}
