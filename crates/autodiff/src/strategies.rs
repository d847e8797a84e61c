//! Proptest strategies for gradient checks: shapes, broadcast-compatible shape pairs, tensors
//! whose values stay inside an op's domain and away from its kinks, and random DAGs composed
//! from the primitives.
//!
//! ```
//! use dendrite_autodiff::check::{check_gradients, CheckConfig};
//! use dendrite_autodiff::strategies::{shape, values_in};
//! use dendrite_graph::Graph;
//! use proptest::prelude::*;
//! use proptest::test_runner::{Config, TestCaseError, TestRunner};
//!
//! fn fail(e: impl std::fmt::Display) -> TestCaseError {
//!     TestCaseError::fail(e.to_string())
//! }
//!
//! // In a test file this is a `proptest! { ... }` block; here the runner is driven by hand.
//! let mut runner = TestRunner::new(Config::with_cases(16));
//! let tensors = shape().prop_flat_map(|s| values_in(s, -2.0..2.0));
//! runner
//!     .run(&tensors, |x| {
//!         let mut g = Graph::<f64>::new();
//!         let input = g.input("x", x.shape()).map_err(fail)?;
//!         let y = g.tanh(input).map_err(fail)?;
//!         let feeds = [("x", x.view())];
//!         let report = check_gradients(&mut g, y, &[input], &feeds, &CheckConfig::default())
//!             .map_err(fail)?;
//!         prop_assert!(report.passed(), "{}", report);
//!         Ok(())
//!     })
//!     .map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

mod dag;

pub use dag::{dag_with_values, random_dag, DagOp, RandomDag};

use ndarray::{ArrayD, IxDyn};
use proptest::collection::vec;
use proptest::prelude::*;
use std::ops::Range;

/// One dimension in `1..=5`, with 1 drawn on purpose a third of the time (size-1 dimensions
/// are where broadcasting bugs live).
///
/// ```
/// use dendrite_autodiff::strategies::dim;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let d = dim().new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!((1..=5).contains(&d));
/// # Ok::<(), String>(())
/// ```
pub fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(1usize), 2 => 1usize..=5]
}

/// A shape of rank 0-4 with dimensions 1-5 (see [`dim`]).
///
/// ```
/// use dendrite_autodiff::strategies::shape;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let s = shape().new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!(s.len() <= 4 && s.iter().all(|&d| (1..=5).contains(&d)));
/// # Ok::<(), String>(())
/// ```
pub fn shape() -> impl Strategy<Value = Vec<usize>> {
    shape_with_rank(0..=4)
}

/// A shape whose rank lies in `rank`, dimensions as in [`dim`].
///
/// ```
/// use dendrite_autodiff::strategies::shape_with_rank;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let s = shape_with_rank(2..=3).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!((2..=3).contains(&s.len()));
/// # Ok::<(), String>(())
/// ```
pub fn shape_with_rank(rank: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    vec(dim(), rank)
}

/// A shape that broadcasts to `full`: `full` with some leading axes dropped and some
/// dimensions set to 1.
///
/// ```
/// use dendrite_autodiff::strategies::broadcastable_to;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let tree = broadcastable_to(vec![2, 3]).new_tree(&mut runner);
/// let s = tree.map_err(|e| e.to_string())?.current();
/// assert!(s.len() <= 2);
/// # Ok::<(), String>(())
/// ```
pub fn broadcastable_to(full: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let r = full.len();
    (0..=r, vec(any::<bool>(), r)).prop_map(move |(drop, ones)| {
        full.iter()
            .zip(&ones)
            .skip(drop)
            .map(|(&d, &one)| if one { 1 } else { d })
            .collect()
    })
}

/// `(from, to)`: a shape and a shape it broadcasts to, as `broadcast_to` needs.
///
/// ```
/// use dendrite_autodiff::strategies::broadcast_to_pair;
/// use dendrite_graph::{broadcast_shapes, Shape};
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let tree = broadcast_to_pair().new_tree(&mut runner);
/// let (from, to) = tree.map_err(|e| e.to_string())?.current();
/// assert_eq!(broadcast_shapes(&Shape::fixed(&from), &Shape::fixed(&to)), Some(Shape::fixed(&to)));
/// # Ok::<(), String>(())
/// ```
pub fn broadcast_to_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|full| (broadcastable_to(full.clone()), Just(full)))
}

/// Two shapes that broadcast against each other (NumPy rules): a common shape, from which each
/// side may drop leading axes and set some dimensions to 1.
///
/// ```
/// use dendrite_autodiff::strategies::broadcast_pair;
/// use dendrite_graph::{broadcast_shapes, Shape};
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let (a, b) = broadcast_pair().new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!(broadcast_shapes(&Shape::fixed(&a), &Shape::fixed(&b)).is_some());
/// # Ok::<(), String>(())
/// ```
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|full| (broadcastable_to(full.clone()), broadcastable_to(full)))
}

/// A tensor of the given shape with values drawn uniformly from `range`.
///
/// ```
/// use dendrite_autodiff::strategies::values_in;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let tree = values_in(vec![2, 3], 0.5..1.5).new_tree(&mut runner);
/// let x = tree.map_err(|e| e.to_string())?.current();
/// assert_eq!(x.shape(), &[2, 3]);
/// assert!(x.iter().all(|v| (0.5..1.5).contains(v)));
/// # Ok::<(), String>(())
/// ```
pub fn values_in(shape: Vec<usize>, range: Range<f64>) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    vec(range, n).prop_map(move |v| from_vec(&shape, v))
}

/// A tensor with values in `-2..2`.
///
/// ```
/// use dendrite_autodiff::strategies::tensor;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let x = tensor(vec![4]).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert_eq!(x.len(), 4);
/// # Ok::<(), String>(())
/// ```
pub fn tensor(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    values_in(shape, -2.0..2.0)
}

/// A tensor with values in `0.2..3`: the domain of `log`, `sqrt`, `div` denominators and
/// non-integer powers, kept away from 0 where they blow up.
///
/// ```
/// use dendrite_autodiff::strategies::positive;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let x = positive(vec![3]).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!(x.iter().all(|&v| v >= 0.2));
/// # Ok::<(), String>(())
/// ```
pub fn positive(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    values_in(shape, 0.2..3.0)
}

/// A tensor with `|x|` in `0.1..2` and either sign: away from the kinks of `relu`, `abs` and
/// `sign` at 0, so central differences with a small step do not straddle them.
///
/// ```
/// use dendrite_autodiff::strategies::away_from_zero;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let x = away_from_zero(vec![5]).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!(x.iter().all(|v| v.abs() >= 0.1));
/// # Ok::<(), String>(())
/// ```
pub fn away_from_zero(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    vec((0.1..2.0f64, any::<bool>()), n).prop_map(move |v| {
        from_vec(
            &shape,
            v.into_iter()
                .map(|(m, neg)| if neg { -m } else { m })
                .collect(),
        )
    })
}

/// A tensor whose values are pairwise distinct, at least `0.4 · (hi - lo) / n` apart, inside
/// `range`: no ties for `max` reductions, `maximum`, `argmax` or comparisons.
///
/// ```
/// use dendrite_autodiff::strategies::distinct_in;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let tree = distinct_in(vec![2, 3], -1.0..1.0).new_tree(&mut runner);
/// let x = tree.map_err(|e| e.to_string())?.current();
/// let mut v: Vec<f64> = x.iter().copied().collect();
/// v.sort_by(f64::total_cmp);
/// assert!(v.windows(2).all(|w| w[1] - w[0] > 0.1));
/// # Ok::<(), String>(())
/// ```
pub fn distinct_in(shape: Vec<usize>, range: Range<f64>) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    let (lo, hi) = (range.start, range.end);
    let step = (hi - lo) / n.max(1) as f64;
    (
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        vec(0.0..1.0f64, n),
    )
        .prop_map(move |(perm, jitter)| {
            let v = perm
                .iter()
                .zip(&jitter)
                .map(|(&p, &u)| lo + (p as f64 + 0.3 + 0.4 * u) * step)
                .collect();
            from_vec(&shape, v)
        })
}

/// Builds a tensor from a row-major vector (the lengths match by construction).
fn from_vec(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
    let mut it = v.into_iter();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || it.next().unwrap_or(0.0))
}
