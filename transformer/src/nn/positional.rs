//! The paper's sinusoidal position table.

use autograd::{Element, Tensor};

/// `[max_len, d]` with P[pos, 2i] = sin(pos / 10000^(2i/d)) and P[pos, 2i+1] = cos(pos / 10000^(2i/d)),
/// computed in f64.
///
/// ```
/// let p = transformer::nn::sinusoidal_table::<f64>(4, 6);
/// assert_eq!(p.at(&[0, 0]), 0.0);
/// assert_eq!(p.at(&[0, 1]), 1.0);
/// assert_eq!(p.at(&[2, 0]), 2f64.sin());
/// ```
pub fn sinusoidal_table<T: Element>(max_len: usize, d: usize) -> Tensor<T> {
    Tensor::from_fn([max_len, d], |i| {
        let (pos, j) = ((i / d) as f64, i % d);
        let angle = pos / 10000f64.powf((j - j % 2) as f64 / d as f64);
        T::from_f64(if j % 2 == 0 { angle.sin() } else { angle.cos() })
    })
}
