//! 11: attention you can see — train a translator with the library's `train`, then read back
//! and draw where its decoder looked in the source while writing each character.
//!
//! Run it with `cargo run --release --example 11_attention_you_can_see`.
//!
//! The task is `reverse`: random letters in, the same letters backwards out. To write output
//! character i of an n-letter word the model needs source character n − 1 − i, so if attention
//! does what it is said to do, the weights of each output row peak on that one source column:
//! an anti-diagonal. The example checks that they do, and writes the picture (one panel per
//! head) to `autograd-examples/11_attention/attention.png` in the system's temporary directory;
//! `transformer translate --attention FILE.png` draws the same picture for any trained model.

use transformer::ModelConfig;
use transformer::attention_map::{self, AttentionMap};
use transformer::checkpoint::Checkpoint;
use transformer::data::DataSource;
use transformer::eval::translate_ids;
use transformer::train::{TrainOptions, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join("autograd-examples").join("11_attention");

    // ANCHOR: train
    // 1. Train: the `transformer train` program's own loop, driven from code. One encoder and
    //    one decoder layer, so the decoder's single cross-attention must do all the aligning.
    let opts = TrainOptions {
        model: ModelConfig {
            d_model: 32,
            n_heads: 4,
            n_encoder_layers: 1,
            n_decoder_layers: 1,
            d_ff: 64,
            max_len: 32,
            ..ModelConfig::default()
        },
        data: DataSource::Task("reverse".into()),
        steps: 1500,
        batch_size: 64,
        warmup: 50,
        out: out.clone(),
        progress: false, // no progress bar; the summary below says how it went
        ..TrainOptions::default()
    };
    let data = opts.data.load(opts.seed)?; // (train, held-out) examples of the task
    let summary = train(&opts, &data)?; // writes out/model, metrics.jsonl, loss.png
    println!(
        "trained {} steps in {:.1} s: loss {:.3} → {:.3}, held-out exact match {:.1}%",
        opts.steps,
        summary.seconds,
        summary.first_loss,
        summary.final_loss,
        100.0 * summary.held_out_exact_match
    );
    assert!(summary.held_out_exact_match >= 0.9, "the model should reverse held-out words");
    // ANCHOR_END: train

    // ANCHOR: look
    // 2. Look: translate a few held-out words and read back the decoder's cross-attention,
    //    (heads, output + <eos>, source + <eos>) for its one layer.
    let ckpt = Checkpoint::load(&out.join("model"))?;
    let words: Vec<&str> = data.held_out.iter().map(|e| e.source.as_str()).filter(|w| w.len() >= 5).take(4).collect();
    let mut maps = Vec::new();
    let (mut rows, mut on_the_diagonal) = (0, 0);
    for word in &words {
        let output = translate_ids(&ckpt, word, None);
        let map = AttentionMap::new(&ckpt.model, &ckpt.vocab, word, &output);
        let weights = map.layers.last().expect("one decoder layer"); // (heads, rows, columns)
        let &[heads, _, columns] = weights.dims() else { unreachable!() };
        let n = word.chars().count();
        // Row i (output character i) against column n − 1 − i, on the weights averaged over
        // the heads; the last row (choosing <eos>) has no character to look for.
        for i in 0..n.min(output.len()) {
            let mean = |j: usize| (0..heads).map(|h| weights.at(&[h, i, j])).sum::<f32>() / heads as f32;
            let peak = (0..columns).fold(0, |best, j| if mean(j) > mean(best) { j } else { best });
            rows += 1;
            on_the_diagonal += usize::from(peak == n - 1 - i);
        }
        println!("{word:>10} -> {}", ckpt.vocab.decode(&output));
        maps.push(map);
    }
    // ANCHOR_END: look
    let share = on_the_diagonal as f64 / rows as f64;
    println!(
        "{on_the_diagonal} of {rows} output characters attend most to their source character ({:.0}%)",
        100.0 * share
    );
    assert!(share >= 0.9, "cross-attention should follow the anti-diagonal, but only {:.0}% of rows do", 100.0 * share);

    // 3. Draw: one row of panels per word, one panel per head.
    let picture = out.join("attention.png");
    attention_map::draw(&picture, &maps)?;
    println!("drawn to {}", picture.display());

    println!("11_attention_you_can_see: all checks passed");
    Ok(())
}
