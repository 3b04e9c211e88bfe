//! Piecewise-linear ops: clamp, and the elementwise minimum and maximum of two tensors.
//!
//! Each gradient is the upstream gradient times a constant mask of 0s, 1s (and ½s at ties),
//! so their second derivatives are 0, as for relu.

use crate::kernels::binary::broadcast_zip;
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};

/// x clamped to `[min, max]`; either bound may be absent.
struct Clamp {
    min: Option<f64>,
    max: Option<f64>,
}

impl Clamp {
    fn bounds<T: Element>(&self) -> (Option<T>, Option<T>) {
        (self.min.map(T::from_f64), self.max.map(T::from_f64))
    }
}

impl<T: Element> Op<T> for Clamp {
    fn name(&self) -> &'static str {
        "clamp"
    }
    fn attributes(&self) -> String {
        let show = |b: Option<f64>| b.map_or("none".to_string(), |b| b.to_string());
        format!("min={}, max={}", show(self.min), show(self.max))
    }
    fn moves_values(&self) -> bool {
        // Its output is x or a bound, and its gradient g or 0, when the bounds are finite.
        self.min.is_none_or(f64::is_finite) && self.max.is_none_or(f64::is_finite)
    }
    // ∂clamp(x)/∂x = 1 where min ≤ x ≤ max (bounds included, as PyTorch), else 0
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let (lo, hi) = self.bounds::<T>();
        let inside = v.inputs[0]
            .value()
            .map(move |x| T::from_f64(f64::from(lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h))));
        vec![Some(v.grad.mul_const(inside))]
    }
}

/// The elementwise maximum (`larger`) or minimum of two tensors.
struct Extremum {
    larger: bool,
}

impl Extremum {
    /// The chosen value; NaN if either is NaN, as `torch.maximum` and `torch.minimum`.
    fn pick<T: Element>(larger: bool, a: T, b: T) -> T {
        if a.is_nan() || b.is_nan() {
            return T::from_f64(f64::NAN);
        }
        if (a >= b) == larger { a } else { b }
    }

    /// How much of the gradient goes to `a`: 0 where `b` strictly won, ½ at a tie, else 1 (so
    /// a NaN on either side passes the whole gradient to both, as in PyTorch).
    fn share<T: Element>(larger: bool, a: T, b: T) -> T {
        if a == b {
            T::from_f64(0.5)
        } else if (larger && a < b) || (!larger && a > b) {
            T::ZERO
        } else {
            T::ONE
        }
    }
}

impl<T: Element> Op<T> for Extremum {
    fn name(&self) -> &'static str {
        if self.larger { "maximum" } else { "minimum" }
    }
    // ∂max(a, b)/∂a = [a > b], ∂max(a, b)/∂b = [b > a]; a tie splits the gradient evenly, as
    // PyTorch does. Summed back over broadcast dimensions.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        let larger = self.larger;
        let (av, bv) = (a.value(), b.value());
        let to_a = broadcast_zip(Op::<T>::name(self), &av, &bv, move |x: T, y: T| Extremum::share(larger, x, y));
        let to_b = broadcast_zip(Op::<T>::name(self), &bv, &av, move |y: T, x: T| Extremum::share(larger, y, x));
        vec![
            v.needs[0].then(|| v.grad.mul_const(to_a).sum_to(&a.shape())),
            v.needs[1].then(|| v.grad.mul_const(to_b).sum_to(&b.shape())),
        ]
    }
}

impl<T: Element> Tensor<T> {
    /// Each element limited to `[min, max]` (a `None` bound is no limit), like
    /// `torch.clamp(x, min, max)`: min(max(x, min), max), so a `min` above `max` gives `max`
    /// everywhere, as in PyTorch. NaN stays NaN.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0f32, 0.5, 3.0], [3]);
    /// assert_eq!(x.clamp(Some(-1.0), Some(1.0)).to_vec(), vec![-1.0, 0.5, 1.0]);
    /// ```
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Tensor<T> {
        let (lo, hi) = Clamp { min, max }.bounds::<T>();
        self.map(move |x| {
            if x.is_nan() {
                return x;
            }
            let x = match lo {
                Some(l) if x < l => l,
                _ => x,
            };
            match hi {
                Some(h) if x > h => h,
                _ => x,
            }
        })
    }

    /// The larger of `self` and `other` elementwise, broadcasting, like `torch.maximum`: NaN if
    /// either is NaN.
    #[track_caller]
    pub fn maximum(&self, other: &Tensor<T>) -> Tensor<T> {
        broadcast_zip("maximum", self, other, |a: T, b: T| Extremum::pick(true, a, b))
    }

    /// The smaller of `self` and `other` elementwise, broadcasting, like `torch.minimum`: NaN if
    /// either is NaN.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor<T>) -> Tensor<T> {
        broadcast_zip("minimum", self, other, |a: T, b: T| Extremum::pick(false, a, b))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Each element limited to `[min, max]`, like `torch.clamp`. The gradient passes where
    /// `min ≤ x ≤ max`, bounds included, and is 0 elsewhere.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::from_vec(vec![-2.0f64, 0.5, 1.0], [3]));
    /// let y = x.clamp(Some(-1.0), Some(1.0));
    /// assert_eq!(y.sum_all().backward()[x].to_vec(), vec![0.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn clamp(self, min: Option<f64>, max: Option<f64>) -> Self {
        self.unary(Clamp { min, max }, |x| x.clamp(min, max))
    }

    /// The larger of `self` and `other` elementwise, broadcasting, like `torch.maximum`. Where
    /// they are equal each gets half the gradient, as in PyTorch.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::new();
    /// let a = tape.var(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]));
    /// let b = tape.var(Tensor::from_vec(vec![3.0f64, 2.0, 1.0], [3]));
    /// let grads = a.maximum(b).sum_all().backward();
    /// assert_eq!(grads[a].to_vec(), vec![0.0, 0.5, 1.0]);
    /// assert_eq!(grads[b].to_vec(), vec![1.0, 0.5, 0.0]);
    /// ```
    #[track_caller]
    pub fn maximum(self, other: Var<'t, T>) -> Self {
        let value = self.value().maximum(&other.value());
        Var::record(self.tape, Extremum { larger: true }, &[self, other], value)
    }

    /// The smaller of `self` and `other` elementwise, broadcasting, like `torch.minimum`.
    /// Where they are equal each gets half the gradient, as in PyTorch.
    #[track_caller]
    pub fn minimum(self, other: Var<'t, T>) -> Self {
        let value = self.value().minimum(&other.value());
        Var::record(self.tape, Extremum { larger: false }, &[self, other], value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn clamp_with_one_bound_and_nan() {
        let x = Tensor::from_vec(vec![-2.0f64, 5.0, f64::NAN], [3]);
        let lower = x.clamp(Some(0.0), None).to_vec();
        assert_eq!(&lower[..2], &[0.0, 5.0]);
        assert!(lower[2].is_nan(), "NaN is not clamped away");
        assert_eq!(x.clamp(None, Some(1.0)).to_vec()[..2], [-2.0, 1.0]);
    }

    #[test]
    fn minimum_broadcasts_and_reduces_its_gradient() {
        // b is one number compared with each a: its gradient is the count of places it won.
        let tape = Tape::new();
        let a = tape.var(Tensor::from_vec(vec![1.0f64, 4.0, 2.0, 0.0], [2, 2]));
        let b = tape.var(Tensor::from_vec(vec![2.0f64], [1]));
        let y = a.minimum(b);
        assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 2.0, 0.0]);
        let grads = y.sum_all().backward();
        assert_eq!(grads[a].to_vec(), vec![1.0, 0.0, 0.5, 1.0]);
        assert_eq!(grads[b].to_vec(), vec![1.5]);
    }

    #[test]
    fn nan_wins_either_way() {
        let a = Tensor::from_vec(vec![f64::NAN, 1.0], [2]);
        let b = Tensor::from_vec(vec![0.0, f64::NAN], [2]);
        assert!(a.maximum(&b).to_vec().iter().all(|v| v.is_nan()));
        assert!(a.minimum(&b).to_vec().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn crossed_bounds_give_max_and_no_gradient_as_pytorch() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![0.0f64, 1.5, 3.0], [3]));
        let y = x.clamp(Some(2.0), Some(1.0));
        assert_eq!(y.value().to_vec(), vec![1.0, 1.0, 1.0]);
        assert_eq!(y.sum_all().backward()[x].to_vec(), vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_nan_passes_the_whole_gradient_to_both_sides() {
        // PyTorch: where(a == b, g/2, g).masked_fill(a < b, 0): no comparison with NaN holds.
        let tape = Tape::new();
        let a = tape.var(Tensor::from_vec(vec![f64::NAN], [1]));
        let b = tape.var(Tensor::from_vec(vec![1.0], [1]));
        for y in [a.maximum(b), a.minimum(b)] {
            let grads = y.sum_all().backward();
            assert_eq!((grads[a].to_vec(), grads[b].to_vec()), (vec![1.0], vec![1.0]));
        }
    }
}
