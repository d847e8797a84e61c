//! Updating the parameters after a training step's gradients: clipping, the optimizer's
//! in-place update with its backup, and undoing a step that made a value non-finite.

use super::Network;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::optim::{all_finite, Optimizer};

/// Copies the fetched gradients into the clipping buffers (allocated at compile time) and
/// clips them there as the optimizer's [`Clipping`](crate::Clipping) says.
pub(super) fn clip_gradients<F: Float>(
    net: &Network<F>,
    clipping: crate::optim::Clipping,
    clipped: &mut [Vec<F>],
    out: &dendrite_graph::Outputs<'_, F>,
    grads_at: usize,
) -> Result<()> {
    for (k, clipped) in clipped.iter_mut().enumerate() {
        let fetched = out.get(grads_at + k)?;
        let grad = fetched
            .as_slice()
            .filter(|g| g.len() == clipped.len())
            .ok_or_else(|| non_contiguous(&net.graph, net.params[k]))?;
        clipped.copy_from_slice(grad);
    }
    clipping.apply(clipped);
    Ok(())
}

/// Updates parameter `k` from its gradient: saves it and its optimizer state in the backup,
/// lets the optimizer update both, scans the results. A non-finite value undoes the step for
/// parameters `0..=k` (values and state) and is returned as [`NnError::NonFiniteParameter`]
/// (the caller fills in epoch and step).
pub(super) fn update_parameter<F: Float>(
    net: &mut Network<F>,
    optimizer: &mut dyn Optimizer<F>,
    backup: &mut [Vec<F>],
    k: usize,
    grad: &[F],
) -> Result<()> {
    let p = net.params[k];
    let mut param = net.graph.parameter_mut(p)?;
    let Some(w) = param.as_slice_mut() else {
        drop(param);
        return Err(non_contiguous(&net.graph, p));
    };
    save_step(optimizer, backup, k, w)?;
    optimizer.update(k, w, grad)?;
    let Some(found) = first_non_finite(optimizer, k, w) else {
        return Ok(());
    };
    drop(param);
    undo_step(net, optimizer, backup, k)?;
    Err(NnError::NonFiniteParameter {
        name: net.graph.name(p)?.to_owned(),
        in_optimizer_state: found.in_state,
        epoch: 0,
        step: 0,
        value: found.value,
    })
}

/// A non-finite value found after an update, and whether it is in the optimizer's state.
struct NonFinite {
    value: f64,
    in_state: bool,
}

/// The first value of `w`, then of the optimizer's state for parameter `k`, that is not finite.
fn first_non_finite<F: Float>(
    optimizer: &mut dyn Optimizer<F>,
    k: usize,
    w: &[F],
) -> Option<NonFinite> {
    let first = |values: &[F]| {
        values
            .iter()
            .map(|v| v.as_f64())
            .find(|v| !v.is_finite())
            .unwrap_or(f64::NAN)
    };
    if !all_finite(w) {
        return Some(NonFinite {
            value: first(w),
            in_state: false,
        });
    }
    let mut found = None;
    optimizer.visit_state(k, &mut |state| {
        if found.is_none() && !all_finite(state) {
            found = Some(NonFinite {
                value: first(state),
                in_state: true,
            });
        }
    });
    found
}

/// Copies parameter `k`'s values `w`, then its optimizer state, into its backup (sized at
/// compile time for both).
fn save_step<F: Float>(
    optimizer: &mut dyn Optimizer<F>,
    backup: &mut [Vec<F>],
    k: usize,
    w: &[F],
) -> Result<()> {
    let mut needed = w.len();
    optimizer.visit_state(k, &mut |state| needed = needed.saturating_add(state.len()));
    let actual = backup.get(k).map_or(0, Vec::len);
    let saved = backup.get_mut(k).filter(|_| actual == needed);
    let saved = saved.ok_or(NnError::OptimizerState {
        index: k,
        expected: needed,
        actual,
    })?;
    let (values, mut rest) = saved.split_at_mut(w.len());
    values.copy_from_slice(w);
    optimizer.visit_state(k, &mut |state| {
        // `needed` counted these lengths, so each split fits; `min` keeps that a fact.
        let taken = std::mem::take(&mut rest);
        let (head, tail) = taken.split_at_mut(state.len().min(taken.len()));
        for (b, &v) in head.iter_mut().zip(state.iter()) {
            *b = v;
        }
        rest = tail;
    });
    Ok(())
}

/// Puts parameters `0..=last` and their optimizer state back to what they were before this
/// step.
fn undo_step<F: Float>(
    net: &mut Network<F>,
    optimizer: &mut dyn Optimizer<F>,
    backup: &[Vec<F>],
    last: usize,
) -> Result<()> {
    for (k, (&p, saved)) in net.params.iter().zip(backup).enumerate().take(last + 1) {
        let mut param = net.graph.parameter_mut(p)?;
        let n = param.len();
        let (values, mut rest) = saved.split_at(n.min(saved.len()));
        for (w, &v) in param.iter_mut().zip(values) {
            *w = v;
        }
        optimizer.visit_state(k, &mut |state| {
            let (head, tail) = rest.split_at(state.len().min(rest.len()));
            for (s, &v) in state.iter_mut().zip(head) {
                *s = v;
            }
            rest = tail;
        });
    }
    Ok(())
}

pub(super) fn non_contiguous<F: Float>(
    g: &dendrite_graph::Graph<F>,
    p: dendrite_graph::NodeId,
) -> NnError {
    NnError::NonContiguous {
        name: g.name(p).map(str::to_owned).unwrap_or_default(),
    }
}
