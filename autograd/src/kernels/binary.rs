//! Elementwise binary maps under NumPy broadcasting.

use super::{filled, for_each_row, map, write_slice, zip_map};
use crate::{Element, Shape, Tensor};
use smallvec::SmallVec;

/// `f(a, b)` elementwise over the broadcast of the two shapes.
///
/// # Panics
/// If the shapes do not broadcast; the message names `op` and both shapes.
#[track_caller]
pub(crate) fn broadcast_zip<T: Element>(
    op: &str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync + Send + Copy,
) -> Tensor<T> {
    let out_shape = broadcast_shapes(op, a.shape(), b.shape());
    if a.shape() == b.shape() {
        return Tensor::from_vec(zip_map(a.data(), b.data(), f), out_shape);
    }
    if b.numel() == 1 && a.shape() == &out_shape {
        let y = b.data()[0];
        return Tensor::from_vec(map(a.data(), move |x| f(x, y)), out_shape);
    }
    if a.numel() == 1 && b.shape() == &out_shape {
        let x = a.data()[0];
        return Tensor::from_vec(map(b.data(), move |y| f(x, y)), out_shape);
    }
    let plan = Plan::new(&out_shape, a.shape(), b.shape());
    let inner = plan.dims[plan.dims.len() - 1];
    let (sa, sb) = (plan.a[plan.dims.len() - 1], plan.b[plan.dims.len() - 1]);
    let (ad, bd) = (a.data(), b.data());
    let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
        for_each_row(out, inner, |row, out| {
            let (oa, ob) = plan.row_offsets(row);
            match (sa, sb) {
                (1, 1) => {
                    for ((o, &x), &y) in out.iter_mut().zip(&ad[oa..oa + inner]).zip(&bd[ob..ob + inner]) {
                        o.write(f(x, y));
                    }
                }
                (1, 0) => {
                    let y = bd[ob];
                    for (o, &x) in out.iter_mut().zip(&ad[oa..oa + inner]) {
                        o.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let x = ad[oa];
                    for (o, &y) in out.iter_mut().zip(&bd[ob..ob + inner]) {
                        o.write(f(x, y));
                    }
                }
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        o.write(f(ad[oa + i * sa], bd[ob + i * sb]));
                    }
                }
            }
        })
    };
    // SAFETY: the rows tile the output and every element of every row is written.
    let out = unsafe { filled(out_shape.numel(), fill) };
    Tensor::from_vec(out, out_shape)
}

/// `x` repeated along its size-1 and missing leading dimensions up to `shape` (already checked).
pub(crate) fn expand<T: Element>(x: &Tensor<T>, shape: &Shape) -> Tensor<T> {
    let plan = Plan::new(shape, x.shape(), shape);
    let inner = plan.dims[plan.dims.len() - 1];
    let step = plan.a[plan.dims.len() - 1];
    let data = x.data();
    let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
        for_each_row(out, inner, |row, out| {
            let (o, _) = plan.row_offsets(row);
            if step == 1 {
                write_slice(out, &data[o..o + inner]);
            } else {
                out.fill(std::mem::MaybeUninit::new(data[o]));
            }
        })
    };
    // SAFETY: the rows tile the output and every row is written whole.
    let out = unsafe { filled(shape.numel(), fill) };
    Tensor::from_vec(out, shape.clone())
}

/// The broadcast of two shapes, or a panic that names the op and says which dimensions clash.
#[track_caller]
pub(crate) fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Shape {
    a.broadcast(b).unwrap_or_else(|| {
        panic!(
            "{op}: shapes {a} and {b} cannot be broadcast: aligned from the right, each pair of \
             dimensions must be equal or contain a 1"
        )
    })
}

/// Strides of each operand expressed in output coordinates (0 along broadcast dimensions), after
/// merging neighbouring dimensions that are contiguous in all three tensors.
struct Plan {
    dims: SmallVec<[usize; 4]>,
    a: SmallVec<[usize; 4]>,
    b: SmallVec<[usize; 4]>,
}

impl Plan {
    fn new(out: &Shape, a: &Shape, b: &Shape) -> Self {
        let rank = out.rank().max(1);
        let stride_in = |s: &Shape| -> SmallVec<[usize; 4]> {
            let own = s.strides();
            let pad = out.rank() - s.rank();
            (0..out.rank()).map(|i| if i < pad || s[i - pad] == 1 { 0 } else { own[i - pad] }).collect()
        };
        let (mut dims, mut sa, mut sb): (SmallVec<[usize; 4]>, _, _) = (out.dims().into(), stride_in(a), stride_in(b));
        if dims.is_empty() {
            return Plan {
                dims: SmallVec::from_slice(&[1]),
                a: SmallVec::from_slice(&[0]),
                b: SmallVec::from_slice(&[0]),
            };
        }
        // Merge dimension i into i+1 when both operands step through them as one.
        let mut i = dims.len() - 1;
        while i > 0 {
            let j = i - 1;
            let fits = |s: &SmallVec<[usize; 4]>| s[j] == s[i] * dims[i];
            if fits(&sa) && fits(&sb) {
                dims[i] *= dims[j];
                dims.remove(j);
                sa.remove(j);
                sb.remove(j);
            }
            i -= 1;
        }
        debug_assert!(dims.len() <= rank);
        Plan { dims, a: sa, b: sb }
    }

    /// Offsets into a and b of the first element of output row `row` (rows run along the last dim).
    fn row_offsets(&self, mut row: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for d in (0..self.dims.len() - 1).rev() {
            let i = row % self.dims[d];
            row /= self.dims[d];
            oa += i * self.a[d];
            ob += i * self.b[d];
        }
        (oa, ob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Tensor<f64>, b: &Tensor<f64>) -> Vec<f64> {
        let out = a.shape().broadcast(b.shape()).unwrap();
        let idx = |s: &Shape, o: &[usize]| -> usize {
            let pad = o.len() - s.rank();
            s.dims()
                .iter()
                .zip(s.strides())
                .enumerate()
                .map(|(k, (&d, st))| if d == 1 { 0 } else { o[k + pad] * st })
                .sum()
        };
        let ostr = out.strides();
        (0..out.numel())
            .map(|flat| {
                let o: Vec<usize> = ostr.iter().zip(out.dims()).map(|(s, d)| flat / s % d).collect();
                a.data()[idx(a.shape(), &o)] * 10.0 + b.data()[idx(b.shape(), &o)]
            })
            .collect()
    }

    #[test]
    fn matches_naive_indexing() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 1, 4], &[1, 3, 1]),
            (&[5, 1], &[1, 6]),
            (&[1], &[2, 2]),
            (&[3, 1, 2, 1], &[1, 4, 1, 5]),
            (&[200, 1, 300], &[1, 2, 300]),
        ];
        for (sa, sb) in cases {
            let a = Tensor::<f64>::from_fn(*sa, |i| i as f64);
            let b = Tensor::<f64>::from_fn(*sb, |i| i as f64 * 0.5);
            let got = broadcast_zip("t", &a, &b, |x, y| x * 10.0 + y);
            assert_eq!(got.to_vec(), naive(&a, &b), "{sa:?} with {sb:?}");
            let got = broadcast_zip("t", &b, &a, |y, x| x * 10.0 + y);
            assert_eq!(got.to_vec(), naive(&a, &b), "{sb:?} with {sa:?}");
        }
    }
}
