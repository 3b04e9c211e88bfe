//! broadcast_to: repeat size-1 and missing leading dimensions; its adjoint is `sum_to`.

use crate::kernels::binary::expand;
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

struct BroadcastTo;
impl<T: Element> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    // Every copy of an input element sends its gradient back: sum over the repeats.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.sum_to(&v.inputs[0].shape()))]
    }
}

#[track_caller]
fn check(from: &Shape, to: &Shape) {
    assert!(
        from.broadcasts_to(to),
        "broadcast_to: {from} cannot be broadcast to {to}: aligned from the right, each dimension \
         must equal the target's or be 1"
    );
}

impl<T: Element> Tensor<T> {
    /// Repeats size-1 and missing leading dimensions to reach `shape`, like `x.expand(shape)`
    /// (but materialized: tensors here are always contiguous).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], [2, 1]);
    /// assert_eq!(x.broadcast_to([2, 3]).to_vec(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor<T> {
        let shape = shape.into();
        check(self.shape(), &shape);
        if &shape == self.shape() {
            return self.clone();
        }
        expand(self, &shape)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Repeats size-1 and missing leading dimensions to reach `shape`.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        if shape == self.shape() {
            return self;
        }
        self.unary(BroadcastTo, |x| x.broadcast_to(shape))
    }
}
