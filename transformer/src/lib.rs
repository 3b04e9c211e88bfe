//! Transformers built only on the public API of the `autograd` engine.
//!
//! Two model families, each a few layers of [`nn`] put together:
//!
//! - [`Seq2Seq`]: the encoder-decoder translator of "Attention Is All You Need" (Vaswani et al.,
//!   2017), as `torch.nn.Transformer`.
//! - [`lm::CharLM`]: a decoder-only character language model, as GPT, with KV-cached sampling.
//!
//! A language model in one screen — build it, take one training step, then generate:
//!
//! ```
//! use autograd::{ParamStore, Tape};
//! use rand::SeedableRng;
//! use transformer::data::Vocab;
//! use transformer::lm::{CharLM, LmConfig, Sampling, batch, frame, generate};
//! use transformer::loss::sequence_loss;
//! use transformer::nn::Ctx;
//! use transformer::optim::{AdamW, Optimizer, clip_grad_norm};
//!
//! let text = "fn main() {\n    println!(\"hello, world\");\n}\n";
//! let vocab = Vocab::from_texts([text]); // <pad> <bos> <eos> <unk>, then each character
//! let cfg = LmConfig { vocab_size: vocab.len(), d_model: 32, n_heads: 4, n_layers: 2, d_ff: 64, max_len: 32, ..LmConfig::default() };
//! let mut params = ParamStore::<f32>::new(); // named as PyTorch's state_dict: embed.weight, blocks.layers.0...
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let model = CharLM::new(&cfg, &mut params, &mut rng);
//! let mut optimizer = AdamW::pytorch(3e-3);
//!
//! // Chunks of max_len characters: the input is <bos> + chunk minus its last character.
//! let (inputs, targets, shape) = batch(&frame(&vocab.encode(text), cfg.max_len));
//! let tape = Tape::new();
//! let logits = model.forward(&tape, &inputs, shape, &mut Ctx::train(0)); // (batch, t, vocab)
//! let loss = sequence_loss(logits, &targets, 0.0); // cross-entropy, padding ignored
//! let mut grads = loss.backward();
//! clip_grad_norm(&mut grads, &params, 1.0);
//! optimizer.step(&params, &grads);
//!
//! // Keys and values of earlier positions are cached: each new character costs O(length).
//! let out = generate(&model, &[vocab.encode("fn ")], 10, Sampling { temperature: 0.8, top_k: Some(5) }, &mut rng, true);
//! println!("fn {}", vocab.decode(&out.tokens[0]));
//! ```
//!
//! One training step of the translator, the way [`train::train_step`] does it (which also
//! splits the batch into shards that run side by side, see [`train::run_shards`]):
//!
//! ```
//! use autograd::{ParamStore, Tape};
//! use rand::SeedableRng;
//! use transformer::data::{Batch, Example, Vocab};
//! use transformer::loss::sequence_loss;
//! use transformer::nn::Ctx;
//! use transformer::optim::{clip_grad_norm, Adam, Optimizer};
//! use transformer::{ModelConfig, Seq2Seq};
//!
//! let examples = [Example::new("abc", "cba"), Example::new("hello", "olleh")];
//! let vocab = Vocab::from_examples(&examples);
//! let cfg = ModelConfig { vocab_size: vocab.len(), d_model: 16, n_heads: 2, d_ff: 32, ..ModelConfig::default() };
//! let mut params = ParamStore::<f32>::new();
//! let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
//! let mut adam = Adam::paper(1e-3);
//!
//! let batch = Batch::from_examples(&examples, &vocab); // padded ids, <bos>/<eos> added
//! let tape = Tape::new();
//! let logits = model.forward(
//!     &tape,
//!     &batch.src, [batch.batch_size, batch.src_len],
//!     &batch.tgt_in, [batch.batch_size, batch.tgt_len],
//!     &mut Ctx::train(0),
//! ); // (batch, tgt_len, vocab)
//! let loss = sequence_loss(logits, &batch.tgt_out, 0.1); // ignores padding
//! let mut grads = loss.backward();
//! clip_grad_norm(&mut grads, &params, 1.0); // in place, as torch.nn.utils.clip_grad_norm_
//! adam.step(&params, &grads);
//! assert!(loss.value().item().is_finite());
//! ```
//!
//! The modules, from the bottom up: [`nn`] (layers: `Linear`, `Embedding`, `LayerNorm`,
//! `MultiHeadAttention`, `FeedForward`, encoder and decoder layers), [`model`] (`Seq2Seq`),
//! [`loss`], [`optim`] (Adam, AdamW, SGD, schedules, clipping), [`data`] (vocabulary, TSV files,
//! batching, the built-in tasks), [`decode`] (greedy and beam search, KV-cached), [`checkpoint`]
//! (model directories in PyTorch's naming), [`train`], [`eval`], [`bench`](mod@bench), and [`lm`] (the
//! language model: its config, text framing, training, evaluation and generation). The
//! `transformer` program wraps them.

#![warn(missing_docs)]

pub mod attention_map;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod decode;
pub mod error;
pub mod eval;
pub mod lm;
pub mod loss;
pub mod model;
pub mod nn;
pub mod optim;
pub mod session;
pub mod train;
mod weights;

pub use config::{Activation, ModelConfig, Positional};
pub use error::{Error, Result};
pub use model::Seq2Seq;
