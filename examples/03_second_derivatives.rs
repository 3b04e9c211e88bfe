//! 03: second derivatives — differentiate a gradient, and multiply a Hessian by a vector.
//!
//! Run it with `cargo run --release --example 03_second_derivatives`.
//!
//! `backward()` computes gradients as plain tensors: fast, but the tape cannot see how they were
//! made. `backward_with_graph()` (PyTorch's `create_graph=True`) runs the same gradient rules on
//! the tape itself, so each gradient is a `Var` like any other and can be differentiated again.

use autograd::rand::SeedableRng;
use autograd::rand::rngs::StdRng;
use autograd::{Tape, Tensor, Var, allclose};

fn main() {
    // ---------------------------------------------------------------------------------------
    // Part 1: d²/dx² x³ = 6x
    // ---------------------------------------------------------------------------------------
    // ANCHOR: grad_of_grad
    let tape = Tape::<f64>::new();
    let x = tape.named_var("x", Tensor::from_vec(vec![-1.0, 0.5, 2.0], [3]));
    // Written as two multiplications so the rules of mul (and x's three uses) are exercised.
    let y = x * x * x; // (3,)
    let total = y.sum_all(); // () — backward starts from a single number
    let nodes_after_forward = tape.len();

    // First derivative, recorded: dy/dx = 3x², as a Var on the same tape.
    let dy_dx: Var<'_, f64> = total.backward_with_graph()[x];
    assert_eq!(dy_dx.value().to_vec(), vec![3.0, 0.75, 12.0]); // 3x² at x = -1, 0.5, 2
    // The backward pass is now part of the tape: the mul rule's products and the sums of x's
    // gradient contributions were recorded as ordinary nodes.
    assert!(tape.len() > nodes_after_forward);

    // Second derivative: differentiate dy/dx like any other value. Each entry of dy/dx depends
    // only on the same entry of x, so the gradient of their sum is the diagonal we want.
    let d2y_dx2 = dy_dx.sum_all().backward_with_graph()[x];
    assert_eq!(d2y_dx2.value().to_vec(), vec![-6.0, 3.0, 12.0]); // 6x

    // And once more, with a plain backward at the end since we stop here: d³/dx³ x³ = 6. A
    // plain backward frees the intermediate values it used, so read the ones to print first.
    let (first, second) = (dy_dx.value(), d2y_dx2.value());
    let d3y_dx3 = d2y_dx2.sum_all().backward()[x].clone();
    assert_eq!(d3y_dx3.to_vec(), vec![6.0, 6.0, 6.0]);
    // ANCHOR_END: grad_of_grad
    println!("x       = {}", x.value());
    println!("dy/dx   = {first}   (3x²)");
    println!("d²y/dx² = {second}   (6x)");
    println!("d³y/dx³ = {}   (6)", d3y_dx3);
    println!(
        "The forward pass and its sum took {nodes_after_forward} nodes; two recorded backward passes made it {}.",
        tape.len()
    );
    println!("The first nodes the first recorded backward pass added:");
    for line in tape.dump().lines().skip(nodes_after_forward).take(8) {
        println!("  {line}");
    }

    // ---------------------------------------------------------------------------------------
    // Part 2: a Hessian-vector product for logistic regression
    // ---------------------------------------------------------------------------------------
    // The Hessian H of a loss L(w) is the matrix of second derivatives. For n weights it has n²
    // entries, too many to build for a real model, but the product H·v for one direction v
    // costs only about two gradients: H·v = ∇_w (∇_w L · v), because v does not depend on w.
    let mut rng = StdRng::seed_from_u64(3);
    let (n, d) = (32, 4); // 32 examples with 4 features
    let features = Tensor::<f64>::randn([n, d], 0.0, 1.0, &mut rng); // (n, d)
    let labels = Tensor::<f64>::from_fn([n, 1], |i| (i % 2) as f64); // (n, 1), 0 or 1
    let w0 = Tensor::<f64>::randn([d, 1], 0.0, 0.5, &mut rng); // (d, 1)
    let direction = Tensor::<f64>::randn([d, 1], 0.0, 1.0, &mut rng); // (d, 1): the v in H·v

    // ANCHOR: hvp
    let tape = Tape::<f64>::new();
    let w = tape.named_var("w", w0.clone()); // (d, 1)
    let loss = logistic_loss(&tape, &features, &labels, w); // ()
    // ∇L as a recorded value, then the scalar ∇L · v, then its gradient: H·v.
    let grad = loss.backward_with_graph()[w]; // (d, 1)
    let v = tape.constant(direction.clone()); // (d, 1)
    let grad_dot_v = (grad * v).sum_all(); // ()
    let hv = grad_dot_v.backward()[w].clone(); // (d, 1)
    // ANCHOR_END: hvp

    // ANCHOR: hvp_check
    // By hand: with p = σ(Xw), ∇L = Xᵀ(p − t)/n, and H = Xᵀ diag(p(1 − p)) X / n, so
    // H·v = Xᵀ (p(1 − p) ⊙ Xv) / n. Computed here with tensors alone, no tape.
    let p = features.matmul(&w0).sigmoid(); // (n, 1)
    let slope = &p * &(&Tensor::ones([n, 1]) - &p); // p(1 − p), (n, 1)
    let xv = features.matmul(&direction); // (n, 1)
    let hv_by_hand = features.t().matmul(&(&slope * &xv)).mul_scalar(1.0 / n as f64); // (d, 1)
    assert!(allclose(&hv, &hv_by_hand, 1e-12, 1e-14), "{hv} vs {hv_by_hand}");

    // And what H·v means: how fast the gradient changes as w moves along v. A central
    // difference of two plain gradients estimates the same vector.
    let eps = 1e-5;
    let gradient_at = |w_value: Tensor<f64>| {
        let tape = Tape::new();
        let w = tape.var(w_value);
        logistic_loss(&tape, &features, &labels, w).backward()[w].clone()
    };
    let plus = gradient_at(&w0 + &direction.mul_scalar(eps));
    let minus = gradient_at(&w0 - &direction.mul_scalar(eps));
    let hv_numeric = (&plus - &minus).mul_scalar(1.0 / (2.0 * eps));
    assert!(allclose(&hv, &hv_numeric, 1e-6, 1e-9), "{hv} vs {hv_numeric}");
    // ANCHOR_END: hvp_check
    println!("\nlogistic regression, {n} examples, {d} weights: loss = {:.6}", loss.value().item());
    println!("H·v from backward_with_graph =\n{hv}");
    println!("H·v by hand =\n{hv_by_hand}");
    println!("H·v by finite differences =\n{hv_numeric}");
    println!("03_second_derivatives: all checks passed");
}

// ANCHOR: logistic_loss
/// Mean binary cross-entropy of a logistic regression: p = σ(Xw),
/// L = −mean(t·ln p + (1 − t)·ln(1 − p)).
fn logistic_loss<'t>(
    tape: &'t Tape<f64>,
    features: &Tensor<f64>,
    labels: &Tensor<f64>,
    w: Var<'t, f64>,
) -> Var<'t, f64> {
    let x = tape.constant(features.clone()); // (n, d)
    let t = tape.constant(labels.clone()); // (n, 1)
    let p = x.matmul(w).sigmoid(); // (n, 1)
    let per_example = t * p.log() + (1.0 - t) * (1.0 - p).log(); // (n, 1)
    -per_example.mean_all() // ()
}
// ANCHOR_END: logistic_loss
