//! Convolution and pooling: Dendrite's NHWC images (and HWIO kernels) around ONNX's NCHW
//! operators.
//!
//! `conv2d(x, w)` becomes `Transpose(Conv(Transpose(x), Transpose(w)))` (and `conv2d_bias`
//! the same with the bias as `Conv`'s third input): the image to NCHW
//! (`perm = [0, 3, 1, 2]`), the kernel from `[KH, KW, C, O]` to ONNX's `[O, C, KH, KW]`
//! (`perm = [3, 2, 0, 1]`), the result back to NHWC (`perm = [0, 2, 3, 1]`); pooling the same
//! without the kernel. Padding is written out explicitly (`pads = [top, left, bottom, right]`),
//! computed by the same window geometry the kernels use, so `same`'s odd extra row and column
//! land at the bottom and right as in Dendrite (and TensorFlow).

use super::builder::{attr_int, attr_ints, to_i64s, Builder};
use super::error::Result;
use super::lower::Site;
use crate::ops::window::{Axis1, Padding};
use crate::ops::{ConvOp, PoolOp};
use crate::Dim;

const NHWC_TO_NCHW: [i64; 4] = [0, 3, 1, 2];
const NCHW_TO_NHWC: [i64; 4] = [0, 2, 3, 1];
const HWIO_TO_OIHW: [i64; 4] = [3, 2, 0, 1];

/// Kernel taps, strides, dilation and padding of one window.
struct Window {
    k: [usize; 2],
    strides: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
}

pub(super) fn conv(b: &mut Builder, s: &Site<'_>, op: &ConvOp) -> Result<()> {
    let conv = match op {
        ConvOp::Conv2d(conv) | ConvOp::Conv2dBias(conv) => conv,
        ConvOp::InputGrad { .. } | ConvOp::KernelGrad { .. } => {
            return Err(s.unsupported(
                op.name(),
                "a gradient map of convolution is a training-time op (the input gradient is \
                 ConvTranspose with Dendrite's padding, which this export does not emit)",
            ))
        }
    };
    let k = kernel_hw(s)?;
    let window = Window {
        k,
        strides: conv.strides,
        dilation: conv.dilation,
        padding: conv.padding,
    };
    let mut attrs = window_attrs(s, &window)?;
    attrs.push(attr_ints("dilations", to_i64s(s.node, &conv.dilation)?));
    let image = transpose(b, s.node, s.xs[0].clone(), NHWC_TO_NCHW);
    let kernel = transpose(b, s.node, s.xs[1].clone(), HWIO_TO_OIHW);
    // ONNX's optional third input is the same per-output-channel bias.
    let inputs = match s.xs.get(2) {
        Some(bias) => vec![image, kernel, bias.clone()],
        None => vec![image, kernel],
    };
    let y = b.step("Conv", s.node, inputs, attrs);
    b.emit(
        "Transpose",
        s.node,
        vec![y],
        s.node,
        vec![perm(NCHW_TO_NHWC)],
    );
    Ok(())
}

pub(super) fn pool(b: &mut Builder, s: &Site<'_>, op: &PoolOp) -> Result<()> {
    let (op_type, pool) = match op {
        PoolOp::Max(p) => ("MaxPool", p),
        PoolOp::Avg(p) => ("AveragePool", p),
        PoolOp::MaxScatter(_) | PoolOp::MaxGather(_) | PoolOp::AvgGrad { .. } => {
            return Err(s.unsupported(
                op.name(),
                "a gradient map of pooling is a training-time op with no ONNX operator",
            ))
        }
    };
    let window = Window {
        k: pool.size,
        strides: pool.strides,
        dilation: [1, 1],
        padding: pool.padding,
    };
    let mut attrs = window_attrs(s, &window)?;
    if matches!(op, PoolOp::Avg(_)) {
        // Dendrite averages over the pixels inside the image only, as TensorFlow does.
        attrs.push(attr_int("count_include_pad", 0));
    }
    let image = transpose(b, s.node, s.xs[0].clone(), NHWC_TO_NCHW);
    let y = b.step(op_type, s.node, vec![image], attrs);
    b.emit(
        "Transpose",
        s.node,
        vec![y],
        s.node,
        vec![perm(NCHW_TO_NHWC)],
    );
    Ok(())
}

/// The kernel's height and width, from its declared `[KH, KW, C, O]` shape (always fixed).
fn kernel_hw(s: &Site<'_>) -> Result<[usize; 2]> {
    match s.shapes[1].dims() {
        [Dim::Fixed(kh), Dim::Fixed(kw), _, _] => Ok([*kh, *kw]),
        _ => Err(s.unsupported("conv2d", "the kernel's height and width must be known")),
    }
}

/// `kernel_shape`, `strides` and explicit `pads` for the image's fixed height and width.
fn window_attrs(s: &Site<'_>, w: &Window) -> Result<Vec<super::proto::AttributeProto>> {
    let hw = match s.shapes[0].dims() {
        [_, Dim::Fixed(h), Dim::Fixed(w), _] => [*h, *w],
        _ => return Err(s.unsupported("window", "the image's height and width must be known")),
    };
    let mut begin = [0; 2];
    let mut end = [0; 2];
    for i in 0..2 {
        let axis = Axis1::new(hw[i], w.k[i], w.strides[i], w.dilation[i], w.padding)
            .map_err(|reason| s.unsupported("window", &reason))?;
        begin[i] = axis.before;
        end[i] =
            padding_after(&axis).ok_or_else(|| s.unsupported("window", "padding overflows"))?;
    }
    Ok(vec![
        attr_ints("kernel_shape", to_i64s(s.node, &w.k)?),
        attr_ints("strides", to_i64s(s.node, &w.strides)?),
        attr_ints(
            "pads",
            to_i64s(s.node, &[begin[0], begin[1], end[0], end[1]])?,
        ),
    ])
}

/// The padding after the last element: what the last window reaches past the input, less
/// the padding before.
fn padding_after(axis: &Axis1) -> Option<usize> {
    let span = (axis.k - 1).checked_mul(axis.d)?.checked_add(1)?;
    let reach = (axis.out - 1).checked_mul(axis.s)?.checked_add(span)?;
    Some(reach.saturating_sub(axis.n).saturating_sub(axis.before))
}

fn perm(p: [i64; 4]) -> super::proto::AttributeProto {
    attr_ints("perm", p.to_vec())
}

fn transpose(b: &mut Builder, node: &str, x: String, p: [i64; 4]) -> String {
    b.step("Transpose", node, vec![x], vec![perm(p)])
}
