//! The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017), built
//! only on the public API of the `autograd` engine.

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod optim;

pub use error::{Error, Result};
