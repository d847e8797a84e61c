//! Lowerings of the families that move, fold or index elements: broadcasting, reductions,
//! axis functions, layout, matrix products, slicing, indexing and the softmax kernels.
//!
//! ONNX takes axes and shapes as `int64` operands (stored as initializers) or attributes,
//! depending on the operator and the opset (17 here: `ReduceSum` takes its axes as an operand,
//! `ReduceMax` and the others as an attribute).

use super::builder::{attr_int, attr_ints, attr_string, to_i64, to_i64s, Builder};
use super::error::Result;
use super::lower::{to_int64, Site};
use crate::ops::{AxisOp, BroadcastOp, IndexOp, LayoutOp, ReduceOp, SliceOp, SoftmaxOp};
use crate::Dim;

pub(super) fn broadcast(b: &mut Builder, s: &Site<'_>, op: &BroadcastOp) -> Result<()> {
    let x = s.xs[0].clone();
    match op {
        BroadcastOp::To(target) => {
            // A dynamic target axis takes the operand's size, which is what `Expand` does with
            // a 1 there (it broadcasts both ways).
            let dims = target
                .dims()
                .iter()
                .map(|d| to_i64(s.node, d.fixed().unwrap_or(1)))
                .collect::<Result<Vec<_>>>()?;
            let shape = b.int64s(s.node, &dims, &[to_i64(s.node, dims.len())?]);
            b.emit("Expand", s.node, vec![x, shape], s.node, vec![]);
        }
        BroadcastOp::Like => {
            let shape = b.step("Shape", s.node, vec![s.xs[1].clone()], vec![]);
            b.emit("Expand", s.node, vec![x, shape], s.node, vec![]);
        }
        BroadcastOp::SumLike => sum_like(b, s)?,
    }
    Ok(())
}

/// `sum_like(x, y)`: sums `x` over the axes that broadcasting `y` to `x` stretched, then
/// reshapes to `y`'s rank. Which axes those are must be known from the declared shapes.
fn sum_like(b: &mut Builder, s: &Site<'_>) -> Result<()> {
    let (x, y) = (&s.shapes[0], &s.shapes[1]);
    let pad = x.rank() - y.rank().min(x.rank());
    let mut axes = Vec::new();
    for (i, &dx) in x.dims().iter().enumerate() {
        let dy = if i < pad {
            Dim::Fixed(1)
        } else {
            y.dims()[i - pad]
        };
        match (dx, dy) {
            (Dim::Fixed(1), _) => {}
            (_, Dim::Fixed(1)) => axes.push(to_i64(s.node, i)?),
            (Dim::Fixed(_), Dim::Dynamic) => {
                return Err(s.unsupported(
                    "sum_like",
                    "a dynamic axis of the reference against a fixed one of the operand: \
                     whether it is summed is known only at run time",
                ))
            }
            _ => {}
        }
    }
    let mut summed = s.xs[0].clone();
    if !axes.is_empty() {
        let axes_value = b.int64s(s.node, &axes, &[to_i64(s.node, axes.len())?]);
        summed = b.step(
            "ReduceSum",
            s.node,
            vec![summed, axes_value],
            vec![attr_int("keepdims", 1)],
        );
    }
    let shape = b.step("Shape", s.node, vec![s.xs[1].clone()], vec![]);
    b.emit("Reshape", s.node, vec![summed, shape], s.node, vec![]);
    Ok(())
}

pub(super) fn reduce(
    b: &mut Builder,
    s: &Site<'_>,
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
) -> Result<()> {
    let x = s.xs[0].clone();
    if axes.is_empty() {
        // ONNX reads "no axes" as "every axis"; Dendrite reduces none.
        b.emit("Identity", s.node, vec![x], s.node, vec![]);
        return Ok(());
    }
    let axes = to_i64s(s.node, axes)?;
    let keep = attr_int("keepdims", keep_dims.into());
    match op {
        ReduceOp::Sum => {
            let axes_value = b.int64s(s.node, &axes, &[to_i64(s.node, axes.len())?]);
            b.emit("ReduceSum", s.node, vec![x, axes_value], s.node, vec![keep]);
        }
        ReduceOp::Max | ReduceOp::Min | ReduceOp::Prod => {
            let op_type = match op {
                ReduceOp::Max => "ReduceMax",
                ReduceOp::Min => "ReduceMin",
                _ => "ReduceProd",
            };
            b.emit(
                op_type,
                s.node,
                vec![x],
                s.node,
                vec![attr_ints("axes", axes), keep],
            );
        }
    }
    Ok(())
}

pub(super) fn axis(b: &mut Builder, s: &Site<'_>, op: &AxisOp) -> Result<()> {
    let x = s.xs[0].clone();
    let elem = i64::from(b.elem());
    match op {
        AxisOp::DimSize(axes) => dim_size(b, s, axes)?,
        AxisOp::ArgMax(axis) => {
            let attrs = vec![
                attr_int("axis", to_i64(s.node, *axis)?),
                attr_int("keepdims", 0),
            ];
            let index = b.step("ArgMax", s.node, vec![x], attrs);
            b.emit(
                "Cast",
                s.node,
                vec![index],
                s.node,
                vec![attr_int("to", elem)],
            );
        }
        AxisOp::CumSum { axis, reverse } => {
            let axis_value = b.int64s(s.node, &[to_i64(s.node, *axis)?], &[]);
            let attrs = vec![attr_int("reverse", (*reverse).into())];
            b.emit("CumSum", s.node, vec![x, axis_value], s.node, attrs);
        }
    }
    Ok(())
}

/// The product of some axes' sizes: a constant when they are all fixed, else read from the
/// operand's runtime shape.
fn dim_size(b: &mut Builder, s: &Site<'_>, axes: &[usize]) -> Result<()> {
    let dims = s.shapes[0].dims();
    let fixed: Option<Vec<usize>> = axes.iter().map(|&a| dims[a].fixed()).collect();
    if let Some(sizes) = fixed {
        let n = sizes.iter().fold(1.0, |n, &d| n * d as f64);
        let value = b.scalar(s.node, n);
        b.emit("Identity", s.node, vec![value], s.node, vec![]);
        return Ok(());
    }
    let elem = i64::from(b.elem());
    let shape = b.step("Shape", s.node, vec![s.xs[0].clone()], vec![]);
    let sizes = b.step("Cast", s.node, vec![shape], vec![attr_int("to", elem)]);
    let indices = b.int64s(
        s.node,
        &to_i64s(s.node, axes)?,
        &[to_i64(s.node, axes.len())?],
    );
    let picked = b.step("Gather", s.node, vec![sizes, indices], vec![]);
    b.emit(
        "ReduceProd",
        s.node,
        vec![picked],
        s.node,
        vec![attr_int("keepdims", 0)],
    );
    Ok(())
}

pub(super) fn layout(b: &mut Builder, s: &Site<'_>, op: &LayoutOp) -> Result<()> {
    let x = s.xs[0].clone();
    match op {
        LayoutOp::ExpandDims(axes) if axes.is_empty() => {
            b.emit("Identity", s.node, vec![x], s.node, vec![]);
        }
        LayoutOp::ExpandDims(axes) => {
            let axes = to_i64s(s.node, axes)?;
            let axes_value = b.int64s(s.node, &axes, &[to_i64(s.node, axes.len())?]);
            b.emit("Unsqueeze", s.node, vec![x, axes_value], s.node, vec![]);
        }
        LayoutOp::Reshape(target) => reshape(b, s, target.dims())?,
        LayoutOp::Permute(perm) => {
            let attrs = vec![attr_ints("perm", to_i64s(s.node, perm)?)];
            b.emit("Transpose", s.node, vec![x], s.node, attrs);
        }
    }
    Ok(())
}

/// `Reshape` with the (at most one) dynamic axis as `-1`. ONNX reads a 0 in the target as
/// "copy the input's size" unless `allowzero` is set, which then forbids the `-1`.
fn reshape(b: &mut Builder, s: &Site<'_>, target: &[Dim]) -> Result<()> {
    let has_zero = target.contains(&Dim::Fixed(0));
    let has_dynamic = target.contains(&Dim::Dynamic);
    if has_zero && has_dynamic {
        return Err(s.unsupported(
            "reshape",
            "ONNX's Reshape cannot take both an empty axis and an inferred one",
        ));
    }
    let dims = target
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => to_i64(s.node, *n),
            Dim::Dynamic => Ok(-1),
        })
        .collect::<Result<Vec<_>>>()?;
    let shape = b.int64s(s.node, &dims, &[to_i64(s.node, dims.len())?]);
    let attrs = vec![attr_int("allowzero", has_zero.into())];
    b.emit(
        "Reshape",
        s.node,
        vec![s.xs[0].clone(), shape],
        s.node,
        attrs,
    );
    Ok(())
}

/// A product of two matrices is a `Gemm` with its transpose flags; a batched one is a
/// `MatMul` of operands transposed (last two axes) where the flags say so.
pub(super) fn matmul(b: &mut Builder, s: &Site<'_>, tl: bool, tr: bool) -> Result<()> {
    if s.shapes[0].rank() == 2 && s.shapes[1].rank() == 2 {
        let attrs = vec![attr_int("transA", tl.into()), attr_int("transB", tr.into())];
        b.emit("Gemm", s.node, s.xs.clone(), s.node, attrs);
        return Ok(());
    }
    let mut operands = Vec::with_capacity(2);
    for (i, transpose) in [tl, tr].into_iter().enumerate() {
        let x = s.xs[i].clone();
        operands.push(if transpose {
            let rank = s.shapes[i].rank();
            let mut perm = to_i64s(s.node, &(0..rank).collect::<Vec<_>>())?;
            perm.swap(rank - 2, rank - 1);
            b.step("Transpose", s.node, vec![x], vec![attr_ints("perm", perm)])
        } else {
            x
        });
    }
    b.emit("MatMul", s.node, operands, s.node, vec![]);
    Ok(())
}

pub(super) fn slice(b: &mut Builder, s: &Site<'_>, op: &SliceOp) -> Result<()> {
    match *op {
        SliceOp::Slice { axis, start, end } => {
            let one = [1];
            let starts = b.int64s(s.node, &[to_i64(s.node, start)?], &one);
            let ends = b.int64s(s.node, &[to_i64(s.node, end)?], &one);
            let axes = b.int64s(s.node, &[to_i64(s.node, axis)?], &one);
            let inputs = vec![s.xs[0].clone(), starts, ends, axes];
            b.emit("Slice", s.node, inputs, s.node, vec![]);
        }
        SliceOp::Pad {
            axis,
            before,
            after,
        } => {
            let rank = s.shapes[0].rank();
            let mut pads = vec![0; 2 * rank];
            pads[axis] = to_i64(s.node, before)?;
            pads[rank + axis] = to_i64(s.node, after)?;
            let pads = b.int64s(s.node, &pads, &[to_i64(s.node, 2 * rank)?]);
            let zero = b.scalar(s.node, 0.0);
            let attrs = vec![attr_string("mode", "constant")];
            b.emit(
                "Pad",
                s.node,
                vec![s.xs[0].clone(), pads, zero],
                s.node,
                attrs,
            );
        }
        SliceOp::Concat(axis) => {
            let attrs = vec![attr_int("axis", to_i64(s.node, axis)?)];
            b.emit("Concat", s.node, s.xs.clone(), s.node, attrs);
        }
    }
    Ok(())
}

pub(super) fn index(b: &mut Builder, s: &Site<'_>, op: &IndexOp) -> Result<()> {
    match *op {
        IndexOp::Gather(axis) => {
            let indices = to_int64(b, s.node, s.xs[1].clone());
            let attrs = vec![attr_int("axis", to_i64(s.node, axis)?)];
            b.emit(
                "Gather",
                s.node,
                vec![s.xs[0].clone(), indices],
                s.node,
                attrs,
            );
        }
        IndexOp::ScatterAdd(axis) => scatter_add(b, s, axis)?,
        IndexOp::OneHot(depth) => {
            let indices = to_int64(b, s.node, s.xs[0].clone());
            let depth = b.int64s(s.node, &[to_i64(s.node, depth)?], &[]);
            let values = b.floats(s.node, &[0.0, 1.0], &[2]);
            let attrs = vec![attr_int("axis", -1)];
            b.emit(
                "OneHot",
                s.node,
                vec![indices, depth, values],
                s.node,
                attrs,
            );
        }
    }
    Ok(())
}

/// `scatter_add(src, idx, like, axis)` as ONNX `ScatterElements` with `reduction = "add"`
/// (opset 16): the index tensor is flattened (and `src`'s index axes merged into one to
/// match), shaped to broadcast along `axis`, expanded to `src`'s shape, and the updates are
/// added into zeros of `like`'s shape. Repeated indices accumulate, as in Dendrite.
fn scatter_add(b: &mut Builder, s: &Site<'_>, axis: usize) -> Result<()> {
    let like_rank = s.shapes[2].rank();
    let index_rank = s.shapes[1].rank();
    let like_shape = b.step("Shape", s.node, vec![s.xs[2].clone()], vec![]);
    let flat = b.int64s(s.node, &[-1], &[1]);
    let indices = to_int64(b, s.node, s.xs[1].clone());
    let indices = b.step("Reshape", s.node, vec![indices, flat.clone()], vec![]);
    // src: like[..axis] ++ idx.shape ++ like[axis+1..], its index axes merged into one.
    let src = if index_rank == 1 {
        s.xs[0].clone()
    } else {
        let mut parts = Vec::new();
        if axis > 0 {
            parts.push(shape_slice(b, s.node, &like_shape, 0, axis)?);
        }
        parts.push(flat.clone());
        if axis + 1 < like_rank {
            parts.push(shape_slice(b, s.node, &like_shape, axis + 1, like_rank)?);
        }
        let merged = b.step("Concat", s.node, parts, vec![attr_int("axis", 0)]);
        b.step("Reshape", s.node, vec![s.xs[0].clone(), merged], vec![])
    };
    // The indices as [1, .., m, .., 1] (m on `axis`), then expanded to src's shape.
    let mut along: Vec<i64> = vec![1; like_rank];
    along[axis] = -1;
    let along = b.int64s(s.node, &along, &[to_i64(s.node, like_rank)?]);
    let indices = b.step("Reshape", s.node, vec![indices, along], vec![]);
    let src_shape = b.step("Shape", s.node, vec![src.clone()], vec![]);
    let indices = b.step("Expand", s.node, vec![indices, src_shape], vec![]);
    let zero = b.scalar(s.node, 0.0);
    let zeros = b.step("Expand", s.node, vec![zero, like_shape], vec![]);
    let attrs = vec![
        attr_int("axis", to_i64(s.node, axis)?),
        attr_string("reduction", "add"),
    ];
    b.emit(
        "ScatterElements",
        s.node,
        vec![zeros, indices, src],
        s.node,
        attrs,
    );
    Ok(())
}

/// `shape[start..end]` of an ONNX shape value (an `int64` vector), as a new value.
fn shape_slice(
    b: &mut Builder,
    node: &str,
    shape: &str,
    start: usize,
    end: usize,
) -> Result<String> {
    let starts = b.int64s(node, &[to_i64(node, start)?], &[1]);
    let ends = b.int64s(node, &[to_i64(node, end)?], &[1]);
    Ok(b.step("Slice", node, vec![shape.to_owned(), starts, ends], vec![]))
}

pub(super) fn softmax(b: &mut Builder, s: &Site<'_>, op: &SoftmaxOp) -> Result<()> {
    let x = s.xs[0].clone();
    match *op {
        SoftmaxOp::LogSoftmax(axis) => {
            let attrs = vec![attr_int("axis", to_i64(s.node, axis)?)];
            b.emit("LogSoftmax", s.node, vec![x], s.node, attrs);
        }
        SoftmaxOp::LogSumExp(axis) => {
            let attrs = vec![
                attr_ints("axes", vec![to_i64(s.node, axis)?]),
                attr_int("keepdims", 1),
            ];
            b.emit("ReduceLogSumExp", s.node, vec![x], s.node, attrs);
        }
    }
    Ok(())
}
