//! Adam (Kingma & Ba, 2015), the optimizer "Attention Is All You Need" trains with, and AdamW,
//! which differs only in where weight decay enters.

use super::elementwise::{grad_of, update};
use super::{Optimizer, OptimizerState};
use autograd::{Element, Gradients, ParamStore, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;

/// Hyperparameters of [`Adam`] and [`AdamW`].
///
/// Start from [`AdamConfig::paper`] or [`AdamConfig::pytorch`] and change a field with struct
/// update syntax:
///
/// ```
/// use transformer::optim::AdamConfig;
/// let config = AdamConfig { weight_decay: 0.1, ..AdamConfig::pytorch(3e-4) };
/// assert_eq!((config.beta2, config.eps), (0.999, 1e-8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate α. With a [`super::Schedule`], the training loop overwrites it every step.
    pub lr: f64,
    /// β1, the decay of the running mean of gradients: 0.9 in the paper and in PyTorch.
    pub beta1: f64,
    /// β2, the decay of the running mean of squared gradients: 0.98 in the Transformer paper
    /// (steadier early steps under its large warm-up learning rates), 0.999 in PyTorch.
    pub beta2: f64,
    /// ε, added to √v̂ so a parameter with tiny gradients does not take huge steps: 1e-9 in the
    /// Transformer paper, 1e-8 in PyTorch.
    pub eps: f64,
    /// Weight decay λ (0 for none). [`Adam`] adds λ·θ to the gradient (L2 regularization, as
    /// `torch.optim.Adam`); [`AdamW`] shrinks θ by the factor 1 − α·λ before the update.
    pub weight_decay: f64,
}

impl AdamConfig {
    /// The settings of "Attention Is All You Need" (§5.3): β1 0.9, β2 0.98, ε 1e-9, no weight
    /// decay. The paper's learning rate comes from the [`super::Noam`] schedule.
    pub fn paper(lr: f64) -> Self {
        AdamConfig { lr, beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 }
    }

    /// `torch.optim.Adam`'s defaults: β1 0.9, β2 0.999, ε 1e-8, no weight decay (PyTorch's
    /// default learning rate is 1e-3).
    pub fn pytorch(lr: f64) -> Self {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }

    #[track_caller]
    fn validate(&self, optimizer: &str) {
        let AdamConfig { lr, beta1, beta2, eps, weight_decay } = *self;
        assert!(lr >= 0.0, "{optimizer}: the learning rate must be >= 0, got {lr}");
        assert!((0.0..1.0).contains(&beta1), "{optimizer}: beta1 must be in [0, 1), got {beta1}");
        assert!((0.0..1.0).contains(&beta2), "{optimizer}: beta2 must be in [0, 1), got {beta2}");
        assert!(eps >= 0.0, "{optimizer}: eps must be >= 0, got {eps}");
        assert!(weight_decay >= 0.0, "{optimizer}: weight_decay must be >= 0, got {weight_decay}");
    }
}

/// Adam with bias-corrected moments, as in the paper and `torch.optim.Adam`.
///
/// For each parameter θ with gradient g, at its own step t = 1, 2, ...:
///
/// ```text
/// g ← g + λ·θ                                  (only when weight_decay λ ≠ 0)
/// m ← β1·m + (1 − β1)·g
/// v ← β2·v + (1 − β2)·g²
/// θ ← θ − α / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
/// ```
///
/// That is θ ← θ − α·m̂ / (√v̂ + ε) with m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ), written in the
/// order PyTorch evaluates it, so ε sits where PyTorch puts it. m and v start at 0. A parameter
/// without a gradient on a step keeps its moments and its t.
///
/// PyTorch equivalent: `torch.optim.Adam(params, lr, betas=(β1, β2), eps=ε, weight_decay=λ)`.
///
/// ```
/// use autograd::{ParamStore, Tape, Tensor};
/// use transformer::optim::{Adam, Optimizer};
///
/// let mut params = ParamStore::<f32>::new();
/// let w = params.root().param("w", Tensor::from_vec(vec![1.0, -1.0], [2]));
/// let mut adam = Adam::paper(0.1);
/// let tape = Tape::new();
/// let grads = tape.param(&w).sum_all().backward(); // g = [1, 1]
/// adam.step(&params, &grads);
/// // The first step moves every weight by α·g/|g| (up to ε), whatever the gradient's size.
/// let w = w.value();
/// assert!((w.data()[0] - 0.9).abs() < 1e-6 && (w.data()[1] + 1.1).abs() < 1e-6);
/// ```
pub struct Adam<T: Element = f32> {
    core: AdamCore<T>,
}

impl<T: Element> Adam<T> {
    /// Adam with the given hyperparameters.
    ///
    /// # Panics
    /// If a hyperparameter is out of range (lr, eps or weight_decay negative, a β outside [0, 1)).
    #[track_caller]
    pub fn new(config: AdamConfig) -> Self {
        Adam { core: AdamCore::new("Adam", config, WeightDecay::L2) }
    }

    /// Adam with the Transformer paper's settings ([`AdamConfig::paper`]).
    pub fn paper(lr: f64) -> Self {
        Self::new(AdamConfig::paper(lr))
    }

    /// Adam with PyTorch's defaults ([`AdamConfig::pytorch`]).
    pub fn pytorch(lr: f64) -> Self {
        Self::new(AdamConfig::pytorch(lr))
    }

    /// The hyperparameters (with the current learning rate).
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }
}

impl<T: Element> Optimizer<T> for Adam<T> {
    fn step_scaled(&mut self, params: &ParamStore<T>, grads: &Gradients<T>, grad_scale: T) {
        self.core.step(params, grads, grad_scale);
    }
    fn lr(&self) -> f64 {
        self.core.config.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.core.config.lr = lr;
    }
    fn state(&self, params: &ParamStore<T>) -> OptimizerState<T> {
        self.core.export(params)
    }
    fn load_state(&mut self, params: &ParamStore<T>, state: &OptimizerState<T>) -> Result<(), String> {
        self.core.import(params, state)
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as `torch.optim.AdamW`.
///
/// For each parameter θ with gradient g, at its own step t = 1, 2, ...:
///
/// ```text
/// θ ← θ·(1 − α·λ)
/// m ← β1·m + (1 − β1)·g
/// v ← β2·v + (1 − β2)·g²
/// θ ← θ − α / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
/// ```
///
/// The decay shrinks the weight itself instead of joining the gradient, so Adam's per-element
/// scaling does not weaken it for parameters with large gradients.
///
/// PyTorch equivalent: `torch.optim.AdamW(params, lr, betas=(β1, β2), eps=ε, weight_decay=λ)`.
///
/// ```
/// use autograd::{ParamStore, Tape, Tensor};
/// use transformer::optim::{AdamW, Optimizer};
///
/// let mut params = ParamStore::<f32>::new();
/// let w = params.root().param("w", Tensor::from_vec(vec![2.0], [1]));
/// let mut adamw = AdamW::pytorch(0.1); // weight_decay 0.01
/// let tape = Tape::new();
/// let x = tape.param(&w);
/// let grads = (x - x).sum_all().backward(); // a zero gradient: only the decay acts
/// adamw.step(&params, &grads);
/// assert!((w.value().data()[0] - 2.0 * (1.0 - 0.1 * 0.01)).abs() < 1e-6);
/// ```
pub struct AdamW<T: Element = f32> {
    core: AdamCore<T>,
}

impl<T: Element> AdamW<T> {
    /// AdamW with the given hyperparameters; `weight_decay` is the decoupled decay λ.
    ///
    /// # Panics
    /// If a hyperparameter is out of range (lr, eps or weight_decay negative, a β outside [0, 1)).
    #[track_caller]
    pub fn new(config: AdamConfig) -> Self {
        AdamW { core: AdamCore::new("AdamW", config, WeightDecay::Decoupled) }
    }

    /// AdamW with `torch.optim.AdamW`'s defaults: β1 0.9, β2 0.999, ε 1e-8, weight decay 0.01.
    pub fn pytorch(lr: f64) -> Self {
        Self::new(AdamConfig { weight_decay: 0.01, ..AdamConfig::pytorch(lr) })
    }

    /// The hyperparameters (with the current learning rate).
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }
}

impl<T: Element> Optimizer<T> for AdamW<T> {
    fn step_scaled(&mut self, params: &ParamStore<T>, grads: &Gradients<T>, grad_scale: T) {
        self.core.step(params, grads, grad_scale);
    }
    fn lr(&self) -> f64 {
        self.core.config.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.core.config.lr = lr;
    }
    fn state(&self, params: &ParamStore<T>) -> OptimizerState<T> {
        self.core.export(params)
    }
    fn load_state(&mut self, params: &ParamStore<T>, state: &OptimizerState<T>) -> Result<(), String> {
        self.core.import(params, state)
    }
}

/// Where weight decay enters: the one difference between Adam and AdamW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightDecay {
    /// λ·θ is added to the gradient (`torch.optim.Adam`).
    L2,
    /// θ is multiplied by 1 − α·λ (`torch.optim.AdamW`).
    Decoupled,
}

/// No weight decay (λ = 0): [`StepConstants::decay_kind`].
const NO_DECAY: u8 = 0;
/// λ·θ added to the gradient.
const L2_DECAY: u8 = 1;
/// θ multiplied by 1 − α·λ.
const DECOUPLED_DECAY: u8 = 2;

/// The running means of one element: m of the gradient, v of its square.
#[derive(Clone, Copy, Debug)]
struct Moments<T> {
    m: T,
    v: T,
}

/// What Adam remembers about one parameter.
struct ParamState<T> {
    /// Steps this parameter has taken (its t), counted separately per parameter as PyTorch does.
    step: u64,
    moments: Vec<Moments<T>>,
}

/// The state and update rule shared by [`Adam`] and [`AdamW`].
struct AdamCore<T> {
    name: &'static str,
    config: AdamConfig,
    decay: WeightDecay,
    state: HashMap<u64, ParamState<T>>,
}

impl<T: Element> AdamCore<T> {
    #[track_caller]
    fn new(name: &'static str, config: AdamConfig, decay: WeightDecay) -> Self {
        config.validate(name);
        AdamCore { name, config, decay, state: HashMap::new() }
    }

    /// One step of every parameter with a gradient, all in one parallel pass: the parameters
    /// are spread over rayon (and a large one's elements too), as PyTorch's fused Adam runs
    /// one kernel over every parameter instead of one after another. Each element's update
    /// depends on nothing else, so the result does not depend on the thread count.
    fn step(&mut self, params: &ParamStore<T>, grads: &Gradients<T>, grad_scale: T) {
        let mut stepped = Vec::new();
        for param in params.iter() {
            let Some(grad) = grad_of(self.name, param, grads) else { continue };
            let state = self.state.entry(param.id()).or_insert_with(|| ParamState {
                step: 0,
                moments: vec![Moments { m: T::ZERO, v: T::ZERO }; grad.numel()],
            });
            state.step += 1;
            stepped.push((param, grad));
        }
        let mut states: HashMap<u64, &mut ParamState<T>> = self.state.iter_mut().map(|(&id, s)| (id, s)).collect();
        let jobs: Vec<_> = stepped
            .into_iter()
            .map(|(param, grad)| (param, grad, states.remove(&param.id()).expect("state made above")))
            .collect();
        let (config, decay) = (&self.config, self.decay);
        jobs.into_par_iter().for_each(|(param, grad, state)| {
            let k = StepConstants::new(config, decay, state.step);
            let (grad, moments) = (grad.data(), &mut state.moments);
            // One loop per kind of decay, so that each loop's body has no branch and the
            // compiler turns it into vector instructions.
            param.update(|values| match k.decay_kind() {
                NO_DECAY => update(values, grad, grad_scale, moments, |x, g, s| k.apply::<NO_DECAY>(x, g, s)),
                L2_DECAY => update(values, grad, grad_scale, moments, |x, g, s| k.apply::<L2_DECAY>(x, g, s)),
                _ => update(values, grad, grad_scale, moments, |x, g, s| k.apply::<DECOUPLED_DECAY>(x, g, s)),
            });
        });
    }

    fn export(&self, params: &ParamStore<T>) -> OptimizerState<T> {
        let mut out = OptimizerState::default();
        for param in params.iter() {
            let Some(state) = self.state.get(&param.id()) else { continue };
            let name = param.name();
            out.steps.insert(name.to_string(), state.step);
            let (m, v): (Vec<T>, Vec<T>) = state.moments.iter().map(|s| (s.m, s.v)).unzip();
            out.buffers.insert(format!("{name}.exp_avg"), Tensor::from_vec(m, param.shape()));
            out.buffers.insert(format!("{name}.exp_avg_sq"), Tensor::from_vec(v, param.shape()));
        }
        out
    }

    fn import(&mut self, params: &ParamStore<T>, saved: &OptimizerState<T>) -> Result<(), String> {
        saved.check_names(params, &["exp_avg", "exp_avg_sq"])?;
        let mut state = HashMap::new();
        for param in params.iter() {
            let Some(&step) = saved.steps.get(param.name()) else {
                if saved.buffers.keys().any(|b| b.strip_prefix(param.name()).is_some_and(|s| s.starts_with('.'))) {
                    return Err(format!("optimizer state of {} has buffers but no step count", param.name()));
                }
                continue;
            };
            let (m, v) = (saved.buffer(param, "exp_avg")?, saved.buffer(param, "exp_avg_sq")?);
            let moments = m.data().iter().zip(v.data()).map(|(&m, &v)| Moments { m, v }).collect();
            state.insert(param.id(), ParamState { step, moments });
        }
        self.state = state;
        Ok(())
    }
}

/// The scalars of one parameter's step, computed in f64 and rounded to the element type where
/// PyTorch rounds them (Python floats become f32 scalars when they meet an f32 tensor).
struct StepConstants<T> {
    decay: WeightDecay,
    /// λ for L2 decay.
    weight_decay: T,
    /// 1 − α·λ for decoupled decay.
    shrink: T,
    /// 1 − β1, the weight of `exp_avg.lerp_(grad, 1 - beta1)`.
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// √(1 − β2ᵗ)
    bias_correction2_sqrt: T,
    eps: T,
    /// −α / (1 − β1ᵗ)
    neg_step_size: T,
}

impl<T: Element> StepConstants<T> {
    fn new(c: &AdamConfig, decay: WeightDecay, step: u64) -> Self {
        let (lr, beta1, beta2) = (c.lr, c.beta1, c.beta2);
        let t = step as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        StepConstants {
            decay,
            weight_decay: T::from_f64(c.weight_decay),
            shrink: T::from_f64(1.0 - lr * c.weight_decay),
            one_minus_beta1: T::from_f64(1.0 - beta1),
            beta2: T::from_f64(beta2),
            one_minus_beta2: T::from_f64(1.0 - beta2),
            bias_correction2_sqrt: T::from_f64(bias_correction2.sqrt()),
            eps: T::from_f64(c.eps),
            neg_step_size: T::from_f64(-lr / bias_correction1),
        }
    }

    /// Which weight decay this step applies: [`NO_DECAY`], [`L2_DECAY`] or [`DECOUPLED_DECAY`].
    fn decay_kind(&self) -> u8 {
        match (self.weight_decay == T::ZERO, self.decay) {
            (true, _) => NO_DECAY,
            (false, WeightDecay::L2) => L2_DECAY,
            (false, WeightDecay::Decoupled) => DECOUPLED_DECAY,
        }
    }

    // ANCHOR: adam_update
    /// One element's update, in the order of PyTorch's `_single_tensor_adam`. `DECAY` is the
    /// step's [`decay_kind`](Self::decay_kind), a constant so that a loop of updates has no branch.
    #[inline(always)]
    fn apply<const DECAY: u8>(&self, x: &mut T, mut g: T, s: &mut Moments<T>) {
        match DECAY {
            L2_DECAY => g += self.weight_decay * *x,
            DECOUPLED_DECAY => *x *= self.shrink,
            _ => {}
        }
        s.m += self.one_minus_beta1 * (g - s.m);
        s.v = s.v * self.beta2 + self.one_minus_beta2 * g * g;
        let denom = s.v.sqrt() / self.bias_correction2_sqrt + self.eps;
        *x += self.neg_step_size * s.m / denom;
    }
    // ANCHOR_END: adam_update
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{Tape, Tensor};

    /// The update of one scalar parameter under loss = g·w, by the formula in the doc comment.
    fn adam_by_hand(w0: f32, gs: &[f32], lr: f64, beta1: f64, beta2: f64, eps: f64) -> f64 {
        let (mut w, mut m, mut v) = (f64::from(w0), 0.0, 0.0);
        for (i, &g) in gs.iter().enumerate() {
            let (g, t) = (f64::from(g), (i + 1) as f64);
            m = beta1 * m + (1.0 - beta1) * g;
            v = beta2 * v + (1.0 - beta2) * g * g;
            w -= lr / (1.0 - beta1.powf(t)) * m / (v.sqrt() / (1.0 - beta2.powf(t)).sqrt() + eps);
        }
        w
    }

    fn run(optimizer: &mut dyn Optimizer, w0: f32, gs: &[f32]) -> f32 {
        let mut params = ParamStore::<f32>::new();
        let w = params.root().param("w", Tensor::from_vec(vec![w0], [1]));
        for &g in gs {
            let tape = Tape::new();
            let grads = tape.param(&w).mul_scalar(f64::from(g)).sum_all().backward();
            optimizer.step(&params, &grads);
        }
        w.value().data()[0]
    }

    #[test]
    fn matches_the_formula() {
        let gs = [0.5, -2.0, 0.01, 3.0];
        let got = run(&mut Adam::paper(0.01), 1.0, &gs);
        let want = adam_by_hand(1.0, &gs, 0.01, 0.9, 0.98, 1e-9);
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn l2_decay_joins_the_gradient() {
        // d/dw (g·w + λ/2·w²) = g + λ·w: Adam with L2 decay is Adam on that gradient.
        let (w0, lambda) = (2.0f32, 0.5);
        let config = AdamConfig { weight_decay: lambda, ..AdamConfig::pytorch(0.1) };
        let got = run(&mut Adam::new(config), w0, &[0.3]);
        let want = adam_by_hand(w0, &[0.3 + lambda as f32 * w0], 0.1, 0.9, 0.999, 1e-8);
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn adamw_shrinks_then_steps() {
        let config = AdamConfig { weight_decay: 0.5, ..AdamConfig::pytorch(0.1) };
        let got = run(&mut AdamW::new(config), 2.0, &[0.3]);
        let want = adam_by_hand(2.0 * (1.0 - 0.1 * 0.5), &[0.3], 0.1, 0.9, 0.999, 1e-8);
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn a_parameter_without_gradient_is_left_alone() {
        let mut params = ParamStore::<f32>::new();
        let a = params.root().param("a", Tensor::from_vec(vec![1.0], [1]));
        let b = params.root().param("b", Tensor::from_vec(vec![1.0], [1]));
        let mut adam = Adam::paper(0.1);
        let tape = Tape::new();
        let grads = tape.param(&a).sum_all().backward();
        adam.step(&params, &grads);
        assert_eq!(b.value().data()[0], 1.0);
        assert!(adam.core.state.contains_key(&a.id()) && !adam.core.state.contains_key(&b.id()));
    }

    /// Steps taken by one optimizer, or split between two with the state handed over, give
    /// the same bits; a state that does not fit the parameters is refused by name.
    #[test]
    fn saved_state_resumes_exactly() {
        let mut params = ParamStore::<f32>::new();
        let w = params.root().param("w", Tensor::from_vec(vec![1.0, -2.0, 0.5], [3]));
        let gs = [[0.5, -2.0, 0.01], [3.0, 0.1, -0.2], [-1.0, 1.0, 2.0], [0.3, 0.3, -0.3]];
        let step = |opt: &mut dyn Optimizer, g: &[f32; 3]| {
            let tape = Tape::new();
            let grads = (tape.param(&w) * tape.constant(Tensor::from_vec(g.to_vec(), [3]))).sum_all().backward();
            opt.step(&params, &grads);
        };
        let config = AdamConfig { weight_decay: 0.1, ..AdamConfig::pytorch(0.01) };
        let start = w.value();
        let mut whole = AdamW::new(config);
        gs.iter().for_each(|g| step(&mut whole, g));
        let want = w.value();
        w.set(start);
        let mut first = AdamW::new(config);
        gs[..2].iter().for_each(|g| step(&mut first, g));
        let saved = first.state(&params);
        assert_eq!(saved.steps.get("w"), Some(&2));
        assert_eq!(saved.buffers.keys().collect::<Vec<_>>(), ["w.exp_avg", "w.exp_avg_sq"]);
        let mut second = AdamW::new(config);
        second.load_state(&params, &saved).unwrap();
        gs[2..].iter().for_each(|g| step(&mut second, g));
        assert_eq!(w.value().data(), want.data());

        let mut wrong = saved.clone();
        wrong.buffers.insert("w.exp_avg".into(), Tensor::zeros([2]));
        assert_eq!(
            second.load_state(&params, &wrong).unwrap_err(),
            "optimizer state w.exp_avg has shape [2], but the parameter has shape [3]"
        );
        let mut stray = saved;
        stray.steps.insert("v".into(), 1);
        assert_eq!(
            second.load_state(&params, &stray).unwrap_err(),
            "optimizer state for v, which is not a parameter of this model"
        );
    }

    #[test]
    #[should_panic(expected = "Adam: beta2 must be in [0, 1), got 1")]
    fn rejects_beta_of_one() {
        Adam::<f32>::new(AdamConfig { beta2: 1.0, ..AdamConfig::paper(1.0) });
    }
}
