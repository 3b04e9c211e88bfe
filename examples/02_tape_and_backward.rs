//! 02: the tape and backward — record a computation, look at the record, differentiate it.
//!
//! Run it with `cargo run --release --example 02_tape_and_backward`. It prints two tapes and
//! their gradients, checks gradients against values derived by hand, and writes the network's
//! graph as Graphviz DOT to `autograd-examples/` in the system's temporary directory (on Linux
//! `/tmp/autograd-examples/`). Pass a directory to write it there instead:
//! `cargo run --release --example 02_tape_and_backward -- target/graphs`.

use autograd::rand::SeedableRng;
use autograd::rand::rngs::StdRng;
use autograd::{Tape, Tensor, allclose};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    // ---------------------------------------------------------------------------------------
    // Part 1: y = x·x + x, the smallest interesting function.
    // ---------------------------------------------------------------------------------------
    // ANCHOR: square_plus
    // A tape records every operation done with its values. f64 keeps this first check exact.
    let tape = Tape::<f64>::new();
    // `named_var` puts a leaf on the tape: a value we want the gradient of. The name only shows
    // up in dumps and pictures.
    let x = tape.named_var("x", Tensor::from_vec(vec![-1.0, 0.5, 3.0], [3]));
    // Each operator computes its result at once *and* appends a node to the tape:
    // node 1 is mul(x, x), node 2 is add(node 1, x). Note that x is an input twice.
    let y = x * x + x;
    // backward needs a single number to differentiate, so sum the three values first.
    let loss = y.sum_all();
    // ANCHOR_END: square_plus
    println!("The tape for y = x*x + x, one line per node (`*` = a gradient flows through it):");
    print!("{}", tape.dump());

    // ANCHOR: square_plus_backward
    // One reverse scan of the tape: from the loss back to the leaves.
    let grads = loss.backward();
    // By hand: d/dx (x² + x) = 2x + 1, so at x = [-1, 0.5, 3] the gradient is [-1, 2, 7].
    // x was used twice (in the mul, and in the add); the two contributions were summed.
    println!("\ndloss/dx =\n{}", grads[x]);
    assert_eq!(grads[x].to_vec(), vec![-1.0, 2.0, 7.0]);
    // ANCHOR_END: square_plus_backward

    // ---------------------------------------------------------------------------------------
    // Part 2: a two-layer network with a loss.
    // ---------------------------------------------------------------------------------------
    // A new tape for a new computation. This one holds f32, what models are trained in.
    let tape = Tape::<f32>::new();
    let mut rng = StdRng::seed_from_u64(0); // a fixed seed: every run prints the same numbers

    // ANCHOR: mlp_forward
    // A batch of 4 examples with 3 features each, and one target number per example.
    // Constants are leaves no gradient flows into: the data, not something we will change.
    let inputs = tape.constant(Tensor::rand_uniform([4, 3], -1.0, 1.0, &mut rng)); // (4, 3)
    let targets = tape.constant(Tensor::from_vec(vec![1.0, -1.0, 0.5, 0.0], [4, 1])); // (4, 1)

    // The weights are vars: leaves we want gradients for. Layer 1 maps 3 features to 5.
    let w1 = tape.named_var("w1", Tensor::randn([3, 5], 0.0, 0.5, &mut rng)); // (3, 5)
    let b1 = tape.named_var("b1", Tensor::zeros([5])); // (5,)
    let w2 = tape.named_var("w2", Tensor::randn([5, 1], 0.0, 0.5, &mut rng)); // (5, 1)
    let b2 = tape.named_var("b2", Tensor::zeros([1])); // (1,)

    // The model reads like the math. `b1` has shape (5,) and is broadcast over the 4 rows.
    // `retain_grad` asks backward to keep this intermediate value's gradient for us to look at;
    // normally only leaves keep theirs.
    let z1 = (inputs.matmul(w1) + b1).retain_grad(); // (4, 5)
    let hidden = z1.relu(); // (4, 5)
    let prediction = hidden.matmul(w2) + b2; // (4, 1)
    // Mean squared error: one number that says how far the predictions are from the targets.
    let error = prediction - targets; // (4, 1)
    let loss = (error * error).mean_all(); // ()
    // ANCHOR_END: mlp_forward

    println!("\nThe tape for a two-layer network and its loss:");
    print!("{}", tape.dump());
    examples::book_output("02_mlp_forward_dump.txt", &tape.dump()); // the book shows this dump
    println!("loss =\n{}", loss.value());

    // The tape is a picture too: draw it before going on.
    // Where: the directory given on the command line, or one in the system's temporary directory.
    let dir = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("autograd-examples"),
    };
    std::fs::create_dir_all(&dir)?;
    // `to_svg` draws it with the engine's own layout; `to_dot` writes it for Graphviz.
    let svg_path = dir.join("mlp_forward.svg");
    std::fs::write(&svg_path, tape.to_svg())?;
    let dot_path = dir.join("mlp_forward.dot");
    std::fs::write(&dot_path, tape.to_dot())?;

    // ANCHOR: mlp_backward
    // Backward frees each intermediate value once no gradient rule needs it any more, so read
    // the values you want to keep first.
    let (e, hidden_value) = (error.value(), hidden.value()); // (4, 1), (4, 5)
    let nodes_before = tape.len();
    let grads = loss.backward();
    // A plain backward pass computes on tensors and records nothing new on the tape.
    assert_eq!(tape.len(), nodes_before);

    println!("\nGradients (each has the shape of its value):");
    println!("dloss/dw1 =\n{}", grads[w1]);
    println!("dloss/db1 =\n{}", grads[b1]);
    println!("dloss/dw2 =\n{}", grads[w2]);
    println!("dloss/db2 =\n{}", grads[b2]);
    // ANCHOR_END: mlp_backward

    // ANCHOR: hand_check
    // Check two gradients against formulas derived by hand. With e = prediction − targets and
    // loss = (1/N) Σ e², N = 4:
    //   dloss/de  = 2e/N
    //   dloss/db2 = Σ over the batch of 2e/N         (b2 was added to every row)
    //   dloss/dw2 = hiddenᵀ · (2e/N)                 (the matmul rule)
    let de = e.mul_scalar(2.0 / 4.0); // (4, 1)
    let db2_by_hand = de.sum(&[0], false); // (1,)
    let dw2_by_hand = hidden_value.t().matmul(&de); // (5, 4)·(4, 1) = (5, 1)
    // f32 sums in a different order round differently, so compare within a relative 1e-6.
    assert!(allclose(&grads[b2], &db2_by_hand, 1e-6, 1e-7), "{} vs {}", grads[b2], db2_by_hand);
    assert!(allclose(&grads[w2], &dw2_by_hand, 1e-6, 1e-7), "{} vs {}", grads[w2], dw2_by_hand);
    // ANCHOR_END: hand_check

    // ANCHOR: broadcast_check
    // b1 (shape (5,)) was broadcast to (4, 5) before the add, so each entry of b1 touched four
    // values. Its gradient is the gradient of z1 summed back over those four rows.
    let db1_from_z1 = grads[z1].sum(&[0], false); // (4, 5) → (5,)
    assert!(allclose(&grads[b1], &db1_from_z1, 1e-6, 1e-7));
    // `hidden` was not marked with retain_grad: its gradient was used and dropped on the way.
    assert!(grads.get(hidden).is_none());
    // The data are constants, so no gradient flows into them at all.
    assert!(grads.get(inputs).is_none());
    // ANCHOR_END: broadcast_check

    println!("\nDrew the network's graph in {} (open it in a browser)", svg_path.display());
    println!("and wrote it for Graphviz in {}", dot_path.display());
    println!("02_tape_and_backward: all checks passed");
    Ok(())
}
