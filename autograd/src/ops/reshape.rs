//! Reshape: the same elements under a new shape (no copy).

use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

struct Reshape;
impl<T: Element> Op<T> for Reshape {
    fn moves_values(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "reshape"
    }
    // A reshape moves no numbers: the gradient is reshaped back.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.reshape(&v.inputs[0].shape()))]
    }
}

#[track_caller]
fn check<T: Element>(x: &Tensor<T>, shape: &Shape) {
    assert!(
        x.numel() == shape.numel(),
        "reshape: cannot view {} ({} elements) as {shape} ({} elements)",
        x.shape(),
        x.numel(),
        shape.numel()
    );
}

impl<T: Element> Tensor<T> {
    /// The same elements in row-major order under a new shape; shares the buffer.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor<T> {
        let shape = shape.into();
        check(self, &shape);
        self.with_shape(shape)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// The same elements in row-major order under a new shape.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape(self, shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        if shape == self.shape() {
            return self;
        }
        self.unary(Reshape, |x| x.reshape(shape))
    }
}
