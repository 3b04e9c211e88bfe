//! Layer normalization: normalize over the trailing dimensions, then the optional elementwise
//! affine map (weight, bias), as one op.
//!
//! One op rather than a normalize, a `mul` and an `add`: only the output is kept for the backward
//! pass, which recomputes the normalized values from the input (one pass over a row).

use crate::kernels::{for_each_row, for_each_row_pair, lanes};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

/// y = x̂·w + b with x̂ = (x − mean) / √(var + ε) over the last `dims` dimensions (biased
/// variance, as PyTorch); inputs x, then w and b when present.
struct LayerNorm {
    dims: usize,
    eps: f64,
    weight: bool,
    bias: bool,
}

impl<T: Element> Op<T> for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }
    fn attributes(&self) -> String {
        let affine = match (self.weight, self.bias) {
            (true, true) => ", weight, bias",
            (true, false) => ", weight",
            (false, true) => ", bias",
            (false, false) => "",
        };
        format!("last {} dims, eps={}{affine}", self.dims, self.eps)
    }
    // ANCHOR: general_rule
    // With x̂ = (x − μ)·r, r = (σ² + ε)^(−1/2), means over the normalized axes, and
    // ĝ = ∂L/∂x̂ = g·w (g itself without a weight):
    // ∂L/∂x = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),  ∂L/∂w = Σ_rows g ⊙ x̂,  ∂L/∂b = Σ_rows g.
    // x̂ and r are recomputed from x with ordinary ops, so the rule can itself be differentiated.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let axes: Vec<isize> = (1..=self.dims as isize).map(|i| -i).collect();
        let x = &v.inputs[0];
        let g = v.grad;
        let xc = x.sub(&x.mean(&axes, true));
        let r = xc.mul(&xc).mean(&axes, true).add_scalar(self.eps).powf(-0.5);
        let xhat = xc.mul(&r);
        let gh = if self.weight { g.mul(&v.inputs[1]) } else { g.clone() };
        let inner = gh.sub(&gh.mean(&axes, true)).sub(&xhat.mul(&gh.mul(&xhat).mean(&axes, true)));
        let mut grads = vec![v.needs[0].then(|| r.mul(&inner))];
        if self.weight {
            grads.push(v.needs[1].then(|| g.mul(&xhat).sum_to(&v.inputs[1].shape())));
        }
        if self.bias {
            let b = &v.inputs[v.inputs.len() - 1];
            grads.push(v.needs[v.inputs.len() - 1].then(|| g.sum_to(&b.shape())));
        }
        grads
    }
    // ANCHOR_END: general_rule

    // ANCHOR: fused_rule
    // The same rule, with x̂ and ∂L/∂x made in one pass per row.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let (x, g) = (&v.inputs[0], v.grad);
        let n: usize = x.dims()[x.rank() - self.dims..].iter().product();
        let inv_n = T::ONE / T::from_f64(n as f64);
        let w = self.weight.then(|| v.inputs[1].data());
        let (xd, gd) = (x.data(), g.data());
        let (mut dx, mut xhat) = (vec![T::ZERO; x.numel()], vec![T::ZERO; x.numel()]);
        for_each_row_pair(&mut dx, &mut xhat, n, |row, dxr, xhr| {
            let range = row * n..(row + 1) * n;
            let (xr, gr) = (&xd[range.clone()], &gd[range]);
            let mean = lanes::sum(xr) * inv_n;
            let var = lanes::sum_map(xr, |v| (v - mean) * (v - mean)) * inv_n;
            let r = T::ONE / (var + T::from_f64(self.eps)).sqrt();
            for (h, &xi) in xhr.iter_mut().zip(xr) {
                *h = (xi - mean) * r;
            }
            // ĝ goes into dx's row first, then is turned into dx in place.
            match w {
                Some(w) => dxr.iter_mut().zip(gr).zip(w).for_each(|((d, &gi), &wi)| *d = gi * wi),
                None => dxr.copy_from_slice(gr),
            }
            let mean_g = lanes::sum(dxr) * inv_n;
            let mean_gx = lanes::dot(dxr, xhr) * inv_n;
            for (d, &h) in dxr.iter_mut().zip(xhr.iter()) {
                *d = r * (*d - mean_g - h * mean_gx);
            }
        });
        let shape = x.shape().clone();
        let (dx, xhat) = (Tensor::from_vec(dx, shape.clone()), Tensor::from_vec(xhat, shape));
        let mut grads = vec![v.needs[0].then_some(dx)];
        if self.weight {
            grads.push(v.needs[1].then(|| (g * &xhat).sum_to(v.inputs[1].shape())));
        }
        if self.bias {
            let last = v.inputs.len() - 1;
            grads.push(v.needs[last].then(|| g.sum_to(v.inputs[last].shape())));
        }
        Some(grads)
    }
    // ANCHOR_END: fused_rule
}

/// The number of normalized elements per row, or a panic naming the shapes.
#[track_caller]
fn check<T: Element>(x: &Tensor<T>, normalized_shape: &[usize], w: Option<&Shape>, b: Option<&Shape>) -> usize {
    let d = x.dims();
    let fits = normalized_shape.len() <= d.len() && d.ends_with(normalized_shape) && !normalized_shape.is_empty();
    assert!(
        fits,
        "layer_norm: normalized shape {normalized_shape:?} is not a non-empty tail of the input shape {}",
        x.shape()
    );
    for (what, shape) in [("weight", w), ("bias", b)] {
        if let Some(shape) = shape {
            assert!(
                shape.dims() == normalized_shape,
                "layer_norm: the {what} has shape {shape}, but the normalized shape is {normalized_shape:?}"
            );
        }
    }
    normalized_shape.iter().product()
}

/// x̂·w + b, row by row: each row of n values normalized, then the affine map.
fn normalize_rows<T: Element>(x: &Tensor<T>, n: usize, eps: T, w: Option<&[T]>, b: Option<&[T]>) -> Tensor<T> {
    let mut out = x.to_vec();
    let inv_n = T::ONE / T::from_f64(n as f64);
    for_each_row(&mut out, n, |_, row| {
        let mean = lanes::sum(row) * inv_n;
        let var = lanes::sum_map(row, |v| (v - mean) * (v - mean)) * inv_n;
        let r = T::ONE / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = (*v - mean) * r;
        }
        if let Some(w) = w {
            row.iter_mut().zip(w).for_each(|(v, &wi)| *v *= wi);
        }
        if let Some(b) = b {
            row.iter_mut().zip(b).for_each(|(v, &bi)| *v += bi);
        }
    });
    Tensor::from_vec(out, x.shape().clone())
}

impl<T: Element> Tensor<T> {
    /// Layer normalization over the trailing `normalized_shape`, then `· weight + bias` when
    /// given (each of `normalized_shape`); like `F.layer_norm(x, normalized_shape, weight, bias, eps)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0], [1, 2]);
    /// let y = x.layer_norm(&[2], None, None, 0.0);
    /// assert_eq!(y.to_vec(), vec![-1.0, 1.0]);
    /// ```
    ///
    /// # Panics
    /// If `normalized_shape` is not a tail of the input's shape, or the weight or bias has
    /// another shape.
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor<T>>,
        bias: Option<&Tensor<T>>,
        eps: f64,
    ) -> Tensor<T> {
        let n = check(self, normalized_shape, weight.map(Tensor::shape), bias.map(Tensor::shape));
        normalize_rows(self, n, T::from_f64(eps), weight.map(Tensor::data), bias.map(Tensor::data))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Layer normalization over the trailing `normalized_shape`, then `· weight + bias` when
    /// given; like `F.layer_norm`. One fused op, affine part included.
    #[track_caller]
    pub fn layer_norm(
        self,
        normalized_shape: &[usize],
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> Self {
        let (w, b) = (weight.map(|w| w.value()), bias.map(|b| b.value()));
        let value = self.value().layer_norm(normalized_shape, w.as_ref(), b.as_ref(), eps);
        let op = LayerNorm { dims: normalized_shape.len(), eps, weight: weight.is_some(), bias: bias.is_some() };
        let inputs: Vec<Var<'t, T>> = [Some(self), weight, bias].into_iter().flatten().collect();
        Var::record(self.tape, op, &inputs, value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor, Var};

    fn composed<'t>(x: Var<'t, f64>, eps: f64) -> Var<'t, f64> {
        let xc = x - x.mean(&[-1], true);
        let var = (xc * xc).mean(&[-1], true);
        xc / (var + eps).sqrt()
    }

    #[test]
    fn fused_equals_composition() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_fn([3, 5], |i| ((i * 13) % 7) as f64 - 2.5));
        let w = tape.constant(Tensor::from_fn([3, 5], |i| ((i * 5) % 3) as f64 - 0.7));
        let fused = x.layer_norm(&[5], None, None, 1e-5);
        let comp = composed(x, 1e-5);
        for (a, b) in fused.value().data().iter().zip(comp.value().data()) {
            assert!((a - b).abs() < 1e-14);
        }
        let g1 = (fused * w).sum_all().backward();
        let g2 = (comp * w).sum_all().backward();
        for (a, b) in g1[x].data().iter().zip(g2[x].data()) {
            assert!((a - b).abs() < 1e-13, "{a} vs {b}");
        }
    }

    /// The one-pass-per-row rule gives what the rule written with `Math` gives, with and without
    /// the affine part, over one and two trailing dimensions.
    #[test]
    fn fused_rule_matches_the_general_one() {
        use super::LayerNorm;
        use crate::op::testing::assert_fused_rule_matches;
        let x = Tensor::from_fn([2, 3, 4], |i| ((i * 13) % 7) as f64 * 0.7 - 2.0);
        for dims in [1, 2] {
            let normalized: Vec<usize> = x.dims()[3 - dims..].to_vec();
            let w = Tensor::from_fn(normalized.clone(), |i| 0.5 + i as f64 * 0.25);
            let b = Tensor::from_fn(normalized.clone(), |i| i as f64 * 0.1 - 0.3);
            for (weight, bias) in [(false, false), (true, false), (false, true), (true, true)] {
                let (wo, bo) = (weight.then_some(&w), bias.then_some(&b));
                let y = x.layer_norm(&normalized, wo, bo, 1e-5);
                let inputs: Vec<Tensor<f64>> = [Some(&x), wo, bo].into_iter().flatten().cloned().collect();
                assert_fused_rule_matches(&LayerNorm { dims, eps: 1e-5, weight, bias }, &inputs, &y);
            }
        }
    }

    #[test]
    #[should_panic(expected = "layer_norm: the weight has shape [4], but the normalized shape is [3]")]
    fn a_weight_of_the_wrong_shape_is_named() {
        Tensor::<f32>::zeros([2, 3]).layer_norm(&[3], Some(&Tensor::zeros([4])), None, 1e-5);
    }

    #[test]
    #[should_panic(expected = "layer_norm: normalized shape [4] is not a non-empty tail of the input shape [2, 3]")]
    fn wrong_normalized_shape_is_named() {
        Tensor::<f32>::zeros([2, 3]).layer_norm(&[4], None, None, 1e-5);
    }
}
