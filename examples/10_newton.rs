//! 10: second-order optimization — Newton's method without ever building the Hessian: each
//! Newton step solves H·d = −∇L by conjugate gradients, where every H·v is one backward pass
//! through the recorded gradient. It converges in a handful of steps where gradient descent
//! needs thousands.
//!
//! Run it with `cargo run --release --example 10_newton`.
//!
//! The problem is L2-regularized logistic regression on features of very different scales
//! (1 to about 500): smooth and convex, but badly conditioned, which is what slows gradient
//! descent. Everything runs in f64, as second-order methods want.

use autograd::rand::rngs::StdRng;
use autograd::rand::{Rng, SeedableRng};
use autograd::{Tape, Tensor, Var};

/// The strength of the L2 term λ/2·‖w‖², which gives the loss a unique finite minimum.
const LAMBDA: f64 = 1e-3;
/// Both methods stop when the gradient's norm falls below this.
const TOLERANCE: f64 = 1e-8;

/// A logistic regression problem: features (n, d) and labels (n, 1) in {0, 1}.
struct Problem {
    x: Tensor<f64>,
    t: Tensor<f64>,
}

impl Problem {
    /// `n` examples with `d` features, feature j scaled by 10^(j·2.7/(d−1)); labels drawn from
    /// the model's own probabilities under a random true w, so the classes overlap.
    fn new(n: usize, d: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let scales: Vec<f64> = (0..d).map(|j| 10f64.powf(2.7 * j as f64 / (d - 1) as f64)).collect();
        let x = Tensor::from_fn([n, d], |i| rng.random_range(-1.0..1.0) * scales[i % d]);
        let w_true = Tensor::from_fn([d, 1], |j| rng.random_range(-1.0..1.0) / scales[j]);
        let p = x.matmul(&w_true).sigmoid(); // (n, 1)
        let t =
            Tensor::from_vec(p.data().iter().map(|&p| f64::from(u8::from(rng.random::<f64>() < p))).collect(), [n, 1]);
        Problem { x, t }
    }

    // ANCHOR: loss
    /// L(w) = −mean(t·ln σ(Xw) + (1 − t)·ln(1 − σ(Xw))) + λ/2·‖w‖².
    fn loss<'t>(&self, w: Var<'t, f64>) -> Var<'t, f64> {
        let tape = w.tape();
        let (x, t) = (tape.constant(self.x.clone()), tape.constant(self.t.clone())); // (n, d), (n, 1)
        let p = x.matmul(w).sigmoid(); // (n, 1)
        let fit = -(t * p.log() + (1.0 - t) * (1.0 - p).log()).mean_all();
        fit + (w * w).sum_all() * (LAMBDA / 2.0)
    }
    // ANCHOR_END: loss

    /// The gradient at `w`, as a plain tensor.
    fn gradient(&self, w: &Tensor<f64>) -> Tensor<f64> {
        let tape = Tape::new();
        let w_var = tape.var(w.clone());
        self.loss(w_var).backward()[w_var].clone()
    }
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.data().iter().zip(b.data()).map(|(x, y)| x * y).sum()
}

fn norm(a: &Tensor<f64>) -> f64 {
    dot(a, a).sqrt()
}

// ANCHOR: newton_step
/// One Newton step from `w`: the gradient g, then d with H·d = −g by conjugate gradients, each
/// H·v the gradient of g·v (v does not depend on w), then the largest of 1, ½, ¼, ... along d
/// that lowers the loss enough (far from the minimum a full step can overshoot). Returns the
/// new w and ‖g‖.
fn newton_step(problem: &Problem, w: &Tensor<f64>) -> (Tensor<f64>, f64) {
    let tape = Tape::new();
    let w_var = tape.var(w.clone());
    let loss = problem.loss(w_var);
    let loss_here = loss.value().item();
    let grad: Var<'_, f64> = loss.backward_with_graph()[w_var]; // ∇L, recorded
    let g = grad.value();
    // H·v for any v: a backward pass through the recorded gradient, keeping the graph for the next.
    let hessian_times =
        |v: &Tensor<f64>| (grad * tape.constant(v.clone())).sum_all().backward_retain_graph()[w_var].clone();
    // Conjugate gradients on H·d = −g, until the residual is a 10⁻¹⁰ fraction of ‖g‖. In exact
    // arithmetic that takes at most one iteration per weight; rounding on a badly conditioned
    // H can need a few more.
    let mut d = Tensor::zeros(g.shape().clone());
    let mut r = g.mul_scalar(-1.0); // the residual −g − H·d
    let mut p = r.clone();
    let mut rr = dot(&r, &r);
    for _ in 0..4 * g.numel() {
        if rr.sqrt() <= 1e-10 * norm(&g) {
            break;
        }
        let hp = hessian_times(&p);
        let alpha = rr / dot(&p, &hp);
        d = &d + &p.mul_scalar(alpha);
        r = &r - &hp.mul_scalar(alpha);
        let rr_next = dot(&r, &r);
        p = &r + &p.mul_scalar(rr_next / rr);
        rr = rr_next;
    }
    // Backtracking: accept w + s·d once the loss falls by at least a quarter of what the
    // quadratic model promises (g·d is negative along a descent direction).
    let slope = dot(&g, &d);
    let mut s = 1.0;
    loop {
        let candidate = w + &d.mul_scalar(s);
        let value = problem.loss(Tape::new().var(candidate.clone())).value().item();
        if value <= loss_here + 0.25 * s * slope || s < 1e-6 {
            return (candidate, norm(&g));
        }
        s /= 2.0;
    }
}
// ANCHOR_END: newton_step

fn main() {
    let (n, d) = (400, 8);
    let problem = Problem::new(n, d, 10);
    let start = Tensor::<f64>::zeros([d, 1]);

    // ANCHOR: newton
    let mut w = start.clone();
    let mut newton_steps = 0;
    loop {
        let (next, grad_norm) = newton_step(&problem, &w);
        println!("Newton step {newton_steps:2}: ‖∇L‖ = {grad_norm:.3e}");
        if grad_norm < TOLERANCE {
            break;
        }
        w = next;
        newton_steps += 1;
        assert!(newton_steps <= 50, "Newton's method should converge");
    }
    // ANCHOR_END: newton
    let newton_loss = problem.loss(Tape::new().var(w.clone())).value().item();

    // ANCHOR: gradient_descent
    // Gradient descent with the largest safe fixed step, 1/L, where L bounds the curvature:
    // the Hessian is at most XᵀX/(4n) + λI, whose largest eigenvalue power iteration finds.
    let xtx = problem.x.t().matmul(&problem.x).mul_scalar(1.0 / (4.0 * n as f64)); // (d, d)
    let mut v = Tensor::<f64>::ones([d, 1]);
    for _ in 0..200 {
        let xv = xtx.matmul(&v);
        v = xv.mul_scalar(1.0 / norm(&xv));
    }
    let curvature = dot(&v, &xtx.matmul(&v)) + LAMBDA;
    let mut w = start.clone();
    let budget = 200 * newton_steps.max(1);
    let mut gd_steps = 0;
    let mut grad_norm = f64::INFINITY;
    while gd_steps < budget {
        let g = problem.gradient(&w);
        grad_norm = norm(&g);
        if grad_norm < TOLERANCE {
            break;
        }
        w = &w - &g.mul_scalar(1.0 / curvature);
        gd_steps += 1;
    }
    // ANCHOR_END: gradient_descent
    let gd_loss = problem.loss(Tape::new().var(w.clone())).value().item();

    println!("\nNewton: {newton_steps} steps to ‖∇L‖ < {TOLERANCE:e}, loss {newton_loss:.12}");
    println!(
        "gradient descent (step 1/{curvature:.1}): after {gd_steps} steps ‖∇L‖ = {grad_norm:.3e}, loss {gd_loss:.12}"
    );
    assert!(newton_steps <= 12, "Newton should converge in a handful of steps, took {newton_steps}");
    assert!(
        grad_norm > 1e3 * TOLERANCE && gd_loss > newton_loss,
        "gradient descent should still be far from the minimum after {gd_steps} steps"
    );
    println!("10_newton: all checks passed");
}
