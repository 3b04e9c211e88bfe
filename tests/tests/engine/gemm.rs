//! The public matmul swept like a GEMM library: sizes 0, 1, odd, prime and 257; every
//! transpose; batched and broadcast; checked against a float64 reference with a bound that
//! scales with k, reporting the size, the first bad index and the largest relative error.

use autograd::{Tensor, max_relative_error};
use rand::SeedableRng;

/// Reference product in f64 of op(a)·op(b) for 2-D operands.
fn reference(a: &Tensor<f32>, b: &Tensor<f32>, ta: bool, tb: bool) -> (Vec<f64>, Vec<f64>) {
    let (ar, ac) = (a.dims()[0], a.dims()[1]);
    let (br, bc) = (b.dims()[0], b.dims()[1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let at = |i: usize, p: usize| a.data()[if ta { p * ac + i } else { i * ac + p }] as f64;
    let bt = |p: usize, j: usize| b.data()[if tb { j * bc + p } else { p * bc + j }] as f64;
    let mut out = vec![0.0; m * n];
    let mut bound = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                out[i * n + j] += at(i, p) * bt(p, j);
                bound[i * n + j] += (at(i, p) * bt(p, j)).abs();
            }
        }
    }
    (out, bound)
}

fn check(m: usize, k: usize, n: usize, ta: bool, tb: bool, rng: &mut rand::rngs::StdRng) {
    let a = Tensor::<f32>::randn(if ta { [k, m] } else { [m, k] }, 0.0, 1.0, rng);
    let b = Tensor::<f32>::randn(if tb { [n, k] } else { [k, n] }, 0.0, 1.0, rng);
    let c = a.matmul_t(&b, ta, tb);
    assert_eq!(c.dims(), &[m, n], "m={m} k={k} n={n} ta={ta} tb={tb}");
    let (want, bound) = reference(&a, &b, ta, tb);
    if let Some(i) = first_bad(c.data(), &want, &bound, k) {
        let got = Tensor::from_vec(c.data().iter().map(|&v| v as f64).collect(), [m * n]);
        let worst = max_relative_error(&got, &Tensor::from_vec(want.clone(), [m * n]), 1e-30).expect("non-empty");
        panic!(
            "matmul m={m} k={k} n={n} ta={ta} tb={tb}: first bad index {i} (row {}, col {}): {} vs {}; \
             largest relative error at {worst}",
            i / n.max(1),
            i % n.max(1),
            c.data()[i],
            want[i]
        );
    }
}

/// The first element outside f32's accumulation error, at most about k·ε·Σ|aᵢbᵢ|; NaN and ±∞
/// are always outside it.
fn first_bad(got: &[f32], want: &[f64], bound: &[f64], k: usize) -> Option<usize> {
    let tol = |i: usize| 2.0 * (k as f64 + 1.0) * f32::EPSILON as f64 * bound[i] + 1e-30;
    // NaN is never within the tolerance, and an infinite `got` makes the error infinite.
    got.iter().enumerate().position(|(i, &v)| {
        let err = (v as f64 - want[i]).abs();
        err.is_nan() || err > tol(i)
    })
}

#[test]
fn the_check_fails_on_nan_and_infinity() {
    let want = [1.0, -2.0, 3.0];
    let bound = [1.0, 2.0, 3.0];
    assert_eq!(first_bad(&[1.0, -2.0, 3.0], &want, &bound, 4), None);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for at in 0..3 {
            let mut got = [1.0f32, -2.0, 3.0];
            got[at] = bad;
            assert_eq!(first_bad(&got, &want, &bound, 4), Some(at), "{bad} at {at}");
        }
    }
}

#[test]
fn sizes_and_transposes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let sizes = [0, 1, 2, 3, 7, 8, 13, 16, 31, 64, 67];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &[0, 1, 5, 17, 64] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    check(m, k, n, ta, tb, &mut rng);
                }
            }
        }
    }
}

#[test]
fn large_and_prime_sizes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    for (m, k, n) in [(257, 257, 257), (127, 509, 131), (257, 64, 600), (600, 33, 257), (1, 1000, 1), (1000, 1, 999)] {
        for (ta, tb) in [(false, false), (true, true), (false, true)] {
            check(m, k, n, ta, tb, &mut rng);
        }
    }
}

#[test]
fn batched_equals_one_product_per_matrix() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let a = Tensor::<f32>::randn([2, 3, 5, 7], 0.0, 1.0, &mut rng);
    let b = Tensor::<f32>::randn([3, 7, 4], 0.0, 1.0, &mut rng);
    let c = a.matmul(&b);
    assert_eq!(c.dims(), &[2, 3, 5, 4]);
    for i in 0..2 {
        for j in 0..3 {
            let ai = a.narrow(0, i, 1).narrow(1, j, 1).reshape([5, 7]);
            let bj = b.narrow(0, j, 1).reshape([7, 4]);
            let cij = c.narrow(0, i, 1).narrow(1, j, 1).reshape([5, 4]);
            assert!(cij.bit_eq(&ai.matmul(&bj)), "batch ({i}, {j})");
        }
    }
}
