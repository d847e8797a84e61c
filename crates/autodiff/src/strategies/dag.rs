//! Random DAGs composed from the primitives, for end-to-end gradient checks.
//!
//! Every differentiable primitive has a place: the unary, binary, compare and reduce families
//! are drawn from their `ALL` lists (so a new member is drawn without a change here), each
//! asked for its domain guard and its bound through exhaustive matches, and the structural
//! primitives (layout, broadcast, slice, index, softmax, cumsum, matmul) have one op each. A
//! test in `tests/random_dag.rs` fails when a differentiable primitive never appears.

mod choose;
mod kinks;

use super::tensor;
use dendrite_graph::{
    BinaryOp, CompareOp, Element, Graph, GraphError, NodeId, ReduceOp, Shape, UnaryOp,
};
use ndarray::ArrayD;
use proptest::collection::vec;
use proptest::prelude::*;

/// One op of a [`RandomDag`]. Operands are value indices: the inputs first, then the result of
/// each op in order. Each op is a domain-safe composition: finite differences stay well
/// conditioned whatever the values.
#[derive(Debug, Clone, PartialEq)]
pub enum DagOp {
    /// A unary function of `guard(x)`, the operand mapped into the function's domain
    /// (`log(x² + 1)`, `sqrt(x² + 1)`, `log1p(x²)`, `|tanh x - 2|`, else `f(x)`).
    Unary(UnaryOp, usize),
    /// `x^n` for an integer `n`.
    Pow(usize, i32),
    /// `a ∘ b`, broadcasting: `a / (b² + 1)` for div, `(a² + 1)^tanh(b)` for power.
    Binary(BinaryOp, usize, usize),
    /// `select(compare(a, b), a, b)`.
    Select(CompareOp, usize, usize),
    /// A reduction over one axis, kept as size 1.
    Reduce(ReduceOp, usize, usize),
    /// `cumsum` along an axis.
    CumSum {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
        /// Sum from the end.
        reverse: bool,
    },
    /// Mean over one axis, kept as size 1.
    Mean {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Reorder the axes.
    Permute(usize, Vec<usize>),
    /// The same elements in another shape.
    Reshape(usize, Vec<usize>),
    /// Insert a size-1 axis.
    ExpandDims(usize, usize),
    /// Broadcast to the given shape.
    BroadcastTo(usize, Vec<usize>),
    /// `broadcast_like(sum over axis (kept), x)`: a reduced copy stretched back.
    BroadcastLike(usize, usize),
    /// `sum_like(x, sum over axis (kept))`: summed down to the reduced copy's shape.
    SumLike(usize, usize),
    /// A matrix product with transpose flags, batch axes broadcast.
    MatMul {
        /// Left operand.
        lhs: usize,
        /// Right operand.
        rhs: usize,
        /// Transpose the left operand.
        transpose_lhs: bool,
        /// Transpose the right operand.
        transpose_rhs: bool,
    },
    /// `x[start..end]` along an axis.
    Slice {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
        /// First index kept.
        start: usize,
        /// One past the last.
        end: usize,
    },
    /// Zeros around `x` along an axis.
    Pad {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
        /// Zeros before.
        before: usize,
        /// Zeros after.
        after: usize,
    },
    /// Two values one after the other along an axis.
    Concat(usize, usize, usize),
    /// `take(x, indices, axis)` with constant indices.
    Gather(usize, usize, Vec<usize>),
    /// `scatter_add(gather(x, indices), indices, like x)`: repeated indices accumulate.
    ScatterAdd(usize, usize, Vec<usize>),
    /// Softmax along an axis.
    Softmax {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Log-softmax along an axis.
    LogSoftmax {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Logsumexp along an axis, kept as size 1.
    LogSumExp {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Sum of every element, as a scalar.
    SumAll(usize),
    /// A member of the conv or pool family over `arg` laid out as a one-row image
    /// `[1, 1, n, 1]`, with `same` padding and stride 1 (so the result keeps `arg`'s shape,
    /// except for the kernel gradient, shaped `[kw]`, `kw = min(2, n)`). `kind` picks, in
    /// order: `conv2d` and `conv2d_input_grad` (with a `[1, kw, 1, 1]` kernel cut from the
    /// front of `other`), `conv2d_kernel_grad` (of the image with itself), `max_pool2d`,
    /// `max_pool2d_scatter` and `max_pool2d_gather` (routed by a constant image, so that
    /// they stay continuous), `avg_pool2d`, `avg_pool2d_grad` (pools of `[1, 2]`), and
    /// `conv2d_bias` (the kernel as for `conv2d`, the bias the first element of `other`).
    Image {
        /// Which member, `0..9`.
        kind: usize,
        /// The image's values.
        arg: usize,
        /// Where the kernel comes from.
        other: usize,
    },
}

/// A random DAG: 1-3 inputs of chosen shapes and a list of [`DagOp`]s over them. The last
/// value is the output: a scalar that adds up every value nothing else uses, so that every op
/// matters. Values are kept bounded (each op's result is bounded by 50 in magnitude for inputs
/// in `-2..2`, else the op is replaced by `tanh`).
///
/// ```
/// use dendrite_autodiff::strategies::random_dag;
/// use dendrite_graph::Graph;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let dag = random_dag(2..=10).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// let mut g = Graph::<f64>::new();
/// let (inputs, output) = dag.build(&mut g).map_err(|e| e.to_string())?;
/// assert_eq!(inputs.len(), dag.inputs.len());
/// assert_eq!(g.shape(output).map_err(|e| e.to_string())?.rank(), 0);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RandomDag {
    /// The shapes of the inputs, named `x0`, `x1`, ...
    pub inputs: Vec<Vec<usize>>,
    /// The ops, in order.
    pub ops: Vec<DagOp>,
}

impl RandomDag {
    /// The name of input `i` (`x{i}`).
    ///
    /// ```
    /// assert_eq!(dendrite_autodiff::strategies::RandomDag::input_name(1), "x1");
    /// ```
    pub fn input_name(i: usize) -> String {
        format!("x{i}")
    }

    /// Adds the DAG to `g`: its inputs (named by [`RandomDag::input_name`]) and its ops.
    /// Returns the input nodes and the output (the last value).
    ///
    /// # Errors
    /// A [`GraphError`] if an op's operands do not fit (impossible for DAGs from
    /// [`random_dag`]).
    pub fn build<F: Element>(&self, g: &mut Graph<F>) -> Result<(Vec<NodeId>, NodeId), GraphError> {
        let values = self.build_values(g)?;
        let inputs = values[..self.inputs.len()].to_vec();
        let output = values
            .last()
            .copied()
            .ok_or_else(|| GraphError::InvalidShape {
                op: "random_dag",
                node: "output".to_owned(),
                reason: "a DAG needs at least one input".to_owned(),
                shape: Shape::scalar(),
            })?;
        Ok((inputs, output))
    }
}

impl RandomDag {
    /// Adds the inputs and the ops to `g`; returns every value, inputs first.
    fn build_values<F: Element>(&self, g: &mut Graph<F>) -> Result<Vec<NodeId>, GraphError> {
        let mut values = Vec::with_capacity(self.inputs.len() + self.ops.len());
        for (i, s) in self.inputs.iter().enumerate() {
            values.push(g.input(&Self::input_name(i), s.as_slice())?);
        }
        for op in &self.ops {
            let node = apply(g, op, &values)?;
            values.push(node);
        }
        Ok(values)
    }
}

/// Adds one op to `g`, its operands read from `values`.
fn apply<F: Element>(
    g: &mut Graph<F>,
    op: &DagOp,
    values: &[NodeId],
) -> Result<NodeId, GraphError> {
    let v = |i: usize| values[i];
    match *op {
        DagOp::Unary(u, a) => {
            let x = guard(g, u, v(a))?;
            g.unary(u, x)
        }
        DagOp::Pow(a, n) => g.powi(v(a), n),
        DagOp::Binary(b, lhs, rhs) => binary(g, b, v(lhs), v(rhs)),
        DagOp::Select(c, a, b) => {
            let cond = g.compare(c, v(a), v(b))?;
            g.select(cond, v(a), v(b))
        }
        DagOp::Reduce(r, a, axis) => g.reduce(r, v(a), &[axis], true),
        DagOp::CumSum { arg, axis, reverse } => g.cumsum(v(arg), axis, reverse),
        DagOp::Mean { arg, axis } => g.mean(v(arg), &[axis], true),
        DagOp::Permute(a, ref perm) => g.permute(v(a), perm),
        DagOp::Reshape(a, ref s) => g.reshape(v(a), s.as_slice()),
        DagOp::ExpandDims(a, axis) => g.expand_dims(v(a), &[axis]),
        DagOp::BroadcastTo(a, ref s) => g.broadcast_to(v(a), s.as_slice()),
        DagOp::BroadcastLike(a, axis) => {
            let reduced = g.sum_keep_dims(v(a), &[axis])?;
            g.broadcast_like(reduced, v(a))
        }
        DagOp::SumLike(a, axis) => {
            let reduced = g.sum_keep_dims(v(a), &[axis])?;
            g.sum_like(v(a), reduced)
        }
        DagOp::MatMul {
            lhs,
            rhs,
            transpose_lhs,
            transpose_rhs,
        } => g.matmul_t(v(lhs), v(rhs), transpose_lhs, transpose_rhs),
        DagOp::Slice {
            arg,
            axis,
            start,
            end,
        } => g.slice(v(arg), axis, start, end),
        DagOp::Pad {
            arg,
            axis,
            before,
            after,
        } => g.pad(v(arg), axis, before, after),
        DagOp::Concat(a, b, axis) => g.concat(&[v(a), v(b)], axis),
        DagOp::Gather(a, axis, ref idx) => {
            let idx = index_constant(g, idx);
            g.gather(v(a), idx, axis)
        }
        DagOp::ScatterAdd(a, axis, ref idx) => {
            let idx = index_constant(g, idx);
            let picked = g.gather(v(a), idx, axis)?;
            g.scatter_add(picked, idx, v(a), axis)
        }
        DagOp::Softmax { arg, axis } => g.softmax(v(arg), axis),
        DagOp::LogSoftmax { arg, axis } => g.log_softmax(v(arg), axis),
        DagOp::LogSumExp { arg, axis } => g.logsumexp(v(arg), &[axis], true),
        DagOp::SumAll(a) => g.sum_all(v(a)),
        DagOp::Image { kind, arg, other } => image(g, kind, v(arg), v(other)),
    }
}

/// The [`DagOp::Image`] op.
fn image<F: Element>(
    g: &mut Graph<F>,
    kind: usize,
    arg: NodeId,
    other: NodeId,
) -> Result<NodeId, GraphError> {
    use dendrite_graph::ops::{Conv2d, Padding, Pool2d};
    let shape: Vec<usize> = g.shape(arg)?.concrete().unwrap_or_default().to_vec();
    let n: usize = shape.iter().product();
    let kw = n.min(2);
    let x = g.reshape(arg, &[1, 1, n, 1][..])?;
    // The first `len` elements of `other`, flattened.
    let front = |g: &mut Graph<F>, len: usize| -> Result<NodeId, GraphError> {
        let m: usize = g
            .shape(other)?
            .concrete()
            .unwrap_or_default()
            .iter()
            .product();
        let flat = g.reshape(other, &[m][..])?;
        g.slice(flat, 0, 0, len)
    };
    let kernel = |g: &mut Graph<F>| -> Result<NodeId, GraphError> {
        let cut = front(g, kw)?;
        g.reshape(cut, &[1, kw, 1, 1][..])
    };
    let conv = Conv2d {
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let pool = Pool2d {
        strides: [1, 1],
        padding: Padding::Same,
        ..Pool2d::new([1, 2])
    };
    let y = match kind % 9 {
        0 => {
            let w = kernel(g)?;
            g.conv2d(x, w, conv)?
        }
        1 => {
            let w = kernel(g)?;
            g.conv2d_input_grad(x, w, conv, [1, n])?
        }
        2 => {
            return g
                .conv2d_kernel_grad(x, x, conv, [1, kw])
                .and_then(|k| g.reshape(k, &[kw][..]))
        }
        3 => g.max_pool2d(x, pool)?,
        4 => {
            let r = router(g, n)?;
            g.max_pool2d_scatter(r, x, pool)?
        }
        5 => {
            let r = router(g, n)?;
            g.max_pool2d_gather(r, x, pool)?
        }
        6 => g.avg_pool2d(x, pool)?,
        7 => g.avg_pool2d_grad(x, pool, [1, n])?,
        _ => {
            let (w, b) = (kernel(g)?, front(g, 1)?);
            g.conv2d_bias(x, w, b, conv)?
        }
    };
    g.reshape(y, shape.as_slice())
}

/// The image that picks the maxima for `max_pool2d_scatter` and `max_pool2d_gather`: a
/// constant with distinct values (`37·i mod 1009`, so the winner moves around the windows).
/// Routing by a value of the DAG would make the op jump where two candidates swap order, and
/// values that are equal up to rounding are common there (the cumulative sum of a softmax ends
/// in ones): a finite difference across such a jump is ~jump/ε, not a derivative. Nothing
/// flows into the router anyway (its derivative is zero wherever it exists).
fn router<F: Element>(g: &mut Graph<F>, n: usize) -> Result<NodeId, GraphError> {
    let values = (0..n).map(|i| F::of(((i * 37) % 1009) as f64));
    let flat = g.constant(ndarray::Array1::from_iter(values).into_dyn());
    g.reshape(flat, &[1, 1, n, 1][..])
}

/// Maps `x` into the domain of `op`, away from poles and kinks: finite differences need a
/// smooth neighbourhood.
fn guard<F: Element>(g: &mut Graph<F>, op: UnaryOp, x: NodeId) -> Result<NodeId, GraphError> {
    use UnaryOp::*;
    match op {
        Neg | Exp | Tanh | Erf | Sin | Cos | Expm1 | Sigmoid | Softplus => Ok(x),
        // x² + 1 ≥ 1: away from the pole of log and the infinite slope of sqrt at 0.
        Log | Sqrt => one_plus_square(g, x),
        // x² ≥ 0 > -1.
        Log1p => g.square(x),
        // tanh x - 2 ∈ (-3, -1): a negative input, so |·| flips its sign, away from the kink.
        Abs => {
            let t = g.tanh(x)?;
            let two = g.scalar(2.0);
            g.sub(t, two)
        }
    }
}

/// `a ∘ b` with the operands guarded where the op needs it.
fn binary<F: Element>(
    g: &mut Graph<F>,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
) -> Result<NodeId, GraphError> {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Maximum | BinaryOp::Minimum => {
            g.binary(op, a, b)
        }
        BinaryOp::Div => {
            let d = one_plus_square(g, b)?;
            g.div(a, d)
        }
        BinaryOp::Power => {
            let base = one_plus_square(g, a)?;
            let exponent = g.tanh(b)?;
            g.power(base, exponent)
        }
    }
}

fn one_plus_square<F: Element>(g: &mut Graph<F>, x: NodeId) -> Result<NodeId, GraphError> {
    let s = g.square(x)?;
    let one = g.scalar(1.0);
    g.add(s, one)
}

fn index_constant<F: Element>(g: &mut Graph<F>, idx: &[usize]) -> NodeId {
    g.constant(ndarray::Array1::from_iter(idx.iter().map(|&i| F::of(i as f64))).into_dyn())
}

/// Random DAGs with `ops` ops drawn (2-30 is typical), plus the final sums that tie dangling
/// values into the scalar output. Inputs have rank 0-3 and dimensions 1-4.
///
/// ```
/// use dendrite_autodiff::strategies::random_dag;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let dag = random_dag(2..=30).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
/// assert!((1..=3).contains(&dag.inputs.len()) && dag.ops.len() >= 2);
/// # Ok::<(), String>(())
/// ```
pub fn random_dag(ops: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = RandomDag> {
    let input = vec(prop_oneof![1 => Just(1usize), 2 => 1usize..=4], 0..=3);
    (vec(input, 1..=3), vec(any::<(u8, u16, u16, u16)>(), ops))
        .prop_map(|(inputs, raw)| choose::resolve(inputs, &raw))
}

/// A random DAG together with input values in `-2..2`, in input order.
///
/// ```
/// use dendrite_autodiff::strategies::dag_with_values;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let tree = dag_with_values(2..=5).new_tree(&mut runner);
/// let (dag, values) = tree.map_err(|e| e.to_string())?.current();
/// assert_eq!(dag.inputs.len(), values.len());
/// # Ok::<(), String>(())
/// ```
pub fn dag_with_values(
    ops: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = (RandomDag, Vec<ArrayD<f64>>)> {
    random_dag(ops).prop_flat_map(|dag| {
        let values: Vec<_> = dag.inputs.iter().map(|s| tensor(s.clone())).collect();
        (Just(dag), values)
    })
}
