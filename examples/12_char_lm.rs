//! 12: a language model — train a small GPT-style character model on this repository's own
//! Rust sources, measure it in bits per character on text it never saw, and generate with and
//! without the KV cache, which must agree to the bit.
//!
//! Run it with `cargo run --release --example 12_char_lm`.
//!
//! Bits per character is the loss in base 2: how many yes/no questions the model needs, on
//! average, to pin down the next character. Knowing only how often each character occurs costs
//! the entropy of those frequencies (computed below: about 4.9 bits for this text); a model
//! that has learned words and syntax needs far fewer.
//!
//! Generation feeds each new character back in. Without a cache every step recomputes the
//! keys and values of every earlier position; with one (`KvCache`), each step computes them for
//! the new position only and reads the rest back. The two must choose the same characters from
//! the same logits: each row goes through the same kernels in the same order either way.

use autograd::rand::SeedableRng;
use autograd::rand::rngs::StdRng;
use std::time::Instant;
use transformer::lm::{LmCheckpoint, LmConfig, LmTrainOptions, Sampling, TextSource, generate, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join("autograd-examples").join("12_char_lm");

    // ANCHOR: train
    // 1. Train on the sources the `transformer` crate was built from (the last 10% held out).
    let opts = LmTrainOptions {
        model: LmConfig { d_model: 64, n_heads: 4, n_layers: 2, d_ff: 256, max_len: 64, ..LmConfig::default() },
        text: TextSource::Builtin,
        steps: 800,
        batch_size: 32,
        out: out.clone(),
        progress: false,
        ..LmTrainOptions::default()
    };
    let text = opts.text.load()?;
    let summary = train(&opts, &text)?; // writes out/model, metrics.jsonl, loss.png
    let bits = summary.held_out.bits_per_char;
    println!(
        "{} characters of text; {} steps in {:.1} s; held-out {:.3} bits per character over {} characters",
        text.chars().count(),
        opts.steps,
        summary.seconds,
        bits,
        summary.held_out.characters
    );
    // The baseline: the entropy of the characters' frequencies, −Σ p·log₂ p.
    let mut counts = std::collections::HashMap::new();
    text.chars().for_each(|c| *counts.entry(c).or_insert(0usize) += 1);
    let total = text.chars().count() as f64;
    let unigram: f64 = counts.values().map(|&n| n as f64 / total).map(|p| -p * p.log2()).sum();
    println!("knowing only the characters' frequencies: {unigram:.3} bits per character");
    assert!(bits < unigram - 1.0, "the model should beat character frequencies by far: {bits:.3} vs {unigram:.3}");
    // ANCHOR_END: train

    // ANCHOR: generate
    // 2. Generate greedily from a prompt, with the cache and without.
    let ckpt = LmCheckpoint::load(&out.join("model"))?;
    // A batch of prompts of one length: every row advances one position per step.
    let prompts = vec![ckpt.vocab.encode("pub fn "), ckpt.vocab.encode("    let")];
    let new_tokens = 40;
    let mut rng = StdRng::seed_from_u64(0); // greedy decoding draws nothing, but the API takes one
    let start = Instant::now();
    let cached = generate(&ckpt.model, &prompts, new_tokens, Sampling::GREEDY, &mut rng, true);
    let cached_time = start.elapsed();
    let start = Instant::now();
    let uncached = generate(&ckpt.model, &prompts, new_tokens, Sampling::GREEDY, &mut rng, false);
    let uncached_time = start.elapsed();
    for (prompt, tokens) in prompts.iter().zip(&cached.tokens) {
        println!("{:?}", ckpt.vocab.decode(prompt) + &ckpt.vocab.decode(tokens));
    }
    assert_eq!(cached.tokens, uncached.tokens, "the cache must not change what is generated");
    let same_logits = cached.logits.iter().zip(&uncached.logits).all(|(a, b)| a.bit_eq(b));
    assert!(same_logits, "every step's logits must agree to the bit");
    // ANCHOR_END: generate
    println!(
        "{new_tokens} characters for {} prompts: {:.1} ms with the KV cache, {:.1} ms without; the same logits to the bit",
        prompts.len(),
        cached_time.as_secs_f64() * 1e3,
        uncached_time.as_secs_f64() * 1e3
    );

    println!("12_char_lm: all checks passed");
    Ok(())
}
