//! Chapter 8: the execution plan.

use super::*;

// ANCHOR: plan_stats
#[test]
fn the_training_plan() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::compile;
    use ndarray::{Array1, Array2};

    let Reference {
        graph: g, fetches, ..
    } = reference_graph(0)?;
    let mut plan = compile(&g, &fetches)?;
    println!(
        "{} nodes in the graph, {} steps, {} buffers",
        g.node_count(),
        plan.step_count(),
        plan.buffer_count()
    );
    // Not every node of the graph is a step (leaves and unneeded nodes are not)...
    assert!(plan.step_count() < g.node_count());
    // ...and liveness lets many steps share few buffers.
    assert!(plan.buffer_count() * 2 < plan.step_count());

    let x = Array2::<f32>::from_elem((32, 784), 0.5).into_dyn();
    let y = Array1::<f32>::from_iter((0..32).map(|i| (i % 10) as f32)).into_dyn();
    assert_eq!(plan.buffer_capacity(), 0); // nothing allocated before the first run
    plan.run(&g, &[("inputs", x.view()), ("labels", y.view())])?;
    let after_first = plan.buffer_capacity();
    for _ in 0..10 {
        plan.run(&g, &[("inputs", x.view()), ("labels", y.view())])?;
    }
    assert_eq!(plan.buffer_capacity(), after_first); // later runs reuse the same memory
    Ok(())
}
// ANCHOR_END: plan_stats

/// The sentence of `docs/src/plan/index.md` that gives the training plan's counts gives the
/// counts the code has now, so the page cannot go stale.
#[test]
fn the_plan_page_gives_the_current_counts() -> TestResult {
    use dendrite_graph::compile;

    let Reference {
        graph: g, fetches, ..
    } = reference_graph(0)?;
    let plan = compile(&g, &fetches)?;
    let sentence = format!(
        "{} nodes become {} steps sharing {} buffers",
        g.node_count(),
        plan.step_count(),
        plan.buffer_count()
    );
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/plan/index.md"),
    )?;
    // The page wraps lines anywhere; compare with the line breaks made spaces.
    let page = page.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        page.contains(&sentence),
        "docs/src/plan/index.md should say \"{sentence}\" (the code's numbers now)"
    );
    Ok(())
}

// ANCHOR: chain_buffers
#[test]
fn a_chain_needs_two_buffers() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};

    let mut g = Graph::<f32>::new();
    let mut x = g.input("x", [1000])?;
    for _ in 0..10_000 {
        x = g.tanh(x)?;
    }
    let plan = compile(&g, &[x])?;
    assert_eq!(plan.step_count(), 10_000);
    // Each value dies as soon as the next one is computed: two buffers take turns.
    assert_eq!(plan.buffer_count(), 2);
    Ok(())
}
// ANCHOR_END: chain_buffers

// ANCHOR: simplify
#[test]
fn simplifying_the_training_graph() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::simplify::simplify;
    use dendrite_graph::compile;
    use ndarray::{Array1, Array2};

    let Reference {
        graph: mut g,
        fetches,
        ..
    } = reference_graph(0)?;
    let simplified = simplify(&mut g, &fetches)?; // new nodes; the old ones stay, unused
    let stats = simplified.stats;
    println!(
        "{} nodes before, {} after: {} folded, {} merged, {} identities",
        stats.before, stats.after, stats.folded, stats.merged, stats.identities
    );
    assert!(stats.after < stats.before);

    // The same values from fewer steps.
    let mut original = compile(&g, &fetches)?;
    let mut smaller = compile(&g, &simplified.outputs)?;
    assert!(smaller.step_count() < original.step_count());
    let x = Array2::<f32>::from_shape_fn((8, 784), |(i, j)| ((i * 7 + j) % 10) as f32 / 10.0);
    let y = Array1::<f32>::from_shape_fn(8, |i| (i % 10) as f32);
    let feeds = [
        ("inputs", x.view().into_dyn()),
        ("labels", y.view().into_dyn()),
    ];
    let a = original.run(&g, &feeds)?.to_vec()?;
    let b = smaller.run(&g, &feeds)?.to_vec()?;
    for (a, b) in a.iter().zip(&b) {
        for (u, v) in a.iter().zip(b.iter()) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
    Ok(())
}
// ANCHOR_END: simplify

/// Every `{{#include file:anchor}}` of the book names a file that exists and an anchor that
/// the file defines. (mdBook includes nothing, silently, for a missing anchor.)
#[test]
fn book_includes_resolve() -> TestResult {
    use std::path::{Path, PathBuf};

    fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                markdown_files(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
        Ok(())
    }

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src");
    let mut files = Vec::new();
    markdown_files(&src, &mut files)?;
    let mut problems = Vec::new();
    let mut includes = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("{{#include ") {
            let escaped = rest[..at].ends_with('\\');
            let after = &rest[at + "{{#include ".len()..];
            let Some(end) = after.find("}}") else { break };
            rest = &after[end..];
            if escaped {
                continue;
            }
            includes += 1;
            let target = after[..end].trim();
            let (path, anchor) = match target.rsplit_once(':') {
                Some((p, a)) if !a.chars().all(|c| c.is_ascii_digit()) => (p, Some(a)),
                _ => (target, None),
            };
            let full = file.parent().unwrap_or(&src).join(path);
            let Ok(content) = std::fs::read_to_string(&full) else {
                problems.push(format!("{}: no file {}", file.display(), full.display()));
                continue;
            };
            if let Some(anchor) = anchor {
                let has = |marker: &str| {
                    content
                        .lines()
                        .any(|l| l.trim() == format!("// {marker}: {anchor}"))
                };
                if !has("ANCHOR") || !has("ANCHOR_END") {
                    problems.push(format!(
                        "{}: no anchor `{anchor}` in {path}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(includes > 50, "only {includes} includes found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
