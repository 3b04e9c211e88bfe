//! KV-cached decoding gives what recomputing the whole prefix gives: the same tokens and the
//! same logits to the last bit, for both model families, in f32 and f64, greedy and beam search
//! (translator) and sampling (LM), with padding in the batch.

use autograd::{Element, ParamStore};
use rand::SeedableRng;
use transformer::data::EOS;
use transformer::decode::{beam_search_with, greedy_decode};
use transformer::lm::{CharLM, LmConfig, Sampling, generate};
use transformer::{Activation, ModelConfig, Positional, Seq2Seq};

/// Scales every parameter: sharper distributions than the initialization gives, so decoding
/// choices differ from row to row and some rows finish early.
fn sharpen<T: Element>(params: &ParamStore<T>, by: f64) {
    for p in params.iter() {
        p.update(|d| d.iter_mut().for_each(|v| *v *= T::from_f64(by)));
    }
}

fn translator<T: Element>(seed: u64, norm_first: bool, positional: Positional) -> Seq2Seq<T> {
    let cfg = ModelConfig {
        vocab_size: 12,
        d_model: 16,
        n_heads: 4,
        d_ff: 32,
        n_encoder_layers: 2,
        n_decoder_layers: 2,
        max_len: 24,
        norm_first,
        positional,
        ..ModelConfig::default()
    };
    let mut params = ParamStore::new();
    let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(seed));
    sharpen(&params, 2.0);
    model
}

fn bit_eq(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn check_translator<T: Element>() {
    // Sources of four lengths: the batch is padded, and rows end at different steps.
    let sources = vec![vec![4, 5, 6, 7, 8, 9, EOS], vec![6, EOS], vec![9, 8, 7, EOS], vec![11, 4, 11, 4, 5, EOS]];
    let mut finished_early = 0;
    for (seed, norm_first, positional) in
        [(0, false, Positional::Sinusoidal), (1, true, Positional::Learned), (2, true, Positional::Sinusoidal)]
    {
        let model = translator::<T>(seed, norm_first, positional);
        let (cached, full) = (greedy_decode(&model, &sources, 20, true), greedy_decode(&model, &sources, 20, false));
        assert_eq!(cached.tokens, full.tokens, "seed {seed}: greedy tokens");
        assert_eq!(cached.steps.len(), full.steps.len());
        for (s, (a, b)) in cached.steps.iter().zip(&full.steps).enumerate() {
            for (row, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(bit_eq(x, y), "seed {seed}, step {s}, row {row}: cached log-probabilities differ");
            }
        }
        finished_early += cached.tokens.iter().filter(|t| t.len() < 19).count();
        for source in &sources {
            let (a, b) = (
                beam_search_with(&model, source, 4, 0.6, 12, true),
                beam_search_with(&model, source, 4, 0.6, 12, false),
            );
            assert_eq!(a.tokens, b.tokens, "seed {seed}: beam tokens");
            assert_eq!(a.log_prob.to_bits(), b.log_prob.to_bits(), "seed {seed}: beam log-probability");
        }
    }
    assert!(finished_early > 0, "no row finished before the limit: the padding path was not exercised");
}

#[test]
fn translator_cache_matches_recomputation_f32() {
    check_translator::<f32>();
}

#[test]
fn translator_cache_matches_recomputation_f64() {
    check_translator::<f64>();
}

fn check_lm<T: Element>() {
    for (seed, activation, tie_output) in [(0, Activation::Gelu, true), (1, Activation::Relu, false)] {
        let cfg = LmConfig {
            vocab_size: 15,
            d_model: 16,
            n_heads: 4,
            n_layers: 2,
            d_ff: 32,
            max_len: 20,
            activation,
            tie_output,
            ..LmConfig::default()
        };
        let mut params = ParamStore::<T>::new();
        let model = CharLM::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(seed));
        sharpen(&params, 3.0);
        let prompts = vec![vec![4, 5, 6], vec![7, 7, 8], vec![14, 4, 9]];
        for sampling in [Sampling::GREEDY, Sampling { temperature: 1.0, top_k: Some(5) }] {
            let run =
                |cache| generate(&model, &prompts, 16, sampling, &mut rand::rngs::StdRng::seed_from_u64(9), cache);
            let (cached, full) = (run(true), run(false));
            assert_eq!(cached.tokens, full.tokens, "seed {seed} {sampling:?}: tokens");
            for (step, (a, b)) in cached.logits.iter().zip(&full.logits).enumerate() {
                assert!(a.bit_eq(b), "seed {seed} {sampling:?}, step {step}: cached logits differ:\n{a}\n{b}");
            }
            assert!(cached.tokens.iter().any(|t| t != &cached.tokens[0]), "rows should differ");
        }
    }
}

#[test]
fn lm_cache_matches_recomputation_f32() {
    check_lm::<f32>();
}

#[test]
fn lm_cache_matches_recomputation_f64() {
    check_lm::<f64>();
}
