//! The reference program: the Keras MNIST model (Dense 32 relu on 784 inputs, Dense 10
//! softmax, Adam, sparse categorical cross-entropy, accuracy), trained for 5 epochs at batch
//! size 32 and evaluated on the test set.
//!
//! ```text
//! cargo run --release --example mnist
//! cargo run --release --example mnist -- --help
//! ```
//!
//! The data: `--data DIR`, else the directory in `DENDRITE_MNIST_DIR`, else the cache
//! (`$DENDRITE_HOME/datasets/mnist`, else the platform cache directory), else a download into
//! the cache from the mirrors (each file checked against its SHA-256). When none of that works
//! (offline, say), one line says where it looked and the program trains on the built-in
//! synthetic digits instead. `--offline` never uses the network, `--download` makes real
//! MNIST a requirement (no fallback), `--synthetic` goes straight to the synthetic digits.
//!
//! `--save-model FILE` writes the whole model (architecture, weights, optimizer state,
//! training position) at the end; `--resume FILE` continues from such a file, `--epochs N`
//! then being the total (`--epochs 2 --save-model F`, then `--resume F --epochs 4`, trains
//! epochs 3 and 4, with the same bits as one 4-epoch run). `--export-onnx FILE` writes the
//! trained model as ONNX, for onnxruntime.
//!
//! The last line of standard output is exactly
//! `test_loss=<float> test_accuracy=<float> train_seconds=<float> weights_digest=<hex>`, where
//! `train_seconds` is the time spent in `fit` alone and `weights_digest` the SHA-256 of every
//! parameter ([`Sequential::weights_digest`]). Bad data or flags end the program with a
//! non-zero exit code and an error naming the file or flag and the problem.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use dendrite::nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
use std::process::ExitCode;
use std::time::Instant;

/// Trains the Keras reference MNIST model and evaluates it on the test set.
#[derive(Debug, Parser)]
#[command(name = "mnist")]
pub struct Args {
    /// Epochs in all (with --resume, including those already trained)
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Samples per step
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The data, file and output flags the MNIST examples share
    #[command(flatten)]
    pub common: common::Common,
}

/// The reference model, new or resumed from a whole-model file.
fn model(args: &Args) -> Result<Sequential, String> {
    if let Some(model) = common::resumed(&args.common)? {
        return Ok(model);
    }
    let mut model = Sequential::new().with_seed(args.common.seed);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .map_err(|e| e.to_string())?;
    Ok(model)
}

/// Trains and evaluates as `args` say, printing as it goes; returns the last line.
pub fn run(args: &Args) -> Result<String, String> {
    let (data, origin) = common::load(&args.common)?;
    println!("{origin}");
    let mut model = model(args)?;
    println!("{}", model.summary().map_err(|e| e.to_string())?);
    let config = FitConfig::default()
        .epochs(args.epochs)
        .initial_epoch(model.epochs_trained())
        .batch_size(args.batch_size)
        .seed(common::shuffle_seed(&args.common, &model))
        .verbosity(1);
    let started = Instant::now();
    let history = model.fit(&data.train, config).map_err(|e| e.to_string())?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = model
        .evaluate(&data.test, 1024)
        .map_err(|e| e.to_string())?;
    common::finish(&args.common, &mut model, &history, &test, train_seconds)
}

#[allow(dead_code)] // the resume test runs `run`, not `main`
fn main() -> ExitCode {
    common::main::<Args, _>(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mnist").chain(list.iter().copied()))
    }

    #[test]
    fn flags_parse() {
        let a = args(&[
            "--epochs",
            "2",
            "--batch-size",
            "128",
            "--seed",
            "7",
            "--plot",
            "x.svg",
        ]);
        let a = a.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((a.epochs, a.batch_size, a.common.seed), (2, 128, 7));
        assert!(args(&["--epochs", "two"]).is_err());
        assert!(args(&["--plot", "x.jpg"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--data"]).is_err());
        assert!(args(&["--download", "--offline"]).is_err());
        let help = args(&["--help"]).err().map(|e| e.kind());
        assert_eq!(help, Some(clap::error::ErrorKind::DisplayHelp));
    }
}
