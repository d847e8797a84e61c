//! Draws the book's graph figures from the graphs themselves: the reference MNIST model's
//! forward graph and its gradient graph, as Graphviz DOT files, rendered to SVG when the `dot`
//! program is installed.
//!
//! ```text
//! cargo run --example figures                 # writes docs/src/figures/{forward,gradient}.{dot,svg}
//! cargo run --example figures -- OUT_DIR      # somewhere else
//! ```
//!
//! The model is built with the graph and autodiff crates directly (no nn crate), exactly as
//! the book's "Training by hand" chapter builds it: input `[?, 784]`, Dense 32 with ReLU,
//! Dense 10, and the sparse categorical cross-entropy computed from the logits through
//! `log_softmax`. Like the book's listing it builds no softmax: the probabilities are not
//! needed for training, so the figure does not show a branch that the listing lacks.

// Errors carry structured fields and are cold, as the workspace lints say.
#![allow(clippy::result_large_err)]

use dendrite_autodiff::grad;
use dendrite_graph::{to_dot, Graph, NodeId};
use ndarray::{Array1, Array2};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The graph, the loss and the four parameter gradients.
type Model = (Graph<f32>, NodeId, Vec<NodeId>);

/// The reference model's graph: returns the graph, the loss, and the gradients of the loss
/// with respect to the four parameters.
fn reference_model() -> Result<Model, Box<dyn Error>> {
    let mut g = Graph::<f32>::new();
    let x = g.input("inputs", [None, Some(784)])?;
    let labels = g.input("labels", [None])?;
    // The values do not matter for a drawing; the shapes do.
    let w1 = g.parameter("dense_1/kernel", Array2::<f32>::zeros((784, 32)).into_dyn())?;
    let b1 = g.parameter("dense_1/bias", Array1::<f32>::zeros(32).into_dyn())?;
    let w2 = g.parameter("dense_2/kernel", Array2::<f32>::zeros((32, 10)).into_dyn())?;
    let b2 = g.parameter("dense_2/bias", Array1::<f32>::zeros(10).into_dyn())?;

    let hidden = g.with_scope("dense_1", |g| -> dendrite_graph::Result<NodeId> {
        let xw = g.matmul(x, w1)?;
        let z = g.add(xw, b1)?;
        g.relu(z)
    })?;
    let logits = g.with_scope("dense_2", |g| -> dendrite_graph::Result<NodeId> {
        let hw = g.matmul(hidden, w2)?;
        g.add(hw, b2)
    })?;
    let loss = g.with_scope("loss", |g| -> dendrite_graph::Result<NodeId> {
        let log_p = g.log_softmax(logits, 1)?;
        let target = g.one_hot(labels, 10)?;
        let picked = g.mul(target, log_p)?;
        let per_example = g.sum(picked, &[1])?;
        let mean = g.mean(per_example, &[0], false)?;
        g.neg(mean)
    })?;
    // Named `gradients/...`, so the drawing tells the derived nodes from the model's.
    let gradients = g.with_scope("gradients", |g| grad(g, loss, &[w1, b1, w2, b2]))?;
    Ok((g, loss, gradients))
}

/// Writes `name.dot` into `dir` and renders `name.svg` next to it if `dot` is available.
/// Returns whether the SVG was rendered.
fn write_figure(dir: &Path, name: &str, dot: &str) -> Result<bool, Box<dyn Error>> {
    let dot_path = dir.join(format!("{name}.dot"));
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&dot_path, dot)?;
    println!("wrote {}", dot_path.display());
    match Command::new("dot")
        .arg("-Tsvg")
        .arg(&dot_path)
        .arg("-o")
        .arg(&svg_path)
        .status()
    {
        Ok(status) if status.success() => {
            println!("wrote {}", svg_path.display());
            Ok(true)
        }
        Ok(status) => Err(format!("dot failed on {} ({status})", dot_path.display()).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "`dot` (Graphviz) not found: {} not rendered",
                svg_path.display()
            );
            Ok(false)
        }
        Err(e) => Err(format!("cannot run dot: {e}").into()),
    }
}

/// Draws the book's graph figures (DOT, and SVG when Graphviz is installed).
#[derive(Debug, clap::Parser)]
#[command(name = "figures")]
struct Args {
    /// Where to write the figures (default: docs/src/figures)
    out_dir: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = <Args as clap::Parser>::parse();
    let dir = match args.out_dir {
        Some(dir) => dir,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/figures"),
    };
    std::fs::create_dir_all(&dir)?;

    let (g, loss, gradients) = reference_model()?;
    let forward = to_dot(&g, Some(&[loss]))?;
    let backward = to_dot(&g, Some(&gradients))?;
    write_figure(&dir, "forward", &forward)?;
    write_figure(&dir, "gradient", &backward)?;
    println!(
        "{} nodes in all; the forward graph ends at node #{}, the gradients add {}",
        g.node_count(),
        loss.index(),
        g.node_count() - loss.index() - 1
    );
    Ok(())
}
