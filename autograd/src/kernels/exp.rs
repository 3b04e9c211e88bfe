//! e^x for f32, written so that a loop of it compiles to vector instructions.
//!
//! The C library's `expf` is one call per value, which a loop cannot vectorize: a softmax over
//! a row of sixteen attention scores spends more time in those calls than in the scores'
//! product. [`exp`] is the same function made only of additions, multiplications, comparisons
//! and integer operations on the bits, with no branch and no table, so the compiler turns a
//! loop of it into vector code, and [`exp_in_place`] runs such a loop compiled for the widest
//! vectors the CPU has.
//!
//! The method is the textbook one. With n = round(x·log₂e) and r = x − n·ln 2 (|r| ≤ ln 2 / 2,
//! ln 2 split into a short high part and a low part so that n·ln2_hi is exact),
//! e^x = 2ⁿ·e^r, and e^r = 1 + r + r²·P(r) with P a degree-4 polynomial fitted to
//! (e^r − 1 − r)/r² on that interval (the fit's own error is 4·10⁻⁹ of e^r, far below f32's
//! resolution). 2ⁿ is built from its exponent bits in two halves, 2^⌊n/2⌋·2^(n−⌊n/2⌋), so that
//! results in the subnormal range come out right too.
//!
//! The error is below 1 ulp over the whole range: 0.98 at most over every float from ±0.25 out
//! to where e^x is 0 or +∞ (the test checks them one by one; below 0.25, every 61st), and the
//! correctly rounded value 90% of the time. The C library's `expf` is within 0.5. No fused multiply-add is used, so every CPU and every vector width gives the same bits,
//! and one value computed alone gives the bits it gets inside a vector.

/// log₂ e.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 rounded to 15 significant bits (0.693145751953125), so that n·`LN2_HI` is exact for
/// every |n| ≤ 150.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
/// ln 2 − `LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5·2²³: adding it rounds a float below 2²² in magnitude to an integer (to nearest, ties to
/// even), which then sits in the low bits of the sum.
const ROUNDER: f32 = 12_582_912.0;
/// P(r) ≈ (e^r − 1 − r)/r², lowest degree first.
const P: [f32; 5] = [0.499_999_94, 0.166_665_09, 0.041_668_527, 0.008_370_136, 0.001_381_165_7];
/// Below this e^x is 0 in f32 (it rounds to 0 from about −103.97), above it +∞ (from 88.73).
/// Clamping keeps n, and so the exponent bits built from it, in range.
const LOWEST: f32 = -104.0;
const HIGHEST: f32 = 89.0;

/// e^x, within 1 ulp, NaN for NaN. See the module docs.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Comparisons, not `max`/`min`, so that a NaN fails both and goes through as NaN.
    let x = if x < LOWEST { LOWEST } else { x };
    let x = if x > HIGHEST { HIGHEST } else { x };
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = (((P[4] * r + P[3]) * r + P[2]) * r + P[1]) * r + P[0];
    let e_r = (p * (r * r) + r) + 1.0;
    let half = n_bits >> 1;
    let (scale_1, scale_2) = (power_of_two(half), power_of_two(n_bits - half));
    e_r * scale_1 * scale_2
}

/// 2ⁿ for −126 ≤ n ≤ 127, from its exponent bits.
#[inline(always)]
fn power_of_two(n: i32) -> f32 {
    f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// Replaces every value by its [`exp`], with the CPU's widest vectors.
pub(crate) fn exp_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: this CPU has AVX-512F.
            return unsafe { exp_avx512(values) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { exp_avx2(values) };
        }
    }
    exp_loop(values);
}

#[inline(always)]
fn exp_loop(values: &mut [f32]) {
    for v in values {
        *v = exp(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(values: &mut [f32]) {
    exp_loop(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_avx2(values: &mut [f32]) {
    exp_loop(values);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 from ±0.25 to where e^x is 0 or +∞, and every 61st one below 0.25 in
    /// magnitude (where e^x is within a few ulps of 1 + x): within 1 ulp.
    #[test]
    fn within_one_ulp_across_the_range() {
        let quarter = 0.25f32.to_bits();
        let ranges = [(0..=quarter, 61), (quarter..=105f32.to_bits(), 1)];
        crate::kernels::assert_within_ulps(exp, f64::exp, &ranges, 1.0);
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(1.0), std::f32::consts::E);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(-104.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(88.8), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(88.72283), 3.4027985e38); // the largest finite result
        assert_eq!(exp(-87.33655), 1.1754907e-38); // about the smallest normal float
        assert_eq!(exp(-103.9), 1.4e-45); // the smallest subnormal
    }

    /// Each vector loop this CPU runs gives the bits of one value at a time, at every length (so
    /// through the remainder loops too), and a NaN stays NaN among other values.
    #[test]
    fn vectors_give_the_bits_of_single_values() {
        type Loop = fn(&mut [f32]);
        let mut loops: Vec<(&str, Loop)> = vec![("dispatched", exp_in_place), ("plain", exp_loop)];
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY (both): called only where the CPU has the feature.
            let (avx512, avx2): (Loop, Loop) = (|x| unsafe { exp_avx512(x) }, |x| unsafe { exp_avx2(x) });
            match std::is_x86_feature_detected!("avx512f") {
                true => loops.push(("avx512", avx512)),
                false => crate::kernels::not_run("exp: the AVX-512 loop (this CPU has no AVX-512F)"),
            }
            match std::is_x86_feature_detected!("avx2") {
                true => loops.push(("avx2", avx2)),
                false => crate::kernels::not_run("exp: the AVX2 loop (this CPU has no AVX2)"),
            }
        }
        for (name, run) in loops {
            for n in [0, 1, 7, 16, 17, 33, 100, 257] {
                let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.734).sin() * 120.0 - 10.0).collect();
                let mut got = x.clone();
                run(&mut got);
                for (&x, &g) in x.iter().zip(&got) {
                    assert_eq!(g.to_bits(), exp(x).to_bits(), "{name}: n={n}, x={x}");
                }
            }
            let mut with_nan = vec![1.0, f32::NAN, -2.0];
            run(&mut with_nan);
            assert!(with_nan[1].is_nan() && with_nan[0] == exp(1.0) && with_nan[2] == exp(-2.0), "{name}");
        }
    }
}
