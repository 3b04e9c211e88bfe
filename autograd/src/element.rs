//! `Element`: the scalar types a tensor can hold (`f32` for training, `f64` for checking).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar that tensors are made of.
///
/// Implemented for `f32` (what models train in) and `f64` (what gradient checks use). The methods
/// are the scalar math the kernels need, plus the matching GEMM: `matrixmultiply`'s, and for
/// f32 the engine's own kernels where the CPU has AVX-512 or AVX2 and FMA. For f32, `exp` and
/// `erf` are the engine's own too (branch-free, so loops of them vectorize): generic code gets
/// them through `Element`, while `f32::exp` called directly is the C library's.
///
/// ```
/// use autograd::Element;
/// assert_eq!(<f64 as Element>::from_f64(0.5).exp(), 0.5f64.exp());
/// assert_eq!(<f32 as Element>::DTYPE_NAME, "f32");
/// ```
pub trait Element:
    Copy
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The name used in messages and graph dumps: `"f32"` or `"f64"`.
    const DTYPE_NAME: &'static str;
    /// The safetensors dtype this element is stored as.
    const SAFETENSORS_DTYPE: safetensors::Dtype;

    /// Converts from `f64`, rounding to nearest for `f32`.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// e^x. For f32 the engine's own, within 1 ulp and branch-free so that loops of it
    /// vectorize; for f64 the C library's.
    fn exp(self) -> Self;
    /// Replaces every value by its [`Element::exp`] (the same bits), a whole row at a time: for
    /// f32 with the widest vectors the CPU has.
    fn exp_in_place(values: &mut [Self]) {
        for v in values {
            *v = v.exp();
        }
    }
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The error function, erf(x) = 2/√π ∫₀ˣ e^(−t²) dt. For f32 the engine's own, within
    /// 1.35 ulp and branch-free (GELU's loops vectorize); for f64 `libm`'s.
    fn erf(self) -> Self;
    /// x^p.
    fn powf(self, p: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values; NaN wins, so NaNs are never hidden by a reduction.
    fn max_nan(self, other: Self) -> Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
    /// True for neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// True if every value is finite: one branch-free pass that vectorizes (the finite-value
    /// check runs it over every value a step computes).
    fn all_finite(values: &[Self]) -> bool;
    /// Positive infinity.
    fn infinity() -> Self;
    /// Appends the little-endian bytes of `values` to `out`.
    fn extend_le_bytes(values: &[Self], out: &mut Vec<u8>);
    /// Reads values from little-endian bytes; `bytes.len()` is a multiple of the element size.
    fn from_le_bytes(bytes: &[u8]) -> Vec<Self>;

    /// Computes `out = op(A)·op(B)` with a kernel specialized for this element type and CPU, if
    /// there is one for these sizes, and returns true; otherwise returns false and writes
    /// nothing. Operands as in [`Element::gemm`], given as slices with (row, column) strides;
    /// the output is row-major m×n. With `parallel` the kernel may use rayon's pool; its result
    /// must not depend on the number of threads.
    ///
    /// # Safety
    /// m, k and n must be positive; the strides must address elements inside `a` for every
    /// (i < m, p < k) and inside `b` for every (p < k, j < n); `out` must hold m·n elements.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn fast_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: (&[Self], usize, usize),
        b: (&[Self], usize, usize),
        out: &mut [std::mem::MaybeUninit<Self>],
        parallel: bool,
    ) -> bool {
        let _ = (m, k, n, a, b, out, parallel);
        false
    }

    /// C = alpha · A·B + beta · C, with each matrix given by a pointer and row and column strides
    /// (in elements). Transposes are expressed by swapping strides, never by copying.
    ///
    /// # Safety
    /// The pointers must address matrices of the stated sizes and strides; `c` must not alias
    /// `a` or `b`. See `matrixmultiply::sgemm`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_element {
    ($t:ty, $name:literal, $dtype:ident, $gemm:path, $exp:path, $erf:path, $size:literal $(, $fast:path, $exp_in_place:path)?) => {
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const DTYPE_NAME: &'static str = $name;
            const SAFETENSORS_DTYPE: safetensors::Dtype = safetensors::Dtype::$dtype;

            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max_nan(self, other: Self) -> Self {
                if self.is_nan() || self >= other { self } else { other }
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn all_finite(values: &[Self]) -> bool {
                // x − x is exactly 0 for a finite x and NaN for NaN or ±∞, so sixteen running
                // sums of it stay 0 unless one meets a non-finite value. (Sixteen independent
                // lanes, because float sums are never reordered into vectors for us.)
                let mut lanes = [0.0 as $t; 16];
                let mut chunks = values.chunks_exact(16);
                for c in &mut chunks {
                    for (lane, &v) in lanes.iter_mut().zip(c) {
                        *lane += v - v;
                    }
                }
                let rest: $t = chunks.remainder().iter().map(|&v| v - v).sum();
                lanes.iter().sum::<$t>() + rest == 0.0
            }
            #[inline]
            fn infinity() -> Self {
                <$t>::INFINITY
            }
            fn extend_le_bytes(values: &[Self], out: &mut Vec<u8>) {
                out.reserve(values.len() * $size);
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            fn from_le_bytes(bytes: &[u8]) -> Vec<Self> {
                bytes
                    .chunks_exact($size)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk has element size")))
                    .collect()
            }
            $(
                fn exp_in_place(values: &mut [Self]) {
                    $exp_in_place(values)
                }

                unsafe fn fast_gemm(
                    m: usize,
                    k: usize,
                    n: usize,
                    a: (&[Self], usize, usize),
                    b: (&[Self], usize, usize),
                    out: &mut [std::mem::MaybeUninit<Self>],
                    parallel: bool,
                ) -> bool {
                    // SAFETY: forwarded from the caller's contract.
                    unsafe { $fast(m, k, n, a, b, out, parallel) }
                }
            )?
            #[inline]
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_element!(
    f32,
    "f32",
    F32,
    matrixmultiply::sgemm,
    crate::kernels::exp::exp,
    crate::kernels::erf::erf,
    4,
    f32_fast_gemm,
    crate::kernels::exp::exp_in_place
);

/// f32's own kernels: where the CPU has AVX2 and FMA (and so where it has AVX-512), a
/// small-matrix kernel for small products whose B rows are contiguous, and the packed GEMM of
/// the chosen kernel for the others. The choice depends only on the sizes, the strides and
/// the CPU, never on the thread count.
///
/// # Safety
/// As for [`Element::fast_gemm`].
unsafe fn f32_fast_gemm(
    m: usize,
    k: usize,
    n: usize,
    (a, rsa, csa): (&[f32], usize, usize),
    (b, rsb, csb): (&[f32], usize, usize),
    out: &mut [std::mem::MaybeUninit<f32>],
    parallel: bool,
) -> bool {
    use crate::kernels::{GemmKernel, gemm_kernel, packed_gemm, small_gemm};
    let kernel = gemm_kernel();
    // Small products whose B rows lie contiguous (attention's P·V and most of its backward
    // products, 16×16×16 in the tiny config) cost more to pack than to multiply, so they skip
    // packing altogether. A B read transposed would be gathered on every call, which packing
    // does better: Q·Kᵀ of 32×32×32 ran at 46 GFLOP/s that way against 72 packed. The small
    // kernel's AVX2 vectors hold half as many floats as AVX-512 ones; on Zen 4 that costs
    // nothing (the core splits a 512-bit operation in two).
    if kernel != GemmKernel::Portable && small_gemm::takes(m, k, n) && csb == 1 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: both kernels need AVX2 and FMA, which a CPU with AVX-512F has too; the rest is
        // the caller's contract.
        unsafe {
            small_gemm::sgemm(m, k, n, a, (rsa, csa), b, (rsb, csb), out);
        }
        return true;
    }
    match kernel {
        GemmKernel::Avx512 => {
            // SAFETY: the kernel was chosen because this CPU runs it; the rest is the caller's
            // contract.
            unsafe { packed_gemm::sgemm::<packed_gemm::Avx512>(m, k, n, a, (rsa, csa), b, (rsb, csb), out, parallel) };
            true
        }
        GemmKernel::Avx2 => {
            // SAFETY: as above.
            unsafe { packed_gemm::sgemm::<packed_gemm::Avx2>(m, k, n, a, (rsa, csa), b, (rsb, csb), out, parallel) };
            true
        }
        GemmKernel::Portable => false,
    }
}
impl_element!(f64, "f64", F64, matrixmultiply::dgemm, f64::exp, libm::erf, 8);
