//! Matrix products on `matrixmultiply`, with transposes folded into strides.
//!
//! A batch of products is spread over rayon, one product per task. A single large product is
//! split by rows of the output into fixed blocks, each block one `matrixmultiply` call; every
//! output element is still computed by the same kernel over the same `k` order, so the result
//! does not depend on the thread count. Both kinds of parallelism are never nested.

use crate::Element;
use rayon::prelude::*;

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
const PARALLEL_FLOPS: usize = 1 << 18;
/// Output rows per task when one product is split: a multiple of every kernel's row tile.
const ROW_BLOCK: usize = 64;

/// `out = op(a) · op(b)` for one product; `out` is overwritten (its old contents are ignored,
/// NaNs included).
pub(crate) fn gemm<T: Element>(a: Operand<'_, T>, b: Operand<'_, T>, out: &mut [T], split: bool) {
    let (m, k) = a.logical();
    let (k2, n) = b.logical();
    debug_assert_eq!(k, k2);
    debug_assert_eq!(out.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(T::ZERO);
        return;
    }
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    let run = |row0: usize, block: &mut [T]| {
        let rows = block.len() / n;
        // SAFETY: `a` holds m×k elements at strides (rsa, csa); rows row0..row0+rows are in
        // bounds. `b` holds k×n at (rsb, csb). `block` is rows×n, row-major, and is a distinct
        // mutable slice, so it aliases neither operand. beta = 0 means the old contents
        // (possibly NaN) are never read.
        unsafe {
            T::gemm(
                rows,
                k,
                n,
                T::ONE,
                a.data.as_ptr().offset(row0 as isize * rsa),
                rsa,
                csa,
                b.data.as_ptr(),
                rsb,
                csb,
                T::ZERO,
                block.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    };
    if split && m > ROW_BLOCK && m * n * k >= PARALLEL_FLOPS && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(ROW_BLOCK * n).enumerate().for_each(|(i, block)| run(i * ROW_BLOCK, block));
    } else {
        run(0, out);
    }
}

/// A batch of products `out[i] = op(a[ai]) · op(b[bi])` for `(ai, bi)` in `pairs`, each matrix
/// `a_len`/`b_len` elements long in its buffer.
pub(crate) fn gemm_batched<T: Element>(a: Operand<'_, T>, b: Operand<'_, T>, pairs: &[(usize, usize)], out: &mut [T]) {
    let (a_len, b_len) = (a.rows * a.cols, b.rows * b.cols);
    let out_len = if pairs.is_empty() { 0 } else { out.len() / pairs.len() };
    let one = |(&(ai, bi), o): (&(usize, usize), &mut [T])| {
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
        pairs.par_iter().zip(out.par_chunks_mut(out_len)).for_each(one);
    } else {
        pairs.iter().zip(out.chunks_mut(out_len)).for_each(one);
    }
}
