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

    /// A fused kernel for the same product on plain tensors, used by `backward()` when it
    /// returns `Some`; `backward_with_graph()` always uses [`Op::vjp`]. A fused kernel must
    /// compute what `vjp` computes (the engine's tests check each one against it). None by
    /// default.
    fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
        let _ = v;
        None
    }
}

/// The object-safe face of [`Op`] the tape stores: the generic rule instantiated twice.
pub(crate) trait DynOp<T: Element> {
    fn name(&self) -> &'static str;
    fn attributes(&self) -> String;
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
    fn vjp_tensor(&self, v: Vjp<'_, Tensor<T>>) -> InputGrads<Tensor<T>> {
        self.fused_vjp(&v).unwrap_or_else(|| self.vjp(v))
    }
    fn vjp_var<'t>(&self, v: Vjp<'_, Var<'t, T>>) -> InputGrads<Var<'t, T>> {
        self.vjp(v)
    }
}
