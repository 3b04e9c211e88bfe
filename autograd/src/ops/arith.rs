//! Add, subtract, multiply, divide and negate, with broadcasting; and their operators.

use crate::kernels::binary::broadcast_zip;
use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// a + b
struct AddOp;
impl<T: Element> Op<T> for AddOp {
    fn name(&self) -> &'static str {
        "add"
    }
    // ∂(a+b)/∂a = 1, ∂(a+b)/∂b = 1; summed back over broadcast dimensions.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        vec![v.needs[0].then(|| v.grad.sum_to(&a.shape())), v.needs[1].then(|| v.grad.sum_to(&b.shape()))]
    }
}

/// a - b
struct SubOp;
impl<T: Element> Op<T> for SubOp {
    fn name(&self) -> &'static str {
        "sub"
    }
    // ∂(a−b)/∂a = 1, ∂(a−b)/∂b = −1
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        vec![v.needs[0].then(|| v.grad.sum_to(&a.shape())), v.needs[1].then(|| v.grad.neg().sum_to(&b.shape()))]
    }
}

/// a * b
struct MulOp;
impl<T: Element> Op<T> for MulOp {
    fn name(&self) -> &'static str {
        "mul"
    }
    // ∂(ab)/∂a = b, ∂(ab)/∂b = a
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        vec![v.needs[0].then(|| v.grad.mul(b).sum_to(&a.shape())), v.needs[1].then(|| v.grad.mul(a).sum_to(&b.shape()))]
    }
}

/// a / b
struct DivOp;
impl<T: Element> Op<T> for DivOp {
    fn name(&self) -> &'static str {
        "div"
    }
    // ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b²
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        vec![
            v.needs[0].then(|| v.grad.div(b).sum_to(&a.shape())),
            v.needs[1].then(|| v.grad.mul(a).div(&b.mul(b)).neg().sum_to(&b.shape())),
        ]
    }
}

/// −a
struct NegOp;
impl<T: Element> Op<T> for NegOp {
    fn name(&self) -> &'static str {
        "neg"
    }
    // ∂(−a)/∂a = −1
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.neg())]
    }
}

/// Implements a binary operator for tensors (by value and by reference) and vars.
macro_rules! binary_operator {
    ($Trait:ident, $method:ident, $Op:ident, $name:literal, |$x:ident, $y:ident| $f:expr) => {
        impl<T: Element> $Trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                broadcast_zip($name, self, rhs, |$x: T, $y: T| $f)
            }
        }
        impl<T: Element> $Trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                <&Tensor<T> as $Trait<&Tensor<T>>>::$method(&self, &rhs)
            }
        }
        impl<'t, T: Element> $Trait<Var<'t, T>> for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                let value = <&Tensor<T> as $Trait<&Tensor<T>>>::$method(&self.value(), &rhs.value());
                Var::record(self.tape, $Op, &[self, rhs], value)
            }
        }
    };
}

binary_operator!(Add, add, AddOp, "add", |x, y| x + y);
binary_operator!(Sub, sub, SubOp, "sub", |x, y| x - y);
binary_operator!(Mul, mul, MulOp, "mul", |x, y| x * y);
binary_operator!(Div, div, DivOp, "div", |x, y| x / y);

impl<T: Element> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map(|x| -x)
    }
}

impl<T: Element> Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        -&self
    }
}

impl<'t, T: Element> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn neg(self) -> Var<'t, T> {
        self.unary(NegOp, |x| -x)
    }
}

impl<T: Element> Tensor<T> {
    /// `f` applied to every element (in parallel for large tensors).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, -2.0], [2]);
    /// assert_eq!(t.map(|x| x.abs()).to_vec(), vec![1.0, 2.0]);
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T + Sync + Send) -> Tensor<T> {
        Tensor::from_vec(crate::kernels::map(self.data(), f), self.shape().clone())
    }

    /// `f` applied to pairs of elements, broadcasting the two shapes.
    ///
    /// # Panics
    /// If the shapes do not broadcast.
    #[track_caller]
    pub fn zip_map(&self, other: &Tensor<T>, f: impl Fn(T, T) -> T + Sync + Send + Copy) -> Tensor<T> {
        broadcast_zip("zip_map", self, other, f)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn reused_input_accumulates() {
        // d/dx (x·x + x) = 2x + 1
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![1.5f64, -2.0], [2]));
        let g = (x * x + x).sum_all().backward();
        assert_eq!(g[x].to_vec(), vec![4.0, -3.0]);
        // d/da (a + a) = 2
        let a = tape.var(Tensor::from_vec(vec![1.0f64], [1]));
        assert_eq!((a + a).sum_all().backward()[a].to_vec(), vec![2.0]);
    }

    #[test]
    fn broadcast_gradients_are_summed_back() {
        // y = a[2,3] * b[3]: ∂Σy/∂b_j = Σ_i a_ij
        let tape = Tape::new();
        let a = tape.var(Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
        let b = tape.var(Tensor::from_vec(vec![1.0f64, 1.0, 1.0], [3]));
        let g = (a * b).sum_all().backward();
        assert_eq!(g[b].to_vec(), vec![5.0, 7.0, 9.0]);
        assert_eq!(g[a].dims(), &[2, 3]);
    }

    #[test]
    fn quotient_rule() {
        // d/db (a/b) = −a/b²
        let tape = Tape::new();
        let a = tape.var(Tensor::from_vec(vec![3.0f64], [1]));
        let b = tape.var(Tensor::from_vec(vec![2.0f64], [1]));
        let g = (a / b).sum_all().backward();
        assert_eq!(g[a].to_vec(), vec![0.5]);
        assert_eq!(g[b].to_vec(), vec![-0.75]);
    }
}
