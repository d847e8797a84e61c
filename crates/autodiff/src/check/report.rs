//! Settings and reports of the gradient checker.

use crate::error::{AutodiffError, Result};
use std::fmt;

/// How the checker compares derivatives.
///
/// ```
/// use dendrite_autodiff::check::CheckMode;
/// assert_ne!(CheckMode::Auto, CheckMode::Directional { trials: 4 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// Elementwise when the `wrt` nodes hold at most [`CheckConfig::elementwise_limit`]
    /// elements in total, otherwise directional with [`CheckConfig::auto_trials`] trials.
    Auto,
    /// Every element of every `wrt` node, one at a time.
    Elementwise,
    /// Random tangent and cotangent directions, `trials` of them.
    Directional {
        /// Number of random directions.
        trials: usize,
    },
}

/// Settings of a gradient check. Build one from [`CheckConfig::default`] and the `with_*`
/// methods, or with a struct literal.
///
/// ```
/// use dendrite_autodiff::check::{CheckConfig, CheckMode};
/// let config = CheckConfig::default()
///     .with_tolerances(1e-4, 1e-6)
///     .with_mode(CheckMode::Elementwise);
/// assert_eq!(config.eps, 1e-6);
/// assert_eq!(config.rtol, 1e-4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// Step of the central differences (absolute, in input units).
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Elementwise, directional, or chosen by size.
    pub mode: CheckMode,
    /// Seed of the random cotangents and tangents.
    pub seed: u64,
    /// The largest total number of `wrt` elements [`CheckMode::Auto`] checks one by one.
    pub elementwise_limit: usize,
    /// Trials of the directional check that [`CheckMode::Auto`] falls back to.
    pub auto_trials: usize,
}

impl Default for CheckConfig {
    /// `eps = 1e-6`, `rtol = 1e-5`, `atol = 1e-6`, [`CheckMode::Auto`] with a limit of 256
    /// elements and 8 directional trials beyond it, seed 0.
    fn default() -> Self {
        CheckConfig {
            eps: 1e-6,
            rtol: 1e-5,
            atol: 1e-6,
            mode: CheckMode::Auto,
            seed: 0,
            elementwise_limit: 256,
            auto_trials: 8,
        }
    }
}

impl CheckConfig {
    /// The same settings with another finite-difference step.
    ///
    /// ```
    /// assert_eq!(dendrite_autodiff::check::CheckConfig::default().with_eps(1e-5).eps, 1e-5);
    /// ```
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// The same settings with other relative and absolute tolerances.
    ///
    /// ```
    /// let c = dendrite_autodiff::check::CheckConfig::default().with_tolerances(1e-3, 1e-4);
    /// assert_eq!((c.rtol, c.atol), (1e-3, 1e-4));
    /// ```
    pub fn with_tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.rtol = rtol;
        self.atol = atol;
        self
    }

    /// The same settings with another mode.
    ///
    /// ```
    /// use dendrite_autodiff::check::{CheckConfig, CheckMode};
    /// let c = CheckConfig::default().with_mode(CheckMode::Directional { trials: 3 });
    /// assert_eq!(c.mode, CheckMode::Directional { trials: 3 });
    /// ```
    pub fn with_mode(mut self, mode: CheckMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same settings with another random seed.
    ///
    /// ```
    /// assert_eq!(dendrite_autodiff::check::CheckConfig::default().with_seed(7).seed, 7);
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every setting: `eps` finite and positive, tolerances finite and not negative,
    /// at least one trial (a directional check with no trial would check nothing and pass).
    /// The checker calls it before it starts.
    ///
    /// # Errors
    /// [`AutodiffError::InvalidCheckConfig`] naming the setting.
    ///
    /// ```
    /// use dendrite_autodiff::check::{CheckConfig, CheckMode};
    /// assert!(CheckConfig::default().validate().is_ok());
    /// assert!(CheckConfig::default().with_tolerances(-1e-5, 0.0).validate().is_err());
    /// let err = CheckConfig::default().with_mode(CheckMode::Directional { trials: 0 }).validate();
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     "check config: trials = 0 is invalid: \
    ///      at least one direction is needed, or nothing is checked"
    /// );
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |setting, value, reason| {
            Err(AutodiffError::InvalidCheckConfig {
                setting,
                value,
                reason,
            })
        };
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps, "the step must be finite and positive");
        }
        for (setting, value) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(
                    setting,
                    value,
                    "a tolerance must be finite and not negative",
                );
            }
        }
        let no_direction = "at least one direction is needed, or nothing is checked";
        if let CheckMode::Directional { trials: 0 } = self.mode {
            return bad("trials", 0.0, no_direction);
        }
        if self.mode == CheckMode::Auto && self.auto_trials == 0 {
            return bad("auto_trials", 0.0, no_direction);
        }
        Ok(())
    }

    /// Whether `analytic` and `numeric` agree: `|a - n| ≤ atol + rtol · max(|a|, |n|)`.
    ///
    /// ```
    /// let c = dendrite_autodiff::check::CheckConfig::default();
    /// assert!(c.agree(1.0, 1.0 + 1e-7));
    /// assert!(!c.agree(1.0, 1.1));
    /// assert!(!c.agree(f64::NAN, f64::NAN));
    /// ```
    pub fn agree(&self, analytic: f64, numeric: f64) -> bool {
        self.badness(analytic, numeric) <= 1.0
    }

    /// The error as a multiple of the tolerance (≤ 1 agrees; NaN gives infinity).
    pub(crate) fn badness(&self, analytic: f64, numeric: f64) -> f64 {
        let err = (analytic - numeric).abs();
        let bound = self.atol + self.rtol * analytic.abs().max(numeric.abs());
        let b = err / bound;
        if b.is_nan() {
            f64::INFINITY
        } else {
            b
        }
    }
}

/// Where one comparison of the check was made.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// One element of one `wrt` node (elementwise mode).
    Element {
        /// The `wrt` node's name.
        node: String,
        /// The element's multi-index.
        index: Vec<usize>,
    },
    /// One random direction (directional mode), numbered from 0.
    Direction {
        /// The trial's number.
        trial: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Element { node, index } => write!(f, "`{node}`{index:?}"),
            Location::Direction { trial } => write!(f, "direction #{trial}"),
        }
    }
}

/// What the two numbers of a [`Comparison`] are: the derivative itself, or its product with
/// random vectors (the check of a non-scalar output, or of a direction).
///
/// ```
/// use dendrite_autodiff::check::Contraction;
/// assert_ne!(Contraction::Exact, Contraction::Cotangent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contraction {
    /// `∂f/∂x_i` itself (a scalar output, elementwise).
    Exact,
    /// `⟨c, ∂f/∂x_i⟩` for a random cotangent `c` (a non-scalar output, elementwise).
    Cotangent,
    /// `⟨c, J t⟩` for a random cotangent `c` and a random tangent `t` (directional).
    CotangentAndTangent,
    /// `(H v)_i` for a random vector `v` (second order, elementwise).
    HessianVector,
    /// `⟨t, H v⟩` for random vectors `v` and `t` (second order, directional).
    HessianTangent,
}

impl Contraction {
    /// The same comparison made on `⟨∇f, v⟩` for a random `v`: a second-order check.
    pub(crate) fn second_order(self) -> Self {
        match self {
            Contraction::Exact | Contraction::Cotangent | Contraction::HessianVector => {
                Contraction::HessianVector
            }
            Contraction::CotangentAndTangent | Contraction::HessianTangent => {
                Contraction::HessianTangent
            }
        }
    }
}

/// One analytic value against its finite-difference estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Where it was made.
    pub location: Location,
    /// Whether the numbers are products with random vectors.
    pub contraction: Contraction,
    /// The derivative from the gradient graph.
    pub analytic: f64,
    /// The central-difference estimate.
    pub numeric: f64,
    /// `|analytic - numeric|`.
    pub abs_error: f64,
    /// `|analytic - numeric| / max(|analytic|, |numeric|)` (0 when both are 0).
    pub rel_error: f64,
}

impl Comparison {
    pub(crate) fn new(
        location: Location,
        contraction: Contraction,
        analytic: f64,
        numeric: f64,
    ) -> Self {
        let abs_error = (analytic - numeric).abs();
        let scale = analytic.abs().max(numeric.abs());
        let rel_error = if scale > 0.0 {
            abs_error / scale
        } else {
            abs_error
        };
        Comparison {
            location,
            contraction,
            analytic,
            numeric,
            abs_error,
            rel_error,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.contraction {
            Contraction::Exact => "",
            Contraction::Cotangent => " (products ⟨c, ∂f/∂x⟩ with a random cotangent c)",
            Contraction::CotangentAndTangent => {
                " (products ⟨c, J t⟩ with a random cotangent c and tangent t)"
            }
            Contraction::HessianVector => " (products (H v)_i with a random vector v)",
            Contraction::HessianTangent => " (products ⟨t, H v⟩ with random vectors v and t)",
        };
        write!(
            f,
            "{}{what}: analytic {:e}, numeric {:e}, abs error {:.3e}, rel error {:.3e}",
            self.location, self.analytic, self.numeric, self.abs_error, self.rel_error
        )
    }
}

/// The outcome of a gradient check: how many comparisons were made, how many failed, and the
/// worst one (relative to its tolerance).
///
/// ```
/// use dendrite_autodiff::check::{check_gradients, CheckConfig};
/// use dendrite_graph::Graph;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [3])?;
/// let y = g.exp(x)?;
/// let xv = ndarray::arr1(&[0.1, -0.2, 0.3]).into_dyn();
/// let report = check_gradients(&mut g, y, &[x], &[("x", xv.view())], &CheckConfig::default())?;
/// assert!(report.passed());
/// assert_eq!(report.checked, 3);
/// report.into_result()?;
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckReport {
    /// The mode used ([`CheckMode::Auto`] resolved).
    pub mode: CheckMode,
    /// The finite-difference step.
    pub eps: f64,
    /// The relative tolerance.
    pub rtol: f64,
    /// The absolute tolerance.
    pub atol: f64,
    /// Number of comparisons made.
    pub checked: usize,
    /// Number of comparisons out of tolerance.
    pub failures: usize,
    /// The comparison with the largest error relative to its tolerance.
    pub worst: Option<Comparison>,
    /// When the worst comparison is a failed direction: the element found responsible, by
    /// bisecting the direction (a few more runs, only on failure), compared on its own.
    pub located: Option<Comparison>,
}

impl GradCheckReport {
    /// Whether every comparison was within tolerance.
    ///
    /// ```
    /// # use dendrite_autodiff::check::{GradCheckReport, CheckMode};
    /// let empty = GradCheckReport { mode: CheckMode::Elementwise, eps: 1e-6, rtol: 1e-5,
    ///     atol: 1e-6, checked: 0, failures: 0, worst: None, located: None };
    /// assert!(empty.passed());
    /// ```
    pub fn passed(&self) -> bool {
        self.failures == 0
    }

    /// The report itself when the check passed, else [`AutodiffError::CheckFailed`].
    ///
    /// # Errors
    /// [`AutodiffError::CheckFailed`] holding the report.
    pub fn into_result(self) -> Result<GradCheckReport> {
        if self.passed() {
            Ok(self)
        } else {
            Err(AutodiffError::CheckFailed(Box::new(self)))
        }
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            CheckMode::Auto => "auto".to_owned(),
            CheckMode::Elementwise => "elementwise".to_owned(),
            CheckMode::Directional { trials } => format!("directional, {trials} trials"),
        };
        write!(
            f,
            "{} of {} comparisons out of tolerance ({mode}, eps {:e}, rtol {:e}, atol {:e})",
            self.failures, self.checked, self.eps, self.rtol, self.atol
        )?;
        if let Some(worst) = &self.worst {
            write!(f, "; worst: {worst}")?;
        }
        if let Some(located) = &self.located {
            write!(f, "; located by bisecting that direction: {located}")?;
        }
        Ok(())
    }
}
