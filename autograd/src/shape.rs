//! `Shape`: the dimensions of a tensor, and the broadcasting rules between shapes.

use smallvec::SmallVec;
use std::fmt;

/// The dimensions of a row-major tensor, outermost first. Up to four dimensions live inline.
///
/// ```
/// use autograd::Shape;
/// let s = Shape::from([2, 3, 4]);
/// assert_eq!(s.numel(), 24);
/// assert_eq!(s.strides().as_slice(), &[12, 4, 1]);
/// assert_eq!(format!("{s}"), "[2, 3, 4]");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(SmallVec<[usize; 4]>);

impl Shape {
    /// The shape of a scalar: no dimensions, one element.
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    /// The dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut strides: SmallVec<[usize; 4]> = SmallVec::from_elem(0, self.rank());
        let mut acc = 1;
        for (s, d) in strides.iter_mut().zip(&self.0).rev() {
            *s = acc;
            acc *= d;
        }
        strides
    }

    /// The shape both `self` and `other` broadcast to under NumPy rules, or `None` if they do
    /// not: dimensions are matched from the right and must be equal or 1.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let mut out = SmallVec::with_capacity(rank);
        for i in 0..rank {
            let a = self.dim_from_right(rank - 1 - i);
            let b = other.dim_from_right(rank - 1 - i);
            out.push(match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return None,
            });
        }
        Some(Shape(out))
    }

    /// True if a tensor of this shape can be broadcast to `target` without changing `target`.
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        self.broadcast(target).as_ref() == Some(target)
    }

    /// The strides, in elements, that read a tensor of this shape as if broadcast to `target`
    /// (which it must broadcast to): one per dimension of `target`, 0 where it is broadcast.
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> SmallVec<[usize; 4]> {
        let own = self.strides();
        let pad = target.rank() - self.rank();
        (0..target.rank()).map(|i| if i < pad || self.0[i - pad] == 1 { 0 } else { own[i - pad] }).collect()
    }

    /// The dimension `i` places from the right, 1 if the shape is shorter.
    fn dim_from_right(&self, i: usize) -> usize {
        if i < self.rank() { self.0[self.rank() - 1 - i] } else { 1 }
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this rank; `None` if out of range.
    pub fn resolve_axis(&self, axis: isize) -> Option<usize> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        (0..rank).contains(&a).then_some(a as usize)
    }

    /// A copy with dimension `axis` replaced by `size`.
    pub fn with_dim(&self, axis: usize, size: usize) -> Shape {
        let mut s = self.clone();
        s.0[axis] = size;
        s
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape(SmallVec::from_slice(&dims))
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(SmallVec::from_slice(dims))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(SmallVec::from_vec(dims))
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl std::ops::Index<usize> for Shape {
    type Output = usize;
    fn index(&self, i: usize) -> &usize {
        &self.0[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        let b = |x: &[usize], y: &[usize]| Shape::from(x).broadcast(&Shape::from(y));
        assert_eq!(b(&[2, 3], &[3]), Some(Shape::from([2, 3])));
        assert_eq!(b(&[2, 1, 4], &[3, 1]), Some(Shape::from([2, 3, 4])));
        assert_eq!(b(&[0, 3], &[1, 3]), Some(Shape::from([0, 3])));
        assert_eq!(b(&[], &[5]), Some(Shape::from([5])));
        assert_eq!(b(&[2, 3], &[4]), None);
        assert_eq!(b(&[0], &[2]), None);
    }

    #[test]
    fn strides_of_empty_and_scalar() {
        assert_eq!(Shape::scalar().numel(), 1);
        assert!(Shape::scalar().strides().is_empty());
        assert_eq!(Shape::from([2, 0, 3]).numel(), 0);
        assert_eq!(Shape::from([2, 0, 3]).strides().as_slice(), &[0, 3, 1]);
    }

    #[test]
    fn negative_axes() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.resolve_axis(-1), Some(2));
        assert_eq!(s.resolve_axis(-3), Some(0));
        assert_eq!(s.resolve_axis(3), None);
        assert_eq!(s.resolve_axis(-4), None);
    }
}
