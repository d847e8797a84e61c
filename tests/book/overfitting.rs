//! Overfitting, validation and regularization.

use super::*;

// ANCHOR: overfitting
/// Least squares with an L2 penalty (ridge regression) for a polynomial of degree `degree`:
/// the coefficients c minimizing Σ (p_c(x_n) - y_n)² + λ Σ c_k², i.e. solving
/// (XᵀX + λI) c = Xᵀy for the matrix X of powers x_n^k, by Gaussian elimination.
fn ridge_fit(x: &[f64], y: &[f64], degree: usize, lambda: f64) -> Vec<f64> {
    let k = degree + 1;
    let mut a = vec![vec![0.0; k + 1]; k]; // [XᵀX + λI | Xᵀy]
    for (&xn, &yn) in x.iter().zip(y) {
        let powers: Vec<f64> = (0..k).map(|i| xn.powi(i as i32)).collect();
        for (row, &pi) in a.iter_mut().zip(&powers) {
            for (cell, &pj) in row.iter_mut().zip(&powers) {
                *cell += pi * pj;
            }
            row[k] += pi * yn;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += lambda;
    }
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for row in below {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
        }
    }
    let mut c = vec![0.0; k];
    for (i, row) in a.iter().enumerate().rev() {
        let rest: f64 = row[i + 1..k]
            .iter()
            .zip(&c[i + 1..])
            .map(|(r, c)| r * c)
            .sum();
        c[i] = (row[k] - rest) / row[i];
    }
    c
}

fn mean_squared_error(c: &[f64], x: &[f64], y: &[f64]) -> f64 {
    let p = |x: f64| c.iter().rev().fold(0.0, |acc, ck| acc * x + ck);
    x.iter()
        .zip(y)
        .map(|(&x, &y)| (p(x) - y).powi(2))
        .sum::<f64>()
        / x.len() as f64
}

#[test]
fn overfitting_and_regularization() -> TestResult {
    use std::fmt::Write;

    // y = sin(πx) + noise: 12 examples to train on, 200 held out to validate.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut sample = |n: usize| -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..n).map(|_| uniform()).collect();
        let y = x
            .iter()
            .map(|&x| (std::f64::consts::PI * x).sin() + 0.2 * uniform())
            .collect();
        (x, y)
    };
    let (x_train, y_train) = sample(12);
    let (x_valid, y_valid) = sample(200);

    let mut s = String::from("degree  lambda   train MSE  validation MSE\n");
    let mut results = Vec::new();
    for (degree, lambda) in [(1, 0.0), (3, 0.0), (9, 0.0), (9, 1e-4), (9, 1e-2), (9, 1.0)] {
        let c = ridge_fit(&x_train, &y_train, degree, lambda);
        let train = mean_squared_error(&c, &x_train, &y_train);
        let valid = mean_squared_error(&c, &x_valid, &y_valid);
        writeln!(s, "{degree:6}  {lambda:<7}  {train:9.4}  {valid:14.4}")?;
        results.push((train, valid));
    }
    print!("{s}");
    // Degree 9 fits the 12 training points better than degree 3, noise included, and new
    // data far worse; a penalty on the coefficients brings it back, a too large one underfits.
    assert!(results[2].0 < results[1].0 && results[2].1 > 10.0 * results[1].1);
    assert!(results[3].1 < results[2].1 / 10.0);
    assert!(results[5].1 > results[3].1);
    shows("overfitting", &s)
}
// ANCHOR_END: overfitting

// ANCHOR: learning_curves
/// The reference model trained on only 100 synthetic digits for 100 epochs, validated on 1000
/// others after each epoch: the training and validation losses per epoch.
fn learning_curves() -> Result<dendrite_nn::History, Box<dyn Error>> {
    use dendrite_nn::data::synthetic_digits;
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};

    let (train, valid) = (synthetic_digits(100, 1)?, synthetic_digits(1000, 2)?);
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::new(0.01),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    let config = FitConfig::default()
        .epochs(100)
        .batch_size(32)
        .validation_data(&valid)
        .verbosity(0);
    Ok(model.fit(&train, config)?)
}

/// Both curves as a small SVG line chart, the loss on a logarithmic axis.
fn curves_svg(history: &dendrite_nn::History) -> String {
    use std::fmt::Write;

    let (w, h, left, bottom) = (560.0, 300.0, 50.0, 30.0);
    let epochs = history.loss.len() as f64;
    let (lo, hi) = (1e-4_f64.log10(), 10f64.log10());
    let px = |epoch: usize, loss: f64| {
        let x = left + (epoch as f64 + 1.0) / epochs * (w - left - 10.0);
        let y = 10.0 + (hi - loss.max(1e-4).log10()) / (hi - lo) * (h - bottom - 10.0);
        format!("{x:.1},{y:.1}")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (decade, label) in [
        (10.0, "10"),
        (1.0, "1"),
        (0.1, "0.1"),
        (0.01, "0.01"),
        (0.001, "0.001"),
        (1e-4, "0.0001"),
    ] {
        let y = 10.0 + (hi - f64::log10(decade)) / (hi - lo) * (h - bottom - 10.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for (curve, colour, name, y) in [
        (&history.loss, "#1f77b4", "training loss", 24),
        (&history.val_loss, "#d62728", "validation loss", 42),
    ] {
        let points: Vec<String> = curve.iter().enumerate().map(|(e, &l)| px(e, l)).collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{y}\" fill=\"{colour}\">{name}</text>",
            points.join(" "),
            w - 130.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch (1 to {epochs})</text>",
        (w + left) / 2.0,
        h - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[test]
fn learning_curves_figure() -> TestResult {
    use std::fmt::Write;

    let history = learning_curves()?;
    let mut s = String::from("epoch  train loss  validation loss  validation accuracy\n");
    for e in (0..100).step_by(10).chain([99]) {
        writeln!(
            s,
            "{:5}  {:10.4}  {:15.4}  {:19.3}",
            e + 1,
            history.loss[e],
            history.val_loss[e],
            history.val_accuracy[e]
        )?;
    }
    let best = (0..100)
        .min_by(|&a, &b| history.val_loss[a].total_cmp(&history.val_loss[b]))
        .unwrap_or(0);
    // The training loss keeps falling; the validation loss reaches its best well before the end.
    assert!(history.loss[99] < history.loss[best]);
    assert!(history.val_loss[99] > history.val_loss[best]);
    writeln!(
        s,
        "lowest validation loss {:.4} after epoch {}",
        history.val_loss[best],
        best + 1
    )?;
    print!("{s}");
    shows("learning_curves", &s)?;
    matches_file(
        "docs/src/figures/learning_curves.svg",
        &curves_svg(&history),
    )
}
// ANCHOR_END: learning_curves
