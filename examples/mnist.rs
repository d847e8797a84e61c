//! The reference program: the Keras MNIST model (Dense 32 relu on 784 inputs, Dense 10
//! softmax, Adam, sparse categorical cross-entropy, accuracy), trained for 5 epochs at batch
//! size 32 and evaluated on the test set.
//!
//! ```text
//! cargo run --release --example mnist -- --data ../shared/data/mnist
//! ```
//!
//! Flags: `--data DIR` (else the environment variable `DENDRITE_MNIST_DIR`, else the built-in
//! synthetic digits), `--epochs N` (5), `--batch-size N` (32), `--seed N` (0), `--save FILE`
//! (weights as safetensors), `--export-onnx FILE` (the trained model as ONNX, for
//! onnxruntime), `--plot FILE` (loss and accuracy per epoch, SVG or PNG by extension).
//!
//! The last line of standard output is exactly
//! `test_loss=<float> test_accuracy=<float> train_seconds=<float>`, where `train_seconds` is the
//! time spent in `fit` alone. Bad data or flags end the program with exit code 1 and a one-line
//! error naming the file and the problem.

use dendrite::nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist, MNIST_DIR_ENV};
use dendrite::nn::{Activation, Adam, Dense, FitConfig, History, Loss, Metric, Sequential};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str =
    "usage: mnist [--data DIR] [--epochs N] [--batch-size N] [--seed N] [--save FILE] [--export-onnx FILE] [--plot FILE.svg|FILE.png]";

#[derive(Debug)]
struct Args {
    data: Option<PathBuf>,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    save: Option<PathBuf>,
    export_onnx: Option<PathBuf>,
    plot: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        data: None,
        epochs: 5,
        batch_size: 32,
        seed: 0,
        save: None,
        export_onnx: None,
        plot: None,
    };
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} takes a whole number, got `{v}`"))
        };
        match flag.as_str() {
            "--data" => parsed.data = Some(PathBuf::from(value()?)),
            "--epochs" => parsed.epochs = number(value()?)? as usize,
            "--batch-size" => parsed.batch_size = number(value()?)? as usize,
            "--seed" => parsed.seed = number(value()?)?,
            "--save" => parsed.save = Some(PathBuf::from(value()?)),
            "--export-onnx" => parsed.export_onnx = Some(PathBuf::from(value()?)),
            "--plot" => {
                let path = PathBuf::from(value()?);
                if plot_format(&path).is_none() {
                    return Err(format!(
                        "--plot {}: the file must end in .svg or .png",
                        path.display()
                    ));
                }
                parsed.plot = Some(path);
            }
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    Ok(parsed)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PlotFormat {
    Svg,
    Png,
}

fn plot_format(path: &std::path::Path) -> Option<PlotFormat> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "svg" => Some(PlotFormat::Svg),
        "png" => Some(PlotFormat::Png),
        _ => None,
    }
}

fn load(args: &Args) -> Result<Mnist, String> {
    // Where the directory came from goes into any error, so the user knows what to fix.
    let (dir, given_by) = match &args.data {
        Some(dir) => (Some(dir.clone()), "--data"),
        None => (mnist_dir_from_env(), MNIST_DIR_ENV),
    };
    match dir {
        Some(dir) => {
            let data =
                load_mnist(&dir).map_err(|e| format!("{e} (directory given by {given_by})"))?;
            println!(
                "data: MNIST from {} ({} training, {} test images)",
                dir.display(),
                data.train.len(),
                data.test.len()
            );
            Ok(data)
        }
        None => {
            let data = synthetic_mnist(args.seed).map_err(|e| e.to_string())?;
            println!(
                "data: no MNIST directory given (--data DIR or {MNIST_DIR_ENV}); using the built-in SYNTHETIC digits, \
                 not MNIST ({} training, {} test images)",
                data.train.len(),
                data.test.len()
            );
            Ok(data)
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let data = load(&args)?;

    let mut model = Sequential::new().with_seed(args.seed);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .map_err(|e| e.to_string())?;
    println!("{}", model.summary().map_err(|e| e.to_string())?);

    let config = FitConfig::default()
        .epochs(args.epochs)
        .batch_size(args.batch_size)
        .seed(args.seed)
        .verbosity(1);
    let started = Instant::now();
    let history = model.fit(&data.train, config).map_err(|e| e.to_string())?;
    let train_seconds = started.elapsed().as_secs_f64();

    let result = model
        .evaluate(&data.test, 1024)
        .map_err(|e| e.to_string())?;
    let mut seconds = history.seconds.clone();
    seconds.sort_by(f64::total_cmp);
    if let Some(median) = seconds.get(seconds.len() / 2) {
        println!("seconds per epoch: median {median:.3}");
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0);
    }
    if let Some(path) = &args.save {
        model.save_weights(path).map_err(|e| e.to_string())?;
        println!("weights saved to {}", path.display());
    }
    if let Some(path) = &args.export_onnx {
        model.export_onnx(path).map_err(|e| e.to_string())?;
        println!("ONNX model written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, &history)
            .map_err(|e| format!("{}: cannot draw the plot: {e}", path.display()))?;
        println!("plot saved to {}", path.display());
    }
    println!(
        "test_loss={:.6} test_accuracy={:.6} train_seconds={:.3}",
        result.loss,
        result.accuracy.unwrap_or(f64::NAN),
        train_seconds
    );
    Ok(())
}

/// Peak resident set size of this process so far (`VmHWM` in `/proc/self/status`), on Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

// ----- plotting ----------------------------------------------------------------------------

fn plot(path: &std::path::Path, history: &History) -> Result<(), String> {
    let size = (1000, 420);
    match plot_format(path) {
        Some(PlotFormat::Svg) => draw(SVGBackend::new(path, size).into_drawing_area(), history),
        Some(PlotFormat::Png) => draw(BitMapBackend::new(path, size).into_drawing_area(), history),
        None => Err("the file must end in .svg or .png".into()),
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, history: &History) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(500);
    panel(&left, "loss", &history.loss, &history.val_loss).map_err(err)?;
    panel(&right, "accuracy", &history.accuracy, &history.val_accuracy).map_err(err)?;
    root.present().map_err(err)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    train: &[f64],
    val: &[f64],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let epochs = train.len().max(1) as f64;
    let all = train.iter().chain(val).copied().filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title} per epoch"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..epochs + 0.5, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title)
        .x_labels(train.len().clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let series = [(train, "train", BLUE), (val, "validation", RED)];
    for (values, label, color) in series {
        if values.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64 + 1.0, v))
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
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
        assert_eq!((a.epochs, a.batch_size, a.seed), (2, 128, 7));
        assert!(args(&["--epochs", "two"]).is_err());
        assert!(args(&["--plot", "x.jpg"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--data"]).is_err());
    }
}
