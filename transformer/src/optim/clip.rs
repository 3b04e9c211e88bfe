//! Global-norm gradient clipping: all gradients measured as one vector, and scaled down together
//! when its norm exceeds a limit.

use super::elementwise::CHUNK;
use autograd::{Element, Gradients, ParamStore};
use rayon::prelude::*;

/// What [`clip_grad_norm`] and [`grad_clip`] found: the norm, and the factor that clips it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradClip<T = f32> {
    /// The L2 norm of all gradients together, before clipping (what
    /// `torch.nn.utils.clip_grad_norm_` returns). Worth logging: spikes show instability.
    pub total_norm: T,
    /// The factor every gradient is to be multiplied by: `min(1, max_norm / (total_norm + 1e-6))`.
    /// [`clip_grad_norm`] has applied it; after [`grad_clip`], pass it to
    /// [`super::Optimizer::step_scaled`].
    pub scale: T,
}

impl<T: Element> GradClip<T> {
    /// True if the gradients are scaled down (the norm exceeded the limit).
    pub fn is_clipped(&self) -> bool {
        self.scale < T::ONE
    }
}

/// The L2 norm of the gradients of every parameter in `params` that has one, taken as a single
/// vector: √(Σ_p Σ_i g_pi²). Summed in f64, in chunks whose boundaries do not depend on the
/// number of threads, so the result is the same on any machine.
///
/// ```
/// use autograd::{ParamStore, Tape, Tensor};
/// use transformer::optim::grad_norm;
///
/// let mut params = ParamStore::<f32>::new();
/// let a = params.root().param("a", Tensor::zeros([1]));
/// let b = params.root().param("b", Tensor::zeros([1]));
/// let tape = Tape::new();
/// let loss = tape.param(&a).mul_scalar(3.0) + tape.param(&b).mul_scalar(4.0);
/// assert_eq!(grad_norm(&loss.sum_all().backward(), &params), 5.0);
/// ```
pub fn grad_norm<T: Element>(grads: &Gradients<T>, params: &ParamStore<T>) -> T {
    let grads: Vec<_> = params.iter().filter_map(|p| grads.param(p)).collect();
    // Per parameter in parallel, added in the store's order whatever order they finish in.
    let per_param: Vec<f64> = grads.par_iter().map(|g| sum_of_squares(g.data())).collect();
    let sum_of_squares: f64 = per_param.iter().sum();
    T::from_f64(sum_of_squares.sqrt())
}

fn sum_of_squares<T: Element>(data: &[T]) -> f64 {
    let chunk = |c: &[T]| c.iter().map(|&x| x.to_f64() * x.to_f64()).sum::<f64>();
    if data.len() <= CHUNK {
        chunk(data)
    } else {
        // Partial sums are added in chunk order, never in the order threads finish.
        data.par_chunks(CHUNK).map(chunk).collect::<Vec<f64>>().iter().sum()
    }
}

/// Global-norm clipping, in place: if the gradients of `params`, taken as one vector, have an
/// L2 norm above `max_norm`, every one of them is scaled down so the norm becomes `max_norm`:
///
/// ```text
/// total_norm = √(Σ_p ‖g_p‖²)
/// scale      = min(1, max_norm / (total_norm + 1e-6))
/// g_p        ← scale · g_p
/// ```
///
/// Parameters without a gradient take no part. It returns the norm before clipping and the
/// scale applied. A non-finite `total_norm` (an overflow or a NaN somewhere) gives a scale of 1
/// for NaN and 0 for infinity; check `clip.total_norm.is_finite()` to skip such a step
/// (PyTorch's `error_if_nonfinite`).
///
/// PyTorch equivalent: `total_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)`.
///
/// ```
/// use autograd::{ParamStore, Tape, Tensor};
/// use transformer::optim::{clip_grad_norm, Optimizer, Sgd};
///
/// let mut params = ParamStore::<f32>::new();
/// let w = params.root().param("w", Tensor::zeros([2]));
/// let tape = Tape::new();
/// let g = tape.constant(Tensor::from_vec(vec![30.0, 40.0], [2]));
/// let mut grads = (tape.param(&w) * g).sum_all().backward(); // gradient [30, 40], norm 50
/// let clip = clip_grad_norm(&mut grads, &params, 5.0);
/// assert_eq!(clip.total_norm, 50.0);
/// assert!((grads.param(&w).unwrap().data()[0] - 3.0).abs() < 1e-5);
/// Sgd::plain(1.0).step(&params, &grads);
/// let w = w.value();
/// assert!((w.data()[0] + 3.0).abs() < 1e-5 && (w.data()[1] + 4.0).abs() < 1e-5);
/// ```
pub fn clip_grad_norm<T: Element>(grads: &mut Gradients<T>, params: &ParamStore<T>, max_norm: f64) -> GradClip<T> {
    let clip = grad_clip(grads, params, max_norm);
    if clip.is_clipped() {
        for p in params.iter() {
            if let Some(g) = grads.param_mut(p) {
                g.data_mut().iter_mut().for_each(|x| *x *= clip.scale);
            }
        }
    }
    clip
}

/// What [`clip_grad_norm`] would do, without touching the gradients: the norm and the scale,
/// for an optimizer to fold into its reading of each gradient
/// (`optimizer.step_scaled(params, grads, clip.scale)`). That computes exactly what the step
/// after an in-place clip computes, one pass over the gradients sooner.
pub fn grad_clip<T: Element>(grads: &Gradients<T>, params: &ParamStore<T>, max_norm: f64) -> GradClip<T> {
    let total_norm = grad_norm(grads, params);
    // In the element type throughout, as PyTorch computes the coefficient from the norm tensor.
    let coefficient = T::from_f64(max_norm) / (total_norm + T::from_f64(1e-6));
    GradClip { total_norm, scale: if coefficient < T::ONE { coefficient } else { T::ONE } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{Tape, Tensor};

    fn store_with_grads(values: &[Vec<f32>]) -> (ParamStore<f32>, Gradients<f32>) {
        let mut params = ParamStore::<f32>::new();
        let ps: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| params.root().param(&format!("p{i}"), Tensor::zeros([v.len()])))
            .collect();
        let tape = Tape::new();
        let loss = ps
            .iter()
            .zip(values)
            .map(|(p, v)| (tape.param(p) * tape.constant(Tensor::from_vec(v.clone(), [v.len()]))).sum_all())
            .reduce(|a, b| a + b)
            .unwrap();
        (params, loss.backward())
    }

    #[test]
    fn norm_spans_every_parameter() {
        // √(1 + 4 + 4 + 16) = 5
        let (params, grads) = store_with_grads(&[vec![1.0, 2.0], vec![2.0, -4.0]]);
        assert_eq!(grad_norm(&grads, &params), 5.0);
    }

    #[test]
    fn below_the_limit_nothing_changes() {
        let (params, grads) = store_with_grads(&[vec![3.0], vec![4.0]]);
        let clip = grad_clip(&grads, &params, 10.0);
        assert_eq!(clip, GradClip { total_norm: 5.0, scale: 1.0 });
        assert!(!clip.is_clipped());
    }

    #[test]
    fn above_the_limit_the_norm_becomes_the_limit() {
        let (params, grads) = store_with_grads(&[vec![3.0], vec![4.0]]);
        let clip = grad_clip(&grads, &params, 1.0);
        assert_eq!(clip.scale, 1.0 / (5.0 + 1e-6));
        assert!((clip.scale * clip.total_norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn parameters_without_gradient_take_no_part() {
        let mut params = ParamStore::<f32>::new();
        let a = params.root().param("a", Tensor::full([2], 1.0));
        params.root().param("unused", Tensor::full([2], 1.0));
        let tape = Tape::new();
        let grads = tape.param(&a).mul_scalar(2.0).sum_all().backward();
        assert_eq!(grad_norm(&grads, &params), 8f32.sqrt());
    }

    #[test]
    fn long_gradients_sum_in_fixed_chunks() {
        let data: Vec<f32> = (0..3 * CHUNK + 7).map(|i| (i % 10) as f32 * 0.1).collect();
        let sequential: f64 =
            data.chunks(CHUNK).map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()).sum();
        assert_eq!(sum_of_squares(&data), sequential);
    }
}
