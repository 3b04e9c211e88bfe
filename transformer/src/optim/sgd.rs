//! Stochastic gradient descent with optional momentum (heavy-ball or Nesterov) and L2 weight
//! decay, as `torch.optim.SGD`.

use super::elementwise::{grad_of, update};
use super::{Optimizer, OptimizerState};
use autograd::{Element, Gradients, ParamStore, Tensor};
use std::collections::HashMap;

/// Hyperparameters of [`Sgd`].
///
/// ```
/// use transformer::optim::SgdConfig;
/// let config = SgdConfig { momentum: 0.9, nesterov: true, ..SgdConfig::new(0.1) };
/// assert_eq!(config.dampening, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate α.
    pub lr: f64,
    /// Momentum μ (0 for plain SGD); 0.9 is the usual choice.
    pub momentum: f64,
    /// Dampening τ: the gradient enters the momentum buffer with weight 1 − τ (0 in PyTorch's
    /// default, and required by Nesterov momentum).
    pub dampening: f64,
    /// L2 weight decay λ: λ·θ is added to the gradient (0 for none).
    pub weight_decay: f64,
    /// Nesterov momentum: step along g + μ·b instead of b.
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`: no momentum, no dampening, no weight decay, as
    /// `torch.optim.SGD(params, lr)`.
    pub fn new(lr: f64) -> Self {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

/// Stochastic gradient descent, as `torch.optim.SGD`.
///
/// For each parameter θ with gradient g:
///
/// ```text
/// g ← g + λ·θ                  (only when weight_decay λ ≠ 0)
/// b ← g                        (momentum μ ≠ 0: on the parameter's first step)
/// b ← μ·b + (1 − τ)·g          (momentum μ ≠ 0: on later steps)
/// g ← g + μ·b  if nesterov, else  g ← b
/// θ ← θ − α·g
/// ```
///
/// The buffer b starts as the first gradient itself (not as zero, and without dampening), as
/// PyTorch does. A parameter without a gradient on a step keeps its buffer unchanged.
///
/// PyTorch equivalent: `torch.optim.SGD(params, lr, momentum=μ, dampening=τ, weight_decay=λ,
/// nesterov=...)`.
///
/// ```
/// use autograd::{ParamStore, Tape, Tensor};
/// use transformer::optim::{Optimizer, Sgd};
///
/// let mut params = ParamStore::<f32>::new();
/// let w = params.root().param("w", Tensor::from_vec(vec![1.0], [1]));
/// let mut sgd = Sgd::with_momentum(0.1, 0.9);
/// for _ in 0..2 {
///     let tape = Tape::new();
///     let grads = tape.param(&w).sum_all().backward(); // g = 1 on both steps
///     sgd.step(&params, &grads);
/// }
/// // b = 1, then b = 0.9·1 + 1 = 1.9: θ = 1 − 0.1·1 − 0.1·1.9
/// assert!((w.value().data()[0] - 0.71).abs() < 1e-6);
/// ```
pub struct Sgd<T: Element = f32> {
    config: SgdConfig,
    /// Momentum buffers by parameter id (empty without momentum).
    buffers: HashMap<u64, Vec<T>>,
}

impl<T: Element> Sgd<T> {
    /// SGD with the given hyperparameters.
    ///
    /// # Panics
    /// If lr, momentum or weight_decay is negative, or Nesterov momentum is asked for without a
    /// positive momentum or with dampening (PyTorch refuses the same).
    #[track_caller]
    pub fn new(config: SgdConfig) -> Self {
        let SgdConfig { lr, momentum, dampening, weight_decay, nesterov } = config;
        assert!(lr >= 0.0, "Sgd: the learning rate must be >= 0, got {lr}");
        assert!(momentum >= 0.0, "Sgd: momentum must be >= 0, got {momentum}");
        assert!(weight_decay >= 0.0, "Sgd: weight_decay must be >= 0, got {weight_decay}");
        assert!(
            !nesterov || (momentum > 0.0 && dampening == 0.0),
            "Sgd: Nesterov momentum needs momentum > 0 and dampening 0, got momentum {momentum} and dampening \
             {dampening}"
        );
        Sgd { config, buffers: HashMap::new() }
    }

    /// Plain SGD: θ ← θ − α·g.
    pub fn plain(lr: f64) -> Self {
        Self::new(SgdConfig::new(lr))
    }

    /// SGD with heavy-ball momentum μ (no dampening, no weight decay).
    ///
    /// # Panics
    /// If `lr` or `momentum` is negative.
    #[track_caller]
    pub fn with_momentum(lr: f64, momentum: f64) -> Self {
        Self::new(SgdConfig { momentum, ..SgdConfig::new(lr) })
    }

    /// The hyperparameters (with the current learning rate).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn step_scaled(&mut self, params: &ParamStore<T>, grads: &Gradients<T>, grad_scale: T) {
        let SgdConfig { lr, momentum, dampening, weight_decay, nesterov } = self.config;
        // PyTorch's Python floats become scalars of the element type here: `alpha=1 - dampening`,
        // `alpha=-lr`.
        let (neg_lr, one_minus_dampening) = (T::from_f64(-lr), T::from_f64(1.0 - dampening));
        let (momentum, weight_decay) = (T::from_f64(momentum), T::from_f64(weight_decay));
        let decayed = |x: T, g: T| if weight_decay != T::ZERO { g + weight_decay * x } else { g };
        for param in params.iter() {
            let Some(grad) = grad_of("Sgd", param, grads) else { continue };
            if momentum == T::ZERO {
                let mut no_state = vec![(); grad.numel()];
                param.update(|values| {
                    update(values, grad.data(), grad_scale, &mut no_state, |x, g, _| *x += neg_lr * decayed(*x, g))
                });
                continue;
            }
            let first = !self.buffers.contains_key(&param.id());
            let buffer = self.buffers.entry(param.id()).or_insert_with(|| vec![T::ZERO; grad.numel()]);
            param.update(|values| {
                update(values, grad.data(), grad_scale, buffer, |x, g, b| {
                    let g = decayed(*x, g);
                    *b = if first { g } else { *b * momentum + one_minus_dampening * g };
                    let step = if nesterov { g + momentum * *b } else { *b };
                    *x += neg_lr * step;
                })
            });
        }
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self, params: &ParamStore<T>) -> OptimizerState<T> {
        let mut out = OptimizerState::default();
        for param in params.iter() {
            if let Some(buffer) = self.buffers.get(&param.id()) {
                let tensor = Tensor::from_vec(buffer.clone(), param.shape());
                out.buffers.insert(format!("{}.momentum_buffer", param.name()), tensor);
            }
        }
        out
    }

    fn load_state(&mut self, params: &ParamStore<T>, state: &OptimizerState<T>) -> Result<(), String> {
        state.check_names(params, &["momentum_buffer"])?;
        let mut buffers = HashMap::new();
        for param in params.iter() {
            if state.buffers.contains_key(&format!("{}.momentum_buffer", param.name())) {
                buffers.insert(param.id(), state.buffer(param, "momentum_buffer")?.data().to_vec());
            }
        }
        self.buffers = buffers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{Tape, Tensor};

    /// θ after SGD on loss = g·θ for each g in turn.
    fn run(config: SgdConfig, w0: f32, gs: &[f32]) -> f32 {
        let mut params = ParamStore::<f32>::new();
        let w = params.root().param("w", Tensor::from_vec(vec![w0], [1]));
        let mut sgd = Sgd::<f32>::new(config);
        for &g in gs {
            let tape = Tape::new();
            let grads = tape.param(&w).mul_scalar(f64::from(g)).sum_all().backward();
            sgd.step(&params, &grads);
        }
        w.value().data()[0]
    }

    #[test]
    fn plain_sgd_steps_against_the_gradient() {
        // θ = 1 − 0.5·2 − 0.5·(−1) = 0.5
        assert_eq!(run(SgdConfig::new(0.5), 1.0, &[2.0, -1.0]), 0.5);
    }

    #[test]
    fn nesterov_looks_ahead() {
        // b1 = 1, step g + μb = 1.5; b2 = 0.5·1 + 1 = 1.5, step 1 + 0.75 = 1.75: θ = 1 − 0.5·(1.5 + 1.75)
        let config = SgdConfig { momentum: 0.5, nesterov: true, ..SgdConfig::new(0.5) };
        assert_eq!(run(config, 1.0, &[1.0, 1.0]), 1.0 - 0.5 * (1.5 + 1.75));
    }

    #[test]
    fn dampening_weighs_later_gradients_only() {
        // b1 = 2 (undamped), b2 = 0.5·2 + (1 − 0.5)·2 = 2: θ = 0 − 2 − 2
        let config = SgdConfig { momentum: 0.5, dampening: 0.5, ..SgdConfig::new(1.0) };
        assert_eq!(run(config, 0.0, &[2.0, 2.0]), -4.0);
    }

    #[test]
    #[should_panic(expected = "Sgd: Nesterov momentum needs momentum > 0 and dampening 0")]
    fn nesterov_without_momentum_is_refused() {
        Sgd::<f32>::new(SgdConfig { nesterov: true, ..SgdConfig::new(0.1) });
    }
}
