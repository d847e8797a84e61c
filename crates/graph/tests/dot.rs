//! DOT export: names, ops and shapes; only the requested subgraph; slot labels; escaping; and a
//! render through Graphviz when `dot` is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{to_dot, Graph, NodeId};
use std::io::Write;
use std::process::{Command, Stdio};

/// A small model with an unrelated branch.
fn model() -> (Graph<f32>, NodeId, NodeId) {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)]).unwrap();
    let w = g
        .with_scope("dense_1", |g| {
            g.parameter("kernel", ndarray::ArrayD::zeros(ndarray::IxDyn(&[784, 32])))
        })
        .unwrap();
    let h = g.with_scope("dense_1", |g| g.matmul(x, w)).unwrap();
    let y = g.relu(h).unwrap();
    let side = g.input("side", [3]).unwrap();
    let unrelated = g.exp(side).unwrap();
    (g, y, unrelated)
}

/// The node lines (`nK [label=...]`) of a DOT string.
fn node_lines(dot: &str) -> Vec<&str> {
    dot.lines()
        .filter(|l| l.trim_start().starts_with('n') && l.contains("[label=") && !l.contains(" -> "))
        .collect()
}

fn edge_lines(dot: &str) -> Vec<&str> {
    dot.lines().filter(|l| l.contains(" -> ")).collect()
}

#[test]
fn dot_shows_names_ops_and_shapes() {
    let (g, y, _) = model();
    let dot = to_dot(&g, Some(&[y])).unwrap();
    assert!(dot.starts_with("digraph dendrite {\n"), "{dot}");
    assert!(dot.ends_with("}\n"));
    assert!(dot.contains("label=\"x\\ninput [?, 784]\""), "{dot}");
    assert!(
        dot.contains("label=\"dense_1/kernel\\nparameter [784, 32]\""),
        "{dot}"
    );
    assert!(
        dot.contains("label=\"dense_1/matmul\\nmatmul [?, 32]\""),
        "{dot}"
    );
    assert!(dot.contains("\\nselect [?, 32]\""), "{dot}");
    assert!(dot.contains("\\nconstant []\""), "{dot}");
    // Kinds are drawn differently.
    let x_line = node_lines(&dot)
        .into_iter()
        .find(|l| l.contains("\"x\\n"))
        .unwrap();
    assert!(x_line.contains("shape=ellipse"));
    let w_line = node_lines(&dot)
        .into_iter()
        .find(|l| l.contains("kernel"))
        .unwrap();
    assert!(w_line.contains("shape=box, style=filled"));
}

#[test]
fn dot_of_roots_keeps_only_their_dependencies() {
    let (g, y, unrelated) = model();
    let dot = to_dot(&g, Some(&[y])).unwrap();
    assert!(!dot.contains("side"), "{dot}");
    assert!(!dot.contains("\\nexp "), "{dot}");
    // x, kernel, matmul, and relu's constant, comparison and select.
    assert_eq!(node_lines(&dot).len(), 6, "{dot}");
    // matmul 2 + gt 2 + select 3.
    assert_eq!(edge_lines(&dot).len(), 7, "{dot}");
    // Every edge joins two nodes that are drawn.
    let ids: Vec<&str> = node_lines(&dot)
        .iter()
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    for e in edge_lines(&dot) {
        let mut parts = e.trim().trim_end_matches(';').split(" -> ");
        let s = parts.next().unwrap();
        let t = parts.next().unwrap().split(' ').next().unwrap();
        assert!(ids.contains(&s) && ids.contains(&t), "{e}");
    }
    // The other root alone, and both roots.
    let side = to_dot(&g, Some(&[unrelated])).unwrap();
    assert_eq!(node_lines(&side).len(), 2);
    assert!(side.contains("side\\ninput [3]") && !side.contains("matmul"));
    let both = to_dot(&g, Some(&[y, unrelated])).unwrap();
    assert_eq!(node_lines(&both).len(), 8);
    // No roots at all draws nothing; `None` draws everything.
    assert_eq!(node_lines(&to_dot(&g, Some(&[])).unwrap()).len(), 0);
    assert_eq!(node_lines(&to_dot(&g, None).unwrap()).len(), g.node_count());
}

#[test]
fn dot_labels_operand_slots_so_x_times_x_shows_two_edges() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let y = g.mul(x, x).unwrap();
    let z = g.neg(y).unwrap();
    let dot = to_dot(&g, Some(&[z])).unwrap();
    let (xi, yi, zi) = (x.index(), y.index(), z.index());
    assert!(
        dot.contains(&format!("n{xi} -> n{yi} [label=\"0\"")),
        "{dot}"
    );
    assert!(
        dot.contains(&format!("n{xi} -> n{yi} [label=\"1\"")),
        "{dot}"
    );
    // A single-operand edge has no label.
    assert!(dot.contains(&format!("n{yi} -> n{zi};")), "{dot}");
}

#[test]
fn dot_escapes_names() {
    let mut g = Graph::<f64>::new();
    let x = g.input("say \"hi\" \\ bye", [1]).unwrap();
    let dot = to_dot(&g, Some(&[x])).unwrap();
    assert!(
        dot.contains("label=\"say \\\"hi\\\" \\\\ bye\\ninput [1]\""),
        "{dot}"
    );
}

#[test]
fn dot_renders_with_graphviz_when_installed() {
    let (g, y, _) = model();
    let dot = to_dot(&g, Some(&[y])).unwrap();
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("graphviz `dot` is not installed; skipping the render check");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("dense_1/matmul"),
        "{svg}"
    );
}
