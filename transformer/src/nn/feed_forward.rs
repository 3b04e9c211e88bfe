//! `FeedForward`: linear1 → activation → dropout → linear2, applied at every position.
//!
//! PyTorch equivalent: the `linear1`, `activation`, `dropout`, `linear2` of
//! `torch.nn.TransformerEncoderLayer`.

use super::{Ctx, Dropout, Linear};
use crate::config::Activation;
use autograd::{Element, ParamPath, Var};
use rand::Rng;

/// Two linear maps with a nonlinearity between: `(..., d) → (..., d_ff) → (..., d)`.
pub struct FeedForward<T: Element = f32> {
    /// d → d_ff.
    pub linear1: Linear<T>,
    /// d_ff → d.
    pub linear2: Linear<T>,
    activation: Activation,
    dropout: Dropout,
}

crate::nn::impl_module!(FeedForward { module linear1, module linear2 });

impl<T: Element> FeedForward<T> {
    /// Parameters `linear1.*` and `linear2.*` directly under `path` (PyTorch's layer layout).
    pub fn new(
        d: usize,
        d_ff: usize,
        activation: Activation,
        dropout: f64,
        path: &mut ParamPath<'_, T>,
        rng: &mut impl Rng,
    ) -> Self {
        FeedForward {
            linear1: Linear::new(d, d_ff, true, path.prefix("linear1"), rng),
            linear2: Linear::new(d_ff, d, true, path.prefix("linear2"), rng),
            activation,
            dropout: Dropout { p: dropout },
        }
    }

    /// `(..., d) → (..., d)`.
    #[track_caller]
    pub fn forward<'t>(&self, x: Var<'t, T>, ctx: &mut Ctx) -> Var<'t, T> {
        let h = match self.activation {
            // One op: the pre-activation values are not kept for the backward pass.
            Activation::Relu => self.linear1.forward_relu(x), // (..., d_ff)
            Activation::Gelu => self.linear1.forward(x).gelu(),
        };
        let h = self.dropout.forward(h, ctx);
        self.linear2.forward(h) // (..., d)
    }
}
