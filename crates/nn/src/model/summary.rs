//! The Keras-like summary table.

use super::Sequential;
use crate::error::{NnError, Result};
use crate::float::Float;
use std::fmt;

/// One row of a [`Summary`]: a layer, its output shape and its parameter count.
///
/// ```
/// let mut model = dendrite_nn::Sequential::new();
/// model.add(dendrite_nn::Dense::new(3).input_dim(2));
/// let summary = model.summary()?;
/// let row = &summary.rows()[0];
/// assert_eq!((row.name.as_str(), row.kind, row.params), ("dense_1", "Dense", 9));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// The layer's name (`dense_1`).
    pub name: String,
    /// The layer's type (`Dense`).
    pub kind: &'static str,
    /// The output shape without the batch dimension.
    pub output_shape: Vec<usize>,
    /// Trainable values.
    pub params: usize,
    /// Non-trainable values (state such as batch normalization's moving statistics).
    pub non_trainable: usize,
}

/// A model's layers, output shapes and parameter counts; `Display` prints it as Keras does.
///
/// ```
/// use dendrite_nn::{Activation, Dense, Sequential};
/// let mut model = Sequential::new();
/// model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
/// model.add(Dense::new(10).activation(Activation::Softmax));
/// let summary = model.summary()?;
/// assert_eq!(summary.total_params(), 25_450);
/// let table = summary.to_string();
/// assert!(table.contains("dense_1 (Dense)"));
/// assert!(table.contains("(None, 32)"));
/// assert!(table.contains("Total params: 25,450"));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    name: String,
    rows: Vec<SummaryRow>,
    /// The rows' totals (trainable, non-trainable), computed with checked arithmetic when
    /// the summary is made.
    trainable: usize,
    non_trainable: usize,
}

impl Summary {
    /// The rows, one per layer.
    ///
    /// ```
    /// let mut model = dendrite_nn::Sequential::new();
    /// model.add(dendrite_nn::Dense::new(3).input_dim(2));
    /// assert_eq!(model.summary()?.rows().len(), 1);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn rows(&self) -> &[SummaryRow] {
        &self.rows
    }

    /// Total values, trainable and not (Keras' "Total params"; the sum cannot overflow,
    /// it is checked when the summary is made).
    ///
    /// ```
    /// let mut model = dendrite_nn::Sequential::new();
    /// model.add(dendrite_nn::Dense::new(3).input_dim(2));
    /// assert_eq!(model.summary()?.total_params(), 2 * 3 + 3);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn total_params(&self) -> usize {
        self.trainable + self.non_trainable
    }

    /// Values trained by gradients.
    ///
    /// ```
    /// let mut model = dendrite_nn::Sequential::new();
    /// model.add(dendrite_nn::Dense::new(3).input_dim(2));
    /// assert_eq!(model.summary()?.trainable_params(), 9);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn trainable_params(&self) -> usize {
        self.trainable
    }

    /// Values no gradient updates (layers' state).
    ///
    /// ```
    /// let mut model = dendrite_nn::Sequential::new();
    /// model.add(dendrite_nn::Dense::new(3).input_dim(2));
    /// assert_eq!(model.summary()?.non_trainable_params(), 0);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn non_trainable_params(&self) -> usize {
        self.non_trainable
    }
}

/// `25450` as `25,450`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    let mut left = digits.len();
    for c in digits.chars() {
        out.push(c);
        left -= 1;
        if left > 0 && left.rem_euclid(3) == 0 {
            out.push(',');
        }
    }
    out
}

fn shape(dims: &[usize]) -> String {
    let mut s = String::from("(None");
    for d in dims {
        s.push_str(&format!(", {d}"));
    }
    s.push(')');
    s
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<TableRow> = self
            .rows
            .iter()
            .map(|r| TableRow {
                label: format!("{} ({})", r.name, r.kind),
                output_shape: &r.output_shape,
                params: r.params + r.non_trainable,
                connected_to: None,
            })
            .collect();
        write_table(f, &self.name, &rows, (self.trainable, self.non_trainable))
    }
}

/// One row of a summary table.
pub(crate) struct TableRow<'a> {
    /// `name (Kind)`.
    pub(crate) label: String,
    pub(crate) output_shape: &'a [usize],
    pub(crate) params: usize,
    /// The steps it reads, for a Functional model's "Connected to" column.
    pub(crate) connected_to: Option<String>,
}

/// Keras' summary table: 65 characters, or 91 with a "Connected to" column (whose "Output
/// Shape" column is narrower, as Keras'); a label longer than 27 characters
/// (`max_pooling2d_1 (MaxPooling2D)` has 30) widens the first column for every row.
pub(crate) fn write_table(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    rows: &[TableRow<'_>],
    (trainable, non_trainable): (usize, usize),
) -> fmt::Result {
    let connected = rows.iter().any(|r| r.connected_to.is_some());
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .fold(27, usize::max);
    let (shape_width, extra) = if connected { (22, 26) } else { (26, 0) };
    let line = |label: &str, shape: &str, params: &str, reads: Option<&str>| {
        let mut line = format!(" {label:<width$} {shape:<shape_width$}{params:>9}");
        if let Some(reads) = reads {
            line = format!("{line}  {reads}");
        }
        line.trim_end().to_owned()
    };
    let rule = "_".repeat(width + 38 + extra);
    let double = "=".repeat(width + 38 + extra);
    writeln!(f, "Model: \"{name}\"")?;
    writeln!(f, "{rule}")?;
    let reads = connected.then_some("Connected to");
    writeln!(
        f,
        "{}",
        line("Layer (type)", "Output Shape", "Param #", reads)
    )?;
    writeln!(f, "{double}")?;
    for (i, r) in rows.iter().enumerate() {
        let params = thousands(r.params);
        let reads = r.connected_to.as_deref();
        writeln!(
            f,
            "{}",
            line(&r.label, &shape(r.output_shape), &params, reads)
        )?;
        if i + 1 < rows.len() {
            writeln!(f)?;
        }
    }
    writeln!(f, "{double}")?;
    writeln!(f, "Total params: {}", thousands(trainable + non_trainable))?;
    writeln!(f, "Trainable params: {}", thousands(trainable))?;
    writeln!(f, "Non-trainable params: {}", thousands(non_trainable))?;
    write!(f, "{rule}")
}

impl<F: Float> Sequential<F> {
    /// The model's summary: each layer's name, type, output shape and parameter count. Works
    /// before the model is built, from the layers' shape rules.
    ///
    /// Counts are computed with checked arithmetic: a layer whose count overflows `usize` is
    /// [`NnError::ParamCountOverflow`], a total that does is [`NnError::TotalParamsOverflow`].
    ///
    /// # Errors
    /// [`NnError::NoLayers`], [`NnError::UnknownInputShape`], [`NnError::LayerInput`],
    /// [`NnError::ParamCountOverflow`], [`NnError::TotalParamsOverflow`].
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(4).input_dim(3));
    /// println!("{}", model.summary()?);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn summary(&self) -> Result<Summary> {
        let first = self.layers.first().ok_or(NnError::NoLayers)?;
        let mut shape = first
            .layer
            .input_shape()
            .ok_or_else(|| NnError::UnknownInputShape {
                layer: first.name.clone(),
            })?;
        let mut rows = Vec::with_capacity(self.layers.len());
        let (mut trainable, mut non_trainable) = (0usize, 0usize);
        for e in &self.layers {
            let next = e.layer.output_shape(&shape).map_err(|err| e.rename(err))?;
            let params = e.param_count(&shape)?;
            let state = e.non_trainable_count(&shape)?;
            let overflow = || NnError::TotalParamsOverflow {
                layer: e.name.clone(),
                params: params.saturating_add(state),
            };
            trainable = trainable.checked_add(params).ok_or_else(overflow)?;
            non_trainable = non_trainable.checked_add(state).ok_or_else(overflow)?;
            trainable.checked_add(non_trainable).ok_or_else(overflow)?;
            shape = next;
            rows.push(SummaryRow {
                name: e.name.clone(),
                kind: e.layer.kind(),
                output_shape: shape.clone(),
                params,
                non_trainable: state,
            });
        }
        Ok(Summary {
            name: self.name.clone(),
            rows,
            trainable,
            non_trainable,
        })
    }
}
