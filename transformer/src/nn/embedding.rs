//! `Embedding`: a table of vectors, one row per token.
//!
//! PyTorch equivalent: `torch.nn.Embedding(n, d)` (initialized N(0, 1)).

use autograd::{Element, Param, ParamPath, Shape, Tape, Tensor, Var};
use rand::Rng;

/// Looks up rows of a `[n, d]` table.
pub struct Embedding<T: Element = f32> {
    /// `[n, d]`.
    pub weight: Param<T>,
}

crate::nn::impl_module!(Embedding { param weight });

impl<T: Element> Embedding<T> {
    /// A table of `n` vectors of width `d`, drawn from N(0, 1) as PyTorch does.
    pub fn new(n: usize, d: usize, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
        Embedding { weight: path.param("weight", Tensor::randn([n, d], T::ZERO, T::ONE, rng)) }
    }

    /// The rows for `ids` laid out as `ids_shape`: `ids_shape + [d]`.
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, ids: &[usize], ids_shape: impl Into<Shape>) -> Var<'t, T> {
        tape.param(&self.weight).embedding(ids, ids_shape)
    }
}
