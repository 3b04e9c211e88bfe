//! `MultiHeadAttention`: h heads of scaled dot-product attention, concatenated, then W^O.
//!
//! For queries `x` `(batch, t_q, d)` and keys/values `m` `(batch, t_k, d)`:
//! headᵢ = softmax(QᵢKᵢᵀ/√d_k + mask)·Vᵢ with Q = x·W_Qᵀ + b_Q, K = m·W_Kᵀ + b_K, V = m·W_Vᵀ + b_V,
//! and out = concat(head₁…head_h)·W_Oᵀ + b_O.
//!
//! PyTorch equivalent: `torch.nn.MultiheadAttention(d, h, batch_first=True)`, with the same
//! parameter names (`in_proj_weight` holds W_Q, W_K, W_V stacked).

use super::{Ctx, Dropout, Linear};
use autograd::{Element, Param, ParamPath, Tape, Tensor, Var};
use rand::Rng;
use std::cell::RefCell;

/// Multi-head attention with a saved copy of its last attention weights.
pub struct MultiHeadAttention<T: Element = f32> {
    /// `[3d, d]`: W_Q, W_K, W_V stacked.
    pub in_proj_weight: Param<T>,
    /// `[3d]`: b_Q, b_K, b_V stacked.
    pub in_proj_bias: Param<T>,
    /// W^O and b^O.
    pub out_proj: Linear<T>,
    n_heads: usize,
    d: usize,
    dropout: Dropout,
    last_weights: RefCell<Option<Tensor<T>>>,
}

impl<T: Element> MultiHeadAttention<T> {
    /// Initialized as PyTorch does: Xavier-uniform projections, zero biases.
    pub fn new(d: usize, n_heads: usize, dropout: f64, mut path: ParamPath<'_, T>, rng: &mut impl Rng) -> Self {
        // Xavier uniform over the stacked [3d, d] matrix, as torch's _reset_parameters.
        let bound = T::from_f64((6.0 / (d + 3 * d) as f64).sqrt());
        let in_proj_weight = path.param("in_proj_weight", Tensor::rand_uniform([3 * d, d], -bound, bound, rng));
        let in_proj_bias = path.param("in_proj_bias", Tensor::zeros([3 * d]));
        let out_proj = Linear::new(d, d, true, path.prefix("out_proj"), rng);
        out_proj.bias.as_ref().expect("out_proj has a bias").set(Tensor::zeros([d]));
        MultiHeadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            n_heads,
            d,
            dropout: Dropout { p: dropout },
            last_weights: RefCell::new(None),
        }
    }

    /// Attention of queries `x` `(batch, t_q, d)` over `memory` `(batch, t_k, d)`.
    ///
    /// `mask` is 1 where a query may not look at a key, broadcastable to
    /// `(batch, heads, t_q, t_k)`: `(batch, 1, 1, t_k)` for padding, `(1, 1, t_q, t_k)` for causality.
    #[track_caller]
    pub fn forward<'t>(
        &self,
        tape: &'t Tape<T>,
        x: Var<'t, T>,
        memory: Var<'t, T>,
        mask: Option<&Tensor<T>>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let (d, h) = (self.d, self.n_heads);
        let w = tape.param(&self.in_proj_weight); // (3d, d)
        let b = tape.param(&self.in_proj_bias); // (3d)
        assert!(x.dims().len() == 3, "attention: queries must be (batch, t, d), got {}", x.shape());
        // Q, K and V each from their rows of the stacked weight: narrowing a [d, d] weight is
        // cheap, where splitting a (batch, t, 3d) product would copy activations forward and
        // pad them back in the backward pass.
        let project = |input: Var<'t, T>, part: usize| {
            input.linear(w.narrow(0, part * d, d), Some(b.narrow(0, part * d, d))) // (batch, len, d)
        };
        let (q, k, v) = (project(x, 0), project(memory, 1), project(memory, 2));
        // softmax(QₕKₕᵀ/√d_k + mask) for each of the h heads of d_k features: split, scaled,
        // masked and normalized in one op that keeps only the weights.
        let weights = q.attention_weights(k, h, mask); // (batch, h, t_q, t_k)
        if !ctx.training {
            // Kept for reading back (translate draws them); not while training, where they would
            // hold a step's weights in memory until the next.
            *self.last_weights.borrow_mut() = Some(weights.value());
        }
        let weights = self.dropout.forward(weights, ctx);
        let out = weights.attend(v); // (batch, t_q, d): the heads' Pₕ·Vₕ side by side
        self.out_proj.forward(tape, out)
    }

    /// The attention weights of the last forward pass in evaluation mode (`ctx.training` false),
    /// `(batch, heads, t_q, t_k)`.
    pub fn last_weights(&self) -> Option<Tensor<T>> {
        self.last_weights.borrow().clone()
    }
}

/// A `(t, t)` mask with 1 above the diagonal: position i may not attend to positions after i.
pub fn causal_mask<T: Element>(t: usize) -> Tensor<T> {
    Tensor::from_fn([1, 1, t, t], |i| if i % t > i / t { T::ONE } else { T::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::ParamStore;
    use rand::SeedableRng;

    #[test]
    fn weights_are_readable_respect_masks_and_never_nan() {
        let mut store = ParamStore::<f64>::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let attn = MultiHeadAttention::new(8, 2, 0.0, store.prefix("attn"), &mut rng);
        let tape = Tape::new();
        let x = tape.constant(Tensor::randn([2, 3, 8], 0.0, 1.0, &mut rng));
        // Batch 0 hides key 2; batch 1 hides every key, so its rows are fully masked.
        let mask = Tensor::from_vec(vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0], [2, 1, 1, 3]);
        let out = attn.forward(&tape, x, x, Some(&mask), &mut crate::nn::Ctx::eval());
        assert!(out.value().data().iter().all(|v| v.is_finite()));
        let w = attn.last_weights().expect("weights are kept");
        assert_eq!(w.dims(), &[2, 2, 3, 3]); // (batch, heads, t_q, t_k)
        for row in w.data().chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        for (i, row) in w.data().chunks(3).enumerate() {
            if i < 6 {
                assert_eq!(row[2], 0.0, "a masked key gets no weight");
            } else {
                assert!(row.iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-12), "a fully masked row is uniform");
            }
        }
    }
}
