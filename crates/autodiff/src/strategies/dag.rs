//! Random DAGs composed from the primitives, for end-to-end gradient checks.

use super::tensor;
use dendrite_graph::{broadcast_shapes, Element, Graph, GraphError, NodeId, Shape};
use ndarray::ArrayD;
use proptest::collection::vec;
use proptest::prelude::*;

/// One op of a [`RandomDag`]. Operands are value indices: the inputs first, then the result of
/// each op in order. Each op is a domain-safe composition: finite differences stay well
/// conditioned whatever the values.
#[derive(Debug, Clone, PartialEq)]
pub enum DagOp {
    /// `tanh x`
    Tanh(usize),
    /// `sigmoid x`
    Sigmoid(usize),
    /// `softplus x`
    Softplus(usize),
    /// `exp(tanh x)`
    ExpTanh(usize),
    /// `log(x² + 1)`
    LogOnePlusSquare(usize),
    /// `sqrt(x² + 1)`
    SqrtOnePlusSquare(usize),
    /// `x · x`
    Square(usize),
    /// `x^n` for an integer `n`
    Powi(usize, i32),
    /// `-x`
    Neg(usize),
    /// `a + b`, broadcasting
    Add(usize, usize),
    /// `a - b`, broadcasting
    Sub(usize, usize),
    /// `a · b`, broadcasting
    Mul(usize, usize),
    /// `a / (b² + 1)`, broadcasting
    DivOnePlusSquare(usize, usize),
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
    /// Sum over one axis, kept as size 1.
    Sum {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Mean over one axis, kept as size 1.
    Mean {
        /// Operand.
        arg: usize,
        /// The axis.
        axis: usize,
    },
    /// Swap the last two axes.
    Transpose(usize),
    /// The same elements in another shape.
    Reshape(usize, Vec<usize>),
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
    /// Sum of every element, as a scalar.
    SumAll(usize),
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
        let mut values = Vec::with_capacity(self.inputs.len() + self.ops.len());
        for (i, s) in self.inputs.iter().enumerate() {
            values.push(g.input(&Self::input_name(i), s.as_slice())?);
        }
        let inputs = values.clone();
        for op in &self.ops {
            let v = |i: usize| values[i];
            let node = match *op {
                DagOp::Tanh(a) => g.tanh(v(a))?,
                DagOp::Sigmoid(a) => g.sigmoid(v(a))?,
                DagOp::Softplus(a) => g.softplus(v(a))?,
                DagOp::ExpTanh(a) => {
                    let t = g.tanh(v(a))?;
                    g.exp(t)?
                }
                DagOp::LogOnePlusSquare(a) => {
                    let s = one_plus_square(g, v(a))?;
                    g.log(s)?
                }
                DagOp::SqrtOnePlusSquare(a) => {
                    let s = one_plus_square(g, v(a))?;
                    g.sqrt(s)?
                }
                DagOp::Square(a) => g.square(v(a))?,
                DagOp::Powi(a, n) => g.powi(v(a), n)?,
                DagOp::Neg(a) => g.neg(v(a))?,
                DagOp::Add(a, b) => g.add(v(a), v(b))?,
                DagOp::Sub(a, b) => g.sub(v(a), v(b))?,
                DagOp::Mul(a, b) => g.mul(v(a), v(b))?,
                DagOp::DivOnePlusSquare(a, b) => {
                    let d = one_plus_square(g, v(b))?;
                    g.div(v(a), d)?
                }
                DagOp::MatMul {
                    lhs,
                    rhs,
                    transpose_lhs,
                    transpose_rhs,
                } => g.matmul_t(v(lhs), v(rhs), transpose_lhs, transpose_rhs)?,
                DagOp::Sum { arg, axis } => g.sum_keep_dims(v(arg), &[axis])?,
                DagOp::Mean { arg, axis } => g.mean(v(arg), &[axis], true)?,
                DagOp::Transpose(a) => g.transpose(v(a))?,
                DagOp::Reshape(a, ref s) => g.reshape(v(a), s.as_slice())?,
                DagOp::Softmax { arg, axis } => g.softmax(v(arg), axis)?,
                DagOp::LogSoftmax { arg, axis } => g.log_softmax(v(arg), axis)?,
                DagOp::SumAll(a) => g.sum_all(v(a))?,
            };
            values.push(node);
        }
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

fn one_plus_square<F: Element>(g: &mut Graph<F>, x: NodeId) -> Result<NodeId, GraphError> {
    let s = g.square(x)?;
    let one = g.scalar(1.0);
    g.add(s, one)
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
        .prop_map(|(inputs, raw)| resolve(inputs, &raw))
}

/// A random DAG together with input values in `-2..2`, in input order.
///
/// ```
/// use dendrite_autodiff::strategies::dag_with_values;
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let (dag, values) = dag_with_values(2..=5).new_tree(&mut runner).map_err(|e| e.to_string())?.current();
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

/// Largest magnitude a value may reach before an op is replaced by `tanh`.
const BOUND: f64 = 50.0;
/// Largest number of elements a value may have.
const MAX_SIZE: usize = 256;

/// Turns raw random choices into a valid, bounded DAG, tracking each value's shape and a bound
/// on its magnitude.
fn resolve(inputs: Vec<Vec<usize>>, raw: &[(u8, u16, u16, u16)]) -> RandomDag {
    let mut vals: Vec<(Vec<usize>, f64)> = inputs.iter().map(|s| (s.clone(), 2.0)).collect();
    let mut used = vec![false; vals.len()];
    let mut ops = Vec::new();
    for &(kind, ra, rb, param) in raw {
        let n = vals.len();
        // Prefer the newest value, so that chains get deep.
        let pick = |r: u16| {
            if r % 3 == 0 {
                n - 1
            } else {
                usize::from(r / 3) % n
            }
        };
        let (a, b) = (pick(ra), pick(rb));
        let (sa, ba) = vals[a].clone();
        let (sb, bb) = vals[b].clone();
        let p = usize::from(param);
        let rank = sa.len();
        let candidate: Option<(DagOp, Vec<usize>, f64)> = match kind % 18 {
            0 => Some((DagOp::Tanh(a), sa.clone(), 1.0)),
            1 => Some((DagOp::Sigmoid(a), sa.clone(), 1.0)),
            2 => Some((DagOp::Softplus(a), sa.clone(), ba + 1.0)),
            3 => Some((DagOp::ExpTanh(a), sa.clone(), std::f64::consts::E)),
            4 => Some((DagOp::LogOnePlusSquare(a), sa.clone(), (ba * ba + 1.0).ln())),
            5 => Some((
                DagOp::SqrtOnePlusSquare(a),
                sa.clone(),
                (ba * ba + 1.0).sqrt(),
            )),
            6 => Some((DagOp::Square(a), sa.clone(), ba * ba)),
            7 => {
                let e = 2 + (p % 2) as i32;
                Some((DagOp::Powi(a, e), sa.clone(), ba.powi(e)))
            }
            8 => Some((DagOp::Neg(a), sa.clone(), ba)),
            9..=12 => {
                let make = |a, b| match kind % 18 {
                    9 => DagOp::Add(a, b),
                    10 => DagOp::Sub(a, b),
                    11 => DagOp::Mul(a, b),
                    _ => DagOp::DivOnePlusSquare(a, b),
                };
                let bound = |x: f64, y: f64| match kind % 18 {
                    9 | 10 => x + y,
                    11 => x * y,
                    _ => x,
                };
                match broadcast_shapes(&Shape::fixed(&sa), &Shape::fixed(&sb)) {
                    Some(s) => s
                        .concrete()
                        .map(|s| (make(a, b), s.to_vec(), bound(ba, bb))),
                    None => {
                        // Broadcast `a` against a reduced copy of itself instead.
                        let axis = p % rank.max(1);
                        let mut reduced = sa.clone();
                        reduced[axis] = 1;
                        push(
                            &mut ops,
                            &mut vals,
                            &mut used,
                            DagOp::Mean { arg: a, axis },
                            reduced,
                            ba,
                        );
                        let m = vals.len() - 1;
                        Some((make(a, m), sa.clone(), bound(ba, ba)))
                    }
                }
            }
            13 => matmul(a, &sa, ba, b, &sb, bb, p),
            14 if rank >= 1 => {
                let axis = p % rank;
                let mut s = sa.clone();
                s[axis] = 1;
                if p & 4 == 0 {
                    Some((DagOp::Sum { arg: a, axis }, s, ba * sa[axis] as f64))
                } else {
                    Some((DagOp::Mean { arg: a, axis }, s, ba))
                }
            }
            15 if rank >= 2 => {
                let mut s = sa.clone();
                s.swap(rank - 2, rank - 1);
                Some((DagOp::Transpose(a), s, ba))
            }
            16 => {
                let size: usize = sa.iter().product();
                let s = match p % 3 {
                    0 => vec![size],
                    1 => sa.iter().rev().copied().collect(),
                    _ if rank < 4 => sa.iter().copied().chain([1]).collect(),
                    _ => vec![size],
                };
                Some((DagOp::Reshape(a, s.clone()), s, ba))
            }
            17 if rank >= 1 => {
                let axis = p % rank;
                if p & 8 == 0 {
                    Some((DagOp::Softmax { arg: a, axis }, sa.clone(), 1.0))
                } else {
                    let lse = 2.0 * ba + (sa[axis] as f64).ln();
                    Some((DagOp::LogSoftmax { arg: a, axis }, sa.clone(), lse))
                }
            }
            _ => None,
        };
        let (op, shape, bound) = match candidate {
            Some((op, shape, bound))
                if bound <= BOUND && shape.iter().product::<usize>() <= MAX_SIZE =>
            {
                (op, shape, bound)
            }
            _ => (DagOp::Tanh(a), sa, 1.0),
        };
        push(&mut ops, &mut vals, &mut used, op, shape, bound);
    }
    // Tie every unused value into one scalar output.
    let mut total: Option<usize> = None;
    for i in 0..vals.len() {
        if used[i] {
            continue;
        }
        let term = if vals[i].0.is_empty() {
            i
        } else {
            push(
                &mut ops,
                &mut vals,
                &mut used,
                DagOp::SumAll(i),
                Vec::new(),
                0.0,
            );
            vals.len() - 1
        };
        total = Some(match total {
            Some(t) => {
                push(
                    &mut ops,
                    &mut vals,
                    &mut used,
                    DagOp::Add(t, term),
                    Vec::new(),
                    0.0,
                );
                vals.len() - 1
            }
            None => term,
        });
    }
    RandomDag { inputs, ops }
}

/// Appends `op` (with its result's shape and bound) and marks its operands used.
fn push(
    ops: &mut Vec<DagOp>,
    vals: &mut Vec<(Vec<usize>, f64)>,
    used: &mut Vec<bool>,
    op: DagOp,
    shape: Vec<usize>,
    bound: f64,
) {
    for i in operands(&op) {
        used[i] = true;
    }
    ops.push(op);
    vals.push((shape, bound));
    used.push(false);
}

/// A matrix product of `a` and `b` if their shapes allow one with the flags in `p`, else
/// `a · aᵀ` (or `aᵀ · a`), which always does for rank ≥ 2.
fn matmul(
    a: usize,
    sa: &[usize],
    ba: f64,
    b: usize,
    sb: &[usize],
    bb: f64,
    p: usize,
) -> Option<(DagOp, Vec<usize>, f64)> {
    if sa.len() < 2 {
        return None;
    }
    let (tl, tr) = (p & 1 == 1, p & 2 == 2);
    let last2 = |s: &[usize], t: bool| {
        let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
        if t {
            (c, r)
        } else {
            (r, c)
        }
    };
    if sb.len() >= 2 {
        let ((m, k1), (k2, n)) = (last2(sa, tl), last2(sb, tr));
        let batch = broadcast_shapes(
            &Shape::fixed(&sa[..sa.len() - 2]),
            &Shape::fixed(&sb[..sb.len() - 2]),
        );
        if let (true, Some(batch)) = (k1 == k2, batch.and_then(|s| s.concrete())) {
            let shape: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
            let op = DagOp::MatMul {
                lhs: a,
                rhs: b,
                transpose_lhs: tl,
                transpose_rhs: tr,
            };
            return Some((op, shape, k1 as f64 * ba * bb));
        }
    }
    let (m, k) = last2(sa, tl);
    let shape: Vec<usize> = sa[..sa.len() - 2].iter().copied().chain([m, m]).collect();
    let op = DagOp::MatMul {
        lhs: a,
        rhs: a,
        transpose_lhs: tl,
        transpose_rhs: !tl,
    };
    Some((op, shape, k as f64 * ba * ba))
}

/// The value indices an op reads.
fn operands(op: &DagOp) -> Vec<usize> {
    match *op {
        DagOp::Tanh(a)
        | DagOp::Sigmoid(a)
        | DagOp::Softplus(a)
        | DagOp::ExpTanh(a)
        | DagOp::LogOnePlusSquare(a)
        | DagOp::SqrtOnePlusSquare(a)
        | DagOp::Square(a)
        | DagOp::Powi(a, _)
        | DagOp::Neg(a)
        | DagOp::Transpose(a)
        | DagOp::Reshape(a, _)
        | DagOp::SumAll(a)
        | DagOp::Sum { arg: a, .. }
        | DagOp::Mean { arg: a, .. }
        | DagOp::Softmax { arg: a, .. }
        | DagOp::LogSoftmax { arg: a, .. } => vec![a],
        DagOp::Add(a, b) | DagOp::Sub(a, b) | DagOp::Mul(a, b) | DagOp::DivOnePlusSquare(a, b) => {
            vec![a, b]
        }
        DagOp::MatMul { lhs, rhs, .. } => vec![lhs, rhs],
    }
}
