//! Layer normalization: a fused normalize over the trailing dimensions, then the optional
//! elementwise affine (weight, bias) as ordinary ops.

use crate::kernels::for_each_row;
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};

/// (x − mean) / √(var + ε) over the last `dims` dimensions (biased variance, as PyTorch).
struct Normalize<T> {
    dims: usize,
    eps: T,
}

impl<T: Element> Op<T> for Normalize<T> {
    fn name(&self) -> &'static str {
        "normalize"
    }
    fn attributes(&self) -> String {
        format!("last {} dims, eps={}", self.dims, self.eps)
    }
    // With y = (x − μ)·r, r = (σ² + ε)^(−1/2), means taken over the normalized axes:
    // ∂L/∂x = r · (g − mean(g) − y · mean(g ⊙ y)).
    // r is recomputed from x with ordinary ops so that the rule can itself be differentiated.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let axes: Vec<isize> = (1..=self.dims as isize).map(|i| -i).collect();
        let x = &v.inputs[0];
        let y = v.output;
        let xc = x.sub(&x.mean(&axes, true));
        let r = xc.mul(&xc).mean(&axes, true).add_scalar(self.eps).powf(T::from_f64(-0.5));
        let g = v.grad;
        let inner = g.sub(&g.mean(&axes, true)).sub(&y.mul(&g.mul(y).mean(&axes, true)));
        vec![Some(r.mul(&inner))]
    }

    // The same rule in one pass per row.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let (x, y, g) = (&v.inputs[0], v.output, v.grad);
        let n: usize = x.dims()[x.rank() - self.dims..].iter().product();
        let inv_n = T::ONE / T::from_f64(n as f64);
        let (xd, yd, gd) = (x.data(), y.data(), g.data());
        let mut out = vec![T::ZERO; x.numel()];
        for_each_row(&mut out, n, |row, dx| {
            let range = row * n..(row + 1) * n;
            let (xr, yr, gr) = (&xd[range.clone()], &yd[range.clone()], &gd[range]);
            let mean = xr.iter().copied().sum::<T>() * inv_n;
            let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() * inv_n;
            let r = (var + self.eps).powf(T::from_f64(-0.5));
            let mean_g = gr.iter().copied().sum::<T>() * inv_n;
            let mean_gy = gr.iter().zip(yr).map(|(&a, &b)| a * b).sum::<T>() * inv_n;
            for ((d, &gi), &yi) in dx.iter_mut().zip(gr).zip(yr) {
                *d = r * (gi - mean_g - yi * mean_gy);
            }
        });
        Some(vec![Some(Tensor::from_vec(out, x.shape().clone()))])
    }
}

#[track_caller]
fn check<T: Element>(x: &Tensor<T>, normalized_shape: &[usize]) {
    let d = x.dims();
    let fits = normalized_shape.len() <= d.len() && d.ends_with(normalized_shape) && !normalized_shape.is_empty();
    assert!(
        fits,
        "layer_norm: normalized shape {normalized_shape:?} is not a non-empty tail of the input shape {}",
        x.shape()
    );
}

fn normalize_rows<T: Element>(x: &Tensor<T>, n: usize, eps: T) -> Tensor<T> {
    let mut out = x.to_vec();
    let inv_n = T::ONE / T::from_f64(n as f64);
    for_each_row(&mut out, n, |_, row| {
        let mean = row.iter().copied().sum::<T>() * inv_n;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() * inv_n;
        let r = T::ONE / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = (*v - mean) * r;
        }
    });
    Tensor::from_vec(out, x.shape().clone())
}

impl<T: Element> Tensor<T> {
    /// Layer normalization over the trailing `normalized_shape`, then `· weight + bias` when
    /// given; like `F.layer_norm(x, normalized_shape, weight, bias, eps)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0], [1, 2]);
    /// let y = x.layer_norm(&[2], None, None, 0.0);
    /// assert_eq!(y.to_vec(), vec![-1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor<T>>,
        bias: Option<&Tensor<T>>,
        eps: T,
    ) -> Tensor<T> {
        check(self, normalized_shape);
        let mut y = normalize_rows(self, normalized_shape.iter().product(), eps);
        if let Some(w) = weight {
            y = &y * w;
        }
        if let Some(b) = bias {
            y = &y + b;
        }
        y
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Layer normalization over the trailing `normalized_shape`, then `· weight + bias` when
    /// given; like `F.layer_norm`. The normalization is one fused op; the affine part is a
    /// `mul` and an `add`.
    #[track_caller]
    pub fn layer_norm(
        self,
        normalized_shape: &[usize],
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: T,
    ) -> Self {
        let value = self.value();
        check(&value, normalized_shape);
        let n = normalized_shape.iter().product();
        let op = Normalize { dims: normalized_shape.len(), eps };
        let mut y = Var::record(self.tape, op, &[self], normalize_rows(&value, n, eps));
        if let Some(w) = weight {
            y = y * w;
        }
        if let Some(b) = bias {
            y = y + b;
        }
        y
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

    /// The one-pass-per-row rule gives what the rule written with `Math` gives.
    #[test]
    fn fused_rule_matches_the_general_one() {
        use super::Normalize;
        use crate::op::testing::assert_fused_rule_matches;
        let x = Tensor::from_fn([2, 3, 4], |i| ((i * 13) % 7) as f64 * 0.7 - 2.0);
        for dims in [1, 2] {
            let normalized: Vec<usize> = x.dims()[3 - dims..].to_vec();
            let y = x.layer_norm(&normalized, None, None, 1e-5);
            assert_fused_rule_matches(&Normalize { dims, eps: 1e-5 }, std::slice::from_ref(&x), &y);
        }
    }

    #[test]
    #[should_panic(expected = "layer_norm: normalized shape [4] is not a non-empty tail of the input shape [2, 3]")]
    fn wrong_normalized_shape_is_named() {
        Tensor::<f32>::zeros([2, 3]).layer_norm(&[4], None, None, 1e-5);
    }
}
