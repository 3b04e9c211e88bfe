//! 05: training — parameters, a small network, plain SGD, and saving and loading the weights.
//!
//! Run it with `cargo run --release --example 05_train_mlp`.
//!
//! The data are "two moons": two interleaved half circles in the plane, one per class, that no
//! straight line separates. A network with two hidden layers learns to tell them apart. The
//! trained weights are saved as safetensors to `autograd-examples/moons_mlp.safetensors` in the
//! system's temporary directory, loaded into a fresh model, and checked to give the same loss.

use autograd::rand::rngs::StdRng;
use autograd::rand::{Rng, SeedableRng};
use autograd::{CrossEntropyOptions, Param, ParamPath, ParamStore, Tape, Tensor, Var};

/// Training examples and held-out examples, each this many.
const EXAMPLES: usize = 200;
/// Stop once this fraction of the training set is classified correctly.
const TARGET_TRAIN_ACCURACY: f64 = 0.99;
/// What the held-out set must then reach for the example to pass.
const TARGET_HELD_OUT_ACCURACY: f64 = 0.97;
/// Give up after this many steps of gradient descent.
const MAX_STEPS: usize = 5000;
/// How far each step moves the weights along the negative gradient.
const LEARNING_RATE: f32 = 0.2;

/// `n` points of two moons with Gaussian noise of standard deviation 0.1: features `[n, 2]` and
/// a class (0 or 1) per point. The same seed gives the same points.
fn two_moons(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Tensor::<f32>::randn([n, 2], 0.0, 0.1, &mut rng);
    let mut points = Vec::with_capacity(2 * n);
    let mut classes = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2; // alternate, so both classes are equally common
        let angle = std::f32::consts::PI * rng.random::<f32>(); // somewhere along a half circle
        let (x, y) = if class == 0 {
            (angle.cos(), angle.sin()) // the upper moon
        } else {
            (1.0 - angle.cos(), 0.5 - angle.sin()) // the lower moon, shifted to interlock
        };
        points.push(x + noise.at(&[i, 0]));
        points.push(y + noise.at(&[i, 1]));
        classes.push(class);
    }
    (Tensor::from_vec(points, [n, 2]), classes)
}

// ANCHOR: model
/// A fully connected layer in PyTorch's layout: y = x·Wᵀ + b, W of shape [out, in].
struct Linear {
    weight: Param,
    bias: Param,
}

impl Linear {
    /// Creates `weight` and `bias` under `path` (for example `layers.0.weight`), drawn uniformly
    /// from ±1/√inputs as PyTorch's `nn.Linear` does, so every layer starts at a similar scale.
    fn new(mut path: ParamPath<'_, f32>, inputs: usize, outputs: usize, rng: &mut StdRng) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let weight = path.param("weight", Tensor::rand_uniform([outputs, inputs], -bound, bound, rng));
        let bias = path.param("bias", Tensor::rand_uniform([outputs], -bound, bound, rng));
        Linear { weight, bias }
    }

    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        // Every var knows its tape. `tape.param` puts a parameter's current value on it as a
        // leaf; the parameter itself lives on in the store after the tape is gone.
        let tape = x.tape();
        let w = tape.param(&self.weight); // (out, in)
        let b = tape.param(&self.bias); // (out,)
        x.matmul(w.t()) + b // (batch, in)·(in, out) + (out,) → (batch, out)
    }
}

/// Two hidden layers of tanh units, then one score (a logit) per class.
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Registers every parameter in `store` as `layers.{i}.weight` and `layers.{i}.bias`.
    fn new(store: &mut ParamStore, hidden: usize, rng: &mut StdRng) -> Self {
        let sizes = [2, hidden, hidden, 2]; // 2 features in, 2 classes out
        let mut layers_path = store.prefix("layers");
        let layers =
            (0..3).map(|i| Linear::new(layers_path.prefix(&i.to_string()), sizes[i], sizes[i + 1], rng)).collect();
        Mlp { layers }
    }

    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let mut h = x; // (batch, 2)
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h); // (batch, hidden), the last layer (batch, 2)
            if i + 1 < self.layers.len() {
                h = h.tanh(); // no activation after the last layer: logits may be any number
            }
        }
        h
    }

    /// Mean cross-entropy of the model's logits against the classes: what training lowers.
    fn loss<'t>(&self, tape: &'t Tape, points: &Tensor, classes: &[usize]) -> Var<'t> {
        let logits = self.forward(tape.constant(points.clone())); // (batch, 2)
        logits.cross_entropy(classes, CrossEntropyOptions::default()) // ()
    }
}
// ANCHOR_END: model

/// The fraction of points whose highest logit is their class.
fn accuracy(model: &Mlp, points: &Tensor, classes: &[usize]) -> f64 {
    let tape = Tape::new();
    // Evaluation needs no gradients: under no_grad nothing is marked as needing one.
    let _no_grad = tape.no_grad();
    let logits = model.forward(tape.constant(points.clone())).value(); // (batch, 2)
    let correct = classes.iter().enumerate().filter(|&(i, &class)| predicted_class(&logits, i) == class).count();
    correct as f64 / classes.len() as f64
}

/// The index of the largest logit in row `row`.
fn predicted_class(logits: &Tensor, row: usize) -> usize {
    if logits.at(&[row, 1]) > logits.at(&[row, 0]) { 1 } else { 0 }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (train_points, train_classes) = two_moons(EXAMPLES, 1);
    let (held_out_points, held_out_classes) = two_moons(EXAMPLES, 2);

    // ANCHOR: store
    // Every weight of the model, by dotted name, in the order it was created.
    let mut store = ParamStore::new();
    let mut rng = StdRng::seed_from_u64(0);
    let model = Mlp::new(&mut store, 16, &mut rng);
    for p in store.iter() {
        println!("{:<16} {}", p.name(), p.shape());
    }
    println!("{} parameters, {} numbers in all", store.len(), store.num_elements());
    assert_eq!(store.names().collect::<Vec<_>>()[..2], ["layers.0.weight", "layers.0.bias"]);
    // ANCHOR_END: store

    // ANCHOR: train
    let mut step = 0;
    loop {
        // A fresh tape for every step: it records this step's forward pass, backward reads it,
        // and dropping it at the end of the block frees every intermediate value at once.
        let (loss, grads) = {
            let tape = Tape::new();
            let loss = model.loss(&tape, &train_points, &train_classes);
            (loss.value().item(), loss.backward())
        };
        // Plain stochastic gradient descent (here on the whole batch): w ← w − lr·∂loss/∂w.
        // The tape is gone, so no one else shares the weights' buffers and `update` writes in place.
        for p in store.iter() {
            let g = grads.param(p).expect("every parameter takes part in the loss");
            p.update(|w| {
                for (w, g) in w.iter_mut().zip(g.data()) {
                    *w -= LEARNING_RATE * g;
                }
            });
        }
        step += 1;
        if step % 50 == 0 {
            let train_accuracy = accuracy(&model, &train_points, &train_classes);
            println!("step {step:>4}  loss {loss:.4}  train accuracy {:.1}%", 100.0 * train_accuracy);
            if train_accuracy >= TARGET_TRAIN_ACCURACY || step >= MAX_STEPS {
                break;
            }
        }
    }
    // ANCHOR_END: train

    let held_out_accuracy = accuracy(&model, &held_out_points, &held_out_classes);
    println!("held-out accuracy after {step} steps: {:.1}%", 100.0 * held_out_accuracy);
    assert!(
        held_out_accuracy >= TARGET_HELD_OUT_ACCURACY,
        "held-out accuracy {held_out_accuracy} is below the target {TARGET_HELD_OUT_ACCURACY}"
    );

    // ANCHOR: save_load
    // Save every parameter by name into one safetensors file (PyTorch, JAX and others read it).
    let dir = std::env::temp_dir().join("autograd-examples");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("moons_mlp.safetensors");
    store.save(&path)?;

    // A second model of the same architecture starts from different random weights...
    let mut fresh_store = ParamStore::new();
    let fresh = Mlp::new(&mut fresh_store, 16, &mut StdRng::seed_from_u64(99));
    let held_out_loss = |m: &Mlp| m.loss(&Tape::new(), &held_out_points, &held_out_classes).value().item();
    assert_ne!(held_out_loss(&fresh), held_out_loss(&model));
    // ...and after loading the file it computes exactly what the trained one does.
    fresh_store.load(&path)?;
    assert_eq!(held_out_loss(&fresh), held_out_loss(&model));
    // ANCHOR_END: save_load
    println!("saved to {} and reloaded: held-out loss {:.6} either way", path.display(), held_out_loss(&fresh));

    // ANCHOR: load_error
    // Loading into a model of another shape fails with an error naming the file and the tensor,
    // and changes nothing.
    let mut narrow_store = ParamStore::new();
    let _narrow = Mlp::new(&mut narrow_store, 8, &mut rng);
    let err = narrow_store.load(&path).expect_err("16 hidden units do not fit in 8");
    println!("loading into a narrower model: {err}");
    assert!(err.to_string().contains("layers.0.weight has shape [16, 2], expected [8, 2]"), "{err}");
    // ANCHOR_END: load_error
    // The book shows this message, with the file's directory (which differs from machine to
    // machine) written as <temp>/autograd-examples.
    let message = err.to_string().replace(&dir.display().to_string(), "<temp>/autograd-examples");
    examples::book_output("05_load_error.txt", &format!("loading into a narrower model: {message}\n"));

    println!("05_train_mlp: all checks passed");
    Ok(())
}
