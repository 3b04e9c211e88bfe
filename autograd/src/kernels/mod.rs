//! Kernels on plain slices: elementwise maps with broadcasting, reductions and GEMM.
//!
//! Elementwise and reduction work is split into fixed-size chunks whose boundaries depend only
//! on the sizes involved, never on the number of threads. A matrix product is cut into one
//! block of the output per thread, but every element is computed the same way whichever block
//! it falls in. So a computation gives bit-identical results on any pool.

pub(crate) mod binary;
pub(crate) mod gemm;
pub(crate) mod packed_gemm;
pub(crate) mod reduce;
pub(crate) mod small_gemm;

use crate::Element;
use rayon::prelude::*;
use std::mem::{ManuallyDrop, MaybeUninit};

/// Elements per parallel task. Fixed, so chunk boundaries never depend on the thread count.
pub(crate) const CHUNK: usize = 1 << 13;

/// Below this many elements a kernel runs on the calling thread: spawning would cost more.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 15;

/// `f` applied to every element, in parallel for large inputs.
pub(crate) fn map<T: Element>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    if x.len() < PARALLEL_THRESHOLD {
        x.iter().map(|&v| f(v)).collect()
    } else {
        x.par_iter().with_min_len(CHUNK).map(|&v| f(v)).collect()
    }
}

/// `f` applied to pairs of elements of two slices of one length, in parallel for large inputs.
pub(crate) fn zip_map<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PARALLEL_THRESHOLD {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.par_iter().zip(b.par_iter()).with_min_len(CHUNK).map(|(&x, &y)| f(x, y)).collect()
    }
}

/// `f` applied to triples of elements of three slices of one length, in parallel for large inputs.
pub(crate) fn zip3_map<T: Element>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T + Sync + Send) -> Vec<T> {
    debug_assert!(a.len() == b.len() && b.len() == c.len());
    if a.len() < PARALLEL_THRESHOLD {
        a.iter().zip(b).zip(c).map(|((&x, &y), &z)| f(x, y, z)).collect()
    } else {
        a.par_iter().zip(b.par_iter()).zip(c.par_iter()).with_min_len(CHUNK).map(|((&x, &y), &z)| f(x, y, z)).collect()
    }
}

/// Runs `f(row_index, row)` for each `row_len`-long row of `out`, in parallel when `out` is large.
pub(crate) fn for_each_row<E: Send>(out: &mut [E], row_len: usize, f: impl Fn(usize, &mut [E]) + Sync + Send) {
    if row_len == 0 {
        return;
    }
    if out.len() < PARALLEL_THRESHOLD {
        out.chunks_mut(row_len).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        let min_rows = (CHUNK / row_len).max(1);
        out.par_chunks_mut(row_len).with_min_len(min_rows).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// A vector of `n` elements that `fill` writes, without zeroing the memory first (for outputs
/// a kernel overwrites anyway, such as a GEMM's).
///
/// # Safety
/// `fill` must write every one of the `n` elements.
pub(crate) unsafe fn filled<T: Element>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v: Vec<MaybeUninit<T>> = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` elements need no initialization.
    unsafe { v.set_len(n) };
    fill(&mut v);
    let mut v = ManuallyDrop::new(v);
    // SAFETY: the caller promised every element was written, so the buffer is a valid `[T]` of
    // the same length, capacity and allocation (`MaybeUninit<T>` has `T`'s layout).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// Copies `src` into the uninitialized `dst` of the same length.
#[inline]
pub(crate) fn write_slice<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}
