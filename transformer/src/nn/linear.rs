//! `Linear`: y = x·Wᵀ + b with PyTorch's layout (W is `[out, in]`).
//!
//! PyTorch equivalent: `torch.nn.Linear(in, out)`; the transpose is folded into the GEMM.

use autograd::{Element, Param, ParamPath, Tensor, Var};
use rand::Rng;

/// A fully connected layer: `[..., in] → [..., out]`.
pub struct Linear<T: Element = f32> {
    /// `[out, in]`.
    pub weight: Param<T>,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
}

crate::nn::impl_module!(Linear { param weight, option bias });

impl<T: Element> Linear<T> {
    /// A layer with PyTorch's default initialization: weight and bias uniform in ±1/√in.
    pub fn new(d_in: usize, d_out: usize, bias: bool, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
        let bound = T::from_f64(1.0 / (d_in as f64).sqrt());
        let weight = path.param("weight", Tensor::rand_uniform([d_out, d_in], -bound, bound, rng));
        let bias = bias.then(|| path.param("bias", Tensor::rand_uniform([d_out], -bound, bound, rng)));
        Linear { weight, bias }
    }

    /// x·Wᵀ + b.
    #[track_caller]
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.linear(tape.param(&self.weight), self.bias.as_ref().map(|b| tape.param(b))) // (..., out)
    }

    /// max(x·Wᵀ + b, 0), as one op.
    #[track_caller]
    pub fn forward_relu<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.linear_relu(tape.param(&self.weight), self.bias.as_ref().map(|b| tape.param(b))) // (..., out)
    }
}
