//! Matrix product, 2-D and batched with broadcast batch dimensions; transposes are folded into
//! the GEMM's strides in the forward pass and in every backward product.

use crate::kernels::gemm::{Operand, gemm_batched};
use crate::{Element, InputGrads, Math, Op, Shape, Tensor, Var, Vjp};

/// C = op(A) · op(B), where op transposes the last two dimensions when its flag is set.
struct MatMul {
    ta: bool,
    tb: bool,
}

impl<T: Element> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn attributes(&self) -> String {
        match (self.ta, self.tb) {
            (false, false) => String::new(),
            (true, false) => "aᵀ".into(),
            (false, true) => "bᵀ".into(),
            (true, true) => "aᵀ, bᵀ".into(),
        }
    }
    // With G = ∂L/∂C:  ∂L/∂op(A) = G·op(B)ᵀ  and  ∂L/∂op(B) = op(A)ᵀ·G.
    // Undoing op on the left-hand side only swaps which operand is transposed, so every
    // product below is one more strided GEMM.
    fn vjp<M: Math<T>>(&self, v: Vjp<'_, M>) -> InputGrads<M> {
        let [a, b] = v.inputs else { unreachable!() };
        let g = v.grad;
        let (ta, tb) = (self.ta, self.tb);
        let (a_shape, b_shape) = (a.shape(), b.shape());
        let da = v.needs[0].then(|| {
            let da = if ta { b.matmul_t(g, tb, true) } else { g.matmul_t(b, false, !tb) };
            da.sum_to(&a_shape)
        });
        let db = v.needs[1].then(|| {
            if b_shape.rank() == 2 && a_shape.rank() > 2 && !ta {
                // A shared weight: fold A's batch into its rows so ∂B is one GEMM, not a
                // batch of them summed afterwards.
                let (ra, g_shape) = (a_shape.rank(), g.shape());
                let (rows, k) = (a_shape.dims()[..ra - 1].iter().product(), a_shape[ra - 1]);
                let a2 = a.reshape(&Shape::from([rows, k]));
                let g2 = g.reshape(&Shape::from([rows, g_shape[g_shape.rank() - 1]]));
                if tb { g2.matmul_t(&a2, true, false) } else { a2.matmul_t(&g2, true, false) }
            } else {
                let db = if tb { g.matmul_t(a, true, ta) } else { a.matmul_t(g, !ta, false) };
                db.sum_to(&b_shape)
            }
        });
        vec![da, db]
    }
}

fn operand<T>(data: &[T], rows: usize, cols: usize, transposed: bool) -> Operand<'_, T> {
    Operand { data, rows, cols, transposed }
}

fn show(shape: &Shape, transposed: bool) -> String {
    format!("{shape}{}", if transposed { "ᵀ" } else { "" })
}

/// Dimensions of a product: batch shape, m, k, n; or a panic naming both shapes and the clash.
#[track_caller]
fn plan(a: &Shape, b: &Shape, ta: bool, tb: bool) -> (Shape, usize, usize, usize) {
    let what = format!("matmul: {} x {}", show(a, ta), show(b, tb));
    assert!(
        a.rank() >= 2 && b.rank() >= 2,
        "{what}: both operands need at least 2 dimensions; reshape a vector to [1, n] or [n, 1]"
    );
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = if ta { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
    let (k2, n) = if tb { (b[rb - 1], b[rb - 2]) } else { (b[rb - 2], b[rb - 1]) };
    assert!(k == k2, "{what}: inner dimensions {k} and {k2} differ");
    let (ba, bb) = (Shape::from(&a.dims()[..ra - 2]), Shape::from(&b.dims()[..rb - 2]));
    let batch =
        ba.broadcast(&bb).unwrap_or_else(|| panic!("{what}: batch dimensions {ba} and {bb} cannot be broadcast"));
    (batch, m, k, n)
}

/// For each batch entry of the output, which matrix of `a` and of `b` it multiplies.
fn batch_pairs(batch: &Shape, a: &Shape, b: &Shape) -> Vec<(usize, usize)> {
    let strides_in = |s: &Shape| -> Vec<usize> {
        let own = s.strides();
        let pad = batch.rank() - s.rank();
        (0..batch.rank()).map(|i| if i < pad || s[i - pad] == 1 { 0 } else { own[i - pad] }).collect()
    };
    let (sa, sb) = (strides_in(a), strides_in(b));
    (0..batch.numel())
        .map(|mut flat| {
            let (mut ia, mut ib) = (0, 0);
            for d in (0..batch.rank()).rev() {
                let i = flat % batch[d];
                flat /= batch[d];
                ia += i * sa[d];
                ib += i * sb[d];
            }
            (ia, ib)
        })
        .collect()
}

impl<T: Element> Tensor<T> {
    /// The matrix product, like `torch.matmul` for operands of rank 2 or more: the last two
    /// dimensions multiply, the others are batch dimensions and broadcast.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
    /// let b = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 1.0], [2, 2]);
    /// assert_eq!(a.matmul(&b).to_vec(), vec![3.0, 2.0, 7.0, 4.0]);
    /// ```
    ///
    /// # Panics
    /// If an operand has fewer than 2 dimensions, the inner dimensions differ, or the batch
    /// dimensions do not broadcast.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor<T>) -> Tensor<T> {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)`, where `op` transposes the last two dimensions when its flag is
    /// set. The transpose is folded into the GEMM's strides: nothing is copied.
    /// `x.matmul_t(w, false, true)` is `x @ w.T`, a linear layer with PyTorch's `[out, in]` weight.
    #[track_caller]
    pub fn matmul_t(&self, other: &Tensor<T>, transpose_self: bool, transpose_other: bool) -> Tensor<T> {
        let (ta, tb) = (transpose_self, transpose_other);
        let (a, b) = (self.shape(), other.shape());
        let (batch, m, k, n) = plan(a, b, ta, tb);
        let mut dims = batch.dims().to_vec();
        dims.extend([m, n]);
        let (ra, rb) = (a.rank(), b.rank());
        let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
            if rb == 2 && ra > 2 && !ta {
                // A batch against one matrix: stack the batch into rows and run a single GEMM.
                let rows = batch.numel() * m;
                let a_op = operand(self.data(), rows, k, false);
                let b_op = operand(other.data(), b[0], b[1], tb);
                gemm_batched(a_op, b_op, &[(0, 0)], out);
            } else {
                let a_op = operand(self.data(), a[ra - 2], a[ra - 1], ta);
                let b_op = operand(other.data(), b[rb - 2], b[rb - 1], tb);
                let pairs = batch_pairs(&batch, &Shape::from(&a.dims()[..ra - 2]), &Shape::from(&b.dims()[..rb - 2]));
                gemm_batched(a_op, b_op, &pairs, out);
            }
        };
        // SAFETY: gemm_batched writes every element of its output.
        let out = unsafe { crate::kernels::filled(m * n * batch.numel(), fill) };
        Tensor::from_vec(out, dims)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// The matrix product, like `torch.matmul` for operands of rank 2 or more.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// // ∂/∂W Σ(x·W) = xᵀ·1
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [1, 2]));
    /// let w = tape.var(Tensor::zeros([2, 3]));
    /// let g = x.matmul(w).sum_all().backward();
    /// assert_eq!(g[w].to_vec(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn matmul(self, other: Var<'t, T>) -> Self {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)`, where `op` transposes the last two dimensions when its flag is
    /// set; no transpose is ever copied, in the forward pass or the backward one.
    #[track_caller]
    pub fn matmul_t(self, other: Var<'t, T>, transpose_self: bool, transpose_other: bool) -> Self {
        let value = self.value().matmul_t(&other.value(), transpose_self, transpose_other);
        Var::record(self.tape, MatMul { ta: transpose_self, tb: transpose_other }, &[self, other], value)
    }
}
