//! Composite ops: built from primitives, so they need no derivative rule of their own and
//! their gradients (of any order) come from the primitives' rules.
//!
//! Where the obvious formula is numerically unsafe, the composite says so and uses a safe one.
//! Where no composition is accurate enough the function became a primitive instead: sigmoid,
//! softplus, log1p and expm1 (see [`crate::ops::unary`]) and logsumexp (see
//! [`crate::ops::softmax`]).

use crate::error::Result;
use crate::ops::Axes;
use crate::{Element, Graph, NodeId, Op};

impl<F: Element> Graph<F> {
    /// `x²`, as `x · x`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let sq = g.square(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn square(&mut self, x: NodeId) -> Result<NodeId> {
        self.mul(x, x)
    }

    /// `x · c` for a scalar `c`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let half = g.scale(x, 0.5)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn scale(&mut self, x: NodeId, c: f64) -> Result<NodeId> {
        self.atomically(|g| {
            let c = g.scalar(c);
            g.mul(x, c)
        })
    }

    /// A tensor of ones with `x`'s run-time shape.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [None, Some(2)])?;
    /// let ones = g.ones_like(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn ones_like(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let one = g.scalar(1.0);
            g.broadcast_like(one, x)
        })
    }

    /// A tensor of zeros with `x`'s run-time shape.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [3])?;
    /// let zeros = g.zeros_like(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn zeros_like(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let zero = g.scalar(0.0);
            g.broadcast_like(zero, x)
        })
    }

    /// `sign x` ∈ {-1, 0, 1}, as `[x > 0] - [x < 0]`. Piecewise constant: no gradient.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let s = g.sign(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sign(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let zero = g.scalar(0.0);
            let positive = g.greater(x, zero)?;
            let negative = g.less(x, zero)?;
            g.sub(positive, negative)
        })
    }

    /// `relu(x) = max(x, 0)`, written `select(x <= 0, 0, x)`.
    ///
    /// The kink: the derivative at exactly 0 is taken to be 0. Writing this as
    /// `maximum(x, 0)` would give ½ there (maximum splits ties), which is also a valid
    /// subgradient but not what Keras, PyTorch or JAX report. The comparison is `x <= 0` and
    /// not `x > 0` for NaN's sake: every comparison with NaN is false, so this form passes a
    /// NaN through (relu(NaN) = NaN, as in NumPy) where `select(x > 0, x, 0)` would hide it
    /// as 0.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.relu(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let zero = g.scalar(0.0);
            let not_positive = g.compare(crate::CompareOp::Le, x, zero)?;
            g.select(not_positive, zero, x)
        })
    }

    /// The `z` of a node built by [`Graph::relu`] as `relu(z)`: `select(z <= 0, 0, z)` with
    /// the constant scalar 0. `None` for any other node.
    pub(crate) fn relu_operand(&self, x: NodeId) -> Option<NodeId> {
        let is_zero = |n: NodeId| {
            matches!(self.op(n), Ok(Op::Constant))
                && self
                    .value(n)
                    .is_ok_and(|v| v.ndim() == 0 && v.iter().all(|&v| v == F::zero()))
        };
        let select = self.operands(x).ok()?;
        let ([mask, zero, z], Ok(Op::Select)) = (select.as_slice(), self.op(x)) else {
            return None;
        };
        let compare = self.operands(*mask).ok()?;
        let [z2, zero2] = compare.as_slice() else {
            return None;
        };
        let le = matches!(self.op(*mask), Ok(Op::Compare(crate::CompareOp::Le)));
        (le && z2 == z && is_zero(*zero) && is_zero(*zero2)).then_some(*z)
    }

    /// `leaky_relu(x) = x` for `x > 0`, else `alpha · x` (derivative `alpha` at 0; NaN passes
    /// through, as in [`Graph::relu`]).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.leaky_relu(x, 0.01)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn leaky_relu(&mut self, x: NodeId, alpha: f64) -> Result<NodeId> {
        self.atomically(|g| {
            let zero = g.scalar(0.0);
            let not_positive = g.compare(crate::CompareOp::Le, x, zero)?;
            let leaked = g.scale(x, alpha)?;
            g.select(not_positive, leaked, x)
        })
    }

    /// GELU, `x Φ(x) = ½ x (1 + erf(x / √2))`: the input weighted by the probability that a
    /// standard normal variable is below it. Keras' `gelu` (its default `approximate=False`).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.gelu(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn gelu(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let z = g.scale(x, std::f64::consts::FRAC_1_SQRT_2)?;
            let e = g.erf(z)?;
            let one = g.scalar(1.0);
            let one_plus = g.add(one, e)?;
            let half_x = g.scale(x, 0.5)?;
            g.mul(half_x, one_plus)
        })
    }

    /// GELU's tanh approximation, `½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (Keras'
    /// `gelu(approximate=True)`, the form GPT-2 used); within 0.0005 of [`Graph::gelu`].
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let y = g.gelu_tanh(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn gelu_tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.atomically(|g| {
            let x3 = g.pow(x, 3.0)?;
            let c = g.scale(x3, 0.044715)?;
            let inner = g.add(x, c)?;
            let scaled = g.scale(inner, (2.0 / std::f64::consts::PI).sqrt())?;
            let t = g.tanh(scaled)?;
            let one = g.scalar(1.0);
            let one_plus = g.add(one, t)?;
            let half_x = g.scale(x, 0.5)?;
            g.mul(half_x, one_plus)
        })
    }

    /// `softmax(x)_i = e^{x_i} / Σ_j e^{x_j}` along `axis`, as `exp(log_softmax(x))`: the
    /// stable kernel subtracts the maximum first, and the exponential of a log-probability never
    /// overflows.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("logits", [None, Some(10)])?;
    /// let p = g.softmax(x, 1)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn softmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.atomically(|g| {
            let log_p = g.log_softmax(x, axis)?;
            g.exp(log_p)
        })
    }

    /// Arithmetic mean over `axes`: the sum divided by the element count (a constant when the
    /// axes are fixed, [`Graph::dim_size`] when one is dynamic).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [None, Some(10)])?;
    /// let per_feature = g.mean(x, &[0], false)?;
    /// assert_eq!(g.shape(per_feature)?.to_string(), "[10]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.atomically(|g| {
            let s = g.reduce(crate::ReduceOp::Sum, x, axes, keep_dims)?;
            let shape = g.shape(x)?.clone();
            let count: Option<usize> = axes
                .iter()
                .map(|&a| shape.dims().get(a).and_then(|d| d.fixed()))
                .product();
            match count {
                Some(n) => g.scale(s, 1.0 / n as f64),
                None => {
                    let n = g.dim_size(x, axes)?;
                    g.div(s, n)
                }
            }
        })
    }

    /// Mean of every element, as a scalar.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [None, Some(10)])?;
    /// let m = g.mean_all(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn mean_all(&mut self, x: NodeId) -> Result<NodeId> {
        let axes: Axes = (0..self.shape(x)?.rank()).collect();
        self.mean(x, &axes, false)
    }

    /// Population variance over `axes`: `mean((x - mean(x))²)`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [None, Some(10)])?;
    /// let v = g.variance(x, &[1], true)?;
    /// assert_eq!(g.shape(v)?.to_string(), "[?, 1]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn variance(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.atomically(|g| {
            let m = g.mean(x, axes, true)?;
            let d = g.sub(x, m)?;
            let d2 = g.square(d)?;
            g.mean(d2, axes, keep_dims)
        })
    }
}
