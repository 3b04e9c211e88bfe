//! select (elementwise choice by a mask, `torch.where`) and masked_fill, which is built on it.

use crate::kernels::binary::broadcast_shapes;
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};

/// out = cond ? a : b, with `cond` a constant mask (nonzero = true).
struct Select<T: Element> {
    cond: Tensor<T>,
}

impl<T: Element> Op<T> for Select<T> {
    fn name(&self) -> &'static str {
        "select"
    }
    // The gradient goes to whichever side was chosen: g·[cond] to a, g·[¬cond] to b.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        let chosen = |on: bool| self.cond.map(move |c| if (c != T::ZERO) == on { T::ONE } else { T::ZERO });
        vec![
            v.needs[0].then(|| v.grad.mul_const(chosen(true)).sum_to(&a.shape())),
            v.needs[1].then(|| v.grad.mul_const(chosen(false)).sum_to(&b.shape())),
        ]
    }
}

/// x with `value` where the constant `mask` is nonzero; `mask` broadcasts to x's shape.
struct MaskedFill<T: Element> {
    mask: Tensor<T>,
    /// The fill value is finite, so the output holds only x's values and it.
    fill_finite: bool,
}

impl<T: Element> Op<T> for MaskedFill<T> {
    fn name(&self) -> &'static str {
        "masked_fill"
    }
    fn moves_values(&self) -> bool {
        self.fill_finite
    }
    // Filled places are constants: the gradient flows only where the mask is zero.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let keep = self.mask.map(|m| if m != T::ZERO { T::ZERO } else { T::ONE });
        vec![Some(v.grad.mul_const(keep))]
    }
}

impl<T: Element> Tensor<T> {
    /// Elementwise `cond ? if_true : if_false` with all three broadcast together, like
    /// `torch.where(cond, if_true, if_false)`; a nonzero `cond` element means true.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let cond = Tensor::from_vec(vec![1.0f32, 0.0], [2]);
    /// let out = Tensor::select(&cond, &Tensor::ones([2]), &Tensor::zeros([2]));
    /// assert_eq!(out.to_vec(), vec![1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn select(cond: &Tensor<T>, if_true: &Tensor<T>, if_false: &Tensor<T>) -> Tensor<T> {
        let ab = broadcast_shapes("select", if_true.shape(), if_false.shape());
        let shape = broadcast_shapes("select", cond.shape(), &ab);
        let c = cond.broadcast_to(shape.clone());
        let a = if_true.broadcast_to(shape.clone());
        let b = if_false.broadcast_to(shape.clone());
        let data = c.data().iter().zip(a.data()).zip(b.data()).map(|((&c, &a), &b)| if c != T::ZERO { a } else { b });
        Tensor::from_vec(data.collect(), shape)
    }

    /// `value` where `mask` is nonzero, `self` elsewhere; `mask` broadcasts to `self`'s shape.
    /// Like `x.masked_fill(mask, value)`.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor<T>, value: f64) -> Tensor<T> {
        let value = T::from_f64(value);
        check_fill_shape(self, mask);
        crate::kernels::binary::broadcast_zip(
            "masked_fill",
            self,
            mask,
            move |x, m| if m != T::ZERO { value } else { x },
        )
    }
}

#[track_caller]
fn check_fill_shape<T: Element>(x: &Tensor<T>, mask: &Tensor<T>) {
    assert!(
        mask.shape().broadcasts_to(x.shape()),
        "masked_fill: mask {} does not broadcast to the input's shape {}",
        mask.shape(),
        x.shape()
    );
}

impl<'t, T: Element> Var<'t, T> {
    /// Elementwise `cond ? if_true : if_false`, broadcasting; `cond` is a constant mask.
    #[track_caller]
    pub fn select(cond: &Tensor<T>, if_true: Var<'t, T>, if_false: Var<'t, T>) -> Var<'t, T> {
        let value = Tensor::select(cond, &if_true.value(), &if_false.value());
        Var::record(if_true.tape, Select { cond: cond.clone() }, &[if_true, if_false], value)
    }

    /// `value` where `mask` is nonzero, `self` elsewhere; no gradient flows to filled places.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let scores = tape.var(Tensor::zeros([2, 2]));
    /// let causal = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0], [2, 2]); // hide the future
    /// let p = scores.masked_fill(&causal, f64::NEG_INFINITY).softmax(-1);
    /// assert_eq!(p.value().to_vec(), vec![1.0, 0.0, 0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn masked_fill(self, mask: &Tensor<T>, value: f64) -> Self {
        self.unary(MaskedFill { mask: mask.clone(), fill_finite: value.is_finite() }, |x| x.masked_fill(mask, value))
    }
}
