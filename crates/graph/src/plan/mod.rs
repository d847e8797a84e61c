//! Compiling a graph into an execution plan, and running it.
//!
//! [`compile`] keeps only the nodes the fetches depend on, orders them topologically and gives
//! every intermediate value a buffer slot, reusing a slot once the last reader of its value has
//! run. The graph is append-only and an operand always exists before its user, so ascending
//! node index *is* a topological order: collecting the needed nodes with an explicit stack and
//! sorting them is an iterative O(V log V + E), safe for chains of any length. One fusion runs
//! between ordering and slots: a one-channel 3×3 convolution that only a 2×2 max pool and its
//! gradient read is computed inside them, with the same bits (`plan/fuse.rs`).
//!
//! [`Plan::run`] validates the feeds, then executes the steps. Buffers keep their capacity
//! across runs, so after the first run with the largest batch nothing is allocated; fetched
//! values are returned as views into the plan's buffers ([`Outputs`]).

mod compile;
mod execute;
mod fuse;

pub use compile::compile;

use crate::error::{GraphError, Result};
use crate::ops::Op;
use crate::shape::{ConcreteShape, Shape};
use crate::{Element, Graph};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use smallvec::SmallVec;
use std::collections::HashMap;

/// Where a step reads an operand from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The feed of the plan's input number `k`.
    Feed(usize),
    /// A parameter's or constant's value, read from the graph at run time.
    Stored(usize),
    /// A buffer slot of the plan.
    Buffer(usize),
}

#[derive(Debug, Clone)]
struct Step<F: Element> {
    /// The node this step computes (or copies, for a fetched leaf).
    node: usize,
    name: String,
    op: Op<F>,
    /// Set where the step computes its node together with operands the plan skips (see
    /// `plan/fuse.rs`): then its operands are the fused kernel's, and `op` names the node's.
    fused: Option<crate::ops::conv::PooledConv>,
    operands: SmallVec<[Source; 3]>,
    /// Declared operand shapes, kept only for broadcasting ops (see [`Op::broadcasts_operands`])
    /// and matmul (whose batch axes broadcast).
    declared: SmallVec<[Shape; 3]>,
    out: usize,
    /// Operand shapes of the last run and the output shape they gave: with an unchanged batch
    /// size the shape rule need not run again.
    cached: Option<(SmallVec<[ConcreteShape; 4]>, ConcreteShape)>,
    /// Working space of the step's kernel (see `Op::forward`), grown on demand and kept.
    scratch: Vec<F>,
}

#[derive(Debug, Clone)]
struct InputSlot {
    /// The input's node index, to follow renames.
    node: usize,
    name: String,
    shape: Shape,
    needed: bool,
}

#[derive(Debug, Clone)]
struct Buffer<F> {
    data: Vec<F>,
    shape: ConcreteShape,
}

impl<F> Default for Buffer<F> {
    fn default() -> Self {
        Buffer {
            data: Vec::new(),
            shape: ConcreteShape::new(),
        }
    }
}

impl<F: Element> Buffer<F> {
    fn view(&self) -> Result<ArrayViewD<'_, F>> {
        let n: usize = self.shape.iter().product();
        ArrayViewD::from_shape(IxDyn(&self.shape), &self.data[..n]).map_err(|_| {
            GraphError::Internal {
                op: "plan",
                node: String::new(),
                what: "a buffer disagrees with its shape",
            }
        })
    }
}

/// A compiled, reusable execution plan for some fetched nodes of a graph.
///
/// Plans own their buffers and no reference to the graph, so they are `Send`: a model and its
/// plan can move to another thread together.
///
/// ```
/// use dendrite_graph::{compile, Graph};
/// use ndarray::arr1;
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [3])?;
/// let y = g.exp(x)?;
/// let z = g.sum_all(y)?;
/// let mut plan = compile(&g, &[z])?;
/// let x_value = arr1(&[0.0_f32, 0.0, 0.0]).into_dyn();
/// let out = plan.run(&g, &[("x", x_value.view())])?;
/// assert_eq!(out.scalar(0)?, 3.0);
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Plan<F: Element> {
    graph: u32,
    /// The graph's name generation the names below were read at (see [`Graph::rename`]).
    names_seen: u64,
    inputs: Vec<InputSlot>,
    /// Input name to slot: one hash lookup per feed.
    input_index: HashMap<String, usize>,
    steps: Vec<Step<F>>,
    buffers: Vec<Buffer<F>>,
    fetches: Vec<usize>,
    check_finite: bool,
    /// Threads the large kernels may use (see [`Plan::set_threads`]).
    team: crate::team::Team,
}

impl<F: Element> Plan<F> {
    /// Number of kernel steps the plan runs.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// # let y = g.exp(x)?;
    /// assert_eq!(compile(&g, &[y])?.step_count(), 1);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Number of buffer slots; less than [`Plan::step_count`] when buffers are reused.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// let mut g = Graph::<f32>::new();
    /// let mut x = g.input("x", [2])?;
    /// for _ in 0..10 { x = g.exp(x)?; }
    /// assert_eq!(compile(&g, &[x])?.buffer_count(), 2);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn buffer_count(&self) -> usize {
        self.buffers.len()
    }

    /// Total capacity, in elements, currently held by the plan's buffers (values and the
    /// kernels' scratch space).
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// # let y = g.exp(x)?;
    /// let plan = compile(&g, &[y])?;
    /// assert_eq!(plan.buffer_capacity(), 0); // nothing allocated before the first run
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn buffer_capacity(&self) -> usize {
        let values: usize = self.buffers.iter().map(|b| b.data.capacity()).sum();
        values
            + self
                .steps
                .iter()
                .map(|s| s.scratch.capacity())
                .sum::<usize>()
    }

    /// Makes [`Plan::run`] reject feeds holding NaN or an infinity
    /// ([`GraphError::NonFiniteFeed`]). Off by default: the scan costs a pass over each feed.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [1])?;
    /// # let y = g.exp(x)?;
    /// let mut plan = compile(&g, &[y])?.check_finite_feeds(true);
    /// let bad = ndarray::arr1(&[f32::NAN]).into_dyn();
    /// assert!(plan.run(&g, &[("x", bad.view())]).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn check_finite_feeds(mut self, on: bool) -> Self {
        self.check_finite = on;
        self
    }

    /// Lets the large kernels use up to `threads` threads (1 by default; at most
    /// [`MAX_THREADS`](crate::MAX_THREADS), and at most the machine's cores): the
    /// convolutions split their products by groups of images, and elementwise and pooling
    /// steps of at least 2¹⁷ elements split along the batch. The helpers are one pool per
    /// process, started at the first run that uses them and parked between runs; a run that
    /// finds them busy (another plan running on another thread) works alone.
    ///
    /// Only where the work runs changes: every split is into tasks whose results depend on
    /// the task alone (the kernel gradient of a convolution sums a fixed number of partial
    /// sums in a fixed order), so the fetched values are bit-identical at any thread count.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [4])?;
    /// # let y = g.exp(x)?;
    /// let mut plan = compile(&g, &[y])?;
    /// plan.set_threads(2);
    /// assert_eq!(plan.threads(), 2);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn set_threads(&mut self, threads: usize) {
        self.team = crate::team::Team::new(threads);
    }

    /// The threads asked for with [`Plan::set_threads`] (clamped to 1..=[`MAX_THREADS`](crate::MAX_THREADS)).
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [4])?;
    /// # let y = g.exp(x)?;
    /// assert_eq!(compile(&g, &[y])?.threads(), 1);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Runs the plan with `feeds` (input name, value) and returns views of the fetched values.
    ///
    /// Parameters and constants are read from `graph`, which must be the graph the plan was
    /// compiled from (it may have grown since).
    ///
    /// # Errors
    /// [`GraphError::PlanGraphMismatch`], [`GraphError::UnknownFeed`],
    /// [`GraphError::DuplicateFeed`], [`GraphError::MissingFeed`], [`GraphError::FeedShape`],
    /// [`GraphError::NonFiniteFeed`], any shape or index error a node meets with the run-time
    /// sizes, and [`GraphError::TensorTooLarge`] for a value over the per-tensor limit.
    ///
    /// Feeds are matched to inputs by name in constant time each. Names are those the graph
    /// has *now*: after [`Graph::rename`] of an input, the plan takes the new name.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph, GraphError};
    /// # let mut g = Graph::<f32>::new();
    /// # let x = g.input("x", [None, Some(2)])?;
    /// # let y = g.neg(x)?;
    /// let mut plan = compile(&g, &[y])?;
    /// let wrong = ndarray::Array2::<f32>::zeros((4, 3)).into_dyn();
    /// let err = plan.run(&g, &[("x", wrong.view())]).unwrap_err();
    /// assert_eq!(err.to_string(), "feed for input `x` has shape [4, 3], expected [?, 2]");
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn run<'p>(
        &'p mut self,
        graph: &Graph<F>,
        feeds: &[(&str, ArrayViewD<'_, F>)],
    ) -> Result<Outputs<'p, F>> {
        self.check_graph(graph)?;
        let fed = self.bind_feeds(feeds)?;
        self.execute(graph, &fed, None)?;
        Ok(Outputs { plan: self })
    }
}

/// Time spent in one step of a plan, from [`Plan::profile`].
///
/// ```
/// # use dendrite_graph::{compile, Graph};
/// # let mut g = Graph::<f32>::new();
/// # let x = g.input("x", [2])?;
/// # let y = g.exp(x)?;
/// let mut plan = compile(&g, &[y])?;
/// let v = ndarray::arr1(&[1.0_f32, 2.0]).into_dyn();
/// let steps = plan.profile(&g, &[("x", v.view())], 3)?;
/// assert_eq!(steps[0].op, "exp");
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StepProfile {
    /// The node's name.
    pub node: String,
    /// The op's name.
    pub op: &'static str,
    /// The output's concrete shape in the last run.
    pub shape: ConcreteShape,
    /// Mean wall time per run.
    pub mean: std::time::Duration,
}

impl<F: Element> Plan<F> {
    /// Runs the plan `runs` times (after one warm-up run) and reports the mean time of each
    /// step, in plan order: where a run's time goes.
    ///
    /// # Errors
    /// As [`Plan::run`].
    pub fn profile(
        &mut self,
        graph: &Graph<F>,
        feeds: &[(&str, ArrayViewD<'_, F>)],
        runs: usize,
    ) -> Result<Vec<StepProfile>> {
        self.run(graph, feeds)?;
        let fed = self.bind_feeds(feeds)?;
        let mut per_step =
            vec![(std::time::Duration::ZERO, ConcreteShape::new()); self.steps.len()];
        for _ in 0..runs {
            self.execute(graph, &fed, Some(&mut per_step))?;
        }
        let runs = runs.max(1) as u32;
        Ok(self
            .steps
            .iter()
            .zip(per_step)
            .map(|(step, (total, shape))| StepProfile {
                node: step.name.clone(),
                op: step.fused.as_ref().map_or(step.op.name(), |f| f.name()),
                shape,
                mean: total / runs,
            })
            .collect())
    }
}

/// The fetched values of one run, borrowed from the plan's buffers.
///
/// ```
/// # use dendrite_graph::{compile, Graph};
/// # let mut g = Graph::<f32>::new();
/// # let x = g.input("x", [2])?;
/// # let y = g.neg(x)?;
/// # let mut plan = compile(&g, &[y, x])?;
/// # let v = ndarray::arr1(&[1.0_f32, 2.0]).into_dyn();
/// let out = plan.run(&g, &[("x", v.view())])?;
/// assert_eq!(out.len(), 2);
/// let owned: Vec<ndarray::ArrayD<f32>> = out.to_vec()?;
/// assert_eq!(owned[0][[1]], -2.0);
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug)]
pub struct Outputs<'p, F: Element> {
    plan: &'p Plan<F>,
}

impl<'p, F: Element> Outputs<'p, F> {
    /// Number of fetched values.
    pub fn len(&self) -> usize {
        self.plan.fetches.len()
    }

    /// Whether nothing was fetched.
    pub fn is_empty(&self) -> bool {
        self.plan.fetches.is_empty()
    }

    /// The `i`-th fetched value, in the order given to [`compile`].
    ///
    /// # Errors
    /// [`GraphError::NoSuchFetch`] when `i` is not below [`Outputs::len`].
    pub fn get(&self, i: usize) -> Result<ArrayViewD<'p, F>> {
        let plan: &'p Plan<F> = self.plan;
        match plan.fetches.get(i) {
            Some(&slot) => plan.buffers[slot].view(),
            None => Err(GraphError::NoSuchFetch {
                index: i,
                fetches: plan.fetches.len(),
            }),
        }
    }

    /// The `i`-th fetched value as a scalar (its first element).
    ///
    /// # Errors
    /// [`GraphError::NoSuchFetch`] when `i` is out of range, [`GraphError::InvalidShape`] when
    /// the value is empty.
    pub fn scalar(&self, i: usize) -> Result<F> {
        let v = self.get(i)?;
        v.iter()
            .next()
            .copied()
            .ok_or_else(|| GraphError::InvalidShape {
                op: "fetch",
                node: format!("fetch #{i}"),
                reason: "an empty value has no scalar".into(),
                shape: Shape::fixed(v.shape()),
            })
    }

    /// Copies every fetched value out.
    ///
    /// # Errors
    /// Only on internal inconsistency.
    pub fn to_vec(&self) -> Result<Vec<ArrayD<F>>> {
        (0..self.len())
            .map(|i| self.get(i).map(|v| v.to_owned()))
            .collect()
    }
}
