//! Forward values and gradients of every op equal PyTorch's float64 results (1e-10 relative).

use crate::cases::{cases, fixture, fixture_case_names};
use autograd::{Tape, Tensor, allclose, max_relative_error};
use std::collections::BTreeSet;

const RTOL: f64 = 1e-10;
const ATOL: f64 = 1e-12;

/// Where `a` differs most from PyTorch's `b` (a NaN or an infinity `b` lacks counts as worst).
fn describe(a: &Tensor<f64>, b: &Tensor<f64>) -> String {
    if a.shape() != b.shape() {
        return format!("shape {} vs PyTorch {}", a.shape(), b.shape());
    }
    match max_relative_error(a, b, 1e-300) {
        Some(worst) => format!("worst {worst}"),
        None => "empty".into(),
    }
}

#[test]
fn every_case_is_in_both_lists() {
    let rust: BTreeSet<String> = cases().iter().map(|(n, _)| n.to_string()).collect();
    let python = fixture_case_names();
    assert_eq!(rust.len(), cases().len(), "a case name is listed twice");
    let only_rust: Vec<_> = rust.difference(&python).collect();
    let only_python: Vec<_> = python.difference(&rust).collect();
    assert!(
        only_rust.is_empty() && only_python.is_empty(),
        "only in Rust: {only_rust:?}; only in the fixture: {only_python:?}"
    );
}

#[test]
fn forward_and_backward_match_pytorch() {
    let mut failures = Vec::new();
    for (name, f) in cases() {
        let fx = fixture(name);
        let tape = Tape::new();
        let xs: Vec<_> = fx.inputs.iter().map(|x| tape.var(x.clone())).collect();
        let out = f(&xs, &fx.aux);
        if !allclose(&out.value(), &fx.out, RTOL, ATOL) {
            failures.push(format!("{name}: forward: {}", describe(&out.value(), &fx.out)));
            continue;
        }
        let loss = (out * tape.constant(fx.up.clone())).sum_all();
        let grads = loss.backward();
        for (i, (x, want)) in xs.iter().zip(&fx.grads).enumerate() {
            let got = &grads[*x];
            if !allclose(got, want, RTOL, ATOL) {
                failures.push(format!("{name}: gradient of input {i}: {}", describe(got, want)));
            }
        }
    }
    assert!(failures.is_empty(), "{} cases differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
}

/// `backward()` (fused kernels where an op has one) and `backward_with_graph()` (every rule
/// recorded from its `Math` form) give the same gradients.
#[test]
fn fused_and_recorded_backward_agree() {
    let mut failures = Vec::new();
    for (name, f) in cases() {
        let fx = fixture(name);
        let tape = Tape::new();
        let xs: Vec<_> = fx.inputs.iter().map(|x| tape.var(x.clone())).collect();
        let loss = (f(&xs, &fx.aux) * tape.constant(fx.up.clone())).sum_all();
        let recorded = loss.backward_with_graph();
        let recorded: Vec<Tensor<f64>> = xs.iter().map(|&x| recorded[x].value()).collect();
        let fast = loss.backward();
        for (i, (x, want)) in xs.iter().zip(&recorded).enumerate() {
            if !allclose(&fast[*x], want, 1e-12, 1e-14) {
                failures.push(format!("{name}: gradient of input {i}: {}", describe(&fast[*x], want)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
