//! Functional models and batch normalization: the listings of `docs/src/nn/functional.md`.

use super::{shows, TestResult};

// ANCHOR: residual
#[test]
fn a_residual_block() -> TestResult {
    use dendrite_nn::{Activation, Dense, Functional, Model};

    let mut f = Functional::<f32>::new();
    let x = f.input([784])?;
    let h = f.apply(Dense::new(64).activation(Activation::Relu), x)?;
    // The block: two dense layers whose output is added back to their input.
    let r = f.apply(Dense::new(64).activation(Activation::Relu), h)?;
    let r = f.apply(Dense::new(64), r)?;
    let sum = f.add(&[h, r])?;
    let out = f.apply(Activation::Relu, sum)?;
    let y = f.apply(Dense::new(10).activation(Activation::Softmax), out)?;
    let model = Model::new(f, x, y)?;
    let printed = model.summary()?.to_string();
    print!("{printed}");
    assert_eq!(model.summary()?.total_params(), 50_240 + 2 * 4_160 + 650);
    shows("functional_residual", &printed)
}
// ANCHOR_END: residual

// ANCHOR: shared
#[test]
fn a_shared_layer() -> TestResult {
    use dendrite_nn::{Dense, Functional, Initializer, Model};

    let mut f = Functional::<f32>::new();
    let x = f.input([2])?;
    let shared = f.layer(Dense::new(2).kernel_initializer(Initializer::Constant(1.0)));
    let doubled = f.add(&[x, x])?;
    let a = f.call(shared, x)?; // [1 + 3, 1 + 3]
    let b = f.call(shared, doubled)?; // the same kernel on [2, 6]: [8, 8]
    let y = f.add(&[a, b])?;
    let mut model = Model::new(f, x, y)?;
    model.build()?;
    let out = model.predict(&ndarray::array![[1.0_f32, 3.0]].view(), 1)?;
    let printed = format!(
        "weights: {} tensors\noutput: {out}\n",
        model.get_weights()?.len()
    );
    print!("{printed}");
    assert_eq!(out, ndarray::array![[12.0_f32, 12.0]]);
    shows("functional_shared", &printed)
}
// ANCHOR_END: shared

// ANCHOR: batch_norm
#[test]
fn batch_normalization_in_both_modes() -> TestResult {
    use dendrite_graph::{compile, Graph, Shape};
    use dendrite_nn::{BatchNormalization, Init, Layer, Mode};

    let x = ndarray::array![[1.0_f64], [3.0]].into_dyn();
    let mut printed = String::new();
    for mode in [Mode::Training, Mode::Inference] {
        let mut g = Graph::<f64>::new();
        let input = g.input("x", Shape::fixed(x.shape()))?;
        let step = g.scalar(0.0);
        let mut init = Init::new(0).with_mode(mode).with_step(step);
        let nodes = BatchNormalization::new().build(&mut g, input, &[1], &mut init)?;
        let mut fetches = vec![nodes.output];
        fetches.extend(nodes.state_updates.iter().map(|&(_, new)| new));
        let mut plan = compile(&g, &fetches)?;
        let out = plan.run(&g, &[("x", x.view())])?;
        printed += &format!("{mode:?}: y = {:?}", out.get(0)?.iter().collect::<Vec<_>>());
        if fetches.len() == 3 {
            printed += &format!(
                ", moving mean -> {:.4}, moving variance -> {:.4}",
                out.get(1)?.sum(),
                out.get(2)?.sum()
            );
        }
        printed += "\n";
    }
    print!("{printed}");
    shows("batch_norm_modes", &printed)
}
// ANCHOR_END: batch_norm

// ANCHOR: multi
#[test]
fn two_inputs_and_two_outputs() -> TestResult {
    use dendrite_nn::data::synthetic_digits;
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Functional, Loss, Metric};
    use dendrite_nn::{Features, Model, MultiData, OutputLoss};
    use ndarray::{s, Array1, Array2, Axis};

    // Two inputs: the top and the bottom half of each digit image.
    let mut f = Functional::<f32>::new();
    let (top, bottom) = (f.input([392])?, f.input([392])?);
    let t = f.apply(Dense::new(16).activation(Activation::Relu), top)?;
    let b = f.apply(Dense::new(16).activation(Activation::Relu), bottom)?;
    let h = f.concatenate(&[t, b], -1)?;
    // Two outputs: which digit, and whether it is even.
    let digit = f.apply(
        Dense::new(10)
            .activation(Activation::Softmax)
            .named("digit"),
        h,
    )?;
    let even = f.apply(
        Dense::new(1).activation(Activation::Sigmoid).named("even"),
        h,
    )?;
    let mut model = Model::new(f, [top, bottom], [digit, even])?;
    model.compile_outputs(
        Adam::new(3e-3),
        &[
            OutputLoss::new(Loss::SparseCategoricalCrossentropy).metrics(&[Metric::Accuracy]),
            OutputLoss::new(Loss::BinaryCrossentropy).weight(0.5),
        ],
    )?;

    // One array per input, one target array per output.
    let digits = synthetic_digits(512, 0)?;
    let mut pixels = Array2::<f32>::zeros((digits.len(), 784));
    let all: Vec<usize> = (0..digits.len()).collect();
    digits.write_features(&all, pixels.as_slice_mut().ok_or("contiguous")?)?;
    let labels: Array1<f32> = digits.labels().iter().map(|&l| f32::from(l)).collect();
    let is_even = labels
        .mapv(|l| f32::from(l % 2.0 == 0.0))
        .insert_axis(Axis(1));
    let (upper, lower) = (pixels.slice(s![.., ..392]), pixels.slice(s![.., 392..]));
    let data = MultiData::new(
        vec![upper.into_dyn(), lower.into_dyn()],
        vec![labels.view().into_dyn(), is_even.view().into_dyn()],
    )?;
    model.fit(&data, FitConfig::default().epochs(3).verbosity(0))?;

    let result = model.evaluate(&data, 128)?;
    let mut printed = format!("{}\n", model.summary()?);
    printed += &format!("loss {:.4}\n", result.loss);
    for (name, value) in &result.metrics {
        printed += &format!("{name} {value:.4}\n");
    }
    print!("{printed}");
    let (d, e) = (result.metric("digit_loss"), result.metric("even_loss"));
    let weighted = d.zip(e).map(|(d, e)| d + 0.5 * e).ok_or("both losses")?;
    assert!((result.loss - weighted).abs() < 1e-5);
    shows("functional_multi", &printed)
}
// ANCHOR_END: multi
