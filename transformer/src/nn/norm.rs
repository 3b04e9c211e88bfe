//! `LayerNorm` over the last dimension, with a learned scale and shift.
//!
//! PyTorch equivalent: `torch.nn.LayerNorm(d, eps)`.

use autograd::{Element, Param, ParamPath, Tensor, Var};

/// y = (x − mean) / √(var + ε) · weight + bias, over the last dimension.
pub struct LayerNorm<T: Element = f32> {
    /// `[d]`, initialized to ones.
    pub weight: Param<T>,
    /// `[d]`, initialized to zeros.
    pub bias: Param<T>,
    /// Added to the variance.
    pub eps: f64,
    d: usize,
}

crate::nn::impl_module!(LayerNorm { param weight, param bias });

impl<T: Element> LayerNorm<T> {
    /// A layer norm of width `d`.
    pub fn new(d: usize, eps: f64, mut path: ParamPath<'_, T>) -> Self {
        LayerNorm {
            weight: path.param("weight", Tensor::ones([d])),
            bias: path.param("bias", Tensor::zeros([d])),
            eps,
            d,
        }
    }

    /// Normalizes `(..., d)`.
    #[track_caller]
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.layer_norm(&[self.d], Some(tape.param(&self.weight)), Some(tape.param(&self.bias)), self.eps)
    }
}
