//! The backward pass: one reverse scan of the tape, on tensors (`backward`) or recorded on the
//! tape itself (`backward_with_graph`), sharing one loop.

use crate::memory::PeakTracker;
use crate::op::{DynOp, Vjp};
use crate::tape::Origin;
use crate::{Element, Math, Param, ParamStore, Tape, Tensor, Var};
use std::collections::HashMap;
use std::ops::Index;
use std::panic::Location;

/// What the scan works on: tensors for the fast path, vars for a recorded backward pass.
trait Backend<'t, T: Element>: Math<T> {
    fn node(tape: &'t Tape<T>, id: usize) -> Self;
    fn call(op: &dyn DynOp<T>, v: Vjp<'_, Self>) -> Vec<Option<Self>>;
    /// Adds two gradient contributions; may reuse `acc`'s buffer.
    fn accumulate(acc: Self, more: Self) -> Self;
    /// The tensor itself, on the fast path (for memory accounting).
    fn as_tensor(&self) -> Option<&Tensor<T>>;
}

impl<'t, T: Element> Backend<'t, T> for Tensor<T> {
    fn node(tape: &'t Tape<T>, id: usize) -> Self {
        match tape.with_node(id, |n| n.value.clone().ok_or_else(|| n.freed_message(id))) {
            Ok(value) => value,
            Err(freed) => panic!("backward: a gradient rule needs a value an earlier pass freed: {freed}"),
        }
    }
    fn call(op: &dyn DynOp<T>, v: Vjp<'_, Self>) -> Vec<Option<Self>> {
        op.vjp_tensor(v)
    }
    fn accumulate(mut acc: Self, more: Self) -> Self {
        // Both have the input's shape: the scan checks every gradient before accumulating.
        for (a, &b) in acc.data_mut().iter_mut().zip(more.data()) {
            *a += b;
        }
        acc
    }
    fn as_tensor(&self) -> Option<&Tensor<T>> {
        Some(self)
    }
}

impl<'t, T: Element> Backend<'t, T> for Var<'t, T> {
    fn node(tape: &'t Tape<T>, id: usize) -> Self {
        Var { tape, id }
    }
    fn call(op: &dyn DynOp<T>, v: Vjp<'_, Self>) -> Vec<Option<Self>> {
        op.vjp_var(v)
    }
    fn accumulate(acc: Self, more: Self) -> Self {
        acc + more
    }
    fn as_tensor(&self) -> Option<&Tensor<T>> {
        None
    }
}

/// Per node: did it take part, and what would a user need to hear if they ask for its gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// A leaf that requires a gradient, or a node marked with `retain_grad`.
    Kept,
    /// An intermediate value whose gradient was used and freed.
    Intermediate,
    /// A value no gradient flows into (a constant, detached, or made under `no_grad`).
    Untracked,
}

// ANCHOR: scan
/// Scans nodes `root..=0` in reverse, returning the gradient of every node that keeps one.
///
/// With `free`, each intermediate value the backward pass used is dropped as soon as the scan
/// has passed it: every rule that reads it (its own, and those of the ops using it, which come
/// later on the tape) has run by then.
#[track_caller]
fn scan<'t, T: Element, B: Backend<'t, T>>(
    tape: &'t Tape<T>,
    root: usize,
    seed: B,
    free: bool,
) -> (Vec<Option<B>>, Vec<Status>) {
    let statuses: Vec<Status> = tape.with_nodes(|nodes| {
        nodes[..=root]
            .iter()
            .map(|n| match (&n.origin, n.requires_grad) {
                (_, false) => Status::Untracked,
                (Origin::Leaf { .. }, true) => Status::Kept,
                (Origin::Op(_), true) if n.retain_grad => Status::Kept,
                (Origin::Op(_), true) => Status::Intermediate,
            })
            .collect()
    });
    let mut grads: Vec<Option<B>> = (0..=root).map(|_| None).collect();
    if statuses[root] == Status::Untracked {
        return (grads, statuses);
    }
    let check = tape.checks_finite();
    // With the check: whether each pending gradient is known finite (one checked contribution;
    // a sum of several could overflow, so it is not).
    let mut grad_finite = vec![false; if check { root + 1 } else { 0 }];
    // The peak is measured on the fast path only: a recorded pass's gradients are tape values.
    let mut memory = (tape.tracks_memory() && seed.as_tensor().is_some()).then(|| PeakTracker::of_values(tape));
    let mut used = vec![false; root + 1];
    if let (Some(m), Some(seed)) = (memory.as_mut(), footprint(&seed)) {
        m.hold(seed);
    }
    grads[root] = Some(seed);
    if check {
        grad_finite[root] = true;
    }
    for id in (0..=root).rev() {
        if let Some(g) = grads[id].take() {
            let (origin, inputs) = tape.with_node(id, |n| (n.origin.clone(), n.inputs.clone()));
            let Origin::Op(op) = origin else {
                grads[id] = Some(g);
                continue;
            };
            let needs: Vec<bool> = inputs.iter().map(|&i| statuses[i] != Status::Untracked).collect();
            let input_values: Vec<B> = inputs.iter().map(|&i| B::node(tape, i)).collect();
            let output = B::node(tape, id);
            let input_grads = {
                let _in_rule = InRule::enter(tape, check);
                B::call(op.as_ref(), Vjp { inputs: &input_values, output: &output, grad: &g, needs: &needs })
            };
            // A rule that only moves a finite upstream gradient around makes finite gradients.
            let scan_grads = check && !(op.moves_values() && grad_finite[id]);
            used[id] = true;
            for (k, (&input, gi)) in inputs.iter().zip(input_grads).enumerate() {
                used[input] = true;
                if !needs[k] {
                    continue;
                }
                let gi = gi.unwrap_or_else(|| no_derivative(tape, op.as_ref(), id, k));
                let want = tape.with_node(input, |n| n.shape.clone());
                if gi.shape() != want {
                    wrong_shape(tape, op.as_ref(), id, k, &gi.shape(), &want);
                }
                if scan_grads {
                    crate::check::check_gradient(tape, id, k, &gi.value(), &g.value());
                }
                let previous = grads[input].take();
                let accumulated = previous.is_some();
                let (new, old) = (footprint(&gi), previous.as_ref().and_then(footprint));
                if let (Some(m), Some(new)) = (memory.as_mut(), new) {
                    m.hold(new);
                }
                let sum = match previous {
                    Some(acc) => B::accumulate(acc, gi),
                    None => gi,
                };
                if check {
                    // Two finite parts can overflow when added: the sum is checked too.
                    if accumulated {
                        crate::check::check_sum(tape, input, &sum.value());
                    }
                    grad_finite[input] = true;
                }
                if let (Some(m), Some(new), Some(old)) = (memory.as_mut(), new, old) {
                    // The sum replaces both terms (often in the earlier one's buffer).
                    m.hold(footprint(&sum).expect("a tensor"));
                    m.release(new.0);
                    m.release(old.0);
                }
                grads[input] = Some(sum);
            }
            if statuses[id] == Status::Kept {
                grads[id] = Some(g);
            } else if let (Some(m), Some((key, _))) = (memory.as_mut(), footprint(&g)) {
                m.release(key);
            }
        }
        let is_op = tape.with_node(id, |n| matches!(n.origin, Origin::Op(_)));
        if free && used[id] && is_op && id != root {
            let value = tape.free_value(id);
            if let (Some(m), Some(value)) = (memory.as_mut(), value) {
                m.release(value.buffer_key());
            }
        }
    }
    tape.backward_peak.set(memory.map(|m| m.peak));
    (grads, statuses)
}
// ANCHOR_END: scan

/// Marks the tape as running a gradient rule (the finite-value check then leaves the values the
/// rule records to the check of its result) until dropped, even if the rule panics.
struct InRule<'t, T: Element>(&'t Tape<T>);

impl<'t, T: Element> InRule<'t, T> {
    fn enter(tape: &'t Tape<T>, on: bool) -> Self {
        tape.in_rule.set(on);
        InRule(tape)
    }
}

impl<T: Element> Drop for InRule<'_, T> {
    fn drop(&mut self) {
        self.0.in_rule.set(false);
    }
}

/// A gradient's buffer and bytes on the fast path (`None` for a recorded gradient).
fn footprint<'t, T: Element, B: Backend<'t, T>>(g: &B) -> Option<(usize, usize)> {
    g.as_tensor().map(|t| (t.buffer_key(), t.bytes()))
}

fn no_derivative<T: Element>(tape: &Tape<T>, op: &dyn DynOp<T>, id: usize, input: usize) -> ! {
    let loc = tape.with_node(id, |n| n.location);
    panic!(
        "backward: {} (node %{id}, {loc}) has no derivative with respect to its input {input}, which \
         requires a gradient; detach() that input if no gradient should flow through it",
        op.name()
    )
}

fn wrong_shape<T: Element>(
    tape: &Tape<T>,
    op: &dyn DynOp<T>,
    id: usize,
    input: usize,
    got: &crate::Shape,
    want: &crate::Shape,
) -> ! {
    let loc = tape.with_node(id, |n| n.location);
    panic!(
        "backward: {} (node %{id}, {loc}) returned a gradient of shape {got} for its input {input}, \
         which has shape {want}; a vector-Jacobian product must return its input's shape \
         (reduce broadcasting with sum_to)",
        op.name()
    )
}

#[track_caller]
fn check_root<T: Element>(root: &Var<'_, T>, what: &str) {
    let shape = root.shape();
    assert!(
        shape.numel() == 1,
        "{what}: the output has shape {shape}; reduce it to a single value first (for example with \
         .sum_all() or .mean_all())"
    );
    assert!(
        root.requires_grad(),
        "{what}: the output does not require a gradient: no var or param feeds it, or it was \
         computed under no_grad or from detached values"
    );
}

impl<'t, T: Element> Var<'t, T> {
    /// Computes d(self)/d(x) for every leaf `x` that requires a gradient, on plain tensors.
    /// `self` must hold a single value (a loss).
    ///
    /// Gradients of a value used several times are summed before its own rule runs. Only
    /// leaves (and values marked with [`Var::retain_grad`]) keep their gradients.
    ///
    /// To keep memory low, backward frees each intermediate value it used as soon as no rule
    /// still to run needs it: afterwards the tape keeps its leaves, the loss, and values backward
    /// did not use. This goes further than PyTorch, which frees only what it saved for backward
    /// while the tensors you hold stay readable: here a freed value can be neither read nor used
    /// in a new op. Reading one panics and says so; read what you need before backward, or call
    /// [`Var::backward_retain_graph`].
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// // d/dw mean((w·x − y)²) for one sample: 2(wx − y)·x
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(Tensor::scalar(0.5));
    /// let x = tape.constant(Tensor::scalar(2.0));
    /// let y = tape.constant(Tensor::scalar(3.0));
    /// let err = w * x - y;
    /// let grads = (err * err).backward();
    /// assert_eq!(grads[w].item(), 2.0 * (1.0 - 3.0) * 2.0);
    /// ```
    ///
    /// # Panics
    /// If `self` holds more than one value, or a value it needs was freed by an earlier
    /// backward pass.
    #[track_caller]
    pub fn backward(self) -> Gradients<T> {
        self.gradients("backward", true)
    }

    /// Like [`Var::backward`], but keeps every value on the tape (PyTorch's
    /// `retain_graph=True`), so intermediate values can still be read and backward run again.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(3.0));
    /// let y = x * x;
    /// let first = (y * 2.0).backward_retain_graph();
    /// let second = (y * 3.0).backward(); // y's value is still there
    /// assert_eq!((first[x].item(), second[x].item()), (12.0, 18.0));
    /// ```
    #[track_caller]
    pub fn backward_retain_graph(self) -> Gradients<T> {
        self.gradients("backward_retain_graph", false)
    }

    #[track_caller]
    fn gradients(self, what: &str, free: bool) -> Gradients<T> {
        check_root(&self, what);
        let seed = Tensor::ones(self.shape());
        let (mut grads, statuses) = scan(self.tape, self.id, seed, free);
        let reached: Vec<bool> = grads.iter().map(Option::is_some).collect();
        // A tracked leaf the loss does not depend on has a zero gradient, not a missing one.
        for (id, g) in grads.iter_mut().enumerate() {
            if statuses[id] == Status::Kept && g.is_none() {
                *g = Some(Tensor::zeros(Var { tape: self.tape, id }.shape()));
            }
        }
        Gradients {
            grads,
            statuses,
            reached,
            locations: self.tape.with_nodes(|n| n[..=self.id].iter().map(|n| n.location).collect()),
            params: self.tape.param_nodes(),
        }
    }

    /// Like [`Var::backward`], but the backward pass is recorded on the tape as ordinary ops
    /// (PyTorch's `create_graph=True`): the gradients are `Var`s, and can be differentiated again.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// // y = x³: dy/dx = 3x², d²y/dx² = 6x
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let dy = x.powf(3.0).sum_all().backward_with_graph()[x];
    /// assert_eq!(dy.value().to_vec(), vec![3.0, 12.0]);
    /// let d2y = dy.sum_all().backward()[x].to_vec();
    /// assert_eq!(d2y, vec![6.0, 12.0]);
    /// ```
    ///
    /// # Panics
    /// If `self` holds more than one value.
    #[track_caller]
    pub fn backward_with_graph(self) -> GradVars<'t, T> {
        check_root(&self, "backward_with_graph");
        let seed = self.tape.constant(Tensor::ones(self.shape()));
        let (mut grads, statuses) = scan(self.tape, self.id, seed, false);
        for (id, g) in grads.iter_mut().enumerate() {
            if statuses[id] == Status::Kept && g.is_none() {
                *g = Some(self.tape.constant(Tensor::zeros(Var { tape: self.tape, id }.shape())));
            }
        }
        GradVars { grads, statuses, params: self.tape.param_nodes() }
    }
}

/// The gradients computed by [`Var::backward`], looked up by the `Var` or [`Param`] they belong to.
pub struct Gradients<T: Element = f32> {
    grads: Vec<Option<Tensor<T>>>,
    statuses: Vec<Status>,
    /// Whether a gradient reached the node (a tracked leaf the loss does not depend on gets
    /// zeros without being reached).
    reached: Vec<bool>,
    locations: Vec<&'static Location<'static>>,
    params: HashMap<u64, usize>,
}

impl<T: Element> Gradients<T> {
    /// The gradient of `x`, or `None` if it has none (an untracked value, or an intermediate one
    /// that was not marked with [`Var::retain_grad`]).
    ///
    /// A tracked leaf that the loss does not depend on has a gradient of zeros.
    pub fn get(&self, x: Var<'_, T>) -> Option<&Tensor<T>> {
        self.grads.get(x.id)?.as_ref()
    }

    /// The gradient of a parameter, or `None` if it was not put on the tape before the loss.
    pub fn param(&self, p: &Param<T>) -> Option<&Tensor<T>> {
        self.grads.get(*self.params.get(&p.id())?)?.as_ref()
    }

    /// The gradient of a parameter, to change in place (clipping, scaling, noise), or `None`
    /// if it has none. Like writing to `p.grad` in PyTorch; a gradient shared with another
    /// tensor is copied first, so nothing else sees the change.
    ///
    /// ```
    /// use autograd::{ParamStore, Tape, Tensor};
    /// let mut store = ParamStore::<f32>::new();
    /// let w = store.insert("w".into(), Tensor::ones([2]));
    /// let tape = Tape::new();
    /// let mut grads = (tape.param(&w) * 3.0).sum_all().backward();
    /// grads.param_mut(&w).unwrap().data_mut().iter_mut().for_each(|g| *g *= 0.5);
    /// assert_eq!(grads.param(&w).unwrap().to_vec(), vec![1.5, 1.5]);
    /// ```
    pub fn param_mut(&mut self, p: &Param<T>) -> Option<&mut Tensor<T>> {
        self.grads.get_mut(*self.params.get(&p.id())?)?.as_mut()
    }

    fn explain(&self, id: usize) -> String {
        explain(&self.statuses, id, self.locations.get(id).copied())
    }

    /// Which parameters of `store` got no useful gradient from this backward pass: none at all
    /// (never put on the tape, or not on the path to the loss), an all-zero one, or one holding
    /// NaN or ±∞. An optimizer would silently skip or zero-update them.
    ///
    /// ```
    /// use autograd::{ParamStore, Tape, Tensor};
    /// let mut store = ParamStore::<f32>::new();
    /// let w = store.insert("w".into(), Tensor::ones([2]));
    /// let unused = store.insert("unused".into(), Tensor::ones([2]));
    /// let tape = Tape::new();
    /// let (_, w) = (tape.param(&unused), tape.param(&w));
    /// let grads = (w * w).sum_all().backward();
    /// let coverage = grads.coverage(&store);
    /// assert_eq!(coverage.problems.len(), 1);
    /// assert_eq!(coverage.problems[0].name, "unused");
    /// ```
    pub fn coverage(&self, store: &ParamStore<T>) -> CoverageReport {
        let problems = store
            .iter()
            .filter_map(|p| {
                let problem = match self.params.get(&p.id()) {
                    None => GradientProblem::NotOnTape,
                    Some(&id) if id >= self.reached.len() => GradientProblem::AfterLoss,
                    Some(&id) if self.statuses[id] == Status::Untracked => GradientProblem::Untracked,
                    Some(&id) if !self.reached[id] => GradientProblem::NotReached,
                    Some(&id) => {
                        let g = self.grads[id].as_ref().expect("a reached parameter has a gradient");
                        match crate::check::nonfinite(g.data()) {
                            Some((index, count)) => {
                                GradientProblem::NonFinite { index, count, value: g.data()[index].to_f64() }
                            }
                            None if g.data().iter().all(|&v| v == T::ZERO) => GradientProblem::AllZero,
                            None => return None,
                        }
                    }
                };
                Some(ParamProblem { name: p.name().to_string(), numel: p.shape().numel(), problem })
            })
            .collect();
        CoverageReport { params: store.len(), problems }
    }
}

/// The parameters of a store that got no useful gradient, made by [`Gradients::coverage`].
#[derive(Clone, Debug, PartialEq)]
pub struct CoverageReport {
    /// How many parameters the store holds.
    pub params: usize,
    /// The parameters with a problem, in the store's order.
    pub problems: Vec<ParamProblem>,
}

/// One parameter in a [`CoverageReport`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParamProblem {
    /// Its dotted name in the store.
    pub name: String,
    /// Its number of elements.
    pub numel: usize,
    /// What is wrong with its gradient.
    pub problem: GradientProblem,
}

/// Why a parameter's gradient is of no use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradientProblem {
    /// It was never put on the tape (`tape.param`) before the loss.
    NotOnTape,
    /// It was put on the tape after the loss was computed.
    AfterLoss,
    /// It was put on the tape under `no_grad`, so nothing is tracked through it.
    Untracked,
    /// It is on the tape, but the loss does not depend on it: unused, or used only through a
    /// `detach()` or a `no_grad` scope.
    NotReached,
    /// Its gradient is exactly zero everywhere.
    AllZero,
    /// Its gradient holds NaN or ±∞: `count` values, the first `value` at flat index `index`.
    NonFinite {
        /// The first non-finite element.
        index: usize,
        /// How many are not finite.
        count: usize,
        /// The first one: NaN, inf or -inf.
        value: f64,
    },
}

impl CoverageReport {
    /// True if every parameter got a finite gradient that is not all zero.
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for GradientProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GradientProblem::NotOnTape => write!(f, "no gradient: never put on the tape before the loss"),
            GradientProblem::AfterLoss => write!(f, "no gradient: put on the tape after the loss"),
            GradientProblem::Untracked => write!(f, "no gradient: put on the tape under no_grad"),
            GradientProblem::NotReached => {
                write!(f, "no gradient: the loss does not depend on it (unused, detached, or under no_grad)")
            }
            GradientProblem::AllZero => write!(f, "gradient is all zeros"),
            GradientProblem::NonFinite { index, count, value } => {
                let count = crate::memory::plural(*count, "value");
                write!(f, "gradient holds {value} at index {index} ({count} not finite)")
            }
        }
    }
}

impl std::fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.problems.is_empty() {
            return write!(f, "all {} parameters got a finite, non-zero gradient", self.params);
        }
        write!(f, "{} of {} parameters got no useful gradient:", self.problems.len(), self.params)?;
        let width = self.problems.iter().map(|p| p.name.chars().count()).max().unwrap_or(0);
        for p in &self.problems {
            write!(f, "\n  {:<width$}  {}", p.name, p.problem)?;
        }
        Ok(())
    }
}

/// Why node `id` has no gradient, for the panic of an index lookup.
fn explain(statuses: &[Status], id: usize, location: Option<&'static Location<'static>>) -> String {
    let at = location.map(|l| format!("; it was created at {l}")).unwrap_or_default();
    match statuses.get(id) {
        None => format!("%{id} was created after the loss it is differentiated from, so it has no gradient"),
        Some(Status::Untracked) => format!(
            "%{id}{at}: it does not require a gradient (a constant, a detached value, or made \
                 under no_grad), so no gradient flows into it"
        ),
        Some(Status::Intermediate) => format!(
            "%{id}{at}: it is an intermediate value; call .retain_grad() on it before \
                 backward to keep its gradient"
        ),
        Some(Status::Kept) => unreachable!("kept gradients are always found"),
    }
}

/// `grads[x]` is the gradient of `x`.
///
/// # Panics
/// If `x` has no gradient, with the reason: it is a constant, detached, made under `no_grad`,
/// or an intermediate value not marked with `retain_grad`.
impl<T: Element> Index<Var<'_, T>> for Gradients<T> {
    type Output = Tensor<T>;
    #[track_caller]
    fn index(&self, x: Var<'_, T>) -> &Tensor<T> {
        match self.grads.get(x.id) {
            Some(Some(g)) => g,
            _ => panic!("no gradient for {}", self.explain(x.id)),
        }
    }
}

/// The gradients computed by [`Var::backward_with_graph`]: `Var`s on the same tape.
pub struct GradVars<'t, T: Element = f32> {
    grads: Vec<Option<Var<'t, T>>>,
    statuses: Vec<Status>,
    params: HashMap<u64, usize>,
}

impl<'t, T: Element> GradVars<'t, T> {
    /// The gradient of `x` as a recorded value, or `None` if it has none.
    pub fn get(&self, x: Var<'t, T>) -> Option<Var<'t, T>> {
        self.grads.get(x.id).copied().flatten()
    }

    /// The gradient of a parameter as a recorded value, or `None` if it was not used.
    pub fn param(&self, p: &Param<T>) -> Option<Var<'t, T>> {
        let id = *self.params.get(&p.id())?;
        self.grads.get(id).copied().flatten()
    }
}

/// `grads[x]` is the gradient of `x`, a `Var` that can be differentiated again.
///
/// # Panics
/// If `x` has no gradient, with the reason.
impl<'t, T: Element> Index<Var<'t, T>> for GradVars<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn index(&self, x: Var<'t, T>) -> &Var<'t, T> {
        match self.grads.get(x.id) {
            Some(Some(g)) => g,
            _ => panic!("no gradient for {}", explain(&self.statuses, x.id, None)),
        }
    }
}
