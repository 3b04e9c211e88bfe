//! concat (join along an axis) and split (cut along an axis, composed of narrows).

use super::{resolve_axis, split_at_axis};
use crate::kernels::{filled, for_each_row, write_slice};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

struct Concat {
    axis: isize,
}
impl<T: Element> Op<T> for Concat {
    fn moves_values(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "concat"
    }
    fn attributes(&self) -> String {
        format!("axis={}", self.axis)
    }
    // Each input gets back the slice of the gradient where it was placed.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let mut start = 0;
        v.inputs
            .iter()
            .zip(v.needs)
            .map(|(x, &need)| {
                let shape = x.shape();
                let len = shape[resolve_axis("concat", &shape, self.axis)];
                let g = need.then(|| v.grad.narrow(self.axis, start, len));
                start += len;
                g
            })
            .collect()
    }
}

impl<T: Element> Tensor<T> {
    /// Joins tensors along `axis`, like `torch.cat(tensors, dim=axis)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let a = Tensor::<f32>::zeros([2, 1]);
    /// let b = Tensor::<f32>::ones([2, 2]);
    /// assert_eq!(Tensor::concat(&[a, b], 1).to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// ```
    ///
    /// # Panics
    /// If `tensors` is empty or the shapes differ anywhere but along `axis`.
    #[track_caller]
    pub fn concat(tensors: &[Tensor<T>], axis: isize) -> Tensor<T> {
        assert!(!tensors.is_empty(), "concat: needs at least one tensor");
        let first = tensors[0].shape();
        let a = resolve_axis("concat", first, axis);
        for t in tensors {
            let same_rank = t.rank() == first.rank();
            let fits = same_rank && t.dims().iter().zip(first.dims()).enumerate().all(|(i, (x, y))| i == a || x == y);
            assert!(
                fits,
                "concat: shapes {} differ outside axis {axis}; all dimensions but that one must match",
                tensors.iter().map(|t| t.shape().to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        let total: usize = tensors.iter().map(|t| t.dims()[a]).sum();
        let out_shape = first.with_dim(a, total);
        let (_, _, inner) = split_at_axis(first, a);
        let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
            for_each_row(out, total * inner, |o, row| {
                let mut at = 0;
                for t in tensors {
                    let block = t.dims()[a] * inner;
                    write_slice(&mut row[at..at + block], &t.data()[o * block..(o + 1) * block]);
                    at += block;
                }
            })
        };
        // SAFETY: the blocks of the inputs add up to each output row, and every one is written.
        let out = unsafe { filled(out_shape.numel(), fill) };
        Tensor::from_vec(out, out_shape)
    }

    /// Joins tensors of one shape along a new dimension `axis`, like `torch.stack`.
    ///
    /// # Panics
    /// If `tensors` is empty, the shapes differ, or `axis` is out of range.
    #[track_caller]
    pub fn stack(tensors: &[Tensor<T>], axis: isize) -> Tensor<T> {
        let shape = stacked_shape(tensors.iter().map(|t| t.shape().clone()), axis);
        let parts: Vec<Tensor<T>> = tensors.iter().map(|t| t.reshape(shape.clone())).collect();
        Tensor::concat(&parts, axis)
    }

    /// Cuts `axis` into pieces of the given sizes, like `torch.split(x, sizes, dim=axis)`.
    ///
    /// # Panics
    /// If the sizes do not add up to the axis length.
    #[track_caller]
    pub fn split(&self, axis: isize, sizes: &[usize]) -> Vec<Tensor<T>> {
        split_ranges("split", self.shape(), axis, sizes).into_iter().map(|(s, l)| self.narrow(axis, s, l)).collect()
    }
}

#[track_caller]
fn split_ranges(op: &str, shape: &crate::Shape, axis: isize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let n = shape[resolve_axis(op, shape, axis)];
    let total: usize = sizes.iter().sum();
    assert!(total == n, "{op}: sizes {sizes:?} add up to {total}, but axis {axis} of {shape} has {n} entries");
    let mut start = 0;
    sizes
        .iter()
        .map(|&len| {
            start += len;
            (start - len, len)
        })
        .collect()
}

/// The shape each of `shapes` takes to be stacked along `axis`: a 1 inserted at `axis`.
#[track_caller]
fn stacked_shape(shapes: impl Iterator<Item = Shape>, axis: isize) -> Shape {
    let shapes: Vec<Shape> = shapes.collect();
    assert!(!shapes.is_empty(), "stack: needs at least one value");
    for (i, s) in shapes.iter().enumerate().skip(1) {
        assert!(
            *s == shapes[0],
            "stack: every value must have one shape, but value 0 is {} and value {i} is {s}",
            shapes[0]
        );
    }
    let mut dims = shapes[0].dims().to_vec();
    let r = dims.len() as isize + 1;
    let at = if axis < 0 { axis + r } else { axis };
    assert!(
        (0..r).contains(&at),
        "stack: axis {axis} is out of range for stacking values of shape {}, which allows {} to {}",
        shapes[0],
        -r,
        r - 1
    );
    dims.insert(at as usize, 1);
    Shape::from(dims)
}

impl<'t, T: Element> Var<'t, T> {
    /// Joins values along `axis`, like `torch.cat`.
    ///
    /// # Panics
    /// If `vars` is empty or the shapes differ anywhere but along `axis`.
    #[track_caller]
    pub fn concat(vars: &[Var<'t, T>], axis: isize) -> Var<'t, T> {
        assert!(!vars.is_empty(), "concat: needs at least one value");
        let values: Vec<Tensor<T>> = vars.iter().map(|v| v.value()).collect();
        let value = Tensor::concat(&values, axis);
        Var::record(vars[0].tape, Concat { axis }, vars, value)
    }

    /// Joins values of one shape along a new dimension `axis`, like `torch.stack`: a size-1
    /// dimension is inserted in each (a reshape), then they are concatenated, so the gradient
    /// needs no rule of its own.
    ///
    /// ```
    /// use autograd::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let b = tape.var(Tensor::from_vec(vec![3.0, 4.0], [2]));
    /// let s = Var::stack(&[a, b], 1); // (2, 2): [[1, 3], [2, 4]]
    /// assert_eq!(s.value().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    ///
    /// # Panics
    /// If `vars` is empty, the shapes differ, or `axis` is out of range for the stacked shape.
    #[track_caller]
    pub fn stack(vars: &[Var<'t, T>], axis: isize) -> Var<'t, T> {
        let shape = stacked_shape(vars.iter().map(|v| v.shape()), axis);
        // A loop, not a closure: each reshape is recorded at the caller's line.
        let mut parts = Vec::with_capacity(vars.len());
        for v in vars {
            parts.push(Var::reshape(*v, shape.clone()));
        }
        Var::concat(&parts, axis)
    }

    /// Cuts `axis` into pieces of the given sizes (each piece a narrow).
    #[track_caller]
    pub fn split(self, axis: isize, sizes: &[usize]) -> Vec<Self> {
        let mut parts = Vec::with_capacity(sizes.len());
        // A loop, not a closure: each narrow is recorded at the caller's line.
        for (start, len) in split_ranges("split", &self.shape(), axis, sizes) {
            parts.push(self.narrow(axis, start, len));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn split_undoes_concat_and_gradients_route_back() {
        let tape = Tape::new();
        let a = tape.var(Tensor::<f64>::from_fn([2, 1, 3], |i| i as f64));
        let b = tape.var(Tensor::<f64>::from_fn([2, 2, 3], |i| -(i as f64)));
        let c = crate::Var::concat(&[a, b], 1);
        let parts = c.split(1, &[1, 2]);
        assert!(parts[0].value().bit_eq(&a.value()) && parts[1].value().bit_eq(&b.value()));
        let g = (c * 2.0).sum_all().backward();
        assert_eq!(g[b].to_vec(), vec![2.0; 12]);
    }

    #[test]
    #[should_panic(expected = "concat: shapes [2, 3], [3, 3] differ outside axis 1")]
    fn mismatch_is_named() {
        Tensor::concat(&[Tensor::<f32>::zeros([2, 3]), Tensor::zeros([3, 3])], 1);
    }
}
