//! Cross-entropy from logits with class targets: fused log-softmax and negative log-likelihood,
//! with an ignored target class and label smoothing, averaged over the counted rows.

use crate::kernels::{for_each_row, for_each_row_costing, lanes};
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use std::sync::Arc;

/// Options of [`Var::cross_entropy`], with PyTorch's meaning and defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions {
    /// Rows whose target is this class count for nothing (like `ignore_index`, e.g. padding).
    pub ignore_index: Option<usize>,
    /// ε in [0, 1]: the target distribution is (1 − ε)·one-hot + ε/C, as
    /// `CrossEntropyLoss(label_smoothing=ε)`.
    pub label_smoothing: f64,
}

struct CrossEntropy {
    targets: Arc<[usize]>,
    options: CrossEntropyOptions,
}

impl<T: Element> Op<T> for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn attributes(&self) -> String {
        let o = &self.options;
        let mut s = format!("{} targets", self.targets.len());
        if let Some(i) = o.ignore_index {
            s += &format!(", ignore {i}");
        }
        if o.label_smoothing != 0.0 {
            s += &format!(", smoothing {}", o.label_smoothing);
        }
        s
    }
    // With q the smoothed target distribution and n the number of counted rows:
    // ∂L/∂logits = g · (softmax(logits) − q) / n on counted rows, 0 on ignored ones.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let x = &v.inputs[0];
        let shape = x.shape();
        let (rows, classes) = (self.targets.len(), shape[shape.rank() - 1]);
        let counted = self.targets.iter().filter(|&&t| Some(t) != self.options.ignore_index).count();
        let eps = self.options.label_smoothing;
        let scale = 1.0 / counted as f64;
        let mut q = vec![T::ZERO; rows * classes];
        let mut weight = vec![T::ZERO; rows];
        for (r, &t) in self.targets.iter().enumerate() {
            if Some(t) == self.options.ignore_index {
                continue;
            }
            weight[r] = T::from_f64(scale);
            q[r * classes..(r + 1) * classes].fill(T::from_f64(eps / classes as f64));
            q[r * classes + t] += T::from_f64(1.0 - eps);
        }
        let q = Tensor::from_vec(q, [rows, classes]).reshape(shape.clone());
        let mut wdims = shape.dims().to_vec();
        *wdims.last_mut().expect("rank checked") = 1;
        let weight = Tensor::from_vec(weight, wdims);
        let d = x.softmax(-1).sub(&x.constant_like(q)).mul_const(weight);
        vec![Some(d.mul(v.grad))]
    }

    // The same rule in one pass per row.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let x = &v.inputs[0];
        let classes = x.dims()[x.rank() - 1];
        if classes == 0 {
            return None;
        }
        let eps = self.options.label_smoothing;
        let counted = self.targets.iter().filter(|&&t| Some(t) != self.options.ignore_index).count();
        let scale = v.grad.item() * T::from_f64(1.0 / counted as f64);
        let (smooth, on) = (T::from_f64(eps / classes as f64), T::from_f64(1.0 - eps));
        let xd = x.data();
        let mut out = vec![T::ZERO; x.numel()];
        for_each_row(&mut out, classes, |r, dx| {
            let t = self.targets[r];
            if Some(t) == self.options.ignore_index {
                return;
            }
            let row = &xd[r * classes..(r + 1) * classes];
            dx.copy_from_slice(row);
            super::softmax::softmax_line(dx);
            for d in dx.iter_mut() {
                *d = (*d - smooth) * scale;
            }
            dx[t] -= on * scale;
        });
        Some(vec![Some(Tensor::from_vec(out, x.shape().clone()))])
    }
}

#[track_caller]
fn check<T: Element>(logits: &Tensor<T>, targets: &[usize], o: &CrossEntropyOptions) -> (usize, usize) {
    let s = logits.shape();
    assert!(s.rank() >= 1, "cross_entropy: logits need a class dimension, got {s}");
    let classes = s[s.rank() - 1];
    let rows = s.numel() / classes.max(1);
    assert!(
        targets.len() == rows,
        "cross_entropy: logits {s} hold {rows} rows of {classes} classes, but {} targets were given",
        targets.len()
    );
    if let Some((i, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes && Some(t) != o.ignore_index) {
        panic!("cross_entropy: target {t} (row {i}) is out of range for {classes} classes");
    }
    assert!(
        (0.0..=1.0).contains(&o.label_smoothing),
        "cross_entropy: label_smoothing {} is outside [0, 1]",
        o.label_smoothing
    );
    (rows, classes)
}

impl<T: Element> Tensor<T> {
    /// Mean cross-entropy of `logits` (`[..., C]`, one row per target) against class indices,
    /// like `F.cross_entropy(logits.reshape(-1, C), targets, ignore_index=..., label_smoothing=...)`.
    /// If every row is ignored the mean is 0/0 = NaN, as in PyTorch.
    ///
    /// ```
    /// use autograd::{CrossEntropyOptions, Tensor};
    /// let logits = Tensor::<f64>::zeros([2, 4]);
    /// let loss = logits.cross_entropy(&[1, 3], CrossEntropyOptions::default());
    /// assert!((loss.item() - 4f64.ln()).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn cross_entropy(&self, targets: &[usize], options: CrossEntropyOptions) -> Tensor<T> {
        let (rows, classes) = check(self, targets, &options);
        let eps = options.label_smoothing;
        let mut per_row = vec![T::ZERO; rows];
        let data = self.data();
        for_each_row_costing(&mut per_row, 1, classes, |r, out| {
            let t = targets[r];
            if Some(t) == options.ignore_index {
                return;
            }
            let row = &data[r * classes..(r + 1) * classes];
            let m = row.iter().fold(-T::infinity(), |m, &v| m.max_nan(v));
            let lse = m + lanes::sum_map(row, |v| (v - m).exp()).ln();
            let nll = lse - row[t];
            let smooth = if eps == 0.0 { T::ZERO } else { lse - lanes::sum(row) / T::from_f64(classes as f64) };
            out[0] = T::from_f64(1.0 - eps) * nll + T::from_f64(eps) * smooth;
        });
        let counted = targets.iter().filter(|&&t| Some(t) != options.ignore_index).count();
        let total = lanes::sum(&per_row);
        Tensor::scalar(total / T::from_f64(counted as f64))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Mean cross-entropy of these logits (`[..., C]`) against class indices, fused and
    /// numerically stable; see [`Tensor::cross_entropy`].
    ///
    /// ```
    /// use autograd::{CrossEntropyOptions, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.var(Tensor::zeros([1, 2]));
    /// let g = logits.cross_entropy(&[0], CrossEntropyOptions::default()).backward();
    /// // softmax − one-hot = [0.5 − 1, 0.5]
    /// assert_eq!(g[logits].to_vec(), vec![-0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn cross_entropy(self, targets: &[usize], options: CrossEntropyOptions) -> Self {
        let value = self.value().cross_entropy(targets, options);
        Var::record(self.tape, CrossEntropy { targets: targets.into(), options }, &[self], value)
    }
}

#[cfg(test)]
mod tests {
    use super::CrossEntropyOptions;
    use crate::{Tape, Tensor, Var};

    /// −Σ q·log_softmax(x), averaged over counted rows, from primitives.
    fn composed<'t>(x: Var<'t, f64>, targets: &[usize], ignore: usize, eps: f64) -> Var<'t, f64> {
        let classes = x.shape()[1];
        let counted = targets.iter().filter(|&&t| t != ignore).count() as f64;
        let q = Tensor::from_fn([targets.len(), classes], |i| {
            let (r, c) = (i / classes, i % classes);
            if targets[r] == ignore {
                0.0
            } else {
                eps / classes as f64 + if c == targets[r] { 1.0 - eps } else { 0.0 }
            }
        });
        (x.log_softmax(-1) * x.tape().constant(q)).sum_all() * (-1.0 / counted)
    }

    #[test]
    fn fused_equals_composition_with_ignore_and_smoothing() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_fn([4, 5], |i| ((i * 7) % 11) as f64 * 0.4 - 2.0));
        let targets = [2, 0, 4, 0];
        let o = CrossEntropyOptions { ignore_index: Some(0), label_smoothing: 0.1 };
        let fused = x.cross_entropy(&targets, o);
        let comp = composed(x, &targets, 0, 0.1);
        assert!((fused.value().item() - comp.value().item()).abs() < 1e-14);
        let (g1, g2) = (fused.backward(), comp.backward());
        for (a, b) in g1[x].data().iter().zip(g2[x].data()) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    /// The one-pass-per-row rule gives what the rule written with `Math` gives, with and
    /// without an ignored class and smoothing, for 2-D and 3-D logits.
    #[test]
    fn fused_rule_matches_the_general_one() {
        use super::CrossEntropy;
        use crate::op::testing::assert_fused_rule_matches;
        let targets = [2, 0, 4, 0, 1, 3];
        for dims in [vec![6, 5], vec![2, 3, 5]] {
            let x = Tensor::from_fn(dims, |i| ((i * 7) % 11) as f64 * 0.4 - 2.0);
            for options in
                [CrossEntropyOptions::default(), CrossEntropyOptions { ignore_index: Some(0), label_smoothing: 0.1 }]
            {
                let op = CrossEntropy { targets: targets.as_slice().into(), options };
                assert_fused_rule_matches(&op, std::slice::from_ref(&x), &x.cross_entropy(&targets, options));
            }
        }
    }

    #[test]
    #[should_panic(expected = "cross_entropy: target 7 (row 1) is out of range for 5 classes")]
    fn bad_target_is_named() {
        Tensor::<f32>::zeros([2, 5]).cross_entropy(&[0, 7], CrossEntropyOptions::default());
    }
}
