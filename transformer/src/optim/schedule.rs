//! Learning-rate schedules: the step number in, the learning rate for that step out.

/// A learning rate for each step.
///
/// Steps count from 1: `lr(1)` is the rate of the first update. A training loop calls
/// `optimizer.set_lr(schedule.lr(step))` just before `optimizer.step(...)`. `lr(0)` (before any
/// update) is 0 for the warm-up schedules.
///
/// PyTorch equivalent: setting `param_groups[i]["lr"]` before each `optimizer.step()`, or a
/// `torch.optim.lr_scheduler.LambdaLR` whose lambda is this function shifted by one step
/// (LambdaLR asks for step 0 before the first update).
pub trait Schedule {
    /// The learning rate of update number `step` (from 1).
    fn lr(&self, step: usize) -> f64;
}

/// The warm-up schedule of "Attention Is All You Need" (§5.3, eq. 3), named after the
/// Annotated Transformer's `NoamOpt`:
///
/// ```text
/// lr(step) = factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)
/// ```
///
/// The rate grows linearly for `warmup` steps, peaks at step = warmup with
/// factor · (d_model · warmup)^-0.5, then decays as 1/√step. The paper uses factor 1 and
/// warmup 4000 (d_model 512 peaks at 7.0e-4). With `warmup` 0 there is no warm-up.
///
/// PyTorch equivalent: `LambdaLR(opt, lambda s: rate(s + 1))` with the optimizer's lr set to 1,
/// or `group["lr"] = rate(step)` before each step.
///
/// ```
/// use transformer::optim::{Noam, Schedule};
/// let noam = Noam::new(1.0, 512, 4000);
/// assert!((noam.lr(4000) - 512f64.powf(-0.5) * 4000f64.powf(-0.5)).abs() < 1e-15);
/// assert!(noam.lr(100) < noam.lr(4000) && noam.lr(40_000) < noam.lr(4000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noam {
    /// Scales the whole curve (1 in the paper; the Annotated Transformer trains with 1 or 2).
    pub factor: f64,
    /// The model width d_model: wider models take smaller steps.
    pub d_model: usize,
    /// Steps of linear warm-up (4000 in the paper).
    pub warmup: usize,
}

impl Noam {
    /// The schedule `factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)`.
    pub fn new(factor: f64, d_model: usize, warmup: usize) -> Self {
        Noam { factor, d_model, warmup }
    }
}

// ANCHOR: noam
impl Schedule for Noam {
    fn lr(&self, step: usize) -> f64 {
        if step == 0 {
            return 0.0;
        }
        let (step, d_model, warmup) = (step as f64, self.d_model as f64, self.warmup as f64);
        // warmup 0: warmup^-1.5 is +inf, so the min always takes step^-0.5.
        let shape = step.powf(-0.5).min(step * warmup.powf(-1.5));
        self.factor * d_model.powf(-0.5) * shape
    }
}
// ANCHOR_END: noam

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at step `total`:
///
/// ```text
/// lr(step) = 0                                           for step = 0 or step ≥ total
///          = peak · step / warmup                        for 0 < step ≤ warmup
///          = peak · (total − step) / (total − warmup)    for warmup < step < total
/// ```
///
/// The first line wins: a run whose warm-up is its whole length never reaches the peak.
///
/// PyTorch equivalent: `LambdaLR` with this shape (Hugging Face's
/// `get_linear_schedule_with_warmup`, whose steps count from 0).
///
/// ```
/// use transformer::optim::{Schedule, WarmupLinear};
/// let s = WarmupLinear::new(2e-3, 200, 5000);
/// assert_eq!(s.lr(100), 1e-3);
/// assert_eq!(s.lr(200), 2e-3);
/// assert_eq!(s.lr(2600), 1e-3);
/// assert_eq!(s.lr(5000), 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupLinear {
    /// The highest learning rate, reached at step `warmup`.
    pub peak: f64,
    /// Steps of linear warm-up (0 starts at the peak).
    pub warmup: usize,
    /// The step at which the rate reaches 0: the length of the run.
    pub total: usize,
}

impl WarmupLinear {
    /// Warm up to `peak` over `warmup` steps, then decay to 0 at step `total`.
    ///
    /// # Panics
    /// If `warmup` exceeds `total`.
    #[track_caller]
    pub fn new(peak: f64, warmup: usize, total: usize) -> Self {
        assert!(warmup <= total, "WarmupLinear: {warmup} warm-up steps exceed the {total} steps of the run");
        WarmupLinear { peak, warmup, total }
    }
}

// ANCHOR: warmup_linear
impl Schedule for WarmupLinear {
    fn lr(&self, step: usize) -> f64 {
        let peak = self.peak;
        let fraction = if step == 0 || step >= self.total {
            0.0
        } else if step <= self.warmup {
            step as f64 / self.warmup as f64
        } else {
            (self.total - step) as f64 / (self.total - self.warmup) as f64
        };
        peak * fraction
    }
}
// ANCHOR_END: warmup_linear

/// The same learning rate at every step.
///
/// PyTorch equivalent: no scheduler.
///
/// ```
/// use transformer::optim::{Constant, Schedule};
/// assert_eq!(Constant(3e-4).lr(1), Constant(3e-4).lr(10_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant(pub f64);

impl Schedule for Constant {
    fn lr(&self, _step: usize) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noam_known_values() {
        // factor 2, d_model 16, warmup 4: 2 · 1/4 · min(step^-0.5, step/8)
        let noam = Noam::new(2.0, 16, 4);
        let want = [(0, 0.0), (1, 0.0625), (2, 0.125), (4, 0.25), (16, 0.125), (64, 0.0625)];
        for (step, lr) in want {
            assert!((noam.lr(step) - lr).abs() < 1e-7, "lr({step}) = {}, expected {lr}", noam.lr(step));
        }
    }

    #[test]
    fn noam_paper_peak() {
        // d_model 512, warmup 4000: the peak 512^-0.5 · 4000^-0.5 ≈ 6.988e-4
        let noam = Noam::new(1.0, 512, 4000);
        assert!((noam.lr(4000) - 6.987_712e-4).abs() < 1e-9);
        assert!(noam.lr(3999) < noam.lr(4000) && noam.lr(4001) < noam.lr(4000));
    }

    #[test]
    fn noam_without_warmup_decays_from_the_start() {
        let noam = Noam::new(1.0, 4, 0);
        assert_eq!(noam.lr(1), 0.5);
        assert_eq!(noam.lr(4), 0.25);
    }

    #[test]
    fn warmup_linear_known_values() {
        let s = WarmupLinear::new(1.0, 4, 12);
        let want = [(0, 0.0), (1, 0.25), (2, 0.5), (4, 1.0), (6, 0.75), (10, 0.25), (12, 0.0), (20, 0.0)];
        for (step, lr) in want {
            assert_eq!(s.lr(step), lr, "lr({step})");
        }
    }

    #[test]
    fn warmup_linear_edge_cases() {
        let no_warmup = WarmupLinear::new(1.0, 0, 4);
        assert_eq!([1, 2, 3, 4].map(|s| no_warmup.lr(s)), [0.75, 0.5, 0.25, 0.0]);
        let all_warmup = WarmupLinear::new(1.0, 2, 2);
        assert_eq!([1, 2, 3].map(|s| all_warmup.lr(s)), [0.5, 0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "WarmupLinear: 10 warm-up steps exceed the 5 steps of the run")]
    fn warmup_longer_than_the_run_is_refused() {
        WarmupLinear::new(1.0, 10, 5);
    }
}
