//! Reductions (sum, max) over any set of axes.
//!
//! A set of axes is reduced one run of neighbouring axes at a time, each run seen as a
//! `(outer, reduced, inner)` block. Every output element is folded in ascending order of the
//! reduced index, or for long contiguous rows as fixed-size partials combined in order, so the
//! result never depends on how the work was spread over threads.

use super::{CHUNK, PARALLEL_THRESHOLD, for_each_row_costing};
use crate::{Element, Shape, Tensor};
use rayon::prelude::*;

/// The two reductions the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reduce {
    Sum,
    Max,
}

impl Reduce {
    fn identity<T: Element>(self) -> T {
        match self {
            Reduce::Sum => T::ZERO,
            Reduce::Max => -T::infinity(),
        }
    }

    #[inline]
    fn combine<T: Element>(self, a: T, b: T) -> T {
        match self {
            Reduce::Sum => a + b,
            Reduce::Max => a.max_nan(b),
        }
    }
}

/// Reduces `x` over `axes` (sorted, distinct, in range), keeping them as size-1 dimensions.
pub(crate) fn reduce_keepdim<T: Element>(x: &Tensor<T>, axes: &[usize], how: Reduce) -> Tensor<T> {
    let mut cur = x.clone();
    let mut end = axes.len();
    // Runs of neighbouring axes, last run first, so earlier axis numbers stay valid.
    while end > 0 {
        let mut start = end - 1;
        while start > 0 && axes[start - 1] + 1 == axes[start] {
            start -= 1;
        }
        cur = reduce_block(&cur, axes[start], axes[end - 1] + 1, how);
        end = start;
    }
    cur
}

/// Reduces the axes `first..last` of `x` (a run of neighbours) to size 1.
fn reduce_block<T: Element>(x: &Tensor<T>, first: usize, last: usize, how: Reduce) -> Tensor<T> {
    let dims = x.dims();
    let outer: usize = dims[..first].iter().product();
    let r: usize = dims[first..last].iter().product();
    let inner: usize = dims[last..].iter().product();
    let mut out_dims = dims.to_vec();
    out_dims[first..last].iter_mut().for_each(|d| *d = 1);
    let out_shape = Shape::from(out_dims);
    let mut out = vec![how.identity::<T>(); outer * inner];
    let data = x.data();
    if inner == 1 {
        if outer == 1 {
            out[0] = reduce_row(data, how);
        } else {
            for_each_row_costing(&mut out, 1, r, |o, slot| slot[0] = reduce_row(&data[o * r..(o + 1) * r], how));
        }
    } else {
        // out[o, :] = fold over j of x[o, j, :], rows accumulated in ascending j.
        let accumulate = |o: usize, i0: usize, slot: &mut [T]| {
            for j in 0..r {
                let base = (o * r + j) * inner + i0;
                let len = slot.len();
                for (acc, &v) in slot.iter_mut().zip(&data[base..base + len]) {
                    *acc = how.combine(*acc, v);
                }
            }
        };
        if outer * r * inner < PARALLEL_THRESHOLD {
            out.chunks_mut(inner).enumerate().for_each(|(o, slot)| accumulate(o, 0, slot));
        } else {
            // Split each output row into fixed column chunks so that one long row still spreads.
            super::count(|r| &mut r.reductions);
            let cols = CHUNK.min(inner);
            out.par_chunks_mut(inner).enumerate().for_each(|(o, row)| {
                row.par_chunks_mut(cols).enumerate().for_each(|(c, slot)| accumulate(o, c * cols, slot));
            });
        }
    }
    Tensor::from_vec(out, out_shape)
}

/// Folds one contiguous row: eight interleaved accumulators inside fixed-size chunks, the chunk
/// partials combined in order. The same arithmetic runs whether chunks go to threads or not.
fn reduce_row<T: Element>(row: &[T], how: Reduce) -> T {
    let chunk_fold = |c: &[T]| -> T {
        let mut acc = [how.identity::<T>(); 8];
        let mut it = c.chunks_exact(8);
        for block in &mut it {
            for (a, &v) in acc.iter_mut().zip(block) {
                *a = how.combine(*a, v);
            }
        }
        let mut total = how.identity::<T>();
        for a in acc {
            total = how.combine(total, a);
        }
        for &v in it.remainder() {
            total = how.combine(total, v);
        }
        total
    };
    if row.len() <= CHUNK {
        return chunk_fold(row);
    }
    let partials: Vec<T> = if row.len() < PARALLEL_THRESHOLD {
        row.chunks(CHUNK).map(chunk_fold).collect()
    } else {
        super::count(|r| &mut r.reductions);
        row.par_chunks(CHUNK).map(chunk_fold).collect()
    };
    partials.into_iter().fold(how.identity(), |a, b| how.combine(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_any_axes() {
        let x = Tensor::<f64>::from_fn([2, 3, 4], |i| i as f64);
        let s = reduce_keepdim(&x, &[0, 2], Reduce::Sum);
        assert_eq!(s.dims(), &[1, 3, 1]);
        // Σ over a and c of (12a + 4b + c) = 8·(4b) + 4·12 + 2·6
        let want: Vec<f64> = (0..3).map(|b| 32.0 * b as f64 + 48.0 + 12.0).collect();
        assert_eq!(s.to_vec(), want);
        let all = reduce_keepdim(&x, &[0, 1, 2], Reduce::Sum);
        assert_eq!(all.to_vec(), vec![276.0]);
    }

    #[test]
    fn max_keeps_nan_and_handles_empty() {
        let x = Tensor::<f64>::from_vec(vec![1.0, f64::NAN, 3.0, 2.0], [2, 2]);
        let m = reduce_keepdim(&x, &[1], Reduce::Max);
        assert!(m.data()[0].is_nan());
        assert_eq!(m.data()[1], 3.0);
        let e = Tensor::<f64>::zeros([0, 3]);
        assert_eq!(reduce_keepdim(&e, &[0], Reduce::Sum).to_vec(), vec![0.0; 3]);
    }

    #[test]
    fn long_rows_are_exact_on_integers() {
        let x = Tensor::<f64>::from_fn([100_003], |i| (i % 7) as f64);
        let want: f64 = (0..100_003).map(|i| (i % 7) as f64).sum();
        assert_eq!(reduce_keepdim(&x, &[0], Reduce::Sum).item(), want);
    }
}
