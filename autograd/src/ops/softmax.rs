//! softmax and log_softmax along one axis: fused, max-shifted kernels.

use super::{resolve_axis, split_at_axis};
use crate::kernels::{for_each_row, lanes};
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};

struct Softmax {
    axis: isize,
}
impl<T: Element> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn attributes(&self) -> String {
        format!("axis={}", self.axis)
    }
    // With y = softmax(x): ∂L/∂x = y ⊙ (g − Σ_axis(g ⊙ y))
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let y = v.output;
        let gy = v.grad.mul(y);
        vec![Some(gy.sub(&y.mul(&gy.sum(&[self.axis], true))))]
    }

    // The same rule in one pass per line, for the last axis.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        per_line(v, self.axis, |yr, gr, dx| {
            let dot = lanes::dot(yr, gr);
            for ((d, &yi), &gi) in dx.iter_mut().zip(yr).zip(gr) {
                *d = yi * gi - yi * dot;
            }
        })
    }
}

struct LogSoftmax {
    axis: isize,
}
impl<T: Element> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn attributes(&self) -> String {
        format!("axis={}", self.axis)
    }
    // With y = log_softmax(x): ∂L/∂x = g − softmax(x) ⊙ Σ_axis g, and softmax(x) = eʸ
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let p = v.output.exp();
        vec![Some(v.grad.sub(&p.mul(&v.grad.sum(&[self.axis], true))))]
    }

    // The same rule in one pass per line, for the last axis.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        per_line(v, self.axis, |yr, gr, dx| {
            let total = lanes::sum(gr);
            for ((d, &yi), &gi) in dx.iter_mut().zip(yr).zip(gr) {
                *d = gi - yi.exp() * total;
            }
        })
    }
}

/// Runs `rule(y, g, dx)` on each line of the output and its gradient along the last axis,
/// giving the input's gradient; `None` (use the composed rule) for any other axis.
fn per_line<T: Element>(
    v: &Vjp<'_, Tensor<T>>,
    axis: isize,
    rule: impl Fn(&[T], &[T], &mut [T]) + Sync + Send,
) -> Option<InputGrads<Tensor<T>>> {
    let n = last_axis_len(v.output, axis)?;
    let (yd, gd) = (v.output.data(), v.grad.data());
    let mut out = vec![T::ZERO; yd.len()];
    for_each_row(&mut out, n, |row, dx| rule(&yd[row * n..(row + 1) * n], &gd[row * n..(row + 1) * n], dx));
    Some(vec![Some(Tensor::from_vec(out, v.output.shape().clone()))])
}

/// The length of the last axis if `axis` is it (the fused kernels' case), else `None`.
fn last_axis_len<T: Element>(t: &Tensor<T>, axis: isize) -> Option<usize> {
    let last = t.rank().checked_sub(1)?;
    (t.shape().resolve_axis(axis)? == last && t.dims()[last] > 0).then(|| t.dims()[last])
}

/// Applies `f` to every line along `axis`: each line is gathered into a buffer when it is
/// strided, transformed in place, and written out.
fn along_axis<T: Element>(x: &Tensor<T>, op: &str, axis: isize, f: impl Fn(&mut [T]) + Sync + Send) -> Tensor<T> {
    let a = resolve_axis(op, x.shape(), axis);
    let (_, n, inner) = split_at_axis(x.shape(), a);
    let mut out = x.to_vec();
    if inner == 1 {
        for_each_row(&mut out, n, |_, line| f(line));
    } else {
        for_each_row(&mut out, n * inner, |_, block| {
            let mut line = vec![T::ZERO; n];
            for i in 0..inner {
                for (j, l) in line.iter_mut().enumerate() {
                    *l = block[j * inner + i];
                }
                f(&mut line);
                for (j, l) in line.iter().enumerate() {
                    block[j * inner + i] = *l;
                }
            }
        });
    }
    Tensor::from_vec(out, x.shape().clone())
}

fn line_max<T: Element>(line: &[T]) -> T {
    line.iter().fold(-T::infinity(), |m, &v| m.max_nan(v))
}

/// Softmax of one line; a line of all −∞ has no defined softmax and gives NaN, as in PyTorch.
pub(crate) fn softmax_line<T: Element>(line: &mut [T]) {
    shift_by_max(line);
    T::exp_in_place(line);
    normalize(line);
}

/// Subtracts the line's maximum from each value (the first step of [`softmax_line`], for a
/// caller that exponentiates many lines at once).
pub(crate) fn shift_by_max<T: Element>(line: &mut [T]) {
    let m = line_max(line);
    for v in line.iter_mut() {
        *v -= m;
    }
}

/// Divides the exponentials of a shifted line by their sum (the last step of [`softmax_line`]).
pub(crate) fn normalize<T: Element>(line: &mut [T]) {
    let inv = T::ONE / lanes::sum(line);
    for v in line.iter_mut() {
        *v *= inv;
    }
}

fn log_softmax_line<T: Element>(line: &mut [T]) {
    let m = line_max(line);
    let sum = lanes::sum_map(line, |v| (v - m).exp());
    let shift = m + sum.ln();
    for v in line.iter_mut() {
        *v -= shift;
    }
}

impl<T: Element> Tensor<T> {
    /// e^x / Σ e^x along `axis`, computed shifted by the maximum so it cannot overflow; like
    /// `torch.softmax(x, dim=axis)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let p = Tensor::from_vec(vec![1000.0f32, 1000.0], [2]).softmax(0);
    /// assert_eq!(p.to_vec(), vec![0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor<T> {
        along_axis(self, "softmax", axis, softmax_line)
    }

    /// x − log Σ e^x along `axis`, like `torch.log_softmax(x, dim=axis)`.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor<T> {
        along_axis(self, "log_softmax", axis, log_softmax_line)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// e^x / Σ e^x along `axis` (fused and max-shifted).
    #[track_caller]
    pub fn softmax(self, axis: isize) -> Self {
        self.unary(Softmax { axis }, |x| x.softmax(axis))
    }

    /// x − log Σ e^x along `axis` (fused and max-shifted).
    #[track_caller]
    pub fn log_softmax(self, axis: isize) -> Self {
        self.unary(LogSoftmax { axis }, |x| x.log_softmax(axis))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor, Var};

    fn composed<'t>(x: Var<'t, f64>, axis: isize) -> Var<'t, f64> {
        let e = (x - x.max(&[axis], true).detach()).exp();
        e / e.sum(&[axis], true)
    }

    #[test]
    fn fused_equals_composition_in_value_and_gradient() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_fn([2, 3, 4], |i| ((i * 7) % 5) as f64 * 0.3 - 0.5));
        let w = tape.constant(Tensor::from_fn([2, 3, 4], |i| (i % 3) as f64 - 1.0));
        for axis in [0, 1, -1] {
            let fused = x.softmax(axis);
            let comp = composed(x, axis);
            let close =
                |a: &Tensor<f64>, b: &Tensor<f64>| a.data().iter().zip(b.data()).all(|(p, q)| (p - q).abs() < 1e-15);
            assert!(close(&fused.value(), &comp.value()));
            let ls = x.log_softmax(axis).value();
            assert!(close(&ls, &comp.value().log()));
            let g1 = (fused * w).sum_all().backward();
            let g2 = (comp * w).sum_all().backward();
            assert!(close(&g1[x], &g2[x]), "axis {axis}");
        }
    }

    /// The one-pass-per-line rules give what the rules written with `Math` give on the last
    /// axis, and step aside (the general rule runs) on any other.
    #[test]
    fn fused_rules_match_the_general_ones() {
        use super::{LogSoftmax, Softmax};
        use crate::op::testing::assert_fused_rule_matches;
        use crate::{Op, Vjp};
        let x = Tensor::from_fn([2, 3, 4], |i| ((i * 7) % 5) as f64 * 0.6 - 1.1);
        for axis in [2, -1] {
            assert_fused_rule_matches(&Softmax { axis }, std::slice::from_ref(&x), &x.softmax(axis));
            assert_fused_rule_matches(&LogSoftmax { axis }, std::slice::from_ref(&x), &x.log_softmax(axis));
        }
        for axis in [0, 1] {
            let y = x.softmax(axis);
            let v = Vjp { inputs: std::slice::from_ref(&x), output: &y, grad: &y, needs: &[true] };
            assert!(Op::<f64>::fused_vjp(&Softmax { axis }, &v).is_none(), "axis {axis}");
            assert!(Op::<f64>::fused_vjp(&LogSoftmax { axis }, &v).is_none(), "axis {axis}");
        }
    }
}
