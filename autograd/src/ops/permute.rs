//! permute and transpose: reorder dimensions (the data is copied into the new order).

use crate::kernels::{filled, for_each_row, write_slice};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

struct Permute(Vec<usize>);
impl<T: Element> Op<T> for Permute {
    fn moves_values(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "permute"
    }
    fn attributes(&self) -> String {
        format!("{:?}", self.0)
    }
    // A permutation's adjoint is its inverse.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.permute(&inverse(&self.0)))]
    }
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

#[track_caller]
fn check(shape: &Shape, perm: &[usize]) {
    let mut seen = vec![false; shape.rank()];
    let ok =
        perm.len() == shape.rank() && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
    assert!(ok, "permute: {perm:?} is not a permutation of the {} axes of {shape}", shape.rank());
}

impl<T: Element> Tensor<T> {
    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`, like
    /// `x.permute(perm)` (the result is contiguous).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::<f32>::from_fn([2, 3], |i| i as f32);
    /// let y = x.permute(&[1, 0]);
    /// assert_eq!(y.dims(), &[3, 2]);
    /// assert_eq!(y.to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    /// ```
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor<T> {
        check(self.shape(), perm);
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        let in_strides = self.shape().strides();
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let out_shape = Shape::from(dims.clone());
        let rank = dims.len();
        let inner = dims[rank - 1];
        let step = src[rank - 1];
        let data = self.data();
        let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
            for_each_row(out, inner, |mut row, out| {
                let mut offset = 0;
                for d in (0..rank - 1).rev() {
                    offset += (row % dims[d]) * src[d];
                    row /= dims[d];
                }
                if step == 1 {
                    write_slice(out, &data[offset..offset + inner]);
                } else {
                    for (i, o) in out.iter_mut().enumerate() {
                        o.write(data[offset + i * step]);
                    }
                }
            })
        };
        // SAFETY: the rows tile the output and every element of every row is written.
        let out = unsafe { filled(out_shape.numel(), fill) };
        Tensor::from_vec(out, out_shape)
    }

    /// Swaps two dimensions, like `x.transpose(a, b)`.
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Tensor<T> {
        self.permute(&swap_perm(self.shape(), a, b))
    }

    /// Swaps the last two dimensions: the transpose of a matrix, or of each matrix in a batch
    /// (`x.mT` in PyTorch). The result is a new contiguous tensor; to multiply by a transpose
    /// without making one, use [`Tensor::matmul_t`].
    ///
    /// # Panics
    /// If the tensor has fewer than two dimensions.
    #[track_caller]
    pub fn t(&self) -> Tensor<T> {
        self.permute(&last_two_swapped(self.shape()))
    }
}

#[track_caller]
fn last_two_swapped(shape: &Shape) -> Vec<usize> {
    let r = shape.rank();
    assert!(r >= 2, "t: needs at least 2 dimensions to swap the last two, got shape {shape}");
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    perm
}

#[track_caller]
fn swap_perm(shape: &Shape, a: isize, b: isize) -> Vec<usize> {
    let a = super::resolve_axis("transpose", shape, a);
    let b = super::resolve_axis("transpose", shape, b);
    let mut perm: Vec<usize> = (0..shape.rank()).collect();
    perm.swap(a, b);
    perm
}

impl<'t, T: Element> Var<'t, T> {
    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`.
    #[track_caller]
    pub fn permute(self, perm: &[usize]) -> Self {
        self.unary(Permute(perm.to_vec()), |x| x.permute(perm))
    }

    /// Swaps two dimensions (a permute).
    #[track_caller]
    pub fn transpose(self, a: isize, b: isize) -> Self {
        self.permute(&swap_perm(&self.shape(), a, b))
    }

    /// Swaps the last two dimensions (`x.mT` in PyTorch), as a permute. `a.matmul(b.t())`
    /// copies `b` into its transpose; [`Var::matmul_t`] and [`Var::linear`] fold the transpose
    /// into the product instead.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let w = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// assert_eq!(w.t().dims(), vec![3, 2]);
    /// assert_eq!(w.t().value().to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn t(self) -> Self {
        self.permute(&last_two_swapped(&self.shape()))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn permute_three_axes() {
        let x = Tensor::<f64>::from_fn([2, 3, 4], |i| i as f64);
        let y = x.permute(&[2, 0, 1]);
        assert_eq!(y.dims(), &[4, 2, 3]);
        for (a, b, c) in [(0, 0, 0), (3, 1, 2), (1, 0, 2)] {
            assert_eq!(y.at(&[a, b, c]), x.at(&[b, c, a]));
        }
        assert!(y.permute(&[1, 2, 0]).bit_eq(&x));
    }

    #[test]
    #[should_panic(expected = "permute: [0, 0] is not a permutation of the 2 axes of [2, 3]")]
    fn repeated_axis_is_refused() {
        Tensor::<f32>::zeros([2, 3]).permute(&[0, 0]);
    }
}
