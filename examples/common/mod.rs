//! What the MNIST examples share: the data, output and file flags, loading the data (real or
//! synthetic), the timing and memory report, the files written at the end, and the plot.

// Each example compiles this module on its own and uses part of it.
#![allow(dead_code)]

use clap::Args;
use dendrite::nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist, MNIST_DIR_ENV};
use dendrite::nn::datasets::{mnist_or_synthetic, mnist_with, FetchConfig, Origin, Source};
use dendrite::nn::{Evaluation, History, Sequential};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::PathBuf;

/// The flags every MNIST example takes besides its training recipe.
#[derive(Debug, Args)]
pub struct Common {
    /// MNIST directory (the four IDX files, gzipped or not); default: DENDRITE_MNIST_DIR,
    /// then the cache, then a download
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seed of the weights, the shuffling, dropout and the synthetic digits
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the weights alone (safetensors) at the end
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Write the whole model (architecture, weights, optimizer state, position) at the end
    #[arg(long, value_name = "FILE")]
    pub save_model: Option<PathBuf>,
    /// Write the trained model as ONNX (inference graph, for onnxruntime and other engines)
    #[arg(long, value_name = "FILE")]
    pub export_onnx: Option<PathBuf>,
    /// Continue training the whole model saved in FILE
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Require real MNIST: fetch it if it is not found, and fail rather than fall back
    #[arg(long, conflicts_with_all = ["offline", "synthetic"])]
    pub download: bool,
    /// Never use the network (the synthetic digits when MNIST is not on disk)
    #[arg(long, conflicts_with = "synthetic")]
    pub offline: bool,
    /// Train on the built-in synthetic digits without looking for MNIST
    #[arg(long, conflicts_with = "data")]
    pub synthetic: bool,
    /// Plot loss and accuracy per epoch (SVG or PNG, by extension)
    #[arg(long, value_name = "FILE.svg|FILE.png", value_parser = plot_path)]
    pub plot: Option<PathBuf>,
}

fn plot_path(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    match plot_format(&path) {
        Some(_) => Ok(path),
        None => Err("the file must end in .svg or .png".to_owned()),
    }
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

/// The data the flags ask for, and the line saying where they came from.
/// Parses the example's arguments, runs it, and reports an error on one line (exit code 1).
pub fn main<A: clap::Parser, T>(
    run: impl FnOnce(&A) -> Result<T, String>,
) -> std::process::ExitCode {
    let args = A::parse();
    match run(&args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", message.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

pub fn load(args: &Common) -> Result<(Mnist, String), String> {
    let counts = |d: &Mnist| format!("({} training, {} test images)", d.train.len(), d.test.len());
    if args.synthetic {
        let data = synthetic_mnist(args.seed).map_err(|e| e.to_string())?;
        let line = format!(
            "data: the built-in SYNTHETIC digits, not MNIST {}",
            counts(&data)
        );
        return Ok((data, line));
    }
    // Where the directory came from goes into any error, so the user knows what to fix.
    let (dir, given_by) = match &args.data {
        Some(dir) => (Some(dir.clone()), "--data"),
        None => (mnist_dir_from_env(), MNIST_DIR_ENV),
    };
    if let Some(dir) = dir {
        let data = load_mnist(&dir).map_err(|e| format!("{e} (directory given by {given_by})"))?;
        let line = format!("data: MNIST from {} {}", dir.display(), counts(&data));
        return Ok((data, line));
    }
    let config = FetchConfig::from_env().download(!args.offline);
    let (data, origin) = match args.download {
        true => mnist_with(&Source::mnist(), &config).map_err(|e| e.to_string())?,
        false => {
            mnist_or_synthetic(&Source::mnist(), &config, args.seed).map_err(|e| e.to_string())?
        }
    };
    let line = match origin {
        Origin::Synthetic(_) => format!("data: {origin} {}", counts(&data)),
        _ => format!("data: MNIST {origin} {}", counts(&data)),
    };
    Ok((data, line))
}

/// A model resumed from `--resume`, if given (saying so).
pub fn resumed(args: &Common) -> Result<Option<Sequential>, String> {
    let Some(path) = &args.resume else {
        return Ok(None);
    };
    let model = Sequential::load(path).map_err(|e| e.to_string())?;
    println!(
        "resumed {} after epoch {} ({} steps)",
        path.display(),
        model.epochs_trained(),
        model.steps_taken()
    );
    Ok(Some(model))
}

/// The seed a fit shuffles with: a resumed fit shuffles as the run it continues did.
pub fn shuffle_seed(args: &Common, model: &Sequential) -> u64 {
    match args.resume {
        Some(_) => model.shuffle_seed(),
        None => args.seed,
    }
}

/// After training: the timing and memory report, the files asked for, and the last line
/// (printed and returned).
pub fn finish(
    args: &Common,
    model: &mut Sequential,
    history: &History,
    test: &Evaluation,
    train_seconds: f64,
) -> Result<String, String> {
    report_timing(history);
    save(args, model, history)?;
    let digest = model.weights_digest().map_err(|e| e.to_string())?;
    let last = format!(
        "test_loss={:.6} test_accuracy={:.6} train_seconds={:.3} weights_digest={digest}",
        test.loss,
        test.accuracy.unwrap_or(f64::NAN),
        train_seconds
    );
    println!("{last}");
    Ok(last)
}

/// The median seconds per epoch and the peak resident memory.
fn report_timing(history: &History) {
    let mut seconds = history.seconds.clone();
    seconds.sort_by(f64::total_cmp);
    if let Some(median) = seconds.get(seconds.len() / 2) {
        println!("seconds per epoch: median {median:.3}");
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0);
    }
}

/// Writes what `--save`, `--save-model`, `--export-onnx` and `--plot` ask for.
fn save(args: &Common, model: &mut Sequential, history: &History) -> Result<(), String> {
    if let Some(path) = &args.save {
        model.save_weights(path).map_err(|e| e.to_string())?;
        println!("weights saved to {}", path.display());
    }
    if let Some(path) = &args.save_model {
        model.save(path).map_err(|e| e.to_string())?;
        println!("model saved to {}", path.display());
    }
    if let Some(path) = &args.export_onnx {
        model.export_onnx(path).map_err(|e| e.to_string())?;
        println!("ONNX model written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, history)
            .map_err(|e| format!("{}: cannot draw the plot: {e}", path.display()))?;
        println!("plot saved to {}", path.display());
    }
    Ok(())
}

/// Peak resident set size of this process so far (`VmHWM` in `/proc/self/status`), on Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
