//! Every code listing of the book in `docs/`, compiled and run by `cargo test --test book`.
//!
//! One module per chapter (or group of chapters), in the order of the book; the helpers every
//! chapter uses are here. The book pulls the regions between `// ANCHOR: name` and
//! `// ANCHOR_END: name` out of the chapter files with
//! `{{#include ../../tests/book/CHAPTER.rs:name}}`, so what a reader sees is what these tests
//! run. Keep each listing readable on its own: its `use` lines go inside it.
// Errors carry structured fields and are cold (the workspace relaxes result_large_err too).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

/// The backward pass in numbers: the reference model's graph at toy size.
mod backward;
/// Chapter 2: the chain rule, reverse and forward mode.
mod chain_rule;
/// Chapter 5: gradient checking.
mod checking;
/// Convolution, pooling and Dropout.
mod convolution;
/// Exercises (`#[ignore]`d: the reader makes them pass) and their solutions (run by every test
/// run).
mod exercises;
/// Functional models and batch normalization.
mod functional;
/// Chapter 1: computational graphs.
mod graphs;
/// Initialization, vanishing and exploding gradients.
mod initialization;
/// Chapter 7: MNIST, and chapter 8, the execution plan (a child module: it runs chapter 7's
/// reference graph).
mod mnist;
/// Chapter 6: activations, losses, optimizers.
mod nn;
/// Normalization and embeddings.
mod normalization;
/// Overfitting, validation and regularization.
mod overfitting;
/// Chapter 3: primitives and their derivatives.
mod primitives;
/// Chapter 4: the reverse sweep, gradients as graph nodes.
mod reverse;
/// A tour from scratch: a scalar reverse-mode engine, a neuron, a loss, a step.
mod tour;

/// Compares a listing's printed output with the copy the book shows (`docs/src/output/NAME.txt`),
/// so that the numbers on the page are the numbers the code prints. With `DENDRITE_BLESS=1`
/// the file is written instead.
fn shows(name: &str, printed: &str) -> TestResult {
    matches_file(&format!("docs/src/output/{name}.txt"), printed)
}

/// Compares `made` with the file at `path` (relative to the repository), or writes it there
/// when `DENDRITE_BLESS` is set: for outputs and figures that the book shows.
fn matches_file(path: &str, made: &str) -> TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("DENDRITE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, made)?;
        return Ok(());
    }
    let shown = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (DENDRITE_BLESS=1 writes it)", path.display()))?;
    assert_eq!(
        shown,
        made,
        "{} is not what the listing makes now (DENDRITE_BLESS=1 rewrites it)",
        path.display()
    );
    Ok(())
}
