//! index_select (gather entries of an axis) and index_add (scatter-add them back), each the
//! other's adjoint; and embedding lookup, which is an index_select of rows.

use super::{resolve_axis, split_at_axis};
use crate::kernels::{filled, for_each_row, write_slice};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};
use std::sync::Arc;

struct IndexSelect {
    axis: isize,
    indices: Arc<[usize]>,
}
impl<T: Element> Op<T> for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn attributes(&self) -> String {
        format!("axis={}, {} indices", self.axis, self.indices.len())
    }
    // Each picked entry sends its gradient back to where it came from; picks of one entry add up.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let shape = v.inputs[0].shape();
        let n = shape[resolve_axis("index_select", &shape, self.axis)];
        vec![Some(v.grad.index_add(self.axis, &self.indices, n))]
    }
}

struct IndexAdd {
    axis: isize,
    indices: Arc<[usize]>,
    size: usize,
}
impl<T: Element> Op<T> for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn attributes(&self) -> String {
        format!("axis={}, {} indices, size={}", self.axis, self.indices.len(), self.size)
    }
    // out[idx[j]] += x[j] is linear in x; its adjoint reads out's gradient back at idx[j].
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        vec![Some(v.grad.index_select(self.axis, &self.indices))]
    }
}

#[track_caller]
fn check_indices(op: &str, shape: &Shape, axis: isize, n: usize, indices: &[usize]) {
    if let Some((j, &i)) = indices.iter().enumerate().find(|&(_, &i)| i >= n) {
        panic!("{op}: index {i} (position {j}) is out of range for axis {axis} of {shape}, which has {n} entries");
    }
}

impl<T: Element> Tensor<T> {
    /// The entries `indices` of `axis`, in that order (repeats allowed), like
    /// `torch.index_select(x, axis, indices)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::<f32>::from_fn([3, 2], |i| i as f32);
    /// assert_eq!(x.index_select(0, &[2, 0, 2]).to_vec(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    /// ```
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Tensor<T> {
        self.index_select_shared(axis, indices.into())
    }

    #[track_caller]
    pub(crate) fn index_select_shared(&self, axis: isize, indices: Arc<[usize]>) -> Tensor<T> {
        let a = resolve_axis("index_select", self.shape(), axis);
        let (_, n, inner) = split_at_axis(self.shape(), a);
        check_indices("index_select", self.shape(), axis, n, &indices);
        let out_shape = self.shape().with_dim(a, indices.len());
        let data = self.data();
        let len = indices.len();
        // Output block r (of `inner` values) is entry indices[r % len] of outer row r / len.
        let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
            for_each_row(out, inner, |r, block| {
                let from = ((r / len) * n + indices[r % len]) * inner;
                write_slice(block, &data[from..from + inner]);
            })
        };
        // SAFETY: the output is whole blocks of `inner`, and every block is written.
        let out = unsafe { filled(out_shape.numel(), fill) };
        Tensor::from_vec(out, out_shape)
    }

    /// A tensor with `size` entries along `axis`, zero except that entry `j` of `self` is added
    /// at `indices[j]`, like `torch.zeros(...).index_add_(axis, indices, self)`.
    ///
    /// # Panics
    /// If `indices` does not have one index per entry of `axis`, or one is out of range.
    #[track_caller]
    pub fn index_add(&self, axis: isize, indices: &[usize], size: usize) -> Tensor<T> {
        self.index_add_shared(axis, indices.into(), size)
    }

    #[track_caller]
    pub(crate) fn index_add_shared(&self, axis: isize, indices: Arc<[usize]>, size: usize) -> Tensor<T> {
        let a = resolve_axis("index_add", self.shape(), axis);
        let (_, m, inner) = split_at_axis(self.shape(), a);
        assert!(
            indices.len() == m,
            "index_add: {} indices for axis {axis} of {}, which has {m} entries",
            indices.len(),
            self.shape()
        );
        let out_shape = self.shape().with_dim(a, size);
        check_indices("index_add", &out_shape, axis, size, &indices);
        // sources[starts[i]..starts[i + 1]]: the entries j with indices[j] == i, ascending.
        let mut starts = vec![0usize; size + 1];
        for &i in indices.iter() {
            starts[i + 1] += 1;
        }
        for i in 0..size {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut sources = vec![0usize; m];
        for (j, &i) in indices.iter().enumerate() {
            sources[next[i]] = j;
            next[i] += 1;
        }
        let mut out = vec![T::ZERO; out_shape.numel()];
        let data = self.data();
        // Output block r is entry r % size of outer row r / size. Each block sums its sources in
        // ascending j, so blocks are independent and the order never varies.
        for_each_row(&mut out, inner, |r, block| {
            let (o, i) = (r / size, r % size);
            for &j in &sources[starts[i]..starts[i + 1]] {
                let from = (o * m + j) * inner;
                for (acc, &g) in block.iter_mut().zip(&data[from..from + inner]) {
                    *acc += g;
                }
            }
        });
        Tensor::from_vec(out, out_shape)
    }

    /// Looks up rows of an embedding table `[vocab, d]` for `ids` laid out as `ids_shape`;
    /// the result has shape `ids_shape + [d]`, like `F.embedding(ids, weight)`.
    #[track_caller]
    pub fn embedding(&self, ids: &[usize], ids_shape: impl Into<Shape>) -> Tensor<T> {
        let out_shape = embedding_shape(self.shape(), ids.len(), ids_shape.into());
        self.index_select(0, ids).reshape(out_shape)
    }
}

#[track_caller]
fn embedding_shape(table: &Shape, n_ids: usize, ids_shape: Shape) -> Shape {
    assert!(table.rank() == 2, "embedding: the table must be [vocab, d], not {table}");
    assert!(
        ids_shape.numel() == n_ids,
        "embedding: {n_ids} ids cannot be laid out as {ids_shape}, which holds {}",
        ids_shape.numel()
    );
    let mut dims = ids_shape.dims().to_vec();
    dims.push(table[1]);
    Shape::from(dims)
}

impl<'t, T: Element> Var<'t, T> {
    /// The entries `indices` of `axis`, in that order (repeats allowed).
    #[track_caller]
    pub fn index_select(self, axis: isize, indices: &[usize]) -> Self {
        self.index_select_shared(axis, indices.into())
    }

    #[track_caller]
    pub(crate) fn index_select_shared(self, axis: isize, indices: Arc<[usize]>) -> Self {
        let value = self.value().index_select_shared(axis, indices.clone());
        Var::record(self.tape, IndexSelect { axis, indices }, &[self], value)
    }

    /// Zeros with `size` entries along `axis`, with entry `j` of `self` added at `indices[j]`.
    #[track_caller]
    pub fn index_add(self, axis: isize, indices: &[usize], size: usize) -> Self {
        self.index_add_shared(axis, indices.into(), size)
    }

    #[track_caller]
    pub(crate) fn index_add_shared(self, axis: isize, indices: Arc<[usize]>, size: usize) -> Self {
        let value = self.value().index_add_shared(axis, indices.clone(), size);
        Var::record(self.tape, IndexAdd { axis, indices, size }, &[self], value)
    }

    /// Looks up rows of this embedding table `[vocab, d]` for `ids` laid out as `ids_shape`:
    /// the result is `ids_shape + [d]`. Rows used several times accumulate their gradients.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let table = tape.var(Tensor::from_fn([5, 2], |i| i as f32));
    /// let x = table.embedding(&[4, 1, 4], [1, 3]);
    /// assert_eq!(x.dims(), vec![1, 3, 2]);
    /// let g = x.sum_all().backward();
    /// assert_eq!(g[table].to_vec(), vec![0., 0., 1., 1., 0., 0., 0., 0., 2., 2.]);
    /// ```
    #[track_caller]
    pub fn embedding(self, ids: &[usize], ids_shape: impl Into<Shape>) -> Self {
        let out_shape = embedding_shape(&self.shape(), ids.len(), ids_shape.into());
        self.index_select(0, ids).reshape(out_shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    #[should_panic(
        expected = "index_select: index 3 (position 1) is out of range for axis 0 of [3, 2], which has 3 entries"
    )]
    fn out_of_range_index_is_named() {
        Tensor::<f32>::zeros([3, 2]).index_select(0, &[0, 3]);
    }

    #[test]
    fn index_add_sums_repeats() {
        let g = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], [3]);
        assert_eq!(g.index_add(0, &[1, 1, 0], 3).to_vec(), vec![3.0, 3.0, 0.0]);
    }
}
