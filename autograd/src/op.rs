//! `Op`: what a recorded operation knows — its name, its attributes and its vector-Jacobian product.

use crate::{Element, Math, Tensor, Var};

/// What a vector-Jacobian product is given: the op's inputs and output (as tensors on the fast
/// path, as [`Var`]s when the backward pass is itself recorded), the gradient flowing into the
/// output, and which inputs need a gradient back.
pub struct Vjp<'a, M> {
    /// The op's inputs, in the order they were recorded.
    pub inputs: &'a [M],
    /// The op's output.
    pub output: &'a M,
    /// ∂loss/∂output, the same shape as the output.
    pub grad: &'a M,
    /// `needs[i]` is true if input `i` takes part in the gradient; a rule may skip the others.
    pub needs: &'a [bool],
}

/// One gradient per input: `None` where the input needs no gradient, or where the op has no
/// derivative with respect to it (the engine then panics if that input is tracked).
pub type InputGrads<M> = Vec<Option<M>>;

/// An operation that can be recorded on a tape.
///
/// Every built-in op implements this, and so can yours: write the vector-Jacobian product once
/// with the [`Math`] methods and it serves both `backward()` (computed on tensors) and
/// `backward_with_graph()` (recorded on the tape, so it can be differentiated again).
///
/// ```
/// use autograd::{InputGrads, Math, Op, Tape, Tensor, Vjp};
///
/// /// y = x³, with dy/dx = 3x².
/// struct Cube;
/// impl Op<f64> for Cube {
///     fn name(&self) -> &'static str { "cube" }
///     fn vjp<M: Math<f64>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
///         let x = &v.inputs[0];
///         vec![Some(v.grad.mul(&x.mul(x).mul_scalar(3.0)))]
///     }
/// }
///
/// let tape = Tape::new();
/// let x = tape.var(Tensor::from_vec(vec![2.0f64], [1]));
/// let y = x.apply(Cube, &[x], x.value().powf(3.0));
/// let grads = y.sum_all().backward();
/// assert_eq!(grads[x].to_vec(), vec![12.0]);
/// ```
pub trait Op<T: Element>: 'static {
    /// The name shown in graph dumps and messages, like `"matmul"`.
    fn name(&self) -> &'static str;

    /// Attributes shown after the name in graph dumps, like `"axes=[1]"`; empty by default.
    fn attributes(&self) -> String {
        String::new()
    }

    /// The vector-Jacobian product: for each input, ∂loss/∂input given ∂loss/∂output.
    ///
    /// Gradients must have the input's shape (reduce broadcasting with [`Math::sum_to`]).
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M>;

    // ANCHOR: fused_vjp
    /// A fused kernel for the same product on plain tensors, used by `backward()` when it
    /// returns `Some`; `backward_with_graph()` always uses [`Op::vjp`]. A fused kernel must
    /// compute what `vjp` computes: each built-in one is checked against its general rule by a
    /// test in the op's own file. None by default.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let _ = v;
        None
    }
    // ANCHOR_END: fused_vjp

    /// True if every output value is one of the inputs' values or a finite constant, and every
    /// gradient the rule returns is one of the upstream gradient's values or a finite constant
    /// (reshape, permute, narrow, pad, concat, relu). The finite-value check then need not scan
    /// what such an op makes from values it already found finite. False by default.
    fn moves_values(&self) -> bool {
        false
    }
}

/// The object-safe face of [`Op`] the tape stores: the generic rule instantiated twice.
pub(crate) trait DynOp<T: Element> {
    fn name(&self) -> &'static str;
    fn attributes(&self) -> String;
    fn moves_values(&self) -> bool;
    fn vjp_tensor(&self, v: Vjp<'_, Tensor<T>>) -> InputGrads<Tensor<T>>;
    fn vjp_var<'t>(&self, v: Vjp<'_, Var<'t, T>>) -> InputGrads<Var<'t, T>>;
}

impl<T: Element, O: Op<T>> DynOp<T> for O {
    fn name(&self) -> &'static str {
        Op::name(self)
    }
    fn attributes(&self) -> String {
        Op::attributes(self)
    }
    fn moves_values(&self) -> bool {
        Op::moves_values(self)
    }
    // ANCHOR: dispatch
    fn vjp_tensor(&self, v: Vjp<'_, Tensor<T>>) -> InputGrads<Tensor<T>> {
        self.fused_vjp(&v).unwrap_or_else(|| self.vjp(v))
    }
    fn vjp_var<'t>(&self, v: Vjp<'_, Var<'t, T>>) -> InputGrads<Var<'t, T>> {
        self.vjp(v)
    }
    // ANCHOR_END: dispatch
}

/// What the tape keeps of an op that no gradient flows through (made under `no_grad`, or from
/// untracked inputs only): its name and attributes for dumps and reports, and none of the state
/// its rule would need (a dropout mask, saved indices), which is dropped at once.
pub(crate) struct Untracked {
    pub name: &'static str,
    pub attributes: String,
    pub moves_values: bool,
}

impl<T: Element> Op<T> for Untracked {
    fn name(&self) -> &'static str {
        self.name
    }
    fn attributes(&self) -> String {
        self.attributes.clone()
    }
    fn moves_values(&self) -> bool {
        self.moves_values
    }
    fn vjp<M: Math<T>>(&self, _: Vjp<'_, M>) -> InputGrads<M> {
        unreachable!("backward never runs the rule of a node no gradient flows through")
    }
}

/// Checks a fused first-order rule against its op's general rule, from the op's own test module.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Op, Vjp};
    use crate::{Tensor, largest_magnitude, max_relative_error};

    // ANCHOR: fused_check
    /// Asserts that `op.fused_vjp` exists and gives what `op.vjp` gives on tensors, for the
    /// forward pass `inputs → output`, under a pseudo-random upstream gradient with both signs.
    /// Errors are measured against each gradient's largest magnitude; NaN or ±∞ fail.
    #[track_caller]
    pub(crate) fn assert_fused_rule_matches<O: Op<f64>>(op: &O, inputs: &[Tensor<f64>], output: &Tensor<f64>) {
        let grad = Tensor::from_fn(output.shape().clone(), |i| ((i * 7919) % 13) as f64 / 6.0 - 1.0);
        let needs = vec![true; inputs.len()];
        let v = Vjp { inputs, output, grad: &grad, needs: &needs };
        let fused = op.fused_vjp(&v).unwrap_or_else(|| panic!("{} has no fused rule", op.name()));
        let general = op.vjp(v);
        assert_eq!(fused.len(), general.len(), "{}: one gradient per input", op.name());
        for (i, (f, g)) in fused.iter().zip(&general).enumerate() {
            let (f, g) = (f.as_ref().expect("fused gradient"), g.as_ref().expect("general gradient"));
            // A NaN in both would compare equal: the reference must be finite to prove anything.
            let scale = largest_magnitude(g);
            assert!(scale.is_finite(), "{}: input {i}: the general rule gave a non-finite gradient", op.name());
            let worst = max_relative_error(f, g, scale.max(1e-300));
            if let Some(worst) = worst {
                assert!(
                    worst.error <= 1e-14,
                    "{}: input {i}: fused rule differs from the general one at {worst}",
                    op.name()
                );
            }
        }
    }
    // ANCHOR_END: fused_check
}
