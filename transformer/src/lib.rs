//! The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017), built
//! only on the public API of the `autograd` engine.
//!
//! One training step, the way [`train::train_step`] does it:
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
//! let mut params = ParamStore::new();
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
//! let grads = loss.backward();
//! let clip = clip_grad_norm(&grads, &params, 1.0);
//! adam.step_scaled(&params, &grads, clip.scale);
//! assert!(loss.value().item().is_finite());
//! ```
//!
//! The modules, from the bottom up: [`nn`] (layers: `Linear`, `Embedding`, `LayerNorm`,
//! `MultiHeadAttention`, `FeedForward`, encoder and decoder layers), [`model`] (`Seq2Seq`),
//! [`loss`], [`optim`] (Adam, AdamW, SGD, schedules, clipping), [`data`] (vocabulary, TSV files,
//! batching, the built-in tasks), [`decode`] (greedy and beam search), [`checkpoint`] (model
//! directories in PyTorch's naming), [`train`], [`eval`] and [`bench`]. The `transformer`
//! program wraps them.

#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod decode;
pub mod error;
pub mod eval;
pub mod loss;
pub mod model;
pub mod nn;
pub mod optim;
pub mod train;

pub use config::{Activation, ModelConfig, Positional};
pub use error::{Error, Result};
pub use model::Seq2Seq;
