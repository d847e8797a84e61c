//! keras.io's "Simple MNIST convnet": two 3x3 convolutions (32 and 64 filters, ReLU), each
//! followed by 2x2 max pooling, then Flatten, Dropout(0.5) and Dense 10 softmax (34,826
//! parameters), trained with Adam on the categorical cross-entropy at batch size 128 for 15
//! epochs, holding out the last 10% of the training set for validation, and evaluated on the
//! test set.
//!
//! ```text
//! cargo run --release --example mnist_cnn
//! cargo run --release --example mnist_cnn -- --epochs 2 --data ../shared/data/mnist
//! cargo run --release --example mnist_cnn -- --help
//! ```
//!
//! The data, file and output flags are those of `examples/mnist` (see its documentation): the
//! same search for MNIST with the synthetic digits as the fallback, `--save-model`,
//! `--resume`, `--export-onnx`, `--plot`. The last line of standard output is exactly
//! `test_loss=<float> test_accuracy=<float> train_seconds=<float> weights_digest=<hex>`;
//! before it come the median seconds per epoch and the peak resident memory.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use dendrite::nn::{
    Activation, Adam, Conv2D, Dense, Dropout, FitConfig, Flatten, Loss, MaxPooling2D, Metric,
    Sequential,
};
use std::process::ExitCode;
use std::time::Instant;

/// Trains keras.io's MNIST convnet and evaluates it on the test set.
#[derive(Debug, Parser)]
#[command(name = "mnist_cnn")]
pub struct Args {
    /// Epochs in all (with --resume, including those already trained)
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Samples per step
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Fraction of the training set held out for validation (its last samples, as Keras)
    #[arg(long, default_value_t = 0.1)]
    pub validation_split: f64,
    /// The data, file and output flags the MNIST examples share
    #[command(flatten)]
    pub common: common::Common,
}

/// The convnet, new or resumed from a whole-model file. Keras' program, line by line:
/// `keras.Input(shape=(28, 28, 1))` is the first layer's `input_shape`.
fn model(args: &Args) -> Result<Sequential, String> {
    if let Some(model) = common::resumed(&args.common)? {
        return Ok(model);
    }
    let mut model = Sequential::new().with_seed(args.common.seed);
    model.add(
        Conv2D::new(32, [3, 3])
            .input_shape([28, 28, 1])
            .activation(Activation::Relu),
    );
    model.add(MaxPooling2D::new([2, 2]));
    model.add(Conv2D::new(64, [3, 3]).activation(Activation::Relu));
    model.add(MaxPooling2D::new([2, 2]));
    model.add(Flatten::new());
    model.add(Dropout::new(0.5));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::CategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .map_err(|e| e.to_string())?;
    Ok(model)
}

/// Trains and evaluates as `args` say, printing as it goes; returns the last line.
pub fn run(args: &Args) -> Result<String, String> {
    let (data, origin) = common::load(&args.common)?;
    println!("{origin}");
    let images = |d: dendrite::nn::data::Dataset| {
        d.with_sample_shape([28, 28, 1]).map_err(|e| e.to_string())
    };
    let (train, test) = (images(data.train)?, images(data.test)?);
    let mut model = model(args)?;
    println!("{}", model.summary().map_err(|e| e.to_string())?);
    let config = FitConfig::default()
        .epochs(args.epochs)
        .initial_epoch(model.epochs_trained())
        .batch_size(args.batch_size)
        .validation_split(args.validation_split)
        .seed(common::shuffle_seed(&args.common, &model))
        .verbosity(1);
    let started = Instant::now();
    let history = model.fit(&train, config).map_err(|e| e.to_string())?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = model
        .evaluate(&test, args.batch_size)
        .map_err(|e| e.to_string())?;
    common::finish(&args.common, &mut model, &history, &test, train_seconds)
}

fn main() -> ExitCode {
    common::main::<Args, _>(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mnist_cnn").chain(list.iter().copied()))
    }

    #[test]
    fn the_defaults_are_the_keras_recipe_and_bad_flags_are_refused() {
        let a = args(&[]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((a.epochs, a.batch_size, a.validation_split), (15, 128, 0.1));
        assert!(args(&["--epochs", "two"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        let help = args(&["--help"]).err().map(|e| e.kind());
        assert_eq!(help, Some(clap::error::ErrorKind::DisplayHelp));
    }
}
