//! erf(x) for f32, branch-free like [`super::exp`], so that GELU's loops compile to vector code.
//!
//! Two approximations, both computed and one kept by a select:
//! - below |x| = 1, erf(x) = x + x·Q(x²), with Q a degree-6 polynomial fitted to
//!   erf(x)/x − 1. Keeping x apart from the correction x·Q, which is at most a sixth of it,
//!   makes the rounding of Q's terms count for less.
//! - from |x| = 1, erf(x) = 1 − e^(−x²)·B(1/x), with B a degree-9 polynomial fitted to
//!   erfc(x)·e^(x²), smooth and slowly varying in 1/x. From |x| = 4 on, erf(x) rounds to ±1.
//!
//! Both fits are weighted minimax fits in f64 (errors below 2·10⁻⁹ of the result), with
//! coefficients rounded to f32. The error of the whole, rounding included, is below 1.35 ulp:
//! 1.32 at most, just below |x| = 1 where the two meet, over every float from ±0.25 to ±4.5
//! (the test checks them one by one; below 0.25 it checks every 61st), and the correctly rounded
//! value 97% of the time. glibc's `erff` is within 0.8. No fused multiply-add is used, so every CPU gives
//! the same bits.

use super::exp::exp;

/// Q(s) ≈ erf(√s)/√s − 1 on 0 ≤ s ≤ 1, lowest degree first.
const Q: [f32; 7] =
    [0.128_379_17, -0.376_126_26, 0.112_835_854, -0.026_853_815, 0.005_188_334, -0.000_801_024_1, 7.854_005_5e-5];
/// B(u) ≈ erfc(1/u)·e^(1/u²) on 1/4 ≤ u ≤ 1, lowest degree first.
const B: [f32; 10] = [
    0.000_555_155_2,
    0.555_195_87,
    0.064_111_754,
    -0.541_887_8,
    0.630_902_4,
    -0.396_032_63,
    0.122_843_1,
    0.003_615_702_7,
    -0.015_120_813,
    0.003_400_839_4,
];
/// Where the two approximations meet.
const SPLIT: f32 = 1.0;
/// From here on erf(x) is 1 in f32 (1 − erf(3.92) is below half an ulp of 1).
const SATURATED: f32 = 4.0;

/// p(x) with coefficients lowest degree first, by Horner's rule.
#[inline(always)]
fn polynomial<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    c[..N - 1].iter().rev().fold(c[N - 1], |acc, &ci| acc * x + ci)
}

/// erf(x), within 1.35 ulp, NaN for NaN, ±1 for ±∞. See the module docs.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    // A comparison, not `min`, so that a NaN goes through as NaN.
    let a = x.abs();
    let a = if a > SATURATED { SATURATED } else { a };
    let s = a * a;
    let near = a + a * polynomial(&Q, s);
    let far = 1.0 - exp(-s) * polynomial(&B, 1.0 / a);
    let r = if a < SPLIT { near } else { far };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernels::ulps;

    /// Every f32 from ±0.25 to ±4.5, and every 61st one below 0.25 in magnitude (subnormals
    /// included): within 1.35 ulp.
    #[test]
    fn within_1_35_ulp() {
        let quarter = 0.25f32.to_bits();
        let ranges = [(0..=quarter, 61), (quarter..=4.5f32.to_bits(), 1)];
        crate::kernels::assert_within_ulps(erf, libm::erf, &ranges, 1.35);
    }

    #[test]
    fn special_values_and_symmetry() {
        assert_eq!(erf(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf(4.0), 1.0);
        assert_eq!(erf(1e30), 1.0);
        assert!(erf(f32::NAN).is_nan());
        // Tiny and subnormal arguments (2/√π · x), and both sides of the split.
        for x in [1e-30f32, 1e-40, 0.999_999_94, 1.0] {
            let e = ulps(erf(x), libm::erf(f64::from(x)));
            assert!(e < 1.35, "x = {x:e}: {e} ulp");
        }
        for x in [0.1f32, 0.5, 0.999, 1.0, 1.001, 2.5, 3.9] {
            assert_eq!(erf(-x), -erf(x), "x = {x}");
        }
    }
}
