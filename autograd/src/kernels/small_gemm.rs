//! A GEMM for small f32 matrices (attention's per-head products), where matrixmultiply's
//! per-call packing costs more than the arithmetic. B is read in place when its rows are
//! contiguous and 16 columns wide, or copied once into a small row-major buffer otherwise;
//! A is read in place. A 4×16 register tile of AVX2 accumulators runs over k with fused
//! multiply-adds. Used only when the CPU has AVX2 and FMA; each output element is the same
//! chain of fused multiply-adds over k in ascending order, whatever the thread count.

use std::mem::MaybeUninit;

/// Products up to this many multiply-adds, with every dimension at most `MAX_DIM`, go here.
pub(crate) const MAX_FLOPS: usize = 1 << 17;
/// Largest m, k or n handled here.
pub(crate) const MAX_DIM: usize = 128;

/// True if this CPU can run the kernel.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// C (m×n, row-major) = op(A) · op(B), operands given by slices and (row, column) strides of
/// the logical matrices.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]); the strides must address elements inside
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
