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
//! The kernels never split the heads into a tensor of their own: each head is read in place, a
//! t×d_k block of a `(batch, t, d)` tensor with rows d apart, and each batch element is one
//! task that runs every product, mask and softmax of its heads while they sit in cache. The
//! rules written with `Math` (what higher derivatives differentiate) split the heads with
//! reshapes and permutes instead, and the tests check the two against each other.
//!
//! PyTorch equivalent: `F.scaled_dot_product_attention` on `q.view(b, t, h, d_k).transpose(1, 2)`
//! and so on, with the attention weights kept apart (it returns only the output).

use super::softmax::{normalize, shift_by_max};
use crate::kernels::gemm::{View, gemm_view};
use crate::kernels::{CHUNK, count, lanes};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};
use rayon::prelude::*;

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
}

impl<'a, T: Element> RowMask<'a, T> {
    fn new(mask: &'a Tensor<T>, dims: Dims) -> Self {
        let s = mask.shape().broadcast_strides(&Shape::from([dims.b, dims.h, dims.tq, dims.tk]));
        RowMask { data: mask.data(), strides: [s[0], s[1], s[2], s[3]] }
    }

    /// Sets `row[j]` to `value` for every key `j` the mask hides from query `i` of head `h` of
    /// batch element `b`.
    #[inline]
    fn fill(&self, [b, h, i]: [usize; 3], row: &mut [T], value: T) {
        let s = self.strides;
        let base = b * s[0] + h * s[1] + i * s[2];
        for (j, x) in row.iter_mut().enumerate() {
            if self.data[base + j * s[3]] != T::ZERO {
                *x = value;
            }
        }
    }
}

/// The sizes of one attention: batch, heads, queries, keys and features (d = heads·d_k).
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Dims {
    fn dk(&self) -> usize {
        self.d / self.h
    }

    /// Multiply-adds of one product over every head, Q·Kᵀ or P·V.
    fn flops(&self) -> usize {
        self.b * self.h * self.tq * self.tk * self.dk()
    }

    /// Head `h` of batch element `b` of a `(batch, t, d)` tensor: t×d_k, rows d apart.
    fn head<'a, T>(&self, x: &'a [T], t: usize, b: usize, h: usize) -> View<'a, T> {
        View { data: &x[(b * t * self.d + h * self.dk()).min(x.len())..], rs: self.d, cs: 1 }
    }

    /// The same head read transposed: d_k×t.
    fn head_t<'a, T>(&self, x: &'a [T], t: usize, b: usize, h: usize) -> View<'a, T> {
        View { cs: self.d, rs: 1, ..self.head(x, t, b, h) }
    }

    /// Head `h` of batch element `b` of `(batch, heads, t_q, t_k)` weights: t_q×t_k, or read
    /// transposed, t_k×t_q.
    fn weights<'a, T>(&self, p: &'a [T], b: usize, h: usize, transposed: bool) -> View<'a, T> {
        let data = &p[((b * self.h + h) * self.tq * self.tk).min(p.len())..];
        if transposed { View { data, rs: 1, cs: self.tk } } else { View { data, rs: self.tk, cs: 1 } }
    }
}

/// Copies head `h`, t×d_k and row-major in `head`, into its columns of one batch element's
/// `(t, d)` rows.
fn put_head<T: Copy>(rows: &mut [T], head: &[T], dims: Dims, h: usize) {
    let dk = dims.dk();
    if dk == 0 {
        return;
    }
    for (row, src) in rows.chunks_mut(dims.d).zip(head.chunks(dk)) {
        row[h * dk..(h + 1) * dk].copy_from_slice(src);
    }
}

/// Below this many multiply-adds an attention kernel runs on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 20;

/// Runs `f(b, out_b)` for each batch element `b`, where `out` holds one equal chunk per
/// element; in parallel, one task per element, when the `flops` of all of them are worth a
/// hand-off. Every element is computed the same way on any number of threads.
fn per_batch<T: Element>(batch: usize, out: &mut [T], flops: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if batch == 0 || out.is_empty() {
        return;
    }
    let len = out.len() / batch;
    if parallel(batch, flops) {
        out.par_chunks_mut(len).with_min_len(min_tasks(batch, flops)).enumerate().for_each(|(b, o)| f(b, o));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(b, o)| f(b, o));
    }
}

/// [`per_batch`] for two outputs at once.
fn per_batch_pair<T: Element>(
    batch: usize,
    (x, y): (&mut [T], &mut [T]),
    flops: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync + Send,
) {
    if batch == 0 || x.is_empty() || y.is_empty() {
        return;
    }
    let (lx, ly) = (x.len() / batch, y.len() / batch);
    if parallel(batch, flops) {
        let pairs = x.par_chunks_mut(lx).zip(y.par_chunks_mut(ly));
        pairs.with_min_len(min_tasks(batch, flops)).enumerate().for_each(|(b, (x, y))| f(b, x, y));
    } else {
        x.chunks_mut(lx).zip(y.chunks_mut(ly)).enumerate().for_each(|(b, (x, y))| f(b, x, y));
    }
}

/// Whether a kernel over `batch` elements and `flops` multiply-adds goes to the pool (and is
/// counted as such).
fn parallel(batch: usize, flops: usize) -> bool {
    let yes = flops >= PARALLEL_FLOPS && batch > 1 && rayon::current_num_threads() > 1;
    if yes {
        count(|r| &mut r.batched_products);
    }
    yes
}

/// Batch elements per task: enough for about `CHUNK` multiply-adds each.
fn min_tasks(batch: usize, flops: usize) -> usize {
    (CHUNK * batch / flops.max(1)).max(1)
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

    // The same rule per batch element: ∂S made in one pass per row of scores, then its two
    // products with the heads of K and Q read in place.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let (q, k, p, g) = (&v.inputs[0], &v.inputs[1], v.output, v.grad);
        let &[b, h, tq, tk] = p.dims() else { unreachable!("weights are (batch, heads, t_q, t_k)") };
        let dims = Dims { b, h, tq, tk, d: q.dims()[2] };
        let mask = self.mask.as_ref().map(|m| RowMask::new(m, dims));
        let scale = T::from_f64(self.scale);
        let (qd, kd, pd, gd) = (q.data(), k.data(), p.data(), g.data());
        let (mut dq, mut dk) = (vec![T::ZERO; q.numel()], vec![T::ZERO; k.numel()]);
        per_batch_pair(b, (&mut dq, &mut dk), 3 * dims.flops(), |bi, dq, dk| {
            let (mut ds, mut head) = (vec![T::ZERO; tq * tk], vec![T::ZERO; tq.max(tk) * dims.dk()]);
            for hh in 0..h {
                let at = ((bi * h + hh) * tq * tk)..((bi * h + hh + 1) * tq * tk);
                for (i, ((d, pr), gr)) in
                    ds.chunks_mut(tk).zip(pd[at.clone()].chunks(tk)).zip(gd[at].chunks(tk)).enumerate()
                {
                    let dot = lanes::dot(pr, gr);
                    for ((d, &pj), &gj) in d.iter_mut().zip(pr).zip(gr) {
                        *d = (pj * gj - pj * dot) * scale;
                    }
                    if let Some(m) = &mask {
                        m.fill([bi, hh, i], d, T::ZERO);
                    }
                }
                let ds = View { data: &ds, rs: tk, cs: 1 };
                let dq_h = &mut head[..tq * dims.dk()];
                gemm_view(tq, tk, dims.dk(), ds, dims.head(kd, tk, bi, hh), dq_h); // ∂S·Kₕ
                put_head(dq, dq_h, dims, hh);
                let dk_h = &mut head[..tk * dims.dk()];
                gemm_view(tk, tq, dims.dk(), View { rs: 1, cs: tk, ..ds }, dims.head(qd, tq, bi, hh), dk_h); // ∂Sᵀ·Qₕ
                put_head(dk, dk_h, dims, hh);
            }
        });
        let dq = v.needs[0].then(|| Tensor::from_vec(dq, q.shape().clone()));
        let dk = v.needs[1].then(|| Tensor::from_vec(dk, k.shape().clone()));
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

    // The same rule per batch element, with the heads of G and V read in place.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let (p, values, g) = (&v.inputs[0], &v.inputs[1], v.grad);
        let &[b, h, tq, tk] = p.dims() else { unreachable!("weights are (batch, heads, t_q, t_k)") };
        let dims = Dims { b, h, tq, tk, d: values.dims()[2] };
        let (pd, vd, gd) = (p.data(), values.data(), g.data());
        let (mut dp, mut dv) = (vec![T::ZERO; p.numel()], vec![T::ZERO; values.numel()]);
        per_batch_pair(b, (&mut dp, &mut dv), 2 * dims.flops(), |bi, dp, dv| {
            let mut dv_h = vec![T::ZERO; tk * dims.dk()];
            for (hh, dp_h) in dp.chunks_mut(tq * tk).enumerate() {
                let g_h = dims.head(gd, tq, bi, hh);
                gemm_view(tq, dims.dk(), tk, g_h, dims.head_t(vd, tk, bi, hh), dp_h); // Gₕ·Vₕᵀ
                gemm_view(tk, tq, dims.dk(), dims.weights(pd, bi, hh, true), g_h, &mut dv_h); // Pₕᵀ·Gₕ
                put_head(dv, &dv_h, dims, hh);
            }
        });
        let dp = v.needs[0].then(|| Tensor::from_vec(dp, p.shape().clone()));
        let dv = v.needs[1].then(|| Tensor::from_vec(dv, values.shape().clone()));
        Some(vec![dp, dv])
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
        let dims = Dims { b, h: heads, tq, tk, d };
        let scale = T::from_f64(score_scale(d, heads));
        let mask = mask.map(|m| RowMask::new(m, dims));
        let masked = T::from_f64(MASKED_SCORE);
        let (qd, kd) = (self.data(), k.data());
        let mut p = vec![T::ZERO; b * heads * tq * tk];
        per_batch(b, &mut p, dims.flops(), |bi, p| {
            for (hh, s) in p.chunks_mut(tq * tk).enumerate() {
                gemm_view(tq, dims.dk(), tk, dims.head(qd, tq, bi, hh), dims.head_t(kd, tk, bi, hh), s); // Qₕ·Kₕᵀ
                // The softmax of each row, its exponentials taken over the whole head at once.
                for (i, row) in s.chunks_mut(tk).enumerate() {
                    row.iter_mut().for_each(|x| *x *= scale);
                    if let Some(m) = &mask {
                        m.fill([bi, hh, i], row, masked);
                    }
                    shift_by_max(row);
                }
                T::exp_in_place(s);
                s.chunks_mut(tk).for_each(normalize);
            }
        });
        Tensor::from_vec(p, [b, heads, tq, tk])
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
        let (&[b, _, tq, tk], d) = (self.dims(), v.dims()[2]) else { unreachable!("checked above") };
        let dims = Dims { b, h: heads, tq, tk, d };
        let (pd, vd) = (self.data(), v.data());
        let mut out = vec![T::ZERO; b * tq * d];
        per_batch(b, &mut out, dims.flops(), |bi, out| {
            let mut o_h = vec![T::ZERO; tq * dims.dk()];
            for hh in 0..heads {
                gemm_view(tq, tk, dims.dk(), dims.weights(pd, bi, hh, false), dims.head(vd, tk, bi, hh), &mut o_h); // Pₕ·Vₕ
                put_head(out, &o_h, dims, hh);
            }
        });
        Tensor::from_vec(out, [b, tq, d])
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
    /// product, merge; values and gradients, with and without a mask. Shapes from one of
    /// everything to one large enough for the kernels' parallel path (run on two threads).
    #[test]
    fn equal_their_composition_from_primitives() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("thread pool");
        for (b, tq, tk, h, d) in [(2, 3, 4, 2, 6), (1, 1, 1, 1, 1), (3, 5, 2, 3, 15), (1, 4, 7, 1, 3)] {
            pool.install(|| compare_with_primitives(b, tq, tk, h, d));
        }
        let parallel = pool.install(|| {
            let before = crate::parallel_runs();
            compare_with_primitives(12, 41, 39, 4, 64);
            (crate::parallel_runs() - before).batched_products
        });
        assert!(parallel > 0, "the large case did not run the kernels' parallel path");
    }

    fn compare_with_primitives(b: usize, tq: usize, tk: usize, h: usize, d: usize) {
        let q0 = Tensor::<f64>::from_fn([b, tq, d], |i| ((i * 7) % 11) as f64 * 0.3 - 1.4);
        let k0 = Tensor::from_fn([b, tk, d], |i| ((i * 5) % 13) as f64 * 0.2 - 1.1);
        let v0 = Tensor::from_fn([b, tk, d], |i| ((i * 3) % 7) as f64 * 0.4 - 1.0);
        let up = Tensor::from_fn([b, tq, d], |i| ((i * 3) % 5) as f64 - 2.0);
        // Batch 0 hides the last key from every query; batch 1 hides every key from query 0.
        let mask = Tensor::from_fn([b, 1, tq, tk], |i| {
            let (bb, qi, kj) = (i / (tq * tk), (i / tk) % tq, i % tk);
            f64::from(u8::from((bb == 0 && kj == tk - 1 && tk > 1) || (bb == 1 && qi == 0)))
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
            let shape = format!("b={b} tq={tq} tk={tk} h={h} d={d} masked={}", mask.is_some());
            assert!(allclose(&v1, &v2, 1e-14, 1e-14), "{shape}: {v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!(allclose(a, b, 1e-12, 1e-13), "{shape}: {a} vs {b}");
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

    /// Attend's per-batch rule gives what its rule written with `Math` gives.
    #[test]
    fn attend_fused_rule_matches_the_general_one() {
        use super::Attend;
        use crate::op::testing::assert_fused_rule_matches;
        let q = Tensor::<f64>::from_fn([2, 3, 6], |i| ((i * 7) % 11) as f64 * 0.3 - 1.4);
        let k = Tensor::from_fn([2, 4, 6], |i| ((i * 5) % 13) as f64 * 0.2 - 1.1);
        let p = q.attention_weights(&k, 3, None);
        let v = Tensor::from_fn([2, 4, 6], |i| ((i * 3) % 7) as f64 * 0.4 - 1.0);
        assert_fused_rule_matches(&Attend { heads: 3 }, &[p.clone(), v.clone()], &p.attend(&v));
    }

    /// Empty batches, queries or keys give empty or zero results, as the composed ops do.
    #[test]
    fn empty_sizes() {
        let p = Tensor::<f64>::zeros([2, 0, 4]).attention_weights(&Tensor::zeros([2, 3, 4]), 2, None);
        assert_eq!(p.dims(), &[2, 2, 0, 3]);
        assert_eq!(p.attend(&Tensor::ones([2, 3, 4])).dims(), &[2, 0, 4]);
        let none = Tensor::<f64>::ones([2, 3, 4]).attention_weights(&Tensor::zeros([2, 0, 4]), 2, None);
        assert_eq!(none.dims(), &[2, 2, 3, 0]);
        assert_eq!(none.attend(&Tensor::zeros([2, 0, 4])).to_vec(), vec![0.0; 24]);
        assert_eq!(Tensor::<f64>::zeros([0, 3, 4]).attention_weights(&Tensor::zeros([0, 3, 4]), 2, None).numel(), 0);
    }

    #[test]
    #[should_panic(
        expected = "attention_weights: queries [2, 3, 6], keys [2, 4, 6]: 6 features do not split into 4 heads"
    )]
    fn heads_that_do_not_divide_are_named() {
        Tensor::<f32>::zeros([2, 3, 6]).attention_weights(&Tensor::zeros([2, 4, 6]), 4, None);
    }
}
