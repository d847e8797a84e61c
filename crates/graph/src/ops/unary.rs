//! Elementwise functions of one operand, and `pow` by a scalar exponent.
//!
//! Shape rule: the output has the operand's shape.
//!
//! | op | forward | derivative (times the cotangent `y_bar`) |
//! | --- | --- | --- |
//! | neg | `-x` | `-1` |
//! | exp | `e^x` | `e^x = y` |
//! | log | `ln x` | `1 / x` |
//! | sqrt | `√x` | `1 / (2√x) = 1 / (2y)` |
//! | tanh | `tanh x` | `1 - tanh² x = 1 - y²` |
//! | abs | `|x|` | `sign x` (0 at the kink x = 0: the subgradient of least norm) |
//! | erf | `(2/√π) ∫₀ˣ e^(-t²) dt` | `(2/√π) e^(-x²)` |
//! | sin | `sin x` | `cos x` |
//! | cos | `cos x` | `-sin x` |
//! | log1p | `ln(1 + x)` | `1 / (1 + x)` |
//! | expm1 | `e^x - 1` | `e^x` (not `y + 1`, which cancels to 0 for very negative x) |
//! | sigmoid | `1 / (1 + e^-x)` | `σ(x)(1 - σ(x)) = σ(x) σ(-x)` |
//! | softplus | `ln(1 + e^x)` | `σ(x)` |
//! | pow | `x^p` | `p x^(p-1)` |
//!
//! Accuracy in the tails is why `log1p`, `expm1`, `sigmoid` and `softplus` are primitives and
//! not compositions: `ln(1 + x)` loses every digit of a tiny `x` in the addition, `½ tanh(x/2)
//! + ½` rounds `σ(-40) ≈ 4e-18` to 0, and `max(x, 0) + ln(1 + e^-|x|)` rounds `softplus(-40)`
//! to 0 (so its log is `-inf`) and gives 0 instead of ¼ for the second derivative at 0, where
//! the two branches meet. As primitives they evaluate the stable form on each side of 0 and
//! their rules are smooth formulas (`σ(x) σ(-x)` keeps full relative accuracy in both tails,
//! where `σ(1 - σ)` would cancel to 0 for large x).
//!
//! The new functions are computed in `f64` and rounded once, so their `f32` values are within
//! half an ulp of the true value or one more; in `f64` they are within a few ulps (the
//! accuracy test in `tests/accuracy.rs` states the worst case of each).

use crate::error::Result;
use crate::ops::{check_arity, OperandGrads, Scalar};
use crate::shape::Shape;
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use smallvec::smallvec;

family! {
    /// An elementwise function of one operand.
    ///
    /// ```
    /// use dendrite_graph::UnaryOp;
    /// assert_eq!(UnaryOp::Tanh.name(), "tanh");
    /// assert!(UnaryOp::ALL.contains(&UnaryOp::Sigmoid));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub unit enum UnaryOp {
        /// `-x`
        Neg => "neg",
        /// `e^x`
        Exp => "exp",
        /// Natural logarithm; `-inf` at 0, NaN below.
        Log => "log",
        /// Square root; NaN below 0.
        Sqrt => "sqrt",
        /// Hyperbolic tangent.
        Tanh => "tanh",
        /// Absolute value.
        Abs => "abs",
        /// The error function `(2/√π) ∫₀ˣ e^(-t²) dt` (the exact GELU is built on it).
        Erf => "erf",
        /// Sine (radians).
        Sin => "sin",
        /// Cosine (radians).
        Cos => "cos",
        /// `ln(1 + x)`, exact for tiny `x`; `-inf` at -1, NaN below.
        Log1p => "log1p",
        /// `e^x - 1`, exact for tiny `x`.
        Expm1 => "expm1",
        /// The logistic function `1 / (1 + e^-x)`, with full relative accuracy in both tails.
        Sigmoid => "sigmoid",
        /// `ln(1 + e^x)`, with full relative accuracy for very negative `x`.
        Softplus => "softplus",
    }
}

impl UnaryOp {
    /// Applies the function to one value.
    ///
    /// ```
    /// use dendrite_graph::UnaryOp;
    /// assert_eq!(UnaryOp::Abs.apply(-2.0_f32), 2.0);
    /// assert_eq!(UnaryOp::Sigmoid.apply(-800.0_f64), (-800.0_f64).exp());
    /// ```
    #[inline]
    pub fn apply<F: Element>(self, x: F) -> F {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => crate::vexp::exp(x),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Erf => in_f64(x, libm::erf),
            UnaryOp::Sin => in_f64(x, f64::sin),
            UnaryOp::Cos => in_f64(x, f64::cos),
            UnaryOp::Log1p => in_f64(x, f64::ln_1p),
            UnaryOp::Expm1 => in_f64(x, f64::exp_m1),
            UnaryOp::Sigmoid => in_f64(x, sigmoid),
            UnaryOp::Softplus => in_f64(x, softplus),
        }
    }
}

/// `f(x)` computed in `f64` and rounded once to `F` (a no-op conversion for `f64`).
#[inline]
fn in_f64<F: Element>(x: F, f: fn(f64) -> f64) -> F {
    F::of(f(x.as_f64()))
}

/// `σ(x) = 1 / (1 + e^-x)` for `x ≥ 0` and `e^x / (1 + e^x)` below: on each side the
/// exponential is at most 1, so nothing overflows and `σ(-800) = e^-800` keeps its digits.
/// NaN takes the second branch and stays NaN.
#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `softplus(x) = x + ln(1 + e^-x)` for `x > 0` and `ln(1 + e^x)` below, with `ln_1p`: for
/// `x = -40` this is `e^-40 (1 - e^-40/2)`, not the 0 that `ln(1 + e^x)` rounds to.
#[inline]
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Shape rule of the family (and of `pow`): one operand, whose shape the output keeps.
pub(crate) fn infer(op: &'static str, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op, node, operands, 1)?;
    Ok(operands[0].clone())
}

pub(crate) fn forward_unary<F: Element>(
    op: UnaryOp,
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) {
    // Monomorphize the loop per function so the match is not inside it.
    fn map<F: Element>(x: &ArrayViewD<'_, F>, out: &mut ArrayViewMutD<'_, F>, f: impl Fn(F) -> F) {
        match (x.as_slice(), out.as_slice_mut()) {
            (Some(xs), Some(os)) => os.iter_mut().zip(xs).for_each(|(o, &v)| *o = f(v)),
            _ => Zip::from(out).and(x).for_each(|o, &v| *o = f(v)),
        }
    }
    if let (UnaryOp::Exp, Some(xs), Some(os)) = (op, x.as_slice(), out.as_slice_mut()) {
        // Contiguous exp: copy, then the vectorized `f32` exp in place (see `vexp`).
        os.copy_from_slice(xs);
        crate::vexp::exp_in_place(os);
        return;
    }
    match op {
        UnaryOp::Neg => map(x, &mut out, |v| -v),
        UnaryOp::Exp => map(x, &mut out, crate::vexp::exp),
        UnaryOp::Log => map(x, &mut out, F::ln),
        UnaryOp::Sqrt => map(x, &mut out, F::sqrt),
        UnaryOp::Tanh => map(x, &mut out, F::tanh),
        UnaryOp::Abs => map(x, &mut out, F::abs),
        UnaryOp::Erf => map(x, &mut out, |v| in_f64(v, libm::erf)),
        UnaryOp::Sin => map(x, &mut out, |v| in_f64(v, f64::sin)),
        UnaryOp::Cos => map(x, &mut out, |v| in_f64(v, f64::cos)),
        UnaryOp::Log1p => map(x, &mut out, |v| in_f64(v, f64::ln_1p)),
        UnaryOp::Expm1 => map(x, &mut out, |v| in_f64(v, f64::exp_m1)),
        UnaryOp::Sigmoid => map(x, &mut out, |v| in_f64(v, sigmoid)),
        UnaryOp::Softplus => map(x, &mut out, |v| in_f64(v, softplus)),
    }
}

pub(crate) fn forward_pow<F: Element>(
    p: f64,
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) {
    // An integral exponent uses repeated multiplication: exact signs for negative bases and
    // faster than exp(p ln x).
    if p.fract() == 0.0 && p.abs() <= 64.0 {
        let n = p as i32;
        Zip::from(&mut out).and(x).for_each(|o, &v| *o = v.powi(n));
    } else {
        let pf = F::of(p);
        Zip::from(&mut out).and(x).for_each(|o, &v| *o = v.powf(pf));
    }
}

// ANCHOR: vjp_unary
pub(crate) fn vjp_unary<F: Element>(
    g: &mut Graph<F>,
    op: UnaryOp,
    x: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let x_bar = match op {
        // d(-x) = -1
        UnaryOp::Neg => g.neg(y_bar)?,
        // d e^x = e^x, which is the output itself
        UnaryOp::Exp => g.mul(y_bar, y)?,
        // d ln x = 1/x
        UnaryOp::Log => g.div(y_bar, x)?,
        // d √x = 1/(2√x) = 0.5 / y
        UnaryOp::Sqrt => {
            let half = g.scalar(0.5);
            let half_y_bar = g.mul(y_bar, half)?;
            g.div(half_y_bar, y)?
        }
        // d tanh x = 1 - tanh² x
        UnaryOp::Tanh => {
            let one = g.scalar(1.0);
            let y2 = g.mul(y, y)?;
            let slope = g.sub(one, y2)?;
            g.mul(y_bar, slope)?
        }
        // d|x| = sign x, taken as 0 at x = 0
        UnaryOp::Abs => {
            let sign = g.sign(x)?;
            g.mul(y_bar, sign)?
        }
        // d erf x = (2/√π) e^(-x²): a Gaussian bump, so erf is smooth everywhere
        UnaryOp::Erf => {
            let x2 = g.mul(x, x)?;
            let minus_x2 = g.neg(x2)?;
            let bump = g.exp(minus_x2)?;
            let two_over_sqrt_pi = g.scalar(std::f64::consts::FRAC_2_SQRT_PI);
            let slope = g.mul(bump, two_over_sqrt_pi)?;
            g.mul(y_bar, slope)?
        }
        // d sin x = cos x
        UnaryOp::Sin => {
            let slope = g.cos(x)?;
            g.mul(y_bar, slope)?
        }
        // d cos x = -sin x
        UnaryOp::Cos => {
            let sin = g.sin(x)?;
            let scaled = g.mul(y_bar, sin)?;
            g.neg(scaled)?
        }
        // d ln(1 + x) = 1 / (1 + x); 1 + x rounds, but only by half an ulp of the result
        UnaryOp::Log1p => {
            let one = g.scalar(1.0);
            let one_plus_x = g.add(one, x)?;
            g.div(y_bar, one_plus_x)?
        }
        // d (e^x - 1) = e^x, recomputed: y + 1 would cancel to 0 where e^x is tiny
        UnaryOp::Expm1 => {
            let slope = g.exp(x)?;
            g.mul(y_bar, slope)?
        }
        // d σ(x) = σ(x)(1 - σ(x)) = σ(x) σ(-x): the same number, but 1 - σ(x) rounds to 0 for
        // x > 37 where σ(-x) keeps its digits
        UnaryOp::Sigmoid => {
            let minus_x = g.neg(x)?;
            let complement = g.sigmoid(minus_x)?;
            let slope = g.mul(y, complement)?;
            g.mul(y_bar, slope)?
        }
        // d softplus x = σ(x); its own derivative σ(x)σ(-x) is ¼ at 0, with no branch to meet
        UnaryOp::Softplus => {
            let slope = g.sigmoid(x)?;
            g.mul(y_bar, slope)?
        }
    };
    Ok(smallvec![Some(x_bar)])
}
// ANCHOR_END: vjp_unary

// ANCHOR: vjp_pow
pub(crate) fn vjp_pow<F: Element>(
    g: &mut Graph<F>,
    p: f64,
    x: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    // d x^p = p x^(p-1). p = 0 is constant; p = 1 is the identity (and avoids x^0 at x = 0).
    if p == 0.0 {
        return Ok(smallvec![None]);
    }
    if p == 1.0 {
        return Ok(smallvec![Some(y_bar)]);
    }
    let slope = if p == 2.0 {
        {
            let two = g.scalar(2.0);
            g.mul(x, two)?
        }
    } else {
        let xp = g.pow(x, p - 1.0)?;
        let pn = g.scalar(p);
        g.mul(xp, pn)?
    };
    Ok(smallvec![Some(g.mul(y_bar, slope)?)])
}
// ANCHOR_END: vjp_pow

impl<F: Element> Graph<F> {
    /// Adds an elementwise function of one operand.
    ///
    /// ```
    /// use dendrite_graph::{Graph, UnaryOp};
    /// let mut g = Graph::<f64>::new();
    /// let x = g.input("x", [3])?;
    /// for &op in UnaryOp::ALL {
    ///     let y = g.unary(op, x)?;
    ///     assert_eq!(g.op(y)?.name(), op.name());
    /// }
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.add_op(Op::Unary(op), &[x])
    }

    /// `-x`, elementwise.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.neg(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn neg(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Neg, x)
    }

    /// `e^x`, elementwise. Derivative: `e^x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.exp(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn exp(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Exp, x)
    }

    /// `ln x`, elementwise. Derivative: `1/x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.log(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn log(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Log, x)
    }

    /// `√x`, elementwise. Derivative: `1/(2√x)`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.sqrt(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sqrt(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sqrt, x)
    }

    /// `tanh x`, elementwise. Derivative: `1 - tanh² x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.tanh(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Tanh, x)
    }

    /// `|x|`, elementwise. Derivative: `sign x`, with 0 at the kink.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.abs(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn abs(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Abs, x)
    }

    /// The error function `erf x = (2/√π) ∫₀ˣ e^(-t²) dt`, elementwise. Derivative:
    /// `(2/√π) e^(-x²)`.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// let mut g = Graph::<f64>::new();
    /// let x = g.input("x", [3])?;
    /// let y = g.erf(x)?;
    /// let mut plan = compile(&g, &[y])?;
    /// let v = ndarray::arr1(&[0.0, 1.0, f64::INFINITY]).into_dyn();
    /// let out = plan.run(&g, &[("x", v.view())])?;
    /// let e = out.get(0)?;
    /// assert_eq!((e[0], e[2]), (0.0, 1.0));
    /// assert!((e[1] - 0.842_700_792_949_715).abs() < 1e-15);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn erf(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Erf, x)
    }

    /// `sin x` (radians), elementwise. Derivative: `cos x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f64>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.sin(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sin(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sin, x)
    }

    /// `cos x` (radians), elementwise. Derivative: `-sin x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f64>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.cos(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn cos(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Cos, x)
    }

    /// `ln(1 + x)`, elementwise, exact for tiny `x` (where `log(1 + x)` loses every digit in
    /// the addition). Derivative: `1 / (1 + x)`.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// let mut g = Graph::<f64>::new();
    /// let x = g.input("x", [1])?;
    /// let y = g.log1p(x)?;
    /// let mut plan = compile(&g, &[y])?;
    /// let v = ndarray::arr1(&[1e-20]).into_dyn();
    /// assert_eq!(plan.run(&g, &[("x", v.view())])?.get(0)?[0], 1e-20);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn log1p(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Log1p, x)
    }

    /// `e^x - 1`, elementwise, exact for tiny `x`. Derivative: `e^x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f64>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.expm1(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn expm1(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Expm1, x)
    }

    /// The logistic function `σ(x) = 1 / (1 + e^-x)`, elementwise, to full relative accuracy
    /// in both tails (`σ(-800) = e^-800`, not 0). Derivative: `σ(x) σ(-x)`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let p = g.sigmoid(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Sigmoid, x)
    }

    /// `softplus(x) = ln(1 + e^x)`, elementwise: `x + log1p(e^-x)` above 0 and
    /// `log1p(e^x)` below, so large inputs do not overflow and very negative ones keep their
    /// digits (`softplus(-100) = e^-100`). Derivative: `σ(x)`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.softplus(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn softplus(&mut self, x: NodeId) -> Result<NodeId> {
        self.unary(UnaryOp::Softplus, x)
    }

    /// `x^p` for a scalar exponent (powf). Derivative: `p x^(p-1)`. Integral exponents are
    /// computed by repeated multiplication, so negative bases work for them.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let cube = g.pow(x, 3.0)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn pow(&mut self, x: NodeId, p: f64) -> Result<NodeId> {
        self.add_op(Op::Pow(Scalar(p)), &[x])
    }

    /// `x^n` for an integer exponent (powi): the same op as [`Graph::pow`].
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let square = g.powi(x, 2)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn powi(&mut self, x: NodeId, n: i32) -> Result<NodeId> {
        self.pow(x, f64::from(n))
    }
}
