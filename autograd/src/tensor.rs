//! `Tensor`: a contiguous, row-major, immutable buffer plus a shape. Clones share the buffer.

use crate::{Element, Shape};
use rand::Rng;
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array of `T` in row-major order.
///
/// A tensor is a shared buffer and a [`Shape`]: cloning it, reshaping it and putting it on a
/// tape copy no numbers. Every operation returns a new tensor; the buffer is only written in
/// place through [`Tensor::data_mut`], which copies first if the buffer is shared.
///
/// ```
/// use autograd::Tensor;
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
/// let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3]); // broadcasts over rows
/// let c = &a + &b;
/// assert_eq!(c.to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// assert_eq!(c.dims(), &[2, 3]);
/// ```
#[derive(Clone)]
pub struct Tensor<T: Element = f32> {
    data: Arc<Vec<T>>,
    shape: Shape,
}

impl<T: Element> Tensor<T> {
    /// Wraps `data` as a tensor of `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the number of elements of `shape`.
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        assert!(
            data.len() == shape.numel(),
            "Tensor::from_vec: {} values cannot fill shape {shape}, which holds {}",
            data.len(),
            shape.numel()
        );
        Tensor { data: Arc::new(data), shape }
    }

    /// A tensor with no dimensions holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor { data: Arc::new(vec![value]), shape: Shape::scalar() }
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: impl Into<Shape>, value: T) -> Self {
        let shape = shape.into();
        Tensor { data: Arc::new(vec![value; shape.numel()]), shape }
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::ZERO)
    }

    /// A tensor of `shape` filled with ones.
    pub fn ones(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::ONE)
    }

    /// A tensor whose element at flat (row-major) index `i` is `f(i)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let t = Tensor::<f64>::from_fn([2, 2], |i| i as f64);
    /// assert_eq!(t.to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    /// ```
    pub fn from_fn(shape: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Self {
        let shape = shape.into();
        let data = (0..shape.numel()).map(f).collect();
        Tensor { data: Arc::new(data), shape }
    }

    /// `[0, 1, ..., n-1]` as a 1-D tensor.
    pub fn arange(n: usize) -> Self {
        Self::from_fn([n], |i| T::from_f64(i as f64))
    }

    /// Values drawn uniformly from `[low, high)`, reproducible from the generator's seed.
    ///
    /// ```
    /// use autograd::Tensor;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let t = Tensor::<f32>::rand_uniform([3, 4], -1.0, 1.0, &mut rng);
    /// assert!(t.to_vec().iter().all(|v| (-1.0..1.0).contains(v)));
    /// ```
    pub fn rand_uniform(shape: impl Into<Shape>, low: T, high: T, rng: &mut impl Rng) -> Self {
        let (lo, hi) = (low.to_f64(), high.to_f64());
        Self::from_fn(shape, |_| T::from_f64(lo + (hi - lo) * rng.random::<f64>()))
    }

    /// Values drawn from the normal distribution N(mean, std²) (Box–Muller), reproducible from
    /// the generator's seed.
    pub fn randn(shape: impl Into<Shape>, mean: T, std: T, rng: &mut impl Rng) -> Self {
        let (mean, std) = (mean.to_f64(), std.to_f64());
        let mut spare: Option<f64> = None;
        Self::from_fn(shape, |_| {
            let z = spare.take().unwrap_or_else(|| {
                // 1 - u keeps the logarithm's argument in (0, 1].
                let u1 = 1.0 - rng.random::<f64>();
                let u2 = rng.random::<f64>();
                let r = (-2.0 * u1.ln()).sqrt();
                let theta = 2.0 * std::f64::consts::PI * u2;
                spare = Some(r * theta.sin());
                r * theta.cos()
            });
            T::from_f64(mean + std * z)
        })
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable access to the elements; copies the buffer first if another tensor shares it.
    pub fn data_mut(&mut self) -> &mut [T] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data.as_ref().clone()
    }

    /// Takes the buffer out, copying only if it is shared.
    pub fn into_vec(self) -> Vec<T> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| shared.as_ref().clone())
    }

    /// The single value of a one-element tensor.
    ///
    /// # Panics
    /// If the tensor does not hold exactly one element.
    #[track_caller]
    pub fn item(&self) -> T {
        assert_eq!(self.numel(), 1, "item: tensor of shape {} holds {} values, not 1", self.shape, self.numel());
        self.data[0]
    }

    /// The element at a multi-dimensional index.
    ///
    /// # Panics
    /// If the index has the wrong rank or is out of bounds.
    #[track_caller]
    pub fn at(&self, index: &[usize]) -> T {
        assert!(
            index.len() == self.rank() && index.iter().zip(self.dims()).all(|(i, d)| i < d),
            "at: index {index:?} is out of bounds for shape {}",
            self.shape
        );
        let offset: usize = index.iter().zip(self.shape.strides()).map(|(i, s)| i * s).sum();
        self.data[offset]
    }

    /// Converts every element to another element type.
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor::from_vec(self.data.iter().map(|v| U::from_f64(v.to_f64())).collect(), self.shape.clone())
    }

    /// True if both tensors have the same shape and bit-identical elements.
    pub fn bit_eq(&self, other: &Tensor<T>) -> bool {
        self.shape == other.shape
            && self.data.iter().zip(other.data.iter()).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits())
    }

    /// The same buffer seen with a new shape of the same number of elements (no copy).
    pub(crate) fn with_shape(&self, shape: Shape) -> Self {
        debug_assert_eq!(shape.numel(), self.numel());
        Tensor { data: self.data.clone(), shape }
    }

    /// True if the two tensors share one buffer.
    pub fn shares_buffer(&self, other: &Tensor<T>) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// Identifies the buffer: equal for tensors that share one.
    pub(crate) fn buffer_key(&self) -> usize {
        Arc::as_ptr(&self.data) as usize
    }

    /// How many tensors share this buffer.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.data)
    }

    /// Bytes of the elements.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(self.data.as_slice())
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prints like NumPy: nested brackets, aligned columns, long dimensions elided with `...`.
///
/// ```
/// use autograd::Tensor;
/// let t = Tensor::from_vec(vec![1.0f32, -2.5, 3.0, 4.25], [2, 2]);
/// assert_eq!(format!("{t}"), "tensor([[ 1.  , -2.5 ],\n        [ 3.  ,  4.25]], shape=[2, 2], f32)");
/// ```
impl<T: Element> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<String> = self.data.iter().map(|v| format_number(v.to_f64())).collect();
        let cells = align_decimal_points(cells);
        let mut out = String::from("tensor(");
        let indent = out.len();
        if self.rank() == 0 {
            out.push_str(cells[0].trim());
        } else {
            write_nested(&mut out, &cells, self.dims(), 0, indent);
        }
        write!(f, "{out}, shape={}, {})", self.shape, T::DTYPE_NAME)
    }
}

/// Elements shown per dimension before eliding the middle.
const EDGE: usize = 3;

fn format_number(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0');
        s.to_string()
    }
}

/// Pads cells so their decimal points line up and they share one width.
fn align_decimal_points(cells: Vec<String>) -> Vec<String> {
    let split = |c: &str| c.find('.').unwrap_or(c.len());
    let left = cells.iter().map(|c| split(c)).max().unwrap_or(0);
    let right = cells.iter().map(|c| c.len() - split(c)).max().unwrap_or(0);
    cells
        .into_iter()
        .map(|c| {
            let l = split(&c);
            format!("{}{c}{}", " ".repeat(left - l), " ".repeat(right - (c.len() - l)))
        })
        .collect()
}

fn write_nested(out: &mut String, cells: &[String], dims: &[usize], offset: usize, indent: usize) {
    let (n, rest) = (dims[0], &dims[1..]);
    let block: usize = rest.iter().product();
    let shown: Vec<Option<usize>> = if n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (j, i) in shown.iter().enumerate() {
        if j > 0 {
            out.push(',');
            if rest.is_empty() {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(rest.len()));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match (i, rest.is_empty()) {
            (None, _) => out.push_str("..."),
            (Some(i), true) => out.push_str(&cells[offset + i]),
            (Some(i), false) => write_nested(out, cells, rest, offset + i * block, indent + 1),
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_elides_long_dimensions() {
        let t = Tensor::<f64>::arange(10);
        assert_eq!(format!("{t}"), "tensor([0., 1., 2., ..., 7., 8., 9.], shape=[10], f64)");
    }

    #[test]
    fn display_scalar_and_empty() {
        assert_eq!(format!("{}", Tensor::<f32>::scalar(2.5)), "tensor(2.5, shape=[], f32)");
        assert_eq!(format!("{}", Tensor::<f32>::zeros([0])), "tensor([], shape=[0], f32)");
    }

    #[test]
    fn randn_is_seeded_and_roughly_standard() {
        use rand::SeedableRng;
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        let x = Tensor::<f64>::randn([10_000], 0.0, 1.0, &mut a);
        assert!(x.bit_eq(&Tensor::randn([10_000], 0.0, 1.0, &mut b)));
        let mean = x.data().iter().sum::<f64>() / 1e4;
        let var = x.data().iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 1e4;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }

    #[test]
    #[should_panic(expected = "5 values cannot fill shape [2, 3], which holds 6")]
    fn from_vec_checks_length() {
        Tensor::from_vec(vec![0.0f32; 5], [2, 3]);
    }
}
