//! Convolution, pooling and Dropout: the operations, their gradients, and why they help.

use super::*;

/// The values of a one-image, one-channel array (NHWC `[1, h, w, 1]` or HWIO `[h, w, 1, 1]`)
/// as rows of `width` numbers.
fn grid(a: &ndarray::ArrayViewD<f64>, width: usize) -> String {
    let cells: Vec<String> = a.iter().map(|v| format!("{v:>5}")).collect();
    cells
        .chunks(width)
        .map(|row| format!("  {}\n", row.join("")))
        .collect()
}

// ANCHOR: conv_forward
#[test]
fn conv_forward() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::ops::{Conv2d, Padding};
    use dendrite_graph::{compile, Graph};
    use ndarray::Array;
    use std::fmt::Write;

    // One 5×5 image with one channel (NHWC), dark on the left and bright on the right, and one
    // 3×3 kernel (HWIO: [3, 3, in 1, out 1]) that computes "right column minus left column".
    let x = Array::from_shape_fn((1, 5, 5, 1), |(_, _, j, _)| if j >= 3 { 1.0 } else { 0.0 });
    let w = Array::from_shape_fn((3, 3, 1, 1), |(_, q, _, _)| q as f64 - 1.0);

    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [1, 5, 5, 1])?;
    let wi = g.parameter("w", w.into_dyn())?;
    let settings = [
        ("valid", Conv2d::default()),
        (
            "same",
            Conv2d {
                padding: Padding::Same,
                ..Conv2d::default()
            },
        ),
        (
            "same, stride 2",
            Conv2d {
                strides: [2, 2],
                padding: Padding::Same,
                ..Conv2d::default()
            },
        ),
        (
            "valid, dilation 2",
            Conv2d {
                dilation: [2, 2],
                ..Conv2d::default()
            },
        ),
    ];
    let mut ys = Vec::new();
    for (_, conv) in settings {
        ys.push(g.conv2d(xi, wi, conv)?);
    }
    let mut plan = compile(&g, &ys)?;
    let out = plan.run(&g, &[("x", x.view().into_dyn())])?;

    let mut printed = String::new();
    for (i, ((name, _), &y)) in settings.iter().zip(&ys).enumerate() {
        let shape = g.shape(y)?;
        let width = shape.dims()[2].fixed().ok_or("fixed width")?;
        writeln!(printed, "{name}: output {shape}")?;
        printed += &grid(&out.get(i)?, width);
    }
    print!("{printed}");
    // The edge is where the output is large; `same` keeps 5×5 and sees zeros past the border.
    assert_eq!(
        out.get(0)?.iter().copied().collect::<Vec<_>>(),
        [0.0, 3.0, 3.0].repeat(3)
    );
    assert_eq!(out.get(3)?.iter().copied().collect::<Vec<_>>(), [3.0]);
    shows("conv_forward", &printed)
}
// ANCHOR_END: conv_forward

// ANCHOR: conv_gradient
#[test]
fn conv_gradient_is_a_convolution() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::ops::Conv2d;
    use dendrite_graph::{compile, Graph};
    use ndarray::{s, Array, Array4};
    use std::fmt::Write;

    let x = Array::from_shape_vec((1, 3, 3, 1), (1..=9).map(f64::from).collect())?;
    let w = Array::from_shape_vec((2, 2, 1, 1), vec![1.0, 2.0, 3.0, 4.0])?;
    let y_bar = Array::from_shape_vec((1, 2, 2, 1), vec![1.0, -1.0, 2.0, 0.0])?;

    // The cotangent ȳ padded by k - 1 = 1 zero on every side, and the kernel flipped in both
    // spatial axes (with one channel in and out there are no channel axes to swap).
    let mut padded = Array4::<f64>::zeros((1, 4, 4, 1));
    padded.slice_mut(s![.., 1..3, 1..3, ..]).assign(&y_bar);
    let flipped = w.slice(s![..;-1, ..;-1, .., ..]).to_owned();

    let mut g = Graph::<f64>::new();
    let (xi, wi, ci) = (
        g.input("x", [1, 3, 3, 1])?,
        g.input("w", [2, 2, 1, 1])?,
        g.input("y_bar", [1, 2, 2, 1])?,
    );
    let conv = Conv2d::default();
    let y = g.conv2d(xi, wi, conv)?;
    // L = Σ ȳ ⊙ y, so that dL/dy = ȳ: autodiff's gradients are the VJPs at ȳ.
    let weighted = g.mul(y, ci)?;
    let loss = g.sum_all(weighted)?;
    let autodiff = grad(&mut g, loss, &[xi, wi])?;
    // The derived formulas, as graph nodes of their own.
    let pi = g.input("padded", [1, 4, 4, 1])?;
    let fi = g.input("flipped", [2, 2, 1, 1])?;
    let full_correlation = g.conv2d(pi, fi, conv)?; // x̄ = (padded ȳ) ⋆ flip(w)
    let image_as_kernel = g.input("x_as_kernel", [1, 3, 3, 1])?;
    let y_bar_as_kernel = g.input("y_bar_as_kernel", [2, 2, 1, 1])?;
    let correlation = g.conv2d(image_as_kernel, y_bar_as_kernel, conv)?; // w̄ = x ⋆ ȳ
    let input_grad = g.conv2d_input_grad(ci, wi, conv, [3, 3])?; // the primitives autodiff uses
    let kernel_grad = g.conv2d_kernel_grad(xi, ci, conv, [2, 2])?;

    let outputs = [
        autodiff[0],
        full_correlation,
        input_grad,
        autodiff[1],
        correlation,
        kernel_grad,
    ];
    let mut plan = compile(&g, &outputs)?;
    let y_bar_kernel = y_bar.clone().into_shape_with_order((2, 2, 1, 1))?;
    let out = plan.run(
        &g,
        &[
            ("x", x.view().into_dyn()),
            ("w", w.view().into_dyn()),
            ("y_bar", y_bar.view().into_dyn()),
            ("padded", padded.view().into_dyn()),
            ("flipped", flipped.view().into_dyn()),
            ("x_as_kernel", x.view().into_dyn()),
            ("y_bar_as_kernel", y_bar_kernel.view().into_dyn()),
        ],
    )?;

    let mut printed = String::new();
    writeln!(printed, "x̄ by autodiff:")?;
    printed += &grid(&out.get(0)?, 3);
    writeln!(
        printed,
        "x̄ as the full correlation of ȳ with the flipped kernel:"
    )?;
    printed += &grid(&out.get(1)?, 3);
    writeln!(printed, "w̄ by autodiff:")?;
    printed += &grid(&out.get(3)?, 2);
    writeln!(printed, "w̄ as the correlation of x with ȳ:")?;
    printed += &grid(&out.get(4)?, 2);
    print!("{printed}");
    for (a, b) in [(0, 1), (0, 2), (3, 4), (3, 5)] {
        // Small integers: exact in f64. (The correlation is shaped [1, 2, 2, 1], like an
        // image, and w̄ [2, 2, 1, 1], like a kernel: the same four numbers.)
        assert!(
            out.get(a)?.iter().eq(out.get(b)?.iter()),
            "outputs {a} and {b}"
        );
    }
    shows("conv_gradient", &printed)
}
// ANCHOR_END: conv_gradient

// ANCHOR: pool_gradient
#[test]
fn pooling_and_its_gradient() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::ops::Pool2d;
    use dendrite_graph::{compile, Graph};
    use ndarray::Array;
    use std::fmt::Write;

    #[rustfmt::skip]
    let x = Array::from_shape_vec((1, 4, 4, 1), vec![
        1.0, 3.0, 2.0, 2.0,
        3.0, 0.0, 2.0, 2.0, // the top windows tie: two 3s, then four 2s
        0.0, 1.0, 5.0, 6.0,
        4.0, 1.0, 7.0, 8.0,
    ])?;
    let y_bar = Array::from_shape_vec((1, 2, 2, 1), vec![1.0, 2.0, 3.0, 4.0])?;

    let mut g = Graph::<f64>::new();
    let (xi, ci) = (g.input("x", [1, 4, 4, 1])?, g.input("y_bar", [1, 2, 2, 1])?);
    let pool = Pool2d::new([2, 2]); // Keras' MaxPooling2D((2, 2)): strides = window
    let max = g.max_pool2d(xi, pool)?;
    let avg = g.avg_pool2d(xi, pool)?;
    let mut grads = Vec::new();
    for y in [max, avg] {
        let weighted = g.mul(y, ci)?; // L = Σ ȳ ⊙ y
        let loss = g.sum_all(weighted)?;
        grads.push(grad(&mut g, loss, &[xi])?[0]);
    }
    let mut plan = compile(&g, &[max, grads[0], avg, grads[1]])?;
    let out = plan.run(
        &g,
        &[
            ("x", x.view().into_dyn()),
            ("y_bar", y_bar.view().into_dyn()),
        ],
    )?;

    let mut printed = String::new();
    for (i, title) in [
        "max pool",
        "its gradient at ȳ",
        "average pool",
        "its gradient at ȳ",
    ]
    .iter()
    .enumerate()
    {
        writeln!(printed, "{title}:")?;
        printed += &grid(&out.get(i)?, if i % 2 == 0 { 2 } else { 4 });
    }
    print!("{printed}");
    // Ties: the whole gradient goes to the first maximum in row-major window order.
    assert_eq!(out.get(1)?[[0, 0, 1, 0]], 1.0);
    assert_eq!(out.get(1)?[[0, 1, 0, 0]], 0.0);
    assert_eq!(out.get(1)?[[0, 0, 2, 0]], 2.0);
    // Average pooling spreads ȳ / 4 over each window.
    assert!(out
        .get(3)?
        .iter()
        .zip([0.25, 0.25, 0.5, 0.5])
        .all(|(&a, b)| a == b));
    shows("pool_gradient", &printed)
}
// ANCHOR_END: pool_gradient

// ANCHOR: dropout
/// Inverted dropout at `rate`: in training, each element is kept with probability 1 - rate and
/// the kept ones are divided by 1 - rate; in inference, the identity.
fn dropout(
    g: &mut dendrite_graph::Graph<f64>,
    x: dendrite_graph::NodeId,
    step: dendrite_graph::NodeId,
    seed: u64,
    rate: f64,
    training: bool,
) -> dendrite_graph::Result<dendrite_graph::NodeId> {
    if !training {
        return Ok(x);
    }
    let keep = g.bernoulli(x, step, seed, 1.0 - rate)?; // 1 with probability 1 - rate
    let kept = g.mul(x, keep)?;
    g.scale(kept, 1.0 / (1.0 - rate)) // so that E[dropout(x)] = x
}

#[test]
fn dropout_is_scaled_and_reproducible() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};
    use ndarray::{arr0, Array};
    use std::fmt::Write;

    let draw =
        |n: usize, step: f64, training: bool| -> Result<Vec<f64>, Box<dyn std::error::Error>> {
            let mut g = Graph::<f64>::new();
            let x = g.input("x", [n])?;
            let s = g.input("step", Shape::scalar())?;
            let y = dropout(&mut g, x, s, 7, 0.5, training)?;
            let mut plan = compile(&g, &[y])?;
            let (ones, step) = (Array::<f64, _>::ones(n).into_dyn(), arr0(step).into_dyn());
            let out = plan.run(&g, &[("x", ones.view()), ("step", step.view())])?;
            Ok(out.get(0)?.iter().copied().collect())
        };
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:>2}"))
            .collect::<Vec<_>>()
            .join("")
    };

    let mut printed = String::new();
    writeln!(
        printed,
        "step 0, training:  {}",
        show(&draw(12, 0.0, true)?)
    )?;
    writeln!(
        printed,
        "step 0 again:      {}",
        show(&draw(12, 0.0, true)?)
    )?;
    writeln!(
        printed,
        "step 1, training:  {}",
        show(&draw(12, 1.0, true)?)
    )?;
    writeln!(
        printed,
        "step 1, inference: {}",
        show(&draw(12, 1.0, false)?)
    )?;
    let many = draw(100_000, 0.0, true)?;
    let mean = many.iter().sum::<f64>() / many.len() as f64;
    writeln!(printed, "mean over 100000 elements of ones: {mean:.3}")?;
    print!("{printed}");
    assert_eq!(draw(12, 0.0, true)?, draw(12, 0.0, true)?); // the same (seed, step): the same mask
    assert_ne!(draw(12, 0.0, true)?, draw(12, 1.0, true)?);
    assert!((mean - 1.0).abs() < 0.02); // standard error 1/√100000 ≈ 0.003
    shows("dropout", &printed)
}
// ANCHOR_END: dropout

// ANCHOR: parameter_counts
#[test]
fn parameter_counts() -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write;

    let conv = |kh: usize, kw: usize, c: usize, o: usize| kh * kw * c * o + o; // kernel + bias
    let dense = |inputs: usize, units: usize| inputs * units + units;

    // keras.io's convnet: 28×28×1 → conv 3×3, 32 → 26×26×32 → pool → 13×13×32
    // → conv 3×3, 64 → 11×11×64 → pool → 5×5×64 = 1600 → dense 10.
    let convnet = [
        ("Conv2D(32, 3×3)", conv(3, 3, 1, 32)),
        ("Conv2D(64, 3×3)", conv(3, 3, 32, 64)),
        ("Dense(10) on 5×5×64", dense(5 * 5 * 64, 10)),
    ];
    let mlp = [
        ("Dense(32) on 784", dense(784, 32)),
        ("Dense(10)", dense(32, 10)),
    ];
    let mut printed = String::new();
    for (model, layers) in [("convnet", &convnet[..]), ("MLP", &mlp[..])] {
        for (name, count) in layers {
            writeln!(printed, "{model:8} {name:22} {count:>10}")?;
        }
        let total: usize = layers.iter().map(|(_, n)| n).sum();
        writeln!(printed, "{model:8} {:22} {total:>10}", "total")?;
    }
    // The first convolution's output, 26×26×32, from a dense layer instead of a convolution.
    let dense_instead = dense(28 * 28, 26 * 26 * 32);
    writeln!(
        printed,
        "a dense layer from 28×28 to 26×26×32: {dense_instead}"
    )?;
    print!("{printed}");
    assert_eq!(convnet.iter().map(|(_, n)| n).sum::<usize>(), 34_826); // keras.io's summary
    assert_eq!(mlp.iter().map(|(_, n)| n).sum::<usize>(), 25_450);
    shows("parameter_counts", &printed)
}
// ANCHOR_END: parameter_counts

// ANCHOR: convnet_layers
#[test]
fn the_convnet_as_layers() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, Sequential};

    let mut model = Sequential::<f32>::new();
    model.add(
        Conv2D::new(32, [3, 3])
            .activation(Activation::Relu)
            .input_shape([28, 28, 1]),
    );
    model.add(MaxPooling2D::new([2, 2]));
    model.add(Conv2D::new(64, [3, 3]).activation(Activation::Relu));
    model.add(MaxPooling2D::new([2, 2]));
    model.add(Flatten::new());
    model.add(Dropout::new(0.5));
    model.add(Dense::new(10).activation(Activation::Softmax));
    let summary = model.summary()?;
    let printed = summary.to_string();
    print!("{printed}");
    assert_eq!(summary.total_params(), 34_826); // as Keras counts (Dropout has none)
    shows("convnet_summary", &printed)
}
// ANCHOR_END: convnet_layers

/// The figure of the first section: the 5×5 image of `conv_forward`, the 3×3 window at output
/// (1, 1), and the `valid` output with that pixel marked.
fn sliding_window_svg() -> String {
    use std::fmt::Write;

    let cell = 36;
    let image = |_: usize, j: usize| if j >= 3 { 1 } else { 0 };
    let output = |_: usize, j: usize| if j == 0 { 0 } else { 3 }; // the `valid` result
    let mut svg = String::new();
    let (width, height) = (12 * cell, 7 * cell);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="14">"#
    );
    let mut draw_grid = |x0: usize, n: usize, value: &dyn Fn(usize, usize) -> i32, title: &str| {
        for i in 0..n {
            for j in 0..n {
                let (x, y) = (x0 + j * cell, cell + i * cell);
                let fill = if value(i, j) > 0 {
                    "#d8d8d8"
                } else {
                    "#ffffff"
                };
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#555"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                    x + cell / 2,
                    y + cell / 2 + 5,
                    value(i, j)
                );
            }
        }
        let _ = writeln!(svg, r#"<text x="{x0}" y="{}">{title}</text>"#, cell / 2 + 5);
    };
    draw_grid(cell / 2, 5, &image, "image x (5×5)");
    draw_grid(8 * cell, 3, &output, "output y (3×3)");
    // The window of output (1, 1): image rows and columns 1 to 3.
    let (wx, wy) = (cell / 2 + cell, 2 * cell);
    let (ox, oy) = (9 * cell, 2 * cell);
    let _ = writeln!(
        svg,
        r##"<rect x="{wx}" y="{wy}" width="{}" height="{}" fill="none" stroke="#c0392b" stroke-width="3"/>
<rect x="{ox}" y="{oy}" width="{cell}" height="{cell}" fill="none" stroke="#c0392b" stroke-width="3"/>
<line x1="{}" y1="{}" x2="{ox}" y2="{}" stroke="#c0392b" stroke-width="2" stroke-dasharray="5,4"/>
<text x="{wx}" y="{}" fill="#c0392b">kernel columns: -1 0 1</text>
</svg>"##,
        3 * cell,
        3 * cell,
        wx + 3 * cell,
        wy + 3 * cell / 2,
        oy + cell / 2,
        wy + 3 * cell + cell / 2 + 5
    );
    svg
}

#[test]
fn sliding_window_figure() -> TestResult {
    matches_file("docs/src/figures/conv_window.svg", &sliding_window_svg())
}
