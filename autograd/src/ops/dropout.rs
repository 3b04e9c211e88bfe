//! Dropout: zero each element with probability p and scale the rest by 1/(1−p).

use crate::{Element, InputGrads, Math, Op, Tensor, Var, Vjp};
use rand::Rng;

/// x ⊙ m where m is 0 or 1/(1−p), drawn once in the forward pass and kept for the backward.
struct Dropout<T: Element> {
    p: T,
    scaled_mask: Tensor<T>,
}

impl<T: Element> Op<T> for Dropout<T> {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn attributes(&self) -> String {
        format!("p={}", self.p)
    }
    // ∂(x ⊙ m)/∂x = m: the same mask as the forward pass.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.mul_const(self.scaled_mask.clone()))]
    }
}

#[track_caller]
fn scaled_mask<T: Element>(shape: &crate::Shape, p: T, rng: &mut impl Rng) -> Tensor<T> {
    let pf = p.to_f64();
    assert!((0.0..=1.0).contains(&pf), "dropout: probability {pf} is outside [0, 1]");
    let keep = if pf < 1.0 { T::from_f64(1.0 / (1.0 - pf)) } else { T::ZERO };
    Tensor::from_fn(shape.clone(), |_| if rng.random::<f64>() >= pf { keep } else { T::ZERO })
}

impl<T: Element> Tensor<T> {
    /// Zeros each element with probability `p` and scales the others by 1/(1−p), so the
    /// expectation is unchanged, like `F.dropout(x, p, training=True)`. `p = 0` returns `self`.
    ///
    /// # Panics
    /// If `p` is outside `[0, 1]`.
    #[track_caller]
    pub fn dropout(&self, p: T, rng: &mut impl Rng) -> Tensor<T> {
        if p == T::ZERO {
            return self.clone();
        }
        self * &scaled_mask(self.shape(), p, rng)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Zeros each element with probability `p` and scales the others by 1/(1−p); the backward
    /// pass uses the same mask. `p = 0` records nothing and returns `self`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::ones([1000]));
    /// let y = x.dropout(0.5, &mut rng);
    /// assert!(y.value().data().iter().all(|&v| v == 0.0 || v == 2.0));
    /// ```
    ///
    /// # Panics
    /// If `p` is outside `[0, 1]`.
    #[track_caller]
    pub fn dropout(self, p: T, rng: &mut impl Rng) -> Self {
        if p == T::ZERO {
            return self;
        }
        let x = self.value();
        let mask = scaled_mask(x.shape(), p, rng);
        let value = &x * &mask;
        Var::record(self.tape, Dropout { p, scaled_mask: mask }, &[self], value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};
    use rand::SeedableRng;

    #[test]
    fn forward_and_backward_share_the_mask_and_keep_the_mean() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::full([20_000], 2.0));
        let y = x.dropout(0.25, &mut rng);
        let y_value = y.value(); // before backward, which frees it
        let g = y.sum_all().backward();
        // Where the forward kept x (value 2/(1−p)), the gradient is 1/(1−p); elsewhere 0.
        for (v, d) in y_value.data().iter().zip(g[x].data()) {
            assert_eq!(*v == 0.0, *d == 0.0);
            assert!(*d == 0.0 || (*d - 4.0 / 3.0).abs() < 1e-15);
        }
        let mean = y_value.mean_all().item();
        assert!((mean - 2.0).abs() < 0.05, "mean {mean}");
    }

    #[test]
    #[should_panic(expected = "dropout: probability 1.5 is outside [0, 1]")]
    fn bad_probability_is_named() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        Tensor::<f32>::ones([2]).dropout(1.5, &mut rng);
    }
}
