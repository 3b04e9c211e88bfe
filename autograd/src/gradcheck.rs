//! Gradient checking: analytic gradients against central differences, in f64.

use crate::{Mismatch, Tape, Tensor, Var, largest_magnitude, max_relative_error};
use rand::SeedableRng;
use std::fmt;

/// Step and tolerance for [`gradcheck`] and [`gradgradcheck`].
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    /// The finite-difference step h in (f(x + h) − f(x − h)) / 2h.
    pub eps: f64,
    /// Largest accepted relative error: max |analytic − numeric| / max |numeric| per input.
    pub tolerance: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, tolerance: 1e-6 }
    }
}

/// A gradient that disagrees with its finite-difference estimate.
#[derive(Clone, Debug)]
pub struct GradcheckError {
    /// Which input of the function.
    pub input: usize,
    /// The flat index of the element with the largest disagreement.
    pub index: usize,
    /// The gradient from backward at that element.
    pub analytic: f64,
    /// The central-difference estimate at that element.
    pub numeric: f64,
    /// max |analytic − numeric| / max |numeric| over the input.
    pub relative_error: f64,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: input {} element {}: backward gives {:e}, finite differences give {:e} \
             (relative error {:.2e})",
            self.input, self.index, self.analytic, self.numeric, self.relative_error
        )
    }
}

impl std::error::Error for GradcheckError {}

/// A fixed pseudo-random tensor in ±[0.5, 1.5): a non-trivial upstream gradient, so a rule that
/// ignores its incoming gradient cannot pass.
fn weights(shape: &crate::Shape, seed: u64) -> Tensor<f64> {
    use rand::Rng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Tensor::from_fn(shape.clone(), |i| {
        let magnitude = 0.5 + rng.random::<f64>();
        if i % 3 == 1 { -magnitude } else { magnitude }
    })
}

/// L(x) = Σ f(x) ⊙ w for the fixed weights w.
fn projected<'t>(f: &impl Fn(&[Var<'t, f64>]) -> Var<'t, f64>, xs: &[Var<'t, f64>]) -> Var<'t, f64> {
    let out = f(xs);
    let w = out.tape().constant(weights(&out.shape(), 17));
    (out * w).sum_all()
}

/// Checks the gradients `backward` computes for `f` at `inputs` against central differences.
///
/// The function may return any shape; it is contracted with fixed pseudo-random weights, so
/// the check exercises the vector-Jacobian product with a non-trivial upstream gradient.
///
/// ```
/// use autograd::{gradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3]);
/// gradcheck(|v| (v[0] * v[0]).tanh(), &[x], GradcheckOptions::default()).unwrap();
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>], options: GradcheckOptions) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let analytic: Vec<Tensor<f64>> = {
        let tape = Tape::new();
        let xs: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.var(x.clone())).collect();
        let loss = projected(&f, &xs);
        if loss.requires_grad() {
            let grads = loss.backward();
            xs.iter().map(|&x| grads[x].clone()).collect()
        } else {
            // Nothing tracked reaches the output (say, the gradient of a linear function): the
            // derivative is zero, and the finite differences must agree.
            inputs.iter().map(|x| Tensor::zeros(x.shape().clone())).collect()
        }
    };
    let eval = |xs: &[Tensor<f64>]| -> f64 {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
        projected(&f, &vars).value().item()
    };
    let mut xs = inputs.to_vec();
    for (i, grad) in analytic.iter().enumerate() {
        let mut numeric = vec![0.0; inputs[i].numel()];
        for (j, slot) in numeric.iter_mut().enumerate() {
            let x0 = inputs[i].data()[j];
            xs[i].data_mut()[j] = x0 + options.eps;
            let plus = eval(&xs);
            xs[i].data_mut()[j] = x0 - options.eps;
            let minus = eval(&xs);
            xs[i].data_mut()[j] = x0;
            *slot = (plus - minus) / (2.0 * options.eps);
        }
        // Errors are measured against the largest derivative of this input. A non-finite
        // estimate means the function is not differentiable here: that fails too.
        let numeric = Tensor::from_vec(numeric, inputs[i].shape().clone());
        let scale = largest_magnitude(&numeric);
        let worst = if scale.is_finite() {
            max_relative_error(grad, &numeric, scale.max(1e-12))
        } else {
            let index = numeric.data().iter().position(|v| !v.is_finite()).expect("a non-finite estimate");
            Some(Mismatch { index, got: grad.data()[index], want: numeric.data()[index], error: f64::INFINITY })
        };
        // The error is never NaN (it is +∞ for a NaN gradient), so `>` cannot miss one.
        if let Some(worst) = worst.filter(|w| w.error > options.tolerance) {
            return Err(GradcheckError {
                input: i,
                index: worst.index,
                analytic: worst.got,
                numeric: worst.want,
                relative_error: worst.error,
            });
        }
    }
    Ok(())
}

/// Checks second derivatives: the gradient of `⟨∇L(x), u⟩` (computed by
/// `backward_with_graph` and then `backward`) against central differences of the first
/// gradient, for fixed pseudo-random `u`.
///
/// ```
/// use autograd::{gradgradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3, -1.2], [2]);
/// gradgradcheck(|v| v[0].exp() * v[0], &[x], GradcheckOptions::default()).unwrap();
/// ```
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>], options: GradcheckOptions) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    fn first_gradient_of<F>(f: &F) -> impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64> + '_
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        move |xs| first_gradient(f, xs)
    }
    gradcheck(first_gradient_of(&f), inputs, options)
}

/// ⟨∇L(x), u⟩ for fixed weights u, recorded on the tape so it can be differentiated.
fn first_gradient<'t, F>(f: &F, xs: &[Var<'t, f64>]) -> Var<'t, f64>
where
    F: for<'s> Fn(&[Var<'s, f64>]) -> Var<'s, f64>,
{
    {
        let tape = xs[0].tape();
        let grads = projected(f, xs).backward_with_graph();
        let mut total: Option<Var<'_, f64>> = None;
        for (k, &x) in xs.iter().enumerate() {
            let Some(g) = grads.get(x) else { continue };
            let u = tape.constant(weights(&g.shape(), 29 + k as u64));
            let term = (g * u).sum_all();
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        total.expect("gradgradcheck: at least one input")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InputGrads, Math, Op, Vjp};

    /// The identity, whose recorded derivative is multiplied by `factor`: a broken rule to check.
    struct ScaledIdentity(Vec<f64>);

    impl Op<f64> for ScaledIdentity {
        fn name(&self) -> &'static str {
            "scaled_identity"
        }
        fn vjp<M: Math<f64>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
            vec![Some(v.grad.mul_const(Tensor::from_vec(self.0.clone(), [self.0.len()])))]
        }
    }

    fn check_with_factor(factor: Vec<f64>) -> Result<(), GradcheckError> {
        let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], [4]);
        gradcheck(|v| v[0].apply(ScaledIdentity(factor.clone()), &[v[0]], v[0].value()), &[x], Default::default())
    }

    #[test]
    fn a_correct_rule_passes() {
        check_with_factor(vec![1.0; 4]).unwrap();
    }

    #[test]
    fn a_wrong_rule_fails_at_its_element() {
        let err = check_with_factor(vec![1.0, 1.0, 1.001, 1.0]).unwrap_err();
        assert_eq!((err.input, err.index), (0, 2), "{err}");
    }

    #[test]
    fn nan_and_infinite_gradients_fail_wherever_they_are() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in 0..4 {
                let mut factor = vec![1.0; 4];
                factor[at] = bad;
                // A finite error elsewhere as well, so a comparison that skips NaN would report it.
                factor[(at + 1) % 4] = 1.5;
                let err = check_with_factor(factor).unwrap_err();
                assert_eq!((err.index, err.relative_error), (at, f64::INFINITY), "{bad} at {at}: {err}");
            }
        }
    }

    #[test]
    fn a_non_finite_estimate_fails() {
        // √x at 0: the central difference reaches √(−h), which is NaN.
        let x = Tensor::from_vec(vec![1.0, 0.0, 4.0], [3]);
        let err = gradcheck(|v| v[0].sqrt(), &[x], Default::default()).unwrap_err();
        assert_eq!(err.index, 1, "{err}");
        assert!(err.numeric.is_nan());
    }
}
