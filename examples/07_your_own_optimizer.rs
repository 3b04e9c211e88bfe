//! 07: your own optimizer — Lion, written against the public `Optimizer` trait, checked against
//! its update rule by hand, then used to fit a model.
//!
//! Run it with `cargo run --release --example 07_your_own_optimizer`.
//!
//! Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms") keeps one moving
//! average m per weight, like momentum, but moves every weight by the same amount: only the
//! sign of the update is kept. For each weight θ with gradient g:
//!
//! ```text
//! c ← β1·m + (1 − β1)·g          the direction: momentum and gradient, interpolated
//! θ ← θ − lr·(sign(c) + λ·θ)     a step of lr in every coordinate, plus decoupled weight decay
//! m ← β2·m + (1 − β2)·g          the momentum, with a longer memory (β2 > β1)
//! ```
//!
//! Anything that implements `transformer::optim::Optimizer` plugs into the library's training
//! loops, schedules, gradient clipping and checkpoints, exactly as Adam does.

use autograd::rand::SeedableRng;
use autograd::rand::rngs::StdRng;
use autograd::{Gradients, ParamStore, Tape, Tensor};
use std::collections::HashMap;
use transformer::optim::{Optimizer, OptimizerState, Schedule, WarmupLinear};

// ANCHOR: lion
/// The Lion optimizer for f32 parameters.
struct Lion {
    lr: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    /// m for each parameter, by the parameter's id (an id is stable for the parameter's life,
    /// so one optimizer serves a whole store).
    momentum: HashMap<u64, Vec<f32>>,
}

impl Lion {
    /// The paper's defaults: β1 0.9, β2 0.99, no weight decay.
    fn new(lr: f64) -> Self {
        Lion { lr, beta1: 0.9, beta2: 0.99, weight_decay: 0.0, momentum: HashMap::new() }
    }
}

/// −1, 0 or 1, as `torch.sign`: a zero direction does not move the weight (`f32::signum` gives
/// 1 for +0).
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl Optimizer for Lion {
    fn step_scaled(&mut self, params: &ParamStore, grads: &Gradients, grad_scale: f32) {
        let [lr, beta1, beta2, decay] = [self.lr, self.beta1, self.beta2, self.weight_decay].map(|v| v as f32);
        for param in params.iter() {
            // A parameter that was not on this step's tape has no gradient: leave it alone.
            let Some(grad) = grads.param(param) else { continue };
            let m = self.momentum.entry(param.id()).or_insert_with(|| vec![0.0; grad.numel()]);
            param.update(|theta| {
                for ((x, &g), m) in theta.iter_mut().zip(grad.data()).zip(m.iter_mut()) {
                    let g = g * grad_scale; // what clipping asked for (1 without it)
                    let c = beta1 * *m + (1.0 - beta1) * g;
                    *x -= lr * (sign(c) + decay * *x);
                    *m = beta2 * *m + (1.0 - beta2) * g;
                }
            });
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// m of each parameter, named `{parameter}.exp_avg` as PyTorch implementations of Lion name it.
    fn state(&self, params: &ParamStore) -> OptimizerState {
        let mut state = OptimizerState::default();
        for param in params.iter() {
            if let Some(m) = self.momentum.get(&param.id()) {
                state.buffers.insert(format!("{}.exp_avg", param.name()), Tensor::from_vec(m.clone(), param.shape()));
            }
        }
        state
    }

    fn load_state(&mut self, params: &ParamStore, state: &OptimizerState) -> Result<(), String> {
        let mut momentum = HashMap::new();
        for (name, m) in &state.buffers {
            let param = name
                .strip_suffix(".exp_avg")
                .and_then(|p| params.get(p))
                .ok_or_else(|| format!("Lion has no state called {name} for this model"))?;
            if m.shape() != &param.shape() {
                return Err(format!("{name} has shape {}, the parameter {}", m.shape(), param.shape()));
            }
            momentum.insert(param.id(), m.to_vec());
        }
        self.momentum = momentum; // all or nothing: an error above left the old state in place
        Ok(())
    }
}
// ANCHOR_END: lion

/// Mean squared error of the linear model x·w against y.
fn mse(store: &ParamStore, x: &Tensor, y: &Tensor) -> (f32, Gradients) {
    let tape = Tape::new();
    let w = tape.param(store.get("w").expect("the model's weights"));
    let error = tape.constant(x.clone()).matmul(w) - tape.constant(y.clone()); // (n, 1)
    let loss = (error * error).mean(&[0, 1], false); // ()
    (loss.value().item(), loss.backward())
}

fn main() {
    // ---------------------------------------------------------------------------------------
    // Part 1: two steps by hand. Loss Σθ², so g = 2θ; lr 0.1, β1 0.9, β2 0.99.
    // ---------------------------------------------------------------------------------------
    // ANCHOR: by_hand
    let mut store = ParamStore::new();
    let theta = store.root().param("theta", Tensor::from_vec(vec![1.0, -2.0, 0.5], [3]));
    let mut lion = Lion::new(0.1);
    let step = |lion: &mut Lion| {
        let tape = Tape::new();
        let x = tape.param(&theta);
        let grads = (x * x).sum_all().backward();
        lion.step(&store, &grads);
    };
    // Step 1: m = 0, so c = 0.1·g and sign(c) = sign(θ): every weight moves 0.1 toward 0.
    step(&mut lion);
    assert_close(&theta.value().to_vec(), &[0.9, -1.9, 0.4]);
    // m is now 0.01·g = [0.02, −0.04, 0.01]. Step 2: g = [1.8, −3.8, 0.8], c = 0.9·m + 0.1·g
    // = [0.198, −0.416, 0.089]: the same signs, the same step.
    step(&mut lion);
    assert_close(&theta.value().to_vec(), &[0.8, -1.8, 0.3]);
    // ANCHOR_END: by_hand
    println!("two steps of Lion by hand: θ = {}", theta.value());

    // Weight decay acts even where the gradient is zero, and sign(0) = 0 moves nothing else.
    let mut store = ParamStore::new();
    let decaying = store.root().param("decaying", Tensor::from_vec(vec![2.0], [1]));
    let tape = Tape::new();
    let zero_grad = (tape.param(&decaying) * 0.0).sum_all().backward();
    Lion { weight_decay: 0.5, ..Lion::new(0.1) }.step(&store, &zero_grad);
    assert_close(&decaying.value().to_vec(), &[2.0 - 0.1 * 0.5 * 2.0]);
    println!("with weight decay 0.5 and a zero gradient: 2 → {}", decaying.value());

    // ---------------------------------------------------------------------------------------
    // Part 2: fit a linear model y = x·w* with it, the learning rate on a schedule.
    // ---------------------------------------------------------------------------------------
    // ANCHOR: fit
    let mut rng = StdRng::seed_from_u64(7);
    let (n, d) = (256, 8);
    let x = Tensor::<f32>::randn([n, d], 0.0, 1.0, &mut rng); // (n, d)
    let w_true = Tensor::<f32>::randn([d, 1], 0.0, 1.0, &mut rng); // (d, 1)
    let y = x.matmul(&w_true); // (n, 1)
    let mut store = ParamStore::new();
    let w = store.root().param("w", Tensor::zeros([d, 1]));
    // Every coordinate moves by the learning rate, whatever its gradient, so the rate has to
    // fall to zero for the weights to settle: warm up over 10 steps to 0.05, then decay.
    let steps = 400;
    let schedule = WarmupLinear::new(0.05, 10, steps);
    let mut lion = Lion::new(0.0);
    let (first_loss, _) = mse(&store, &x, &y);
    for step in 1..=steps {
        let (loss, grads) = mse(&store, &x, &y);
        lion.set_lr(schedule.lr(step));
        lion.step(&store, &grads);
        if step % 100 == 0 {
            println!("step {step:3}: loss {loss:.6}");
        }
    }
    let (last_loss, _) = mse(&store, &x, &y);
    // ANCHOR_END: fit
    println!("loss {first_loss:.3} → {last_loss:.2e}; w = {}", w.value().reshape([d]));
    assert!(last_loss < 1e-3 * first_loss, "Lion should fit the linear model: loss {first_loss} → {last_loss}");

    // ---------------------------------------------------------------------------------------
    // Part 3: the state survives a checkpoint. A fresh Lion given the saved state takes exactly
    // the step the first one takes.
    // ---------------------------------------------------------------------------------------
    let saved = lion.state(&store);
    assert_eq!(saved.buffers.keys().collect::<Vec<_>>(), ["w.exp_avg"]);
    let mut resumed = Lion::new(0.0);
    resumed.load_state(&store, &saved).expect("the state fits the model");
    let before = w.value();
    let next = |opt: &mut Lion| {
        let (_, grads) = mse(&store, &x, &y);
        opt.set_lr(1e-3);
        opt.step(&store, &grads);
        let after = w.value();
        w.set(before.clone()); // back to the same starting point for the other optimizer
        after
    };
    assert!(next(&mut lion).bit_eq(&next(&mut resumed)), "a resumed optimizer takes the same step");
    let mut other = ParamStore::new();
    other.root().param("w", Tensor::zeros([d + 1, 1]));
    let err = Lion::new(0.0).load_state(&other, &saved).expect_err("the shapes differ");
    println!("loading the state into a wider model: {err}");

    println!("07_your_own_optimizer: all checks passed");
}

/// Asserts that two lists of f32 agree to within f32 rounding of the arithmetic above.
#[track_caller]
fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "got {got:?}, want {want:?}");
    }
}
