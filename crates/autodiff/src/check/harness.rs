//! The function under test: its feeds, where each `wrt` value lives while it is perturbed,
//! and the original values to restore.

use crate::error::{AutodiffError, Result};
use dendrite_graph::{Graph, GraphError, NodeId, Op, Plan, Shape};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

/// Where a `wrt` node's value lives while it is perturbed.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A copy of the feed at this position of `Harness::owned`.
    Feed(usize),
    /// A parameter, perturbed in the graph.
    Param(NodeId),
}

/// The function under test: feeds (with private copies of the perturbed ones), where each
/// `wrt` value lives, and the original values to restore.
pub(super) struct Harness<'a, 'f> {
    feeds: &'a [(&'a str, ArrayViewD<'f, f64>)],
    /// (position in `feeds`, working copy).
    owned: Vec<(usize, ArrayD<f64>)>,
    slots: Vec<Slot>,
    pub(super) originals: Vec<ArrayD<f64>>,
    pub(super) names: Vec<String>,
}

impl<'a, 'f> Harness<'a, 'f> {
    pub(super) fn new(
        g: &Graph<f64>,
        wrt: &[NodeId],
        feeds: &'a [(&'a str, ArrayViewD<'f, f64>)],
    ) -> Result<Self> {
        let mut h = Harness {
            feeds,
            owned: Vec::new(),
            slots: Vec::with_capacity(wrt.len()),
            originals: Vec::with_capacity(wrt.len()),
            names: Vec::with_capacity(wrt.len()),
        };
        for &w in wrt {
            let node = g.node(w)?;
            let name = node.name().to_owned();
            let (slot, value) = match node.op() {
                Op::Parameter => (
                    Slot::Param(w),
                    g.value(w)?.as_standard_layout().into_owned(),
                ),
                Op::Input => {
                    let Some(pos) = feeds.iter().position(|(n, _)| *n == name) else {
                        return Err(GraphError::MissingFeed {
                            input: name,
                            expected: node.shape().clone(),
                        }
                        .into());
                    };
                    let k = match h.owned.iter().position(|(p, _)| *p == pos) {
                        Some(k) => k,
                        None => {
                            let copy = feeds[pos].1.as_standard_layout().into_owned();
                            h.owned.push((pos, copy));
                            h.owned.len() - 1
                        }
                    };
                    (Slot::Feed(k), h.owned[k].1.clone())
                }
                op => {
                    return Err(AutodiffError::NotPerturbable {
                        node: name,
                        op: op.name(),
                    })
                }
            };
            h.slots.push(slot);
            h.originals.push(value);
            h.names.push(name);
        }
        Ok(h)
    }

    /// The feeds with perturbed copies substituted, then `extra`.
    pub(super) fn feed_list<'s>(
        &'s self,
        extra: &[(&'s str, ArrayViewD<'s, f64>)],
    ) -> Vec<(&'s str, ArrayViewD<'s, f64>)> {
        let mut list: Vec<(&str, ArrayViewD<'_, f64>)> = self
            .feeds
            .iter()
            .enumerate()
            .map(
                |(i, (name, value))| match self.owned.iter().find(|(p, _)| *p == i) {
                    Some((_, copy)) => (*name, copy.view()),
                    None => (*name, value.view()),
                },
            )
            .collect();
        list.extend(extra.iter().map(|(n, v)| (*n, v.clone())));
        list
    }

    /// Runs `edit` on the live value of `wrt` node `k`.
    pub(super) fn edit<R>(
        &mut self,
        g: &mut Graph<f64>,
        k: usize,
        edit: impl FnOnce(ArrayViewMutD<'_, f64>) -> R,
    ) -> Result<R> {
        Ok(match self.slots[k] {
            Slot::Feed(o) => edit(self.owned[o].1.view_mut()),
            Slot::Param(id) => edit(g.parameter_mut(id)?),
        })
    }

    pub(super) fn restore(&mut self, g: &mut Graph<f64>) -> Result<()> {
        for (slot, original) in self.slots.iter().zip(&self.originals) {
            match *slot {
                Slot::Feed(o) => self.owned[o].1.assign(original),
                Slot::Param(id) => g.parameter_mut(id)?.assign(original),
            }
        }
        Ok(())
    }

    /// `⟨c, f(x)⟩` at the current (perturbed) values.
    pub(super) fn contract(
        &self,
        g: &Graph<f64>,
        plan: &mut Plan<f64>,
        c: &ArrayD<f64>,
    ) -> Result<f64> {
        let out = plan.run(g, &self.feed_list(&[]))?;
        let y = out.get(0)?;
        if y.shape() != c.shape() {
            return Err(GraphError::ValueShape {
                node: "check/cotangent".to_owned(),
                expected: Shape::fixed(y.shape()),
                actual: Shape::fixed(c.shape()),
            }
            .into());
        }
        Ok(y.iter().zip(c.iter()).map(|(a, b)| a * b).sum())
    }

    /// The VJP with cotangent `c`, at the unperturbed values.
    pub(super) fn analytic(
        &self,
        g: &Graph<f64>,
        plan: &mut Plan<f64>,
        ct_name: &str,
        c: &ArrayD<f64>,
    ) -> Result<Vec<ArrayD<f64>>> {
        let feeds = self.feed_list(&[(ct_name, c.view())]);
        Ok(plan.run(g, &feeds)?.to_vec()?)
    }
}
