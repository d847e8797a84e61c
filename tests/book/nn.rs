//! Chapter 6: activations, losses, optimizers.

use super::*;

// ANCHOR: linear_collapse
#[test]
fn linear_layers_collapse() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // Two layers without an activation: (x W1 + b1) W2 + b2.
    let (w1, b1) = (
        arr2(&[[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]),
        arr1(&[0.1, 0.2, 0.3]),
    );
    let (w2, b2) = (arr2(&[[2.0], [1.0], [-1.0]]), arr1(&[0.5]));
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)])?;
    let (w1n, b1n) = (
        g.constant(w1.clone().into_dyn()),
        g.constant(b1.clone().into_dyn()),
    );
    let (w2n, b2n) = (
        g.constant(w2.clone().into_dyn()),
        g.constant(b2.clone().into_dyn()),
    );
    let h = g.matmul(x, w1n)?;
    let h = g.add(h, b1n)?;
    let y = g.matmul(h, w2n)?;
    let two_layers = g.add(y, b2n)?;

    // ...are one layer: x (W1 W2) + (b1 W2 + b2).
    let w = w1.dot(&w2);
    let b = b1.dot(&w2) + &b2;
    let (wn, bn) = (g.constant(w.into_dyn()), g.constant(b.into_dyn()));
    let y = g.matmul(x, wn)?;
    let one_layer = g.add(y, bn)?;

    let mut plan = compile(&g, &[two_layers, one_layer])?;
    let xv = arr2(&[[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    for (a, b) in out.get(0)?.iter().zip(out.get(1)?.iter()) {
        assert!((a - b).abs() < 1e-12);
    }
    Ok(())
}
// ANCHOR_END: linear_collapse

/// Accuracy of a model's 0/1 predictions (threshold ½) against XOR's labels.
fn xor_accuracy(activation: dendrite_nn::Activation) -> Result<f64, Box<dyn Error>> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
    use ndarray::array;
    let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f32, 1.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(1);
    model.add(Dense::new(8).input_dim(2).activation(activation));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model.compile(
        Adam::new(0.05),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;
    model.fit(
        &(x.view(), y.view()),
        FitConfig::default().epochs(500).batch_size(4).verbosity(0),
    )?;
    let p = model.predict(&x.view(), 4)?;
    let correct = p
        .iter()
        .zip(&y)
        .filter(|&(&p, &y)| (p > 0.5) == (y > 0.5))
        .count();
    Ok(correct as f64 / 4.0)
}

// ANCHOR: xor
#[test]
fn xor_needs_a_nonlinearity() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::Activation;

    // XOR: no line separates {(0,1), (1,0)} from {(0,0), (1,1)}.
    // A hidden layer without activation is still a linear model: at most 3 of 4 right.
    assert!(xor_accuracy(Activation::Linear)? <= 0.75);
    // One tanh in between, and the same network learns it.
    assert_eq!(xor_accuracy(Activation::Tanh)?, 1.0);
    Ok(())
}
// ANCHOR_END: xor

// ANCHOR: xor_boundary
/// XOR's model (8 tanh units, a sigmoid output) trained as above; its prediction on a grid
/// over [-0.25, 1.25]², drawn as an SVG: each cell coloured by p in five steps (blue for p near
/// 0, red for p near 1), the four examples as dots (white where XOR is true, black where false).
fn xor_boundary_svg() -> Result<String, Box<dyn Error>> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Sequential};
    use ndarray::{array, Array2};
    use std::fmt::Write;

    let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f32, 1.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(1);
    model.add(Dense::new(8).input_dim(2).activation(Activation::Tanh));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[])?;
    model.fit(
        &(x.view(), y.view()),
        FitConfig::default().epochs(500).batch_size(4).verbosity(0),
    )?;

    let (n, cell) = (30, 10.0);
    let at = |i: usize| -0.25 + 1.5 * (i as f32 + 0.5) / n as f32;
    let grid = Array2::from_shape_fn((n * n, 2), |(k, j)| at(if j == 0 { k % n } else { k / n }));
    let p = model.predict(&grid.view(), 256)?;
    let colours = ["#4575b4", "#91bfdb", "#f7f7f7", "#fc8d59", "#d73027"];
    let size = n as f64 * cell;
    let mut svg =
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\">\n");
    for k in 0..n * n {
        let level = ((p[[k, 0]] * 5.0) as usize).min(4);
        let (col, row) = ((k % n) as f64, (n - 1 - k / n) as f64); // w₂ grows upwards
        writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\"/>",
            col * cell,
            row * cell,
            colours[level]
        )?;
    }
    for (point, label) in x.rows().into_iter().zip(&y) {
        let to_px = |v: f32| f64::from((v + 0.25) / 1.5) * size;
        let fill = if *label > 0.5 { "white" } else { "black" }; // XOR true: white
        writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"{fill}\" stroke=\"black\"/>",
            to_px(point[0]),
            size - to_px(point[1])
        )?;
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

#[test]
fn xor_decision_boundary_figure() -> TestResult {
    let svg = xor_boundary_svg()?;
    // Both classes appear on the grid: the boundary is not one line, as no linear model's is.
    assert!(svg.contains("#4575b4\"/>") && svg.contains("#d73027\"/>"));
    matches_file("docs/src/figures/xor_boundary.svg", &svg)
}
// ANCHOR_END: xor_boundary

// ANCHOR: softmax_ce
#[test]
fn softmax_cross_entropy_gradient() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use dendrite_nn::{Activation, Loss};
    use ndarray::{arr1, arr2};

    // A softmax output layer and the sparse cross-entropy, as the nn crate builds them.
    let mut g = Graph::<f64>::new();
    let z = g.input("z", [None, Some(3)])?; // logits
    let labels = g.input("labels", [None])?;
    let output = Activation::Softmax.nodes(&mut g, z)?; // remembers z as its pre-activation
    let loss = Loss::SparseCategoricalCrossentropy.build(&mut g, &output, labels)?;
    let dz = grad(&mut g, loss, &[z])?[0];

    let mut plan = compile(&g, &[output.output, loss, dz])?;
    let zv = arr2(&[[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]).into_dyn();
    let yv = arr1(&[0.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("z", zv.view()), ("labels", yv.view())])?;
    let p = out.get(0)?;
    // ∂L/∂z = (p - onehot(y)) / N for the batch mean.
    let onehot = arr2(&[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).into_dyn();
    let expected = (&p - &onehot) / 2.0;
    for (a, e) in out.get(2)?.iter().zip(expected.iter()) {
        assert!((a - e).abs() < 1e-15);
    }

    // Logits of 1e4: softmax saturates to exactly 0 and 1, yet the loss and gradient are finite.
    let big = arr2(&[[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]).into_dyn();
    let last = arr1(&[2.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("z", big.view()), ("labels", last.view())])?;
    assert_eq!(out.get(0)?[[0, 2]], 0.0); // p = 0 exactly: log p would be -inf
    assert_eq!(out.scalar(1)?, (2e4 + 1e4) / 2.0); // -log p_y = lse(z) - z_y, from the logits
    assert!(out.get(2)?.iter().all(|v| v.is_finite()));
    Ok(())
}
// ANCHOR_END: softmax_ce

// ANCHOR: naive_ce
#[test]
fn cross_entropy_through_probabilities_breaks() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;

    // The textbook formula, literally: -log(softmax(z)[y]).
    let mut g = Graph::<f64>::new();
    let z = g.input("z", [1, 3])?;
    let p = g.softmax(z, 1)?;
    let log_p = g.log(p)?;
    let target = g.constant(arr2(&[[0.0, 0.0, 1.0]]).into_dyn());
    let picked = g.mul(target, log_p)?;
    let total = g.sum_all(picked)?;
    let loss = g.neg(total)?;
    let dz = grad(&mut g, loss, &[z])?[0];

    let mut plan = compile(&g, &[loss, dz])?;
    let big = arr2(&[[1e4, 0.0, -1e4]]).into_dyn();
    let out = plan.run(&g, &[("z", big.view())])?;
    // p underflows to 0 for two classes, log p = -∞, and 0 · (-∞) = NaN poisons the sum.
    assert!(out.scalar(0)?.is_nan());
    assert!(out.get(1)?.iter().any(|v| v.is_nan()));
    Ok(())
}
// ANCHOR_END: naive_ce

// ANCHOR: optimizer_steps
#[test]
fn optimizer_first_steps() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Adam, Optimizer, Sgd};

    let g = [0.5_f64]; // the same gradient at every step
    let run = |opt: &mut dyn Optimizer<f64>, steps: u64| -> Result<f64, dendrite_nn::NnError> {
        opt.prepare(&[1])?;
        let mut w = [1.0_f64];
        for t in 0..steps {
            opt.begin_step(t);
            opt.update(0, &mut w, &g)?;
        }
        Ok(w[0])
    };

    // SGD: w ← w - η g.
    assert_eq!(run(&mut Sgd::new(0.1), 1)?, 1.0 - 0.1 * 0.5);
    // Momentum μ = 0.9: v₁ = -η g, v₂ = μ v₁ - η g; w₂ = w₀ + v₁ + v₂.
    let (v1, v2) = (-0.05, 0.9 * -0.05 - 0.05);
    assert!((run(&mut Sgd::new(0.1).momentum(0.9), 2)? - (1.0 + v1 + v2)).abs() < 1e-15);
    // Nesterov: w ← w + μ v - η g, with v already updated.
    let nesterov = 1.0 + (0.9 * v1 - 0.05) + (0.9 * v2 - 0.05);
    assert!((run(&mut Sgd::new(0.1).momentum(0.9).nesterov(true), 2)? - nesterov).abs() < 1e-15);

    // Adam: thanks to bias correction the first step has length ≈ η whatever the size of g.
    let first = 1.0 - run(&mut Adam::new(1e-3), 1)?;
    assert!((first - 1e-3).abs() < 1e-8); // ε = 1e-7 shortens it by 6e-9
                                          // Without it, m₁ / √v₁ = (1-β₁) g / (√(1-β₂) |g|) ≈ 3.16:
                                          // a first step three times too long.
    let uncorrected = (1.0 - 0.9) * 0.5 / ((1.0_f64 - 0.999).sqrt() * 0.5);
    assert!((uncorrected - 3.162).abs() < 1e-3);
    Ok(())
}
// ANCHOR_END: optimizer_steps

// ANCHOR: descent_loop
#[test]
fn gradient_descent_with_momentum() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use dendrite_nn::{Adam, Optimizer, Sgd};
    use ndarray::{arr1, arr2};

    /// Minimizes f(w) = ½ wᵀ A w for an ill-conditioned A (curvatures 1 and 50), returns f.
    fn minimize(
        mut opt: impl Optimizer<f64>,
        steps: u64,
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let mut g = Graph::<f64>::new();
        let w = g.parameter("w", arr1(&[1.0, 1.0]).into_dyn())?;
        let a = g.constant(arr2(&[[1.0, 0.0], [0.0, 50.0]]).into_dyn());
        let col = g.reshape(w, [2, 1])?;
        let aw = g.matmul(a, col)?;
        let waw = g.matmul_t(col, aw, true, false)?;
        let f = g.scale(waw, 0.5)?;
        let f = g.sum_all(f)?;
        let dw = grad(&mut g, f, &[w])?[0];

        // Build once, run many times: the whole training loop.
        let mut plan = compile(&g, &[f, dw])?;
        opt.prepare(&[2])?;
        for t in 0..steps {
            let out = plan.run(&g, &[])?;
            let gradient = out.get(1)?;
            opt.begin_step(t);
            let mut param = g.parameter_mut(w)?;
            let (Some(p), Some(d)) = (param.as_slice_mut(), gradient.as_slice()) else {
                return Err("parameters and gradients are contiguous".into());
            };
            opt.update(0, p, d)?;
        }
        Ok(plan.run(&g, &[])?.scalar(0)?)
    }

    // Each at its best settings for curvatures m = 1, L = 50 (κ = 50): plain SGD with
    // η = 2/(L+m) contracts by (κ-1)/(κ+1) ≈ 0.96 per step; heavy-ball momentum with
    // η = 4/(√L+√m)², μ = ((√κ-1)/(√κ+1))² by about (√κ-1)/(√κ+1) ≈ 0.75.
    let sgd = minimize(Sgd::new(2.0 / 51.0), 100)?;
    let momentum = minimize(
        Sgd::new(4.0 / (50f64.sqrt() + 1.0).powi(2)).momentum(0.566),
        100,
    )?;
    let adam = minimize(Adam::new(0.05), 100)?;
    assert!(momentum < sgd / 100.0, "momentum {momentum} vs sgd {sgd}");
    assert!(adam < 0.5);
    Ok(())
}
// ANCHOR_END: descent_loop

// ANCHOR: optimizer_paths
/// An optimizer's name and the points it visits.
type Path2 = (&'static str, Vec<[f64; 2]>);

/// The path of each optimizer on f(w) = ½ (w₁² + 50 w₂²) from w = (-1, 0.2), 60 steps, at the
/// settings of the loop above (the gradient is A w, written out).
fn optimizer_paths() -> Result<Vec<Path2>, dendrite_nn::NnError> {
    use dendrite_nn::{Adam, Optimizer, Sgd};

    let mut sgd = Sgd::new(2.0 / 51.0);
    let mut momentum = Sgd::new(4.0 / (50f64.sqrt() + 1.0).powi(2)).momentum(0.566);
    let mut adam = Adam::new(0.05);
    let optimizers: [(&'static str, &mut dyn Optimizer<f64>); 3] = [
        ("SGD", &mut sgd),
        ("momentum", &mut momentum),
        ("Adam", &mut adam),
    ];
    let mut paths = Vec::new();
    for (name, opt) in optimizers {
        opt.prepare(&[2])?;
        let mut w = [-1.0, 0.2];
        let mut path = vec![w];
        for t in 0..60 {
            let gradient = [w[0], 50.0 * w[1]];
            opt.begin_step(t);
            opt.update(0, &mut w, &gradient)?;
            path.push(w);
        }
        paths.push((name, path));
    }
    Ok(paths)
}

/// The paths drawn over the level sets of f, as a small SVG (no plotting library: a few
/// ellipses, polylines and labels).
fn paths_svg(paths: &[Path2]) -> String {
    use std::fmt::Write;

    let (width, height) = (560.0, 360.0);
    // w₁ in [-1.1, 0.3] and w₂ in [-0.6, 0.6] onto the picture, a caption line below.
    let px = |w: [f64; 2]| {
        (
            (w[0] + 1.1) / 1.4 * width,
            (0.6 - w[1]) / 1.2 * (height - 24.0),
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let (cx, cy) = px([0.0, 0.0]);
    for level in [0.005_f64, 0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0] {
        // f = level: w₁ = ±√(2 level), w₂ = ±√(2 level / 50).
        let (rx, ry) = ((2.0 * level).sqrt(), (2.0 * level / 50.0).sqrt());
        let _ = writeln!(
            svg,
            "<ellipse cx=\"{cx:.1}\" cy=\"{cy:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"none\" stroke=\"#ccc\"/>",
            rx / 1.4 * width,
            ry / 1.2 * (height - 24.0)
        );
    }
    for ((name, path), (colour, y)) in
        paths
            .iter()
            .zip([("#d62728", 20), ("#1f77b4", 38), ("#2ca02c", 56)])
    {
        let points: Vec<String> = path
            .iter()
            .map(|&w| {
                let (x, y) = px(w);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            width - 120.0,
            y - 4,
            width - 100.0,
            y - 4,
            width - 94.0,
            y
        );
    }
    let _ = writeln!(
        svg,
        "<rect y=\"{}\" width=\"100%\" height=\"24\" fill=\"white\"/><text x=\"8\" y=\"{}\">f(w) = (w1\u{b2} + 50 w2\u{b2}) / 2, from (-1, 0.2), 60 steps; minimum at the centre</text>",
        height - 24.0,
        height - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[test]
fn optimizer_paths_figure() -> TestResult {
    let paths = optimizer_paths()?;
    for (name, path) in &paths {
        let last = path[path.len() - 1];
        println!("{name:>8}: ends at ({:+.4}, {:+.4})", last[0], last[1]);
    }
    let distance = |k: usize| {
        let w = paths[k].1[60];
        (w[0] * w[0] + w[1] * w[1]).sqrt()
    };
    assert!(distance(1) < distance(0) / 10.0); // momentum: far closer than SGD
    assert!(distance(2) < distance(0)); // Adam too, at this learning rate
    matches_file("docs/src/figures/optimizers.svg", &paths_svg(&paths))
}
// ANCHOR_END: optimizer_paths
