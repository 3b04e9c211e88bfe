//! The numbered tutorials live beside this crate as examples: `cargo run --example 01_tensors`.
