//! The listings of the book page "Your own losses, metrics, initializers and regularizers"
//! (`docs/src/extending/losses.md`), compiled and run by `cargo test --test book_extending_nn`.
//!
//! The page pulls the regions between `// ANCHOR: name` and `// ANCHOR_END: name` out of this
//! file with `{{#include ../../../tests/book_extending_nn.rs:name}}`, as the other chapters do
//! with `tests/book/`. Each listing holds its own `use` lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// ANCHOR: huber
use dendrite::graph::{Graph, NodeId};
use dendrite::nn::{Float, LayerNodes, LossFn, NnError};

/// The Huber loss: `½ d²` for `|d| ≤ δ` and `δ (|d| - ½ δ)` beyond, averaged over the outputs.
#[derive(Debug)]
struct Huber {
    delta: f64,
}

impl LossFn for Huber {
    fn name(&self) -> &'static str {
        "huber"
    }

    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let d = g.sub(nodes.output, targets)?;
        let a = g.abs(d)?;
        let delta = g.scalar(self.delta);
        let inner = g.minimum(a, delta)?; // min(|d|, δ)
        let outer = g.sub(a, inner)?; // |d| - min(|d|, δ)
                                      // ½ min(|d|, δ)² + δ (|d| - min(|d|, δ)): both pieces and
                                      // their slopes meet at |d| = δ.
        let sq = g.square(inner)?;
        let half = g.scalar(0.5);
        let quadratic = g.mul(half, sq)?;
        let linear = g.mul(delta, outer)?;
        let per_output = g.add(quadratic, linear)?;
        Ok(g.mean(per_output, &[1], false)?)
    }
}
// ANCHOR_END: huber

// ANCHOR: huber_check
#[test]
fn huber_gradient_is_checked() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite::autodiff::{assert_gradients, CheckConfig};
    use dendrite::nn::Loss;

    // The loss as the model builds it (batch mean of the per-sample loss), in f64.
    let mut g = Graph::<f64>::new();
    let p = g.input("p", [None, Some(3)])?;
    let y = g.input("y", [None, Some(3)])?;
    let loss = Loss::custom(Huber { delta: 1.0 }).build(&mut g, &LayerNodes::new(p), y)?;

    // Errors on both sides of δ, away from the kinks at d = 0 and |d| = δ.
    let pv = ndarray::arr2(&[[0.3, 2.5, -1.7], [-0.4, 0.2, 3.0]]).into_dyn();
    let yv = ndarray::Array2::<f64>::zeros((2, 3)).into_dyn();
    let feeds = [("p", pv.view()), ("y", yv.view())];
    assert_gradients(&mut g, loss, &[p], &feeds, &CheckConfig::default())?;
    Ok(())
}
// ANCHOR_END: huber_check

// ANCHOR: huber_fit
#[test]
fn huber_trains_a_model() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite::nn::{Adam, Dense, FitConfig, Loss, Metric, Sequential};

    // y = 2x with one outlier, which the Huber loss weighs linearly, not quadratically.
    let x = ndarray::Array2::from_shape_fn((32, 1), |(i, _)| i as f32 / 32.0);
    let mut y = x.mapv(|v| 2.0 * v);
    y[[5, 0]] = 40.0;

    let mut model = Sequential::new();
    model.add(Dense::new(1).input_dim(1));
    model.compile(
        Adam::new(0.05),
        Loss::custom(Huber { delta: 1.0 }),
        &[Metric::MeanAbsoluteError],
    )?;
    let config = FitConfig::default().epochs(40).batch_size(8).verbosity(0);
    let history = model.fit(&(x.view(), y.view()), config)?;
    assert!(history.loss[39] < history.loss[0]);
    assert_eq!(
        history.metric("mean_absolute_error").map(<[f64]>::len),
        Some(40)
    );
    Ok(())
}
// ANCHOR_END: huber_fit

// ANCHOR: metric
use dendrite::nn::MetricFn;

/// The fraction of samples whose every output is within `tolerance` of its target.
#[derive(Debug)]
struct WithinTolerance {
    tolerance: f64,
}

impl MetricFn for WithinTolerance {
    fn name(&self) -> &'static str {
        "within_tolerance"
    }

    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let d = g.sub(nodes.output, targets)?;
        let a = g.abs(d)?;
        let worst = g.max(a, &[1], false)?; // one value per sample
        let tolerance = g.scalar(self.tolerance);
        Ok(g.less(worst, tolerance)?) // 1 or 0; fit reports the mean
    }
}
// ANCHOR_END: metric

// ANCHOR: metric_fit
#[test]
fn a_metric_of_your_own_is_reported_by_name() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite::nn::{Dense, FitConfig, Initializer, Loss, Metric, Sequential, Sgd};

    let x = ndarray::array![[0.0_f32, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.5]];
    let y = ndarray::array![[1.0_f32], [1.0], [2.0], [1.0]]; // x₀ + x₁
    let mut model = Sequential::new();
    model.add(
        Dense::new(1)
            .input_dim(2)
            .kernel_initializer(Initializer::Ones),
    );
    let metric = Metric::custom(WithinTolerance { tolerance: 0.1 });
    model.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[metric])?;

    // The weights start at the solution: every sample is within tolerance.
    let result = model.evaluate(&(x.view(), y.view()), 4)?;
    assert_eq!(result.metric("within_tolerance"), Some(1.0));
    let config = FitConfig::default().epochs(2).verbosity(0);
    let history = model.fit(&(x.view(), y.view()), config)?;
    assert_eq!(history.metric("within_tolerance"), Some(&[1.0, 1.0][..]));
    Ok(())
}
// ANCHOR_END: metric_fit

// ANCHOR: initializer
#[test]
fn initializers_and_one_of_your_own() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite::nn::{Dense, Init, InitFn, Initializer, Sequential};
    use rand::Rng;

    /// Keras' `RandomNormal(stddev=0.05)`, drawn with the layer's generator: seeded.
    #[derive(Debug)]
    struct SmallNormal;

    impl InitFn for SmallNormal {
        fn fill(
            &self,
            init: &mut Init,
            _shape: &[usize],
            values: &mut [f64],
        ) -> Result<(), NnError> {
            for v in values.iter_mut() {
                // Irwin–Hall: the sum of 12 uniforms minus 6 is close to N(0, 1).
                let z: f64 = (0..12).map(|_| init.rng().r#gen::<f64>()).sum::<f64>() - 6.0;
                *v = 0.05 * z;
            }
            Ok(())
        }
    }

    let build = |seed| -> Result<_, NnError> {
        let mut model = Sequential::new().with_seed(seed);
        model.add(
            Dense::new(64)
                .input_dim(784)
                .kernel_initializer(Initializer::HeNormal),
        );
        model.add(Dense::new(10).kernel_initializer(Initializer::custom(SmallNormal)));
        model.build()?;
        model.get_weights()
    };
    let (a, b) = (build(7)?, build(7)?);
    assert_eq!(a, b); // the same seed, the same weights
    let he = &a[0];
    let variance = he.iter().map(|w| w * w).sum::<f32>() / he.len() as f32;
    assert!((variance / (2.0 / 784.0) - 1.0).abs() < 0.05); // He: Var(w) = 2 / fan_in
    Ok(())
}
// ANCHOR_END: initializer

// ANCHOR: regularizer
#[test]
fn a_regularizer_is_part_of_the_loss() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite::nn::{Dense, FitConfig, Loss, Regularizer, Sequential, Sgd};

    let x = ndarray::Array2::from_shape_fn((16, 4), |(i, j)| ((i + j) % 5) as f32 / 5.0);
    let y = x.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    let mut model = Sequential::new();
    model.add(
        Dense::new(1)
            .input_dim(4)
            .kernel_regularizer(Regularizer::l2(0.01)),
    );
    model.compile(Sgd::new(0.05), Loss::MeanSquaredError, &[])?;

    let kernel = model.get_weights()?[0].clone();
    let penalty = 0.01 * kernel.iter().map(|w| w * w).sum::<f32>(); // Keras: l2 Σ w², no ½
    let result = model.evaluate(&(x.view(), y.view()), 16)?;
    assert!((result.regularization.ok_or("no penalty")? - f64::from(penalty)).abs() < 1e-6);

    let history = model.fit(
        &(x.view(), y.view()),
        FitConfig::default().epochs(5).verbosity(0),
    )?;
    assert_eq!(history.regularization.len(), 5); // reported beside the loss, which includes it
    Ok(())
}
// ANCHOR_END: regularizer
