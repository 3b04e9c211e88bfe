//! Every differentiable operation: one file per op (or per pair of adjoint ops), each holding
//! the forward kernel, the vector-Jacobian product and the unit tests side by side.

mod arith;
mod attention;
mod broadcast;
mod clamp;
mod concat;
mod cross_entropy;
mod dropout;
mod index;
mod layer_norm;
mod linear;
mod matmul;
mod narrow;
mod permute;
mod reduce;
mod reshape;
mod scalar;
mod select;
mod softmax;
mod unary;

pub use attention::MASKED_SCORE;
pub use cross_entropy::CrossEntropyOptions;

use crate::{Element, Shape, Tensor, Var};
use smallvec::SmallVec;

/// Resolves `axes` (negative counts from the end) against `shape`: sorted, each once.
///
/// # Panics
/// If an axis is out of range or repeated, naming `op` and the shape.
#[track_caller]
pub(crate) fn resolve_axes(op: &str, shape: &Shape, axes: &[isize]) -> SmallVec<[usize; 4]> {
    let mut out: SmallVec<[usize; 4]> = axes.iter().map(|&a| resolve_axis(op, shape, a)).collect();
    out.sort_unstable();
    for w in out.windows(2) {
        assert!(w[0] != w[1], "{op}: axis {} is listed twice in {axes:?}", w[0]);
    }
    out
}

/// Resolves one axis (negative counts from the end) against `shape`.
///
/// # Panics
/// If the axis is out of range, naming `op` and the shape.
#[track_caller]
pub(crate) fn resolve_axis(op: &str, shape: &Shape, axis: isize) -> usize {
    shape.resolve_axis(axis).unwrap_or_else(|| {
        let r = shape.rank() as isize;
        panic!("{op}: axis {axis} is out of range for shape {shape}, which has axes {} to {}", -r, r - 1)
    })
}

/// `(outer, size, inner)`: the products of the dimensions before, at and after `axis`.
pub(crate) fn split_at_axis(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product())
}

impl<'t, T: Element> Var<'t, T> {
    /// Records a one-input op whose forward is `forward` applied to this value.
    #[track_caller]
    pub(crate) fn unary(self, op: impl crate::Op<T>, forward: impl FnOnce(&Tensor<T>) -> Tensor<T>) -> Self {
        let value = forward(&self.value());
        Var::record(self.tape, op, &[self], value)
    }
}
