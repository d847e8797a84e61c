//! Counter-based random numbers: a value depends only on `(seed, step, element index)`.
//!
//! `random_uniform(like, step)` and `random_normal(like, step)` have the shape of `like` (only
//! its shape is read) and take `step`, a scalar holding a non-negative integer, as their second
//! operand. Element `i` (in row-major order) is computed from words of the ChaCha8 keystream
//! (`rand_chacha`) with key `seed` (expanded by `SeedableRng::seed_from_u64`), stream `step`:
//!
//! - uniform: word `i`, its top 24 bits `u = ⌊word / 2⁸⌋ · 2⁻²⁴`, in `[0, 1)`. Every such value
//!   is exact in `f32` and `f64`, so both element types draw the same numbers.
//! - normal: words `2i` and `2i + 1` as `u₁ = (word + ½) · 2⁻³²` in `(0, 1)` and
//!   `u₂ = word · 2⁻³²`, then Box–Muller, `z = √(-2 ln u₁) · cos(2π u₂)`, computed in `f64`.
//!
//! ChaCha is a counter-based generator: the keystream is a function of (key, stream, position),
//! so a value does not depend on the order of evaluation, on threads, or on what was drawn
//! before. Training resumed at step `k` draws what the uninterrupted run drew at step `k`.
//!
//! **Where `step` comes from.** It is an ordinary node, usually a scalar input fed on every run
//! (a training loop keeps one 0-dimensional array and writes the step number into it, which
//! allocates nothing); a constant gives a fixed draw, e.g. for tests. The step is read as an
//! integer: a value that is negative, fractional, not finite or at least 2⁶⁴ is refused with
//! [`GraphError::IndexOutOfRange`]. In `f32` integers are exact up to 2²⁴ (16.7 million steps).
//!
//! Two nodes with the same seed, the same step and the same shape draw the *same* values (they
//! are the same function, and common-subexpression elimination may merge them): give each
//! stochastic layer a seed of its own.
//!
//! Derivative: none flows into either operand; the values are piecewise constant in the step
//! and do not depend on `like`'s values at all. `bernoulli` is a composite: `[u < p]`.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, OperandGrads};
use crate::shape::Shape;
use crate::team::Team;
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smallvec::smallvec;

family! {
    /// Counter-based random draws.
    ///
    /// ```
    /// use dendrite_graph::ops::RandomOp;
    /// assert_eq!(RandomOp::NAMES, &["random_uniform", "random_normal"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum RandomOp {
        /// Uniform on `[0, 1)`, 24 random bits.
        Uniform {
            /// The generator's key.
            seed: u64,
        } => "random_uniform",
        /// Standard normal by Box–Muller.
        Normal {
            /// The generator's key.
            seed: u64,
        } => "random_normal",
    }
}

pub(crate) fn infer(op: &RandomOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op.name(), node, operands, 2)?;
    if operands[1].rank() != 0 {
        return Err(GraphError::InvalidShape {
            op: op.name(),
            node: node.to_owned(),
            reason: "the step operand must be a scalar".into(),
            shape: operands[1].clone(),
        });
    }
    Ok(operands[0].clone())
}

/// The step as an integer, or why it is not one.
fn step_of<F: Element>(op: &RandomOp, node: &str, step: &ArrayViewD<'_, F>) -> Result<u64> {
    let v = step.iter().next().map_or(f64::NAN, |s| s.as_f64());
    // 2⁶⁴ as f64 is exact; every f64 below it that is an integer converts without loss.
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0 {
        Ok(v as u64)
    } else {
        Err(GraphError::IndexOutOfRange {
            op: op.name(),
            node: node.to_owned(),
            value: v,
            position: 0,
            bound: usize::MAX,
            indices_shape: step.shape().to_vec(),
        })
    }
}

/// The generator of one draw: key `seed`, stream `step`, at position 0.
fn generator(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    rng
}

/// `2⁻²⁴` and `2⁻³²`.
const TWO_POW_M24: f64 = 1.0 / 16_777_216.0;
const TWO_POW_M32: f64 = 1.0 / 4_294_967_296.0;

/// The uniform value of one keystream word.
pub(crate) fn uniform_of(word: u32) -> f64 {
    f64::from(word >> 8) * TWO_POW_M24
}

/// The normal value of two keystream words.
pub(crate) fn normal_of(w1: u32, w2: u32) -> f64 {
    let u1 = (f64::from(w1) + 0.5) * TWO_POW_M32;
    let u2 = f64::from(w2) * TWO_POW_M32;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn forward<F: Element>(
    op: &RandomOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
    team: Team,
) -> Result<()> {
    let step = step_of(op, node, &inputs[1])?;
    let Some(out) = out.as_slice_mut() else {
        return Err(GraphError::Internal {
            op: op.name(),
            node: node.to_owned(),
            what: "the output is not contiguous",
        });
    };
    // Element `i` reads keystream word `i` (or `2i`, `2i + 1`) whichever chunk it falls in,
    // so the chunks are the team's tasks and the values do not depend on the thread count.
    let words_per_value = match op {
        RandomOp::Uniform { .. } => 1,
        RandomOp::Normal { .. } => 2,
    };
    let mut no_scratch: [u8; 0] = [];
    team.for_chunks(out, CHUNK, &mut no_scratch, 0, &|task, out, _| {
        let mut rng = generator(op.seed(), step);
        rng.set_word_pos((task * CHUNK * words_per_value) as u128);
        match op {
            RandomOp::Uniform { .. } => out
                .iter_mut()
                .for_each(|v| *v = F::of(uniform_of(rng.next_u32()))),
            RandomOp::Normal { .. } => out.iter_mut().for_each(|v| {
                let w1 = rng.next_u32();
                *v = F::of(normal_of(w1, rng.next_u32()));
            }),
        }
    });
    Ok(())
}

/// Values per task of a draw (a dropout mask of the convnet is 12 tasks).
const CHUNK: usize = 1 << 14;

impl RandomOp {
    fn seed(&self) -> u64 {
        match *self {
            RandomOp::Uniform { seed } | RandomOp::Normal { seed } => seed,
        }
    }
}

/// No gradient flows: the values do not depend on `like`'s values, and are piecewise constant
/// in the step.
pub(crate) fn vjp() -> OperandGrads {
    smallvec![None, None]
}

impl<F: Element> Graph<F> {
    /// Uniform values in `[0, 1)` shaped like `like`, a function of `(seed, step, index)` only
    /// (see the [module](crate::ops::random) doc).
    ///
    /// # Errors
    /// [`GraphError::InvalidShape`] when `step` is not a scalar; at run time
    /// [`GraphError::IndexOutOfRange`] when it does not hold a non-negative integer.
    ///
    /// ```
    /// use dendrite_graph::{compile, Graph};
    /// let mut g = Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(4)])?;
    /// let step = g.input("step", dendrite_graph::Shape::scalar())?;
    /// let u = g.random_uniform(x, step, 7)?;
    /// let mut plan = compile(&g, &[u])?;
    /// let xs = ndarray::Array2::<f32>::zeros((2, 4)).into_dyn();
    /// let s = ndarray::arr0(3.0_f32).into_dyn();
    /// let a = plan.run(&g, &[("x", xs.view()), ("step", s.view())])?.get(0)?.to_owned();
    /// let b = plan.run(&g, &[("x", xs.view()), ("step", s.view())])?.get(0)?.to_owned();
    /// assert_eq!(a, b); // same seed, same step: same values
    /// assert!(a.iter().all(|&v| (0.0..1.0).contains(&v)));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn random_uniform(&mut self, like: NodeId, step: NodeId, seed: u64) -> Result<NodeId> {
        self.add_op(Op::Random(RandomOp::Uniform { seed }), &[like, step])
    }

    /// Standard normal values shaped like `like` (Box–Muller from two uniforms per element).
    ///
    /// # Errors
    /// As [`Graph::random_uniform`].
    pub fn random_normal(&mut self, like: NodeId, step: NodeId, seed: u64) -> Result<NodeId> {
        self.add_op(Op::Random(RandomOp::Normal { seed }), &[like, step])
    }

    /// A mask shaped like `like` holding 1 with probability `p` and 0 otherwise: `[u < p]` for
    /// `u = random_uniform(like, step, seed)`. Dropout at rate `r` keeps with `p = 1 - r`.
    ///
    /// # Errors
    /// As [`Graph::random_uniform`], and [`GraphError::InvalidShape`] for a `p` outside `[0, 1]`.
    pub fn bernoulli(&mut self, like: NodeId, step: NodeId, seed: u64, p: f64) -> Result<NodeId> {
        if !(0.0..=1.0).contains(&p) {
            return Err(GraphError::InvalidShape {
                op: "bernoulli",
                node: self.name(like)?.to_owned(),
                reason: format!("probability {p} is not in [0, 1]"),
                shape: self.shape(like)?.clone(),
            });
        }
        self.atomically(|g| {
            let u = g.random_uniform(like, step, seed)?;
            let p = g.scalar(p);
            g.compare(crate::CompareOp::Lt, u, p)
        })
    }
}
