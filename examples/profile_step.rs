//! Where the time of one training step of the reference model goes: runs the forward and
//! backward plan many times and prints the mean time of each step, slowest first.
//!
//! `cargo run --release --example profile_step -- [batch] [runs]`

use dendrite_autodiff::grad;
use dendrite_graph::{compile, Graph};
use ndarray::{Array1, Array2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(32);
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)])?;
    let y = g.input("y", [None])?;
    let w1 = g.parameter("w1", Array2::from_elem((784, 32), 0.01_f32).into_dyn())?;
    let b1 = g.parameter("b1", Array1::zeros(32).into_dyn())?;
    let w2 = g.parameter("w2", Array2::from_elem((32, 10), 0.02_f32).into_dyn())?;
    let b2 = g.parameter("b2", Array1::zeros(10).into_dyn())?;
    let z1 = g.matmul(x, w1)?;
    let z1 = g.add(z1, b1)?;
    let h = g.relu(z1)?;
    let z2 = g.matmul(h, w2)?;
    let logits = g.add(z2, b2)?;
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(y, 10)?;
    let picked = g.mul(target, log_p)?;
    let per_example = g.sum(picked, &[1])?;
    let mean = g.mean_all(per_example)?;
    let loss = g.neg(mean)?;
    let mut fetches = vec![loss];
    fetches.extend(grad(&mut g, loss, &[w1, b1, w2, b2])?);
    let mut plan = compile(&g, &fetches)?;
    let xv = Array2::from_shape_fn((batch, 784), |(i, j)| ((i * 784 + j) % 255) as f32 / 255.0)
        .into_dyn();
    let yv = Array1::from_shape_fn(batch, |i| (i % 10) as f32).into_dyn();
    let runs: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    let mut steps = plan.profile(&g, &[("x", xv.view()), ("y", yv.view())], runs)?;
    let total: std::time::Duration = steps.iter().map(|s| s.mean).sum();
    println!(
        "{} steps, {:.1} µs per run at batch {batch}",
        steps.len(),
        total.as_secs_f64() * 1e6
    );
    steps.sort_by_key(|s| std::cmp::Reverse(s.mean));
    for s in &steps {
        println!(
            "{:>8.2} µs  {:<14} {:<28} {:?}",
            s.mean.as_secs_f64() * 1e6,
            s.op,
            s.node,
            s.shape.as_slice()
        );
    }
    Ok(())
}
