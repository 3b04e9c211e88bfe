//! `Math`: the operations a vector-Jacobian product is written in.
//!
//! [`Tensor`] implements it by computing (the fast first-order path) and [`Var`] by recording
//! on the tape (so a backward pass can itself be differentiated). Each op's rule is written
//! once against this trait and serves both.

use crate::{Element, Shape, Tensor, Var};
use std::sync::Arc;

/// The operations gradient rules are written in. See [`crate::Op`] for a custom op using it.
///
/// Every method mirrors the inherent method of the same name on [`Tensor`] and [`Var`].
pub trait Math<T: Element>: Clone + Sized {
    /// The current value.
    fn value(&self) -> Tensor<T>;
    /// The shape of the value.
    fn shape(&self) -> Shape;
    /// `t` as a constant in the same context (on a tape: a constant leaf).
    fn constant_like(&self, t: Tensor<T>) -> Self;

    /// Elementwise `self + other` with broadcasting.
    fn add(&self, other: &Self) -> Self;
    /// Elementwise `self - other` with broadcasting.
    fn sub(&self, other: &Self) -> Self;
    /// Elementwise `self * other` with broadcasting.
    fn mul(&self, other: &Self) -> Self;
    /// Elementwise `self / other` with broadcasting.
    fn div(&self, other: &Self) -> Self;
    /// `-self`.
    fn neg(&self) -> Self;
    /// `self + s`.
    fn add_scalar(&self, s: f64) -> Self;
    /// `self * s`.
    fn mul_scalar(&self, s: f64) -> Self;
    /// `self ^ p`.
    fn powf(&self, p: f64) -> Self;
    /// e^self.
    fn exp(&self) -> Self;
    /// ln(self).
    fn log(&self) -> Self;
    /// √self.
    fn sqrt(&self) -> Self;
    /// erf(self).
    fn erf(&self) -> Self;
    /// Sum over `axes` (negative counts from the end).
    fn sum(&self, axes: &[isize], keepdim: bool) -> Self;
    /// Repeats size-1 (or missing leading) dimensions up to `shape`.
    fn broadcast_to(&self, shape: &Shape) -> Self;
    /// The same elements in a new shape.
    fn reshape(&self, shape: &Shape) -> Self;
    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`.
    fn permute(&self, perm: &[usize]) -> Self;
    /// `len` entries of `axis` starting at `start`.
    fn narrow(&self, axis: isize, start: usize, len: usize) -> Self;
    /// Zeros added along `axis`: `before` ahead, `after` behind.
    fn pad(&self, axis: isize, before: usize, after: usize) -> Self;
    /// Entries `indices` of `axis`, in that order.
    fn index_select(&self, axis: isize, indices: &Arc<[usize]>) -> Self;
    /// A tensor with `size` entries along `axis`, all zero but for `self`'s slices added at
    /// `indices` (the adjoint of [`Math::index_select`]).
    fn index_add(&self, axis: isize, indices: &Arc<[usize]>, size: usize) -> Self;
    /// `op(self) · op(other)` where `op` transposes the last two dimensions when asked.
    fn matmul_t(&self, other: &Self, transpose_self: bool, transpose_other: bool) -> Self;
    /// Softmax along `axis`.
    fn softmax(&self, axis: isize) -> Self;

    /// Multiplies by a constant tensor (broadcasting).
    #[track_caller]
    fn mul_const(&self, t: Tensor<T>) -> Self {
        self.mul(&self.constant_like(t))
    }

    /// Sum along `axes`, keeping them, divided by how many values each output summed.
    #[track_caller]
    fn mean(&self, axes: &[isize], keepdim: bool) -> Self {
        let shape = self.shape();
        let count: usize =
            axes.iter().map(|&a| shape[shape.resolve_axis(a).expect("mean: axis out of range")]).product();
        self.sum(axes, keepdim).mul_scalar(1.0 / count as f64)
    }

    // ANCHOR: sum_to
    /// Sums a broadcast gradient back to the `shape` of the input it came from: the one helper
    /// every broadcasting op uses for its backward pass.
    #[track_caller]
    fn sum_to(&self, shape: &Shape) -> Self {
        let own = self.shape();
        if own == *shape {
            return self.clone();
        }
        assert!(shape.broadcasts_to(&own), "sum_to: {shape} does not broadcast to {own}");
        let lead = own.rank() - shape.rank();
        let axes: Vec<isize> = (0..own.rank())
            .filter(|&i| i < lead || (shape[i - lead] == 1 && own[i] != 1))
            .map(|i| i as isize)
            .collect();
        self.sum(&axes, true).reshape(shape)
    }
    // ANCHOR_END: sum_to
}

macro_rules! forward_math {
    ($recv:ident, $ty:ty) => {
        #[track_caller]
        fn add_scalar(&self, s: f64) -> Self {
            <$ty>::add_scalar(self.$recv(), s)
        }
        #[track_caller]
        fn mul_scalar(&self, s: f64) -> Self {
            <$ty>::mul_scalar(self.$recv(), s)
        }
        #[track_caller]
        fn powf(&self, p: f64) -> Self {
            <$ty>::powf(self.$recv(), p)
        }
        #[track_caller]
        fn exp(&self) -> Self {
            <$ty>::exp(self.$recv())
        }
        #[track_caller]
        fn log(&self) -> Self {
            <$ty>::log(self.$recv())
        }
        #[track_caller]
        fn sqrt(&self) -> Self {
            <$ty>::sqrt(self.$recv())
        }
        #[track_caller]
        fn erf(&self) -> Self {
            <$ty>::erf(self.$recv())
        }
        #[track_caller]
        fn sum(&self, axes: &[isize], keepdim: bool) -> Self {
            <$ty>::sum(self.$recv(), axes, keepdim)
        }
        #[track_caller]
        fn broadcast_to(&self, shape: &Shape) -> Self {
            <$ty>::broadcast_to(self.$recv(), shape.clone())
        }
        #[track_caller]
        fn reshape(&self, shape: &Shape) -> Self {
            <$ty>::reshape(self.$recv(), shape.clone())
        }
        #[track_caller]
        fn permute(&self, perm: &[usize]) -> Self {
            <$ty>::permute(self.$recv(), perm)
        }
        #[track_caller]
        fn narrow(&self, axis: isize, start: usize, len: usize) -> Self {
            <$ty>::narrow(self.$recv(), axis, start, len)
        }
        #[track_caller]
        fn pad(&self, axis: isize, before: usize, after: usize) -> Self {
            <$ty>::pad(self.$recv(), axis, before, after)
        }
        #[track_caller]
        fn index_select(&self, axis: isize, indices: &Arc<[usize]>) -> Self {
            <$ty>::index_select_shared(self.$recv(), axis, indices.clone())
        }
        #[track_caller]
        fn index_add(&self, axis: isize, indices: &Arc<[usize]>, size: usize) -> Self {
            <$ty>::index_add_shared(self.$recv(), axis, indices.clone(), size)
        }
        #[track_caller]
        fn matmul_t(&self, other: &Self, ta: bool, tb: bool) -> Self {
            <$ty>::matmul_t(self.$recv(), other.$recv(), ta, tb)
        }
        #[track_caller]
        fn softmax(&self, axis: isize) -> Self {
            <$ty>::softmax(self.$recv(), axis)
        }
    };
}

impl<T: Element> Math<T> for Tensor<T> {
    fn value(&self) -> Tensor<T> {
        self.clone()
    }
    fn shape(&self) -> Shape {
        Tensor::shape(self).clone()
    }
    fn constant_like(&self, t: Tensor<T>) -> Self {
        t
    }
    fn add(&self, other: &Self) -> Self {
        self + other
    }
    fn sub(&self, other: &Self) -> Self {
        self - other
    }
    fn mul(&self, other: &Self) -> Self {
        self * other
    }
    fn div(&self, other: &Self) -> Self {
        self / other
    }
    fn neg(&self) -> Self {
        -self
    }
    forward_math!(by_ref, Tensor<T>);
}

impl<'t, T: Element> Math<T> for Var<'t, T> {
    fn value(&self) -> Tensor<T> {
        Var::value(self)
    }
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
    #[track_caller]
    fn constant_like(&self, t: Tensor<T>) -> Self {
        self.tape.constant(t)
    }
    #[track_caller]
    fn add(&self, other: &Self) -> Self {
        *self + *other
    }
    #[track_caller]
    fn sub(&self, other: &Self) -> Self {
        *self - *other
    }
    #[track_caller]
    fn mul(&self, other: &Self) -> Self {
        *self * *other
    }
    #[track_caller]
    fn div(&self, other: &Self) -> Self {
        *self / *other
    }
    #[track_caller]
    fn neg(&self) -> Self {
        -*self
    }
    forward_math!(by_copy, Var<'t, T>);
}

impl<T: Element> Tensor<T> {
    #[inline]
    fn by_ref(&self) -> &Self {
        self
    }
}

impl<T: Element> Var<'_, T> {
    #[inline]
    fn by_copy(&self) -> Self {
        *self
    }
}
