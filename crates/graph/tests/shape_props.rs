//! Property tests for the shape rules: broadcasting (against ndarray's own), static inference
//! with dynamic dimensions against concrete inference, reshape and permute round trips, matmul
//! shapes and values, and reductions against ndarray.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::naive_matmul;
use dendrite_graph::{
    broadcast_dim, broadcast_shapes, compile, BinaryOp, Dim, Graph, Op, ReduceOp, Shape,
};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A concrete shape of rank 0..=4 with dims 1..=4, about a third of them forced to 1.
fn concrete_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1 => Just(1_usize), 2 => 1_usize..=4], 0..=4)
}

/// A pair of concrete shapes that broadcast: one common shape (empty axes included), each side
/// dropping leading axes and replacing some dims by 1.
fn broadcastable_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        prop::collection::vec(prop_oneof![1 => Just(0_usize), 4 => 1_usize..=4], 0..=4),
        any::<u64>(),
        0_usize..=4,
        0_usize..=4,
    )
        .prop_map(|(common, bits, drop_a, drop_b)| {
            let side = |drop: usize, shift: u32| {
                let drop = drop.min(common.len());
                common[drop..]
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if bits >> (shift + i as u32) & 1 == 1 {
                            1
                        } else {
                            d
                        }
                    })
                    .collect::<Vec<_>>()
            };
            (side(drop_a, 0), side(drop_b, 8))
        })
}

/// A declared dimension: fixed or dynamic.
fn dim() -> impl Strategy<Value = Dim> {
    prop_oneof![3 => (0_usize..=4).prop_map(Dim::Fixed), 1 => Just(Dim::Dynamic)]
}

fn declared_shape() -> impl Strategy<Value = Shape> {
    prop::collection::vec(dim(), 0..=4).prop_map(Shape::new)
}

/// Replaces the dims whose bit is set by `Dynamic`.
fn mask(concrete: &[usize], bits: u8) -> Shape {
    Shape::new(concrete.iter().enumerate().map(|(i, &d)| {
        if bits >> i & 1 == 1 {
            Dim::Dynamic
        } else {
            Dim::Fixed(d)
        }
    }))
}

/// Deterministic, distinct-ish values for a shape.
fn filled(shape: &[usize], seed: f64) -> ArrayD<f64> {
    let mut k = 0.0;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        k += 1.0;
        (k * 0.731 + seed).sin() * 4.0
    })
}

/// The NumPy broadcast target if both shapes broadcast to the right-aligned maximum, judged by
/// ndarray's `broadcast` (the only candidate when every dim is at least 1).
fn ndarray_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let padded = |s: &[usize]| {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (padded(a), padded(b));
    let target: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let xa = ArrayD::<f64>::zeros(IxDyn(a));
    let xb = ArrayD::<f64>::zeros(IxDyn(b));
    (xa.broadcast(IxDyn(&target)).is_some() && xb.broadcast(IxDyn(&target)).is_some())
        .then_some(target)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn broadcast_is_commutative(a in declared_shape(), b in declared_shape()) {
        prop_assert_eq!(broadcast_shapes(&a, &b), broadcast_shapes(&b, &a));
        for (&x, &y) in a.dims().iter().zip(b.dims()) {
            prop_assert_eq!(broadcast_dim(x, y), broadcast_dim(y, x));
        }
    }

    #[test]
    fn broadcast_with_itself_and_with_a_scalar_is_the_identity(a in declared_shape()) {
        prop_assert_eq!(broadcast_shapes(&a, &a), Some(a.clone()));
        prop_assert_eq!(broadcast_shapes(&a, &Shape::scalar()), Some(a.clone()));
    }

    #[test]
    fn broadcast_agrees_with_ndarray(a in concrete_shape(), b in concrete_shape()) {
        let ours = broadcast_shapes(&Shape::fixed(&a), &Shape::fixed(&b));
        let theirs = ndarray_broadcast(&a, &b);
        prop_assert_eq!(ours.clone(), theirs.as_deref().map(Shape::fixed));
        if let Some(out) = ours {
            // ndarray's co-broadcasting arithmetic gives the same shape, and our kernel the same
            // values.
            let (xa, xb) = (filled(&a, 0.1), filled(&b, 0.7));
            let expected = &xa - &xb;
            prop_assert_eq!(Shape::fixed(expected.shape()), out);
            let got = Op::Binary(BinaryOp::Sub).evaluate("d", &[xa.view(), xb.view()]).unwrap();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn broadcastable_pairs_run_through_a_plan((a, b) in broadcastable_pair()) {
        // Every binary kernel's fast paths (same shape, scalar, row, column) and its general
        // path, in both operand orders, against ndarray's broadcasting arithmetic.
        let mut g = Graph::<f64>::new();
        let ai = g.input("a", Shape::fixed(&a)).unwrap();
        let bi = g.input("b", Shape::fixed(&b)).unwrap();
        let ab = g.sub(ai, bi).unwrap();
        let ba = g.sub(bi, ai).unwrap();
        let m = g.maximum(bi, ai).unwrap();
        let gt = g.greater(ai, bi).unwrap();
        let sel = g.select(gt, ai, bi).unwrap();
        let (xa, xb) = (filled(&a, 0.3), filled(&b, 1.9));
        let out = common::run_all(&g, &[ab, ba, m, gt, sel], &[("a", &xa), ("b", &xb)]).unwrap();
        prop_assert_eq!(&out[0], &(&xa - &xb));
        prop_assert_eq!(&out[1], &(&xb - &xa));
        let shape = out[0].raw_dim();
        let (va, vb) = (xa.broadcast(shape.clone()).unwrap(), xb.broadcast(shape).unwrap());
        let max = ndarray::Zip::from(&va).and(&vb).map_collect(|&p, &q| p.max(q));
        prop_assert_eq!(&out[2], &max);
        let greater = ndarray::Zip::from(&va)
            .and(&vb)
            .map_collect(|&p, &q| if p > q { 1.0 } else { 0.0 });
        prop_assert_eq!(&out[3], &greater);
        prop_assert_eq!(&out[4], &max);
    }

    #[test]
    fn static_inference_with_dynamic_dims_is_consistent_with_concrete_inference(
        a in concrete_shape(), b in concrete_shape(), mask_a in any::<u8>(), mask_b in any::<u8>(),
    ) {
        let concrete = broadcast_shapes(&Shape::fixed(&a), &Shape::fixed(&b));
        let declared = broadcast_shapes(&mask(&a, mask_a), &mask(&b, mask_b));
        match (&concrete, &declared) {
            // Whatever broadcasts concretely also passes the build-time check, and the declared
            // result is an instance-compatible description of the concrete one.
            (Some(c), Some(d)) => {
                let c = c.concrete().unwrap();
                prop_assert!(d.accepts(&c), "declared {} does not accept concrete {:?}", d, c);
            }
            (Some(c), None) => prop_assert!(false, "concrete {} broadcasts, declared does not", c),
            // Trust may let a conflict through at build time (the run-time check catches it),
            // but a build-time rejection must be a real conflict.
            (None, _) => {}
        }
        // With no dynamic dims the two agree exactly.
        if mask_a == 0 && mask_b == 0 {
            prop_assert_eq!(&concrete, &declared);
        }
        // Through the op's shape rule as well.
        let op = Op::<f64>::Binary(BinaryOp::Add);
        let inferred = op.infer_shape("add", &[&mask(&a, mask_a), &mask(&b, mask_b)]).ok();
        prop_assert_eq!(inferred, declared);
    }

    #[test]
    fn broadcast_dim_describes_every_instantiation_of_its_dynamic_dims(a in dim(), b in dim()) {
        // Every way of filling in the dynamic dims that broadcasts concretely gives a size the
        // declared result accepts; a declared conflict is a conflict for every filling.
        let sizes = |d: Dim| match d {
            Dim::Fixed(n) => vec![n],
            Dim::Dynamic => (0..=4).collect(),
        };
        let declared = broadcast_dim(a, b);
        for x in sizes(a) {
            for y in sizes(b) {
                let concrete = broadcast_dim(Dim::Fixed(x), Dim::Fixed(y));
                match (declared, concrete) {
                    (Some(Dim::Fixed(d)), Some(Dim::Fixed(c))) => {
                        prop_assert_eq!(d, c, "{:?} {:?} as {} {}", a, b, x, y)
                    }
                    (None, Some(c)) => prop_assert!(false, "{:?} {:?} rejected, but {} {} gives \
                                                            {:?}", a, b, x, y, c),
                    _ => {}
                }
            }
        }
        // A fixed size other than 1 is never changed by broadcasting.
        for side in [a, b] {
            if let (Dim::Fixed(n), Some(out)) = (side, declared)
                && n != 1 {
                    prop_assert_eq!(out, Dim::Fixed(n));
                }
        }
        if a == Dim::Dynamic && b == Dim::Dynamic {
            prop_assert_eq!(declared, Some(Dim::Dynamic));
        }
    }

    #[test]
    fn reshape_round_trips(
        shape in prop::collection::vec(0_usize..=4, 0..=4),
        dynamic in any::<bool>(),
    ) {
        let x = filled(&shape, 2.0);
        let n = x.len();
        let mut g = Graph::<f64>::new();
        let xi = g.input("x", Shape::fixed(&shape)).unwrap();
        let flat = if dynamic && n > 0 {
            g.reshape(xi, [None]).unwrap()
        } else {
            g.reshape(xi, [n]).unwrap()
        };
        prop_assert_eq!(g.shape(flat).unwrap(), &Shape::from([n]));
        let back = g.reshape(flat, Shape::fixed(&shape)).unwrap();
        let out = common::run_all(&g, &[flat, back], &[("x", &x)]).unwrap();
        prop_assert_eq!(
            out[0].iter().copied().collect::<Vec<_>>(),
            x.iter().copied().collect::<Vec<_>>()
        );
        prop_assert_eq!(&out[1], &x);
    }

    #[test]
    fn permute_round_trips_and_matches_ndarray(
        shape in prop::collection::vec(1_usize..=4, 0..=4),
        perm in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
    ) {
        let rank = shape.len();
        let mut p: Vec<usize> = (0..rank).collect();
        // A seeded Fisher-Yates shuffle.
        let mut seed = perm;
        for i in (1..rank).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            p.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut inverse = vec![0; rank];
        for (i, &q) in p.iter().enumerate() {
            inverse[q] = i;
        }
        let x = filled(&shape, 3.0);
        let mut g = Graph::<f64>::new();
        let xi = g.input("x", Shape::fixed(&shape)).unwrap();
        let y = g.permute(xi, &p).unwrap();
        let back = g.permute(y, &inverse).unwrap();
        let expected_shape: Vec<usize> = p.iter().map(|&q| shape[q]).collect();
        prop_assert_eq!(g.shape(y).unwrap(), &Shape::fixed(&expected_shape));
        let out = common::run_all(&g, &[y, back], &[("x", &x)]).unwrap();
        prop_assert_eq!(&out[0], &x.view().permuted_axes(p.clone()).to_owned());
        prop_assert_eq!(&out[1], &x);
    }

    #[test]
    fn matmul_shapes_and_values(
        (batch_a, batch_b) in (
            prop::collection::vec(1_usize..=3, 0..=2),
            any::<u8>(),
            0_usize..=2,
            0_usize..=2,
        )
            .prop_map(|(common, bits, da, db)| {
                let side = |drop: usize, shift: u32| {
                    common[drop.min(common.len())..]
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| if bits >> (shift + i as u32) & 1 == 1 { 1 } else { d })
                        .collect::<Vec<_>>()
                };
                (side(da, 0), side(db, 4))
            }),
        (m, k, n) in (0_usize..=4, 0_usize..=4, 0_usize..=4),
        (tl, tr) in (any::<bool>(), any::<bool>()),
    ) {
        let mut sa = batch_a.clone();
        sa.extend(if tl { [k, m] } else { [m, k] });
        let mut sb = batch_b.clone();
        sb.extend(if tr { [n, k] } else { [k, n] });
        let mut g = Graph::<f64>::new();
        let a = g.input("a", Shape::fixed(&sa)).unwrap();
        let b = g.input("b", Shape::fixed(&sb)).unwrap();
        let c = g.matmul_t(a, b, tl, tr).unwrap();
        let mut expected = broadcast_shapes(&Shape::fixed(&batch_a), &Shape::fixed(&batch_b))
            .unwrap()
            .concrete()
            .unwrap()
            .to_vec();
        let batch = expected.clone();
        expected.extend([m, n]);
        prop_assert_eq!(g.shape(c).unwrap(), &Shape::fixed(&expected));
        // Values: per batch element, a naive product of the (transposed) matrices.
        let (xa, xb) = (filled(&sa, 0.5), filled(&sb, 1.5));
        let out = common::run_all(&g, &[c], &[("a", &xa), ("b", &xb)]).unwrap().remove(0);
        prop_assert_eq!(out.shape(), expected.as_slice());
        let full = |x: &ArrayD<f64>| {
            let mut s = batch.clone();
            s.extend_from_slice(&x.shape()[x.ndim() - 2..]);
            let batches = batch.iter().product::<usize>();
            x.broadcast(IxDyn(&s))
                .unwrap()
                .to_owned()
                .into_shape_with_order(IxDyn(&[batches, s[s.len() - 2], s[s.len() - 1]]))
                .unwrap()
        };
        let (fa, fb) = (full(&xa), full(&xb));
        let flat_out = out
            .clone()
            .into_shape_with_order(IxDyn(&[batch.iter().product::<usize>(), m, n]))
            .unwrap();
        for i in 0..fa.shape()[0] {
            let mut am = fa.index_axis(Axis(0), i).to_owned();
            let mut bm = fb.index_axis(Axis(0), i).to_owned();
            if tl { am = am.reversed_axes().as_standard_layout().to_owned(); }
            if tr { bm = bm.reversed_axes().as_standard_layout().to_owned(); }
            let want = naive_matmul(&am, &bm);
            let got = flat_out.index_axis(Axis(0), i);
            for (u, v) in got.iter().zip(want.iter()) {
                prop_assert!((u - v).abs() <= 1e-12 * v.abs().max(1.0), "{} vs {}", u, v);
            }
        }
    }

    #[test]
    fn reductions_agree_with_ndarray(
        shape in prop::collection::vec(0_usize..=4, 0..=4),
        axis_bits in any::<u8>(),
        keep_dims in any::<bool>(),
        transpose_feed in any::<bool>(),
    ) {
        let rank = shape.len();
        let axes: Vec<usize> = (0..rank).filter(|i| axis_bits >> i & 1 == 1).collect();
        // Optionally feed a non-contiguous (reversed-axes) view of the same logical array.
        let x = filled(&shape, 4.0);
        let storage = x.view().reversed_axes().as_standard_layout().to_owned();
        let feed = if transpose_feed { storage.view().reversed_axes() } else { x.view() };
        prop_assert_eq!(&feed, &x.view());
        let mut g = Graph::<f64>::new();
        let xi = g.input("x", Shape::fixed(&shape)).unwrap();
        let sum = g.reduce(ReduceOp::Sum, xi, &axes, keep_dims).unwrap();
        let max = g.reduce(ReduceOp::Max, xi, &axes, keep_dims).unwrap();
        let mut plan = compile(&g, &[sum, max]).unwrap();
        let out = plan.run(&g, &[("x", feed)]).unwrap();
        let mut want_sum = x.clone();
        let mut want_max = x.clone();
        for &a in axes.iter().rev() {
            want_sum = want_sum.sum_axis(Axis(a));
            want_max =
                want_max.map_axis(Axis(a), |lane| lane.fold(f64::NEG_INFINITY, |m, &v| m.max(v)));
            if keep_dims {
                want_sum.insert_axis_inplace(Axis(a));
                want_max.insert_axis_inplace(Axis(a));
            }
        }
        let got_sum = out.get(0).unwrap();
        prop_assert_eq!(got_sum.shape(), want_sum.shape());
        for (u, v) in got_sum.iter().zip(want_sum.iter()) {
            prop_assert!((u - v).abs() <= 1e-12 * v.abs().max(1.0), "{} vs {}", u, v);
        }
        prop_assert_eq!(out.get(1).unwrap(), want_max.view());
    }
}
