//! `Dropout`: while training, zero each value with probability p and scale the rest by 1/(1−p).
//!
//! PyTorch equivalent: `torch.nn.Dropout(p)`.

use super::Ctx;
use autograd::{Element, Var};

/// Dropout with a fixed probability; the identity outside training or when p = 0.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// Probability of zeroing a value.
    pub p: f64,
}

impl Dropout {
    /// Applies dropout if `ctx.training`.
    #[track_caller]
    pub fn forward<'t, T: Element>(&self, x: Var<'t, T>, ctx: &mut Ctx) -> Var<'t, T> {
        if ctx.training && self.p > 0.0 { x.dropout(T::from_f64(self.p), &mut ctx.rng) } else { x }
    }
}
