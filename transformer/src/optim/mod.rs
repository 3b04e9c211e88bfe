//! Optimizers, learning-rate schedules and gradient clipping: what turns [`Gradients`] into
//! updated [`autograd::Param`]s.
//!
//! One training step reads:
//!
//! ```
//! use autograd::{ParamStore, Tape, Tensor};
//! use transformer::optim::{clip_grad_norm, Adam, Noam, Optimizer, Schedule};
//!
//! let mut params = ParamStore::<f32>::new();
//! let w = params.root().param("w", Tensor::from_vec(vec![3.0, -4.0], [2]));
//! let mut optimizer = Adam::paper(0.0); // β 0.9/0.98, ε 1e-9; the schedule sets the rate
//! let schedule = Noam::new(1.0, 2, 10);
//! for step in 1..=20 {
//!     let tape = Tape::new();
//!     let x = tape.param(&w);
//!     let mut grads = (x * x).sum_all().backward(); // loss = Σ w²
//!     clip_grad_norm(&mut grads, &params, 1.0);
//!     optimizer.set_lr(schedule.lr(step));
//!     optimizer.step(&params, &grads);
//! }
//! let w = w.value();
//! assert!(w.data()[0] < 3.0 && w.data()[1] > -4.0);
//! ```
//!
//! - [`Optimizer`] is the one interface: [`Adam`] (the paper's optimizer), [`AdamW`] and [`Sgd`]
//!   implement it for any [`ParamStore`], keeping their state per parameter id.
//! - [`Schedule`] maps a step number (from 1) to a learning rate: [`Noam`] (the paper's warm-up),
//!   [`WarmupLinear`], [`Constant`].
//! - [`clip_grad_norm`] scales the gradients in place to a global norm, as PyTorch's
//!   `clip_grad_norm_`. [`grad_clip`] only measures, returning a [`GradClip`] whose `scale` the
//!   optimizer folds into each gradient as it reads it ([`Optimizer::step_scaled`]): the same
//!   result, one pass over the gradients sooner, which is what the training loops do.
//! - Optimizers and clipping work for `f32` and `f64` parameters; learning rates and other
//!   hyperparameters are `f64`.
//!
//! Every update follows the arithmetic of the `torch.optim` class it names, step by step, and
//! is tested against parameters that PyTorch produced from the same gradients.

mod adam;
mod clip;
mod elementwise;
#[cfg(test)]
mod parity;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW};
pub use clip::{GradClip, clip_grad_norm, grad_clip, grad_norm};
pub use schedule::{Constant, Noam, Schedule, WarmupLinear};
pub use sgd::{Sgd, SgdConfig};

use autograd::{Element, Gradients, ParamStore, Tensor};
use std::collections::BTreeMap;

/// Updates parameters from their gradients: the interface every optimizer implements.
///
/// A step visits every parameter of the store; one without a gradient in `grads` (it was not
/// put on the tape this step) is skipped and its state left untouched, as `torch.optim` skips
/// a parameter whose `.grad` is `None`. State (moments, momentum) is kept per parameter id, so
/// one optimizer can serve any [`ParamStore`], and reloading a store's values in place
/// (`ParamStore::load`) keeps the state.
///
/// Optimizers work for both element types: `Optimizer<f32>` (the default) for training,
/// `Optimizer<f64>` for checks against PyTorch in double precision. Learning rates and other
/// hyperparameters are `f64`, as Python floats are.
///
/// The trait is object safe: a training loop can hold a `Box<dyn Optimizer>`.
///
/// PyTorch equivalent: `torch.optim.Optimizer` (`step()`, and `param_groups[0]["lr"]` for the
/// learning rate).
pub trait Optimizer<T: Element = f32> {
    /// One update in which every gradient is first multiplied by `grad_scale`: exactly what
    /// PyTorch computes after `clip_grad_norm_` scaled the `.grad` tensors in place. Pass the
    /// [`GradClip::scale`] from [`grad_clip`], or 1 for no clipping.
    fn step_scaled(&mut self, params: &ParamStore<T>, grads: &Gradients<T>, grad_scale: T);

    /// One update from the gradients as they are (`optimizer.step()` in PyTorch).
    fn step(&mut self, params: &ParamStore<T>, grads: &Gradients<T>) {
        self.step_scaled(params, grads, T::ONE);
    }

    /// The learning rate the next step will use.
    fn lr(&self) -> f64;

    /// Sets the learning rate for the following steps (what a [`Schedule`] drives).
    fn set_lr(&mut self, lr: f64);

    /// What the optimizer has accumulated so far, by parameter name: what a checkpoint saves.
    fn state(&self, params: &ParamStore<T>) -> OptimizerState<T>;

    /// Replaces the accumulated state with `state` (as [`Optimizer::state`] gave it), so the
    /// following steps are exactly those the saving optimizer would have taken. Every name must
    /// be a parameter of `params` and every buffer the shape of its parameter; otherwise
    /// nothing changes and the error names the tensor.
    fn load_state(&mut self, params: &ParamStore<T>, state: &OptimizerState<T>) -> Result<(), String>;
}

/// What an optimizer carries from one step to the next, by parameter name: enough for a
/// resumed run to take exactly the steps an uninterrupted one would.
///
/// The names follow the per-parameter entries of `torch.optim`'s `state_dict()`: a buffer is
/// `{parameter}.{buffer}` with PyTorch's buffer names (Adam's `exp_avg` and `exp_avg_sq`,
/// SGD's `momentum_buffer`), and `steps` holds Adam's per-parameter `step`.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState<T: Element = f32> {
    /// Updates each parameter has taken (empty for an optimizer that does not count them).
    pub steps: BTreeMap<String, u64>,
    /// The buffers, named `{parameter}.{buffer}`.
    pub buffers: BTreeMap<String, Tensor<T>>,
}

impl<T: Element> OptimizerState<T> {
    /// The buffer `{param}.{buffer}`, which must exist with `param`'s shape.
    pub(crate) fn buffer(&self, param: &autograd::Param<T>, buffer: &str) -> Result<&Tensor<T>, String> {
        let name = format!("{}.{buffer}", param.name());
        let tensor = self.buffers.get(&name).ok_or_else(|| format!("optimizer state {name} is missing"))?;
        if tensor.shape() != &param.shape() {
            return Err(format!(
                "optimizer state {name} has shape {}, but the parameter has shape {}",
                tensor.shape(),
                param.shape()
            ));
        }
        Ok(tensor)
    }

    /// An error naming the first step count or buffer whose parameter is not in `params`.
    pub(crate) fn check_names(&self, params: &ParamStore<T>, buffer_names: &[&str]) -> Result<(), String> {
        for name in self.steps.keys() {
            if params.get(name).is_none() {
                return Err(format!("optimizer state for {name}, which is not a parameter of this model"));
            }
        }
        for name in self.buffers.keys() {
            let known = buffer_names.iter().any(|b| {
                name.strip_suffix(b).and_then(|n| n.strip_suffix('.')).is_some_and(|p| params.get(p).is_some())
            });
            if !known {
                return Err(format!("optimizer state {name} is not a buffer of a parameter of this model"));
            }
        }
        Ok(())
    }
}
