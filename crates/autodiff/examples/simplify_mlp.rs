//! Prints the node counts of the reference MLP's training graph (loss and the gradients of the
//! four parameters) before and after [`dendrite_autodiff::simplify`], and checks that both give
//! the same values on a random batch.
//!
//! The model: `x: [?, 784]`, labels `[?]` (class indices as f64); Dense 784→32 relu; Dense
//! 32→10; log-softmax; sparse categorical cross-entropy
//! `-mean_b Σ_c onehot(labels, 10)_bc · log_softmax(logits)_bc`.
//!
//! Run with `cargo run -p dendrite-autodiff --release --example simplify_mlp`.

use dendrite_autodiff::{grad, simplify, AutodiffError};
use dendrite_graph::{compile, Graph, NodeId};
use ndarray::{Array1, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Adds the MLP and its loss; returns the loss and the parameters `[W1, b1, W2, b2]`.
fn mlp(g: &mut Graph<f64>, rng: &mut ChaCha8Rng) -> Result<(NodeId, Vec<NodeId>), AutodiffError> {
    let mut init = |shape: &[usize], scale: f64| {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.gen_range(-scale..scale))
    };
    let x = g.input("x", [None, Some(784)])?;
    let labels = g.input("labels", [None])?;
    let w1 = g.parameter("W1", init(&[784, 32], 0.05))?;
    let b1 = g.parameter("b1", init(&[32], 0.1))?;
    let w2 = g.parameter("W2", init(&[32, 10], 0.3))?;
    let b2 = g.parameter("b2", init(&[10], 0.1))?;
    let h = g.matmul(x, w1)?;
    let h = g.add(h, b1)?;
    let h = g.relu(h)?;
    let logits = g.matmul(h, w2)?;
    let logits = g.add(logits, b2)?;
    let log_p = g.log_softmax(logits, 1)?;
    let targets = g.one_hot(labels, 10)?;
    let picked = g.mul(targets, log_p)?;
    let per_example = g.sum(picked, &[1])?;
    let mean = g.mean(per_example, &[0], false)?;
    let loss = g.neg(mean)?;
    Ok((loss, vec![w1, b1, w2, b2]))
}

fn main() -> Result<(), AutodiffError> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut g = Graph::<f64>::new();
    let (loss, params) = mlp(&mut g, &mut rng)?;
    let grads = grad(&mut g, loss, &params)?;
    let fetches: Vec<NodeId> = std::iter::once(loss).chain(grads).collect();
    let simple = simplify(&mut g, &fetches)?;
    let s = simple.stats;
    println!("MLP training graph (loss + 4 gradients)");
    println!("  nodes before simplify: {}", s.before);
    println!("  nodes after simplify:  {}", s.after);
    println!(
        "  folded {}, merged {}, identities {}",
        s.folded, s.merged, s.identities
    );

    let batch = 16;
    let xv = ArrayD::from_shape_simple_fn(IxDyn(&[batch, 784]), || rng.gen_range(0.0..1.0));
    let yv = Array1::from_shape_simple_fn(batch, || f64::from(rng.gen_range(0u8..10))).into_dyn();
    let feeds = [("x", xv.view()), ("labels", yv.view())];
    let before = compile(&g, &fetches)?.run(&g, &feeds)?.to_vec()?;
    let after = compile(&g, &simple.outputs)?.run(&g, &feeds)?.to_vec()?;
    let worst = before
        .iter()
        .zip(&after)
        .flat_map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
        })
        .fold(0.0_f64, f64::max);
    println!(
        "  loss {:.6}, largest relative difference after simplify: {worst:.1e}",
        before[0].sum()
    );
    Ok(())
}
