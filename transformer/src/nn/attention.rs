//! `MultiHeadAttention`: h heads of scaled dot-product attention, concatenated, then W^O.
//!
//! For queries `x` `(batch, t_q, d)` and keys/values `m` `(batch, t_k, d)`:
//! headᵢ = softmax(QᵢKᵢᵀ/√d_k + mask)·Vᵢ with Q = x·W_Qᵀ + b_Q, K = m·W_Kᵀ + b_K, V = m·W_Vᵀ + b_V,
//! and out = concat(head₁…head_h)·W_Oᵀ + b_O.
//!
//! PyTorch equivalent: `torch.nn.MultiheadAttention(d, h, batch_first=True)`, with the same
//! parameter names (`in_proj_weight` holds W_Q, W_K, W_V stacked).

use super::{Ctx, Dropout, Linear};
use autograd::{Element, Param, ParamPath, Tensor, Var};
use rand::Rng;
use std::sync::{Mutex, MutexGuard, PoisonError};

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
    /// Behind a lock rather than a `RefCell`, so that the threads running a step's shards can
    /// share the model.
    last_weights: Mutex<Option<Tensor<T>>>,
}

crate::nn::impl_module!(MultiHeadAttention { param in_proj_weight, param in_proj_bias, module out_proj });

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
            last_weights: Mutex::new(None),
        }
    }

    // ANCHOR: forward
    /// Attention of queries `x` `(batch, t_q, d)` over `memory` `(batch, t_k, d)`.
    ///
    /// `mask` is 1 where a query may not look at a key, broadcastable to
    /// `(batch, heads, t_q, t_k)`: `(batch, 1, 1, t_k)` for padding, `(1, 1, t_q, t_k)` for causality.
    #[track_caller]
    pub fn forward<'t>(
        &self,
        x: Var<'t, T>,
        memory: Var<'t, T>,
        mask: Option<&Tensor<T>>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let h = self.n_heads;
        assert!(x.dims().len() == 3, "attention: queries must be (batch, t, d), got {}", x.shape());
        let (q, k, v) = (self.project(x, 0), self.project(memory, 1), self.project(memory, 2));
        // softmax(QₕKₕᵀ/√d_k + mask) for each of the h heads of d_k features: split, scaled,
        // masked and normalized in one op that keeps only the weights.
        let weights = q.attention_weights(k, h, mask); // (batch, h, t_q, t_k)
        if !ctx.training {
            // Kept for reading back (translate draws them); not while training, where they would
            // hold a step's weights in memory until the next.
            *self.kept_weights() = Some(weights.value());
        }
        let weights = self.dropout.forward(weights, ctx);
        let out = weights.attend(v); // (batch, t_q, d): the heads' Pₕ·Vₕ side by side
        self.out_proj.forward(out)
    }
    // ANCHOR_END: forward

    // ANCHOR: forward_cached
    /// Attention for decoding one step at a time: queries `x` `(batch, t_new, d)` over keys and
    /// values kept in `cache` instead of recomputed.
    ///
    /// - Self-attention (`memory` is `None`): the keys and values of `x` are appended to the
    ///   cache, and the queries see every cached position. Each step costs time linear in the
    ///   positions so far, where recomputing the prefix costs quadratic.
    /// - Cross-attention (`memory` given): the keys and values of `memory` are computed on the
    ///   first call and read from the cache after.
    ///
    /// `mask` is as in [`MultiHeadAttention::forward`], over the cached keys; with more than one
    /// new position in self-attention it must be causal (`None` lets every new position see
    /// the others). For each query the
    /// result equals, to the bit, what `forward` gives that query's row when run on the whole
    /// sequence: every row goes through the same kernels in the same order.
    #[track_caller]
    pub fn forward_cached<'t>(
        &self,
        x: Var<'t, T>,
        memory: Option<Var<'t, T>>,
        cache: &mut KvCache<T>,
        mask: Option<&Tensor<T>>,
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        let (h, d, tape) = (self.n_heads, self.d, x.tape());
        let q = match memory {
            None => {
                // Q, K and V of the new positions in one product with the whole stacked weight:
                // each column is the same sum as with that part's rows alone, and a step copies
                // no weights (one position's projections cost about what copying them would).
                let w = tape.param(&self.in_proj_weight);
                let b = tape.param(&self.in_proj_bias);
                let qkv = x.linear(w, Some(b)); // (batch, t_new, 3d)
                cache.append(qkv.narrow(2, d, d).value(), qkv.narrow(2, 2 * d, d).value());
                qkv.narrow(2, 0, d)
            }
            Some(m) => {
                if cache.is_empty() {
                    cache.append(self.project(m, 1).value(), self.project(m, 2).value());
                }
                self.project(x, 0)
            }
        }; // (batch, t_new, d)
        let (k, v) = cache.keys_values().expect("the cache was just filled");
        let (k, v) = (tape.constant(k), tape.constant(v)); // (batch, t_cached, d)
        let weights = q.attention_weights(k, h, mask); // (batch, h, t_new, t_cached)
        if !ctx.training {
            // The newest positions' weights, for reading back as `forward` keeps them.
            *self.kept_weights() = Some(weights.value());
        }
        let weights = self.dropout.forward(weights, ctx);
        self.out_proj.forward(weights.attend(v)) // (batch, t_new, d)
    }
    // ANCHOR_END: forward_cached

    /// Q (`part` 0), K (1) or V (2) of `input` `(batch, len, d)`, from that part's rows of the
    /// stacked weight: narrowing a [d, d] weight is cheap, where splitting a (batch, t, 3d)
    /// product would copy activations forward and pad them back in the backward pass.
    #[track_caller]
    fn project<'t>(&self, input: Var<'t, T>, part: usize) -> Var<'t, T> {
        let (d, tape) = (self.d, input.tape());
        let w = tape.param(&self.in_proj_weight).narrow(0, part * d, d); // (d, d)
        let b = tape.param(&self.in_proj_bias).narrow(0, part * d, d); // (d)
        input.linear(w, Some(b)) // (batch, len, d)
    }

    /// The attention weights of the last forward pass in evaluation mode (`ctx.training` false),
    /// `(batch, heads, t_q, t_k)`.
    pub fn last_weights(&self) -> Option<Tensor<T>> {
        self.kept_weights().clone()
    }

    /// The slot of [`MultiHeadAttention::last_weights`]. A panic elsewhere while it was held
    /// cannot have left it half-written (it is replaced whole), so a poisoned lock is taken as is.
    fn kept_weights(&self) -> MutexGuard<'_, Option<Tensor<T>>> {
        self.last_weights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The keys and values one attention layer has computed, each `(batch, t, d)`, kept between
/// the steps of incremental decoding (see [`MultiHeadAttention::forward_cached`]).
#[derive(Clone, Debug)]
pub struct KvCache<T: Element> {
    keys: Option<Tensor<T>>,
    values: Option<Tensor<T>>,
}

impl<T: Element> Default for KvCache<T> {
    fn default() -> Self {
        KvCache { keys: None, values: None }
    }
}

impl<T: Element> KvCache<T> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// True before anything was cached.
    pub fn is_empty(&self) -> bool {
        self.keys.is_none()
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[1])
    }

    /// The cached keys and values, `(batch, t, d)` each.
    pub fn keys_values(&self) -> Option<(Tensor<T>, Tensor<T>)> {
        Some((self.keys.clone()?, self.values.clone()?))
    }

    /// Adds the keys and values of new positions, `(batch, t_new, d)` each, after the cached ones.
    pub fn append(&mut self, keys: Tensor<T>, values: Tensor<T>) {
        let join = |old: Option<Tensor<T>>, new: Tensor<T>| match old {
            Some(old) => Tensor::concat(&[old, new], 1),
            None => new,
        };
        self.keys = Some(join(self.keys.take(), keys));
        self.values = Some(join(self.values.take(), values));
    }

    /// Keeps only the batch rows `rows`, in that order (beam search reorders hypotheses).
    pub fn select_rows(&mut self, rows: &[usize]) {
        for t in [&mut self.keys, &mut self.values].into_iter().flatten() {
            *t = t.index_select(0, rows);
        }
    }
}

/// A `(t, t)` mask with 1 above the diagonal: position i may not attend to positions after i.
pub fn causal_mask<T: Element>(t: usize) -> Tensor<T> {
    Tensor::from_fn([1, 1, t, t], |i| if i % t > i / t { T::ONE } else { T::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{ParamStore, Tape};
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
        let out = attn.forward(x, x, Some(&mask), &mut crate::nn::Ctx::eval());
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
