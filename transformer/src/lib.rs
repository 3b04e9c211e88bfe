//! The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017), built
//! only on the public API of the `autograd` engine.

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
