//! The backward pass in numbers: the reference model's graph at toy size.

use super::*;

// ANCHOR: backward_numbers
/// The reference model's layers (dense + ReLU, dense, sparse cross-entropy from the logits) at
/// toy size: a batch of B = 2 examples of 3 inputs, 2 hidden units, 2 classes. The layer-wise
/// formulas of the backward pass, computed by hand with ndarray, next to what `grad` derives;
/// returns what it prints.
fn backward_in_numbers() -> Result<String, Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2, Array2, Axis};
    use std::fmt::Write;

    let x = arr2(&[[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]]);
    let labels = arr1(&[1.0, 0.0]); // the class of each example
    let w1 = arr2(&[[0.2, -0.5], [0.1, 0.3], [-0.4, 0.6]]);
    let b1 = arr1(&[0.0, 0.1]);
    let w2 = arr2(&[[0.7, -0.3], [-0.2, 0.5]]);
    let b2 = arr1(&[0.05, -0.05]);

    // Dendrite: the graph of the reference model, and its gradient.
    let mut g = Graph::<f64>::new();
    let xs = g.input("inputs", [None, Some(3)])?;
    let ys = g.input("labels", [None])?;
    let pw1 = g.parameter("w1", w1.clone().into_dyn())?;
    let pb1 = g.parameter("b1", b1.clone().into_dyn())?;
    let pw2 = g.parameter("w2", w2.clone().into_dyn())?;
    let pb2 = g.parameter("b2", b2.clone().into_dyn())?;
    let xw = g.matmul(xs, pw1)?;
    let z1 = g.add(xw, pb1)?;
    let h = g.relu(z1)?;
    let hw = g.matmul(h, pw2)?;
    let logits = g.add(hw, pb2)?;
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(ys, 2)?;
    let picked = g.mul(target, log_p)?;
    let per_example = g.sum(picked, &[1])?;
    let mean = g.mean(per_example, &[0], false)?;
    let loss = g.neg(mean)?;
    let grads = grad(&mut g, loss, &[pw1, pb1, pw2, pb2])?;
    let mut plan = compile(&g, &[loss, grads[0], grads[1], grads[2], grads[3]])?;
    let out = plan.run(
        &g,
        &[
            ("inputs", x.view().into_dyn()),
            ("labels", labels.view().into_dyn()),
        ],
    )?;

    // By hand, layer by layer.
    let b = x.nrows() as f64;
    let z1 = x.dot(&w1) + &b1;
    let h = z1.mapv(|v| v.max(0.0));
    let z2 = h.dot(&w2) + &b2;
    let p = {
        let e = z2.mapv(f64::exp);
        let rows = e.sum_axis(Axis(1)).insert_axis(Axis(1));
        e / rows
    };
    let y = Array2::from_shape_fn((2, 2), |(i, c)| f64::from(labels[i] as usize == c));
    let loss_by_hand = -(&y * &p.mapv(f64::ln)).sum() / b;
    let delta2 = (&p - &y) / b; // ∂loss/∂logits
    let w2_bar = h.t().dot(&delta2);
    let b2_bar = delta2.sum_axis(Axis(0));
    let h_bar = delta2.dot(&w2.t());
    let delta1 = &h_bar * &z1.mapv(|v| f64::from(v > 0.0)); // ∂loss/∂z1: ReLU's mask
    let w1_bar = x.t().dot(&delta1);
    let b1_bar = delta1.sum_axis(Axis(0));

    let mut s = String::new();
    let rows = |a: &Array2<f64>| {
        a.rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{v:+.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    writeln!(s, "forward")?;
    writeln!(s, "  z1 = x W1 + b1       {}", rows(&z1))?;
    writeln!(s, "  h  = relu(z1)        {}", rows(&h))?;
    writeln!(s, "  z2 = h W2 + b2       {}", rows(&z2))?;
    writeln!(s, "  p  = softmax(z2)     {}", rows(&p))?;
    writeln!(s, "  loss = mean -log p_y {loss_by_hand:.4}")?;
    writeln!(s, "backward")?;
    writeln!(s, "  d2 = (p - y) / B     {}", rows(&delta2))?;
    writeln!(s, "  W2_bar = h^T d2      {}", rows(&w2_bar))?;
    writeln!(
        s,
        "  b2_bar = sum_rows d2 {}",
        rows(&b2_bar.clone().insert_axis(Axis(0)))
    )?;
    writeln!(s, "  h_bar = d2 W2^T      {}", rows(&h_bar))?;
    writeln!(s, "  d1 = h_bar * [z1>0]  {}", rows(&delta1))?;
    writeln!(s, "  W1_bar = x^T d1      {}", rows(&w1_bar))?;
    writeln!(
        s,
        "  b1_bar = sum_rows d1 {}",
        rows(&b1_bar.clone().insert_axis(Axis(0)))
    )?;

    // What the reverse sweep derived from the primitives' rules is the same, to rounding.
    let close = |a: ndarray::ArrayViewD<'_, f64>, b: ndarray::ArrayViewD<'_, f64>| {
        a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(u, v)| (u - v).abs() < 1e-12)
    };
    assert!((out.scalar(0)? - loss_by_hand).abs() < 1e-12);
    assert!(close(out.get(1)?, w1_bar.view().into_dyn()));
    assert!(close(out.get(2)?, b1_bar.view().into_dyn()));
    assert!(close(out.get(3)?, w2_bar.view().into_dyn()));
    assert!(close(out.get(4)?, b2_bar.view().into_dyn()));
    writeln!(
        s,
        "grad(loss, [w1, b1, w2, b2]) gives the same four gradients"
    )?;
    Ok(s)
}

#[test]
fn the_backward_pass_in_numbers() -> TestResult {
    let printed = backward_in_numbers()?;
    print!("{printed}");
    shows("backward_numbers", &printed)
}
// ANCHOR_END: backward_numbers
