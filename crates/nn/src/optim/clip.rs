//! Gradient clipping, as Keras' optimizer arguments `clipnorm`, `global_clipnorm` and
//! `clipvalue`.

use super::require;
use crate::error::Result;
use crate::float::Float;

/// How gradients are clipped before an optimizer applies them (Keras semantics):
///
/// | setting | each gradient `g` becomes |
/// | --- | --- |
/// | `clipnorm = c` | `g · c / max(‖g‖, c)`: each tensor's L2 norm at most `c` |
/// | `global_clipnorm = c` | `g · c / max(‖(g₁, …, gₙ)‖, c)`: the norm of all gradients together at most `c` |
/// | `clipvalue = c` | every element clamped into `[-c, c]` |
///
/// Keras allows one of the two norms; it also takes `clipvalue` with a norm and then ignores
/// it. Here at most one setting is accepted, so nothing set is silently ignored. The setting
/// is made on the optimizer (`Adam::default().clipnorm(1.0)`); `fit` clips the fetched
/// gradients into buffers allocated at compile time, so a step still allocates nothing, and
/// without clipping the step is exactly as before. Norms are summed in `f64`.
///
/// ```
/// use dendrite_nn::Clipping;
/// let mut grads = vec![vec![3.0_f32, 4.0], vec![0.0, 12.0]];
/// Clipping::global_norm(6.5).apply(&mut grads); // ‖(3, 4, 0, 12)‖ = 13
/// assert_eq!(grads, vec![vec![1.5, 2.0], vec![0.0, 6.0]]);
/// let mut grads = vec![vec![3.0_f32, 4.0], vec![0.0, 12.0]];
/// Clipping::norm(5.0).apply(&mut grads); // each tensor on its own
/// assert_eq!(grads, vec![vec![3.0, 4.0], vec![0.0, 5.0]]);
/// Clipping::value(1.0).apply(&mut grads);
/// assert_eq!(grads, vec![vec![1.0, 1.0], vec![0.0, 1.0]]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clipping {
    norm: Option<f64>,
    global_norm: Option<f64>,
    value: Option<f64>,
}

impl Clipping {
    /// Each gradient tensor scaled to an L2 norm of at most `c` (Keras' `clipnorm`).
    pub fn norm(c: f64) -> Self {
        Clipping {
            norm: Some(c),
            ..Clipping::default()
        }
    }

    /// All gradients scaled together to a joint L2 norm of at most `c` (`global_clipnorm`).
    pub fn global_norm(c: f64) -> Self {
        Clipping {
            global_norm: Some(c),
            ..Clipping::default()
        }
    }

    /// Every gradient element clamped into `[-c, c]` (`clipvalue`).
    pub fn value(c: f64) -> Self {
        Clipping {
            value: Some(c),
            ..Clipping::default()
        }
    }

    /// Whether any clipping is set.
    pub fn is_active(&self) -> bool {
        self.norm.is_some() || self.global_norm.is_some() || self.value.is_some()
    }

    /// This clipping with `clipnorm` set too (kept to build the refusal `validate` reports).
    pub(crate) fn with_norm(mut self, c: f64) -> Self {
        self.norm = Some(c);
        self
    }

    pub(crate) fn with_global_norm(mut self, c: f64) -> Self {
        self.global_norm = Some(c);
        self
    }

    pub(crate) fn with_value(mut self, c: f64) -> Self {
        self.value = Some(c);
        self
    }

    /// Checks each setting finite and `> 0`, and at most one set.
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`](crate::NnError::Hyperparameter) naming `owner` and the
    /// setting.
    pub fn validate(&self, owner: &'static str) -> Result<()> {
        let settings = [
            ("clipnorm", self.norm),
            ("global_clipnorm", self.global_norm),
            ("clipvalue", self.value),
        ];
        let mut set = 0;
        for (name, value) in settings {
            if let Some(c) = value {
                require(
                    c.is_finite() && c > 0.0,
                    owner,
                    name,
                    c,
                    "must be finite and > 0",
                )?;
                set += 1;
                require(
                    set == 1,
                    owner,
                    name,
                    c,
                    "set only one of clipnorm, global_clipnorm and clipvalue",
                )?;
            }
        }
        Ok(())
    }

    /// The settings as JSON (null for each one not set), for model files.
    pub(crate) fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "clipnorm": self.norm,
            "global_clipnorm": self.global_norm,
            "clipvalue": self.value,
        })
    }

    /// The settings from [`Clipping::to_json`]'s form.
    pub(crate) fn from_json(
        value: &serde_json::Value,
    ) -> std::result::Result<Self, crate::ConfigError> {
        let setting = |key: &str| match crate::persist::json::optional(value, key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| crate::ConfigError::new(key, "must be a number or null")),
        };
        Ok(Clipping {
            norm: setting("clipnorm")?,
            global_norm: setting("global_clipnorm")?,
            value: setting("clipvalue")?,
        })
    }

    /// Clips `grads` (one buffer per parameter) in place.
    pub fn apply<F: Float>(&self, grads: &mut [Vec<F>]) {
        if let Some(c) = self.norm {
            for g in grads.iter_mut() {
                let s = c / norm_squared(g).sqrt().max(c);
                scale(g, s);
            }
        }
        if let Some(c) = self.global_norm {
            let total: f64 = grads.iter().map(|g| norm_squared(g)).sum();
            let s = c / total.sqrt().max(c);
            for g in grads.iter_mut() {
                scale(g, s);
            }
        }
        if let Some(c) = self.value {
            let (lo, hi) = (F::of(-c), F::of(c));
            for x in grads.iter_mut().flat_map(|g| g.iter_mut()) {
                // Written as two comparisons (not `clamp`) so a NaN gradient stays NaN and is
                // caught by the finite check after the update.
                if *x < lo {
                    *x = lo;
                } else if *x > hi {
                    *x = hi;
                }
            }
        }
    }
}

fn norm_squared<F: Float>(g: &[F]) -> f64 {
    g.iter().map(|x| x.as_f64() * x.as_f64()).sum()
}

/// Multiplies by `s`, leaving the gradient untouched when it is within bounds (`s = 1`); a NaN
/// scale (a NaN gradient) makes every value NaN, which the step then refuses.
fn scale<F: Float>(g: &mut [F], s: f64) {
    if s == 1.0 {
        return;
    }
    let s = F::of(s);
    for x in g {
        *x = *x * s;
    }
}
