//! The backward pass: one reverse scan of the tape, on tensors (`backward`) or recorded on the
//! tape itself (`backward_with_graph`), sharing one loop.

use crate::op::{DynOp, Vjp};
use crate::tape::Origin;
use crate::{Element, Math, Param, Tape, Tensor, Var};
use std::collections::HashMap;
use std::ops::Index;
use std::panic::Location;

/// What the scan works on: tensors for the fast path, vars for a recorded backward pass.
trait Backend<'t, T: Element>: Math<T> {
    fn node(tape: &'t Tape<T>, id: usize) -> Self;
    fn call(op: &dyn DynOp<T>, v: Vjp<'_, Self>) -> Vec<Option<Self>>;
    /// Adds two gradient contributions; may reuse `acc`'s buffer.
    fn accumulate(acc: Self, more: Self) -> Self;
}

impl<'t, T: Element> Backend<'t, T> for Tensor<T> {
    fn node(tape: &'t Tape<T>, id: usize) -> Self {
        tape.with_node(id, |n| n.value.clone())
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
fn scan<'t, T: Element, B: Backend<'t, T>>(tape: &'t Tape<T>, root: usize, seed: B) -> (Vec<Option<B>>, Vec<Status>) {
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
    grads[root] = Some(seed);
    for id in (0..=root).rev() {
        let Some(g) = grads[id].take() else { continue };
        let (origin, inputs) = tape.with_node(id, |n| (n.origin.clone(), n.inputs.clone()));
        let Origin::Op(op) = origin else {
            grads[id] = Some(g);
            continue;
        };
        let needs: Vec<bool> = inputs.iter().map(|&i| statuses[i] != Status::Untracked).collect();
        let input_values: Vec<B> = inputs.iter().map(|&i| B::node(tape, i)).collect();
        let output = B::node(tape, id);
        let input_grads = B::call(op.as_ref(), Vjp { inputs: &input_values, output: &output, grad: &g, needs: &needs });
        for (k, (&input, gi)) in inputs.iter().zip(input_grads).enumerate() {
            if !needs[k] {
                continue;
            }
            let gi = gi.unwrap_or_else(|| no_derivative(tape, op.as_ref(), id, k));
            let want = tape.with_node(input, |n| n.value.shape().clone());
            if gi.shape() != want {
                wrong_shape(tape, op.as_ref(), id, k, &gi.shape(), &want);
            }
            grads[input] = Some(match grads[input].take() {
                Some(acc) => B::accumulate(acc, gi),
                None => gi,
            });
        }
        if statuses[id] == Status::Kept {
            grads[id] = Some(g);
        }
    }
    (grads, statuses)
}
// ANCHOR_END: scan

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
    /// If `self` holds more than one value.
    #[track_caller]
    pub fn backward(self) -> Gradients<T> {
        check_root(&self, "backward");
        let seed = Tensor::ones(self.shape());
        let (mut grads, statuses) = scan(self.tape, self.id, seed);
        // A tracked leaf the loss does not depend on has a zero gradient, not a missing one.
        for (id, g) in grads.iter_mut().enumerate() {
            if statuses[id] == Status::Kept && g.is_none() {
                *g = Some(Tensor::zeros(Var { tape: self.tape, id }.shape()));
            }
        }
        Gradients {
            grads,
            statuses,
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
        let (mut grads, statuses) = scan(self.tape, self.id, seed);
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

    fn explain(&self, id: usize) -> String {
        explain(&self.statuses, id, self.locations.get(id).copied())
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
