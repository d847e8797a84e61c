//! A one-channel 3×3 convolution under a 2×2 max pool (the convnet's first two layers) as one
//! plan step, where nothing else reads the convolution's output (the plan's fusion phase
//! decides): that output, 26·26·32 floats an MNIST image, is then never written or read.
//!
//! - `max_pool2d(conv2d(x, w) + b)` computes each window's four convolution values in
//!   registers (the direct kernel's chain of nine fused multiply-adds, then the bias) and
//!   stores their maximum, or its ReLU where the plan fused the ReLU after the pool.
//! - Its kernel gradient, `K(x, S_y(v̄))` with `y = conv2d(x, w) + b`, recomputes `y` window
//!   by window, routes `v̄` to each window's argmax by pooling's tie rule (a later tap wins
//!   only when larger, or a NaN over a number) and adds `x · ȳ` pixel by pixel in the direct
//!   kernel's order, the zeros of the other taps included (`∞ · 0` is a NaN there too).
//!
//! Both give the unfused steps' values (direct convolution, pooling, scatter, direct kernel
//! gradient) bit for bit, so fusing changes no result, at any thread count: the kernel
//! gradient keeps [`Run::kernel_grad`]'s groups and partial sums.
//!
//! [`Run::kernel_grad`]: super::kernel::Run::kernel_grad

use super::{geometry, ConvOp, Geometry};
use crate::error::{GraphError, Result};
use crate::shape::{ConcreteShape, Shape};
use crate::team::Team;
use crate::Element;
use ndarray::{ArrayViewD, ArrayViewMutD};

/// A convolution and the 2×2 max pool over its output, run as one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PooledConv {
    /// `max_pool2d(conv(x, w))` (`conv2d` or `conv2d_bias`), then `relu` if asked; operands
    /// `x, w` (`, b`).
    Forward {
        /// The convolution.
        conv: ConvOp,
        /// Whether a ReLU follows the pool.
        relu: bool,
    },
    /// `conv2d_kernel_grad(x, max_pool2d_scatter(conv(x, w), v̄))`; operands `x, w` (`, b`),
    /// `v̄`.
    KernelGrad(ConvOp),
}

impl PooledConv {
    /// The fused ops' names, for profiles.
    pub fn name(&self) -> &'static str {
        match self {
            PooledConv::Forward { conv, relu } => match (conv, relu) {
                (ConvOp::Conv2dBias(_), false) => "conv2d_bias+max_pool2d",
                (ConvOp::Conv2dBias(_), true) => "conv2d_bias+max_pool2d+relu",
                (_, false) => "conv2d+max_pool2d",
                (_, true) => "conv2d+max_pool2d+relu",
            },
            PooledConv::KernelGrad(_) => "conv2d_kernel_grad+max_pool2d_scatter",
        }
    }

    fn conv(&self) -> &ConvOp {
        match self {
            PooledConv::Forward { conv, .. } | PooledConv::KernelGrad(conv) => conv,
        }
    }

    /// Whether the fused kernels run `conv` (`conv2d` or `conv2d_bias` over operands of the
    /// declared `shapes`) under a 2×2 max pool with strides 2 and `valid` padding: `f32`, one
    /// input channel, 3×3 windows inside the image, output channels a multiple of a vector
    /// this CPU has, and an output at least 2 pixels high and 2 to [`MAX_WIDTH`] wide.
    pub fn applies<F: Element>(conv: &ConvOp, shapes: &[&Shape]) -> bool {
        let is_f32 = F::as_f32_slice(&[F::zero()]).is_some();
        let is_conv = matches!(conv, ConvOp::Conv2d(_) | ConvOp::Conv2dBias(_));
        is_f32 && is_conv && geometry(conv, "", shapes).is_ok_and(|g| fits(&g))
    }

    /// The output shape for operands of these shapes.
    ///
    /// # Errors
    /// The convolution's shape errors, and [`GraphError::IncompatibleShapes`] for a `v̄` not
    /// shaped like the pool.
    pub fn infer_concrete(&self, node: &str, shapes: &[&[usize]]) -> Result<ConcreteShape> {
        let (geo, arity) = self.geometry(node, shapes)?;
        let [a, b] = geo.axes;
        let pooled = [shapes[0][0], a.out / 2, b.out / 2, geo.o];
        match self {
            PooledConv::Forward { .. } => Ok(ConcreteShape::from_slice(&pooled)),
            PooledConv::KernelGrad(_) => match shapes.get(arity) {
                Some(v_bar) if *v_bar == pooled => Ok(ConcreteShape::from_slice(shapes[1])),
                _ => Err(GraphError::IncompatibleShapes {
                    op: self.name(),
                    node: node.to_owned(),
                    reason: "the pooled cotangent must be shaped like the pool",
                    lhs: Shape::fixed(&pooled),
                    rhs: Shape::fixed(shapes.get(arity).copied().unwrap_or(&[])),
                }),
            },
        }
    }

    /// The convolution's geometry and operand count.
    fn geometry(&self, node: &str, shapes: &[&[usize]]) -> Result<(Geometry, usize)> {
        let arity = match self.conv() {
            ConvOp::Conv2dBias(_) => 3,
            _ => 2,
        };
        let fixed: [Shape; 3] = std::array::from_fn(|i| {
            shapes
                .get(i)
                .map_or_else(Shape::scalar, |s| Shape::fixed(s))
        });
        let refs = [&fixed[0], &fixed[1], &fixed[2]];
        let geo = geometry(self.conv(), node, &refs[..arity.min(shapes.len())])?;
        Ok((geo, arity))
    }

    /// Runs the fused step on `inputs` into `out`, sharing the images between `team`.
    ///
    /// # Errors
    /// Shape errors as [`PooledConv::infer_concrete`]'s, and [`GraphError::Internal`] where
    /// the kernels do not apply (the plan fuses only where they do).
    pub fn forward<F: Element>(
        &self,
        node: &str,
        inputs: &[ArrayViewD<'_, F>],
        mut out: ArrayViewMutD<'_, F>,
        scratch: &mut Vec<F>,
        team: Team,
    ) -> Result<()> {
        let shapes: smallvec::SmallVec<[&[usize]; 4]> = inputs.iter().map(|v| v.shape()).collect();
        let (geo, arity) = self.geometry(node, &shapes)?;
        let internal = |what| GraphError::Internal {
            op: self.name(),
            node: node.to_owned(),
            what,
        };
        let views: smallvec::SmallVec<[_; 4]> =
            inputs.iter().map(|v| v.as_standard_layout()).collect();
        let slices: Option<smallvec::SmallVec<[&[F]; 4]>> =
            views.iter().map(|v| v.as_slice()).collect();
        let (Some(slices), Some(out)) = (slices, out.as_slice_mut()) else {
            return Err(internal("an operand or the output is not contiguous"));
        };
        let run = super::kernel::Run {
            geo: &geo,
            batch: shapes[0][0],
            op: self.name(),
            node,
            team,
        };
        let bias = (arity == 3).then(|| slices[2]);
        let done = match self {
            PooledConv::Forward { relu, .. } => {
                run.pooled_conv((slices[0], slices[1], bias), *relu, out)
            }
            PooledConv::KernelGrad(_) => {
                let v_bar = slices.get(arity).copied().unwrap_or(&[]);
                let ws = (slices[0], slices[1], bias, v_bar);
                run.kernel_grad_through_pool(ws, out, scratch)?
            }
        };
        match done {
            true => Ok(()),
            false => Err(internal(
                "the fused kernel does not apply to these operands",
            )),
        }
    }
}

/// The widest convolution output (in pixels) whose two rows of cotangents the kernel gradient
/// holds on the stack.
#[cfg(target_arch = "x86_64")]
const MAX_WIDTH: usize = 64;

#[cfg(target_arch = "x86_64")]
fn fits(g: &Geometry) -> bool {
    let [a, b] = g.axes;
    super::direct::instance(g).is_some() && a.out >= 2 && (2..=MAX_WIDTH).contains(&b.out)
}

#[cfg(not(target_arch = "x86_64"))]
fn fits(_: &Geometry) -> bool {
    false
}

/// The operands of the fused forward step: `x`, `w`, the bias.
type ConvOperands<'a, F> = (&'a [F], &'a [F], Option<&'a [F]>);

/// The operands of the fused kernel gradient: `x`, `w`, the bias, `v̄`.
type GradOperands<'a, F> = (&'a [F], &'a [F], Option<&'a [F]>, &'a [F]);

#[cfg(not(target_arch = "x86_64"))]
impl super::kernel::Run<'_> {
    fn pooled_conv<F: Element>(&self, _: ConvOperands<'_, F>, _: bool, _: &mut [F]) -> bool {
        false
    }

    fn kernel_grad_through_pool<F: Element>(
        &self,
        _: GradOperands<'_, F>,
        _: &mut [F],
        _: &mut Vec<F>,
    ) -> Result<bool> {
        Ok(false)
    }
}

#[cfg(target_arch = "x86_64")]
mod kernels;
