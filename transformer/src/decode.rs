//! Decoding: greedy (batched) and beam search with a length penalty, both stopping at `<eos>`.
//!
//! Neither ever emits `<pad>` or `<bos>`. A hypothesis that reaches `max_len` tokens without
//! `<eos>` ends there.

use crate::data::{BOS, EOS, PAD};
use crate::loss::argmax;
use crate::model::{Encoded, Seq2Seq};
use crate::nn::{Ctx, DecoderCache};
use autograd::{Element, Tape, Tensor};

/// Log-probabilities of the next token at the last position of each row of
/// `logits` `(rows, t, vocab)`, with `<pad>` and `<bos>` ruled out.
fn next_token_log_probs<T: Element>(logits: &Tensor<T>) -> Vec<Vec<f64>> {
    let [rows, t, vocab] = logits.dims()[..] else { unreachable!("logits are (rows, t, vocab)") };
    let last = logits.narrow(1, t - 1, 1).reshape([rows, vocab]).log_softmax(-1);
    last.data()
        .chunks(vocab)
        .map(|row| {
            let mut row: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
            row[PAD] = f64::NEG_INFINITY;
            row[BOS] = f64::NEG_INFINITY;
            row
        })
        .collect()
}

/// How each decoding step gets its logits: from the keys and values kept in per-layer caches
/// (only the newest position runs through the decoder), or by running the whole prefix again.
/// The two give the same logits to the bit; the cache makes a step cost time linear in the
/// output so far instead of quadratic.
struct Stepper<'m, T: Element> {
    model: &'m Seq2Seq<T>,
    /// The encoder output `(rows, s, d)` and its padding mask `(rows, 1, 1, s)`, one row per
    /// sequence being decoded.
    memory: Tensor<T>,
    src_mask: Tensor<T>,
    caches: Option<Vec<DecoderCache<T>>>,
    ctx: Ctx,
}

impl<'m, T: Element> Stepper<'m, T> {
    /// Encodes `src` `(rows, s)` once.
    fn new(model: &'m Seq2Seq<T>, src: &[usize], shape: [usize; 2], cached: bool) -> Self {
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let mut ctx = Ctx::eval();
        let enc = model.encode(&tape, src, shape, &mut ctx);
        // A model without decoder layers has nothing to cache.
        let caches = (cached && !model.decoder_layers.is_empty()).then(|| model.new_caches());
        Stepper { model, memory: enc.memory.value(), src_mask: enc.src_mask, caches, ctx }
    }

    // ANCHOR: step
    /// Log-probabilities of the next token after each row of `tgt` `(rows, t)`.
    fn next(&mut self, tgt: &[usize], shape: [usize; 2]) -> Vec<Vec<f64>> {
        // A fresh tape per step: each step's intermediate values are freed before the next.
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let enc = Encoded { memory: tape.constant(self.memory.clone()), src_mask: self.src_mask.clone() };
        let logits = match &mut self.caches {
            Some(caches) => self.model.decode_cached(&tape, &enc, tgt, shape, caches, &mut self.ctx),
            None => self.model.decode(&tape, &enc, tgt, shape, &mut self.ctx),
        };
        next_token_log_probs(&logits.value())
    }
    // ANCHOR_END: step

    /// Keeps the sequences `rows` of the last step, in that order, as the rows of the next.
    fn select_rows(&mut self, rows: &[usize]) {
        self.memory = self.memory.index_select(0, rows);
        self.src_mask = self.src_mask.index_select(0, rows);
        for cache in self.caches.iter_mut().flatten() {
            cache.select_rows(rows);
        }
    }
}

/// Greedy decoding of a batch of sources (each a list of ids ending in `<eos>`): at every step
/// the most likely next token, with the decoder's keys and values cached. Returns each output
/// without `<bos>` and without `<eos>`.
pub fn greedy<T: Element>(model: &Seq2Seq<T>, sources: &[Vec<usize>], max_len: usize) -> Vec<Vec<usize>> {
    greedy_decode(model, sources, max_len, true).tokens
}

/// What [`greedy_decode`] gives: the outputs and, for each step, every row's next-token
/// log-probabilities (`<pad>` and `<bos>` at −∞).
pub struct Decoded {
    /// Each output without `<bos>` and `<eos>`.
    pub tokens: Vec<Vec<usize>>,
    /// `steps[s][row]`: the log-probabilities step `s` chose from.
    pub steps: Vec<Vec<Vec<f64>>>,
}

/// Greedy decoding with the cache on or off (see [`greedy`]); the two give the same result.
pub fn greedy_decode<T: Element>(model: &Seq2Seq<T>, sources: &[Vec<usize>], max_len: usize, cached: bool) -> Decoded {
    if sources.is_empty() {
        return Decoded { tokens: Vec::new(), steps: Vec::new() };
    }
    let batch = sources.len();
    let s = sources.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let src: Vec<usize> =
        sources.iter().flat_map(|x| x.iter().copied().chain(std::iter::repeat_n(PAD, s - x.len()))).collect();
    let mut stepper = Stepper::new(model, &src, [batch, s], cached);
    let limit = max_len.min(model.cfg.max_len - 1);
    let mut outputs: Vec<Vec<usize>> = vec![vec![BOS]; batch];
    let mut done = vec![false; batch];
    let mut steps = Vec::new();
    // ANCHOR: greedy_loop
    for t in 1..=limit {
        let tgt: Vec<usize> = outputs.iter().flat_map(|o| o.iter().copied()).collect();
        let log_probs = stepper.next(&tgt, [batch, t]);
        for (i, row) in log_probs.iter().enumerate() {
            // Finished rows keep growing with padding so every row has length t.
            let next = if done[i] { PAD } else { argmax(row) };
            done[i] |= next == EOS;
            outputs[i].push(next);
        }
        steps.push(log_probs);
        if done.iter().all(|&d| d) {
            break;
        }
    }
    // ANCHOR_END: greedy_loop
    let tokens =
        outputs.into_iter().map(|o| o.into_iter().skip(1).take_while(|&t| t != EOS && t != PAD).collect()).collect();
    Decoded { tokens, steps }
}

/// The length penalty of Wu et al. (2016): ((5 + len) / 6)^α; α = 0 turns it off.
pub fn length_penalty(len: usize, alpha: f64) -> f64 {
    ((5.0 + len as f64) / 6.0).powf(alpha)
}

/// One hypothesis of beam search.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Generated ids, without `<bos>`; ends with `<eos>` if it finished.
    pub tokens: Vec<usize>,
    /// Sum of the log-probabilities of the tokens.
    pub log_prob: f64,
}

impl Hypothesis {
    /// log P / length_penalty(len): what the search ranks by.
    pub fn score(&self, alpha: f64) -> f64 {
        self.log_prob / length_penalty(self.tokens.len(), alpha)
    }

    fn finished(&self, max_len: usize) -> bool {
        self.tokens.last() == Some(&EOS) || self.tokens.len() >= max_len
    }
}

/// Beam search for one source: keeps the `width` best hypotheses at every step, ranked by
/// [`Hypothesis::score`]; returns the best one (with `<eos>` if it has one). Width 1 is greedy.
/// The decoder's keys and values are cached, and reordered as hypotheses are kept or dropped.
pub fn beam_search<T: Element>(
    model: &Seq2Seq<T>,
    source: &[usize],
    width: usize,
    alpha: f64,
    max_len: usize,
) -> Hypothesis {
    beam_search_with(model, source, width, alpha, max_len, true)
}

/// [`beam_search`] with the cache on or off; the two give the same hypothesis, to the bit.
pub fn beam_search_with<T: Element>(
    model: &Seq2Seq<T>,
    source: &[usize],
    width: usize,
    alpha: f64,
    max_len: usize,
    cached: bool,
) -> Hypothesis {
    assert!(width > 0, "beam_search: width must be at least 1");
    let max_len = max_len.min(model.cfg.max_len - 1);
    let mut stepper = Stepper::new(model, source, [1, source.len()], cached);
    // Each hypothesis with the row of the stepper it continues (None once finished).
    let mut beams = vec![(Hypothesis { tokens: Vec::new(), log_prob: 0.0 }, Some(0))];
    while beams.iter().any(|(h, _)| !h.finished(max_len)) {
        let open: Vec<&(Hypothesis, Option<usize>)> = beams.iter().filter(|(h, _)| !h.finished(max_len)).collect();
        // The open hypotheses become the stepper's rows, in this order.
        let rows: Vec<usize> = open.iter().map(|(_, row)| row.expect("an open hypothesis has a row")).collect();
        stepper.select_rows(&rows);
        let t = open[0].0.tokens.len() + 1;
        let tgt: Vec<usize> =
            open.iter().flat_map(|(h, _)| std::iter::once(BOS).chain(h.tokens.iter().copied())).collect();
        let log_probs = stepper.next(&tgt, [open.len(), t]);
        let mut candidates: Vec<(Hypothesis, Option<usize>)> =
            beams.iter().filter(|(h, _)| h.finished(max_len)).map(|(h, _)| (h.clone(), None)).collect();
        for (row, ((h, _), lps)) in open.iter().zip(log_probs).enumerate() {
            for (token, lp) in lps.iter().enumerate().filter(|(_, lp)| lp.is_finite()) {
                let mut tokens = h.tokens.clone();
                tokens.push(token);
                candidates.push((Hypothesis { tokens, log_prob: h.log_prob + lp }, Some(row)));
            }
        }
        if candidates.is_empty() {
            // No continuation has a finite probability (a model whose weights are not finite):
            // the search ends with the best it had.
            break;
        }
        // Best first; among equal scores the earlier candidate (lower token id) wins, as argmax.
        candidates.sort_by(|a, b| b.0.score(alpha).total_cmp(&a.0.score(alpha)));
        candidates.truncate(width);
        beams = candidates;
    }
    beams.into_iter().next().expect("the beam is never empty").0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use autograd::ParamStore;
    use rand::SeedableRng;

    /// A random tiny model: 4 specials and 3 characters.
    fn tiny(seed: u64) -> Seq2Seq<f64> {
        let cfg = ModelConfig {
            vocab_size: 7,
            d_model: 8,
            n_heads: 2,
            d_ff: 16,
            n_encoder_layers: 1,
            n_decoder_layers: 1,
            max_len: 16,
            ..ModelConfig::default()
        };
        let mut params = ParamStore::new();
        let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(seed));
        // Sharper distributions than the initialization gives, so search choices matter.
        for p in params.iter() {
            p.update(|d| d.iter_mut().for_each(|v| *v *= 3.0));
        }
        model
    }

    /// log P(tokens | source) by teacher forcing.
    fn log_prob(model: &Seq2Seq<f64>, source: &[usize], tokens: &[usize]) -> f64 {
        let mut total = 0.0;
        for t in 0..tokens.len() {
            let prefix: Vec<usize> = std::iter::once(BOS).chain(tokens[..t].iter().copied()).collect();
            let tape = Tape::new();
            let mut ctx = Ctx::eval();
            let enc = model.encode(&tape, source, [1, source.len()], &mut ctx);
            let logits = model.decode(&tape, &enc, &prefix, [1, t + 1], &mut ctx).value();
            total += next_token_log_probs(&logits)[0][tokens[t]];
        }
        total
    }

    #[test]
    fn beam_of_width_one_is_greedy() {
        for seed in 0..5 {
            let model = tiny(seed);
            let source = vec![4, 5, 6, 5, EOS];
            let greedy_out = greedy(&model, std::slice::from_ref(&source), 6).remove(0);
            let beam = beam_search(&model, &source, 1, 0.6, 6);
            let beam_out: Vec<usize> = beam.tokens.iter().copied().take_while(|&t| t != EOS).collect();
            assert_eq!(beam_out, greedy_out, "seed {seed}");
        }
    }

    /// Every sequence the search could produce: tokens from 2 (`<eos>`) up, ending at `<eos>` or
    /// at the length limit.
    fn all_sequences(vocab: usize, max_len: usize) -> Vec<Vec<usize>> {
        let mut done = Vec::new();
        let mut open = vec![Vec::new()];
        while let Some(prefix) = open.pop() {
            for token in EOS..vocab {
                let mut seq = prefix.clone();
                seq.push(token);
                if token == EOS || seq.len() == max_len { done.push(seq) } else { open.push(seq) }
            }
        }
        done
    }

    #[test]
    fn wide_beam_finds_the_brute_force_best() {
        let (max_len, alpha) = (4, 0.6);
        for seed in 0..3 {
            let model = tiny(seed);
            let source = vec![6, 4, EOS];
            let best = all_sequences(7, max_len)
                .into_iter()
                .map(|tokens| {
                    let log_prob = log_prob(&model, &source, &tokens);
                    Hypothesis { tokens, log_prob }.score(alpha)
                })
                .fold(f64::NEG_INFINITY, f64::max);
            // Wider than the number of prefixes, so nothing is ever pruned.
            let found = beam_search(&model, &source, 1000, alpha, max_len);
            assert!(
                (found.score(alpha) - best).abs() < 1e-12,
                "seed {seed}: beam {} vs brute force {best}",
                found.score(alpha)
            );
        }
    }

    #[test]
    fn greedy_stops_at_the_length_limit() {
        let model = tiny(1);
        let out = greedy(&model, &[vec![4, EOS], vec![5, 6, 4, EOS]], 3);
        assert!(out.iter().all(|o| o.len() <= 3));
    }
}
