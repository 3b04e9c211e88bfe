//! Sums and dot products over one short row, as the row-wise kernels (layer norm, softmax,
//! attention) need them.
//!
//! A plain `iter().sum()` is one chain of dependent additions: floating-point addition is not
//! associative, so the compiler may not reorder it, and each addition waits for the last. Here
//! the row is folded into `LANES` interleaved partial sums (element i goes to partial i mod
//! `LANES`), which the compiler turns into vector additions, and the partials are then combined
//! in a fixed order. The order depends only on the row's length, so a row gives the same bits
//! wherever it sits and however many threads run.

use crate::Element;

/// Partial sums per row: two vectors of f32 on AVX2, one on AVX-512.
const LANES: usize = 16;

/// Σᵢ f(xᵢ) over `x`, in the fixed order described in the module docs.
#[inline]
pub(crate) fn sum_map<T: Element>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut blocks = x.chunks_exact(LANES);
    for block in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(block) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(blocks.remainder()) {
        *a += f(v);
    }
    combine(acc)
}

/// Σᵢ xᵢ.
#[inline]
pub(crate) fn sum<T: Element>(x: &[T]) -> T {
    sum_map(x, |v| v)
}

/// Σᵢ aᵢ·bᵢ over two rows of one length.
#[inline]
pub(crate) fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [T::ZERO; LANES];
    let (mut ab, mut bb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ab).zip(&mut bb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    for ((s, &u), &v) in acc.iter_mut().zip(ab.remainder()).zip(bb.remainder()) {
        *s += u * v;
    }
    combine(acc)
}

/// The partials added pairwise, halves first: a tree of fixed shape.
#[inline]
fn combine<T: Element>(mut acc: [T; LANES]) -> T {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            let upper = acc[i + width];
            acc[i] += upper;
        }
        width /= 2;
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_on_small_integers_at_every_length() {
        for n in 0..70 {
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let want_sum: f32 = x.iter().sum();
            let want_dot: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert_eq!(sum(&x), want_sum, "n={n}");
            assert_eq!(dot(&x, &y), want_dot, "n={n}");
            assert_eq!(sum_map(&x, |v| v * v), x.iter().map(|v| v * v).sum::<f32>(), "n={n}");
        }
    }

    #[test]
    fn nan_and_infinity_propagate() {
        let mut x = vec![1.0f64; 40];
        x[33] = f64::NAN;
        assert!(sum(&x).is_nan());
        x[33] = f64::INFINITY;
        assert_eq!(sum(&x), f64::INFINITY);
        assert!(dot(&x, &vec![0.0; 40]).is_nan(), "inf · 0 is NaN");
    }

    #[test]
    fn close_to_the_exact_sum_of_a_long_row() {
        let x: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5).collect();
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        let got = sum(&x) as f64;
        assert!((got - exact).abs() <= 1e-4 * x.iter().map(|v| v.abs() as f64).sum::<f64>(), "{got} vs {exact}");
    }
}
