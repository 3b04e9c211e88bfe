//! narrow (a slice along one axis) and pad (zeros around one axis): each the other's adjoint.

use super::{resolve_axis, split_at_axis};
use crate::kernels::{filled, for_each_row, write_slice};
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use std::ops::Range;

struct Narrow {
    axis: isize,
    start: usize,
    len: usize,
}
impl<T: Element> Op<T> for Narrow {
    fn moves_values(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn attributes(&self) -> String {
        format!("axis={}, {}..{}", self.axis, self.start, self.start + self.len)
    }
    // The kept entries get their gradient; the cut ones get zero: pad the gradient back.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let shape = v.inputs[0].shape();
        let n = shape[resolve_axis("narrow", &shape, self.axis)];
        vec![Some(v.grad.pad(self.axis, self.start, n - self.start - self.len))]
    }
}

struct Pad {
    axis: isize,
    before: usize,
    after: usize,
}
impl<T: Element> Op<T> for Pad {
    fn moves_values(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "pad"
    }
    fn attributes(&self) -> String {
        format!("axis={}, before={}, after={}", self.axis, self.before, self.after)
    }
    // The padding is constant; the original entries get their gradient: narrow it back.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let shape = v.inputs[0].shape();
        let n = shape[resolve_axis("pad", &shape, self.axis)];
        vec![Some(v.grad.narrow(self.axis, self.before, n))]
    }
}

impl<T: Element> Tensor<T> {
    /// `len` entries of `axis` starting at `start`, like `x.narrow(axis, start, len)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::<f32>::from_fn([2, 4], |i| i as f32);
    /// assert_eq!(x.narrow(1, 1, 2).to_vec(), vec![1.0, 2.0, 5.0, 6.0]);
    /// ```
    ///
    /// # Panics
    /// If the range does not fit in the axis.
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor<T> {
        let a = resolve_axis("narrow", self.shape(), axis);
        let n = self.dims()[a];
        assert!(
            start.checked_add(len).is_some_and(|end| end <= n),
            "narrow: {start}..{} is out of range for axis {axis} of {}, which has {n} entries",
            start.saturating_add(len),
            self.shape()
        );
        if start == 0 && len == n {
            return self.clone();
        }
        let (_, _, inner) = split_at_axis(self.shape(), a);
        let out_shape = self.shape().with_dim(a, len);
        let data = self.data();
        let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
            for_each_row(out, len * inner, |o, row| {
                let from = (o * n + start) * inner;
                write_slice(row, &data[from..from + len * inner]);
            })
        };
        // SAFETY: every output row is one contiguous block of the input, written whole.
        let out = unsafe { filled(out_shape.numel(), fill) };
        Tensor::from_vec(out, out_shape)
    }

    /// The entries `range` of `axis`: `x.slice(1, 2..5)` is `x.narrow(1, 2, 3)`.
    #[track_caller]
    pub fn slice(&self, axis: isize, range: Range<usize>) -> Tensor<T> {
        self.narrow(axis, range.start, range.len())
    }

    /// Zeros added along `axis`: `before` entries ahead and `after` behind.
    #[track_caller]
    pub fn pad(&self, axis: isize, before: usize, after: usize) -> Tensor<T> {
        let a = resolve_axis("pad", self.shape(), axis);
        if before == 0 && after == 0 {
            return self.clone();
        }
        let n = self.dims()[a];
        let (_, _, inner) = split_at_axis(self.shape(), a);
        let out_shape = self.shape().with_dim(a, before + n + after);
        let mut out = vec![T::ZERO; out_shape.numel()];
        let block = n * inner;
        for_each_row(&mut out, (before + n + after) * inner, |o, row| {
            row[before * inner..before * inner + block].copy_from_slice(&self.data()[o * block..(o + 1) * block]);
        });
        Tensor::from_vec(out, out_shape)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `len` entries of `axis` starting at `start`.
    #[track_caller]
    pub fn narrow(self, axis: isize, start: usize, len: usize) -> Self {
        self.unary(Narrow { axis, start, len }, |x| x.narrow(axis, start, len))
    }

    /// The entries `range` of `axis`.
    #[track_caller]
    pub fn slice(self, axis: isize, range: Range<usize>) -> Self {
        self.narrow(axis, range.start, range.len())
    }

    /// Zeros added along `axis`: `before` entries ahead and `after` behind.
    #[track_caller]
    pub fn pad(self, axis: isize, before: usize, after: usize) -> Self {
        self.unary(Pad { axis, before, after }, |x| x.pad(axis, before, after))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn pad_then_narrow_round_trips() {
        let x = Tensor::<f64>::from_fn([2, 3, 2], |i| i as f64 + 1.0);
        let p = x.pad(1, 2, 1);
        assert_eq!(p.dims(), &[2, 6, 2]);
        assert_eq!(p.narrow(1, 0, 2).sum_all().item(), 0.0);
        assert!(p.narrow(1, 2, 3).bit_eq(&x));
    }

    #[test]
    #[should_panic(expected = "narrow: 2..5 is out of range for axis 1 of [2, 4], which has 4 entries")]
    fn out_of_range_is_named() {
        Tensor::<f32>::zeros([2, 4]).narrow(1, 2, 3);
    }
}
