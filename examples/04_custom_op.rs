//! 04: a custom op — softplus, with its gradient rule written once, checked two ways.
//!
//! Run it with `cargo run --release --example 04_custom_op`.
//!
//! An op is two things: a forward kernel that computes a value from tensors, and a
//! vector-Jacobian product (VJP) that turns the gradient of the output into gradients of the
//! inputs. The VJP is written against the `Math` trait, which tensors implement by computing
//! and tape values implement by recording; so one rule serves both `backward()` and
//! `backward_with_graph()`, and second derivatives of the new op come for free.

use autograd::{Element, GradcheckOptions, InputGrads, Math, Op, Tape, Tensor, Var, Vjp, allclose, gradcheck};
use autograd::{gradgradcheck, rand::SeedableRng, rand::rngs::StdRng};

// ANCHOR: op
/// softplus_β(x) = ln(1 + e^(βx)) / β: a smooth relu, like PyTorch's `F.softplus(x, beta)`.
struct Softplus {
    beta: f64,
}

impl<T: Element> Op<T> for Softplus {
    // The name and attributes are what the tape dump and the graph pictures show.
    fn name(&self) -> &'static str {
        "softplus"
    }
    fn attributes(&self) -> String {
        format!("beta={}", self.beta)
    }

    // d/dx softplus_β(x) = e^(βx) / (1 + e^(βx)) = σ(βx). Since e^(βy) = 1 + e^(βx) for the
    // output y, that is also e^(β(x − y)): one exp of values we already have, and no overflow.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let x = &v.inputs[0];
        let slope = x.sub(v.output).mul_scalar(self.beta).exp();
        // The chain rule: scale the incoming gradient by the local slope. One input, one entry.
        vec![Some(v.grad.mul(&slope))]
    }
}
// ANCHOR_END: op

// ANCHOR: forward
/// The forward kernel, on plain tensors: max(βx, 0) + ln(1 + e^(−|βx|)), all divided by β,
/// which never overflows (the textbook ln(1 + e^(βx)) does for βx above about 88 in f32).
fn softplus_tensor<T: Element>(x: &Tensor<T>, beta: f64) -> Tensor<T> {
    x.map(move |x| {
        let bx = beta * x.to_f64();
        T::from_f64((bx.max(0.0) + (-bx.abs()).exp().ln_1p()) / beta)
    })
}

/// softplus on the tape: compute the value, then record the op with its input.
#[track_caller] // so the tape remembers the caller's line, not this one
fn softplus<'t, T: Element>(x: Var<'t, T>, beta: f64) -> Var<'t, T> {
    let value = softplus_tensor(&x.value(), beta);
    x.apply(Softplus { beta }, &[x], value)
}
// ANCHOR_END: forward

// ANCHOR: wrong_op
/// The same function with the most common mistake in a VJP: the rule returns the local slope
/// but forgets to multiply by the incoming gradient.
struct ForgetfulSoftplus;

impl Op<f64> for ForgetfulSoftplus {
    fn name(&self) -> &'static str {
        "forgetful_softplus"
    }
    fn vjp<M: Math<f64>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.inputs[0].sub(v.output).exp())] // should be v.grad.mul(&…)
    }
}

/// The forgetful op as a function gradcheck can take. A closure works too when written inline
/// in the call, where Rust sees the lifetimes gradcheck asks for, but not when stored in a `let`
/// first; a function item spells the lifetimes out.
fn forgetful_softplus<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
    let value = softplus_tensor(&v[0].value(), 1.0);
    v[0].apply(ForgetfulSoftplus, &[v[0]], value)
}
// ANCHOR_END: wrong_op

fn main() {
    // ANCHOR: use
    let tape = Tape::<f64>::new();
    let x = tape.named_var("x", Tensor::from_vec(vec![-3.0, -0.5, 0.0, 0.5, 3.0], [5]));
    let y = softplus(x, 2.0); // (5,), recorded as one node
    let y_value = y.value(); // read before backward, which frees intermediate values
    let grads = y.sum_all().backward();
    // By hand: d/dx softplus_2(x) = σ(2x) = 1 / (1 + e^(−2x)); at x = 0 exactly 1/2.
    let expected = x.value().map(|x| 1.0 / (1.0 + (-2.0 * x).exp()));
    assert!(allclose(&grads[x], &expected, 1e-14, 0.0));
    assert_eq!(grads[x].at(&[2]), 0.5);
    // ANCHOR_END: use
    print!("The tape:\n{}", tape.dump());
    println!("softplus_2(x) = {y_value}");
    println!("d/dx          = {}", grads[x]);

    // ANCHOR: composition
    // The same function composed from built-in primitives must give the same value and gradient.
    let composed = ((x * 2.0).exp() + 1.0).log() / 2.0;
    assert!(allclose(&composed.value(), &y_value, 1e-14, 1e-15));
    assert!(allclose(&composed.sum_all().backward()[x], &grads[x], 1e-14, 1e-15));
    // ANCHOR_END: composition

    // ANCHOR: gradcheck
    // gradcheck compares backward() with central differences (f(x + h) − f(x − h)) / 2h at
    // random points, in f64. gradgradcheck does the same for the gradient of the gradient,
    // which runs the rule on the recorded path (Var) instead of the fast one (Tensor).
    let mut rng = StdRng::seed_from_u64(4);
    let inputs = [Tensor::<f64>::randn([3, 4], 0.0, 2.0, &mut rng)]; // one input, 12 random points
    let options = GradcheckOptions::default();
    for beta in [0.5, 1.0, 3.0] {
        gradcheck(|v| softplus(v[0], beta), &inputs, options).expect("first derivative");
        gradgradcheck(|v| softplus(v[0], beta), &inputs, options).expect("second derivative");
    }
    println!("gradcheck and gradgradcheck pass for beta = 0.5, 1 and 3");
    // ANCHOR_END: gradcheck

    // ANCHOR: gradcheck_catches
    // The forgetful rule is right whenever the incoming gradient happens to be all ones, which
    // is why gradcheck contracts the output with pseudo-random weights first: now it shows.
    let err = gradcheck(forgetful_softplus, &inputs, options).expect_err("the wrong rule must be caught");
    println!("the forgetful rule is caught: {err}");
    // ANCHOR_END: gradcheck_catches

    // The op is generic over the element type, so it works in an f32 model too.
    let tape = Tape::<f32>::new();
    let h = tape.var(Tensor::from_vec(vec![0.0f32, 100.0], [2]));
    let g = softplus(h, 1.0).sum_all().backward();
    assert_eq!(g[h].to_vec(), vec![0.5, 1.0]); // σ(0) = 1/2, σ(100) = 1 in f32, and no overflow
    println!("04_custom_op: all checks passed");
}
