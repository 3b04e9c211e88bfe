//! A GEMM for small f32 matrices (attention's per-head products), where packing costs more
//! than the arithmetic. B is read in place when its rows are contiguous and 16 columns wide,
//! or copied into a small row-major buffer otherwise; A is read in place. A 4×16 register tile
//! of AVX2 accumulators runs over k with fused multiply-adds. The AVX-512 and AVX2 kernel
//! choices send it the small products whose B rows are contiguous (the packed GEMM takes the
//! rest); each
//! output element is the same chain of fused multiply-adds over k in ascending order, whatever
//! the thread count.

use std::mem::MaybeUninit;

/// Products up to this many multiply-adds, with every dimension at most `MAX_DIM`, go here.
pub(crate) const MAX_FLOPS: usize = 1 << 17;
/// Largest m, k or n handled here.
pub(crate) const MAX_DIM: usize = 128;

/// Whether an m×k by k×n product is small enough for this kernel.
pub(crate) fn takes(m: usize, k: usize, n: usize) -> bool {
    m * n * k <= MAX_FLOPS && m.max(n).max(k) <= MAX_DIM
}

/// C (m×n, row-major) = op(A) · op(B), operands given by slices and (row, column) strides of
/// the logical matrices.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`GemmKernel::Avx2.available()`); the strides must address elements inside
/// the slices for every (i < m, p < k) and (p < k, j < n).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    out: &mut [MaybeUninit<f32>],
) {
    use std::arch::x86_64::*;
    // B as k rows of `np` floats, padded with zeros to a multiple of 16 columns.
    let np = n.next_multiple_of(16);
    let packed: Vec<f32>;
    let (bptr, bstride) = if csb == 1 && n == np {
        (b.as_ptr(), rsb)
    } else {
        let mut buf = vec![0.0f32; k * np];
        for p in 0..k {
            for j in 0..n {
                buf[p * np + j] = b[p * rsb + j * csb];
            }
        }
        packed = buf;
        (packed.as_ptr(), np)
    };
    let aptr = a.as_ptr();
    let optr = out.as_mut_ptr().cast::<f32>();
    let mut tile = [0.0f32; 16];
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(4);
        for j0 in (0..np).step_by(16) {
            // SAFETY (whole block): every pointer below stays inside `a`, B (or `packed`) and
            // `out`, by the caller's strides and the bounds rows ≤ m − i0, j0 + 16 ≤ np.
            unsafe {
                let mut acc = [_mm256_setzero_ps(); 8];
                for p in 0..k {
                    let brow = bptr.add(p * bstride + j0);
                    let (b0, b1) = (_mm256_loadu_ps(brow), _mm256_loadu_ps(brow.add(8)));
                    for r in 0..4 {
                        if r < rows {
                            let x = _mm256_set1_ps(*aptr.add((i0 + r) * rsa + p * csa));
                            acc[2 * r] = _mm256_fmadd_ps(x, b0, acc[2 * r]);
                            acc[2 * r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * r + 1]);
                        }
                    }
                }
                let cols = (n - j0.min(n)).min(16);
                for r in 0..rows {
                    let dst = optr.add((i0 + r) * n + j0);
                    if cols == 16 {
                        _mm256_storeu_ps(dst, acc[2 * r]);
                        _mm256_storeu_ps(dst.add(8), acc[2 * r + 1]);
                    } else {
                        _mm256_storeu_ps(tile.as_mut_ptr(), acc[2 * r]);
                        _mm256_storeu_ps(tile.as_mut_ptr().add(8), acc[2 * r + 1]);
                        std::ptr::copy_nonoverlapping(tile.as_ptr(), dst, cols);
                    }
                }
            }
        }
        i0 += rows;
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::GemmKernel;
    use std::mem::MaybeUninit;

    /// Every shape class: rows not a multiple of the 4-row tile, columns not a multiple of 16
    /// (B copied) and exactly 16 (B read in place), each operand read transposed or not. The
    /// values are small integers, so every partial sum is exact and the result must be too.
    #[test]
    fn matches_exact_products() {
        if !GemmKernel::Avx2.available() {
            crate::kernels::not_run("the small AVX2 GEMM kernel, which this CPU cannot run");
            return;
        }
        for (m, k, n) in [(1, 1, 1), (3, 5, 16), (4, 7, 17), (9, 33, 32), (13, 64, 5), (128, 128, 8)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                let mut out = vec![MaybeUninit::new(f32::NAN); m * n];
                // SAFETY: the CPU has AVX2 and FMA (checked above); the strides address m×k and k×n.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    super::sgemm(m, k, n, &a, sa, &b, sb, &mut out)
                };
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 = (0..k).map(|p| a[i * sa.0 + p * sa.1] * b[p * sb.0 + j * sb.1]).sum();
                        // SAFETY: sgemm writes every element.
                        let got = unsafe { out[i * n + j].assume_init() };
                        assert_eq!(got, want, "{m}x{k}x{n} ta={ta} tb={tb} at ({i}, {j})");
                    }
                }
            }
        }
    }
}
