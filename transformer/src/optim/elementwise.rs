//! The loop every optimizer shares: find a parameter's gradient, then update its elements with
//! their state, in fixed-size chunks spread over rayon.

use autograd::{Element, Gradients, Param, Tensor};
use rayon::prelude::*;

/// Elements per chunk. Each element's update is independent of every other, so the chunking
/// (and the number of threads) never changes a result; it only has to amortize rayon's cost.
pub(super) const CHUNK: usize = 1 << 14;

/// The gradient of `param`, or `None` if it has none this step (it was not on the tape).
///
/// # Panics
/// If the gradient's shape differs from the parameter's, naming the optimizer and the parameter.
#[track_caller]
pub(super) fn grad_of<'g, T: Element>(
    optimizer: &str,
    param: &Param<T>,
    grads: &'g Gradients<T>,
) -> Option<&'g Tensor<T>> {
    let grad = grads.param(param)?;
    assert!(
        grad.shape() == &param.shape(),
        "{optimizer}: the gradient of {} has shape {}, the parameter has shape {}",
        param.name(),
        grad.shape(),
        param.shape()
    );
    Some(grad)
}

/// Calls `f(value, grad_scale · grad, state)` for every element of a parameter.
///
/// `state` holds one entry per element (a zero-sized type when the optimizer keeps none).
pub(super) fn update<T: Element, S: Send>(
    values: &mut [T],
    grad: &[T],
    grad_scale: T,
    state: &mut [S],
    f: impl Fn(&mut T, T, &mut S) + Sync,
) {
    assert!(
        values.len() == grad.len() && values.len() == state.len(),
        "optimizer update: {} values, {} gradients and {} state entries",
        values.len(),
        grad.len(),
        state.len()
    );
    let run = |values: &mut [T], grad: &[T], state: &mut [S]| {
        for ((x, &g), s) in values.iter_mut().zip(grad).zip(state) {
            f(x, g * grad_scale, s);
        }
    };
    if values.len() <= CHUNK {
        run(values, grad, state);
    } else {
        values
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(state.par_chunks_mut(CHUNK))
            .for_each(|((values, grad), state)| run(values, grad, state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_update_equals_a_plain_loop() {
        let n = 3 * CHUNK + 5;
        let grad: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let mut values: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.1).collect();
        let mut state = vec![0.5f32; n];
        let rule = |x: &mut f32, g: f32, s: &mut f32| {
            *s = 0.9 * *s + g;
            *x -= 0.01 * *s;
        };
        let (mut expected_values, mut expected_state) = (values.clone(), state.clone());
        for ((x, &g), s) in expected_values.iter_mut().zip(&grad).zip(&mut expected_state) {
            rule(x, g * 0.5, s);
        }
        update(&mut values, &grad, 0.5, &mut state, rule);
        assert_eq!(values, expected_values);
        assert_eq!(state, expected_state);
    }
}
