//! Pointwise functions: exp, log, sqrt, erf, tanh, sigmoid, relu, abs, gelu.
//!
//! Each op is its forward formula and its derivative, next to each other; the `pointwise!`
//! macro only adds the `Tensor` and `Var` methods that call them.

use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};

/// Defines an op struct, its `Op` impl, and the `Tensor`/`Var` methods.
macro_rules! pointwise {
    (
        $(#[$doc:meta])*
        $Op:ident, $method:ident,
        forward: |$x:ident| $forward:expr,
        vjp: |$v:ident| $vjp:expr,
        $(fused: |$fx:ident, $fy:ident, $fg:ident| $fused:expr,)?
        $(moves_values: $moves:literal,)?
    ) => {
        struct $Op;
        impl<T: Element> Op<T> for $Op {
            fn name(&self) -> &'static str {
                stringify!($method)
            }
            $(
                fn moves_values(&self) -> bool {
                    $moves
                }
            )?
            fn vjp<M: Math<T>>(&self, $v: Vjp<'_, M>) -> InputGrads<M> {
                vec![Some($vjp)]
            }
            $(
                // The same rule in one elementwise pass over (x, y, g).
                fn fused_vjp(&self, v: &Vjp<'_, Tensor<T>>) -> Option<InputGrads<Tensor<T>>> {
                    let (x, y, g) = (&v.inputs[0], v.output, v.grad);
                    let data = crate::kernels::zip3_map(x.data(), y.data(), g.data(), |$fx: T, $fy: T, $fg: T| $fused);
                    Some(vec![Some(Tensor::from_vec(data, x.shape().clone()))])
                }
            )?
        }
        impl<T: Element> Tensor<T> {
            $(#[$doc])*
            pub fn $method(&self) -> Tensor<T> {
                self.map(|$x: T| $forward)
            }
        }
        impl<'t, T: Element> Var<'t, T> {
            $(#[$doc])*
            #[track_caller]
            pub fn $method(self) -> Self {
                self.unary($Op, Tensor::$method)
            }
        }
    };
}

pointwise! {
    /// e^x elementwise.
    Exp, exp,
    forward: |x| x.exp(),
    // d/dx eˣ = eˣ, which is the output
    vjp: |v| v.grad.mul(v.output),
}

pointwise! {
    /// Natural logarithm elementwise.
    Log, log,
    forward: |x| x.ln(),
    // d/dx ln x = 1/x
    vjp: |v| v.grad.div(&v.inputs[0]),
}

pointwise! {
    /// Square root elementwise.
    Sqrt, sqrt,
    forward: |x| x.sqrt(),
    // d/dx √x = 1/(2√x), with √x the output
    vjp: |v| v.grad.div(v.output).mul_scalar(0.5),
}

pointwise! {
    /// The error function elementwise.
    Erf, erf,
    forward: |x| x.erf(),
    // d/dx erf x = 2/√π · e^(−x²)
    vjp: |v| {
        let x = &v.inputs[0];
        v.grad.mul(&x.mul(x).neg().exp().mul_scalar(std::f64::consts::FRAC_2_SQRT_PI))
    },
}

pointwise! {
    /// Hyperbolic tangent elementwise.
    Tanh, tanh,
    forward: |x| x.tanh(),
    // d/dx tanh x = 1 − tanh² x
    vjp: |v| v.grad.mul(&v.output.mul(v.output).neg().add_scalar(1.0)),
    fused: |_x, y, g| g * (T::ONE - y * y),
}

pointwise! {
    /// The logistic function 1 / (1 + e^−x) elementwise, computed without overflow.
    Sigmoid, sigmoid,
    forward: |x| if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    },
    // d/dx σ(x) = σ(x)(1 − σ(x))
    vjp: |v| v.grad.mul(&v.output.mul(&v.output.neg().add_scalar(1.0))),
    fused: |_x, y, g| g * (y * (T::ONE - y)),
}

pointwise! {
    /// max(x, 0) elementwise. Its derivative at 0 is taken as 0, as in PyTorch.
    Relu, relu,
    forward: |x| if x > T::ZERO { x } else { T::ZERO },
    // d/dx relu x = 1 where x > 0, else 0: a constant mask, so the second derivative is 0
    vjp: |v| v.grad.mul_const(v.inputs[0].value().map(|x| if x > T::ZERO { T::ONE } else { T::ZERO })),
    fused: |x, _y, g| if x > T::ZERO { g } else { T::ZERO },
    // Its output is x or 0, and its gradient g or 0.
    moves_values: true,
}

pointwise! {
    /// |x| elementwise. Its derivative at 0 is taken as 0, as in PyTorch.
    Abs, abs,
    forward: |x| x.abs(),
    // d/dx |x| = sign(x), with sign(0) = 0 and sign(NaN) = NaN, as PyTorch's sgn: a constant
    // mask, so the second derivative is 0
    vjp: |v| v.grad.mul_const(v.inputs[0].value().map(|x| {
        if x > T::ZERO {
            T::ONE
        } else if x < T::ZERO {
            -T::ONE
        } else if x == T::ZERO {
            T::ZERO
        } else {
            x
        }
    })),
    fused: |x, _y, g| if x > T::ZERO { g } else if x < T::ZERO { -g } else if x == T::ZERO { T::ZERO } else { g * x },
}

pointwise! {
    /// GELU in its exact erf form, x·Φ(x) with Φ the standard normal CDF, as PyTorch's
    /// default `F.gelu(x)`.
    Gelu, gelu,
    forward: |x| {
        let half = T::from_f64(0.5);
        half * x * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
    },
    // d/dx x·Φ(x) = Φ(x) + x·φ(x), with φ(x) = e^(−x²/2)/√(2π)
    vjp: |v| {
        let x = &v.inputs[0];
        let cdf = x
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
            .erf()
            .add_scalar(1.0)
            .mul_scalar(0.5);
        let pdf = x
            .mul(x)
            .mul_scalar(-0.5)
            .exp()
            .mul_scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt());
        v.grad.mul(&cdf.add(&x.mul(&pdf)))
    },
    fused: |x, _y, g| {
        let cdf = T::from_f64(0.5) * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
        let pdf = (x * x * T::from_f64(-0.5)).exp() * T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt());
        g * (cdf + x * pdf)
    },
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    fn grad_at(x0: f64, f: impl for<'t> Fn(crate::Var<'t, f64>) -> crate::Var<'t, f64>) -> f64 {
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(vec![x0], [1]));
        f(x).sum_all().backward()[x].item()
    }

    #[test]
    fn derivatives_at_known_points() {
        // d/dx eˣ at 0 = 1; d/dx ln x at 2 = 1/2; d/dx √x at 4 = 1/4
        assert_eq!(grad_at(0.0, |x| x.exp()), 1.0);
        assert_eq!(grad_at(2.0, |x| x.log()), 0.5);
        assert_eq!(grad_at(4.0, |x| x.sqrt()), 0.25);
        // d/dx tanh x at 0 = 1; d/dx σ(x) at 0 = 1/4; d/dx erf x at 0 = 2/√π
        assert_eq!(grad_at(0.0, |x| x.tanh()), 1.0);
        assert_eq!(grad_at(0.0, |x| x.sigmoid()), 0.25);
        assert_eq!(grad_at(0.0, |x| x.erf()), std::f64::consts::FRAC_2_SQRT_PI);
        // relu' is 1 above 0 and 0 at and below; gelu'(0) = Φ(0) = 1/2
        assert_eq!(grad_at(0.5, |x| x.relu()), 1.0);
        assert_eq!(grad_at(0.0, |x| x.relu()), 0.0);
        assert_eq!(grad_at(0.0, |x| x.gelu()), 0.5);
    }

    #[test]
    fn sigmoid_does_not_overflow() {
        let t = Tensor::from_vec(vec![-1000.0f64, 1000.0], [2]).sigmoid();
        assert_eq!(t.to_vec(), vec![0.0, 1.0]);
    }

    /// Each fused rule (one pass over x, y and g) gives what the rule above it gives.
    #[test]
    fn fused_rules_match_the_general_ones() {
        use super::{Abs, Gelu, Relu, Sigmoid, Tanh};
        use crate::op::testing::assert_fused_rule_matches;
        // −4.5 to 4.25 in steps of 1/4: both signs, and the kinks of relu and abs at exactly 0.
        let x = Tensor::from_fn([4, 9], |i| (i as f64 - 18.0) / 4.0);
        assert_fused_rule_matches(&Tanh, std::slice::from_ref(&x), &x.tanh());
        assert_fused_rule_matches(&Sigmoid, std::slice::from_ref(&x), &x.sigmoid());
        assert_fused_rule_matches(&Relu, std::slice::from_ref(&x), &x.relu());
        assert_fused_rule_matches(&Gelu, std::slice::from_ref(&x), &x.gelu());
        assert_fused_rule_matches(&Abs, std::slice::from_ref(&x), &x.abs());
    }
}
