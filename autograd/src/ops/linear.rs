//! A fully connected layer's affine map in one op: y = x·Wᵀ + b, like
//! `torch.nn.functional.linear(x, weight, bias)`.
//!
//! It computes what `x.matmul_t(w, false, true) + b` computes, but records one node instead of
//! two, so the product before the bias (a whole activation) is never kept on the tape; and the
//! backward pass folds x's batch dimensions into rows, so ∂W is a single GEMM.

use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

/// y = x·Wᵀ (+ b) over the last axis of x, then max(·, 0) with `relu`.
struct Linear {
    bias: bool,
    relu: bool,
}

impl<T: Element> Op<T> for Linear {
    fn name(&self) -> &'static str {
        if self.relu { "linear_relu" } else { "linear" }
    }
    fn attributes(&self) -> String {
        if self.bias { String::new() } else { "no bias".into() }
    }
    // With G = ∂L/∂y and x's batch dimensions folded into n rows (X: n × in, G: n × out):
    // ∂L/∂X = G·W,  ∂L/∂W = Gᵀ·X,  ∂L/∂b = Σ over rows of G.
    // With relu, G is first zeroed where y is 0 (where the affine value was ≤ 0).
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let (x, w) = (&v.inputs[0], &v.inputs[1]);
        let masked;
        let g = if self.relu {
            masked = v.grad.mul_const(v.output.value().map(|y| if y > T::ZERO { T::ONE } else { T::ZERO }));
            &masked
        } else {
            v.grad
        };
        let (x_shape, w_shape) = (x.shape(), w.shape());
        let (out, inp) = (w_shape[0], w_shape[1]);
        let rows = x_shape.dims()[..x_shape.rank() - 1].iter().product();
        let g2 = g.reshape(&Shape::from([rows, out]));
        let dx = v.needs[0].then(|| g2.matmul_t(w, false, false).reshape(&x_shape));
        let dw = v.needs[1].then(|| g2.matmul_t(&x.reshape(&Shape::from([rows, inp])), true, false));
        let db = (self.bias && v.needs[2]).then(|| g2.sum(&[0], false));
        let mut grads = vec![dx, dw];
        if self.bias {
            grads.push(db);
        }
        grads
    }
}

/// The output shape, or a panic naming every shape and what would fit.
#[track_caller]
fn check<T: Element>(x: &Tensor<T>, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Shape {
    let (xs, ws) = (x.shape(), w.shape());
    let shapes = match b {
        Some(b) => format!("input {xs}, weight {ws}, bias {}", b.shape()),
        None => format!("input {xs}, weight {ws}"),
    };
    assert!(ws.rank() == 2, "linear: {shapes}: the weight must be [out_features, in_features]");
    assert!(
        xs.rank() >= 1 && xs[xs.rank() - 1] == ws[1],
        "linear: {shapes}: the input's last dimension must be the weight's in_features, {}",
        ws[1]
    );
    if let Some(b) = b {
        assert!(b.dims() == [ws[0]], "linear: {shapes}: the bias must be [{}], one per output feature", ws[0]);
    }
    xs.with_dim(xs.rank() - 1, ws[0])
}

impl<T: Element> Tensor<T> {
    /// `self·wᵀ + b` over the last axis, with `w` in PyTorch's `[out_features, in_features]`
    /// layout, like `torch.nn.functional.linear`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], [1, 2]);
    /// let w = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 1.0, 0.0, 2.0], [3, 2]);
    /// let b = Tensor::from_vec(vec![0.5f32, 0.0, -1.0], [3]);
    /// assert_eq!(x.linear(&w, Some(&b)).to_vec(), vec![1.5, 3.0, 3.0]);
    /// ```
    ///
    /// # Panics
    /// If the last dimension of `self` is not `w`'s second, or `b` is not `[out_features]`.
    #[track_caller]
    pub fn linear(&self, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Tensor<T> {
        self.affine(w, b, false)
    }

    /// `max(self·wᵀ + b, 0)`: [`Tensor::linear`] followed by relu, in one pass.
    #[track_caller]
    pub fn linear_relu(&self, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Tensor<T> {
        self.affine(w, b, true)
    }

    #[track_caller]
    fn affine(&self, w: &Tensor<T>, b: Option<&Tensor<T>>, relu: bool) -> Tensor<T> {
        let out_shape = check(self, w, b);
        let (out, inp) = (w.dims()[0], w.dims()[1]);
        let rows = self.dims()[..self.rank() - 1].iter().product();
        let mut y = self.reshape([rows, inp]).matmul_t(w, false, true); // (rows, out)
        if b.is_some() || relu {
            let bias = b.map(Tensor::data);
            crate::kernels::for_each_row(y.data_mut(), out, |_, row| {
                if let Some(bias) = bias {
                    row.iter_mut().zip(bias).for_each(|(v, &bi)| *v += bi);
                }
                if relu {
                    row.iter_mut().for_each(|v| *v = if *v > T::ZERO { *v } else { T::ZERO });
                }
            });
        }
        y.reshape(out_shape)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `self·wᵀ + b` over the last axis, recorded as one op (see [`Tensor::linear`]): the
    /// product before the bias is not kept for the backward pass.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// // ∂/∂b Σ(x·Wᵀ + b) = the number of rows, for every output feature
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::ones([4, 2]));
    /// let (w, b) = (tape.var(Tensor::ones([3, 2])), tape.var(Tensor::zeros([3])));
    /// let g = x.linear(w, Some(b)).sum_all().backward();
    /// assert_eq!(g[b].to_vec(), vec![4.0, 4.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn linear(self, w: Var<'t, T>, b: Option<Var<'t, T>>) -> Self {
        self.record_affine(w, b, false)
    }

    /// `max(self·wᵀ + b, 0)` as one op: the affine value before the relu is not kept either.
    #[track_caller]
    pub fn linear_relu(self, w: Var<'t, T>, b: Option<Var<'t, T>>) -> Self {
        self.record_affine(w, b, true)
    }

    #[track_caller]
    fn record_affine(self, w: Var<'t, T>, b: Option<Var<'t, T>>, relu: bool) -> Self {
        let value = self.value().affine(&w.value(), b.map(|b| b.value()).as_ref(), relu);
        let op = Linear { bias: b.is_some(), relu };
        match b {
            Some(b) => Var::record(self.tape, op, &[self, w, b], value),
            None => Var::record(self.tape, op, &[self, w], value),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    /// The one op gives what the matmul, the add (and the relu) it replaces give, value and
    /// gradients.
    #[test]
    fn equals_matmul_then_add() {
        let x0 = Tensor::<f64>::from_fn([2, 3, 4], |i| ((i * 7) % 11) as f64 * 0.3 - 1.4);
        let w0 = Tensor::from_fn([5, 4], |i| ((i * 5) % 7) as f64 * 0.2 - 0.6);
        let b0 = Tensor::from_fn([5], |i| i as f64 * 0.1 - 0.2);
        let up = Tensor::from_fn([2, 3, 5], |i| ((i * 3) % 5) as f64 - 2.0);
        for relu in [false, true] {
            let run = |fused: bool| {
                let tape = Tape::new();
                let (x, w, b) = (tape.var(x0.clone()), tape.var(w0.clone()), tape.var(b0.clone()));
                let y = match (fused, relu) {
                    (true, false) => x.linear(w, Some(b)),
                    (true, true) => x.linear_relu(w, Some(b)),
                    (false, false) => x.matmul_t(w, false, true) + b,
                    (false, true) => (x.matmul_t(w, false, true) + b).relu(),
                };
                let value = y.value();
                let g = (y * tape.constant(up.clone())).sum_all().backward();
                (value, [g[x].clone(), g[w].clone(), g[b].clone()])
            };
            let ((v1, g1), (v2, g2)) = (run(true), run(false));
            assert!(crate::allclose(&v1, &v2, 1e-14, 1e-14));
            assert!(!relu || v1.data().contains(&0.0), "the relu case should cut something");
            for (a, b) in g1.iter().zip(&g2) {
                assert!(crate::allclose(a, b, 1e-13, 1e-13), "{a} vs {b}");
            }
        }
    }

    /// No input features: every output is the bias, and ∂b still counts the rows, as in PyTorch.
    #[test]
    fn no_input_features_give_the_bias() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros([3, 0]));
        let (w, b) = (tape.var(Tensor::zeros([2, 0])), tape.var(Tensor::from_vec(vec![1.0, -1.0], [2])));
        let y = x.linear(w, Some(b));
        assert_eq!(y.value().to_vec(), vec![1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
        let g = y.sum_all().backward();
        assert_eq!((g[b].to_vec(), g[x].dims(), g[w].dims()), (vec![3.0, 3.0], &[3, 0][..], &[2, 0][..]));
    }

    #[test]
    #[should_panic(expected = "linear: input [2, 3], weight [4, 5]: the input's last dimension must be the \
                               weight's in_features, 5")]
    fn wrong_features_are_named() {
        Tensor::<f32>::zeros([2, 3]).linear(&Tensor::zeros([4, 5]), None);
    }
}
