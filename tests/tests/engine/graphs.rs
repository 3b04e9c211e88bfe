//! Snapshots of the forward tape and of the gradient graph recorded by `backward_with_graph`
//! for three small programs, as text dumps and as Graphviz DOT.

use autograd::{CrossEntropyOptions, Tape, Tensor, Var};

/// The dump with line numbers inside the engine's own sources replaced by `N`, so editing an
/// op file does not change a snapshot about graph structure. Test-file lines stay.
fn stable(dump: String) -> String {
    dump.lines()
        .map(|line| match line.rsplit_once("  ") {
            Some((head, loc)) if loc.starts_with("autograd/src/") => {
                let file = loc.rsplit_once(':').map_or(loc, |(f, _)| f);
                format!("{head}  {file}:N")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ramp(dims: &[usize], scale: f64) -> Tensor<f64> {
    let n: usize = dims.iter().product();
    Tensor::from_fn(dims, |i| ((i * 37 % 17) as f64 - 8.0) * scale / n as f64)
}

/// y = x·x + x
fn square_plus<'t>(tape: &'t Tape<f64>) -> (Var<'t, f64>, Var<'t, f64>) {
    let x = tape.named_var("x", Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    let y = (x * x + x).sum_all();
    (x, y)
}

/// A two-layer MLP with a cross-entropy loss.
fn mlp<'t>(tape: &'t Tape<f64>) -> (Var<'t, f64>, Var<'t, f64>) {
    let x = tape.named_var("x", ramp(&[4, 3], 1.0));
    let w1 = tape.named_var("w1", ramp(&[3, 5], 2.0));
    let b1 = tape.named_var("b1", ramp(&[5], 0.5));
    let w2 = tape.named_var("w2", ramp(&[5, 2], 2.0));
    let h = (x.matmul(w1) + b1).relu();
    let logits = h.matmul(w2);
    let loss = logits.cross_entropy(&[0, 1, 1, 0], CrossEntropyOptions::default());
    (w1, loss)
}

/// One attention head: softmax(QKᵀ/√d)V.
fn attention<'t>(tape: &'t Tape<f64>) -> (Var<'t, f64>, Var<'t, f64>) {
    let q = tape.named_var("q", ramp(&[3, 4], 1.0));
    let k = tape.named_var("k", ramp(&[3, 4], 1.5));
    let v = tape.named_var("v", ramp(&[3, 4], 0.7));
    let scores = q.matmul_t(k, false, true) * (1.0 / 2.0);
    let out = scores.softmax(-1).matmul(v);
    (q, out.sum_all())
}

type Program = for<'t> fn(&'t Tape<f64>) -> (Var<'t, f64>, Var<'t, f64>);

fn forward_dump(program: Program) -> String {
    let tape = Tape::new();
    program(&tape);
    stable(tape.dump())
}

/// The tape after `backward_with_graph`: forward nodes, then the recorded backward pass.
fn gradient_graph_dump(program: Program) -> String {
    let tape = Tape::new();
    let (x, loss) = program(&tape);
    let g = loss.backward_with_graph()[x];
    let _ = g;
    stable(tape.dump())
}

#[test]
fn square_plus_graphs() {
    insta::assert_snapshot!("square_plus_forward", forward_dump(square_plus));
    insta::assert_snapshot!("square_plus_gradient", gradient_graph_dump(square_plus));
}

#[test]
fn mlp_graphs() {
    insta::assert_snapshot!("mlp_forward", forward_dump(mlp));
    insta::assert_snapshot!("mlp_gradient", gradient_graph_dump(mlp));
}

#[test]
fn attention_head_graphs() {
    insta::assert_snapshot!("attention_forward", forward_dump(attention));
    insta::assert_snapshot!("attention_gradient", gradient_graph_dump(attention));
}

#[test]
fn dot_export() {
    let tape = Tape::new();
    square_plus(&tape);
    insta::assert_snapshot!("square_plus_dot", tape.to_dot());
}

#[test]
fn svg_export() {
    let tape = Tape::new();
    square_plus(&tape);
    insta::assert_snapshot!("square_plus_svg", tape.to_svg());
}

/// The graph pictures in the book (docs/images) are drawn by `Tape::to_svg` from the programs
/// above; this fails when a committed picture is out of date. Redraw them with
/// `AUTOGRAD_WRITE_PICTURES=1 cargo test -p tests --test engine book_pictures`.
#[test]
fn book_pictures_are_current() {
    let draw = |program: Program, backward: bool| {
        let tape = Tape::new();
        let (x, loss) = program(&tape);
        if backward {
            let _ = loss.backward_with_graph()[x];
        }
        tape.to_svg()
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/images");
    let write = std::env::var("AUTOGRAD_WRITE_PICTURES").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    let pictures = [
        ("square_plus_forward", draw(square_plus, false)),
        ("square_plus_backward", draw(square_plus, true)),
        ("mlp_forward", draw(mlp, false)),
        ("attention_head_backward", draw(attention, true)),
    ];
    for (name, svg) in pictures {
        let path = format!("{dir}/{name}.svg");
        if write {
            std::fs::write(&path, &svg).unwrap_or_else(|e| panic!("{path}: {e}"));
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(format!("docs/images/{name}.svg"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {}; redraw with AUTOGRAD_WRITE_PICTURES=1 cargo test -p tests --test engine book_pictures",
        stale.join(", ")
    );
}
