//! How far a random DAG's point is from its kinks: where `select`, `maximum`, `minimum`, a
//! max or min reduction or a max pool changes its mind.
//!
//! Finite differences see a kink within `ε·|∂v/∂x|` of the point as a wrong slope, and the
//! DAGs make near-ties more often than chance would: values equal up to rounding come out of
//! invariants (a softmax's cumulative sum ends in ones, a `broadcast_like` repeats a value),
//! so two candidates of a comparison can sit 10⁻¹⁶ apart and move differently. A check that
//! rejects points closer than a margin to a kink tests the derivative rules where they are
//! derivatives, and only there.
//!
//! A tie that holds exactly at the point *and* at a nudged point is structural (a value
//! compared with a copy of itself): both candidates move together, the function is smooth
//! there, and the tie rule is what is being tested, so such ties do not count.

use super::{DagOp, RandomDag};
use dendrite_graph::{broadcast_shapes, compile, BinaryOp, Graph, GraphError, ReduceOp, Shape};
use ndarray::{ArrayD, ArrayViewD, Axis};

impl RandomDag {
    /// The smallest gap, at input `values` (in input order), between the two values that
    /// decide an op with a kink: the operands of `select`'s comparison, of `maximum` and
    /// `minimum`, the two largest or two smallest elements of a max or min reduction's lanes,
    /// the two elements of a max pool's windows. Ties that are exact both at `values` and at
    /// a nudged point are structural (a value against a copy of itself) and do not count.
    /// Infinite when nothing counts.
    ///
    /// ```
    /// use dendrite_autodiff::strategies::{DagOp, RandomDag};
    /// use dendrite_graph::BinaryOp;
    /// let dag = RandomDag {
    ///     inputs: vec![vec![2], vec![2]],
    ///     ops: vec![DagOp::Binary(BinaryOp::Maximum, 0, 1), DagOp::SumAll(2)],
    /// };
    /// let x0 = ndarray::arr1(&[1.0, -1.0]).into_dyn();
    /// let x1 = ndarray::arr1(&[0.5, -0.999]).into_dyn();
    /// let gap = dag.kink_distance(&[x0, x1]).map_err(|e| e.to_string())?;
    /// assert!((gap - 1e-3).abs() < 1e-12);
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    /// A [`GraphError`] if the DAG cannot be built or run with `values`.
    pub fn kink_distance(&self, values: &[ArrayD<f64>]) -> Result<f64, GraphError> {
        let here = self.evaluate(values)?;
        let there = self.evaluate(&nudged(values))?;
        let mut smallest = f64::INFINITY;
        for op in &self.ops {
            let pairs = decision_gaps(op, &here)
                .into_iter()
                .zip(decision_gaps(op, &there));
            for (gap, nudged_gap) in pairs {
                let structural = gap == 0.0 && nudged_gap == 0.0;
                if !structural {
                    smallest = smallest.min(gap);
                }
            }
        }
        Ok(smallest)
    }

    /// Every value of the DAG (inputs first) at input `values`.
    fn evaluate(&self, values: &[ArrayD<f64>]) -> Result<Vec<ArrayD<f64>>, GraphError> {
        let mut g = Graph::<f64>::new();
        let nodes = self.build_values(&mut g)?;
        let names: Vec<String> = (0..self.inputs.len()).map(Self::input_name).collect();
        let feeds: Vec<(&str, ArrayViewD<'_, f64>)> = names
            .iter()
            .zip(values)
            .map(|(n, v)| (n.as_str(), v.view()))
            .collect();
        let mut plan = compile(&g, &nodes)?;
        let out = plan.run(&g, &feeds)?;
        (0..nodes.len())
            .map(|i| Ok(out.get(i)?.to_owned()))
            .collect()
    }
}

/// `values` moved by up to 10⁻³ per element along a fixed irregular direction (the
/// fractional parts of multiples of the golden ratio), enough to split any tie that is not
/// structural.
fn nudged(values: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    let mut k = 0.0_f64;
    values
        .iter()
        .map(|v| {
            v.mapv(|x| {
                k += 1.0;
                x + 1e-3 * ((k * 0.618_033_988_749_895).fract() - 0.5)
            })
        })
        .collect()
}

/// The gaps of one op's decisions, in a fixed order (empty for ops without a kink).
fn decision_gaps(op: &DagOp, v: &[ArrayD<f64>]) -> Vec<f64> {
    match *op {
        DagOp::Select(_, a, b) | DagOp::Binary(BinaryOp::Maximum | BinaryOp::Minimum, a, b)
            if a != b =>
        {
            pair_gaps(&v[a], &v[b])
        }
        DagOp::Reduce(ReduceOp::Max | ReduceOp::Min, a, axis) => lane_gaps(&v[a], axis),
        // The max pool of `DagOp::Image`: windows of two neighbours of the flattened value.
        DagOp::Image { kind: 3, arg, .. } => {
            let flat: Vec<f64> = v[arg].iter().copied().collect();
            flat.windows(2).map(|w| (w[0] - w[1]).abs()).collect()
        }
        _ => Vec::new(),
    }
}

/// `|a - b|` over the broadcast pair (empty if they do not broadcast, which the DAG's shape
/// rules exclude).
fn pair_gaps(a: &ArrayD<f64>, b: &ArrayD<f64>) -> Vec<f64> {
    let shape = broadcast_shapes(&Shape::fixed(a.shape()), &Shape::fixed(b.shape()))
        .and_then(|s| s.concrete());
    let pair = shape.and_then(|s| Some((a.broadcast(s.as_slice())?, b.broadcast(s.as_slice())?)));
    match pair {
        Some((a, b)) => a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).collect(),
        None => Vec::new(),
    }
}

/// Per lane along `axis`, the gap between the two largest or the two smallest elements,
/// whichever is smaller (one gap serves max and min reductions alike).
fn lane_gaps(x: &ArrayD<f64>, axis: usize) -> Vec<f64> {
    if axis >= x.ndim() {
        return Vec::new();
    }
    x.lanes(Axis(axis))
        .into_iter()
        .map(|lane| {
            let mut sorted: Vec<f64> = lane.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            if n < 2 {
                return f64::INFINITY;
            }
            (sorted[1] - sorted[0]).min(sorted[n - 1] - sorted[n - 2])
        })
        .collect()
}
