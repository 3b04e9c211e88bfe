//! `Tape` and `Var`: the arena that records operations, and the handles models compute with.

use crate::op::{DynOp, Untracked};
use crate::{Element, Op, Param, Shape, Tensor};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::Location;
use std::rc::Rc;

/// A record of computations, in the order they ran.
///
/// The tape is an arena: a `Vec` of nodes where a node's id is its index. Inputs always have
/// smaller ids than the ops that use them, so the tape order is a topological order and
/// backward is one reverse scan. Make a new tape for each step of training; dropping it frees
/// every intermediate value at once.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::new();
/// let x = tape.var(Tensor::from_vec(vec![3.0f64], [1]));
/// let y = x * x + x; // dy/dx = 2x + 1 = 7
/// let grads = y.sum_all().backward();
/// assert_eq!(grads[x].to_vec(), vec![7.0]);
/// ```
pub struct Tape<T: Element = f32> {
    nodes: RefCell<Vec<Node<T>>>,
    grad_enabled: Cell<bool>,
    /// Param id → node id, so a parameter used twice in a step is one leaf.
    params: RefCell<HashMap<u64, usize>>,
    /// Check every value for NaN and ±∞ as it is recorded or computed by backward.
    check_finite: Cell<bool>,
    /// Record the peak bytes held during each backward pass.
    track_memory: Cell<bool>,
    /// The peak of the last backward pass, when tracked.
    pub(crate) backward_peak: Cell<Option<usize>>,
    /// Set while backward records a rule: its values are checked once, as the gradient.
    pub(crate) in_rule: Cell<bool>,
}

/// How a node came to be.
#[derive(Clone)]
pub(crate) enum Origin<T: Element> {
    /// A leaf: an input, a constant, a parameter or a detached value.
    Leaf { kind: LeafKind, name: Option<Rc<str>> },
    /// The output of an op applied to earlier nodes.
    Op(Rc<dyn DynOp<T>>),
}

/// The kinds of leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeafKind {
    Var,
    Constant,
    Param,
    Detached,
}

impl LeafKind {
    /// The kind as dumps, pictures and reports name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeafKind::Var => "var",
            LeafKind::Constant => "constant",
            LeafKind::Param => "param",
            LeafKind::Detached => "detached",
        }
    }

    /// The fill colour of a leaf in pictures: parameters blue, vars green, the rest grey.
    pub(crate) fn fill(self) -> &'static str {
        match self {
            LeafKind::Param => "#cfe2f3",
            LeafKind::Var => "#d9ead3",
            _ => "#eeeeee",
        }
    }
}

/// One recorded value.
pub(crate) struct Node<T: Element> {
    pub origin: Origin<T>,
    pub inputs: SmallVec<[usize; 3]>,
    /// The value, until `backward` frees it (see [`Var::backward`]).
    pub value: Option<Tensor<T>>,
    /// The value's shape, kept when the value is freed.
    pub shape: Shape,
    pub requires_grad: bool,
    pub retain_grad: bool,
    /// The finite-value check found (or proved) the value finite.
    pub known_finite: bool,
    pub location: &'static Location<'static>,
}

impl<T: Element> Node<T> {
    /// Why node `id` has no value any more.
    pub fn freed_message(&self, id: usize) -> String {
        format!(
            "{} ({}): this value was freed by backward(), which releases each intermediate value \
             as soon as no gradient rule needs it; read it before backward(), or differentiate \
             with backward_retain_graph() to keep every value",
            crate::graph::node_line(id, self),
            crate::graph::short_location(self.location)
        )
    }
}

/// A handle to a value on a tape: small, `Copy`, and the thing models compute with.
///
/// Arithmetic operators and methods on `Var` compute the value at once and record the op, so a
/// model reads like the math: `(x.matmul(w) + b).relu()`.
#[derive(Clone, Copy)]
pub struct Var<'t, T: Element = f32> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: usize,
}

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Tape<T> {
    /// An empty tape with gradient tracking on.
    ///
    /// The finite-value check ([`Tape::set_check_finite`]) starts on when the environment
    /// variable `AUTOGRAD_CHECK` is `1`.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Vec::new()),
            grad_enabled: Cell::new(true),
            params: RefCell::default(),
            check_finite: Cell::new(crate::check::enabled_by_environment()),
            track_memory: Cell::new(false),
            backward_peak: Cell::new(None),
            in_rule: Cell::new(false),
        }
    }

    /// Puts `value` on the tape as a leaf whose gradient will be computed.
    #[track_caller]
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        self.leaf(value, LeafKind::Var, None, self.grad_enabled.get())
    }

    /// Like [`Tape::var`], with a name shown in graph dumps.
    #[track_caller]
    pub fn named_var(&self, name: &str, value: Tensor<T>) -> Var<'_, T> {
        self.leaf(value, LeafKind::Var, Some(name.into()), self.grad_enabled.get())
    }

    /// Puts `value` on the tape as a constant: no gradient flows into it.
    #[track_caller]
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        self.leaf(value, LeafKind::Constant, None, false)
    }

    /// Like [`Tape::constant`], with a name shown in graph dumps (data inputs, targets).
    #[track_caller]
    pub fn named_constant(&self, name: &str, value: Tensor<T>) -> Var<'_, T> {
        self.leaf(value, LeafKind::Constant, Some(name.into()), false)
    }

    /// Puts a parameter on the tape as a named leaf. Calling this twice with one parameter in
    /// one tape returns the same node, so tied weights accumulate their gradients.
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'_, T> {
        if let Some(&id) = self.params.borrow().get(&p.id()) {
            return Var { tape: self, id };
        }
        let v = self.leaf(p.value(), LeafKind::Param, Some(p.name().into()), self.grad_enabled.get());
        self.params.borrow_mut().insert(p.id(), v.id);
        v
    }

    /// Turns gradient tracking off until the guard is dropped, like `torch.no_grad()`. Values are
    /// still computed and recorded, but nothing created meanwhile requires a gradient, and ops
    /// keep none of the state their gradient rules would need (masks, saved indices): the tape
    /// holds only the values.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::ones([2]));
    /// let y = {
    ///     let _guard = tape.no_grad();
    ///     x * 2.0
    /// };
    /// assert!(x.requires_grad());
    /// assert!(!y.requires_grad());
    /// ```
    pub fn no_grad(&self) -> NoGradGuard<'_, T> {
        let previous = self.grad_enabled.replace(false);
        NoGradGuard { tape: self, previous }
    }

    /// True unless inside a [`Tape::no_grad`] scope.
    pub fn is_grad_enabled(&self) -> bool {
        self.grad_enabled.get()
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True if nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[track_caller]
    fn leaf(&self, value: Tensor<T>, kind: LeafKind, name: Option<Rc<str>>, requires_grad: bool) -> Var<'_, T> {
        self.push(Node {
            origin: Origin::Leaf { kind, name },
            inputs: SmallVec::new(),
            shape: value.shape().clone(),
            value: Some(value),
            requires_grad,
            retain_grad: false,
            known_finite: false,
            location: Location::caller(),
        })
    }

    // ANCHOR: record
    /// Records `op` applied to `inputs` with the already computed `value`.
    #[track_caller]
    pub(crate) fn record(&self, op: Rc<dyn DynOp<T>>, inputs: &[Var<'_, T>], value: Tensor<T>) -> Var<'_, T> {
        let requires_grad = self.grad_enabled.get() && inputs.iter().any(|v| v.requires_grad());
        for v in inputs {
            assert!(std::ptr::eq(v.tape, self), "{}: an input belongs to another tape", op.name());
        }
        // Backward will never run this node's rule: keep its name, not the state the rule needs,
        // so that inference under no_grad holds only the values themselves.
        let op: Rc<dyn DynOp<T>> = if requires_grad {
            op
        } else {
            Rc::new(Untracked { name: op.name(), attributes: op.attributes(), moves_values: op.moves_values() })
        };
        self.push(Node {
            origin: Origin::Op(op),
            inputs: inputs.iter().map(|v| v.id).collect(),
            shape: value.shape().clone(),
            value: Some(value),
            requires_grad,
            retain_grad: false,
            known_finite: false,
            location: Location::caller(),
        })
    }
    // ANCHOR_END: record

    #[track_caller]
    fn push(&self, mut node: Node<T>) -> Var<'_, T> {
        if self.check_finite.get() && !self.in_rule.get() {
            let id = self.len();
            crate::check::check_recorded(self, id, &node);
            node.known_finite = true;
        }
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var { tape: self, id: nodes.len() - 1 }
    }

    /// Turns the finite-value check on or off for what is recorded from now on. While it is on,
    /// every value an op records is checked for NaN and ±∞ as it is recorded, and every gradient
    /// as backward computes it; the first one found stops the computation with a
    /// [`NonFiniteReport`](crate::NonFiniteReport) naming the op and the source line (see
    /// [`catch_nonfinite`](crate::catch_nonfinite)). Off by default, unless the environment
    /// variable `AUTOGRAD_CHECK` is `1`; it costs a pass over each value.
    pub fn set_check_finite(&self, on: bool) {
        self.check_finite.set(on);
    }

    /// True if the finite-value check is on.
    pub fn checks_finite(&self) -> bool {
        self.check_finite.get()
    }

    /// Turns on or off the measurement of the peak memory held during each backward pass,
    /// reported by [`Tape::memory`]. Off by default: it costs a hash-map update per value.
    pub fn set_track_memory(&self, on: bool) {
        self.track_memory.set(on);
    }

    /// True if backward passes measure their peak memory.
    pub fn tracks_memory(&self) -> bool {
        self.track_memory.get()
    }

    /// Drops node `id`'s value (backward does this once no rule needs it).
    pub(crate) fn free_value(&self, id: usize) -> Option<Tensor<T>> {
        self.nodes.borrow_mut()[id].value.take()
    }

    /// Runs `f` on node `id`. The borrow ends before `f`'s result is used, so nothing holds a
    /// reference into the arena across a push.
    pub(crate) fn with_node<R>(&self, id: usize, f: impl FnOnce(&Node<T>) -> R) -> R {
        f(&self.nodes.borrow()[id])
    }

    pub(crate) fn with_nodes<R>(&self, f: impl FnOnce(&[Node<T>]) -> R) -> R {
        f(&self.nodes.borrow())
    }

    pub(crate) fn set_retain_grad(&self, id: usize) {
        self.nodes.borrow_mut()[id].retain_grad = true;
    }

    /// The first node whose value holds a NaN or an infinity, described with the op that made
    /// it and where in the source it was called; `None` if every value the tape still holds is
    /// finite. Backward frees intermediate values, so look before it, or record with the
    /// finite-value check on ([`Tape::set_check_finite`]), which looks as values are made.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 0.0], [2]));
    /// let _y = x.log();
    /// let report = tape.find_nonfinite().unwrap();
    /// assert!(report.starts_with("%1 = log(%0) [2] holds -inf at index 1"), "{report}");
    /// ```
    pub fn find_nonfinite(&self) -> Option<String> {
        self.with_nodes(|nodes| {
            nodes.iter().enumerate().find_map(|(id, node)| {
                let value = node.value.as_ref()?;
                let (bad, _) = crate::check::nonfinite(value.data())?;
                Some(format!("{} holds {} at index {bad}", crate::graph::node_line(id, node), value.data()[bad]))
            })
        })
    }
}

/// Restores the previous gradient mode when dropped. Made by [`Tape::no_grad`].
pub struct NoGradGuard<'t, T: Element> {
    tape: &'t Tape<T>,
    previous: bool,
}

impl<T: Element> Drop for NoGradGuard<'_, T> {
    fn drop(&mut self) {
        self.tape.grad_enabled.set(self.previous);
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// The value (a cheap clone sharing the buffer).
    ///
    /// # Panics
    /// If this is an intermediate value that [`Var::backward`] has already freed.
    #[track_caller]
    pub fn value(&self) -> Tensor<T> {
        match self.tape.with_node(self.id, |n| n.value.clone().ok_or_else(|| n.freed_message(self.id))) {
            Ok(v) => v,
            Err(message) => panic!("{message}"),
        }
    }

    /// The shape of the value (known even after backward has freed it).
    pub fn shape(&self) -> Shape {
        self.tape.with_node(self.id, |n| n.shape.clone())
    }

    /// The dimensions of the value.
    pub fn dims(&self) -> Vec<usize> {
        self.tape.with_node(self.id, |n| n.shape.dims().to_vec())
    }

    /// The node id: this value's index on the tape.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The tape this value lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// True if gradients flow back through this value.
    pub fn requires_grad(&self) -> bool {
        self.tape.with_node(self.id, |n| n.requires_grad)
    }

    /// The same value as a new leaf that no gradient flows through, like `tensor.detach()`.
    #[track_caller]
    pub fn detach(self) -> Var<'t, T> {
        self.tape.leaf(self.value(), LeafKind::Detached, None, false)
    }

    /// Asks [`Var::backward`] to keep this intermediate value's gradient too (by default only
    /// leaves keep theirs), like `tensor.retain_grad()`.
    pub fn retain_grad(self) -> Self {
        self.tape.set_retain_grad(self.id);
        self
    }

    /// Records a custom [`Op`] applied to `inputs`, whose forward result is `value`.
    ///
    /// `self` only supplies the tape; see [`Op`] for an example.
    #[track_caller]
    pub fn apply(self, op: impl Op<T>, inputs: &[Var<'t, T>], value: Tensor<T>) -> Var<'t, T> {
        self.tape.record(Rc::new(op), inputs, value)
    }

    /// Records a built-in op whose forward value is already computed.
    #[track_caller]
    pub(crate) fn record(tape: &'t Tape<T>, op: impl Op<T>, inputs: &[Var<'t, T>], value: Tensor<T>) -> Var<'t, T> {
        tape.record(Rc::new(op), inputs, value)
    }
}

impl<T: Element> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tape.with_node(self.id, |n| n.value.clone()) {
            Some(value) => write!(f, "Var(%{}, {value})", self.id),
            None => write!(f, "Var(%{}, {}, freed by backward)", self.id, self.shape()),
        }
    }
}

impl<T: Element> Tape<T> {
    /// Param id → node id for every parameter put on this tape.
    pub(crate) fn param_nodes(&self) -> HashMap<u64, usize> {
        self.params.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    /// An op no gradient flows through keeps its name for dumps, not the state its rule would
    /// need: under no_grad, masked_fill does not hold on to its mask.
    #[test]
    fn untracked_ops_keep_no_state() {
        let tape = Tape::<f32>::new();
        let x = tape.var(Tensor::ones([2, 3]));
        let mask = Tensor::from_vec(vec![1.0, 0.0, 0.0], [3]);
        let tracked = x.masked_fill(&mask, -1.0);
        assert_eq!(mask.holders(), 2, "a tracked op keeps its mask for its rule");
        let untracked = {
            let _guard = tape.no_grad();
            x.masked_fill(&mask, -1.0)
        };
        assert_eq!(mask.holders(), 2, "the untracked op dropped its copy");
        assert_eq!(untracked.value().to_vec(), tracked.value().to_vec());
        assert!(tape.dump().lines().nth(2).unwrap().starts_with("%2 = masked_fill(%0) [2, 3]"), "{}", tape.dump());
    }
}
