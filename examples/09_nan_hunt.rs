//! 09: a NaN hunt — a model whose loss is NaN from the first step, the engine's finite-value
//! check pointing at the op that made it, and the fix.
//!
//! Run it with `cargo run --release --example 09_nan_hunt`.
//!
//! The model is a linear classifier of tiny 8-pixel "images". Two mistakes are planted, both
//! common: the pixels go in raw (0 to 255) instead of scaled, and the softmax is written by hand
//! as eᶻ / Σ eᶻ. With logits in the hundreds, eᶻ overflows f32 (anything above about 88.7 is
//! infinite), ∞ / ∞ is NaN, and the NaN spreads to the loss. By the time anyone sees the loss
//! the op that started it is many nodes back; the check names it at once.

use autograd::rand::rngs::StdRng;
use autograd::rand::{Rng, SeedableRng};
use autograd::{CrossEntropyOptions, ParamStore, Phase, Tape, Tensor, Var, catch_nonfinite};
use transformer::optim::{Optimizer, Sgd};

/// Pixels per image.
const PIXELS: usize = 8;

/// `n` images of raw intensities 0–255: class 0 is bright on the left half and dark on the
/// right, class 1 the other way round, each pixel with noise.
fn images(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let classes: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for &class in &classes {
        for p in 0..PIXELS {
            let bright = (p < PIXELS / 2) == (class == 0);
            pixels.push(if bright { rng.random_range(150.0..255.0) } else { rng.random_range(0.0..105.0) });
        }
    }
    (Tensor::from_vec(pixels, [n, PIXELS]), classes)
}

// ANCHOR: broken
/// Cross-entropy with the softmax written out by hand: −mean over rows of ln(e^z_class / Σ e^z).
fn hand_written_loss<'t>(logits: Var<'t>, classes: &[usize]) -> Var<'t> {
    let [rows, width] = logits.dims()[..] else { unreachable!("logits are (rows, classes)") };
    let one_hot = Tensor::from_fn([rows, width], |i| f32::from(u8::from(i % width == classes[i / width])));
    let e = logits.exp(); // (rows, 2): overflows to ∞ for logits above about 88.7
    let p = e / e.sum(&[1], true); // (rows, 2): ∞ / ∞ = NaN
    -(p.log() * logits.tape().constant(one_hot)).sum_all() * (1.0 / rows as f64)
}
// ANCHOR_END: broken

/// The classifier's logits for `pixels` (rows, 8) → (rows, 2).
fn logits<'t>(tape: &'t Tape, store: &ParamStore, pixels: &Tensor) -> Var<'t> {
    let (w, b) = (tape.param(store.get("weight").unwrap()), tape.param(store.get("bias").unwrap()));
    tape.constant(pixels.clone()).linear(w, Some(b))
}

fn main() {
    let (pixels, classes) = images(256, 1);
    let mut store = ParamStore::new();
    let mut rng = StdRng::seed_from_u64(0);
    let bound = 1.0 / (PIXELS as f32).sqrt(); // as PyTorch's nn.Linear initializes
    store.root().param("weight", Tensor::rand_uniform([2, PIXELS], -bound, bound, &mut rng));
    store.root().param("bias", Tensor::zeros([2]));

    // 1. The symptom: the very first loss is NaN, and nothing says where it came from.
    let tape = Tape::new();
    let loss = hand_written_loss(logits(&tape, &store, &pixels), &classes).value().item();
    println!("the first loss: {loss}");
    assert!(loss.is_nan());

    // ANCHOR: hunt
    // 2. The hunt: the same forward pass with the finite-value check on. (With the environment
    //    variable AUTOGRAD_CHECK=1 every tape checks, without touching the code.)
    let tape = Tape::new();
    tape.set_check_finite(true);
    let z = logits(&tape, &store, &pixels);
    let largest = z.value().data().iter().fold(f32::MIN, |m, &v| m.max(v));
    let report = catch_nonfinite(|| hand_written_loss(z, &classes)).expect_err("the check stops at the first ∞");
    println!("\nwith the check on:\n{report}");
    // ANCHOR_END: hunt
    // The report names `exp`, the line that called it, and says its input was finite: exp
    // itself made the infinity, from logits as large as this:
    println!("\nthe largest logit: {largest:.1}, and e^88.8 is already infinite in f32");
    assert_eq!((report.phase, report.op.as_str()), (Phase::Forward, "exp"));
    assert!(report.location.ends_with(&format!("09_nan_hunt.rs:{}", line_of("let e = logits.exp();"))));
    assert!(report.value.is_infinite() && report.inputs_finite == [true], "{report}");
    assert!(largest > 88.8);

    // ANCHOR: fix
    // 3. The fixes. The engine's cross-entropy computes ln Σ e^z as m + ln Σ e^(z − m), with m
    //    the row's largest logit, so nothing overflows: the same loss, finite.
    let tape = Tape::new();
    tape.set_check_finite(true);
    let stable = logits(&tape, &store, &pixels).cross_entropy(&classes, CrossEntropyOptions::default());
    println!("the same loss, computed stably: {:.2}", stable.value().item());
    // And the cause: raw intensities make logits in the hundreds and gradients to match. Scaled
    // to [−1, 1], the same classifier trains with plain SGD and the check stays quiet.
    let scaled = pixels.map(|v| v / 127.5 - 1.0);
    let mut sgd = Sgd::plain(0.5);
    for _ in 0..100 {
        let tape = Tape::new();
        tape.set_check_finite(true);
        let grads = hand_written_loss(logits(&tape, &store, &scaled), &classes).backward();
        sgd.step(&store, &grads);
    }
    // ANCHOR_END: fix
    assert!(stable.value().item().is_finite());
    let tape = Tape::new();
    let z = logits(&tape, &store, &scaled).value(); // (256, 2)
    let correct = classes.iter().enumerate().filter(|&(i, &c)| usize::from(z.at(&[i, 1]) > z.at(&[i, 0])) == c).count();
    let accuracy = correct as f64 / classes.len() as f64;
    println!("after 100 steps on scaled pixels: training accuracy {:.1}%", 100.0 * accuracy);
    assert!(accuracy >= 0.99, "the fixed model should separate the two classes: {accuracy}");

    println!("09_nan_hunt: all checks passed");
}

/// The 1-based line of this file that contains `code`.
fn line_of(code: &str) -> usize {
    let source = include_str!("09_nan_hunt.rs");
    1 + source.lines().position(|l| l.contains(code)).expect("the line is in this file")
}
