//! The engine explains its failures: the finite-value check names the op and the source line
//! of the first NaN or infinity, forward and backward; the coverage report names parameters that
//! got no useful gradient; the memory report says what the tape holds. Reports are snapshots.

use crate::cases::{cases, fixture};
use autograd::{GradientProblem, InputGrads, Math, Op, ParamStore, Phase, Tape, Tensor, Var, Vjp, catch_nonfinite};

/// `file:line` of the first line of this file that contains `needle`: where an op was recorded.
fn line_of(needle: &str) -> String {
    let source = include_str!("diagnostics.rs");
    let line = source.lines().position(|l| l.contains(needle)).expect("the needle is in this file") + 1;
    format!("tests/tests/engine/diagnostics.rs:{line}")
}

/// A test op: the identity, but the gradient it passes back holds a NaN at index 1 when
/// `backward` is set (its forward value is made by `poison`).
struct Poison {
    backward: bool,
}

impl Op<f64> for Poison {
    fn name(&self) -> &'static str {
        "poison"
    }
    fn vjp<M: Math<f64>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let mut factor = Tensor::ones(v.grad.shape());
        if self.backward {
            factor.data_mut()[1] = f64::NAN;
        }
        vec![Some(v.grad.mul_const(factor))]
    }
}

/// `x` through [`Poison`]; with `forward`, its output holds a NaN at index 1.
#[track_caller]
fn poison<'t>(x: Var<'t, f64>, forward: bool, backward: bool) -> Var<'t, f64> {
    let mut value = x.value();
    if forward {
        value.data_mut()[1] = f64::NAN;
    }
    x.apply(Poison { backward }, &[x], value)
}

fn checked_tape() -> Tape<f64> {
    let tape = Tape::new();
    tape.set_check_finite(true);
    tape
}

fn ramp(dims: &[usize], scale: f64) -> Tensor<f64> {
    let n: usize = dims.iter().product();
    Tensor::from_fn(dims, |i| ((i * 37 % 17) as f64 - 8.0) * scale / n as f64)
}

#[test]
fn a_test_op_that_outputs_nan_is_named_with_its_line() {
    let tape = checked_tape();
    let x = tape.var(ramp(&[2, 3], 1.0));
    let h = x.tanh();
    let report = catch_nonfinite(|| poison(h, true, false) * 2.0).unwrap_err();
    assert_eq!((report.phase, report.op.as_str(), report.node), (Phase::Forward, "poison", 2));
    assert_eq!(report.location, line_of("poison(h, true, false) * 2.0"));
    assert_eq!((report.index, report.count, report.inputs_finite.as_slice()), (1, 1, &[true][..]));
    insta::assert_snapshot!("nan_forward_test_op", report.to_string());
}

#[test]
fn a_test_op_whose_rule_makes_nan_is_named_in_backward() {
    let tape = checked_tape();
    let x = tape.var(ramp(&[2, 3], 1.0));
    let h = poison(x.exp(), false, true);
    let loss = (h * h).sum_all();
    let report = catch_nonfinite(|| drop(loss.backward())).unwrap_err();
    let location = line_of("let h = poison(x.exp(), false, true);");
    assert_eq!((report.phase, report.op.as_str(), &report.location), (Phase::Backward, "poison", &location));
    let g = report.gradient.expect("a gradient report");
    assert!(g.upstream_finite, "the rule itself made the NaN");
    assert_eq!((g.input, g.node), (0, 1));
    insta::assert_snapshot!("nan_backward_test_op", report.to_string());
}

#[test]
fn the_log_of_a_negative_number_in_a_small_model_is_named() {
    // ANCHOR: nan_forward
    let tape = Tape::<f64>::new();
    tape.set_check_finite(true); // or run the program with AUTOGRAD_CHECK=1
    let x = tape.constant(ramp(&[4, 3], 1.0));
    let w = tape.var(ramp(&[3, 2], 2.0));
    let b = tape.var(Tensor::from_vec(vec![0.1, -2.0], [2]));
    let h = x.matmul(w) + b; // (4, 2), and some entries are negative
    let report = catch_nonfinite(|| h.log().sum_all()).unwrap_err();
    // ANCHOR_END: nan_forward
    let location = line_of("catch_nonfinite(|| h.log().sum_all())");
    assert_eq!((report.phase, report.op.as_str(), &report.location), (Phase::Forward, "log", &location));
    assert!(report.value.is_nan() && report.inputs_finite == [true], "{report}");
    insta::assert_snapshot!("nan_forward_log", report.to_string());
}

#[test]
fn an_infinite_gradient_of_a_finite_value_is_named() {
    // ANCHOR: nan_backward
    // √x at 0 is 0, but its derivative 1/(2√x) is infinite: the forward pass is finite.
    let tape = Tape::<f64>::new();
    tape.set_check_finite(true);
    let x = tape.var(Tensor::from_vec(vec![4.0, 0.0, 1.0], [3]));
    let y = x.sqrt();
    let loss = (y * 3.0).sum_all();
    let report = catch_nonfinite(|| drop(loss.backward())).unwrap_err();
    // ANCHOR_END: nan_backward
    let location = line_of("let y = x.sqrt();");
    assert_eq!((report.phase, report.op.as_str(), &report.location), (Phase::Backward, "sqrt", &location));
    assert_eq!((report.index, report.value), (1, f64::INFINITY));
    insta::assert_snapshot!("nan_backward_sqrt", report.to_string());
    // The recorded backward pass reports the same rule.
    let tape = checked_tape();
    let x = tape.var(Tensor::from_vec(vec![4.0, 0.0, 1.0], [3]));
    let root = x.sqrt();
    let report = catch_nonfinite(|| drop((root * 3.0).sum_all().backward_with_graph())).unwrap_err();
    let location = line_of("let root = x.sqrt();");
    assert_eq!((report.phase, report.op.as_str(), &report.location), (Phase::Backward, "sqrt", &location));
}

/// Two finite gradients of a value used twice can overflow when summed: the sum is checked
/// too, and the report says so, naming the value.
#[test]
fn an_overflowing_sum_of_gradients_is_named() {
    let tape = checked_tape();
    let x = tape.named_var("x", Tensor::from_vec(vec![1e-300, 2e-300], [2]));
    let loss = (x * 1e308).sum_all() + (x * 1e308).sum_all();
    let report = catch_nonfinite(|| drop(loss.backward())).unwrap_err();
    assert_eq!((report.phase, report.node, report.op.as_str()), (Phase::Accumulation, 0, "var \"x\""));
    assert_eq!(report.value, f64::INFINITY);
    assert!(report.to_string().contains("their sum overflowed"), "{report}");
}

/// A rule that panics inside a caught unwind does not leave the check switched off.
#[test]
fn the_check_survives_a_rule_that_panics() {
    let tape = checked_tape();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]));
    let z = x.exp().sum_all();
    drop(z.backward()); // frees exp's value
    // exp's rule reads its value, so a second pass panics inside the rule.
    let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(z.backward_with_graph())));
    assert!(second.is_err());
    let report = catch_nonfinite(|| (x * 0.0).log()).unwrap_err();
    assert_eq!((report.phase, report.op.as_str()), (Phase::Forward, "log"));
}

#[test]
fn without_a_catch_the_report_is_the_panic_message() {
    let result = std::panic::catch_unwind(|| {
        let tape = checked_tape();
        let x = tape.var(Tensor::from_vec(vec![-1.0], [1]));
        x.log().value()
    });
    let payload = result.expect_err("the check stops the computation");
    let message = payload.downcast_ref::<String>().expect("a message");
    assert!(message.starts_with("non-finite value in the forward pass: log (%1) at tests/"), "{message}");
}

#[test]
fn without_the_check_nothing_is_stopped() {
    let tape = Tape::<f64>::new();
    assert!(!tape.checks_finite() || std::env::var("AUTOGRAD_CHECK").is_ok_and(|v| v == "1"));
    tape.set_check_finite(false);
    let x = tape.var(Tensor::from_vec(vec![-1.0], [1]));
    assert!(catch_nonfinite(|| x.log()).unwrap().value().item().is_nan());
}

/// Every op of the parity suite, fed a NaN through its first input, is stopped by the check:
/// the report names an op recorded in the case (in cases.rs) with an input that was not finite.
/// An op that drops the NaN (relu of NaN is 0, a mask may cover it) must then give a finite
/// output.
#[test]
fn every_op_fed_a_nan_is_named() {
    let mut failures = Vec::new();
    for (name, f) in cases() {
        let fx = fixture(name);
        if fx.inputs[0].numel() == 0 {
            continue;
        }
        let tape = Tape::new();
        let mut inputs = fx.inputs.clone();
        inputs[0].data_mut()[0] = f64::NAN;
        let xs: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.var(x.clone())).collect();
        tape.set_check_finite(true);
        match catch_nonfinite(|| f(&xs, &fx.aux).value()) {
            Ok(out) if out.data().iter().all(|v| v.is_finite()) => {}
            Ok(_) => failures.push(format!("{name}: a non-finite output and no report")),
            Err(report) => {
                let named = report.phase == Phase::Forward
                    && report.location.starts_with("tests/tests/engine/cases.rs:")
                    && report.inputs_finite.contains(&false);
                if !named {
                    failures.push(format!("{name}: {report}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ANCHOR: coverage_model
/// A two-layer MLP on parameters, with three broken parameters: one never used, one used only
/// through `detach()`, and one whose gradient is exactly zero.
fn mlp_with_gaps(store: &mut ParamStore<f64>) {
    let mut l1 = store.prefix("layers.0");
    l1.param("weight", ramp(&[3, 5], 2.0));
    l1.param("bias", ramp(&[5], 0.5));
    let mut l2 = store.prefix("layers.1");
    l2.param("weight", ramp(&[5, 2], 2.0));
    l2.param("bias", ramp(&[2], 0.5));
    store.prefix("unused").param("weight", ramp(&[4], 1.0));
    store.prefix("frozen").param("scale", ramp(&[2], 1.0));
    store.prefix("gate").param("bias", ramp(&[2], 1.0));
}

fn mlp_loss<'t>(tape: &'t Tape<f64>, store: &ParamStore<f64>) -> Var<'t, f64> {
    let p = |name: &str| tape.param(store.get(name).expect("a parameter"));
    let x = tape.named_constant("x", ramp(&[4, 3], 1.0));
    let h = (x.matmul(p("layers.0.weight")) + p("layers.0.bias")).relu();
    let logits = h.matmul(p("layers.1.weight")) + p("layers.1.bias");
    let logits = logits * p("frozen.scale").detach() + p("gate.bias") * 0.0;
    logits.cross_entropy(&[0, 1, 1, 0], Default::default())
}
// ANCHOR_END: coverage_model

#[test]
fn coverage_of_a_small_mlp() {
    // ANCHOR: coverage
    let mut store = ParamStore::new();
    mlp_with_gaps(&mut store);
    let tape = Tape::new();
    let grads = mlp_loss(&tape, &store).backward();
    let report = grads.coverage(&store);
    // ANCHOR_END: coverage
    let problems: Vec<(&str, GradientProblem)> = report.problems.iter().map(|p| (p.name.as_str(), p.problem)).collect();
    assert_eq!(
        problems,
        [
            ("unused.weight", GradientProblem::NotOnTape),
            ("frozen.scale", GradientProblem::NotReached),
            ("gate.bias", GradientProblem::AllZero)
        ]
    );
    insta::assert_snapshot!("coverage_mlp", report.to_string());
}

#[test]
fn coverage_of_one_attention_head() {
    let mut store = ParamStore::new();
    for name in ["q_proj", "k_proj", "v_proj"] {
        store.prefix(name).param("weight", ramp(&[4, 4], 1.0));
    }
    store.prefix("out").param("temperature", Tensor::from_vec(vec![1.0, 0.0], [2]));
    let tape = Tape::new();
    let p = |name: &str| tape.param(store.get(name).expect("a parameter"));
    let x = tape.constant(ramp(&[3, 4], 1.0));
    let q = x.matmul(p("q_proj.weight"));
    let k = x.matmul(p("k_proj.weight")).detach(); // keys deliberately cut off
    let v = x.matmul(p("v_proj.weight"));
    let attended = (q.matmul_t(k, false, true) * 0.5).softmax(-1).matmul(v);
    // √t has an infinite derivative at t = 0.
    let grads = (attended.sum_all() + p("out.temperature").sqrt().sum_all()).backward();
    let report = grads.coverage(&store);
    assert_eq!(report.problems.len(), 2, "{report}");
    assert_eq!(report.problems[0].problem, GradientProblem::NotReached);
    assert!(matches!(report.problems[1].problem, GradientProblem::NonFinite { .. }));
    insta::assert_snapshot!("coverage_attention", report.to_string());
    // A complete report says so.
    let mut one = ParamStore::new();
    let w = one.insert("w".into(), ramp(&[4], 1.0));
    let tape = Tape::new();
    let grads = (tape.param(&w) * tape.param(&w)).sum_all().backward();
    assert_eq!(grads.coverage(&one).to_string(), "all 1 parameters got a finite, non-zero gradient");
}

#[test]
fn memory_of_a_small_mlp() {
    // ANCHOR: memory
    let mut store = ParamStore::new();
    mlp_with_gaps(&mut store);
    let tape = Tape::new();
    tape.set_track_memory(true); // to measure the peak during backward
    let loss = mlp_loss(&tape, &store);
    let forward = tape.memory(); // what the forward pass left on the tape
    let _grads = loss.backward();
    let after = tape.memory(); // what backward did not free, and its peak
    // ANCHOR_END: memory
    assert!(after.bytes < forward.bytes && after.freed > 0);
    let peak = after.backward_peak.expect("tracked");
    assert!(peak >= forward.bytes, "the peak includes every forward value: {peak} < {}", forward.bytes);
    insta::assert_snapshot!("memory_mlp", format!("forward: {forward}\n\nafter backward: {after}"));
}

#[test]
fn memory_of_one_attention_head() {
    let tape = Tape::<f64>::new();
    tape.set_track_memory(true);
    let x = tape.var(ramp(&[16, 8], 1.0));
    let w = tape.var(ramp(&[8, 8], 1.0));
    let q = x.matmul(w); // (16, 8)
    let k = q.reshape([8, 16]).reshape([16, 8]); // shares q's buffer: counted once
    let scores = q.matmul_t(k, false, true) * 0.25; // (16, 16)
    let out = scores.softmax(-1).matmul(x).sum_all();
    let forward = tape.memory();
    let reshapes = forward.by_op.iter().find(|l| l.name == "reshape").expect("two reshapes");
    assert_eq!((reshapes.values, reshapes.bytes), (2, 0));
    out.backward();
    insta::assert_snapshot!("memory_attention", format!("forward: {forward}\n\nafter backward: {}", tape.memory()));
}
