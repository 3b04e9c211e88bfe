//! Scaled dot-product attention over heads, as two ops: the weights softmax(QₕKₕᵀ/√d_k), and
//! their product with the values.
//!
//! Queries, keys and values come as `(batch, t, d)` with the d features holding h heads of
//! d_k = d/h each, the layout a projection makes. The heads are split, multiplied and merged
//! inside each op, so the only values kept for the backward pass are the weights
//! `(batch, h, t_q, t_k)` and the output `(batch, t_q, d)`: not the per-head copies of Q, K and
//! V, the raw scores, the scaled ones or the masked ones, which the same computation written
//! with primitives would keep.
//!
//! PyTorch equivalent: `F.scaled_dot_product_attention` on `q.view(b, t, h, d_k).transpose(1, 2)`
//! and so on, with the attention weights kept apart (it returns only the output).

use super::softmax::softmax_line;
use crate::kernels::for_each_row;
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

/// What a masked score becomes before the softmax: far below any real score, yet finite, so a
/// row whose every key is masked gives uniform weights instead of NaN.
pub const MASKED_SCORE: f64 = -1e30;

/// `(batch, t, h·d_k)` → `(batch, h, t, d_k)`.
fn heads_first<T: Element, M: Math<T>>(x: &M, heads: usize) -> M {
    let s = x.shape();
    let (b, t, d) = (s[0], s[1], s[2]);
    x.reshape(&Shape::from([b, t, heads, d / heads])).permute(&[0, 2, 1, 3])
}

/// `(batch, h, t, d_k)` → `(batch, t, h·d_k)`.
fn heads_last<T: Element, M: Math<T>>(x: &M) -> M {
    let s = x.shape();
    let (b, h, t, dk) = (s[0], s[1], s[2], s[3]);
    x.permute(&[0, 2, 1, 3]).reshape(&Shape::from([b, t, h * dk]))
}

/// 1/√d_k, the factor on the scores of `heads` heads sharing `d` features.
fn score_scale(d: usize, heads: usize) -> f64 {
    1.0 / ((d / heads) as f64).sqrt()
}

/// 1 where the mask lets a query see a key, 0 where it hides it.
fn keep<T: Element>(mask: &Tensor<T>) -> Tensor<T> {
    mask.map(|m| if m != T::ZERO { T::ZERO } else { T::ONE })
}

/// A mask read row by row of the `(batch, heads, t_q, t_k)` scores it broadcasts to.
struct RowMask<'a, T> {
    data: &'a [T],
    /// Strides along batch, heads, t_q and t_k (0 where the mask is broadcast).
    strides: [usize; 4],
    heads: usize,
    tq: usize,
}

impl<'a, T: Element> RowMask<'a, T> {
    fn new(mask: &'a Tensor<T>, [b, heads, tq, tk]: [usize; 4]) -> Self {
        let s = mask.shape().broadcast_strides(&Shape::from([b, heads, tq, tk]));
        RowMask { data: mask.data(), strides: [s[0], s[1], s[2], s[3]], heads, tq }
    }

    /// True where score row `row` (a flat index over batch, heads and t_q) hides key `j`.
    #[inline]
    fn hides(&self, row: usize, j: usize) -> bool {
        let (i, h, b) = (row % self.tq, (row / self.tq) % self.heads, row / (self.tq * self.heads));
        let s = self.strides;
        self.data[b * s[0] + h * s[1] + i * s[2] + j * s[3]] != T::ZERO
    }
}

/// P = softmax(scale·QₕKₕᵀ, masked) per head.
struct AttentionWeights<T: Element> {
    heads: usize,
    scale: f64,
    mask: Option<Tensor<T>>,
}

impl<T: Element> Op<T> for AttentionWeights<T> {
    fn name(&self) -> &'static str {
        "attention_weights"
    }
    fn attributes(&self) -> String {
        format!("{} heads{}", self.heads, if self.mask.is_some() { ", masked" } else { "" })
    }
    // With S = scale·QₕKₕᵀ (masked entries replaced by a constant) and P = softmax(S) along keys:
    // ∂L/∂S = P ⊙ (G − Σ_keys G⊙P) on entries the mask keeps, 0 on the others (softmax's rule);
    // ∂L/∂Qₕ = scale·∂S·Kₕ  and  ∂L/∂Kₕ = scale·∂Sᵀ·Qₕ.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let (q, k, p, g) = (&v.inputs[0], &v.inputs[1], v.output, v.grad);
        let gp = g.mul(p);
        let mut ds = gp.sub(&p.mul(&gp.sum(&[-1], true)));
        if let Some(mask) = &self.mask {
            ds = ds.mul_const(keep(mask));
        }
        let ds = ds.mul_scalar(self.scale); // (batch, h, t_q, t_k)
        let dq = v.needs[0].then(|| heads_last(&ds.matmul_t(&heads_first(k, self.heads), false, false)));
        let dk = v.needs[1].then(|| heads_last(&ds.matmul_t(&heads_first(q, self.heads), true, false)));
        vec![dq, dk]
    }

    // The same rule with ∂S made in one pass per row of scores.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let (q, k, p, g) = (&v.inputs[0], &v.inputs[1], v.output, v.grad);
        let &[b, h, tq, tk] = p.dims() else { unreachable!("weights are (batch, heads, t_q, t_k)") };
        let mask = self.mask.as_ref().map(|m| RowMask::new(m, [b, h, tq, tk]));
        let scale = T::from_f64(self.scale);
        let (pd, gd) = (p.data(), g.data());
        let mut ds = vec![T::ZERO; p.numel()];
        for_each_row(&mut ds, tk.max(1), |row, d| {
            let (pr, gr) = (&pd[row * tk..(row + 1) * tk], &gd[row * tk..(row + 1) * tk]);
            let dot: T = pr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
            for (j, ((d, &pj), &gj)) in d.iter_mut().zip(pr).zip(gr).enumerate() {
                let hidden = mask.as_ref().is_some_and(|m| m.hides(row, j));
                *d = if hidden { T::ZERO } else { (pj * gj - pj * dot) * scale };
            }
        });
        let ds = Tensor::from_vec(ds, p.shape().clone());
        let dq = v.needs[0].then(|| heads_last(&ds.matmul(&heads_first(k, self.heads))));
        let dk = v.needs[1].then(|| heads_last(&ds.matmul_t(&heads_first(q, self.heads), true, false)));
        Some(vec![dq, dk])
    }
}

/// O = concat over heads of Pₕ·Vₕ.
struct Attend {
    heads: usize,
}

impl<T: Element> Op<T> for Attend {
    fn name(&self) -> &'static str {
        "attend"
    }
    fn attributes(&self) -> String {
        format!("{} heads", self.heads)
    }
    // With Gₕ the head-h columns of ∂L/∂O:  ∂L/∂Pₕ = Gₕ·Vₕᵀ  and  ∂L/∂Vₕ = Pₕᵀ·Gₕ.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let (p, values) = (&v.inputs[0], &v.inputs[1]);
        let g = heads_first(v.grad, self.heads); // (batch, h, t_q, d_k)
        let dp = v.needs[0].then(|| g.matmul_t(&heads_first(values, self.heads), false, true));
        let dv = v.needs[1].then(|| heads_last(&p.matmul_t(&g, true, false)));
        vec![dp, dv]
    }
}

/// `(batch, t_q, t_k, d)` of queries `q` and keys `k`, or a panic naming the shapes.
#[track_caller]
fn check_weights<T: Element>(q: &Tensor<T>, k: &Tensor<T>, heads: usize, mask: Option<&Tensor<T>>) -> [usize; 4] {
    let shapes = format!("attention_weights: queries {}, keys {}", q.shape(), k.shape());
    let ([b, tq, d], [bk, tk, dk]) = (q.dims(), k.dims()) else { panic!("{shapes}: both must be (batch, t, d)") };
    assert!(b == bk && d == dk, "{shapes}: the batch sizes and feature sizes must agree");
    assert!(heads > 0 && d % heads == 0, "{shapes}: {d} features do not split into {heads} heads");
    if let Some(m) = mask {
        let full = Shape::from([*b, heads, *tq, *tk]);
        assert!(
            m.shape().broadcasts_to(&full),
            "{shapes}: the mask {} does not broadcast to (batch, heads, t_q, t_k) = {full}",
            m.shape()
        );
    }
    [*b, *tq, *tk, *d]
}

impl<T: Element> Tensor<T> {
    /// The attention weights of queries `self` over keys `k`, both `(batch, t, d)` with `heads`
    /// heads of d_k = d/heads features: softmax(QₕKₕᵀ/√d_k) along the keys, for each head,
    /// `(batch, heads, t_q, t_k)`.
    ///
    /// `mask` is nonzero where a query may not see a key, broadcastable to
    /// `(batch, heads, t_q, t_k)`; those scores become [`MASKED_SCORE`] before the softmax.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let q = Tensor::<f64>::zeros([1, 2, 4]);
    /// let k = Tensor::from_fn([1, 3, 4], |i| i as f64);
    /// let causal = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [2, 3]);
    /// let p = q.attention_weights(&k, 2, Some(&causal)); // (1, 2, 2, 3)
    /// assert_eq!(p.dims(), &[1, 2, 2, 3]);
    /// assert_eq!(p.to_vec()[..6], [1.0, 0.0, 0.0, 0.5, 0.5, 0.0]);
    /// ```
    ///
    /// # Panics
    /// If the shapes do not fit, naming them.
    #[track_caller]
    pub fn attention_weights(&self, k: &Tensor<T>, heads: usize, mask: Option<&Tensor<T>>) -> Tensor<T> {
        let [b, tq, tk, d] = check_weights(self, k, heads, mask);
        let scale = T::from_f64(score_scale(d, heads));
        let mut scores = heads_first(self, heads).matmul_t(&heads_first(k, heads), false, true); // (b, h, t_q, t_k)
        let mask = mask.map(|m| RowMask::new(m, [b, heads, tq, tk]));
        let masked = T::from_f64(MASKED_SCORE);
        for_each_row(scores.data_mut(), tk.max(1), |row, scores| {
            for (j, s) in scores.iter_mut().enumerate() {
                *s = if mask.as_ref().is_some_and(|m| m.hides(row, j)) { masked } else { *s * scale };
            }
            softmax_line(scores);
        });
        scores
    }

    /// Attention weights `self` `(batch, h, t_q, t_k)` applied to values `v` `(batch, t_k, d)`:
    /// each head's Pₕ·Vₕ, the heads merged back into `(batch, t_q, d)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let p = Tensor::<f64>::from_vec(vec![1.0, 0.0, 0.5, 0.5], [1, 1, 2, 2]); // one head
    /// let v = Tensor::from_vec(vec![2.0, 4.0], [1, 2, 1]);
    /// assert_eq!(p.attend(&v).to_vec(), vec![2.0, 3.0]);
    /// ```
    ///
    /// # Panics
    /// If the shapes do not fit, naming them.
    #[track_caller]
    pub fn attend(&self, v: &Tensor<T>) -> Tensor<T> {
        let heads = check_attend(self, v);
        heads_last(&self.matmul(&heads_first(v, heads))) // (b, h, t_q, d_k) → (b, t_q, d)
    }
}

/// The number of heads of weights `p` applied to values `v`, or a panic naming the shapes.
#[track_caller]
fn check_attend<T: Element>(p: &Tensor<T>, v: &Tensor<T>) -> usize {
    let shapes = format!("attend: weights {}, values {}", p.shape(), v.shape());
    let ([b, h, _, tk], [bv, tv, d]) = (p.dims(), v.dims()) else {
        panic!("{shapes}: the weights must be (batch, heads, t_q, t_k) and the values (batch, t_k, d)")
    };
    assert!(b == bv && tk == tv, "{shapes}: the batch sizes and key counts must agree");
    assert!(*h > 0 && d % h == 0, "{shapes}: {d} features do not split into {h} heads");
    *h
}

impl<'t, T: Element> Var<'t, T> {
    /// The attention weights of queries `self` over keys `k` (see
    /// [`Tensor::attention_weights`]), recorded as one op: of the scores, only the weights are
    /// kept for the backward pass.
    #[track_caller]
    pub fn attention_weights(self, k: Var<'t, T>, heads: usize, mask: Option<&Tensor<T>>) -> Self {
        let value = self.value().attention_weights(&k.value(), heads, mask);
        let d = self.dims()[2];
        let op = AttentionWeights { heads, scale: score_scale(d, heads), mask: mask.cloned() };
        Var::record(self.tape, op, &[self, k], value)
    }

    /// Attention weights `self` applied to values `v` (see [`Tensor::attend`]), recorded as one
    /// op: the per-head products are not kept.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn([2, 3, 4], |i| (i % 5) as f64 * 0.1));
    /// let out = x.attention_weights(x, 2, None).attend(x); // self-attention, 2 heads
    /// assert_eq!(out.dims(), vec![2, 3, 4]);
    /// let g = out.sum_all().backward();
    /// assert_eq!(g[x].dims(), &[2, 3, 4]);
    /// ```
    #[track_caller]
    pub fn attend(self, v: Var<'t, T>) -> Self {
        let value = self.value().attend(&v.value());
        let heads = self.dims()[1];
        Var::record(self.tape, Attend { heads }, &[self, v], value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor, Var, allclose};

    /// `(batch, t, d)` → `(batch, heads, t, d/heads)` with primitives.
    fn split(x: Var<'_, f64>, heads: usize) -> Var<'_, f64> {
        let [b, t, d] = x.dims()[..] else { unreachable!() };
        x.reshape([b, t, heads, d / heads]).permute(&[0, 2, 1, 3])
    }

    /// The two ops compute what the primitives compute: split heads, scale, mask, softmax,
    /// product, merge; values and gradients, with and without a mask.
    #[test]
    fn equal_their_composition_from_primitives() {
        let (b, tq, tk, h, d) = (2, 3, 4, 2, 6);
        let q0 = Tensor::<f64>::from_fn([b, tq, d], |i| ((i * 7) % 11) as f64 * 0.3 - 1.4);
        let k0 = Tensor::from_fn([b, tk, d], |i| ((i * 5) % 13) as f64 * 0.2 - 1.1);
        let v0 = Tensor::from_fn([b, tk, d], |i| ((i * 3) % 7) as f64 * 0.4 - 1.0);
        let up = Tensor::from_fn([b, tq, d], |i| ((i * 3) % 5) as f64 - 2.0);
        // Batch 0 hides key 3 from every query; batch 1 hides every key from query 0.
        let mask = Tensor::from_fn([b, 1, tq, tk], |i| {
            let (bb, qi, kj) = (i / (tq * tk), (i / tk) % tq, i % tk);
            f64::from(u8::from((bb == 0 && kj == 3) || (bb == 1 && qi == 0)))
        });
        for mask in [None, Some(&mask)] {
            let run = |fused: bool| {
                let tape = Tape::new();
                let (q, k, v) = (tape.var(q0.clone()), tape.var(k0.clone()), tape.var(v0.clone()));
                let out = if fused {
                    q.attention_weights(k, h, mask).attend(v)
                } else {
                    let scores = split(q, h).matmul_t(split(k, h), false, true) * (1.0 / ((d / h) as f64).sqrt());
                    let scores = match mask {
                        Some(m) => scores.masked_fill(m, super::MASKED_SCORE),
                        None => scores,
                    };
                    scores.softmax(-1).matmul(split(v, h)).permute(&[0, 2, 1, 3]).reshape([b, tq, d])
                };
                let value = out.value();
                let g = (out * tape.constant(up.clone())).sum_all().backward();
                (value, [g[q].clone(), g[k].clone(), g[v].clone()])
            };
            let ((v1, g1), (v2, g2)) = (run(true), run(false));
            assert!(allclose(&v1, &v2, 1e-14, 1e-14), "{v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!(allclose(a, b, 1e-12, 1e-13), "{a} vs {b}");
            }
        }
    }

    /// The one-pass rule for ∂S gives what the rule written with `Math` gives.
    #[test]
    fn fused_rule_matches_the_general_one() {
        use super::AttentionWeights;
        use crate::op::testing::assert_fused_rule_matches;
        let q = Tensor::<f64>::from_fn([2, 3, 6], |i| ((i * 7) % 11) as f64 * 0.3 - 1.4);
        let k = Tensor::from_fn([2, 4, 6], |i| ((i * 5) % 13) as f64 * 0.2 - 1.1);
        let mask = Tensor::from_fn([1, 1, 3, 4], |i| f64::from(u8::from(i % 4 > i / 4)));
        for mask in [None, Some(mask)] {
            let p = q.attention_weights(&k, 2, mask.as_ref());
            let op = AttentionWeights { heads: 2, scale: 1.0 / 3f64.sqrt(), mask };
            assert_fused_rule_matches(&op, &[q.clone(), k.clone()], &p);
        }
    }

    #[test]
    #[should_panic(
        expected = "attention_weights: queries [2, 3, 6], keys [2, 4, 6]: 6 features do not split into 4 heads"
    )]
    fn heads_that_do_not_divide_are_named() {
        Tensor::<f32>::zeros([2, 3, 6]).attention_weights(&Tensor::zeros([2, 4, 6]), 4, None);
    }
}
