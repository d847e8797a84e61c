//! A residual MLP on MNIST, written with the Functional API: Dense 128 ReLU on the 784
//! pixels, then two residual blocks (Dense 128 ReLU, Dense 128, the block's input added back,
//! ReLU), then Dense 10 softmax; Adam, sparse categorical cross-entropy, accuracy, 5 epochs at
//! batch size 32, evaluated on the test set.
//!
//! ```text
//! cargo run --release --example residual
//! cargo run --release --example residual -- --data ../shared/data/mnist
//! cargo run --release --example residual -- --help
//! ```
//!
//! The data, file and output flags are those of `examples/mnist` (see its documentation).
//! The last line of standard output is exactly
//! `test_loss=<float> test_accuracy=<float> train_seconds=<float> weights_digest=<hex>`;
//! before it come the median seconds per epoch and the peak resident memory.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use dendrite::nn::{Activation, Adam, Dense, FitConfig, Functional, Loss, Metric, Model, Tensor};
use std::process::ExitCode;
use std::time::Instant;

/// Trains a residual MLP, built with the Functional API, on MNIST.
#[derive(Debug, Parser)]
#[command(name = "residual")]
pub struct Args {
    /// Epochs in all (with --resume, including those already trained)
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Samples per step
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Width of the hidden layers
    #[arg(long, default_value_t = 128)]
    pub width: usize,
    /// The data, file and output flags the MNIST examples share
    #[command(flatten)]
    pub common: common::Common,
}

/// `relu(x + Dense(relu(Dense(x))))`: the block learns a correction to its input.
fn residual_block(f: &mut Functional<f32>, x: Tensor, width: usize) -> Result<Tensor, String> {
    let e = |e: dendrite::nn::NnError| e.to_string();
    let h = f
        .apply(Dense::new(width).activation(Activation::Relu), x)
        .map_err(e)?;
    let h = f.apply(Dense::new(width), h).map_err(e)?;
    let sum = f.add(&[x, h]).map_err(e)?;
    f.apply(Activation::Relu, sum).map_err(e)
}

/// The residual model, compiled, or resumed from a file written by `--save-model`.
fn model(args: &Args) -> Result<Model, String> {
    let e = |e: dendrite::nn::NnError| e.to_string();
    if let Some(path) = &args.common.resume {
        let model = Model::load(path).map_err(e)?;
        let inner = model.sequential();
        println!(
            "resumed {} after epoch {} ({} steps)",
            path.display(),
            inner.epochs_trained(),
            inner.steps_taken()
        );
        return Ok(model);
    }
    let mut f = Functional::new();
    let x = f.input([784]).map_err(e)?;
    let mut h = f
        .apply(Dense::new(args.width).activation(Activation::Relu), x)
        .map_err(e)?;
    for _ in 0..2 {
        h = residual_block(&mut f, h, args.width)?;
    }
    let y = f
        .apply(Dense::new(10).activation(Activation::Softmax), h)
        .map_err(e)?;
    let mut model = Model::new(f, x, y).map_err(e)?.with_seed(args.common.seed);
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .map_err(e)?;
    Ok(model)
}

/// Trains and evaluates as `args` say, printing as it goes; returns the last line.
pub fn run(args: &Args) -> Result<String, String> {
    if args.common.resume.is_some() {
        return Err(
            "--resume: this example trains from scratch (load a Functional model with Model::load)"
                .into(),
        );
    }
    let (data, origin) = common::load(&args.common)?;
    println!("{origin}");
    let mut model = model(args)?;
    println!("{}", model.summary().map_err(|e| e.to_string())?);
    let config = FitConfig::default()
        .epochs(args.epochs)
        .initial_epoch(model.sequential().epochs_trained())
        .batch_size(args.batch_size)
        .seed(common::shuffle_seed(&args.common, model.sequential()))
        .verbosity(1);
    let started = Instant::now();
    let history = model.fit(&data.train, config).map_err(|e| e.to_string())?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = model
        .evaluate(&data.test, 1024)
        .map_err(|e| e.to_string())?;
    let inner = model.sequential_mut();
    common::finish(&args.common, inner, &history, &test, train_seconds)
}

fn main() -> ExitCode {
    common::main::<Args, _>(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let parse = |list: &[&str]| {
            Args::try_parse_from(std::iter::once("residual").chain(list.iter().copied()))
        };
        let a = parse(&[]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((a.epochs, a.batch_size, a.width), (5, 32, 128));
        assert!(parse(&["--width", "wide"]).is_err());
    }
}
