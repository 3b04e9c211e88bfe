//! Text generation: greedy or sampled, one token at a time, with the keys and values of
//! earlier positions kept in a cache (or, for comparison, the whole prefix recomputed).

use super::CharLM;
use crate::data::{BOS, SPECIALS};
use crate::nn::Ctx;
use autograd::{Element, Tape, Tensor};
use rand::Rng;

/// How the next token is chosen from the model's logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy, deterministic); above 0 draws from
    /// softmax(logits / temperature): below 1 sharper, above 1 flatter.
    pub temperature: f64,
    /// Draw only among the `k` most likely tokens (`None`: all).
    pub top_k: Option<usize>,
}

impl Sampling {
    /// Greedy decoding.
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_k: None };

    /// The next token from one row of logits. The special tokens are never chosen: generated
    /// text is characters only.
    pub fn pick<T: Element>(&self, logits: &[T], rng: &mut impl Rng) -> usize {
        let first = SPECIALS.len();
        if self.temperature <= 0.0 {
            // The first of the largest, as argmax.
            return first + crate::loss::argmax(&logits[first..]);
        }
        let mut scored: Vec<(usize, f64)> =
            logits.iter().enumerate().skip(SPECIALS.len()).map(|(i, l)| (i, l.to_f64())).collect();
        // Most likely first; ties keep the lower id first.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(self.top_k.unwrap_or(scored.len()).max(1));
        let best = scored[0].1;
        let weights: Vec<f64> = scored.iter().map(|&(_, l)| ((l - best) / self.temperature).exp()).collect();
        let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
        for (&(id, _), w) in scored.iter().zip(&weights) {
            if u < *w {
                return id;
            }
            u -= w;
        }
        scored[scored.len() - 1].0
    }
}

/// What generation gives: each row's new tokens, and the logits each was chosen from.
pub struct Generated<T: Element> {
    /// `new_tokens` ids per row.
    pub tokens: Vec<Vec<usize>>,
    /// For each step, the logits `(batch, vocab)` the step's tokens were chosen from.
    pub logits: Vec<Tensor<T>>,
}

/// From this many sequences up, the other threads are kept awake for each step
/// ([`autograd::keep_workers_awake`]) instead of sleeping between its kernels. Measured with
/// `transformer bench --decode` on the default LM, 2 threads, alternating runs: 32 sequences
/// generate 23% faster with them awake, while 16 run 2% and one 6% slower. With few rows the
/// products are a few microseconds each, and splitting them between two cores costs more than
/// it saves; a sleeping thread mostly wakes too late to take its half.
const KEEP_AWAKE_BATCH: usize = 32;

/// Continues each prompt (ids, all of one length, without `<bos>`: it is added) by `new_tokens`
/// tokens. With `cache`, each step runs only the newest position through the model, reading
/// earlier keys and values from a [`crate::nn::KvCache`]; without, each step recomputes the
/// whole prefix. Both give the same tokens and the same logits, to the bit.
///
/// # Panics
/// If the prompts differ in length, or prompt + new tokens exceed the model's `max_len`.
pub fn generate<T: Element>(
    model: &CharLM<T>,
    prompts: &[Vec<usize>],
    new_tokens: usize,
    sampling: Sampling,
    rng: &mut impl Rng,
    cache: bool,
) -> Generated<T> {
    let batch = prompts.len();
    if batch == 0 {
        return Generated { tokens: Vec::new(), logits: Vec::new() };
    }
    let p = prompts[0].len();
    assert!(prompts.iter().all(|x| x.len() == p), "generate: every prompt must have the same length");
    assert!(
        p.checked_add(new_tokens).is_some_and(|n| n <= model.cfg.max_len),
        "generate: {p} prompt tokens and {new_tokens} new ones exceed max_len = {}",
        model.cfg.max_len
    );
    let mut rows: Vec<Vec<usize>> =
        prompts.iter().map(|x| std::iter::once(BOS).chain(x.iter().copied()).collect()).collect();
    let mut caches = model.new_caches();
    let mut ctx = Ctx::eval();
    let mut out = Generated { tokens: vec![Vec::new(); batch], logits: Vec::new() };
    for step in 0..new_tokens {
        let _awake = (batch >= KEEP_AWAKE_BATCH).then(autograd::keep_workers_awake);
        // A fresh tape per step, recording nothing for gradients.
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let len = rows[0].len();
        let logits = if cache {
            // The first step reads the whole prompt; later ones only the token just chosen.
            let fed = if step == 0 { len } else { 1 };
            let ids: Vec<usize> = rows.iter().flat_map(|r| r[len - fed..].iter().copied()).collect();
            model.forward_cached(&tape, &ids, [batch, fed], &mut caches, &mut ctx).value()
        } else {
            let ids: Vec<usize> = rows.iter().flatten().copied().collect();
            model.forward(&tape, &ids, [batch, len], &mut ctx).value()
        }; // (batch, fed or len, vocab)
        let [_, t, vocab] = logits.dims()[..] else { unreachable!("logits are (batch, t, vocab)") };
        let last = logits.narrow(1, t - 1, 1).reshape([batch, vocab]);
        for (i, row) in last.data().chunks(vocab).enumerate() {
            let next = sampling.pick(row, rng);
            rows[i].push(next);
            out.tokens[i].push(next);
        }
        out.logits.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_takes_the_best_character_and_never_a_special() {
        let logits = [9.0f32, 9.0, 9.0, 9.0, 1.0, 3.0, 2.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(Sampling::GREEDY.pick(&logits, &mut rng), 5);
        let top1 = Sampling { temperature: 1.0, top_k: Some(1) };
        assert_eq!(top1.pick(&logits, &mut rng), 5);
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        // Two characters with logits ln 3 and 0: drawn 3 : 1.
        let logits = [0.0f64, 0.0, 0.0, 0.0, 3f64.ln(), 0.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let s = Sampling { temperature: 1.0, top_k: None };
        let firsts = (0..4000).filter(|_| s.pick(&logits, &mut rng) == 4).count();
        assert!((2850..3150).contains(&firsts), "{firsts} of 4000");
    }
}
