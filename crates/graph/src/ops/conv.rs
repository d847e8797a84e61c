//! Two-dimensional convolution over NHWC images, and the two linear maps its derivative needs.
//!
//! With an input `x` of shape `[N, H, W, C]` (batch, height, width, channels: Keras'
//! `channels_last`), a kernel `w` of shape `[KH, KW, C, O]` (TensorFlow's HWIO), strides
//! `(sh, sw)`, dilation `(dh, dw)` and `valid` or `same` padding (see [`window`](super::window)):
//!
//! ```text
//! conv2d(x, w)[n, i, j, o]
//!     = Σ_{p, q, c} x[n, i·sh + p·dh - top, j·sw + q·dw - left, c] · w[p, q, c, o]
//! ```
//!
//! where positions outside the image read zero. Shape rule: `x` has rank 4 with known height,
//! width and channels (the batch may be dynamic); `w` has rank 4, every size known, and `C`
//! input channels; the output is `[N, OH, OW, O]` with the window lengths of `window`.
//!
//! The output is bilinear in `(x, w)`: `⟨conv2d(x, w), ȳ⟩ = ⟨x, T(ȳ, w)⟩ = ⟨w, K(x, ȳ)⟩`, which
//! defines the two other members of the family:
//!
//! - `conv2d_input_grad`, the transposed convolution (every output pixel sends its value back
//!   along the taps that read it):
//!   `T(ȳ, w)[n, h, v, c] = Σ ȳ[n, i, j, o] w[p, q, c, o]` over the `i, j, p, q, o` with
//!   `i·sh + p·dh - top = h` and `j·sw + q·dw - left = v`;
//! - `conv2d_kernel_grad`, the correlation of the input with the cotangent:
//!   `K(x, ȳ)[p, q, c, o] = Σ_{n, i, j} x[n, i·sh + p·dh - top, j·sw + q·dw - left, c]
//!   ȳ[n, i, j, o]`.
//!
//! A fourth member adds a bias per output channel in the same pass, Keras' `Conv2D` with its
//! bias: `conv2d_bias(x, w, b)[n, i, j, o] = conv2d(x, w)[n, i, j, o] + b[o]`, `b` of shape
//! `[O]`. The kernels add `b` to each group of output rows right after its product, while
//! the rows are still in cache, instead of a separate broadcast add reading and writing the
//! whole output again; the values are those of `add(conv2d(x, w), b)`, bit for bit (the same
//! sum, then the same addition). Its gradients are those of the two ops: `x̄ = T(ȳ, w)`,
//! `w̄ = K(x, ȳ)` and `b̄ = sum_like(ȳ, b)`, the sum of `ȳ` over the batch and the pixels.
//!
//! So `x̄ = T(ȳ, w)` and `w̄ = K(x, ȳ)`; and since each of the three is bilinear in its
//! operands, each one's derivative is again a member of the family (the book's convolution page
//! lists them): gradients of any order stay within these three kernels.
//!
//! Kernels: GEMM over an im2col. Per image, the `OH·OW` windows are copied as rows of a
//! `[OH·OW, KH·KW·C]` matrix in the step's scratch buffer (kept by the plan across runs, so a
//! run allocates nothing once it has seen its largest batch), then multiplied by the kernel
//! seen as a `[KH·KW·C, O]` matrix with the crate's GEMM. `T` multiplies the cotangent by the
//! transposed kernel and adds the rows back into the image (col2im); `K` multiplies the
//! transposed im2col by the cotangent and sums over the images of the batch in order, so
//! results do not depend on anything but the operands. Two geometries take other kernels:
//! stride-1 3×3 windows with 8 channels or more on each side run by Winograd's F(4×4, 3×3)
//! (`conv/winograd.rs`), and one-channel 3×3 windows with no padding (an image's first layer) run
//! directly on `f32` vectors, where im2col's copy would cost as much as its `K = 9` product
//! (`conv/direct.rs`). Where only a 2×2 max pool and its gradient read such a convolution, the
//! plan runs it inside them, never writing its output (`conv/pooled.rs`, `plan/fuse.rs`).

#[cfg(target_arch = "x86_64")]
mod direct;
mod kernel;
mod pooled;
mod winograd;

pub(crate) use pooled::PooledConv;

use crate::error::{GraphError, Result};
use crate::ops::window::{axes2, fixed_dim, fixed_hw, Axis1, Padding};
use crate::ops::{check_arity, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::team::Team;
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

/// Strides, dilation and padding of a convolution (the kernel's size comes from its operand).
///
/// ```
/// use dendrite_graph::ops::{Conv2d, Padding};
/// let c = Conv2d::default();
/// assert_eq!((c.strides, c.dilation, c.padding), ([1, 1], [1, 1], Padding::Valid));
/// let strided = Conv2d { strides: [2, 2], padding: Padding::Same, ..Conv2d::default() };
/// assert_eq!(strided.dilation, [1, 1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2d {
    /// Steps between windows, `[height, width]`; at least 1.
    pub strides: [usize; 2],
    /// Spacing between kernel taps, `[height, width]`; 1 is a plain convolution.
    pub dilation: [usize; 2],
    /// `valid` (no padding) or `same` (Keras and TensorFlow's, the extra row and column at the
    /// bottom and right).
    pub padding: Padding,
}

impl Default for Conv2d {
    /// Stride 1, dilation 1, `valid` padding: Keras' `Conv2D` defaults.
    fn default() -> Self {
        Conv2d {
            strides: [1, 1],
            dilation: [1, 1],
            padding: Padding::Valid,
        }
    }
}

family! {
    /// Convolution and the two linear maps of its derivative.
    ///
    /// ```
    /// use dendrite_graph::ops::ConvOp;
    /// assert_eq!(
    ///     ConvOp::NAMES,
    ///     &["conv2d", "conv2d_bias", "conv2d_input_grad", "conv2d_kernel_grad"]
    /// );
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum ConvOp {
        /// `conv2d(x, w)`.
        Conv2d(Conv2d) => "conv2d",
        /// `conv2d(x, w) + b`, with `b` of shape `[O]`.
        Conv2dBias(Conv2d) => "conv2d_bias",
        /// `T(ȳ, w)`: the transposed convolution, shaped like an input of `input_hw`.
        InputGrad {
            /// The convolution whose input gradient this is.
            conv: Conv2d,
            /// Height and width of that convolution's input.
            input_hw: [usize; 2],
        } => "conv2d_input_grad",
        /// `K(x, ȳ)`: the kernel gradient, shaped like a kernel of `kernel_hw`.
        KernelGrad {
            /// The convolution whose kernel gradient this is.
            conv: Conv2d,
            /// Height and width of that convolution's kernel.
            kernel_hw: [usize; 2],
        } => "conv2d_kernel_grad",
    }
}

/// Sizes of one convolution: batch, channels in and out, and the two window axes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub batch: Dim,
    pub c: usize,
    pub o: usize,
    pub axes: [Axis1; 2],
}

impl Geometry {
    /// Output pixels per image: rows of the im2col matrix.
    pub fn rows(&self) -> usize {
        self.axes[0].out * self.axes[1].out
    }
    /// Kernel taps times input channels: columns of the im2col matrix.
    pub fn taps(&self) -> usize {
        self.axes[0].k * self.axes[1].k * self.c
    }
    /// Input elements per image.
    pub fn image(&self) -> usize {
        self.axes[0].n * self.axes[1].n * self.c
    }
    fn out_image(&self) -> Shape {
        let [h, w] = self.axes;
        Shape::new([
            self.batch,
            Dim::Fixed(h.out),
            Dim::Fixed(w.out),
            Dim::Fixed(self.o),
        ])
    }
    fn in_image(&self) -> Shape {
        let [h, w] = self.axes;
        Shape::new([
            self.batch,
            Dim::Fixed(h.n),
            Dim::Fixed(w.n),
            Dim::Fixed(self.c),
        ])
    }
}

/// Whether two batch sizes can be the same at run time.
fn batches_agree(a: Dim, b: Dim) -> bool {
    !matches!((a, b), (Dim::Fixed(x), Dim::Fixed(y)) if x != y)
}

fn mismatch(op: &ConvOp, node: &str, reason: &'static str, lhs: &Shape, rhs: &Shape) -> GraphError {
    GraphError::IncompatibleShapes {
        op: op.name(),
        node: node.to_owned(),
        reason,
        lhs: lhs.clone(),
        rhs: rhs.clone(),
    }
}

/// The geometry the operands describe, checked: rank 4 each, channels that agree, a window that
/// fits, sizes that do not overflow.
pub(crate) fn geometry(op: &ConvOp, node: &str, operands: &[&Shape]) -> Result<Geometry> {
    let name = op.name();
    let arity = if matches!(op, ConvOp::Conv2dBias(_)) {
        3
    } else {
        2
    };
    check_arity(name, node, operands, arity)?;
    let (a, b) = (operands[0], operands[1]);
    let (conv, sizes) = declared_sizes(op, node, a, b)?;
    if sizes.c == 0 || sizes.o == 0 {
        return Err(mismatch(
            op,
            node,
            "channel counts must be at least 1",
            a,
            b,
        ));
    }
    let axes = axes2(
        name,
        node,
        a,
        sizes.hw,
        sizes.kernel_hw,
        conv.strides,
        conv.dilation,
        conv.padding,
    )?;
    let geo = Geometry {
        batch: a.dims()[0],
        c: sizes.c,
        o: sizes.o,
        axes,
    };
    if !buffers_fit(&geo) {
        return Err(mismatch(op, node, "sizes overflow", a, b));
    }
    check_cotangent(op, node, &geo, a, b)?;
    if let Some(bias) = operands.get(2) {
        check_bias(op, node, &geo, bias)?;
    }
    Ok(geo)
}

/// The bias of `conv2d_bias` must have the shape `[O]`, one value per output channel.
fn check_bias(op: &ConvOp, node: &str, geo: &Geometry, bias: &Shape) -> Result<()> {
    let expected = Shape::fixed(&[geo.o]);
    if *bias == expected {
        Ok(())
    } else {
        let reason = "bias must have one value per output channel";
        Err(mismatch(op, node, reason, bias, &expected))
    }
}

/// The sizes a convolution's operands fix, before the window is checked against them.
struct Sizes {
    /// Image height and width.
    hw: [usize; 2],
    /// Kernel height and width.
    kernel_hw: [usize; 2],
    /// Input channels.
    c: usize,
    /// Output channels.
    o: usize,
}

/// Reads the image, kernel and channel sizes from the operands each op has: the image and the
/// kernel, the cotangent and the kernel, or the image and the cotangent.
fn declared_sizes(op: &ConvOp, node: &str, a: &Shape, b: &Shape) -> Result<(Conv2d, Sizes)> {
    let name = op.name();
    // An array, not a `Vec`: this runs on every kernel call, which must not allocate.
    let kernel = |b: &Shape| -> Result<[usize; 4]> {
        let dim = |i| fixed_dim(name, node, b, i, "kernel size");
        Ok([dim(0)?, dim(1)?, dim(2)?, dim(3)?])
    };
    Ok(match *op {
        ConvOp::Conv2d(conv) | ConvOp::Conv2dBias(conv) => {
            let hw = fixed_hw(name, node, a)?;
            let c = fixed_dim(name, node, a, 3, "channel count")?;
            let k = kernel(b)?;
            if k[2] != c {
                let reason = "kernel input channels differ from the image's";
                return Err(mismatch(op, node, reason, a, b));
            }
            let kernel_hw = [k[0], k[1]];
            (
                conv,
                Sizes {
                    hw,
                    kernel_hw,
                    c,
                    o: k[3],
                },
            )
        }
        ConvOp::InputGrad { conv, input_hw } => {
            let k = kernel(b)?;
            let kernel_hw = [k[0], k[1]];
            (
                conv,
                Sizes {
                    hw: input_hw,
                    kernel_hw,
                    c: k[2],
                    o: k[3],
                },
            )
        }
        ConvOp::KernelGrad { conv, kernel_hw } => {
            let hw = fixed_hw(name, node, a)?;
            let c = fixed_dim(name, node, a, 3, "channel count")?;
            let o = fixed_dim(name, node, b, 3, "channel count")?;
            (
                conv,
                Sizes {
                    hw,
                    kernel_hw,
                    c,
                    o,
                },
            )
        }
    })
}

/// Whether one image's im2col, the image, one output image and the kernel stay within `usize`,
/// so that the kernels' index arithmetic cannot overflow.
fn buffers_fit(geo: &Geometry) -> bool {
    let [h, w] = geo.axes;
    let (c, o) = (geo.c, geo.o);
    let product = |v: &[usize]| v.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    [
        product(&[h.out, w.out, h.k, w.k, c]),
        product(&[h.n, w.n, c]),
        product(&[h.out, w.out, o]),
        product(&[h.k, w.k, c, o]),
    ]
    .iter()
    .all(Option::is_some)
}

/// The cotangent operand of the two gradients must have the convolution's output shape.
fn check_cotangent(op: &ConvOp, node: &str, geo: &Geometry, a: &Shape, b: &Shape) -> Result<()> {
    let y_bar = match op {
        ConvOp::Conv2d(_) | ConvOp::Conv2dBias(_) => return Ok(()),
        ConvOp::InputGrad { .. } => a,
        ConvOp::KernelGrad { .. } => b,
    };
    let expected = Geometry {
        batch: y_bar.dims().first().copied().unwrap_or(Dim::Dynamic),
        ..*geo
    }
    .out_image();
    let agree = y_bar.rank() == 4
        && y_bar.dims()[1..] == expected.dims()[1..]
        && batches_agree(y_bar.dims()[0], geo.batch);
    if agree {
        Ok(())
    } else {
        let reason = "cotangent does not have the convolution's output shape";
        Err(mismatch(op, node, reason, y_bar, &expected))
    }
}

pub(crate) fn infer(op: &ConvOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let geo = geometry(op, node, operands)?;
    Ok(match *op {
        ConvOp::Conv2d(_) | ConvOp::Conv2dBias(_) => geo.out_image(),
        ConvOp::InputGrad { .. } => geo.in_image(),
        ConvOp::KernelGrad { .. } => {
            let [h, w] = geo.axes;
            Shape::fixed(&[h.k, w.k, geo.c, geo.o])
        }
    })
}

pub(crate) fn forward<F: Element>(
    op: &ConvOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    out: ArrayViewMutD<'_, F>,
    scratch: &mut Vec<F>,
    team: Team,
) -> Result<()> {
    // Arrays, not `Vec`s: this runs on every kernel call, which must not allocate.
    let shapes: [Shape; 3] = std::array::from_fn(|i| {
        inputs
            .get(i)
            .map_or_else(Shape::scalar, |v| Shape::fixed(v.shape()))
    });
    let operands = [&shapes[0], &shapes[1], &shapes[2]];
    let geo = geometry(op, node, &operands[..inputs.len().min(3)])?;
    let (a, b) = (
        inputs[0].as_standard_layout(),
        inputs[1].as_standard_layout(),
    );
    let bias = inputs.get(2).map(|b| b.as_standard_layout());
    let mut out = out;
    let not_contiguous = || GraphError::Internal {
        op: op.name(),
        node: node.to_owned(),
        what: "an operand or the output is not contiguous",
    };
    let (Some(a), Some(b), Some(out)) = (a.as_slice(), b.as_slice(), out.as_slice_mut()) else {
        return Err(not_contiguous());
    };
    let bias = match &bias {
        Some(bias) => Some(bias.as_slice().ok_or_else(not_contiguous)?),
        None => None,
    };
    let run = kernel::Run {
        geo: &geo,
        batch: inputs[0].shape()[0], // every operand 0 (x or ȳ) is batch-major
        op: op.name(),
        node,
        team,
    };
    let winograd = winograd::applies(&geo);
    match op {
        ConvOp::Conv2d(_) | ConvOp::Conv2dBias(_) if winograd => {
            run.winograd_conv2d(a, b, bias, out, scratch)
        }
        ConvOp::Conv2d(_) | ConvOp::Conv2dBias(_) => run.conv2d(a, b, bias, out, scratch),
        ConvOp::InputGrad { .. } if winograd => run.winograd_input_grad(a, b, out, scratch),
        ConvOp::InputGrad { .. } => run.input_grad(a, b, out, scratch),
        ConvOp::KernelGrad { .. } if winograd => run.winograd_kernel_grad(a, b, out, scratch),
        ConvOp::KernelGrad { .. } => run.kernel_grad(a, b, out, scratch),
    }
}

fn kernel_hw<F: Element>(g: &Graph<F>, w: NodeId) -> Result<[usize; 2]> {
    let (name, shape) = (g.name(w)?, g.shape(w)?);
    let dim = |i| fixed_dim("conv2d", name, shape, i, "kernel size");
    Ok([dim(0)?, dim(1)?])
}

fn input_hw<F: Element>(g: &Graph<F>, x: NodeId) -> Result<[usize; 2]> {
    fixed_hw("conv2d", g.name(x)?, g.shape(x)?)
}

// ANCHOR: conv_vjp
/// Each member is bilinear; with `⟨conv2d(x, w), y⟩ = ⟨x, T(y, w)⟩ = ⟨w, K(x, y)⟩` and `c̄` the
/// cotangent of the member's output:
///
/// | op | first operand's gradient | second operand's gradient |
/// | --- | --- | --- |
/// | `conv2d(x, w)` | `x̄ = T(c̄, w)` | `w̄ = K(x, c̄)` |
/// | `conv2d_bias(x, w, b)` | `x̄ = T(c̄, w)` | `w̄ = K(x, c̄)`, and `b̄ = sum_like(c̄, b)` |
/// | `T(y, w)` | `ȳ = conv2d(c̄, w)` | `w̄ = K(c̄, y)` |
/// | `K(x, y)` | `x̄ = T(y, c̄)` | `ȳ = conv2d(x, c̄)` |
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &ConvOp,
    xs: &[NodeId],
    c_bar: NodeId,
) -> Result<OperandGrads> {
    let (a, b) = (xs[0], xs[1]);
    let (a_bar, b_bar) = match *op {
        ConvOp::Conv2d(conv) | ConvOp::Conv2dBias(conv) => {
            let (x, w) = (a, b);
            let (hw, khw) = (input_hw(g, x)?, kernel_hw(g, w)?);
            (
                g.conv2d_input_grad(c_bar, w, conv, hw)?,
                g.conv2d_kernel_grad(x, c_bar, conv, khw)?,
            )
        }
        ConvOp::InputGrad { conv, .. } => {
            let (y, w) = (a, b);
            let khw = kernel_hw(g, w)?;
            (
                g.conv2d(c_bar, w, conv)?,
                g.conv2d_kernel_grad(c_bar, y, conv, khw)?,
            )
        }
        ConvOp::KernelGrad { conv, .. } => {
            let (x, y) = (a, b);
            let hw = input_hw(g, x)?;
            (
                g.conv2d_input_grad(y, c_bar, conv, hw)?,
                g.conv2d(x, c_bar, conv)?,
            )
        }
    };
    if let (ConvOp::Conv2dBias(_), Some(&bias)) = (op, xs.get(2)) {
        let bias_bar = g.sum_like(c_bar, bias)?;
        return Ok(smallvec![Some(a_bar), Some(b_bar), Some(bias_bar)]);
    }
    Ok(smallvec![Some(a_bar), Some(b_bar)])
}
// ANCHOR_END: conv_vjp

impl<F: Element> Graph<F> {
    /// Convolution of an NHWC image `x` (`[batch, height, width, channels]`, the batch may be
    /// dynamic) with an HWIO kernel `w` (`[kh, kw, channels, filters]`): Keras' `Conv2D`
    /// without its bias and activation.
    ///
    /// # Errors
    /// [`GraphError::InvalidShape`] for a rank other than 4, an unknown height, width or channel
    /// count, a zero stride or dilation, a window larger than a `valid` image, or sizes that
    /// overflow; [`GraphError::IncompatibleShapes`] when the channel counts differ.
    ///
    /// ```
    /// use dendrite_graph::ops::{Conv2d, Padding};
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(28), Some(28), Some(1)])?;
    /// let w = g.input("w", [3, 3, 1, 32])?;
    /// let y = g.conv2d(x, w, Conv2d::default())?;
    /// assert_eq!(g.shape(y)?.to_string(), "[?, 26, 26, 32]");
    /// let same = Conv2d { strides: [2, 2], padding: Padding::Same, ..Conv2d::default() };
    /// let z = g.conv2d(x, w, same)?;
    /// assert_eq!(g.shape(z)?.to_string(), "[?, 14, 14, 32]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn conv2d(&mut self, x: NodeId, w: NodeId, conv: Conv2d) -> Result<NodeId> {
        self.add_op(Op::Conv(ConvOp::Conv2d(conv)), &[x, w])
    }

    /// `conv2d(x, w) + b` with a bias `b` of shape `[filters]`, in one pass: Keras' `Conv2D`
    /// without its activation. The values are those of [`Graph::add`] of [`Graph::conv2d`]
    /// and `b`, bit for bit; the output is not read and written a second time to add `b`.
    ///
    /// # Errors
    /// As [`Graph::conv2d`], and [`GraphError::IncompatibleShapes`] when `b` is not of shape
    /// `[filters]`.
    ///
    /// ```
    /// use dendrite_graph::ops::Conv2d;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(28), Some(28), Some(1)])?;
    /// let w = g.input("w", [3, 3, 1, 32])?;
    /// let b = g.input("b", [32])?;
    /// let y = g.conv2d_bias(x, w, b, Conv2d::default())?;
    /// assert_eq!(g.shape(y)?.to_string(), "[?, 26, 26, 32]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn conv2d_bias(&mut self, x: NodeId, w: NodeId, b: NodeId, conv: Conv2d) -> Result<NodeId> {
        self.add_op(Op::Conv(ConvOp::Conv2dBias(conv)), &[x, w, b])
    }

    /// The transposed convolution `T(y, w)`: the gradient of [`Graph::conv2d`] with respect to
    /// its image, for a cotangent `y` shaped like the convolution's output and an image of
    /// height and width `input_hw`.
    ///
    /// # Errors
    /// As [`Graph::conv2d`], and [`GraphError::IncompatibleShapes`] when `y` does not have the
    /// convolution's output shape.
    pub fn conv2d_input_grad(
        &mut self,
        y: NodeId,
        w: NodeId,
        conv: Conv2d,
        input_hw: [usize; 2],
    ) -> Result<NodeId> {
        self.add_op(Op::Conv(ConvOp::InputGrad { conv, input_hw }), &[y, w])
    }

    /// `K(x, y)`: the gradient of [`Graph::conv2d`] with respect to a kernel of height and width
    /// `kernel_hw`, for an image `x` and a cotangent `y` shaped like the convolution's output.
    ///
    /// # Errors
    /// As [`Graph::conv2d_input_grad`].
    pub fn conv2d_kernel_grad(
        &mut self,
        x: NodeId,
        y: NodeId,
        conv: Conv2d,
        kernel_hw: [usize; 2],
    ) -> Result<NodeId> {
        self.add_op(Op::Conv(ConvOp::KernelGrad { conv, kernel_hw }), &[x, y])
    }
}
