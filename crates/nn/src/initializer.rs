//! Weight initializers, as Keras' `keras.initializers`: the variance-scaling family (Glorot,
//! He, LeCun), orthogonal, constants, and initializers of your own.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{fans, Init};
use ndarray::ArrayD;
use rand::Rng;
use std::fmt::Debug;
use std::sync::Arc;

/// Keras' correction for a normal truncated at two standard deviations: the standard deviation
/// of `N(0, 1)` restricted to `[-2, 2]`. Dividing by it makes the truncated draws have the
/// variance asked for.
const TRUNCATED_STDDEV: f64 = 0.879_625_661_034_239_8;

/// How a layer's weights start. Every initializer draws from the layer's own seeded
/// generator ([`Init`]), so the same model seed gives the same weights, in `f32` and `f64`
/// alike (values are drawn in `f64` and rounded).
///
/// With `fan_in` and `fan_out` the rows and columns of a kernel (Keras' fans), the
/// variance-scaling initializers aim at a variance `scale / n`:
///
/// | initializer | `scale` | `n` | draws |
/// | --- | --- | --- | --- |
/// | `GlorotUniform` (Keras' default kernel) | 1 | `(fan_in + fan_out) / 2` | uniform in `±√(3 scale / n)` |
/// | `GlorotNormal` | 1 | `(fan_in + fan_out) / 2` | truncated normal |
/// | `HeUniform` / `HeNormal` | 2 | `fan_in` | uniform / truncated normal |
/// | `LecunUniform` / `LecunNormal` | 1 | `fan_in` | uniform / truncated normal |
///
/// The `*Normal` variants are Keras' truncated normals: `N(0, σ²)` with
/// `σ = √(scale / n) / 0.87962566103423978`, values beyond `2σ` drawn again; the divisor
/// is the standard deviation of a unit normal truncated at ±2, so the result has variance
/// `scale / n`. `Orthogonal` is Keras' too: the `Q` of the QR decomposition of a matrix of
/// unit normals (`[rows, cols]` with `rows` the product of all axes but the last), signs fixed
/// so that `R` has a positive diagonal, times `gain`. `RandomUniform` draws from fixed bounds.
/// `Zeros` is the default bias.
///
/// ```
/// use dendrite_nn::{Init, Initializer};
/// let w = Init::new(0).initialize::<f64>(&Initializer::Orthogonal { gain: 1.0 }, &[4, 3])?;
/// let w = w.into_dimensionality::<ndarray::Ix2>()?;
/// let wtw: ndarray::Array2<f64> = w.t().dot(&w);
/// assert!((wtw - ndarray::Array2::<f64>::eye(3)).iter().all(|d| d.abs() < 1e-12));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Initializer {
    /// Uniform in `±√(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Truncated normal with variance `2 / (fan_in + fan_out)`.
    GlorotNormal,
    /// Uniform in `±√(6 / fan_in)`.
    HeUniform,
    /// Truncated normal with variance `2 / fan_in`.
    HeNormal,
    /// Uniform in `±√(3 / fan_in)`.
    LecunUniform,
    /// Truncated normal with variance `1 / fan_in`.
    LecunNormal,
    /// An orthogonal matrix (columns orthonormal when there are at least as many rows as
    /// columns, rows otherwise) times `gain`; needs at least two axes.
    Orthogonal {
        /// The factor (Keras' default 1).
        gain: f64,
    },
    /// Uniform in `[minval, maxval)` (Keras' `RandomUniform`; `Embedding`'s default is
    /// `±0.05`).
    RandomUniform {
        /// The lower bound.
        minval: f64,
        /// The upper bound (`>= minval`).
        maxval: f64,
    },
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every value the same.
    Constant(f64),
    /// An initializer of your own (see [`Initializer::custom`]).
    Custom(CustomInitializer),
}

/// An initializer of your own: fills a tensor of a given shape, drawing any randomness from
/// the layer's generator.
///
/// ```
/// use dendrite_nn::{Dense, Init, InitFn, Initializer, NnError};
/// use rand::Rng;
///
/// /// Uniform in [-0.05, 0.05] (Keras' `RandomUniform`).
/// #[derive(Debug)]
/// struct Small;
///
/// impl InitFn for Small {
///     fn fill(&self, init: &mut Init, _shape: &[usize], values: &mut [f64]) -> Result<(), NnError> {
///         for v in values {
///             *v = init.rng().gen_range(-0.05..0.05);
///         }
///         Ok(())
///     }
/// }
///
/// let layer = Dense::new(8).kernel_initializer(Initializer::custom(Small));
/// # let _ = layer;
/// ```
pub trait InitFn: Send + Sync + Debug {
    /// Writes the initial values of a tensor of shape `shape` into `values` (row-major, as many
    /// as the shape holds). `fit` refuses a value that is not finite.
    ///
    /// # Errors
    /// Any [`NnError`] of your own.
    fn fill(&self, init: &mut Init, shape: &[usize], values: &mut [f64]) -> Result<()>;
}

/// A user's [`InitFn`], shared: what [`Initializer::Custom`] holds. Two are equal when they are
/// the same instance.
#[derive(Debug, Clone)]
pub struct CustomInitializer(Arc<dyn InitFn>);

impl PartialEq for CustomInitializer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Initializer {
    /// Wraps an initializer of your own (see [`InitFn`]).
    pub fn custom(init: impl InitFn + 'static) -> Self {
        Initializer::Custom(CustomInitializer(Arc::new(init)))
    }
}

/// Which fan a variance-scaling initializer divides by.
#[derive(Debug, Clone, Copy)]
enum Fan {
    In,
    Average,
}

impl Init {
    /// Initial values for a tensor of shape `shape`, as `initializer` says.
    ///
    /// # Errors
    /// As [`Init::uniform`]; [`NnError::LayerInput`] for an orthogonal initializer on fewer
    /// than two axes; [`NnError::Hyperparameter`] for a gain or constant that is not finite;
    /// [`NnError::NonFiniteWeight`] when a custom initializer writes NaN or ±∞; the custom
    /// initializer's own errors.
    ///
    /// ```
    /// use dendrite_nn::{Init, Initializer};
    /// let a = Init::for_layer(3, 1).initialize::<f32>(&Initializer::HeNormal, &[64, 8])?;
    /// let b = Init::for_layer(3, 1).initialize::<f32>(&Initializer::HeNormal, &[64, 8])?;
    /// assert_eq!(a, b); // seeded: the same model seed gives the same weights
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn initialize<F: Float>(
        &mut self,
        initializer: &Initializer,
        shape: &[usize],
    ) -> Result<ArrayD<F>> {
        match initializer {
            Initializer::GlorotUniform => self.glorot_uniform(shape),
            Initializer::GlorotNormal => self.scaled_normal(shape, 1.0, Fan::Average),
            Initializer::HeUniform => self.scaled_uniform(shape, 2.0, Fan::In),
            Initializer::HeNormal => self.scaled_normal(shape, 2.0, Fan::In),
            Initializer::LecunUniform => self.scaled_uniform(shape, 1.0, Fan::In),
            Initializer::LecunNormal => self.scaled_normal(shape, 1.0, Fan::In),
            Initializer::Orthogonal { gain } => self.orthogonal(shape, *gain),
            Initializer::RandomUniform { minval, maxval } => self.uniform(shape, *minval, *maxval),
            Initializer::Zeros => self.zeros(shape),
            Initializer::Ones => self.ones(shape),
            Initializer::Constant(c) => {
                finite("constant", "value", *c)?;
                self.filled(shape, F::of(*c))
            }
            Initializer::Custom(custom) => self.custom(&*custom.0, shape),
        }
    }

    /// Uniform in `±√(3 scale / n)`: variance `scale / n`.
    fn scaled_uniform<F: Float>(
        &mut self,
        shape: &[usize],
        scale: f64,
        fan: Fan,
    ) -> Result<ArrayD<F>> {
        let limit = (3.0 * scale / fan_size(shape, fan)).sqrt();
        self.uniform(shape, -limit, limit)
    }

    /// Keras' truncated normal with variance `scale / n` (see [`Initializer`]).
    fn scaled_normal<F: Float>(
        &mut self,
        shape: &[usize],
        scale: f64,
        fan: Fan,
    ) -> Result<ArrayD<F>> {
        let stddev = (scale / fan_size(shape, fan)).sqrt() / TRUNCATED_STDDEV;
        let (mut data, n) = self.buffer::<F>("init", shape)?;
        for _ in 0..n {
            let z = loop {
                let z = self.standard_normal();
                if z.abs() <= 2.0 {
                    break z;
                }
            };
            data.push(F::of(stddev * z));
        }
        Self::array("init", shape, data)
    }

    /// One draw of `N(0, 1)` (Box–Muller, the cosine half).
    fn standard_normal(&mut self) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u: f64 = 1.0 - self.rng().r#gen::<f64>();
        let v: f64 = self.rng().r#gen::<f64>();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Keras' orthogonal initializer (see [`Initializer`]).
    fn orthogonal<F: Float>(&mut self, shape: &[usize], gain: f64) -> Result<ArrayD<F>> {
        finite("orthogonal", "gain", gain)?;
        let Some((&cols, leading)) = shape.split_last().filter(|(_, l)| !l.is_empty()) else {
            return Err(NnError::LayerInput {
                layer: self.layer.clone(),
                shape: shape.to_vec(),
                reason: "an orthogonal initializer needs a tensor of at least two axes",
            });
        };
        let rows = leading.iter().fold(1usize, |r, &d| r.saturating_mul(d));
        // Orthonormalize the columns of a tall `n × m` matrix of unit normals, kept column by
        // column (`q[j]` is column j); a wide tensor is its transpose.
        let (n, m) = (rows.max(cols), rows.min(cols));
        let (mut flat, total) = self.buffer::<f64>("init", shape)?;
        flat.extend((0..total).map(|_| self.standard_normal()));
        let mut q: Vec<&mut [f64]> = flat.chunks_mut(n.max(1)).take(m).collect();
        gram_schmidt(&mut q);
        let (mut data, _) = self.buffer::<F>("init", shape)?;
        for r in 0..rows {
            for c in 0..cols {
                let (i, j) = if rows >= cols { (r, c) } else { (c, r) };
                data.push(F::of(gain * flat[j * n + i]));
            }
        }
        Self::array("init", shape, data)
    }

    /// A user's initializer, written in `f64`, checked finite and rounded to `F`.
    fn custom<F: Float>(&mut self, init: &dyn InitFn, shape: &[usize]) -> Result<ArrayD<F>> {
        let (mut values, n) = self.buffer::<f64>("init", shape)?;
        values.resize(n, 0.0);
        init.fill(self, shape, &mut values)?;
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(NnError::NonFiniteWeight {
                name: self.layer.clone(),
                index,
                value,
            });
        }
        let (mut data, _) = self.buffer::<F>("init", shape)?;
        data.extend(values.iter().map(|&v| F::of(v)));
        Self::array("init", shape, data)
    }
}

/// Modified Gram–Schmidt, twice over ("twice is enough" for orthogonality to rounding): makes
/// the columns orthonormal in place. Dividing by the positive norm is what makes `R`'s
/// diagonal positive, the sign convention Keras imposes on its QR.
fn gram_schmidt(q: &mut [&mut [f64]]) {
    for j in 0..q.len() {
        let (done, rest) = q.split_at_mut(j);
        let Some(col) = rest.first_mut() else { return };
        for _pass in 0..2 {
            for prev in done.iter() {
                let dot: f64 = prev.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
                for (c, p) in col.iter_mut().zip(prev.iter()) {
                    *c -= dot * p;
                }
            }
        }
        let norm = col.iter().map(|c| c * c).sum::<f64>().sqrt();
        if norm > 0.0 {
            for c in col.iter_mut() {
                *c /= norm;
            }
        }
    }
}

fn fan_size(shape: &[usize], fan: Fan) -> f64 {
    let (fan_in, fan_out) = fans(shape);
    let n = match fan {
        Fan::In => fan_in as f64,
        Fan::Average => (fan_in as f64 + fan_out as f64) / 2.0,
    };
    n.max(1.0)
}

fn finite(owner: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(NnError::Hyperparameter {
            owner,
            name,
            value,
            reason: "must be finite",
        })
    }
}
