//! Pictures of cross-attention: for each token a translator wrote, how much each of its heads
//! looked at each source token. The weights are the ones the decoder's attention keeps in
//! evaluation mode ([`crate::nn::MultiHeadAttention::last_weights`]).
//!
//! ```
//! use autograd::ParamStore;
//! use rand::SeedableRng;
//! use transformer::attention_map::AttentionMap;
//! use transformer::data::{Example, Vocab};
//! use transformer::{ModelConfig, Seq2Seq};
//!
//! let vocab = Vocab::from_examples(&[Example::new("abc", "cba")]);
//! let cfg = ModelConfig { vocab_size: vocab.len(), d_model: 8, n_heads: 2, d_ff: 16, ..ModelConfig::default() };
//! let model = Seq2Seq::new(&cfg, &mut ParamStore::new(), &mut rand::rngs::StdRng::seed_from_u64(0));
//! let map = AttentionMap::new(&model, &vocab, "abc", &vocab.encode("cba"));
//! assert_eq!((map.source.len(), map.output.len()), (4, 4)); // each ends with <eos>
//! assert_eq!(map.layers.last().unwrap().dims(), &[2, 4, 4]); // (heads, output, source)
//! ```

use crate::Seq2Seq;
use crate::data::{BOS, EOS, Vocab, encode_source};
use crate::nn::Ctx;
use autograd::{Tape, Tensor};
use std::path::Path;

/// The cross-attention of one translation.
pub struct AttentionMap {
    /// The source tokens as text, then `<eos>`: the columns.
    pub source: Vec<String>,
    /// The output tokens as text, then `<eos>`: the rows.
    pub output: Vec<String>,
    /// For each decoder layer, `(heads, rows, columns)`: row i is what the decoder looked at
    /// while choosing output token i.
    pub layers: Vec<Tensor<f32>>,
}

impl AttentionMap {
    /// Runs `model` on `text` and `output`, the ids it produced (without `<bos>` and `<eos>`),
    /// and reads back each decoder layer's cross-attention.
    pub fn new(model: &Seq2Seq<f32>, vocab: &Vocab, text: &str, output: &[usize]) -> AttentionMap {
        let src = encode_source(vocab, text);
        let tgt_in: Vec<usize> = std::iter::once(BOS).chain(output.iter().copied()).collect();
        let tape = Tape::new();
        let _no_grad = tape.no_grad();
        let mut ctx = Ctx::eval(); // evaluation mode: the attention layers keep their weights
        let enc = model.encode(&tape, &src, [1, src.len()], &mut ctx);
        model.decode(&tape, &enc, &tgt_in, [1, tgt_in.len()], &mut ctx);
        let layers = model
            .decoder_layers
            .iter()
            .map(|layer| {
                let w = layer.cross_attn.last_weights().expect("kept in evaluation mode"); // (1, heads, rows, cols)
                let dims = w.dims()[1..].to_vec();
                w.reshape(dims)
            })
            .collect();
        let label = |id: usize| if id == EOS { "<eos>".to_string() } else { vocab.decode(&[id]) };
        AttentionMap {
            source: src.iter().map(|&id| label(id)).collect(),
            output: output.iter().copied().chain([EOS]).map(label).collect(),
            layers,
        }
    }
}

/// Pixels of one cell, and the space around panels and for labels.
const CELL: u32 = 22;
const LABEL: u32 = 26;
const TITLE: u32 = 22;
const GAP: u32 = 16;

/// The size in pixels of the picture [`draw`] makes of `maps`: one row of panels per map, one
/// panel per head.
pub fn picture_size(maps: &[AttentionMap]) -> (u32, u32) {
    let panel = |m: &AttentionMap| LABEL + CELL * m.source.len() as u32;
    let heads = |m: &AttentionMap| m.layers.last().map_or(0, |w| w.dims()[0] as u32);
    let width = maps.iter().map(|m| GAP + heads(m) * (panel(m) + GAP)).max().unwrap_or(GAP);
    let height = GAP + maps.iter().map(|m| TITLE + LABEL + CELL * m.output.len() as u32 + GAP).sum::<u32>();
    (width, height)
}

/// Draws the last decoder layer's cross-attention of each map as a PNG at `path`: a row of
/// panels per map, one per head, the source tokens across the top and the output tokens down
/// the side, each cell shaded from white (weight 0) to dark blue (weight 1).
pub fn draw(path: &Path, maps: &[AttentionMap]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let (width, height) = picture_size(maps);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let font = TextStyle::from(("sans-serif", 14).into_font());
    let centered = font.pos(Pos::new(HPos::Center, VPos::Center));
    let mut top = GAP as i32;
    for map in maps {
        let Some(weights) = map.layers.last() else { continue };
        let &[heads, rows, cols] = weights.dims() else { unreachable!("(heads, rows, columns)") };
        for h in 0..heads {
            let left = (GAP + h as u32 * (LABEL + CELL * cols as u32 + GAP)) as i32;
            let (x0, y0) = (left + LABEL as i32, top + (TITLE + LABEL) as i32);
            root.draw(&Text::new(format!("head {h}"), (left, top), font.clone()))?;
            let cell = CELL as i32;
            for (j, token) in map.source.iter().enumerate() {
                let at = (x0 + j as i32 * cell + cell / 2, top + TITLE as i32 + LABEL as i32 / 2);
                root.draw(&Text::new(short(token), at, centered.clone()))?;
            }
            for (i, token) in map.output.iter().enumerate() {
                let at = (left + LABEL as i32 / 2, y0 + i as i32 * cell + cell / 2);
                root.draw(&Text::new(short(token), at, centered.clone()))?;
                for j in 0..cols {
                    let w = weights.at(&[h, i, j]).clamp(0.0, 1.0);
                    let shade = |white: f32, dark: f32| (white + (dark - white) * w).round() as u8;
                    let color = RGBColor(shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0));
                    let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                    root.draw(&Rectangle::new([(x, y), (x + cell - 1, y + cell - 1)], color.filled()))?;
                }
            }
            debug_assert_eq!(map.output.len(), rows);
        }
        top += (TITLE + LABEL + CELL * rows as u32 + GAP) as i32;
    }
    root.present()?;
    Ok(())
}

/// A label that fits a cell: `<eos>` becomes `⏎`, a space `␣`.
fn short(token: &str) -> String {
    match token {
        "<eos>" => "⏎".into(),
        " " => "␣".into(),
        t => t.chars().take(2).collect(),
    }
}
