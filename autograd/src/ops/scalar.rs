//! Operations with a scalar: `x + s`, `x * s`, `x ^ p`, and the operators that use them.
//! The scalar is an `f64` for every element type.

use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use std::ops::{Add, Div, Mul, Sub};

/// x + s
struct AddScalar(f64);
impl<T: Element> Op<T> for AddScalar {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn attributes(&self) -> String {
        format!("{}", self.0)
    }
    // ∂(x+s)/∂x = 1
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.clone())]
    }
}

/// x · s
struct MulScalar(f64);
impl<T: Element> Op<T> for MulScalar {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }
    fn attributes(&self) -> String {
        format!("{}", self.0)
    }
    // ∂(xs)/∂x = s
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.mul_scalar(self.0))]
    }
}

/// x ^ p
struct Powf(f64);
impl<T: Element> Op<T> for Powf {
    fn name(&self) -> &'static str {
        "powf"
    }
    fn attributes(&self) -> String {
        format!("{}", self.0)
    }
    // ∂(x^p)/∂x = p·x^(p−1), and exactly 0 for p = 0 (as PyTorch, so 0^−1 never appears)
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let x = &v.inputs[0];
        let p = self.0;
        if p == 0.0 {
            return vec![Some(v.grad.mul_scalar(0.0))];
        }
        vec![Some(v.grad.mul(&x.powf(p - 1.0).mul_scalar(p)))]
    }
}

// Scalars are `f64` whatever the element type, as Python floats are in PyTorch: `x * 0.5` reads
// the same for f32 and f64 tensors, and generic code needs no `T::from_f64`. The scalar is
// rounded to the element type once, where the kernel uses it.
impl<T: Element> Tensor<T> {
    /// `self + s` elementwise.
    pub fn add_scalar(&self, s: f64) -> Tensor<T> {
        let s = T::from_f64(s);
        self.map(move |x| x + s)
    }

    /// `self * s` elementwise.
    pub fn mul_scalar(&self, s: f64) -> Tensor<T> {
        let s = T::from_f64(s);
        self.map(move |x| x * s)
    }

    /// `self ^ p` elementwise, like `torch.pow(x, p)` with a float exponent.
    pub fn powf(&self, p: f64) -> Tensor<T> {
        // Squares are common (variances, x³ in tests) and exact as products.
        if p == 2.0 {
            return self.map(|x| x * x);
        }
        let p = T::from_f64(p);
        self.map(move |x| x.powf(p))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `self + s` elementwise.
    #[track_caller]
    pub fn add_scalar(self, s: f64) -> Self {
        self.unary(AddScalar(s), |x| x.add_scalar(s))
    }

    /// `self * s` elementwise.
    #[track_caller]
    pub fn mul_scalar(self, s: f64) -> Self {
        self.unary(MulScalar(s), |x| x.mul_scalar(s))
    }

    /// `self ^ p` elementwise, like `torch.pow(x, p)` with a float exponent.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// // d/dx x³ = 3x²
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::from_vec(vec![2.0f64], [1]));
    /// assert_eq!(x.powf(3.0).sum_all().backward()[x].to_vec(), vec![12.0]);
    /// ```
    #[track_caller]
    pub fn powf(self, p: f64) -> Self {
        self.unary(Powf(p), |x| x.powf(p))
    }
}

// `x op s` and `s op x` for an `f64` scalar `s`, on vars and tensors of either element type:
// `(x - 1.0) * 0.5` works in f32 and f64 models alike.
impl<'t, T: Element> Add<f64> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn add(self, s: f64) -> Self::Output {
        self.add_scalar(s)
    }
}
impl<'t, T: Element> Sub<f64> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn sub(self, s: f64) -> Self::Output {
        self.add_scalar(-s)
    }
}
impl<'t, T: Element> Mul<f64> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn mul(self, s: f64) -> Self::Output {
        self.mul_scalar(s)
    }
}
impl<'t, T: Element> Div<f64> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn div(self, s: f64) -> Self::Output {
        self.mul_scalar(1.0 / s)
    }
}
impl<'t, T: Element> Add<Var<'t, T>> for f64 {
    type Output = Var<'t, T>;
    #[track_caller]
    fn add(self, x: Var<'t, T>) -> Self::Output {
        x.add_scalar(self)
    }
}
impl<'t, T: Element> Sub<Var<'t, T>> for f64 {
    type Output = Var<'t, T>;
    #[track_caller]
    fn sub(self, x: Var<'t, T>) -> Self::Output {
        (-x).add_scalar(self)
    }
}
impl<'t, T: Element> Mul<Var<'t, T>> for f64 {
    type Output = Var<'t, T>;
    #[track_caller]
    fn mul(self, x: Var<'t, T>) -> Self::Output {
        x.mul_scalar(self)
    }
}
impl<T: Element> Add<f64> for &Tensor<T> {
    type Output = Tensor<T>;
    fn add(self, s: f64) -> Tensor<T> {
        self.add_scalar(s)
    }
}
impl<T: Element> Sub<f64> for &Tensor<T> {
    type Output = Tensor<T>;
    fn sub(self, s: f64) -> Tensor<T> {
        self.add_scalar(-s)
    }
}
impl<T: Element> Mul<f64> for &Tensor<T> {
    type Output = Tensor<T>;
    fn mul(self, s: f64) -> Tensor<T> {
        self.mul_scalar(s)
    }
}
impl<T: Element> Div<f64> for &Tensor<T> {
    type Output = Tensor<T>;
    fn div(self, s: f64) -> Tensor<T> {
        self.mul_scalar(1.0 / s)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn power_rule_and_zero_exponent() {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![0.0f64, 2.0], [2]));
        // d/dx x^0 = 0 everywhere, even at 0
        assert_eq!(x.powf(0.0).sum_all().backward()[x].to_vec(), vec![0.0, 0.0]);
        // d/dx x^0.5 = 0.5 x^−0.5
        let y = tape.var(Tensor::from_vec(vec![4.0f64], [1]));
        assert_eq!(y.powf(0.5).sum_all().backward()[y].to_vec(), vec![0.25]);
    }

    #[test]
    fn scalar_operators_on_both_sides() {
        // d/dx (3 − 2x + x/4) = −2 + 1/4
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![1.0f64], [1]));
        let y = 3.0 - 2.0 * x + x / 4.0;
        assert_eq!(y.value().to_vec(), vec![1.25]);
        assert_eq!(y.sum_all().backward()[x].to_vec(), vec![-1.75]);
    }
}

#[cfg(test)]
mod f32_tests {
    use crate::{Tape, Tensor};

    #[test]
    fn f64_scalars_work_on_f32_values() {
        // d/dx (0.5·x + 1)² = x + 1 at x = 2 is 3
        let tape = Tape::<f32>::new();
        let x = tape.var(Tensor::from_vec(vec![2.0f32], [1]));
        let y = (x * 0.5 + 1.0).powf(2.0);
        assert_eq!(y.value().to_vec(), vec![4.0f32]);
        assert_eq!(y.sum_all().backward()[x].to_vec(), vec![2.0f32]);
        // The scalar is rounded to f32 once, as PyTorch rounds a Python float for a float32 tensor.
        assert_eq!((&Tensor::from_vec(vec![1.0f32], [1]) * 0.1).to_vec(), vec![0.1f32]);
    }
}
