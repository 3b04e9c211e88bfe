//! 06 — A whole Transformer: teach the encoder-decoder model of "Attention Is All You Need" to
//! reverse short words, in a few seconds, with the `transformer` crate built on this engine.
//!
//! Run with `cargo run --release --example 06_transformer`.

use autograd::ParamStore;
use autograd::rand::{Rng, SeedableRng, rngs::StdRng};
use transformer::data::{Batcher, Example, Vocab};
use transformer::nn::Ctx;
use transformer::optim::{Adam, Optimizer, Schedule, WarmupLinear};
use transformer::train::{exact_match, train_step};
use transformer::{ModelConfig, Seq2Seq};

/// A random word of 3 to 6 letters from "abcdef", and its reverse.
fn example(rng: &mut StdRng) -> Example {
    let len = rng.random_range(3..=6);
    let word: String = (0..len).map(|_| (b'a' + rng.random_range(0..6u8)) as char).collect();
    let reversed: String = word.chars().rev().collect();
    Example::new(word, reversed)
}

fn main() {
    // 1. Data: 20,000 training pairs and 200 held-out pairs whose words never occur in training.
    let mut rng = StdRng::seed_from_u64(6);
    let held_out: Vec<Example> = (0..200).map(|_| example(&mut rng)).collect();
    let train: Vec<Example> =
        (0..20_000).map(|_| example(&mut rng)).filter(|e| !held_out.iter().any(|h| h.source == e.source)).collect();
    // Characters become ids; ids 0-3 are <pad>, <bos>, <eos>, <unk>.
    let vocab = Vocab::from_examples(&train);

    // 2. The model: a small pre-LN Transformer, 1 encoder and 1 decoder layer.
    let cfg = ModelConfig {
        vocab_size: vocab.len(),
        d_model: 32,
        n_heads: 4,
        n_encoder_layers: 1,
        n_decoder_layers: 1,
        d_ff: 64,
        max_len: 16,
        ..ModelConfig::default()
    };
    let mut params = ParamStore::new();
    let model = Seq2Seq::new(&cfg, &mut params, &mut StdRng::seed_from_u64(0));
    println!("{} parameters, e.g. {:?}", params.num_elements(), params.names().take(3).collect::<Vec<_>>());

    // 3. Training: padded, length-bucketed batches; Adam with warm-up then linear decay.
    let steps = 600;
    let mut batches = Batcher::new(&train, &vocab, 64, 0).expect("batch size and data are valid");
    let schedule = WarmupLinear::new(3e-3, 50, steps);
    let mut adam = Adam::paper(0.0);
    let mut ctx = Ctx::train(0);
    for step in 1..=steps {
        adam.set_lr(schedule.lr(step));
        // forward (logits), cross-entropy with label smoothing, backward, clip, Adam step
        let (loss, hits, counted) = train_step(&model, &params, &mut adam, &batches.next_batch(), 0.1, 1.0, &mut ctx);
        if step % 100 == 0 {
            println!("step {step:4}: loss {loss:.3}, token accuracy {:.1}%", 100.0 * hits as f64 / counted as f64);
        }
    }

    // 4. Evaluation: greedy decoding of words the model never saw.
    let (accuracy, outputs) = exact_match(&model, &vocab, &held_out);
    for (e, out) in held_out.iter().zip(&outputs).take(5) {
        println!("{:>8} -> {out}", e.source);
    }
    println!("held-out exact match: {:.1}%", accuracy * 100.0);
    assert!(accuracy >= 0.9, "the model should reverse at least 90% of unseen words, got {:.1}%", accuracy * 100.0);
}
