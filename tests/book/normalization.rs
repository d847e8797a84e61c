//! Normalization and embeddings: layer normalization's values and gradient against the
//! formula derived in the chapter, an embedding lookup as a one-hot matrix product and its
//! gradient as a scatter-add, and the two layers in a model.

use super::*;

/// Rows of numbers, four decimals.
fn rows(a: &ndarray::ArrayViewD<f64>, width: usize) -> String {
    let cells: Vec<String> = a.iter().map(|v| format!("{v:>9.4}")).collect();
    cells
        .chunks(width)
        .map(|row| format!("  {}\n", row.join("")))
        .collect()
}

// ANCHOR: layer_norm_gradient
#[test]
fn layer_norm_gradient() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use dendrite_nn::{Init, Layer, LayerNormalization};
    use ndarray::{arr2, Array2, Axis};
    use std::fmt::Write;

    // Two samples of four features, normalized over the features (gamma 1, beta 0), and a
    // loss L = Σ c ⊙ y with a fixed cotangent c, so that the gradient of L is the VJP of c.
    let x = arr2(&[[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]]);
    let c = arr2(&[[1.0, 0.0, 0.0, 0.0], [0.3, -0.2, 0.5, 0.1]]);
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [2, 4])?;
    let ln = LayerNormalization::new().build(&mut g, xi, &[4], &mut Init::new(0))?;
    let ci = g.constant(c.clone().into_dyn());
    let weighted = g.mul(ln.output, ci)?;
    let loss = g.sum_all(weighted)?;
    let dx = grad(&mut g, loss, &[xi])?;
    let mut plan = compile(&g, &[ln.output, dx[0]])?;
    let out = plan.run(&g, &[("x", x.view().into_dyn())])?;

    // The chapter's formula: x̄ = (ḡ - mean(ḡ) - x̂ · mean(ḡ ⊙ x̂)) / sqrt(σ² + ε), ḡ = γ ⊙ ȳ = c.
    let mean = x.mean_axis(Axis(1)).ok_or("empty")?.insert_axis(Axis(1));
    let d = &x - &mean;
    let var = (&d * &d)
        .mean_axis(Axis(1))
        .ok_or("empty")?
        .insert_axis(Axis(1));
    let s = (var + 1e-3).mapv(|v| 1.0 / v.sqrt());
    let x_hat = &d * &s;
    let mean_g = c.mean_axis(Axis(1)).ok_or("empty")?.insert_axis(Axis(1));
    let mean_gx = (&c * &x_hat)
        .mean_axis(Axis(1))
        .ok_or("empty")?
        .insert_axis(Axis(1));
    let by_hand: Array2<f64> = (&c - &mean_g - &x_hat * &mean_gx) * &s;

    let mut printed = String::new();
    writeln!(printed, "y = layer_norm(x):")?;
    printed += &rows(&out.get(0)?, 4);
    writeln!(printed, "x̄ from the reverse sweep:")?;
    printed += &rows(&out.get(1)?, 4);
    writeln!(printed, "x̄ from the formula:")?;
    printed += &rows(&by_hand.view().into_dyn(), 4);
    let sums = out.get(1)?.sum_axis(Axis(1));
    writeln!(printed, "row sums of x̄: {:.1e}, {:.1e}", sums[0], sums[1])?;
    print!("{printed}");
    for (a, b) in out.get(1)?.iter().zip(by_hand.iter()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert!(sums.iter().all(|s| s.abs() < 1e-12));
    shows("layer_norm_gradient", &printed)
}
// ANCHOR_END: layer_norm_gradient

// ANCHOR: embedding_is_one_hot_matmul
#[test]
fn embedding_is_one_hot_matmul() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};
    use std::fmt::Write;

    // A table of 4 vectors of 2 values, and the indices [2, 0, 2].
    let table = arr2(&[[0.1, 0.2], [1.1, 1.2], [2.1, 2.2], [3.1, 3.2]]);
    let ids = arr1(&[2.0, 0.0, 2.0]);
    let c = arr2(&[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]); // a cotangent for the 3 × 2 output

    let mut g = Graph::<f64>::new();
    let e = g.parameter("embeddings", table.into_dyn())?;
    let idx = g.input("ids", [3])?;
    let looked_up = g.gather(e, idx, 0)?; // rows 2, 0, 2 of the table
    let one_hot = g.one_hot(idx, 4)?; // [3, 4], one 1 per row
    let product = g.matmul(one_hot, e)?; // the same rows, as a matrix product
    let ci = g.constant(c.into_dyn());
    let weighted = g.mul(looked_up, ci)?;
    let loss = g.sum_all(weighted)?;
    let de = grad(&mut g, loss, &[e])?; // scatter_add(c, ids, e)
    let one_hot_t = g.permute(one_hot, &[1, 0])?;
    let by_matmul = g.matmul(one_hot_t, ci)?; // (one_hot)ᵀ c
    let mut plan = compile(&g, &[looked_up, product, de[0], by_matmul])?;
    let out = plan.run(&g, &[("ids", ids.view().into_dyn())])?;

    let mut printed = String::new();
    writeln!(printed, "gather(E, [2, 0, 2]):")?;
    printed += &rows(&out.get(0)?, 2);
    writeln!(printed, "one_hot([2, 0, 2]) · E:")?;
    printed += &rows(&out.get(1)?, 2);
    writeln!(printed, "Ē from the reverse sweep (a scatter-add of c):")?;
    printed += &rows(&out.get(2)?, 2);
    writeln!(printed, "one_hotᵀ · c:")?;
    printed += &rows(&out.get(3)?, 2);
    print!("{printed}");
    assert_eq!(out.get(0)?, out.get(1)?);
    assert_eq!(out.get(2)?, out.get(3)?);
    shows("embedding_is_one_hot_matmul", &printed)
}
// ANCHOR_END: embedding_is_one_hot_matmul

// ANCHOR: embedding_model
#[test]
fn embedding_model() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Activation, Dense, Embedding, Flatten, LayerNormalization, Sequential};

    // Sequences of 10 token ids out of a vocabulary of 1,000, each token a vector of 16,
    // normalized on its own, then one decision per sequence.
    let mut model = Sequential::<f32>::default();
    model.add(Embedding::new(1000, 16).input_length(10));
    model.add(LayerNormalization::new());
    model.add(Flatten::new());
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    let summary = model.summary()?;
    println!("{summary}");
    // 1000·16 for the table, 16 + 16 for gamma and beta, 160 + 1 for the dense layer.
    assert_eq!(summary.total_params(), 16_000 + 32 + 161);

    // An index out of the vocabulary is an error naming the sample and the position.
    model.build()?;
    let mut x = ndarray::Array2::<f32>::zeros((3, 10));
    x[[1, 4]] = 1000.0;
    let err = model.predict(&x.view(), 32).unwrap_err();
    println!("{err}");
    shows("embedding_model", &format!("{summary}\n{err}\n"))
}
// ANCHOR_END: embedding_model
