//! A shape mistake in any op panics with a message naming the op, the shapes and the reason.
//! All messages are kept in one snapshot, so a worse message shows up in review.

use autograd::{CrossEntropyOptions, Tape, Tensor, Var};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

fn z(dims: &[usize]) -> Tensor<f32> {
    Tensor::zeros(dims)
}

#[test]
fn shape_errors_name_the_op_and_the_shapes() {
    type Misuse = Box<dyn FnOnce()>;
    let cases: Vec<(&str, Misuse)> = vec![
        ("add", Box::new(|| drop(&z(&[2, 3]) + &z(&[4])))),
        (
            "mul on vars",
            Box::new(|| {
                let t = Tape::new();
                let _ = t.var(z(&[2, 3])) * t.var(z(&[3, 2]));
            }),
        ),
        ("matmul inner", Box::new(|| drop(z(&[2, 3]).matmul(&z(&[4, 5]))))),
        ("matmul transposed", Box::new(|| drop(z(&[2, 3]).matmul_t(&z(&[4, 5]), false, true)))),
        ("matmul vector", Box::new(|| drop(z(&[3]).matmul(&z(&[3, 4]))))),
        ("matmul batch", Box::new(|| drop(z(&[2, 3, 4]).matmul(&z(&[5, 4, 6]))))),
        ("reshape", Box::new(|| drop(z(&[2, 3]).reshape([4, 2])))),
        ("permute", Box::new(|| drop(z(&[2, 3]).permute(&[1])))),
        ("transpose", Box::new(|| drop(z(&[2, 3]).transpose(0, 2)))),
        ("broadcast_to", Box::new(|| drop(z(&[2, 3]).broadcast_to([3, 3])))),
        ("sum axis", Box::new(|| drop(z(&[2, 3]).sum(&[2], false)))),
        ("sum axis twice", Box::new(|| drop(z(&[2, 3]).sum(&[1, -1], false)))),
        ("max axis", Box::new(|| drop(z(&[2, 3]).max(&[-3], false)))),
        ("narrow", Box::new(|| drop(z(&[2, 4]).narrow(1, 3, 2)))),
        ("concat", Box::new(|| drop(Tensor::concat(&[z(&[2, 3]), z(&[2, 3, 1])], 0)))),
        ("split", Box::new(|| drop(z(&[5, 2]).split(0, &[2, 2])))),
        ("index_select", Box::new(|| drop(z(&[3, 2]).index_select(0, &[0, 3])))),
        ("embedding", Box::new(|| drop(z(&[3, 2]).embedding(&[0, 1, 2], [2, 2])))),
        ("softmax", Box::new(|| drop(z(&[2, 3]).softmax(2)))),
        ("layer_norm", Box::new(|| drop(z(&[2, 3]).layer_norm(&[2], None, None, 1e-5)))),
        ("layer_norm bias", Box::new(|| drop(z(&[2, 3]).layer_norm(&[3], None, Some(&z(&[2, 3])), 1e-5)))),
        ("linear features", Box::new(|| drop(z(&[2, 3]).linear(&z(&[4, 2]), None)))),
        ("linear bias", Box::new(|| drop(z(&[2, 3]).linear(&z(&[4, 3]), Some(&z(&[3])))))),
        ("attention heads", Box::new(|| drop(z(&[2, 3, 6]).attention_weights(&z(&[2, 4, 6]), 4, None)))),
        ("attention keys", Box::new(|| drop(z(&[2, 3, 6]).attention_weights(&z(&[3, 4, 6]), 2, None)))),
        (
            "attention mask",
            Box::new(|| drop(z(&[2, 3, 6]).attention_weights(&z(&[2, 4, 6]), 2, Some(&z(&[2, 1, 1, 3]))))),
        ),
        ("attend", Box::new(|| drop(z(&[2, 2, 3, 4]).attend(&z(&[2, 5, 6]))))),
        ("masked_fill", Box::new(|| drop(z(&[1, 3]).masked_fill(&z(&[2, 3]), 0.0)))),
        ("select", Box::new(|| drop(Tensor::select(&z(&[2]), &z(&[3]), &z(&[3]))))),
        ("cross_entropy rows", Box::new(|| drop(z(&[4, 3]).cross_entropy(&[0, 1], CrossEntropyOptions::default())))),
        ("cross_entropy target", Box::new(|| drop(z(&[2, 3]).cross_entropy(&[0, 3], CrossEntropyOptions::default())))),
        ("from_vec", Box::new(|| drop(Tensor::from_vec(vec![1.0f32; 5], [2, 3])))),
        (
            "backward of a non-scalar",
            Box::new(|| {
                let t = Tape::new();
                drop(t.var(z(&[2, 3])).exp().backward());
            }),
        ),
        (
            "backward of a constant",
            Box::new(|| {
                let t = Tape::new();
                drop(t.constant(z(&[1])).exp().backward());
            }),
        ),
        (
            "gradient of a constant",
            Box::new(|| {
                let t = Tape::new();
                let c = t.constant(z(&[1]));
                let x = t.var(z(&[1]));
                let g = (x * c).sum_all().backward();
                drop(g[c].clone());
            }),
        ),
        (
            "gradient of an intermediate",
            Box::new(|| {
                let t = Tape::new();
                let x = t.var(z(&[1]));
                let h = x.exp();
                let g = h.sum_all().backward();
                drop(g[h].clone());
            }),
        ),
    ];
    let report: Vec<String> = cases
        .into_iter()
        .map(|(what, f)| {
            // Locations differ by line; keep the snapshot about the words.
            let msg = message(f);
            let msg = msg.split("; it was created at ").next().unwrap().to_string()
                + if msg.contains("; it was created at ") { "; it was created at …" } else { "" };
            format!("{what}: {msg}")
        })
        .collect();
    insta::assert_snapshot!(report.join("\n"));
}

/// An op with no derivative for a tracked input panics in backward instead of dropping it.
#[test]
fn missing_derivative_panics() {
    struct Round;
    impl autograd::Op<f64> for Round {
        fn name(&self) -> &'static str {
            "round"
        }
        fn vjp<M: autograd::Math<f64>>(&self, _: autograd::Vjp<'_, M>) -> autograd::InputGrads<M> {
            vec![None]
        }
    }
    let msg = message(|| {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![1.4f64], [1]));
        let y: Var<'_, f64> = x.apply(Round, &[x], x.value().map(f64::round));
        drop(y.sum_all().backward());
    });
    assert!(msg.starts_with("backward: round (node %1, "), "{msg}");
    assert!(msg.ends_with("has no derivative with respect to its input 0, which requires a gradient; detach() that input if no gradient should flow through it"), "{msg}");
}

/// A rule that returns a gradient of the wrong shape is stopped at once, naming the op.
#[test]
fn wrong_gradient_shape_panics() {
    struct Sloppy;
    impl autograd::Op<f64> for Sloppy {
        fn name(&self) -> &'static str {
            "sloppy"
        }
        // Forgets to sum the broadcast gradient back to the input's shape.
        fn vjp<M: autograd::Math<f64>>(&self, v: autograd::Vjp<'_, M>) -> autograd::InputGrads<M> {
            vec![Some(v.grad.clone())]
        }
    }
    let msg = message(|| {
        let tape = Tape::new();
        let b = tape.var(Tensor::<f64>::zeros([5]));
        let y: Var<'_, f64> = b.apply(Sloppy, &[b], Tensor::zeros([4, 5]));
        drop(y.sum_all().backward());
    });
    assert!(msg.starts_with("backward: sloppy (node %1, "), "{msg}");
    assert!(msg.contains("returned a gradient of shape [4, 5] for its input 0, which has shape [5]"), "{msg}");
}
