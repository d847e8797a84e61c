//! Every primitive: the exportable ones in one graph whose every node is checked against
//! onnxruntime, the others refused with an error naming them.

use crate::runtime::{assert_close, values, Runtime};
use dendrite_graph::onnx::{self, OnnxError};
use dendrite_graph::ops::{Conv2d, Padding, Pool2d, SoftmaxOp};
use dendrite_graph::{compile, BinaryOp, CompareOp, Graph, GraphError, NodeId, Op, UnaryOp};
use ndarray::{array, ArrayD};
use std::collections::BTreeSet;

/// The primitives an ONNX file cannot hold, each with the reason the book gives.
pub const UNSUPPORTED: &[&str] = &[
    "conv2d_input_grad",
    "conv2d_kernel_grad",
    "max_pool2d_scatter",
    "max_pool2d_gather",
    "avg_pool2d_grad",
    "random_uniform",
    "random_normal",
];

/// A constant of the given values.
fn constant(g: &mut Graph<f32>, v: ArrayD<f32>) -> NodeId {
    g.constant(v)
}

/// `x: [?, 6]` through the elementwise, reduction, axis, layout, product, slice, index and
/// softmax families.
fn vector_ops(g: &mut Graph<f32>, x: NodeId) -> Result<(), GraphError> {
    let one = g.scalar(1.0);
    let sq = g.mul(x, x)?;
    let sq1 = g.add(sq, one)?;
    for &op in UnaryOp::ALL {
        let arg = match op {
            UnaryOp::Log | UnaryOp::Sqrt => sq1,
            UnaryOp::Log1p => sq,
            _ => x,
        };
        g.unary(op, arg)?;
    }
    let tiny = g.scale(x, 1e-6)?;
    g.log1p(tiny)?;
    g.expm1(tiny)?;
    g.pow(x, 3.0)?;
    g.pow(sq1, -0.5)?;
    let row = constant(g, array![0.5_f32, -1.0, 2.0, 0.25, -0.75, 1.5].into_dyn());
    for &op in BinaryOp::ALL {
        let (a, b) = match op {
            BinaryOp::Power => (sq1, row),
            BinaryOp::Div => (row, sq1),
            _ => (x, row),
        };
        g.binary(op, a, b)?;
    }
    for &op in CompareOp::ALL {
        let c = g.compare(op, x, row)?;
        g.select(c, x, row)?;
    }
    let exact = g.equal(x, x)?;
    g.select(exact, sq, x)?;
    let col = g.sum_keep_dims(x, &[1])?;
    g.broadcast_to(col, [None, Some(6)])?;
    let rows3 = g.broadcast_to(row, [3, 6])?;
    g.mul(rows3, rows3)?;
    g.broadcast_like(row, x)?;
    let row2 = constant(g, ArrayD::zeros(ndarray::IxDyn(&[1, 6])));
    g.sum_like(x, row2)?;
    g.sum_like(x, col)?;
    g.sum(x, &[1])?;
    g.sum(x, &[0, 1])?;
    for keep in [false, true] {
        g.max(x, &[1], keep)?;
        g.min(x, &[0], keep)?;
        g.prod(x, &[1], keep)?;
    }
    g.sum(x, &[])?;
    g.dim_size(x, &[0])?;
    g.dim_size(x, &[0, 1])?;
    g.dim_size(x, &[1])?;
    let am = g.argmax(x, 1)?;
    g.one_hot(am, 6)?;
    g.cumsum(x, 1, false)?;
    g.cumsum(x, 1, true)?;
    g.expand_dims(x, &[1])?;
    g.expand_dims(x, &[0, 3])?;
    let cube = g.reshape(x, [None, Some(2), Some(3)])?;
    let cube_t = g.permute(cube, &[0, 2, 1])?;
    g.reshape(x, [Some(2), None])?;
    matmuls(g, x, cube, cube_t)?;
    g.slice(x, 1, 1, 4)?;
    g.pad(x, 1, 2, 1)?;
    g.pad(x, 0, 1, 0)?;
    g.concat(&[x, sq, x], 1)?;
    let idx = constant(g, array![0.0_f32, 5.0, 2.0, 2.0].into_dyn());
    let picked = g.gather(x, idx, 1)?;
    g.scatter_add(picked, idx, x, 1)?; // the repeated 2 accumulates
    let idx2 = constant(g, array![[1.0_f32, 0.0], [3.0, 4.0]].into_dyn());
    let picked2 = g.gather(x, idx2, 1)?;
    g.scatter_add(picked2, idx2, x, 1)?; // index axes merged into one
    g.one_hot(idx, 7)?;
    g.log_softmax(x, 1)?;
    g.log_softmax(cube, 1)?;
    g.add_op(Op::Softmax(SoftmaxOp::LogSumExp(1)), &[x])?;
    g.softmax(x, 1)?;
    g.stop_gradient(x)?;
    Ok(())
}

/// Products: `Gemm` with each transpose flag, batched `MatMul` with and without.
fn matmuls(g: &mut Graph<f32>, x: NodeId, cube: NodeId, cube_t: NodeId) -> Result<(), GraphError> {
    let w = constant(g, values(&[6, 3], 11, -1.0, 1.0));
    let w_t = constant(g, values(&[3, 6], 12, -1.0, 1.0));
    let m = constant(g, values(&[3, 4], 13, -1.0, 1.0));
    let square = constant(g, values(&[6, 6], 15, -1.0, 1.0));
    g.matmul(x, w)?;
    let flags = |tl, tr| Op::MatMul {
        transpose_lhs: tl,
        transpose_rhs: tr,
    };
    g.add_op(flags(false, true), &[x, w_t])?;
    let xt = g.transpose(x)?;
    g.add_op(flags(true, false), &[xt, square])?;
    g.add_op(flags(true, true), &[xt, square])?;
    g.matmul(cube, m)?;
    g.add_op(flags(true, false), &[cube_t, m])?;
    let m_t = constant(g, values(&[4, 3], 14, -1.0, 1.0));
    g.add_op(flags(false, true), &[cube, m_t])?;
    Ok(())
}

/// `img: [?, 7, 6, 2]` through convolutions (one with a bias) and pools of both paddings,
/// strided and dilated.
fn image_ops(g: &mut Graph<f32>, img: NodeId) -> Result<(), GraphError> {
    let kernel = constant(g, values(&[3, 2, 2, 4], 21, -1.0, 1.0));
    g.conv2d(img, kernel, Conv2d::default())?;
    let same = Conv2d {
        strides: [2, 1],
        padding: Padding::Same,
        ..Conv2d::default()
    };
    g.conv2d(img, kernel, same)?;
    let bias = constant(g, values(&[4], 22, -1.0, 1.0));
    g.conv2d_bias(img, kernel, bias, same)?;
    let dilated = Conv2d {
        dilation: [2, 2],
        ..Conv2d::default()
    };
    g.conv2d(img, kernel, dilated)?;
    let dilated_same = Conv2d {
        strides: [2, 2],
        dilation: [1, 2],
        padding: Padding::Same,
    };
    g.conv2d(img, kernel, dilated_same)?;
    g.max_pool2d(img, Pool2d::new([2, 2]))?;
    let overlapping = Pool2d {
        size: [3, 2],
        strides: [2, 1],
        padding: Padding::Same,
    };
    g.max_pool2d(img, overlapping)?;
    g.avg_pool2d(img, Pool2d::new([2, 3]))?;
    g.avg_pool2d(img, overlapping)?;
    Ok(())
}

/// A graph, its inputs and its outputs.
pub type Model = (Graph<f32>, Vec<NodeId>, Vec<NodeId>);

/// The graph, its inputs and every node that is not a leaf (each one an output).
fn every_primitive() -> Result<Model, GraphError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(6)])?;
    let img = g.input("img", [None, Some(7), Some(6), Some(2)])?;
    vector_ops(&mut g, x)?;
    image_ops(&mut g, img)?;
    let outputs: Vec<NodeId> = g
        .nodes()
        .filter(|&n| g.op(n).is_ok_and(|op| !op.is_leaf()))
        .collect();
    Ok((g, vec![x, img], outputs))
}

#[test]
fn every_primitive_is_exported_or_refused_by_name() {
    let (g, _, outputs) = every_primitive().unwrap();
    let used: BTreeSet<&str> = outputs.iter().map(|&n| g.op(n).unwrap().name()).collect();
    let all: BTreeSet<&str> = Op::<f32>::primitive_names().into_iter().collect();
    let refused: BTreeSet<&str> = UNSUPPORTED.iter().copied().collect();
    let covered: BTreeSet<&str> = used.union(&refused).copied().collect();
    assert_eq!(
        covered, all,
        "a primitive is neither in the graph nor refused"
    );
    assert!(used.is_disjoint(&refused));
}

#[test]
fn every_exportable_primitive_matches_onnxruntime_at_batch_1_7_128() {
    let Some(rt) = Runtime::from_env("every_exportable_primitive") else {
        return;
    };
    let (g, inputs, outputs) = every_primitive().unwrap();
    let model = onnx::export(&g, &inputs, &outputs).unwrap();
    let mut plan = compile(&g, &outputs).unwrap();
    let batches = [1usize, 7, 128];
    let feeds: Vec<(ArrayD<f32>, ArrayD<f32>)> = batches
        .iter()
        .map(|&n| {
            let x = values(&[n, 6], n as u64, -1.5, 1.5);
            (x, values(&[n, 7, 6, 2], 100 + n as u64, -1.0, 1.0))
        })
        .collect();
    let runs: Vec<_> = feeds
        .iter()
        .map(|(x, img)| vec![("x", x.view()), ("img", img.view())])
        .collect();
    let theirs = rt.run(&model, &runs);
    for (r, (x, img)) in feeds.iter().enumerate() {
        let ours = plan
            .run(&g, &[("x", x.view()), ("img", img.view())])
            .unwrap();
        for (k, &node) in outputs.iter().enumerate() {
            let (name, value) = &theirs[r][k];
            assert_eq!(name, g.name(node).unwrap());
            let what = format!(
                "batch {}: {name} ({})",
                batches[r],
                g.op(node).unwrap().name()
            );
            assert_close(&what, ours.get(k).unwrap(), value.view(), 1e-5, 1e-6);
        }
    }
}

/// A graph with one node of each refused primitive (built the way training builds them:
/// gradients of conv2d and the pools, and the random draws).
fn refused_nodes() -> Result<Model, GraphError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [2, 4])?;
    let img = g.input("img", [1, 4, 4, 2])?;
    let mut nodes = Vec::new();
    let kernel = g.constant(values(&[2, 2, 2, 3], 5, -1.0, 1.0));
    let conv = g.conv2d(img, kernel, Conv2d::default())?;
    let y_bar = g.input("y_bar", [1, 3, 3, 3])?;
    nodes.extend(g.local_vjp(conv, y_bar)?.into_iter().flatten());
    let pool = Pool2d::new([2, 2]);
    let max = g.max_pool2d(img, pool)?;
    let p_bar = g.input("p_bar", [1, 2, 2, 2])?;
    let scatter = g.local_vjp(max, p_bar)?[0].unwrap();
    let back = g.input("back", [1, 4, 4, 2])?;
    let gather = g.local_vjp(scatter, back)?.into_iter().flatten();
    nodes.push(scatter);
    nodes.extend(gather);
    let avg = g.avg_pool2d(img, pool)?;
    nodes.extend(g.local_vjp(avg, p_bar)?.into_iter().flatten());
    let step = g.scalar(0.0);
    nodes.push(g.random_uniform(x, step, 1)?);
    nodes.push(g.random_normal(x, step, 1)?);
    Ok((g, vec![x, img], nodes))
}

#[test]
fn primitives_without_an_onnx_equivalent_are_refused_by_name() {
    let (g, ..) = refused_nodes().unwrap();
    let mut refused = BTreeSet::new();
    let inputs = g.inputs();
    for node in g.nodes() {
        let op = g.op(node).unwrap().name();
        if !UNSUPPORTED.contains(&op) {
            continue;
        }
        let err = onnx::export(&g, &inputs, &[node]).unwrap_err();
        let name = g.name(node).unwrap().to_owned();
        match &err {
            OnnxError::Unsupported {
                op: named, node, ..
            } => {
                assert_eq!((*named, node), (op, &name));
            }
            other => panic!("{op}: expected Unsupported, got {other}"),
        }
        assert!(err.to_string().contains(op), "{err}");
        refused.insert(op);
    }
    assert_eq!(
        refused,
        UNSUPPORTED.iter().copied().collect::<BTreeSet<_>>()
    );
}

#[test]
fn model_signatures_are_checked() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let other = g.input("other", [2]).unwrap();
    let y = g.exp(x).unwrap();
    let z = g.add(y, other).unwrap();
    let err = onnx::export(&g, &[x], &[z]).unwrap_err();
    assert!(
        matches!(&err, OnnxError::MissingInput { node } if node == "other"),
        "{err}"
    );
    let err = onnx::export(&g, &[x, y], &[y]).unwrap_err();
    assert!(
        matches!(&err, OnnxError::NotAnInput { op: "exp", .. }),
        "{err}"
    );
    let err = onnx::export(&g, &[x], &[y, y]).unwrap_err();
    assert!(
        matches!(
            &err,
            OnnxError::Duplicate {
                role: "outputs",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        onnx::export(&g, &[x], &[]),
        Err(OnnxError::NoOutputs)
    ));
    let foreign = Graph::<f32>::new();
    assert!(matches!(
        onnx::export(&foreign, &[], &[y]),
        Err(OnnxError::Graph(_))
    ));
}

#[test]
fn leaves_as_outputs_and_f64_graphs_run_in_onnxruntime() {
    let Some(rt) = Runtime::from_env("leaves_as_outputs") else {
        return;
    };
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let w = g.parameter("w", values(&[3], 3, -1.0, 1.0)).unwrap();
    let y = g.mul(x, w).unwrap();
    let model = onnx::export(&g, &[x], &[x, w, y]).unwrap();
    let xv = values(&[4, 3], 9, -1.0, 1.0);
    let theirs = rt.run(&model, &[vec![("x", xv.view())]]);
    let names: Vec<&str> = theirs[0].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x:output", "w:output", "mul"]);
    assert_eq!(theirs[0][0].1, xv);
    assert_eq!(theirs[0][1].1, g.value(w).unwrap().to_owned());
}
