//! Where the time of one training step goes: runs the forward and backward plan of the
//! reference MLP (or, with `--model convnet`, keras.io's MNIST convnet) many times and prints
//! the mean time of each step, slowest first.
//!
//! `cargo run --release --example profile_step -- [--model mlp|convnet] [--batch N]
//! [--threads N] [--runs N]`

use dendrite_graph::compile;
use dendrite_test_support::reference::{convnet_training_graph, reference_training_graph};
use ndarray::{arr0, Array1, Array2, Array4};

/// Times each step of the reference model's training plan, slowest first.
#[derive(Debug, clap::Parser)]
#[command(name = "profile_step")]
struct Args {
    /// The model: `mlp` (Dense 32 relu, Dense 10) or `convnet` (keras.io's MNIST convnet)
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Samples per batch
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Threads the plan's large kernels may use
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runs of the plan to average over
    #[arg(long, default_value_t = 2000)]
    runs: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        model,
        batch,
        threads,
        runs,
    } = <Args as clap::Parser>::parse();
    let pixel = |k: usize| (k % 255) as f32 / 255.0;
    let yv = Array1::from_shape_fn(batch, |i| (i % 10) as f32).into_dyn();
    let mut steps = match model.as_str() {
        "mlp" => {
            let (g, fetches) = reference_training_graph()?;
            let xv = Array2::from_shape_fn((batch, 784), |(i, j)| pixel(i * 784 + j)).into_dyn();
            let mut plan = compile(&g, &fetches)?;
            plan.set_threads(threads);
            plan.profile(&g, &[("x", xv.view()), ("y", yv.view())], runs)?
        }
        "convnet" => {
            let (g, fetches) = convnet_training_graph()?;
            let xv = Array4::from_shape_fn((batch, 28, 28, 1), |(i, r, c, _)| {
                pixel(i * 784 + r * 28 + c)
            })
            .into_dyn();
            let step = arr0(1.0_f32).into_dyn();
            let feeds = [("x", xv.view()), ("y", yv.view()), ("step", step.view())];
            let mut plan = compile(&g, &fetches)?;
            plan.set_threads(threads);
            plan.profile(&g, &feeds, runs)?
        }
        other => return Err(format!("--model: expected mlp or convnet, got {other:?}").into()),
    };
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
