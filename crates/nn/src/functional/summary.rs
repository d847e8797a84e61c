//! [`FunctionalSummary`]: Keras' table of a Functional model, with its "Connected to" column.

use super::block::Block;
use super::Step;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::model::summary::{write_table, TableRow};
use std::fmt;

/// One step of a [`FunctionalSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalRow {
    /// `input_1`, the layer's name, or `add_1`.
    pub name: String,
    /// `InputLayer`, the layer's type, or the merge (`Add`).
    pub kind: String,
    /// The output shape without the batch dimension.
    pub output_shape: Vec<usize>,
    /// Values this step adds (trainable and not; 0 for a shared layer's later calls).
    pub params: usize,
    /// The steps it reads.
    pub connected_to: Vec<String>,
}

/// A Functional model's summary; `Display` prints Keras' table with its "Connected to"
/// column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalSummary {
    rows: Vec<FunctionalRow>,
    trainable: usize,
    non_trainable: usize,
}

impl FunctionalSummary {
    pub(super) fn of<F: Float>(block: &Block<F>) -> Result<Self> {
        let mut rows = Vec::new();
        let (mut trainable, mut non_trainable) = (0usize, 0usize);
        let mut seen = vec![false; block.layers.len()];
        for (i, node) in block
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| block.needed[i])
        {
            let (kind, params, reads) = match &node.step {
                Step::Input => ("InputLayer".to_owned(), 0, Vec::new()),
                Step::Merge { merge, inputs } => (capitalized(merge.name()), 0, inputs.clone()),
                Step::Call { layer, input } => {
                    let (name, l) = &block.layers[*layer];
                    let shape = &block.nodes[*input].shape;
                    let overflow = || NnError::ParamCountOverflow {
                        layer: name.clone(),
                        kind: l.kind(),
                        input: shape.clone(),
                    };
                    let first = !std::mem::replace(&mut seen[*layer], true);
                    let (t, n) = match first {
                        true => (
                            l.param_count(shape).ok_or_else(overflow)?,
                            l.non_trainable_count(shape).ok_or_else(overflow)?,
                        ),
                        false => (0, 0),
                    };
                    trainable = trainable.checked_add(t).ok_or_else(overflow)?;
                    non_trainable = non_trainable.checked_add(n).ok_or_else(overflow)?;
                    trainable.checked_add(non_trainable).ok_or_else(overflow)?;
                    (l.kind().to_owned(), t + n, vec![*input])
                }
            };
            rows.push(FunctionalRow {
                name: block.name_of(i),
                kind,
                output_shape: node.shape.clone(),
                params,
                connected_to: reads.iter().map(|&j| block.name_of(j)).collect(),
            });
        }
        Ok(FunctionalSummary {
            rows,
            trainable,
            non_trainable,
        })
    }

    /// The rows, one per step the output needs.
    pub fn rows(&self) -> &[FunctionalRow] {
        &self.rows
    }

    /// Total values, trainable and not.
    pub fn total_params(&self) -> usize {
        self.trainable + self.non_trainable
    }

    /// Values trained by gradients.
    pub fn trainable_params(&self) -> usize {
        self.trainable
    }

    /// Values no gradient updates.
    pub fn non_trainable_params(&self) -> usize {
        self.non_trainable
    }
}

fn capitalized(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl fmt::Display for FunctionalSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<TableRow> = self
            .rows
            .iter()
            .map(|r| TableRow {
                label: format!("{} ({})", r.name, r.kind),
                output_shape: &r.output_shape,
                params: r.params,
                connected_to: Some(r.connected_to.join(", ")),
            })
            .collect();
        write_table(f, "functional", &rows, (self.trainable, self.non_trainable))
    }
}
