//! The pooling layers: hand-computed values on a 4x4 image, shapes from the graph's rule,
//! refusals, gradients through them checked in f64, and model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::ops::Padding;
use dendrite_nn::{
    Activation, AveragePooling2D, Dense, Flatten, GlobalAveragePooling2D, Layer, MaxPooling2D,
    NnError, Reshape, Sequential,
};
use ndarray::Array2;

/// One 4x4 single-channel image holding 1..=16 row by row, then `pool`, then Flatten.
fn pooled(pool: impl Layer<f64> + 'static) -> Vec<f64> {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([4, 4, 1]).input_shape([16]));
    m.add(pool);
    m.add(Flatten::new());
    m.build().unwrap();
    let x = Array2::from_shape_fn((1, 16), |(_, j)| (j + 1) as f64);
    m.predict(&x.view(), 1).unwrap().iter().copied().collect()
}

/// Image rows [1 2 3 4], [5 6 7 8], [9 10 11 12], [13 14 15 16]. 2x2 windows: the maxima are
/// the bottom-right corners 6, 8, 14, 16; the means are (1+2+5+6)/4 = 3.5, then 5.5, 11.5,
/// 13.5; the global mean is 8.5.
#[test]
fn pools_give_the_hand_computed_values() {
    assert_eq!(pooled(MaxPooling2D::new([2, 2])), [6.0, 8.0, 14.0, 16.0]);
    assert_eq!(
        pooled(AveragePooling2D::new([2, 2])),
        [3.5, 5.5, 11.5, 13.5]
    );
    // Stride 1, `same`: the last column and row see only the image (padding is not counted).
    let same = pooled(
        AveragePooling2D::new([2, 2])
            .strides([1, 1])
            .padding(Padding::Same),
    );
    assert_eq!(same.len(), 16);
    assert_eq!(same[3], (4.0 + 8.0) / 2.0);
    assert_eq!(same[15], 16.0);
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([4, 4, 1]).input_shape([16]));
    m.add(GlobalAveragePooling2D::new());
    m.build().unwrap();
    let x = Array2::from_shape_fn((1, 16), |(_, j)| (j + 1) as f64);
    assert_eq!(m.predict(&x.view(), 1).unwrap().as_slice().unwrap(), &[8.5]);
}

#[test]
fn shapes_follow_the_graph_and_bad_inputs_are_refused() {
    let max = MaxPooling2D::new([2, 2]);
    assert_eq!(
        Layer::<f32>::output_shape(&max, &[26, 26, 32]).unwrap(),
        [13, 13, 32]
    );
    assert_eq!(
        Layer::<f32>::output_shape(&max, &[11, 11, 64]).unwrap(),
        [5, 5, 64]
    );
    let same = MaxPooling2D::new([2, 2]).padding(Padding::Same);
    assert_eq!(
        Layer::<f32>::output_shape(&same, &[11, 11, 64]).unwrap(),
        [6, 6, 64]
    );
    assert!(matches!(
        Layer::<f32>::output_shape(&max, &[784]),
        Err(NnError::LayerInput { .. })
    ));
    // A window larger than the image, and a zero-sized window: the graph's refusals.
    assert!(Layer::<f32>::output_shape(&MaxPooling2D::new([3, 3]), &[2, 2, 1]).is_err());
    assert!(Layer::<f32>::output_shape(&AveragePooling2D::new([0, 2]), &[4, 4, 1]).is_err());
    assert_eq!(
        Layer::<f32>::output_shape(&GlobalAveragePooling2D::new(), &[5, 5, 64]).unwrap(),
        [64]
    );
    let mut m = Sequential::<f32>::default();
    m.add(Reshape::new([3, 3, 1]).input_shape([9]));
    m.add(MaxPooling2D::new([4, 4]).named("too_big"));
    m.add(Flatten::new());
    assert!(m.build().is_err());
}

/// The summary shows the pooled shapes and counts no parameters for the pools.
#[test]
fn summary_shows_pooled_shapes() {
    let mut m = Sequential::<f32>::default();
    m.add(Reshape::new([26, 26, 32]).input_shape([26 * 26 * 32]));
    m.add(MaxPooling2D::new([2, 2]));
    m.add(AveragePooling2D::new([2, 2]).strides([1, 1]));
    m.add(GlobalAveragePooling2D::new());
    m.add(Dense::new(10));
    let s = m.summary().unwrap();
    let text = s.to_string();
    assert!(text.contains("(None, 13, 13, 32)"), "{text}");
    assert!(text.contains("(None, 12, 12, 32)"), "{text}");
    assert!(text.contains("(None, 32)"), "{text}");
    assert_eq!(s.total_params(), 32 * 10 + 10);
}

/// Gradients of a small model through each pool, against central differences in f64.
#[test]
fn gradients_through_the_pools_pass_the_checker() {
    use dendrite_autodiff::check::{check_gradients, CheckConfig};
    use dendrite_graph::Graph;
    use dendrite_nn::Init;
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        Box::new(MaxPooling2D::new([2, 2])),
        Box::new(
            AveragePooling2D::new([2, 2])
                .strides([1, 1])
                .padding(Padding::Same),
        ),
        Box::new(GlobalAveragePooling2D::new()),
    ];
    for mut layer in layers {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [2, 4, 4, 2]).unwrap();
        let y = layer
            .build(&mut g, x, &[4, 4, 2], &mut Init::new(0))
            .unwrap();
        let sq = g.square(y.output).unwrap();
        let loss = g.sum_all(sq).unwrap();
        // Distinct values (no ties inside a window): 0.37·k mod 1.9 over the 64 elements.
        let values = ndarray::Array4::from_shape_fn((2, 4, 4, 2), |(n, i, j, c)| {
            let k = (((n * 4 + i) * 4 + j) * 2 + c) as f64;
            (0.37 * k) % 1.9 - 0.9 + 0.001 * k
        })
        .into_dyn();
        let report = check_gradients(
            &mut g,
            loss,
            &[x],
            &[("x", values.view())],
            &CheckConfig::default(),
        )
        .unwrap();
        assert!(report.passed(), "{}: {report}", Layer::<f64>::kind(&*layer));
    }
}

#[test]
fn pools_round_trip_through_a_model_file() {
    let dir = std::env::temp_dir().join(format!("dendrite-nn-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.dendrite");
    let mut m = Sequential::<f32>::default().with_seed(3);
    m.add(Reshape::new([6, 6, 2]).input_shape([72]));
    m.add(MaxPooling2D::new([2, 2]).strides([1, 1]).named("max"));
    m.add(AveragePooling2D::new([2, 2]).padding(Padding::Same));
    m.add(GlobalAveragePooling2D::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.build().unwrap();
    m.save(&path).unwrap();
    let mut loaded = Sequential::<f32>::load(&path).unwrap();
    assert_eq!(loaded.layer_names(), m.layer_names());
    let x = Array2::from_shape_fn((5, 72), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0);
    assert_eq!(
        loaded.predict(&x.view(), 4).unwrap(),
        m.predict(&x.view(), 4).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
