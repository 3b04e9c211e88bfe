//! 06: a whole Transformer — teach the encoder-decoder model of "Attention Is All You Need" to
//! reverse short words, in a few seconds, with the `transformer` crate built on this engine.
//!
//! Run it with `cargo run --release --example 06_transformer`.
//!
//! The pieces are the library's: `Vocab` turns characters into ids, `Batcher` makes padded
//! batches, `Seq2Seq` is the model, `train_step` runs forward, loss, backward, clipping and the
//! optimizer, and `exact_match` decodes greedily. Example 11 trains the same kind of model with
//! the library's whole training loop instead, and looks inside it.

use autograd::ParamStore;
use autograd::rand::{Rng, SeedableRng, rngs::StdRng};
use transformer::data::{Batcher, Example, Vocab};
use transformer::nn::Ctx;
use transformer::optim::{Adam, Optimizer, Schedule, WarmupLinear};
use transformer::train::{DEFAULT_SHARDS, StepSettings, exact_match, train_step};
use transformer::{ModelConfig, Seq2Seq};

/// Letters the words are made of: few, so that 20,000 random words cover their pairs well.
const LETTERS: u8 = 6;
/// Training pairs drawn, and held-out pairs whose words never occur in training.
const TRAIN: usize = 20_000;
const HELD_OUT: usize = 200;
/// Optimizer steps, and the peak learning rate reached after the warm-up steps.
const STEPS: usize = 600;
const PEAK_LR: f64 = 3e-3;
const WARMUP: usize = 50;
/// The share of the target probability spread over the other tokens (the paper's 0.1), and the
/// global gradient norm beyond which gradients are scaled down.
const LABEL_SMOOTHING: f64 = 0.1;
const CLIP_NORM: f64 = 1.0;
/// What the held-out exact match must reach for the example to pass.
const TARGET: f64 = 0.9;

/// A random word of 3 to 6 letters from the first `LETTERS` of the alphabet, and its reverse.
fn example(rng: &mut StdRng) -> Example {
    let len = rng.random_range(3..=6);
    let word: String = (0..len).map(|_| (b'a' + rng.random_range(0..LETTERS)) as char).collect();
    let reversed: String = word.chars().rev().collect();
    Example::new(word, reversed)
}

fn main() {
    // 1. Data. Characters become ids; ids 0-3 are <pad>, <bos>, <eos>, <unk>.
    let mut rng = StdRng::seed_from_u64(6);
    let held_out: Vec<Example> = (0..HELD_OUT).map(|_| example(&mut rng)).collect();
    let train: Vec<Example> =
        (0..TRAIN).map(|_| example(&mut rng)).filter(|e| !held_out.iter().any(|h| h.source == e.source)).collect();
    let vocab = Vocab::from_examples(&train);
    println!("{} training pairs, {} held out, {} tokens", train.len(), held_out.len(), vocab.len());

    // 2. The model: a small pre-LN Transformer with one encoder and one decoder layer, 4 heads
    //    of 8 features each. A word and its <eos> fit in max_len = 16 positions.
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

    // 3. Training: batches of 64 words of similar length, padded to the longest; Adam with the
    //    paper's β and ε, the rate warmed up then decayed linearly to 0 by the last step.
    let mut batches = Batcher::new(&train, &vocab, 64, 0).expect("batch size and data are valid");
    let schedule = WarmupLinear::new(PEAK_LR, WARMUP, STEPS);
    let mut adam = Adam::paper(0.0); // the schedule sets the rate before every step
    let mut ctx = Ctx::train(0); // training mode, seeded (the config's dropout is 0, so nothing drops)
    // The batch is split into two shards whose passes run side by side on the threads.
    let settings = StepSettings { label_smoothing: LABEL_SMOOTHING, clip_norm: CLIP_NORM, shards: DEFAULT_SHARDS };
    let mut last_accuracy = 0.0;
    for step in 1..=STEPS {
        adam.set_lr(schedule.lr(step));
        let batch = batches.next_batch(); // src (64, s), tgt_in and tgt_out (64, t): ids
        // Logits (64, t, vocab), cross-entropy with label smoothing, backward, clip, Adam step.
        let (loss, hits, counted) = train_step(&model, &params, &mut adam, &batch, &settings, &mut ctx);
        last_accuracy = hits as f64 / counted as f64;
        if step % 100 == 0 {
            println!("step {step:4}: loss {loss:.3}, token accuracy {:.1}%", 100.0 * last_accuracy);
        }
    }
    assert!(last_accuracy > 0.9, "the last batch should be mostly right: {last_accuracy}");

    // 4. Evaluation: greedy decoding of words the model never saw.
    let (accuracy, outputs) = exact_match(&model, &vocab, &held_out);
    for (e, out) in held_out.iter().zip(&outputs).take(5) {
        println!("{:>8} -> {out}", e.source);
    }
    println!("held-out exact match: {:.1}%", accuracy * 100.0);
    assert!(accuracy >= TARGET, "the model should reverse at least 90% of unseen words, got {:.1}%", accuracy * 100.0);
    println!("06_transformer: all checks passed");
}
