//! Shapes with optional dynamic dimensions, and NumPy broadcasting over them.
//!
//! A [`Dim`] is either fixed or dynamic (`?`, Keras' `None`). Shape rules run twice: once over
//! declared shapes when a node is added, where a dynamic dimension is taken on trust, and once
//! over concrete shapes when a plan runs, where every dimension is fixed and the same rule
//! catches what trust let through.

use smallvec::SmallVec;
use std::fmt;

/// One dimension of a declared shape.
///
/// ```
/// use dendrite_graph::Dim;
/// assert_eq!(Dim::from(3), Dim::Fixed(3));
/// assert_eq!(Dim::from(None), Dim::Dynamic);
/// assert_eq!(Dim::Dynamic.to_string(), "?");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known when the graph is built.
    Fixed(usize),
    /// A size known only when a plan runs (a batch dimension, say).
    Dynamic,
}

impl Dim {
    /// The fixed size, or `None` for a dynamic dimension.
    ///
    /// ```
    /// use dendrite_graph::Dim;
    /// assert_eq!(Dim::Fixed(4).fixed(), Some(4));
    /// assert_eq!(Dim::Dynamic.fixed(), None);
    /// ```
    pub fn fixed(self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(n),
            Dim::Dynamic => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n)
    }
}

impl From<Option<usize>> for Dim {
    fn from(n: Option<usize>) -> Self {
        n.map_or(Dim::Dynamic, Dim::Fixed)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Dynamic => f.write_str("?"),
        }
    }
}

/// Dimensions stored inline for the ranks that occur in practice.
pub type Dims = SmallVec<[Dim; 4]>;

/// A concrete shape, as ndarray uses it.
pub type ConcreteShape = SmallVec<[usize; 4]>;

/// A declared shape: a list of [`Dim`]s. Rank 0 is a scalar.
///
/// ```
/// use dendrite_graph::{Dim, Shape};
/// let s = Shape::from([None, Some(784)]);
/// assert_eq!(s.to_string(), "[?, 784]");
/// assert_eq!(s.rank(), 2);
/// assert!(!s.is_fixed());
/// assert_eq!(Shape::from([2, 3]).concrete(), Some(vec![2, 3].into()));
/// assert_eq!(Shape::scalar().to_string(), "[]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: Dims,
}

impl Shape {
    /// A shape from its dimensions.
    ///
    /// ```
    /// use dendrite_graph::{Dim, Shape};
    /// let s = Shape::new([Dim::Dynamic, Dim::Fixed(3)]);
    /// assert_eq!(s.dims()[1], Dim::Fixed(3));
    /// ```
    pub fn new(dims: impl IntoIterator<Item = Dim>) -> Self {
        Shape {
            dims: dims.into_iter().collect(),
        }
    }

    /// The shape of a scalar (rank 0).
    ///
    /// ```
    /// assert_eq!(dendrite_graph::Shape::scalar().rank(), 0);
    /// ```
    pub fn scalar() -> Self {
        Shape::default()
    }

    /// A fully fixed shape from concrete sizes.
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// assert_eq!(Shape::fixed(&[2, 3]), Shape::from([2, 3]));
    /// ```
    pub fn fixed(sizes: &[usize]) -> Self {
        Shape::new(sizes.iter().map(|&n| Dim::Fixed(n)))
    }

    /// The dimensions.
    ///
    /// ```
    /// use dendrite_graph::{Dim, Shape};
    /// assert_eq!(Shape::from([5]).dims(), &[Dim::Fixed(5)]);
    /// ```
    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Number of dimensions.
    ///
    /// ```
    /// assert_eq!(dendrite_graph::Shape::from([1, 2, 3]).rank(), 3);
    /// ```
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Whether every dimension is fixed.
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// assert!(Shape::from([2]).is_fixed());
    /// assert!(!Shape::from([None]).is_fixed());
    /// ```
    pub fn is_fixed(&self) -> bool {
        self.dims.iter().all(|d| matches!(d, Dim::Fixed(_)))
    }

    /// The concrete sizes, if every dimension is fixed.
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// assert_eq!(Shape::from([None, Some(2)]).concrete(), None);
    /// ```
    pub fn concrete(&self) -> Option<ConcreteShape> {
        self.dims.iter().map(|d| d.fixed()).collect()
    }

    /// The number of elements, if every dimension is fixed (1 for a scalar) and the product
    /// fits in a `usize`. The product is checked, never wrapped: a graph refuses to hold a
    /// shape whose fixed dimensions overflow (see [`Shape::fixed_size_overflows`]), so for the
    /// shapes of its nodes `None` means "dynamic".
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// assert_eq!(Shape::from([2, 3]).size(), Some(6));
    /// assert_eq!(Shape::scalar().size(), Some(1));
    /// assert_eq!(Shape::from([3, 12297829382473034411]).size(), None);
    /// ```
    pub fn size(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |n, d| d.fixed().and_then(|m| n.checked_mul(m)))
    }

    /// Whether the product of the fixed dimensions does not fit in a `usize` (no tensor of
    /// this shape could exist, whatever its dynamic dimensions).
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// assert!(Shape::from([3, 12297829382473034411]).fixed_size_overflows());
    /// assert!(!Shape::from([None, Some(1 << 40)]).fixed_size_overflows());
    /// ```
    pub fn fixed_size_overflows(&self) -> bool {
        self.dims
            .iter()
            .filter_map(|d| d.fixed())
            .try_fold(1usize, |n, m| n.checked_mul(m))
            .is_none()
    }

    /// Whether a concrete shape is an instance of this declared shape: same rank, and equal
    /// sizes wherever this shape is fixed.
    ///
    /// ```
    /// use dendrite_graph::Shape;
    /// let s = Shape::from([None, Some(784)]);
    /// assert!(s.accepts(&[32, 784]));
    /// assert!(!s.accepts(&[32, 783]));
    /// ```
    pub fn accepts(&self, concrete: &[usize]) -> bool {
        self.rank() == concrete.len()
            && self
                .dims
                .iter()
                .zip(concrete)
                .all(|(d, &n)| d.fixed().is_none_or(|m| m == n))
    }

    pub(crate) fn push(&mut self, dim: Dim) {
        self.dims.push(dim);
    }

    pub(crate) fn dims_mut(&mut self) -> &mut Dims {
        &mut self.dims
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(sizes: [usize; N]) -> Self {
        Shape::fixed(&sizes)
    }
}

impl<const N: usize> From<[Option<usize>; N]> for Shape {
    fn from(sizes: [Option<usize>; N]) -> Self {
        Shape::new(sizes.into_iter().map(Dim::from))
    }
}

impl<const N: usize> From<[Dim; N]> for Shape {
    fn from(dims: [Dim; N]) -> Self {
        Shape::new(dims)
    }
}

impl From<&[usize]> for Shape {
    fn from(sizes: &[usize]) -> Self {
        Shape::fixed(sizes)
    }
}

impl From<&[Option<usize>]> for Shape {
    fn from(sizes: &[Option<usize>]) -> Self {
        Shape::new(sizes.iter().copied().map(Dim::from))
    }
}

impl From<&[Dim]> for Shape {
    fn from(dims: &[Dim]) -> Self {
        Shape::new(dims.iter().copied())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(sizes: Vec<usize>) -> Self {
        Shape::fixed(&sizes)
    }
}

/// Combines two dimensions under NumPy broadcasting, or `None` when they conflict.
///
/// A dynamic dimension is never stretched from 1 by trust alone: against a fixed `n > 1` it is
/// taken to be `n` (the runtime pass checks it), against 1 or another dynamic dimension it stays
/// dynamic.
///
/// ```
/// use dendrite_graph::{broadcast_dim, Dim};
/// assert_eq!(broadcast_dim(Dim::Fixed(1), Dim::Fixed(4)), Some(Dim::Fixed(4)));
/// assert_eq!(broadcast_dim(Dim::Dynamic, Dim::Fixed(4)), Some(Dim::Fixed(4)));
/// assert_eq!(broadcast_dim(Dim::Dynamic, Dim::Fixed(1)), Some(Dim::Dynamic));
/// assert_eq!(broadcast_dim(Dim::Fixed(2), Dim::Fixed(3)), None);
/// ```
pub fn broadcast_dim(a: Dim, b: Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Fixed(x), Dim::Fixed(y)) if x == y => Some(a),
        (Dim::Fixed(1), other) | (other, Dim::Fixed(1)) => Some(other),
        (Dim::Fixed(_), Dim::Fixed(_)) => None,
        (Dim::Dynamic, Dim::Dynamic) => Some(Dim::Dynamic),
        (Dim::Dynamic, fixed) | (fixed, Dim::Dynamic) => Some(fixed),
    }
}

/// The NumPy broadcast of two shapes (align on the right, stretch size-1 dimensions), or `None`
/// when some aligned pair of dimensions conflicts.
///
/// ```
/// use dendrite_graph::{broadcast_shapes, Shape};
/// let s = broadcast_shapes(&Shape::from([3, 1]), &Shape::from([4])).unwrap();
/// assert_eq!(s, Shape::from([3, 4]));
/// assert!(broadcast_shapes(&Shape::from([3]), &Shape::from([4])).is_none());
/// ```
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    let pad_a = rank - a.rank();
    let pad_b = rank - b.rank();
    let mut dims = Dims::with_capacity(rank);
    for i in 0..rank {
        let da = if i < pad_a {
            Dim::Fixed(1)
        } else {
            a.dims[i - pad_a]
        };
        let db = if i < pad_b {
            Dim::Fixed(1)
        } else {
            b.dims[i - pad_b]
        };
        dims.push(broadcast_dim(da, db)?);
    }
    Some(Shape { dims })
}
