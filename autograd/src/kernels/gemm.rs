//! Matrix products, with transposes folded into strides.
//!
//! Each product goes first to the element type's own kernel for this CPU, if it has one
//! ([`Element::fast_gemm`]: for f32, the kernel [`super::gemm_kernel`] chose — the packed GEMM
//! of `packed_gemm` with its AVX-512 or AVX2 register tile, and on AVX2 the unpacked kernel of
//! `small_gemm` for small products), and otherwise to `matrixmultiply`.
//!
//! A batch of products is spread over rayon, one product per task. A single large product is
//! cut into blocks of the output, one per thread; every output element is still computed by
//! the same kernel over the same `k` order, so the result does not depend on the thread count.
//! Both kinds of parallelism are never nested.

use crate::Element;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A row-major matrix operand, possibly read transposed.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    pub data: &'a [T],
    /// Rows and columns as stored.
    pub rows: usize,
    pub cols: usize,
    /// Read as its transpose.
    pub transposed: bool,
}

impl<T> Operand<'_, T> {
    /// (rows, cols) of the matrix as the product reads it.
    fn logical(&self) -> (usize, usize) {
        if self.transposed { (self.cols, self.rows) } else { (self.rows, self.cols) }
    }

    /// (row stride, column stride) of the logical matrix.
    fn strides(&self) -> (isize, isize) {
        if self.transposed { (1, self.cols as isize) } else { (self.cols as isize, 1) }
    }
}

/// Below this many multiply-adds a product runs on one thread.
pub(crate) const PARALLEL_FLOPS: usize = 1 << 21;
/// Blocks of rows of a split product are a multiple of this: every kernel's row tile divides it.
const ROW_TILE: usize = 16;

/// `out = op(a) · op(b)` for one product; every element of `out` is written (its old contents
/// are never read, NaNs included).
pub(crate) fn gemm<T: Element>(a: Operand<'_, T>, b: Operand<'_, T>, out: &mut [MaybeUninit<T>], split: bool) {
    let (m, k) = a.logical();
    let (k2, n) = b.logical();
    // Cheap, and what makes the unsafe kernels below sound.
    assert!(k == k2 && out.len() == m * n, "gemm: operand and output sizes disagree");
    assert!(a.data.len() >= m * k && b.data.len() >= k * n, "gemm: an operand is shorter than its shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(MaybeUninit::new(T::ZERO));
        return;
    }
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    let threads = rayon::current_num_threads();
    let parallel = split && m * n * k >= PARALLEL_FLOPS && threads > 1;
    // SAFETY: m, k and n are positive and every slice is long enough (checked above); the
    // strides are those of the row-major stored matrices.
    let fast = unsafe {
        T::fast_gemm(m, k, n, (a.data, rsa as usize, csa as usize), (b.data, rsb as usize, csb as usize), out, parallel)
    };
    if fast {
        return;
    }
    let run = |row0: usize, block: &mut [MaybeUninit<T>]| {
        let rows = block.len() / n;
        let a = View { data: &a.data[row0 * rsa as usize..], rs: rsa as usize, cs: csa as usize };
        // SAFETY: rows row0..row0+rows of `a` are in bounds, and `b` holds k×n at (rsb, csb).
        unsafe { portable_gemm(rows, k, n, a, View { data: b.data, rs: rsb as usize, cs: csb as usize }, block) }
    };
    if parallel && m > ROW_TILE {
        // One block of rows per thread, so B is packed once per thread. Each output element
        // is computed the same way whichever block it falls in, so the result does not depend
        // on the thread count.
        super::count(|r| &mut r.split_products);
        let rows = m.div_ceil(threads).next_multiple_of(ROW_TILE);
        out.par_chunks_mut(rows * n).enumerate().for_each(|(i, block)| run(i * rows, block));
    } else {
        run(0, out);
    }
}

/// A matrix read in place from a slice: element (i, j) at `data[i·rs + j·cs]`. One head of a
/// `(batch, t, h·d_k)` tensor is such a view, rows d apart.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

/// `out = A · B` (A m×k, B k×n, `out` m×n row-major) on the calling thread, with the same
/// kernels as [`gemm`]: every element of `out` is written, and each is computed as it would be
/// in any other product the same kernel runs.
///
/// # Panics
/// If a view reaches past its slice or `out` is not m×n.
pub(crate) fn gemm_view<T: Element>(m: usize, k: usize, n: usize, a: View<'_, T>, b: View<'_, T>, out: &mut [T]) {
    let reach = |v: View<'_, T>, rows: usize, cols: usize| {
        (rows - 1).saturating_mul(v.rs).saturating_add((cols - 1).saturating_mul(v.cs)) < v.data.len()
    };
    assert_eq!(out.len(), m * n, "gemm_view: the output is not {m}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(T::ZERO);
        return;
    }
    // What makes the unsafe kernels below sound.
    assert!(reach(a, m, k) && reach(b, k, n), "gemm_view: a view reaches past its slice");
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, and the kernels only ever write initialized
    // values through it, so `out` stays a valid `[T]`.
    let out = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<T>>(), out.len()) };
    // SAFETY: sizes positive, every element addressed lies inside its slice (checked above).
    let fast = unsafe { T::fast_gemm(m, k, n, (a.data, a.rs, a.cs), (b.data, b.rs, b.cs), out, false) };
    if !fast {
        // SAFETY: as above.
        unsafe { portable_gemm(m, k, n, a, b, out) }
    }
}

/// `out = A · B` with `matrixmultiply`.
///
/// # Safety
/// Every element of A (m×k) and B (k×n) lies inside its view's slice; `out` holds m×n.
unsafe fn portable_gemm<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: View<'_, T>,
    b: View<'_, T>,
    out: &mut [MaybeUninit<T>],
) {
    // SAFETY: the caller's bounds; `out` is a distinct mutable slice, so it aliases neither
    // operand; beta = 0 means its old contents (possibly NaN) are never read.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            T::ZERO,
            out.as_mut_ptr().cast::<T>(),
            n as isize,
            1,
        )
    }
}

/// A batch of products `out[i] = op(a[ai]) · op(b[bi])` for `(ai, bi)` in `pairs`, each matrix
/// `a_len`/`b_len` elements long in its buffer. Every element of `out` is written.
pub(crate) fn gemm_batched<T: Element>(
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    pairs: &[(usize, usize)],
    out: &mut [MaybeUninit<T>],
) {
    let (a_len, b_len) = (a.rows * a.cols, b.rows * b.cols);
    let out_len = if pairs.is_empty() { 0 } else { out.len() / pairs.len() };
    let one = |(&(ai, bi), o): (&(usize, usize), &mut [MaybeUninit<T>])| {
        let a = Operand { data: &a.data[ai * a_len..(ai + 1) * a_len], ..a };
        let b = Operand { data: &b.data[bi * b_len..(bi + 1) * b_len], ..b };
        gemm(a, b, o, false);
    };
    if out_len == 0 {
        return;
    }
    let (m, k) = a.logical();
    let flops = pairs.len() * m * k * b.logical().1;
    if pairs.len() == 1 {
        let (ai, bi) = pairs[0];
        let a = Operand { data: &a.data[ai * a_len..(ai + 1) * a_len], ..a };
        let b = Operand { data: &b.data[bi * b_len..(bi + 1) * b_len], ..b };
        gemm(a, b, out, true);
    } else if flops >= PARALLEL_FLOPS {
        super::count(|r| &mut r.batched_products);
        pairs.par_iter().zip(out.par_chunks_mut(out_len)).for_each(one);
    } else {
        pairs.iter().zip(out.chunks_mut(out_len)).for_each(one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// op(a)·op(b) in f64 from the stored operands.
    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f64> {
        let at = |i: usize, p: usize| a[if ta { p * m + i } else { i * k + p }] as f64;
        let bt = |p: usize, j: usize| b[if tb { j * k + p } else { p * n + j }] as f64;
        (0..m * n).map(|ij| (0..k).map(|p| at(ij / n, p) * bt(p, ij % n)).sum()).collect()
    }

    #[test]
    fn output_prefilled_with_nan_is_overwritten() {
        for (m, k, n) in [(0, 3, 2), (1, 1, 1), (3, 0, 4), (7, 13, 5), (16, 9, 31), (67, 31, 129), (130, 257, 3)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let mut out = vec![MaybeUninit::new(f32::NAN); m * n];
                let lhs = Operand { data: &a, rows: ar, cols: ac, transposed: ta };
                let rhs = Operand { data: &b, rows: br, cols: bc, transposed: tb };
                gemm(lhs, rhs, &mut out, true);
                // SAFETY: initialized with NaN above, overwritten by gemm.
                let out: Vec<f32> = out.into_iter().map(|v| unsafe { v.assume_init() }).collect();
                let want = naive(&a, &b, m, k, n, ta, tb);
                // Small integers: every partial sum is exact in f32.
                let bad = out.iter().zip(&want).position(|(&x, &y)| x as f64 != y);
                assert!(bad.is_none(), "m={m} k={k} n={n} ta={ta} tb={tb}: first bad index {bad:?}");
            }
        }
    }

    #[test]
    fn split_rows_give_the_same_bits() {
        let (m, k, n) = (300, 129, 257);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 1000) as f32 / 991.0 - 0.5).collect();
        let lhs = Operand { data: &a, rows: m, cols: k, transposed: false };
        let rhs = Operand { data: &b, rows: k, cols: n, transposed: false };
        let (mut whole, mut split) = (vec![MaybeUninit::new(0.0f32); m * n], vec![MaybeUninit::new(0.0f32); m * n]);
        gemm(lhs, rhs, &mut whole, false);
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| gemm(lhs, rhs, &mut split, true));
        // SAFETY: both were initialized above.
        assert!(
            whole.iter().zip(&split).all(|(x, y)| unsafe { x.assume_init().to_bits() == y.assume_init().to_bits() })
        );
    }
}
