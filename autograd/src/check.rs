//! The finite-value check: with [`Tape::set_check_finite`] (or `AUTOGRAD_CHECK=1`), every value
//! is checked for NaN and ±∞ as it is recorded, and every gradient as backward computes it. The
//! first one found stops the computation with a [`NonFiniteReport`] that names the op, its
//! inputs and the source line of the forward call.

use crate::kernels::{CHUNK, PARALLEL_THRESHOLD};
use crate::tape::{Node, Origin};
use crate::{Element, Shape, Tape, Tensor};
use rayon::prelude::*;
use std::cell::Cell;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

/// Whether the check was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// In a value an op computed (or a leaf put on the tape).
    Forward,
    /// In a gradient a vector-Jacobian product computed.
    Backward,
    /// In the sum of the gradients of a value used by several ops: each part was finite, and
    /// adding them overflowed.
    Accumulation,
}

/// Where the first NaN or ±∞ appeared, and what led to it. Made by the finite-value check
/// ([`Tape::set_check_finite`]); caught with [`catch_nonfinite`], or the panic message when
/// nothing catches it.
///
/// ```
/// use autograd::{Tape, Tensor, catch_nonfinite};
/// let tape = Tape::<f64>::new();
/// tape.set_check_finite(true);
/// let x = tape.var(Tensor::from_vec(vec![1.0, -1.0], [2]));
/// let report = catch_nonfinite(|| x.log()).unwrap_err();
/// assert_eq!((report.op.as_str(), report.index, report.inputs_finite.as_slice()), ("log", 1, &[true][..]));
/// assert!(report.location.ends_with(&format!("{}", line!() - 2)), "{}", report.location);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NonFiniteReport {
    /// An op's output, or a gradient.
    pub phase: Phase,
    /// The node of the op (for a gradient: the op whose rule computed it).
    pub node: usize,
    /// The op's name with its attributes, like `softmax[axis=-1]`; for a leaf, its kind.
    pub op: String,
    /// The forward call that recorded the op, as `file:line`.
    pub location: String,
    /// The shapes of the op's inputs.
    pub input_shapes: Vec<Shape>,
    /// Whether each input held only finite values (in the forward pass).
    pub inputs_finite: Vec<bool>,
    /// For a gradient: which of the op's inputs it is for, and whether the gradient flowing
    /// into the op's output was finite.
    pub gradient: Option<GradientOf>,
    /// The shape of the tensor holding the value.
    pub shape: Shape,
    /// The flat index of the first non-finite element.
    pub index: usize,
    /// That element: NaN, inf or -inf.
    pub value: f64,
    /// How many elements of the tensor are not finite.
    pub count: usize,
}

/// Which gradient a backward report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradientOf {
    /// The position of the input among the op's inputs.
    pub input: usize,
    /// That input's node.
    pub node: usize,
    /// True if the gradient flowing into the op's output was finite: if so, this op's rule
    /// made the non-finite value.
    pub upstream_finite: bool,
}

impl fmt::Display for NonFiniteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inputs: Vec<String> = self
            .input_shapes
            .iter()
            .zip(&self.inputs_finite)
            .map(|(s, &ok)| format!("{s} {}", if ok { "finite" } else { "NOT finite" }))
            .collect();
        let inputs = if inputs.is_empty() { "none (a leaf)".to_string() } else { inputs.join(", ") };
        let total = crate::memory::plural(self.shape.numel(), "value");
        let what = format!("{} at index {} ({} of {total})", self.value, self.index, self.count);
        match (self.phase, self.gradient) {
            (Phase::Accumulation, _) => {
                writeln!(
                    f,
                    "non-finite gradient in the backward pass: the sum of the gradients flowing into {} (%{}), \
                     recorded at {}",
                    self.op, self.node, self.location
                )?;
                writeln!(f, "  the sum {} holds {what}", self.shape)?;
                write!(
                    f,
                    "  each gradient added was finite: the value is used by several ops, and their sum overflowed"
                )
            }
            (_, None) => {
                writeln!(f, "non-finite value in the forward pass: {} (%{}) at {}", self.op, self.node, self.location)?;
                writeln!(f, "  output {} holds {what}", self.shape)?;
                write!(f, "  inputs: {inputs}")
            }
            (_, Some(g)) => {
                writeln!(
                    f,
                    "non-finite gradient in the backward pass: the rule of {} (%{}), recorded at {}",
                    self.op, self.node, self.location
                )?;
                writeln!(f, "  gradient for its input {} (%{}, {}) holds {what}", g.input, g.node, self.shape)?;
                let upstream = if g.upstream_finite {
                    "finite, so this rule made it"
                } else {
                    "NOT finite: an op recorded after it started this"
                };
                write!(f, "  the gradient flowing into {} was {upstream}; forward inputs: {inputs}", self.op)
            }
        }
    }
}

impl std::error::Error for NonFiniteReport {}

/// True if `AUTOGRAD_CHECK=1` is set (read once).
pub(crate) fn enabled_by_environment() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("AUTOGRAD_CHECK").is_ok_and(|v| v == "1"))
}

/// The index of the first non-finite element and how many there are, or `None` if all are
/// finite. The common all-finite case is one pass with no early exit, which vectorizes.
pub(crate) fn nonfinite<T: Element>(data: &[T]) -> Option<(usize, usize)> {
    let finite =
        if data.len() < PARALLEL_THRESHOLD { T::all_finite(data) } else { data.par_chunks(CHUNK).all(T::all_finite) };
    if finite {
        return None;
    }
    let first = data.iter().position(|v| !v.is_finite()).expect("a non-finite element");
    Some((first, data.iter().filter(|v| !v.is_finite()).count()))
}

thread_local! {
    /// How many `catch_nonfinite` calls are running on this thread.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f`, returning the [`NonFiniteReport`] of the finite-value check instead of panicking
/// if it stops `f`. Other panics pass through.
///
/// Without this, a report is a panic whose message is the report, at the source line of the
/// forward call (or of `backward()`).
pub fn catch_nonfinite<R>(f: impl FnOnce() -> R) -> Result<R, Box<NonFiniteReport>> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    match result {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<NonFiniteReport>() {
            Ok(report) => Err(report),
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

/// Stops the computation with `report`: a silent unwind to [`catch_nonfinite`] if one is
/// waiting, otherwise a panic whose message is the report.
#[track_caller]
fn stop(report: NonFiniteReport) -> ! {
    if CATCHING.with(Cell::get) > 0 {
        // `resume_unwind` does not run the panic hook, so nothing is printed.
        std::panic::resume_unwind(Box::new(report))
    }
    panic!("{report}")
}

/// Shapes and finiteness of node `id`'s inputs, from the tape.
fn inputs_of<T: Element>(tape: &Tape<T>, inputs: &[usize]) -> (Vec<Shape>, Vec<bool>) {
    tape.with_nodes(|nodes| {
        inputs
            .iter()
            .map(|&i| {
                let n = &nodes[i];
                (n.shape.clone(), n.value.as_ref().is_none_or(|v| nonfinite(v.data()).is_none()))
            })
            .unzip()
    })
}

/// Checks a node about to be recorded as `id`; stops with a report if its value is not finite.
/// An op that only moves values needs no scan when its inputs were found finite.
#[track_caller]
pub(crate) fn check_recorded<T: Element>(tape: &Tape<T>, id: usize, node: &Node<T>) {
    if let Origin::Op(op) = &node.origin
        && op.moves_values()
        && tape.with_nodes(|nodes| node.inputs.iter().all(|&i| nodes[i].known_finite))
    {
        return;
    }
    let Some(value) = node.value.as_ref() else { return };
    let Some((index, count)) = nonfinite(value.data()) else { return };
    let (input_shapes, inputs_finite) = inputs_of(tape, &node.inputs);
    stop(NonFiniteReport {
        phase: Phase::Forward,
        node: id,
        op: crate::graph::node_label(node),
        location: crate::graph::short_location(node.location),
        input_shapes,
        inputs_finite,
        gradient: None,
        shape: value.shape().clone(),
        index,
        value: value.data()[index].to_f64(),
        count,
    })
}

/// Checks the sum of the gradients flowing into node `id` (used by several ops), whose parts
/// were each found finite.
#[track_caller]
pub(crate) fn check_sum<T: Element>(tape: &Tape<T>, id: usize, sum: &Tensor<T>) {
    let Some((index, count)) = nonfinite(sum.data()) else { return };
    let (op, location) =
        tape.with_node(id, |n| (crate::graph::node_label(n), crate::graph::short_location(n.location)));
    stop(NonFiniteReport {
        phase: Phase::Accumulation,
        node: id,
        op,
        location,
        input_shapes: Vec::new(),
        inputs_finite: Vec::new(),
        gradient: None,
        shape: sum.shape().clone(),
        index,
        value: sum.data()[index].to_f64(),
        count,
    })
}

/// Checks the gradient that the rule of node `id` computed for its input number `input`.
#[track_caller]
pub(crate) fn check_gradient<T: Element>(
    tape: &Tape<T>,
    id: usize,
    input: usize,
    grad: &Tensor<T>,
    upstream: &Tensor<T>,
) {
    let Some((index, count)) = nonfinite(grad.data()) else { return };
    let (op, location, inputs) = tape
        .with_node(id, |n| (crate::graph::node_label(n), crate::graph::short_location(n.location), n.inputs.clone()));
    let (input_shapes, inputs_finite) = inputs_of(tape, &inputs);
    stop(NonFiniteReport {
        phase: Phase::Backward,
        node: id,
        op,
        location,
        input_shapes,
        inputs_finite,
        gradient: Some(GradientOf {
            input,
            node: inputs[input],
            upstream_finite: nonfinite(upstream.data()).is_none(),
        }),
        shape: grad.shape().clone(),
        index,
        value: grad.data()[index].to_f64(),
        count,
    })
}
