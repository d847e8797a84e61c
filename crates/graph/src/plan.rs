//! Compiling a graph into an execution plan, and running it.
//!
//! [`compile`] keeps only the nodes the fetches depend on, orders them topologically and gives
//! every intermediate value a buffer slot, reusing a slot once the last reader of its value has
//! run. The graph is append-only and an operand always exists before its user, so ascending
//! node index *is* a topological order: collecting the needed nodes with an explicit stack and
//! sorting them is an iterative O(V log V + E), safe for chains of any length.
//!
//! [`Plan::run`] validates the feeds, then executes the steps. Buffers keep their capacity
//! across runs, so after the first run with the largest batch nothing is allocated; fetched
//! values are returned as views into the plan's buffers ([`Outputs`]).

use crate::error::{GraphError, Result};
use crate::ops::Op;
use crate::shape::{ConcreteShape, Dim, Shape};
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use petgraph::graph::NodeIndex;
use smallvec::SmallVec;

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
struct Step {
    name: String,
    op: Op,
    operands: SmallVec<[Source; 3]>,
    /// Declared operand shapes, kept only for broadcasting ops (see [`Op::broadcasts_operands`])
    /// and matmul (whose batch axes broadcast).
    declared: SmallVec<[Shape; 3]>,
    out: usize,
    /// Operand shapes of the last run and the output shape they gave: with an unchanged batch
    /// size the shape rule need not run again.
    cached: Option<(SmallVec<[ConcreteShape; 3]>, ConcreteShape)>,
}

#[derive(Debug, Clone)]
struct InputSlot {
    name: String,
    shape: Shape,
    needed: bool,
}

#[derive(Debug, Clone, Default)]
struct Buffer<F> {
    data: Vec<F>,
    shape: ConcreteShape,
}

impl<F: Element> Buffer<F> {
    fn view(&self) -> Result<ArrayViewD<'_, F>> {
        let n: usize = self.shape.iter().product();
        ArrayViewD::from_shape(IxDyn(&self.shape), &self.data[..n]).map_err(|_| {
            GraphError::InvalidShape {
                op: "plan",
                node: String::new(),
                reason: "internal: a buffer disagrees with its shape".into(),
                shape: Shape::fixed(&self.shape),
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
    inputs: Vec<InputSlot>,
    steps: Vec<Step>,
    buffers: Vec<Buffer<F>>,
    fetches: Vec<usize>,
    check_finite: bool,
}

/// Compiles the part of `graph` that `fetches` depend on into a [`Plan`].
///
/// # Errors
/// [`GraphError::ForeignNode`] or [`GraphError::UnknownNode`] for a bad fetch handle.
///
/// # Complexity
/// O(V log V + E) over the needed nodes, iterative (no recursion).
///
/// ```
/// use dendrite_graph::{compile, Graph};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let unused = g.exp(x)?;
/// let y = g.neg(x)?;
/// let plan = compile(&g, &[y])?;
/// assert_eq!(plan.step_count(), 1); // `unused` is not part of the plan
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
pub fn compile<F: Element>(graph: &Graph<F>, fetches: &[NodeId]) -> Result<Plan<F>> {
    for &f in fetches {
        graph.check(f)?;
    }
    let dag = graph.dag();
    let n = graph.node_count();
    let mut needed = vec![false; n];
    let mut stack: Vec<usize> = fetches.iter().map(|f| f.index()).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        stack.extend(
            dag.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .map(|p| p.index()),
        );
    }

    let mut inputs = Vec::new();
    let mut input_of = vec![usize::MAX; n];
    for id in graph.inputs() {
        let node = graph.node(id)?;
        input_of[id.index()] = inputs.len();
        inputs.push(InputSlot {
            name: node.name().to_owned(),
            shape: node.shape().clone(),
            needed: needed[id.index()],
        });
    }

    // Where each needed node's value lives; computed nodes get a step.
    let mut source = vec![Source::Stored(usize::MAX); n];
    let mut steps: Vec<Step> = Vec::new();
    let mut step_of = vec![usize::MAX; n];
    for i in (0..n).filter(|&i| needed[i]) {
        let id = graph.handle(NodeIndex::new(i));
        let node = graph.node(id)?;
        source[i] = match node.op() {
            Op::Input => Source::Feed(input_of[i]),
            Op::Parameter | Op::Constant => Source::Stored(i),
            op => {
                let operands = graph.operands(id)?;
                // Matmul broadcasts its batch axes, so it is checked like elementwise ops.
                let declared = if op.broadcasts_operands() || matches!(op, Op::MatMul { .. }) {
                    operands
                        .iter()
                        .map(|&o| graph.shape(o).cloned())
                        .collect::<Result<_>>()?
                } else {
                    SmallVec::new()
                };
                step_of[i] = steps.len();
                steps.push(Step {
                    name: node.name().to_owned(),
                    op: op.clone(),
                    operands: operands.iter().map(|o| source[o.index()]).collect(),
                    declared,
                    out: usize::MAX,
                    cached: None,
                });
                Source::Buffer(i)
            }
        };
    }
    // A fetched leaf is copied into a buffer, so that outputs borrow only the plan.
    let mut fetch_nodes = Vec::with_capacity(fetches.len());
    for &f in fetches {
        let i = f.index();
        if step_of[i] == usize::MAX {
            step_of[i] = steps.len();
            steps.push(Step {
                name: graph.name(f)?.to_owned(),
                op: Op::StopGradient,
                operands: SmallVec::from_slice(&[source[i]]),
                declared: SmallVec::new(),
                out: usize::MAX,
                cached: None,
            });
        }
        fetch_nodes.push(i);
    }

    // Liveness: the last step reading each node's value; fetched values live forever.
    let mut last_use = vec![0usize; n];
    for (s, step) in steps.iter().enumerate() {
        for src in &step.operands {
            if let Source::Buffer(node) = *src {
                last_use[node] = s;
            }
        }
    }
    for &i in &fetch_nodes {
        last_use[i] = usize::MAX;
    }
    // Slot assignment: an output takes a free slot before this step's dead operands are freed,
    // so a kernel never reads and writes the same buffer.
    let mut slot_of = vec![usize::MAX; n];
    let mut free: Vec<usize> = Vec::new();
    let mut slots = 0;
    let node_of_step: Vec<usize> = {
        let mut v = vec![0; steps.len()];
        for (i, &s) in step_of.iter().enumerate() {
            if s != usize::MAX {
                v[s] = i;
            }
        }
        v
    };
    for (s, step) in steps.iter_mut().enumerate() {
        let out = free.pop().unwrap_or_else(|| {
            slots += 1;
            slots - 1
        });
        step.out = out;
        slot_of[node_of_step[s]] = out;
        for src in step.operands.iter_mut() {
            if let Source::Buffer(node) = *src {
                *src = Source::Buffer(slot_of[node]);
                if last_use[node] == s {
                    last_use[node] = usize::MAX - 1; // freed once even if read twice
                    free.push(slot_of[node]);
                }
            }
        }
    }
    Ok(Plan {
        graph: graph.id(),
        inputs,
        steps,
        buffers: vec![
            Buffer {
                data: Vec::new(),
                shape: ConcreteShape::new()
            };
            slots
        ],
        fetches: fetch_nodes.iter().map(|&i| slot_of[i]).collect(),
        check_finite: false,
    })
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

    /// Total capacity, in elements, currently held by the plan's buffers.
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
        self.buffers.iter().map(|b| b.data.capacity()).sum()
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

    /// Runs the plan with `feeds` (input name, value) and returns views of the fetched values.
    ///
    /// Parameters and constants are read from `graph`, which must be the graph the plan was
    /// compiled from (it may have grown since).
    ///
    /// # Errors
    /// [`GraphError::PlanGraphMismatch`], [`GraphError::UnknownFeed`],
    /// [`GraphError::MissingFeed`], [`GraphError::FeedShape`], [`GraphError::NonFiniteFeed`],
    /// and any shape or index error a node meets with the run-time sizes.
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
        if graph.id() != self.graph {
            return Err(GraphError::PlanGraphMismatch {
                plan_graph: self.graph,
                graph: graph.id(),
            });
        }
        let mut fed: SmallVec<[Option<ArrayViewD<'_, F>>; 4]> =
            SmallVec::from_elem(None, self.inputs.len());
        for (name, value) in feeds {
            let Some(k) = self.inputs.iter().position(|i| i.name == *name) else {
                return Err(GraphError::UnknownFeed {
                    name: (*name).to_owned(),
                });
            };
            let slot = &self.inputs[k];
            if !slot.shape.accepts(value.shape()) {
                return Err(GraphError::FeedShape {
                    input: slot.name.clone(),
                    expected: slot.shape.clone(),
                    actual: Shape::fixed(value.shape()),
                });
            }
            if self.check_finite {
                if let Some((index, bad)) = value.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(GraphError::NonFiniteFeed {
                        input: slot.name.clone(),
                        index,
                        value: bad.as_f64(),
                    });
                }
            }
            fed[k] = Some(value.view());
        }
        for (slot, value) in self.inputs.iter().zip(&fed) {
            if slot.needed && value.is_none() {
                return Err(GraphError::MissingFeed {
                    input: slot.name.clone(),
                    expected: slot.shape.clone(),
                });
            }
        }
        for step in &mut self.steps {
            let mut data = std::mem::take(&mut self.buffers[step.out].data);
            let result = run_step(step, graph, &fed, &self.buffers, &mut data);
            let buffer = &mut self.buffers[step.out];
            buffer.data = data;
            buffer.shape = result?;
        }
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
        let mut totals = vec![std::time::Duration::ZERO; self.steps.len()];
        let mut shapes = vec![ConcreteShape::new(); self.steps.len()];
        let inputs = self.inputs.clone();
        let fed: Vec<Option<ArrayViewD<'_, F>>> = inputs
            .iter()
            .map(|slot| {
                feeds
                    .iter()
                    .find(|(n, _)| *n == slot.name)
                    .map(|(_, v)| v.view())
            })
            .collect();
        for _ in 0..runs {
            for (k, step) in self.steps.iter_mut().enumerate() {
                let start = std::time::Instant::now();
                let mut data = std::mem::take(&mut self.buffers[step.out].data);
                let result = run_step(step, graph, &fed, &self.buffers, &mut data);
                let buffer = &mut self.buffers[step.out];
                buffer.data = data;
                buffer.shape = result?;
                totals[k] += start.elapsed();
                shapes[k].clone_from(&buffer.shape);
            }
        }
        let runs = runs.max(1) as u32;
        Ok(self
            .steps
            .iter()
            .zip(totals.into_iter().zip(shapes))
            .map(|(step, (total, shape))| StepProfile {
                node: step.name.clone(),
                op: step.op.name(),
                shape,
                mean: total / runs,
            })
            .collect())
    }
}

/// Runs one step into `data`, returning the output's concrete shape.
fn run_step<F: Element>(
    step: &mut Step,
    graph: &Graph<F>,
    fed: &[Option<ArrayViewD<'_, F>>],
    buffers: &[Buffer<F>],
    data: &mut Vec<F>,
) -> Result<ConcreteShape> {
    let mut views: SmallVec<[ArrayViewD<'_, F>; 3]> = SmallVec::new();
    for src in &step.operands {
        views.push(match *src {
            Source::Feed(k) => {
                fed[k]
                    .as_ref()
                    .map(|v| v.view())
                    .ok_or_else(|| GraphError::MissingFeed {
                        input: step.name.clone(),
                        expected: Shape::scalar(),
                    })?
            }
            Source::Stored(i) => graph.value(graph.handle(NodeIndex::new(i)))?,
            Source::Buffer(b) => buffers[b].view()?,
        });
    }
    let shapes: SmallVec<[&[usize]; 3]> = views.iter().map(|v| v.shape()).collect();
    let out_shape = match &step.cached {
        Some((inputs, out))
            if inputs
                .iter()
                .map(|s| s.as_slice())
                .eq(shapes.iter().copied()) =>
        {
            out.clone()
        }
        _ => {
            let out_shape = step.op.infer_concrete(&step.name, &shapes)?;
            if !step.declared.is_empty() {
                check_no_dynamic_stretch(step, &shapes, &out_shape)?;
            }
            step.cached = Some((
                shapes
                    .iter()
                    .map(|s| ConcreteShape::from_slice(s))
                    .collect(),
                out_shape.clone(),
            ));
            out_shape
        }
    };
    let n = crate::limits::check_size::<F>(step.op.name(), &step.name, &out_shape)?;
    // Grow only: a slot shared by values of different sizes keeps its largest length, so
    // switching between them costs no fill. Every kernel overwrites all of its output.
    crate::limits::grow_to(data, n, step.op.name(), &step.name, &out_shape)?;
    let out = ArrayViewMutD::from_shape(IxDyn(&out_shape), &mut data[..n]).map_err(|_| {
        GraphError::InvalidShape {
            op: step.op.name(),
            node: step.name.clone(),
            reason: "internal: output buffer does not fit its shape".into(),
            shape: Shape::fixed(&out_shape),
        }
    })?;
    step.op
        .forward(&step.name, &views, out)
        .map_err(|e| name_error(e, &step.name))?;
    Ok(out_shape)
}

/// A dimension declared dynamic must not be stretched from 1 by broadcasting: the reverse
/// sweep decides at build time which axes to sum, and a silent stretch would make it wrong.
fn check_no_dynamic_stretch(step: &Step, shapes: &[&[usize]], out: &[usize]) -> Result<()> {
    // Matmul broadcasts only its batch axes: leave out the two matrix axes of every shape.
    let matrix = if matches!(step.op, Op::MatMul { .. }) {
        2
    } else {
        0
    };
    let out_batch = &out[..out.len() - matrix];
    for (declared, &concrete) in step.declared.iter().zip(shapes) {
        let batch = &concrete[..concrete.len() - matrix];
        let pad = out_batch.len() - batch.len();
        for (i, (&d, &c)) in declared.dims().iter().zip(batch).enumerate() {
            if d == Dim::Dynamic && c != out_batch[pad + i] {
                return Err(GraphError::IncompatibleShapes {
                    op: step.op.name(),
                    node: step.name.clone(),
                    reason: "a dynamic dimension would be broadcast",
                    lhs: Shape::fixed(concrete),
                    rhs: Shape::fixed(out),
                });
            }
        }
    }
    Ok(())
}

/// Kernels report some errors without knowing the node; fill its name in.
fn name_error(err: GraphError, name: &str) -> GraphError {
    match err {
        GraphError::IncompatibleShapes {
            op,
            node,
            reason,
            lhs,
            rhs,
        } if node.is_empty() => GraphError::IncompatibleShapes {
            op,
            node: name.to_owned(),
            reason,
            lhs,
            rhs,
        },
        other => other,
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
    /// [`GraphError::UnknownNode`] when `i` is out of range.
    pub fn get(&self, i: usize) -> Result<ArrayViewD<'p, F>> {
        let plan: &'p Plan<F> = self.plan;
        match plan.fetches.get(i) {
            Some(&slot) => plan.buffers[slot].view(),
            None => Err(GraphError::UnknownNode {
                graph: plan.graph,
                index: i,
            }),
        }
    }

    /// The `i`-th fetched value as a scalar (its first element).
    ///
    /// # Errors
    /// [`GraphError::UnknownNode`] when `i` is out of range, [`GraphError::InvalidShape`] when
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
