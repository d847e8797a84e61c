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
