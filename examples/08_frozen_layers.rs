//! 08: frozen layers and gradient coverage — pretrain a network, then fine-tune only a new head
//! on a second task, and let the coverage report confirm which parameters learned.
//!
//! Run it with `cargo run --release --example 08_frozen_layers`.
//!
//! Task A sorts points of the plane into the four quadrants. Task B asks only "upper or lower
//! half?", which the features learned for A already answer, so a new output layer on top of the
//! frozen body learns B in a few steps. Freezing here is what `torch.no_grad()` around a feature
//! extractor does in PyTorch: the body runs under `tape.no_grad()`, so nothing in it is tracked,
//! backward stops at its output, and its parameters get no gradient for the optimizer to apply.
//!
//! The coverage report (`grads.coverage(&store)`) lists every parameter of the store that did
//! not get a usable gradient, and why. After a fine-tuning step it must name the frozen body and
//! the unused task-A head, and nothing else: a parameter of the new head in that list would be
//! one that silently never learns.

use autograd::rand::rngs::StdRng;
use autograd::rand::{Rng, SeedableRng};
use autograd::{CrossEntropyOptions, GradientProblem, ParamStore, Tape, Tensor, Var};
use transformer::nn::Linear; // y = x·Wᵀ + b, initialized as PyTorch's nn.Linear
use transformer::optim::{Adam, Optimizer};

/// `n` points uniform in the square [−1, 1]², their quadrant (0 to 3, counter-clockwise from
/// x > 0, y > 0) and their half (0 upper, 1 lower).
fn points(n: usize, seed: u64) -> (Tensor, Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let xy: Vec<f32> = (0..2 * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let quadrant = |x: f32, y: f32| match (x >= 0.0, y >= 0.0) {
        (true, true) => 0,
        (false, true) => 1,
        (false, false) => 2,
        (true, false) => 3,
    };
    let quadrants: Vec<usize> = xy.chunks(2).map(|p| quadrant(p[0], p[1])).collect();
    let halves = quadrants.iter().map(|&q| usize::from(q >= 2)).collect();
    (Tensor::from_vec(xy, [n, 2]), quadrants, halves)
}

// ANCHOR: model
/// A body of two tanh layers shared by two heads: four logits for task A, two for task B.
struct Model {
    body: [Linear; 2],
    head_a: Linear,
    head_b: Linear,
}

impl Model {
    fn new(store: &mut ParamStore, hidden: usize, rng: &mut StdRng) -> Self {
        let body = [
            Linear::new(2, hidden, true, store.prefix("body.0"), rng),
            Linear::new(hidden, hidden, true, store.prefix("body.1"), rng),
        ];
        let head_a = Linear::new(hidden, 4, true, store.prefix("head_a"), rng);
        let head_b = Linear::new(hidden, 2, true, store.prefix("head_b"), rng);
        Model { body, head_a, head_b }
    }

    /// The body's features of `x` (batch, 2) → (batch, hidden).
    fn features<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.body.iter().fold(x, |h, layer| layer.forward(h).tanh())
    }
}
// ANCHOR_END: model

/// The fraction of rows whose largest logit is the class.
fn accuracy(logits: &Tensor, classes: &[usize]) -> f64 {
    let width = logits.dims()[1];
    let rows = logits.data().chunks(width);
    let argmax = |row: &[f32]| (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best });
    rows.zip(classes).filter(|(row, class)| argmax(row) == **class).count() as f64 / classes.len() as f64
}

fn main() {
    let (train_x, train_quadrants, train_halves) = points(512, 1);
    let (test_x, test_quadrants, test_halves) = points(512, 2);
    let mut store = ParamStore::new();
    let model = Model::new(&mut store, 32, &mut StdRng::seed_from_u64(0));
    let ce = CrossEntropyOptions::default();

    // ---------------------------------------------------------------------------------------
    // Task A: the body and head A learn the quadrants together. Head B is left out.
    // ---------------------------------------------------------------------------------------
    let mut adam = Adam::paper(0.02);
    for _ in 0..300 {
        let tape = Tape::new();
        let logits = model.head_a.forward(model.features(tape.constant(train_x.clone()))); // (512, 4)
        let grads = logits.cross_entropy(&train_quadrants, ce).backward();
        adam.step(&store, &grads);
    }
    let tape = Tape::new();
    let _eval = tape.no_grad();
    let quadrant_accuracy =
        accuracy(&model.head_a.forward(model.features(tape.constant(test_x.clone()))).value(), &test_quadrants);
    let half_accuracy_before =
        accuracy(&model.head_b.forward(model.features(tape.constant(test_x.clone()))).value(), &test_halves);
    println!("task A, quadrants: held-out accuracy {:.1}%", 100.0 * quadrant_accuracy);
    println!("task B, halves, with head B untrained: {:.1}%", 100.0 * half_accuracy_before);
    assert!(quadrant_accuracy >= 0.95, "task A should be learned: {quadrant_accuracy}");

    // ---------------------------------------------------------------------------------------
    // Task B: the body frozen, only head B learns.
    // ---------------------------------------------------------------------------------------
    let body_before: Vec<Tensor> = store.iter().filter(|p| p.name().starts_with("body.")).map(|p| p.value()).collect();
    // ANCHOR: fine_tune
    let mut adam = Adam::paper(0.05); // a fresh optimizer: nothing carried over from task A
    let mut coverage = None;
    for step in 0..100 {
        let tape = Tape::new();
        let features = {
            // Inside this scope nothing is tracked: the body's parameters go on the tape as
            // plain values and its output is a constant as far as backward is concerned.
            let _frozen = tape.no_grad();
            model.features(tape.constant(train_x.clone())) // (512, 32)
        };
        let logits = model.head_b.forward(features); // (512, 2)
        let grads = logits.cross_entropy(&train_halves, ce).backward();
        if step == 0 {
            coverage = Some(grads.coverage(&store));
        }
        adam.step(&store, &grads); // parameters without a gradient are skipped
    }
    // ANCHOR_END: fine_tune

    // ANCHOR: coverage
    let coverage = coverage.expect("taken at the first step");
    println!("\ncoverage of the first fine-tuning step:\n{coverage}");
    let problems: Vec<(&str, GradientProblem)> =
        coverage.problems.iter().map(|p| (p.name.as_str(), p.problem)).collect();
    assert_eq!(
        problems,
        [
            ("body.0.weight", GradientProblem::Untracked),
            ("body.0.bias", GradientProblem::Untracked),
            ("body.1.weight", GradientProblem::Untracked),
            ("body.1.bias", GradientProblem::Untracked),
            ("head_a.weight", GradientProblem::NotOnTape),
            ("head_a.bias", GradientProblem::NotOnTape),
        ],
        "only head B may learn in fine-tuning"
    );
    // ANCHOR_END: coverage

    // The frozen body is untouched to the last bit; the new head learned the halves.
    let body_after: Vec<Tensor> = store.iter().filter(|p| p.name().starts_with("body.")).map(|p| p.value()).collect();
    assert!(body_before.iter().zip(&body_after).all(|(a, b)| a.bit_eq(b)), "the body must not move");
    let tape = Tape::new();
    let _eval = tape.no_grad();
    let half_accuracy =
        accuracy(&model.head_b.forward(model.features(tape.constant(test_x.clone()))).value(), &test_halves);
    println!("task B after fine-tuning head B alone: held-out accuracy {:.1}%", 100.0 * half_accuracy);
    assert!(half_accuracy >= 0.95, "the frozen features should answer task B: {half_accuracy}");

    println!("08_frozen_layers: all checks passed");
}
