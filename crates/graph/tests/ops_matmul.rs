//! Forward values of matmul: 2-D with every transpose flag, batched with broadcast batch axes,
//! empty dimensions, dynamic batches, feeds of any strides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arange, assert_same, binary, naive_matmul, run1, t, unary};
use dendrite_graph::{compile, Graph};
use ndarray::{ArrayD, Axis, IxDyn};

#[test]
fn matmul_2d_with_every_transpose_flag() {
    let a = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
    let cases = [
        (false, false, [19.0, 22.0, 43.0, 50.0]),
        (true, false, [26.0, 30.0, 38.0, 44.0]),
        (false, true, [17.0, 23.0, 39.0, 53.0]),
        (true, true, [23.0, 31.0, 34.0, 46.0]),
    ];
    for (tl, tr, expected) in cases {
        let y = binary(&a, &b, |g, a, b| g.matmul_t(a, b, tl, tr));
        assert_same(&y, &t(&[2, 2], &expected));
    }
    // Non-square: [2, 3] x [3, 1], and [3, 2]ᵀ x [3, 1].
    let a = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let v = t(&[3, 1], &[1.0, 0.0, -1.0]);
    assert_same(
        &binary(&a, &v, |g, a, b| g.matmul(a, b)),
        &t(&[2, 1], &[-2.0, -2.0]),
    );
    let at = a.t().to_owned();
    assert_same(
        &binary(&at, &v, |g, a, b| g.matmul_t(a, b, true, false)),
        &t(&[2, 1], &[-2.0, -2.0]),
    );
    // xᵀ x of the same node (two edges of one operand).
    let y = unary(&a, |g, x| g.matmul_t(x, x, true, false));
    assert_same(&y, &naive_matmul(&at, &a));
}

#[test]
fn matmul_with_empty_dimensions() {
    // k = 0: the product is all zeros, not whatever the buffer held.
    let y = binary(&t(&[2, 0], &[]), &t(&[0, 3], &[]), |g, a, b| g.matmul(a, b));
    assert_same(&y, &t(&[2, 3], &[0.0; 6]));
    assert_eq!(
        binary(&t(&[0, 2], &[]), &arange(&[2, 3]), |g, a, b| g.matmul(a, b)).shape(),
        &[0, 3]
    );
    assert_eq!(
        binary(&arange(&[4, 0, 2]), &arange(&[2, 3]), |g, a, b| g
            .matmul(a, b))
        .shape(),
        &[4, 0, 3]
    );
    assert_eq!(
        binary(&arange(&[0, 2, 2]), &arange(&[2, 3]), |g, a, b| g
            .matmul(a, b))
        .shape(),
        &[0, 2, 3]
    );
    // The same plan first with k = 2, then k = 0: the reused buffer must be cleared.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [Some(2), None]).unwrap();
    let b = g.input("b", [None, Some(3)]).unwrap();
    let c = g.matmul(a, b).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    let (av, bv) = (arange(&[2, 2]), arange(&[2, 3]));
    let out = plan.run(&g, &[("a", av.view()), ("b", bv.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &naive_matmul(&av, &bv));
    let (av, bv) = (arange(&[2, 0]), arange(&[0, 3]));
    let out = plan.run(&g, &[("a", av.view()), ("b", bv.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[2, 3], &[0.0; 6]));
}

/// Reference batched product: broadcast batch axes, one naive product per batch element.
fn batched_reference(a: &ArrayD<f64>, b: &ArrayD<f64>, out_shape: &[usize]) -> ArrayD<f64> {
    let rank = out_shape.len();
    let batch = &out_shape[..rank - 2];
    let full = |x: &ArrayD<f64>| {
        let mut s = batch.to_vec();
        s.extend_from_slice(&x.shape()[x.ndim() - 2..]);
        x.broadcast(IxDyn(&s)).unwrap().to_owned()
    };
    let (ab, bb) = (full(a), full(b));
    let mut out = ArrayD::<f64>::zeros(IxDyn(out_shape));
    let count: usize = batch.iter().product();
    let m = out_shape[rank - 2] * out_shape[rank - 1];
    let ka = ab.shape()[rank - 2] * ab.shape()[rank - 1];
    let kb = bb.shape()[rank - 2] * bb.shape()[rank - 1];
    let (a2, b2) = (&ab.shape()[rank - 2..], &bb.shape()[rank - 2..]);
    let av = ab.as_standard_layout().iter().copied().collect::<Vec<_>>();
    let bv = bb.as_standard_layout().iter().copied().collect::<Vec<_>>();
    let mut ov = Vec::with_capacity(count * m);
    for i in 0..count {
        let am = t(a2, &av[i * ka..(i + 1) * ka]);
        let bm = t(b2, &bv[i * kb..(i + 1) * kb]);
        ov.extend(naive_matmul(&am, &bm).iter().copied());
    }
    out.assign(&t(out_shape, &ov));
    out
}

#[test]
fn matmul_batched_with_broadcast_batch_axes() {
    // [2, 1, 3, 4] x [5, 4, 2] -> [2, 5, 3, 2]
    let a = arange(&[2, 1, 3, 4]).mapv(|v| v - 10.0);
    let b = arange(&[5, 4, 2]).mapv(|v| (v * 0.5) - 3.0);
    let y = binary(&a, &b, |g, a, b| g.matmul(a, b));
    assert_eq!(y.shape(), &[2, 5, 3, 2]);
    assert_same(&y, &batched_reference(&a, &b, &[2, 5, 3, 2]));
    // Spot check one element by hand: y[1, 3] = a[1, 0] b[3].
    let a10 = a
        .index_axis(Axis(0), 1)
        .index_axis(Axis(0), 0)
        .to_owned()
        .into_dyn();
    let b3 = b.index_axis(Axis(0), 3).to_owned().into_dyn();
    let y13 = y
        .index_axis(Axis(0), 1)
        .index_axis(Axis(0), 3)
        .to_owned()
        .into_dyn();
    assert_same(&y13, &naive_matmul(&a10, &b3));
    // Rank 2 against rank 3, and rank 3 against rank 2.
    let m = arange(&[3, 4]);
    let y = binary(&m, &b, |g, a, b| g.matmul(a, b));
    assert_same(&y, &batched_reference(&m, &b, &[5, 3, 2]));
    let y = binary(&b, &arange(&[2, 3]), |g, a, b| g.matmul(a, b));
    assert_same(&y, &batched_reference(&b, &arange(&[2, 3]), &[5, 4, 3]));
    // Transposed flags in the batched path.
    let bt = b
        .view()
        .permuted_axes(vec![0, 2, 1])
        .as_standard_layout()
        .to_owned(); // [5, 2, 4]
    let y = binary(&a, &bt, |g, a, b| g.matmul_t(a, b, false, true));
    assert_same(&y, &batched_reference(&a, &b, &[2, 5, 3, 2]));
}

#[test]
fn matmul_with_a_dynamic_batch() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let w = g
        .parameter("w", t(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
        .unwrap();
    let y = g.matmul(x, w).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 2]");
    let mut plan = compile(&g, &[y]).unwrap();
    for batch in [1, 4, 0, 2] {
        let xv = arange(&[batch, 3]);
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        assert_same(
            &out.get(0).unwrap().to_owned(),
            &naive_matmul(&xv, &g.value(w).unwrap().to_owned()),
        );
    }
}

#[test]
fn matmul_reads_feeds_of_any_strides() {
    use ndarray::s;
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [5, 7]).unwrap();
    let b = g.input("b", [7, 3]).unwrap();
    let c = g.matmul(a, b).unwrap();
    let ct = g.matmul_t(b, a, true, true).unwrap(); // (a b)ᵀ = bᵀ aᵀ
    let mut plan = compile(&g, &[c, ct]).unwrap();
    let a_store = arange(&[5, 7]).mapv(|v| (v * 0.37).sin());
    let b_store = arange(&[3, 7]).mapv(|v| (v * 0.61).cos());
    let reversed = a_store.slice(s![..;-1, ..]).into_dyn(); // negative row stride
    let transposed = b_store.t().into_dyn(); // column-major
    let row = arange(&[1, 3]);
    let broadcast = row.broadcast(IxDyn(&[7, 3])).unwrap(); // zero row stride
    for (av, bv) in [
        (reversed.view(), transposed.view()),
        (a_store.view(), broadcast.view()),
    ] {
        let out = plan
            .run(&g, &[("a", av.clone()), ("b", bv.clone())])
            .unwrap();
        let expected = naive_matmul(&av.to_owned(), &bv.to_owned());
        let got = out.get(0).unwrap().to_owned();
        let got_t = out.get(1).unwrap().t().to_owned();
        for (u, v) in got
            .iter()
            .chain(got_t.iter())
            .zip(expected.iter().chain(expected.iter()))
        {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    }
}

#[test]
fn matmul_of_larger_matrices_in_f32_and_f64() {
    // Sizes past any micro-kernel's tile, odd on purpose.
    let (m, k, n) = (37, 53, 29);
    let a = arange(&[m, k]).mapv(|v| (v * 0.013).sin());
    let b = arange(&[k, n]).mapv(|v| (v * 0.029).cos());
    let expected = naive_matmul(&a, &b);
    let y = binary(&a, &b, |g, a, b| g.matmul(a, b));
    for (u, v) in y.iter().zip(expected.iter()) {
        assert!((u - v).abs() < 1e-12, "{u} vs {v}");
    }
    let mut g = Graph::<f32>::new();
    let ai = g.input("a", [m, k]).unwrap();
    let bi = g.input("b", [k, n]).unwrap();
    let c = g.matmul(ai, bi).unwrap();
    let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
    let y = run1(&g, c, &[("a", &a32), ("b", &b32)]);
    for (u, v) in y.iter().zip(expected.iter()) {
        assert!((f64::from(*u) - v).abs() < 1e-4, "{u} vs {v}");
    }
}
