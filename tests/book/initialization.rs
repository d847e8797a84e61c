//! Initialization, vanishing and exploding gradients.

use super::*;

// ANCHOR: deep_stack
/// How to draw a layer's initial weights, each from U(-l, l) (variance l²/3) for a layer with
/// `fan_in` inputs and `fan_out` outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InitRule {
    /// A fixed standard deviation, whatever the layer's size.
    Std(f64),
    /// Glorot & Bengio (2010): variance 2 / (fan_in + fan_out), l = √(6 / (fan_in + fan_out)).
    Glorot,
    /// He et al. (2015), for ReLU: variance 2 / fan_in, l = √(6 / fan_in).
    He,
}

impl InitRule {
    fn limit(self, fan_in: usize, fan_out: usize) -> f64 {
        match self {
            InitRule::Std(s) => s * 3f64.sqrt(),
            InitRule::Glorot => (6.0 / (fan_in + fan_out) as f64).sqrt(),
            InitRule::He => (6.0 / fan_in as f64).sqrt(),
        }
    }
}

/// A stack of `depth` dense layers (no bias) of `width` units with activation `act`, started
/// with `init`, on a batch of 64 standard-normal-ish inputs. Returns, per layer, the standard
/// deviation of its activations and the norm of the loss's gradient with respect to its kernel,
/// for the loss L = mean over the batch of the sum of the last layer's outputs.
pub(crate) fn deep_stack(
    act: &str,
    init: InitRule,
    depth: usize,
    width: usize,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::Array2;

    let mut state = 0x9E37_79B9_7F4A_7C15_u64; // xorshift: the same numbers on every run
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0 // U(-1, 1)
    };
    let batch = 64;
    let mut g = Graph::<f64>::new();
    let x = Array2::from_shape_fn((batch, width), |_| uniform() * 3f64.sqrt()); // variance 1
    let mut h = g.constant(x.into_dyn());
    let (mut kernels, mut outputs) = (Vec::new(), Vec::new());
    for k in 0..depth {
        let l = init.limit(width, width);
        let w = Array2::from_shape_fn((width, width), |_| uniform() * l);
        let w = g.parameter(&format!("w{k}"), w.into_dyn())?;
        let z = g.matmul(h, w)?;
        h = match act {
            "tanh" => g.tanh(z)?,
            "relu" => g.relu(z)?,
            "sigmoid" => g.sigmoid(z)?,
            other => return Err(format!("unknown activation {other}").into()),
        };
        kernels.push(w);
        outputs.push(h);
    }
    let per_example = g.sum(h, &[1])?;
    let loss = g.mean(per_example, &[0], false)?;
    let grads = grad(&mut g, loss, &kernels)?;
    let fetches: Vec<_> = outputs.iter().chain(&grads).copied().collect();
    let mut plan = compile(&g, &fetches)?;
    let out = plan.run(&g, &[])?;
    let (mut stds, mut norms) = (Vec::new(), Vec::new());
    for k in 0..depth {
        let a = out.get(k)?;
        let mean = a.mean().unwrap_or(0.0);
        stds.push((a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt());
        norms.push(
            out.get(depth + k)?
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt(),
        );
    }
    Ok((stds, norms))
}
// ANCHOR_END: deep_stack

// ANCHOR: initialization
#[test]
fn initialization_keeps_the_signal() -> TestResult {
    use std::fmt::Write;

    let (depth, width) = (10, 64);
    let runs = [
        ("tanh", InitRule::Std(0.01)),
        ("tanh", InitRule::Std(1.0)),
        ("tanh", InitRule::Glorot),
        ("relu", InitRule::Glorot),
        ("relu", InitRule::He),
    ];
    let mut s = String::from("std of the activations, layer 1 to 10\n");
    let mut last = Vec::new();
    for (act, init) in runs {
        let (stds, _) = deep_stack(act, init, depth, width)?;
        let shown: Vec<String> = stds.iter().map(|v| format!("{v:.3}")).collect();
        writeln!(s, "{:<22} {}", format!("{act}, {init:?}"), shown.join(" "))?;
        last.push(stds[depth - 1]);
    }
    print!("{s}");
    // Too small: the signal dies out. Glorot keeps tanh's, He keeps ReLU's; Glorot halves
    // ReLU's variance at every layer (ReLU zeroes half of it), so its std falls by √2 a layer.
    assert!(last[0] < 1e-6);
    assert!(last[2] > 0.1 && last[4] > 0.3);
    assert!(last[3] < last[4] / 10.0);
    shows("initialization", &s)
}
// ANCHOR_END: initialization

// ANCHOR: vanishing
#[test]
fn vanishing_and_exploding_gradients() -> TestResult {
    use std::fmt::Write;

    let (depth, width) = (10, 64);
    let runs = [
        ("sigmoid", InitRule::Glorot),
        ("tanh", InitRule::Std(1.0)),
        ("tanh", InitRule::Glorot),
        ("relu", InitRule::He),
        ("relu", InitRule::Std(0.5)),
    ];
    let mut s = String::from("norm of dL/dW, layer 1 to 10\n");
    let (mut ratio, mut first) = (Vec::new(), Vec::new());
    for (act, init) in runs {
        let (_, norms) = deep_stack(act, init, depth, width)?;
        let shown: Vec<String> = norms.iter().map(|v| format!("{v:.1e}")).collect();
        writeln!(s, "{:<22} {}", format!("{act}, {init:?}"), shown.join(" "))?;
        ratio.push(norms[0] / norms[depth - 1]); // first layer against last
        first.push(norms[0]);
    }
    print!("{s}");
    assert!(ratio[0] < 1e-3); // sigmoid: the first layers barely learn
    assert!(ratio[1] > 100.0); // tanh with weights too large: it grows on the way down
    for r in [ratio[2], ratio[3]] {
        assert!(r > 0.1 && r < 10.0); // tanh-Glorot, ReLU-He: the same order at every layer
    }
    assert!(first[4] > 1e3 * first[3]); // ReLU, weights too large: every gradient is huge
    shows("vanishing", &s)
}
// ANCHOR_END: vanishing
