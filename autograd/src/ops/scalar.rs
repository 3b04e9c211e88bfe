//! Operations with a scalar: `x + s`, `x * s`, `x ^ p`, and the operators that use them.

use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use std::ops::{Add, Div, Mul, Sub};

/// x + s
struct AddScalar<T>(T);
impl<T: Element> Op<T> for AddScalar<T> {
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
struct MulScalar<T>(T);
impl<T: Element> Op<T> for MulScalar<T> {
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
struct Powf<T>(T);
impl<T: Element> Op<T> for Powf<T> {
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
        if p == T::ZERO {
            return vec![Some(v.grad.mul_scalar(T::ZERO))];
        }
        vec![Some(v.grad.mul(&x.powf(p - T::ONE).mul_scalar(p)))]
    }
}

impl<T: Element> Tensor<T> {
    /// `self + s` elementwise.
    pub fn add_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x + s)
    }

    /// `self * s` elementwise.
    pub fn mul_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x * s)
    }

    /// `self ^ p` elementwise, like `torch.pow(x, p)` with a float exponent.
    pub fn powf(&self, p: T) -> Tensor<T> {
        // Squares are common (variances, x³ in tests) and exact as products.
        if p == T::from_f64(2.0) {
            return self.map(|x| x * x);
        }
        self.map(|x| x.powf(p))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `self + s` elementwise.
    #[track_caller]
    pub fn add_scalar(self, s: T) -> Self {
        self.unary(AddScalar(s), |x| x.add_scalar(s))
    }

    /// `self * s` elementwise.
    #[track_caller]
    pub fn mul_scalar(self, s: T) -> Self {
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
    pub fn powf(self, p: T) -> Self {
        self.unary(Powf(p), |x| x.powf(p))
    }
}

/// `x op s` and `s op x` for a scalar `s` of the element type, on vars and tensors.
macro_rules! scalar_operators {
    ($t:ty) => {
        impl<'t> Add<$t> for Var<'t, $t> {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn add(self, s: $t) -> Self::Output {
                self.add_scalar(s)
            }
        }
        impl<'t> Sub<$t> for Var<'t, $t> {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn sub(self, s: $t) -> Self::Output {
                self.add_scalar(-s)
            }
        }
        impl<'t> Mul<$t> for Var<'t, $t> {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn mul(self, s: $t) -> Self::Output {
                self.mul_scalar(s)
            }
        }
        impl<'t> Div<$t> for Var<'t, $t> {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn div(self, s: $t) -> Self::Output {
                self.mul_scalar(1.0 / s)
            }
        }
        impl<'t> Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn add(self, x: Var<'t, $t>) -> Self::Output {
                x.add_scalar(self)
            }
        }
        impl<'t> Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn sub(self, x: Var<'t, $t>) -> Self::Output {
                (-x).add_scalar(self)
            }
        }
        impl<'t> Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn mul(self, x: Var<'t, $t>) -> Self::Output {
                x.mul_scalar(self)
            }
        }
        impl Add<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            fn add(self, s: $t) -> Tensor<$t> {
                self.add_scalar(s)
            }
        }
        impl Sub<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            fn sub(self, s: $t) -> Tensor<$t> {
                self.add_scalar(-s)
            }
        }
        impl Mul<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            fn mul(self, s: $t) -> Tensor<$t> {
                self.mul_scalar(s)
            }
        }
        impl Div<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            fn div(self, s: $t) -> Tensor<$t> {
                self.mul_scalar(1.0 / s)
            }
        }
    };
}

scalar_operators!(f32);
scalar_operators!(f64);

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
