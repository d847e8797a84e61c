//! Max and average pooling over NHWC images, and the linear maps of their derivatives.
//!
//! A pool of size `(ph, pw)` with strides `(sh, sw)` and `valid` or `same` padding (see
//! [`window`](super::window); Keras' `MaxPooling2D` defaults the strides to the pool size)
//! reduces each window of each channel to one value:
//!
//! - `max_pool2d(x)[n, i, j, c] = max over the window's pixels (h, v) of x[n, h, v, c]`;
//! - `avg_pool2d(x)[n, i, j, c] = (1 / |window|) Σ x[n, h, v, c]`, where `|window|` counts only
//!   the pixels inside the image (padding is not averaged in, as in TensorFlow).
//!
//! Shape rule: `x` has rank 4 with known height and width (batch and channels may be
//! dynamic); the output is `[N, OH, OW, C]`.
//!
//! **Tie rule.** The maximum of a window is attributed to its *first* maximal element in
//! row-major window order (top row first, left to right), as TensorFlow does: that one element
//! receives the whole gradient. A NaN counts as larger than any number, so it propagates, and
//! the first NaN takes the gradient.
//!
//! Derivatives. Average pooling is linear: `x̄ = avg_pool2d_grad(ȳ)`, which spreads each
//! `ȳ[n, i, j, c] / |window|` over the window's pixels, and the two are each other's adjoints.
//! Max pooling selects one element per window, `y = G_x(x)` where the gather `G_x(v)` reads `v`
//! at the argmax positions of `x`; with the argmax held fixed (it is piecewise constant), the
//! derivative is the scatter `S_x(ȳ)`, adding each `ȳ` into its window's argmax position.
//! `S_x` and `G_x` are adjoint (`⟨S_x(ȳ), v⟩ = ⟨ȳ, G_x(v)⟩`), so `max_pool2d_scatter`'s
//! derivative is `max_pool2d_gather` and back, with no gradient into the `x` that only picks
//! the positions: gradients of any order stay within this family.

use crate::error::{GraphError, Result};
use crate::ops::window::{axes2, fixed_hw, Axis1, Padding};
use crate::ops::{check_arity, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

mod kernel;
#[cfg(target_arch = "x86_64")]
mod quad;

/// Size, strides and padding of a pooling window.
///
/// ```
/// use dendrite_graph::ops::{Padding, Pool2d};
/// let p = Pool2d::new([2, 2]);
/// assert_eq!((p.strides, p.padding), ([2, 2], Padding::Valid));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// Window `[height, width]`.
    pub size: [usize; 2],
    /// Steps between windows.
    pub strides: [usize; 2],
    /// `valid` or `same`.
    pub padding: Padding,
}

impl Pool2d {
    /// A `size` window moving by its own size, `valid` padding: Keras' `MaxPooling2D(size)`.
    pub fn new(size: [usize; 2]) -> Self {
        Pool2d {
            size,
            strides: size,
            padding: Padding::Valid,
        }
    }
}

family! {
    /// Pooling and the linear maps of its derivatives.
    ///
    /// ```
    /// use dendrite_graph::ops::PoolOp;
    /// assert_eq!(PoolOp::NAMES[0], "max_pool2d");
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum PoolOp {
        /// `max_pool2d(x)`.
        Max(Pool2d) => "max_pool2d",
        /// `S_x(ȳ)`: `ȳ` added into the argmax positions of `x`'s windows, shaped like `x`.
        MaxScatter(Pool2d) => "max_pool2d_scatter",
        /// `G_x(v)`: `v` read at the argmax positions of `x`'s windows, shaped like the pool.
        MaxGather(Pool2d) => "max_pool2d_gather",
        /// `avg_pool2d(x)`.
        Avg(Pool2d) => "avg_pool2d",
        /// The adjoint of average pooling over an image of height and width `input_hw`.
        AvgGrad {
            /// The pooling whose gradient this is.
            pool: Pool2d,
            /// Height and width of its input.
            input_hw: [usize; 2],
        } => "avg_pool2d_grad",
    }
}

impl PoolOp {
    fn pool(&self) -> Pool2d {
        match *self {
            PoolOp::Max(p)
            | PoolOp::MaxScatter(p)
            | PoolOp::MaxGather(p)
            | PoolOp::Avg(p)
            | PoolOp::AvgGrad { pool: p, .. } => p,
        }
    }
}

fn windows(op: &PoolOp, node: &str, image: &Shape, hw: [usize; 2]) -> Result<[Axis1; 2]> {
    let p = op.pool();
    axes2(
        op.name(),
        node,
        image,
        hw,
        p.size,
        p.strides,
        [1, 1],
        p.padding,
    )
}

fn pooled(image: &Shape, axes: &[Axis1; 2]) -> Shape {
    let d = image.dims();
    Shape::new([d[0], Dim::Fixed(axes[0].out), Dim::Fixed(axes[1].out), d[3]])
}

/// Whether two shapes can be equal at run time.
fn compatible(a: &Shape, b: &Shape) -> bool {
    a.rank() == b.rank()
        && a.dims()
            .iter()
            .zip(b.dims())
            .all(|(x, y)| !matches!((x, y), (Dim::Fixed(p), Dim::Fixed(q)) if p != q))
}

pub(crate) fn infer(op: &PoolOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let name = op.name();
    let arity = match op {
        PoolOp::Max(_) | PoolOp::Avg(_) | PoolOp::AvgGrad { .. } => 1,
        PoolOp::MaxScatter(_) | PoolOp::MaxGather(_) => 2,
    };
    check_arity(name, node, operands, arity)?;
    let x = operands[0];
    let (image, axes) = match *op {
        PoolOp::AvgGrad { input_hw, .. } => {
            fixed_hw(name, node, x)?;
            let d = x.dims();
            let image = Shape::new([d[0], Dim::Fixed(input_hw[0]), Dim::Fixed(input_hw[1]), d[3]]);
            (image.clone(), windows(op, node, &image, input_hw)?)
        }
        _ => (x.clone(), windows(op, node, x, fixed_hw(name, node, x)?)?),
    };
    let out = pooled(&image, &axes);
    let mismatch = |reason, lhs: &Shape, rhs: &Shape| GraphError::IncompatibleShapes {
        op: name,
        node: node.to_owned(),
        reason,
        lhs: lhs.clone(),
        rhs: rhs.clone(),
    };
    match op {
        PoolOp::Max(_) | PoolOp::Avg(_) => Ok(out),
        PoolOp::AvgGrad { .. } if compatible(x, &out) => Ok(image),
        PoolOp::MaxScatter(_) if compatible(operands[1], &out) => Ok(x.clone()),
        PoolOp::MaxGather(_) if compatible(operands[1], x) => Ok(out),
        PoolOp::AvgGrad { .. } => Err(mismatch(
            "cotangent is not shaped like the pool's output",
            x,
            &out,
        )),
        PoolOp::MaxScatter(_) => Err(mismatch(
            "cotangent is not shaped like the pool's output",
            operands[1],
            &out,
        )),
        PoolOp::MaxGather(_) => Err(mismatch(
            "values are not shaped like the image",
            operands[1],
            x,
        )),
    }
}

pub(crate) fn forward<F: Element>(
    op: &PoolOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let shapes: smallvec::SmallVec<[Shape; 2]> =
        inputs.iter().map(|v| Shape::fixed(v.shape())).collect();
    let refs: smallvec::SmallVec<[&Shape; 2]> = shapes.iter().collect();
    infer(op, node, &refs)?;
    let image: &[usize] = match op {
        PoolOp::AvgGrad { .. } => out.shape(),
        _ => inputs[0].shape(),
    };
    let hw = [image[1], image[2]];
    let run = kernel::Run {
        axes: windows(op, node, &shapes[0], hw)?,
        batch: image[0],
        c: image[3],
    };
    let views: smallvec::SmallVec<[_; 2]> = inputs.iter().map(|v| v.as_standard_layout()).collect();
    let slices: Option<smallvec::SmallVec<[&[F]; 2]>> =
        views.iter().map(|v| v.as_slice()).collect();
    let (Some(xs), Some(out)) = (slices, out.as_slice_mut()) else {
        return Err(GraphError::Internal {
            op: op.name(),
            node: node.to_owned(),
            what: "an operand or the output is not contiguous",
        });
    };
    let kind = match op {
        PoolOp::Max(_) => kernel::Kind::Max,
        PoolOp::MaxScatter(_) => kernel::Kind::Scatter,
        PoolOp::MaxGather(_) => kernel::Kind::Gather,
        PoolOp::Avg(_) => kernel::Kind::Avg,
        PoolOp::AvgGrad { .. } => kernel::Kind::AvgGrad,
    };
    run.run(kind, &xs, out);
    Ok(())
}

// ANCHOR: pool_vjp
/// | op | gradient |
/// | --- | --- |
/// | `max_pool2d(x)` | `x̄ = S_x(ȳ)` |
/// | `S_x(v)` | `v̄ = G_x(c̄)`; `x`: none |
/// | `G_x(v)` | `v̄ = S_x(c̄)`; `x`: none |
/// | `avg_pool2d(x)` | `x̄ = avg_pool2d_grad(ȳ)` |
/// | `avg_pool2d_grad(y)` | `ȳ = avg_pool2d(c̄)` |
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &PoolOp,
    xs: &[NodeId],
    c_bar: NodeId,
) -> Result<OperandGrads> {
    Ok(match *op {
        PoolOp::Max(p) => smallvec![Some(g.max_pool2d_scatter(xs[0], c_bar, p)?)],
        PoolOp::MaxScatter(p) => smallvec![None, Some(g.max_pool2d_gather(xs[0], c_bar, p)?)],
        PoolOp::MaxGather(p) => smallvec![None, Some(g.max_pool2d_scatter(xs[0], c_bar, p)?)],
        PoolOp::Avg(p) => {
            let hw = fixed_hw(op.name(), g.name(xs[0])?, g.shape(xs[0])?)?;
            smallvec![Some(g.avg_pool2d_grad(c_bar, p, hw)?)]
        }
        PoolOp::AvgGrad { pool, .. } => smallvec![Some(g.avg_pool2d(c_bar, pool)?)],
    })
}
// ANCHOR_END: pool_vjp

impl<F: Element> Graph<F> {
    /// Max pooling of an NHWC image: Keras' `MaxPooling2D`. Ties go to the first maximum in
    /// row-major window order (see the [module](crate::ops::pool) doc).
    ///
    /// The max pooling of a ReLU (`x` built by [`Graph::relu`] from `z`) is built as
    /// `relu(max_pool2d(z))`: the same values and the same gradients of every order, with the
    /// ReLU on the pooled elements (a quarter of them for a 2x2 pool) instead of all of them.
    /// ReLU is monotone, so it commutes with the maximum, and it keeps the first maximal
    /// element first: where the window's maximum is positive both forms pick the same
    /// element, and where it is not, both derivatives are 0 (ReLU's derivative at 0 is 0). A
    /// NaN is a NaN's own ReLU and takes the gradient in both forms.
    ///
    /// # Errors
    /// [`GraphError::InvalidShape`] for a rank other than 4, an unknown height or width, a zero
    /// size or stride, or a window larger than a `valid` image.
    ///
    /// ```
    /// use dendrite_graph::ops::Pool2d;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(26), Some(26), Some(32)])?;
    /// let y = g.max_pool2d(x, Pool2d::new([2, 2]))?;
    /// assert_eq!(g.shape(y)?.to_string(), "[?, 13, 13, 32]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn max_pool2d(&mut self, x: NodeId, pool: Pool2d) -> Result<NodeId> {
        match self.relu_operand(x) {
            Some(z) => self.atomically(|g| {
                let pooled = g.add_op(Op::Pool(PoolOp::Max(pool)), &[z])?;
                g.relu(pooled)
            }),
            None => self.add_op(Op::Pool(PoolOp::Max(pool)), &[x]),
        }
    }

    /// Average pooling of an NHWC image (padding not counted): Keras' `AveragePooling2D`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d`].
    pub fn avg_pool2d(&mut self, x: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::Avg(pool)), &[x])
    }

    /// `S_x(y)`: `y` (shaped like `max_pool2d(x)`) added into the argmax positions of `x`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d`], and [`GraphError::IncompatibleShapes`] for a `y` of another
    /// shape.
    pub fn max_pool2d_scatter(&mut self, x: NodeId, y: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::MaxScatter(pool)), &[x, y])
    }

    /// `G_x(v)`: `v` (shaped like `x`) read at the argmax positions of `x`'s windows.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d_scatter`].
    pub fn max_pool2d_gather(&mut self, x: NodeId, v: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::MaxGather(pool)), &[x, v])
    }

    /// The adjoint of [`Graph::avg_pool2d`] over an image of height and width `input_hw`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d_scatter`].
    pub fn avg_pool2d_grad(
        &mut self,
        y: NodeId,
        pool: Pool2d,
        input_hw: [usize; 2],
    ) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::AvgGrad { pool, input_hw }), &[y])
    }
}
