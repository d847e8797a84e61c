//! Checks of the image primitives: the convolution family (bilinear: second order checked on
//! the op itself), the pooling family (linear or piecewise linear: second order through `f³`,
//! max pooling on distinct values, away from ties) and the random draws (zero derivative).

use super::{cases, cubed, ensure, first, gradient_of, second, Case, Cases, Entry, R};
use dendrite_autodiff::strategies::{distinct_in, tensor};
use dendrite_graph::ops::{Conv2d, Padding, Pool2d};
use dendrite_graph::{Graph, GraphError, NodeId};
use ndarray::ArrayD;
use proptest::prelude::*;

/// The table entries of this file.
pub fn entries() -> Vec<(&'static str, Entry)> {
    use super::{d as D, n as N};
    vec![
        ("conv2d", D(conv_cases, conv2d)),
        ("conv2d_bias", D(conv_cases, conv2d_bias)),
        ("conv2d_input_grad", D(conv_cases, conv2d_input_grad)),
        ("conv2d_kernel_grad", D(conv_cases, conv2d_kernel_grad)),
        ("max_pool2d", D(pool_cases, max_pool2d)),
        ("max_pool2d_scatter", D(pool_cases, max_pool2d_scatter)),
        ("max_pool2d_gather", D(pool_cases, max_pool2d_gather)),
        ("avg_pool2d", D(pool_cases, avg_pool2d)),
        ("avg_pool2d_grad", D(pool_cases, avg_pool2d_grad)),
        ("random_uniform", N(random_cases, |c| random(c, false))),
        ("random_normal", N(random_cases, |c| random(c, true))),
    ]
}

/// Output length of a window axis (the rule of `dendrite_graph::ops::window`, restated).
fn out_len(n: usize, k: usize, s: usize, d: usize, same: bool) -> Option<usize> {
    let span = (k - 1) * d + 1;
    if same {
        Some(n.div_ceil(s))
    } else {
        (n >= span).then(|| (n - span) / s + 1)
    }
}

fn padding(same: bool) -> Padding {
    if same {
        Padding::Same
    } else {
        Padding::Valid
    }
}

/// `vals = [x, w, y, b]` (image, kernel, a cotangent shaped like the output, a bias) and `params =
/// [sh, sw, dh, dw, same]`; small sizes, every stride, dilation and padding.
fn conv_cases() -> Cases {
    let dims = (
        1..=2usize,
        1..=5usize,
        1..=5usize,
        1..=2usize,
        1..=3usize,
        1..=3usize,
        1..=2usize,
    );
    let geometry = (
        1..=2usize,
        1..=2usize,
        1..=2usize,
        1..=2usize,
        any::<bool>(),
    );
    (dims, geometry)
        .prop_flat_map(|((n, h, w, c, kh, kw, o), (sh, sw, dh, dw, same))| {
            // A valid window that does not fit becomes a same one.
            let same = same
                || out_len(h, kh, sh, dh, false).is_none()
                || out_len(w, kw, sw, dw, false).is_none();
            let oh = out_len(h, kh, sh, dh, same).unwrap_or(1);
            let ow = out_len(w, kw, sw, dw, same).unwrap_or(1);
            let params = vec![sh, sw, dh, dw, usize::from(same)];
            (
                tensor(vec![n, h, w, c]),
                tensor(vec![kh, kw, c, o]),
                tensor(vec![n, oh, ow, o]),
                tensor(vec![o]),
            )
                .prop_map(move |(x, k, y, b)| Case::with(vec![x, k, y, b], params.clone()))
        })
        .boxed()
}

fn conv_of(c: &Case) -> Conv2d {
    let p = &c.params;
    Conv2d {
        strides: [p[0], p[1]],
        dilation: [p[2], p[3]],
        padding: padding(p[4] == 1),
    }
}

fn hw(v: &ArrayD<f64>) -> [usize; 2] {
    [v.shape()[0], v.shape()[1]]
}

/// Bilinear: the Hessian's cross terms are non-zero, so second order runs on the op itself.
fn conv2d(c: &Case) -> R {
    let conv = conv_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.conv2d(x[0], x[1], conv);
    let vals = [c.vals[0].clone(), c.vals[1].clone()];
    first(&vals, &[0, 1], f)?;
    second(&vals, &[0, 1], f)
}

/// Bilinear in `(x, w)` plus a term linear in `b`: second order runs on the op itself.
fn conv2d_bias(c: &Case) -> R {
    let conv = conv_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.conv2d_bias(x[0], x[1], x[2], conv);
    let vals = [c.vals[0].clone(), c.vals[1].clone(), c.vals[3].clone()];
    first(&vals, &[0, 1, 2], f)?;
    second(&vals, &[0, 1, 2], f)
}

fn conv2d_input_grad(c: &Case) -> R {
    let (conv, image) = (conv_of(c), [c.vals[0].shape()[1], c.vals[0].shape()[2]]);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.conv2d_input_grad(x[0], x[1], conv, image);
    let vals = [c.vals[2].clone(), c.vals[1].clone()];
    first(&vals, &[0, 1], f)?;
    second(&vals, &[0, 1], f)
}

fn conv2d_kernel_grad(c: &Case) -> R {
    let (conv, kernel) = (conv_of(c), hw(&c.vals[1]));
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.conv2d_kernel_grad(x[0], x[1], conv, kernel);
    let vals = [c.vals[0].clone(), c.vals[2].clone()];
    first(&vals, &[0, 1], f)?;
    second(&vals, &[0, 1], f)
}

/// `vals = [x, y, v]`: an image of distinct values (no ties in any window), a cotangent shaped
/// like the pool's output, a tensor shaped like the image; `params = [ph, pw, sh, sw, same]`.
fn pool_cases() -> Cases {
    let dims = (1..=2usize, 1..=5usize, 1..=5usize, 1..=2usize);
    let geometry = (
        1..=3usize,
        1..=3usize,
        1..=3usize,
        1..=3usize,
        any::<bool>(),
    );
    (dims, geometry)
        .prop_flat_map(|((n, h, w, c), (ph, pw, sh, sw, same))| {
            let same = same
                || out_len(h, ph, sh, 1, false).is_none()
                || out_len(w, pw, sw, 1, false).is_none();
            let oh = out_len(h, ph, sh, 1, same).unwrap_or(1);
            let ow = out_len(w, pw, sw, 1, same).unwrap_or(1);
            let params = vec![ph, pw, sh, sw, usize::from(same)];
            (
                distinct_in(vec![n, h, w, c], -2.0..2.0),
                tensor(vec![n, oh, ow, c]),
                tensor(vec![n, h, w, c]),
            )
                .prop_map(move |(x, y, v)| Case::with(vec![x, y, v], params.clone()))
        })
        .boxed()
}

fn pool_of(c: &Case) -> Pool2d {
    let p = &c.params;
    Pool2d {
        size: [p[0], p[1]],
        strides: [p[2], p[3]],
        padding: padding(p[4] == 1),
    }
}

/// Piecewise linear: first order away from ties, second order through `f³`.
fn max_pool2d(c: &Case) -> R {
    let pool = pool_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.max_pool2d(x[0], pool);
    let vals = [c.vals[0].clone()];
    first(&vals, &[0], f)?;
    second(&vals, &[0], cubed(f))
}

/// Linear in the routed values; no gradient into the image that picks the positions (its true
/// derivative away from ties, which the check also confirms).
fn max_pool2d_scatter(c: &Case) -> R {
    let pool = pool_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.max_pool2d_scatter(x[0], x[1], pool);
    let vals = [c.vals[0].clone(), c.vals[1].clone()];
    first(&vals, &[0, 1], f)?;
    second(&vals, &[1], cubed(f))
}

fn max_pool2d_gather(c: &Case) -> R {
    let pool = pool_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.max_pool2d_gather(x[0], x[1], pool);
    let vals = [c.vals[0].clone(), c.vals[2].clone()];
    first(&vals, &[0, 1], f)?;
    second(&vals, &[1], cubed(f))
}

fn avg_pool2d(c: &Case) -> R {
    let pool = pool_of(c);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.avg_pool2d(x[0], pool);
    let vals = [c.vals[2].clone()];
    first(&vals, &[0], f)?;
    second(&vals, &[0], cubed(f))
}

fn avg_pool2d_grad(c: &Case) -> R {
    let (pool, image) = (pool_of(c), [c.vals[0].shape()[1], c.vals[0].shape()[2]]);
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.avg_pool2d_grad(x[0], pool, image);
    let vals = [c.vals[1].clone()];
    first(&vals, &[0], f)?;
    second(&vals, &[0], cubed(f))
}

fn random_cases() -> Cases {
    cases((1..=3usize, 1..=4usize).prop_flat_map(|(a, b)| tensor(vec![a, b]).prop_map(|v| vec![v])))
}

/// A random draw is a constant to the reverse sweep: `r · x` has gradient `r` (checked
/// against finite differences, the draw unchanged by perturbing `x`), `r` alone has gradient 0.
fn random(c: &Case, normal: bool) -> R {
    let draw = move |g: &mut Graph<f64>, x: NodeId| -> Result<NodeId, GraphError> {
        let step = g.scalar(3.0);
        if normal {
            g.random_normal(x, step, 11)
        } else {
            g.random_uniform(x, step, 11)
        }
    };
    first(&c.vals, &[0], |g, x| {
        let r = draw(g, x[0])?;
        g.mul(r, x[0])
    })?;
    let z = gradient_of(&c.vals, 0, |g, x| draw(g, x[0]))?;
    ensure(
        z.iter().all(|&v| v == 0.0) && z.shape() == c.vals[0].shape(),
        || format!("random: gradient {z} is not zero"),
    )?;
    Ok(())
}
