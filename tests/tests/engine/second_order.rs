//! Second derivatives through `backward_with_graph`: gradgradcheck on the ops that models
//! differentiate twice, and d²/dx² Σx³ = 6x to the last bit or two.

use crate::cases::cases;
use crate::finite_differences::check_case;
use autograd::{Tape, Tensor};

const TWICE_DIFFERENTIATED: &[&str] = &[
    "add_broadcast",
    "mul_broadcast",
    "mul_self",
    "div_broadcast",
    "exp",
    "log",
    "tanh",
    "sigmoid",
    "gelu",
    "matmul",
    "matmul_batched",
    "matmul_bt",
    "matmul_at_bt",
    "sum_axes02_keepdim",
    "mean_last",
    "softmax_last",
    "softmax_middle",
    "log_softmax_last",
    "layer_norm_affine",
    "layer_norm_two_dims",
    "cross_entropy_ignore_smoothing",
    "linear",
    "linear_relu",
    "layer_norm_weight_only",
    "attention_weights",
    "attention_weights_masked",
    "attend",
    "abs",
    "clamp",
    "maximum",
    "minimum_broadcast",
    "stack",
    "t",
];

#[test]
fn gradgradcheck_passes() {
    let all = cases();
    let failures: Vec<String> = TWICE_DIFFERENTIATED
        .iter()
        .filter_map(|name| {
            let (_, f) = all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no case {name}"));
            check_case(name, *f, true).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn second_derivative_of_cube_is_six_x() {
    // d/dx Σx³ = 3x², d²/dx² Σx³ = 6x
    let xs: Vec<f64> = vec![-2.5, -1.0, -0.1, 0.0, 0.3, 1.0, 1.7, 3.25, 10.0];
    let tape = Tape::new();
    let x = tape.var(Tensor::from_vec(xs.clone(), [xs.len()]));
    let dy = x.powf(3.0).sum_all().backward_with_graph()[x];
    let d2y = dy.sum_all().backward()[x].to_vec();
    for (got, x) in d2y.iter().zip(&xs) {
        let want = 6.0 * x;
        let ulps = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
        assert!(ulps <= 2 || (got - want).abs() < 1e-300, "x = {x}: {got} vs {want} ({ulps} ulps)");
    }
}

#[test]
fn hessian_vector_product_of_a_quadratic() {
    // f(x) = ½ xᵀAx with symmetric A: ∇f = Ax, and the Hessian-vector product Hv = Av.
    let a: Tensor<f64> = Tensor::from_vec(vec![2.0, 1.0, 0.0, 1.0, 3.0, -1.0, 0.0, -1.0, 4.0], [3, 3]);
    let v = Tensor::from_vec(vec![1.0, -2.0, 0.5], [3, 1]);
    let tape = Tape::new();
    let x = tape.var(Tensor::from_vec(vec![0.3, -0.7, 1.1], [3, 1]));
    let am = tape.constant(a.clone());
    let f = (x.matmul_t(am.matmul(x), true, false) * 0.5).sum_all();
    let g = f.backward_with_graph()[x];
    let hv = (g * tape.constant(v.clone())).sum_all().backward()[x].clone();
    assert!(autograd::allclose(&hv, &a.matmul(&v), 1e-15, 1e-15), "{hv}");
}
