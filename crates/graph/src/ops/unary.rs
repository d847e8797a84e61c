//! Elementwise functions of one operand: `neg`, `exp`, `log`, `sqrt`, `tanh`, `abs`, `erf`,
//! and `pow` by a scalar exponent.
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
//! | pow | `x^p` | `p x^(p-1)` |

use crate::error::Result;
use crate::ops::{Op, OperandGrads, Scalar};
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use smallvec::smallvec;

/// An elementwise function of one operand.
///
/// ```
/// assert_eq!(dendrite_graph::UnaryOp::Tanh.name(), "tanh");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// Natural logarithm; `-inf` at 0, NaN below.
    Log,
    /// Square root; NaN below 0.
    Sqrt,
    /// Hyperbolic tangent.
    Tanh,
    /// Absolute value.
    Abs,
    /// The error function `(2/√π) ∫₀ˣ e^(-t²) dt` (the exact GELU is built on it).
    Erf,
}

impl UnaryOp {
    /// The op's name.
    ///
    /// ```
    /// assert_eq!(dendrite_graph::UnaryOp::Neg.name(), "neg");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Abs => "abs",
            UnaryOp::Erf => "erf",
        }
    }

    /// Applies the function to one value.
    ///
    /// ```
    /// assert_eq!(dendrite_graph::UnaryOp::Abs.apply(-2.0_f32), 2.0);
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
            UnaryOp::Erf => erf(x),
        }
    }
}

/// `erf x` through the `libm` crate (musl's, accurate to about 1 ulp), computed in `f64` and
/// rounded once, so the `f32` result is within half an ulp of the true value or one more.
#[inline]
fn erf<F: Element>(x: F) -> F {
    F::of(libm::erf(x.as_f64()))
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
        UnaryOp::Erf => map(x, &mut out, erf),
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
    fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.push(Op::Unary(op), &[x])
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
        self.push(Op::Pow(Scalar(p)), &[x])
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
