//! Running a compiled plan: binding feeds to inputs, then one step loop shared by
//! [`Plan::run`] and [`Plan::profile`].

use super::{Buffer, Plan, Source, Step};
use crate::error::{GraphError, Result};
use crate::ops::Op;
use crate::shape::{ConcreteShape, Dim, Shape};
use crate::team::Team;
use crate::{Element, Graph};
use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice};
use petgraph::graph::NodeIndex;
use smallvec::SmallVec;
use std::time::{Duration, Instant};

/// The feeds of one run, by input slot.
pub(super) type Fed<'a, F> = SmallVec<[Option<ArrayViewD<'a, F>>; 4]>;

impl<F: Element> Plan<F> {
    /// Refuses a graph other than the plan's, and picks up renames made since compiling.
    pub(super) fn check_graph(&mut self, graph: &Graph<F>) -> Result<()> {
        if graph.id() != self.graph {
            return Err(GraphError::PlanGraphMismatch {
                plan_graph: self.graph,
                graph: graph.id(),
            });
        }
        if graph.name_generation() != self.names_seen {
            self.follow_renames(graph)?;
        }
        Ok(())
    }

    /// Re-reads the names of inputs and steps from the graph, after [`Graph::rename`].
    fn follow_renames(&mut self, graph: &Graph<F>) -> Result<()> {
        for slot in &mut self.inputs {
            slot.name = graph
                .name(graph.handle(NodeIndex::new(slot.node)))?
                .to_owned();
        }
        self.input_index = self
            .inputs
            .iter()
            .enumerate()
            .map(|(k, slot)| (slot.name.clone(), k))
            .collect();
        for step in &mut self.steps {
            step.name = graph
                .name(graph.handle(NodeIndex::new(step.node)))?
                .to_owned();
        }
        self.names_seen = graph.name_generation();
        Ok(())
    }

    /// Matches every feed to its input: known name, given once, accepted shape, finite when
    /// asked; then checks that every needed input was fed.
    pub(super) fn bind_feeds<'a>(&self, feeds: &[(&str, ArrayViewD<'a, F>)]) -> Result<Fed<'a, F>> {
        let mut fed: Fed<'a, F> = SmallVec::from_elem(None, self.inputs.len());
        for (name, value) in feeds {
            let Some(&k) = self.input_index.get(*name) else {
                return Err(GraphError::UnknownFeed {
                    name: (*name).to_owned(),
                });
            };
            let slot = &self.inputs[k];
            if fed[k].is_some() {
                return Err(GraphError::DuplicateFeed {
                    input: slot.name.clone(),
                });
            }
            if !slot.shape.accepts(value.shape()) {
                return Err(GraphError::FeedShape {
                    input: slot.name.clone(),
                    expected: slot.shape.clone(),
                    actual: Shape::fixed(value.shape()),
                });
            }
            if self.check_finite {
                check_finite_feed(&slot.name, value)?;
            }
            fed[k] = Some(value.clone());
        }
        for (slot, value) in self.inputs.iter().zip(&fed) {
            if slot.needed && value.is_none() {
                return Err(GraphError::MissingFeed {
                    input: slot.name.clone(),
                    expected: slot.shape.clone(),
                });
            }
        }
        Ok(fed)
    }

    /// Runs every step once. With `timings`, adds each step's wall time to its entry and
    /// records the shape it produced.
    pub(super) fn execute(
        &mut self,
        graph: &Graph<F>,
        fed: &[Option<ArrayViewD<'_, F>>],
        mut timings: Option<&mut [(Duration, ConcreteShape)]>,
    ) -> Result<()> {
        for (k, step) in self.steps.iter_mut().enumerate() {
            let start = timings.is_some().then(Instant::now);
            let mut data = std::mem::take(&mut self.buffers[step.out].data);
            let result = run_step(step, graph, fed, &self.buffers, &mut data, self.team);
            let buffer = &mut self.buffers[step.out];
            buffer.data = data;
            buffer.shape = result?;
            if let (Some(timings), Some(start)) = (timings.as_deref_mut(), start) {
                timings[k].0 += start.elapsed();
                timings[k].1.clone_from(&buffer.shape);
            }
        }
        Ok(())
    }
}

fn check_finite_feed<F: Element>(input: &str, value: &ArrayViewD<'_, F>) -> Result<()> {
    match value.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, bad)) => Err(GraphError::NonFiniteFeed {
            input: input.to_owned(),
            index,
            value: bad.as_f64(),
        }),
        None => Ok(()),
    }
}

/// Runs one step into `data`, returning the output's concrete shape.
fn run_step<F: Element>(
    step: &mut Step<F>,
    graph: &Graph<F>,
    fed: &[Option<ArrayViewD<'_, F>>],
    buffers: &[Buffer<F>],
    data: &mut Vec<F>,
    team: Team,
) -> Result<ConcreteShape> {
    // Four: a fused step reads four operands (`plan/fuse.rs`), and a step must not allocate.
    let mut views: SmallVec<[ArrayViewD<'_, F>; 4]> = SmallVec::new();
    for src in &step.operands {
        views.push(match *src {
            Source::Feed(k) => {
                fed[k]
                    .as_ref()
                    .map(|v| v.view())
                    .ok_or_else(|| GraphError::Internal {
                        op: step.op.name(),
                        node: step.name.clone(),
                        what: "an operand's feed was not checked before the run",
                    })?
            }
            Source::Stored(i) => graph.value(graph.handle(NodeIndex::new(i)))?,
            Source::Buffer(b) => buffers[b].view()?,
        });
    }
    let shapes: SmallVec<[&[usize]; 4]> = views.iter().map(|v| v.shape()).collect();
    let out_shape = output_shape(step, &shapes)?;
    let n = crate::limits::check_size::<F>(step.op.name(), &step.name, &out_shape)?;
    // Grow only: a slot shared by values of different sizes keeps its largest length, so
    // switching between them costs no fill. Every kernel overwrites all of its output.
    crate::limits::grow_to(data, n, step.op.name(), &step.name, &out_shape)?;
    if let Some(fused) = &step.fused {
        let out = ArrayViewMutD::from_shape(IxDyn(&out_shape), &mut data[..n]).map_err(|_| {
            GraphError::Internal {
                op: fused.name(),
                node: step.name.clone(),
                what: "output buffer does not fit its shape",
            }
        })?;
        fused.forward(&step.name, &views, out, &mut step.scratch, team)?;
        return Ok(out_shape);
    }
    if team.workers() > 1 && n >= SPLIT_AT && step.op.splits_by_rows() {
        split_by_rows(step, &views, &out_shape, &mut data[..n], team)
            .map_err(|e| name_error(e, &step.name))?;
        return Ok(out_shape);
    }
    let out = ArrayViewMutD::from_shape(IxDyn(&out_shape), &mut data[..n]).map_err(|_| {
        GraphError::Internal {
            op: step.op.name(),
            node: step.name.clone(),
            what: "output buffer does not fit its shape",
        }
    })?;
    step.op
        .forward(&step.name, &views, out, &mut step.scratch, team)
        .map_err(|e| name_error(e, &step.name))?;
    Ok(out_shape)
}

/// Output elements from which a step of [`Op::splits_by_rows`] is split between threads:
/// below it, waking a helper costs more than the memory pass it would share.
const SPLIT_AT: usize = 1 << 17;

/// Runs a step of [`Op::splits_by_rows`] as one block of output rows per worker: each block
/// reads the same rows of the operands that have them, and the whole of the others.
fn split_by_rows<F: Element>(
    step: &Step<F>,
    views: &[ArrayViewD<'_, F>],
    out_shape: &[usize],
    out: &mut [F],
    team: Team,
) -> Result<()> {
    let rows = out_shape[0].max(1);
    let row_len = out.len() / rows;
    let per_task = rows.div_ceil(team.workers());
    let failed: std::sync::Mutex<Option<GraphError>> = std::sync::Mutex::new(None);
    team.for_chunks(
        out,
        per_task * row_len,
        &mut [(); 0],
        0,
        &|task, block, _| {
            let first = task * per_task;
            let count = block.len() / row_len.max(1);
            let result = run_rows(step, views, out_shape, block, first..first + count);
            if let Err(e) = result {
                let mut slot = failed.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(e);
            }
        },
    );
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One block of [`split_by_rows`]: output rows `rows`, written into `block`.
fn run_rows<F: Element>(
    step: &Step<F>,
    views: &[ArrayViewD<'_, F>],
    out_shape: &[usize],
    block: &mut [F],
    rows: std::ops::Range<usize>,
) -> Result<()> {
    let all_rows = out_shape[0];
    let mut shape = ConcreteShape::from_slice(out_shape);
    shape[0] = rows.len();
    let operands: SmallVec<[ArrayViewD<'_, F>; 3]> = views
        .iter()
        .map(
            |v| match v.ndim() == out_shape.len() && v.shape()[0] == all_rows {
                true => v.slice_axis(Axis(0), Slice::from(rows.clone())),
                false => v.view(),
            },
        )
        .collect();
    let out =
        ArrayViewMutD::from_shape(IxDyn(&shape), block).map_err(|_| GraphError::Internal {
            op: step.op.name(),
            node: step.name.clone(),
            what: "a row block does not fit its shape",
        })?;
    let mut no_scratch = Vec::new();
    step.op
        .forward(&step.name, &operands, out, &mut no_scratch, Team::ONE)
}

/// The step's output shape for these operand shapes: from the cache when the shapes are those
/// of the last run (an unchanged batch size), else from the shape rule.
fn output_shape<F: Element>(step: &mut Step<F>, shapes: &[&[usize]]) -> Result<ConcreteShape> {
    if let Some((inputs, out)) = &step.cached
        && inputs
            .iter()
            .map(|s| s.as_slice())
            .eq(shapes.iter().copied())
    {
        return Ok(out.clone());
    }
    let out_shape = match &step.fused {
        Some(fused) => fused.infer_concrete(&step.name, shapes)?,
        None => step.op.infer_concrete(&step.name, shapes)?,
    };
    if !step.declared.is_empty() {
        check_no_dynamic_stretch(step, shapes, &out_shape)?;
    }
    step.cached = Some((
        shapes
            .iter()
            .map(|s| ConcreteShape::from_slice(s))
            .collect(),
        out_shape.clone(),
    ));
    Ok(out_shape)
}

/// A dimension declared dynamic must not be stretched from 1 by broadcasting: the reverse
/// sweep decides at build time which axes to sum, and a silent stretch would make it wrong.
fn check_no_dynamic_stretch<F: Element>(
    step: &Step<F>,
    shapes: &[&[usize]],
    out: &[usize],
) -> Result<()> {
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
        GraphError::Internal { op, node, what } if node.is_empty() => GraphError::Internal {
            op,
            node: name.to_owned(),
            what,
        },
        other => other,
    }
}
