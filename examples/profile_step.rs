//! Where the time of one training step of the reference model goes: runs the forward and
//! backward plan many times and prints the mean time of each step, slowest first.
//!
//! `cargo run --release --example profile_step -- [--batch N] [--runs N]`

use dendrite_graph::compile;
use dendrite_test_support::reference::reference_training_graph;
use ndarray::{Array1, Array2};

/// Times each step of the reference model's training plan, slowest first.
#[derive(Debug, clap::Parser)]
#[command(name = "profile_step")]
struct Args {
    /// Samples per batch
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Runs of the plan to average over
    #[arg(long, default_value_t = 2000)]
    runs: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { batch, runs } = <Args as clap::Parser>::parse();
    let (g, fetches) = reference_training_graph()?;
    let mut plan = compile(&g, &fetches)?;
    let xv = Array2::from_shape_fn((batch, 784), |(i, j)| ((i * 784 + j) % 255) as f32 / 255.0)
        .into_dyn();
    let yv = Array1::from_shape_fn(batch, |i| (i % 10) as f32).into_dyn();
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
