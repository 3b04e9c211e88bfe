//! Reductions over any axes, with or without keeping them: sum, max, and mean (composed).

use super::resolve_axes;
use crate::kernels::reduce::{Reduce, reduce_keepdim};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

/// Σ over `axes`.
struct Sum {
    axes: Vec<isize>,
    keepdim: bool,
}

impl<T: Element> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn attributes(&self) -> String {
        format!("axes={:?}{}", self.axes, if self.keepdim { ", keepdim" } else { "" })
    }
    // ∂(Σᵢ xᵢ)/∂xⱼ = 1: the gradient is copied to every summed position.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let x_shape = v.inputs[0].shape();
        let kept = keepdim_shape(&x_shape, &resolve_axes("sum", &x_shape, &self.axes));
        vec![Some(v.grad.reshape(&kept).broadcast_to(&x_shape))]
    }
}

/// max over `axes`.
struct Max {
    axes: Vec<isize>,
    keepdim: bool,
}

impl<T: Element> Op<T> for Max {
    fn name(&self) -> &'static str {
        "max"
    }
    fn attributes(&self) -> String {
        format!("axes={:?}{}", self.axes, if self.keepdim { ", keepdim" } else { "" })
    }
    // The gradient goes to the maximal entries, shared evenly among ties (as torch.amax):
    // a constant weight per entry, so the second derivative is 0.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let x = v.inputs[0].value();
        let axes = resolve_axes("max", x.shape(), &self.axes);
        let kept = keepdim_shape(x.shape(), &axes);
        let m = v.output.value().reshape(kept.clone());
        let is_max = x.zip_map(&m, |a, b| if a == b { T::ONE } else { T::ZERO });
        let count = reduce_keepdim(&is_max, &axes, Reduce::Sum);
        let weight = &is_max / &count;
        vec![Some(v.grad.reshape(&kept).broadcast_to(x.shape()).mul_const(weight))]
    }
}

/// `shape` with every axis in `axes` set to 1.
fn keepdim_shape(shape: &Shape, axes: &[usize]) -> Shape {
    let mut dims = shape.dims().to_vec();
    for &a in axes {
        dims[a] = 1;
    }
    Shape::from(dims)
}

/// `shape` without the axes in `axes`.
fn dropdim_shape(shape: &Shape, axes: &[usize]) -> Shape {
    let dims: Vec<usize> =
        shape.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
    Shape::from(dims)
}

fn reduce<T: Element>(x: &Tensor<T>, op: &str, axes: &[isize], keepdim: bool, how: Reduce) -> Tensor<T> {
    let axes = resolve_axes(op, x.shape(), axes);
    let out = reduce_keepdim(x, &axes, how);
    if keepdim { out } else { out.reshape(dropdim_shape(x.shape(), &axes)) }
}

fn all_axes(rank: usize) -> Vec<isize> {
    (0..rank as isize).collect()
}

impl<T: Element> Tensor<T> {
    /// Sum over `axes` (negative counts from the end), keeping them as size-1 dimensions if
    /// `keepdim`, like `x.sum(dim=axes, keepdim=keepdim)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::<f32>::from_fn([2, 3], |i| i as f32);
    /// assert_eq!(x.sum(&[1], false).to_vec(), vec![3.0, 12.0]);
    /// assert_eq!(x.sum(&[0], true).dims(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        reduce(self, "sum", axes, keepdim, Reduce::Sum)
    }

    /// Sum of every element, as a tensor of shape `[]`.
    pub fn sum_all(&self) -> Tensor<T> {
        self.sum(&all_axes(self.rank()), false)
    }

    /// Mean over `axes`, like `x.mean(dim=axes, keepdim=keepdim)`.
    #[track_caller]
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        Math::mean(self, axes, keepdim)
    }

    /// Mean of every element, as a tensor of shape `[]`.
    pub fn mean_all(&self) -> Tensor<T> {
        self.mean(&all_axes(self.rank()), false)
    }

    /// Maximum over `axes`, like `torch.amax(x, dim=axes, keepdim=keepdim)`. NaN wins.
    #[track_caller]
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        reduce(self, "max", axes, keepdim, Reduce::Max)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Sum over `axes` (negative counts from the end), keeping them as size-1 dimensions if
    /// `keepdim`, like `x.sum(dim=axes, keepdim=keepdim)`.
    #[track_caller]
    pub fn sum(self, axes: &[isize], keepdim: bool) -> Self {
        self.unary(Sum { axes: axes.to_vec(), keepdim }, |x| x.sum(axes, keepdim))
    }

    /// Sum of every element, as a value of shape `[]`: the usual last step before `backward`.
    #[track_caller]
    pub fn sum_all(self) -> Self {
        self.sum(&all_axes(self.shape().rank()), false)
    }

    /// Mean over `axes`: a sum times 1/count.
    #[track_caller]
    pub fn mean(self, axes: &[isize], keepdim: bool) -> Self {
        Math::mean(&self, axes, keepdim)
    }

    /// Mean of every element, as a value of shape `[]`.
    #[track_caller]
    pub fn mean_all(self) -> Self {
        self.mean(&all_axes(self.shape().rank()), false)
    }

    /// Maximum over `axes`, like `torch.amax`: the gradient is shared evenly among ties.
    #[track_caller]
    pub fn max(self, axes: &[isize], keepdim: bool) -> Self {
        self.unary(Max { axes: axes.to_vec(), keepdim }, |x| x.max(axes, keepdim))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn max_shares_gradient_among_ties() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![1.0f64, 3.0, 3.0, 2.0], [2, 2]));
        let g = x.max(&[0, 1], false).backward();
        assert_eq!(g[x].to_vec(), vec![0.0, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn mean_gradient_is_one_over_n() {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::ones([2, 4]));
        let g = x.mean(&[-1], false).sum_all().backward();
        assert_eq!(g[x].to_vec(), vec![0.25; 8]);
    }

    #[test]
    #[should_panic(expected = "sum: axis 2 is out of range for shape [2, 3], which has axes -2 to 1")]
    fn bad_axis_is_named() {
        Tensor::<f32>::zeros([2, 3]).sum(&[2], false);
    }
}
