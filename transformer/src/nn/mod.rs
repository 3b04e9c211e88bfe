//! The layers of the Transformer, each a config (or sizes), `new` with a parameter path and a
//! generator, and `forward` on a tape.

mod attention;
mod dropout;
mod embedding;
mod feed_forward;
mod layers;
mod linear;
mod module;
mod norm;
mod positional;

pub use attention::{KvCache, MultiHeadAttention, causal_mask};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use feed_forward::FeedForward;
pub use layers::{DecoderCache, DecoderLayer, EncoderLayer, LayerConfig};
pub use linear::Linear;
pub use module::Module;
pub(crate) use module::impl_module;
pub use norm::LayerNorm;
pub use positional::sinusoidal_table;

use rand_chacha::ChaCha12Rng;

/// What a forward pass needs besides its inputs: whether it is training (dropout on) and the
/// generator dropout draws from.
#[derive(Clone)]
pub struct Ctx {
    /// True while training: dropout is applied. False for evaluation and decoding.
    pub training: bool,
    /// The source of dropout masks, seeded for reproducible runs.
    pub rng: ChaCha12Rng,
}

impl Ctx {
    /// A context for training, with a seeded generator.
    pub fn train(seed: u64) -> Self {
        use rand::SeedableRng;
        Ctx { training: true, rng: ChaCha12Rng::seed_from_u64(seed) }
    }

    /// A context for evaluation: no dropout.
    pub fn eval() -> Self {
        use rand::SeedableRng;
        Ctx { training: false, rng: ChaCha12Rng::seed_from_u64(0) }
    }
}
