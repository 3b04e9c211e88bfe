//! Comparing tensors in tests: elementwise closeness and the worst element, where a NaN or an
//! infinity that the reference does not have is always a failure.
//!
//! A comparison that keeps the largest error with `>` or `f64::max` silently skips NaN (every
//! comparison with NaN is false), so a model that outputs NaN would pass it. Both functions here
//! give a non-finite value where the reference is finite an infinite error instead.

use crate::{Element, Tensor};
use std::fmt;

/// True if two tensors have one shape and agree elementwise within `rtol · |b| + atol`, like
/// `torch.allclose(a, b, rtol, atol, equal_nan=True)`.
///
/// Where `b` is finite, `a` must be finite and close; where `b` is NaN, `a` must be NaN; where
/// `b` is ±∞, `a` must be the same infinity.
///
/// ```
/// use autograd::{Tensor, allclose};
/// let want = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2]);
/// assert!(allclose(&Tensor::from_vec(vec![1.0, 2.0 + 1e-12], [2]), &want, 1e-9, 0.0));
/// assert!(!allclose(&Tensor::from_vec(vec![1.0, f64::NAN], [2]), &want, 1e-9, 0.0));
/// ```
pub fn allclose<T: Element>(a: &Tensor<T>, b: &Tensor<T>, rtol: f64, atol: f64) -> bool {
    a.shape() == b.shape()
        && a.data().iter().zip(b.data()).all(|(&x, &y)| {
            let (x, y) = (x.to_f64(), y.to_f64());
            if !y.is_finite() {
                return x == y || (x.is_nan() && y.is_nan());
            }
            // NaN makes the comparison false; ±∞ makes the difference +∞.
            (x - y).abs() <= atol + rtol * y.abs()
        })
}

/// The element where a tensor is furthest from its reference, found by [`max_relative_error`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    /// Flat (row-major) index of the element.
    pub index: usize,
    /// The value being checked.
    pub got: f64,
    /// The reference value.
    pub want: f64,
    /// `|got − want| / max(|want|, floor)`; infinite where `got` is NaN or infinite and `want`
    /// is not the same. Never NaN, so `error > tolerance` is a sound test.
    pub error: f64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "index {}: {:e} vs {:e} (relative error {:.2e})", self.index, self.got, self.want, self.error)
    }
}

/// The worst element of `got` against the reference `want`: the largest
/// `|got − want| / max(|want|, floor)`, or `None` if the tensors are empty.
///
/// `floor` keeps elements near zero from dominating: they come from cancellation and are only
/// as exact as the terms that cancelled. Pass an absolute floor (`1e-6`), or a fraction of the
/// reference's largest magnitude ([`largest_magnitude`]) to measure every error against the
/// tensor's scale.
///
/// A non-finite `got` where `want` is finite, or any `got` that differs from a non-finite
/// `want`, has an infinite error: it is always the worst element and fails every tolerance.
///
/// ```
/// use autograd::{Tensor, max_relative_error};
/// let want = Tensor::<f32>::from_vec(vec![1.0, 2.0, 4.0], [3]);
/// let got = Tensor::from_vec(vec![1.0, 2.5, 4.0], [3]);
/// let worst = max_relative_error(&got, &want, 1e-6).unwrap();
/// assert_eq!((worst.index, worst.error), (1, 0.25));
///
/// let got = Tensor::from_vec(vec![f32::NAN, 2.5, 4.0], [3]);
/// assert_eq!(max_relative_error(&got, &want, 1e-6).unwrap().error, f64::INFINITY);
/// ```
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn max_relative_error<T: Element>(got: &Tensor<T>, want: &Tensor<T>, floor: f64) -> Option<Mismatch> {
    assert!(got.shape() == want.shape(), "max_relative_error: shapes {} and {} differ", got.shape(), want.shape());
    let mut worst: Option<Mismatch> = None;
    for (index, (&g, &w)) in got.data().iter().zip(want.data()).enumerate() {
        let (got, want) = (g.to_f64(), w.to_f64());
        let error = if got == want || (got.is_nan() && want.is_nan()) {
            0.0
        } else if want.is_finite() && got.is_finite() {
            // Never NaN: the difference is positive, so a zero denominator gives +∞.
            (got - want).abs() / want.abs().max(floor)
        } else {
            f64::INFINITY
        };
        if worst.is_none_or(|m| error > m.error) {
            worst = Some(Mismatch { index, got, want, error });
        }
    }
    worst
}

/// The largest `|x|` in `t`: NaN if `t` holds a NaN, 0 if it is empty.
///
/// ```
/// use autograd::{Tensor, largest_magnitude};
/// assert_eq!(largest_magnitude(&Tensor::<f64>::from_vec(vec![1.0, -3.0], [2])), 3.0);
/// assert!(largest_magnitude(&Tensor::<f64>::from_vec(vec![f64::NAN, -3.0], [2])).is_nan());
/// ```
pub fn largest_magnitude<T: Element>(t: &Tensor<T>) -> f64 {
    t.data().iter().fold(0.0, |m: f64, &x| {
        let x = x.to_f64().abs();
        if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor<f64> {
        Tensor::from_vec(v.to_vec(), [v.len()])
    }

    const WANT: [f64; 4] = [1.0, -2.0, 0.5, 3.0];

    /// `WANT` with element `at` replaced.
    fn got_with(at: usize, value: f64) -> Tensor<f64> {
        let mut v = WANT.to_vec();
        v[at] = value;
        t(&v)
    }

    #[test]
    fn allclose_fails_on_nan_and_infinity_where_the_reference_is_finite() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 2, 3] {
                assert!(!allclose(&got_with(at, bad), &t(&WANT), 1e-3, 1e-3), "{bad} at {at}");
            }
        }
        assert!(allclose(&t(&WANT), &t(&WANT), 0.0, 0.0));
    }

    #[test]
    fn allclose_accepts_only_the_same_non_finite_value() {
        let want = got_with(1, f64::NAN);
        assert!(allclose(&want, &want, 0.0, 0.0));
        assert!(!allclose(&t(&WANT), &want, 1.0, 1.0), "finite vs NaN");
        let want = got_with(1, f64::INFINITY);
        assert!(allclose(&want, &want, 0.0, 0.0));
        assert!(!allclose(&got_with(1, f64::NEG_INFINITY), &want, 1.0, 1.0), "-inf vs inf");
        assert!(!allclose(&got_with(1, 1e300), &want, 1.0, 1.0), "finite vs inf");
    }

    #[test]
    fn max_relative_error_makes_nan_and_infinity_the_worst_element() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 2, 3] {
                // A finite error elsewhere, larger than any finite tolerance would allow.
                let mut got = got_with(at, bad);
                got.data_mut()[(at + 1) % 4] += 1e6;
                let worst = max_relative_error(&got, &t(&WANT), 1e-6).unwrap();
                assert_eq!((worst.index, worst.error), (at, f64::INFINITY), "{bad} at {at}");
                assert!(worst.got.is_nan() || worst.got == bad);
            }
        }
    }

    #[test]
    fn max_relative_error_measures_against_the_floor() {
        let got = t(&[1.0, -2.0, 0.5 + 1e-3, 3.0]);
        let worst = max_relative_error(&got, &t(&WANT), 1e-6).unwrap();
        assert_eq!(worst.index, 2);
        assert!((worst.error - 2e-3).abs() < 1e-12, "{worst}");
        let worst = max_relative_error(&got, &t(&WANT), 10.0).unwrap();
        assert!((worst.error - 1e-4).abs() < 1e-12, "{worst}");
        assert_eq!(max_relative_error(&t(&[]), &t(&[]), 1.0), None);
    }

    #[test]
    fn max_relative_error_accepts_a_matching_non_finite_reference() {
        let want = t(&[f64::NAN, f64::INFINITY, 1.0]);
        assert_eq!(max_relative_error(&want, &want, 1.0).unwrap().error, 0.0);
        let worst = max_relative_error(&t(&[1.0, f64::INFINITY, 1.0]), &want, 1.0).unwrap();
        assert_eq!((worst.index, worst.error), (0, f64::INFINITY));
        let worst = max_relative_error(&t(&[f64::NAN, f64::NEG_INFINITY, 1.0]), &want, 1.0).unwrap();
        assert_eq!((worst.index, worst.error), (1, f64::INFINITY));
    }

    #[test]
    fn largest_magnitude_keeps_nan() {
        assert_eq!(largest_magnitude(&t(&[-4.0, 2.0])), 4.0);
        assert!(largest_magnitude(&t(&[1.0, f64::NAN, 2.0])).is_nan());
        assert_eq!(largest_magnitude(&t(&[1.0, f64::NEG_INFINITY])), f64::INFINITY);
        assert_eq!(largest_magnitude(&t(&[])), 0.0);
    }
}
