#!/usr/bin/env bash
# Regenerates every figure of the book (docs/src/figures):
#   - forward.{dot,svg} and gradient.{dot,svg}: the reference model's graphs, drawn from the
#     graphs themselves by examples/figures.rs (the SVGs need Graphviz's `dot`);
#   - mnist_curves.svg: loss and accuracy per epoch, drawn by examples/mnist.rs while it trains.
#     It uses the MNIST files in $DENDRITE_MNIST_DIR (default ../shared/data/mnist when that
#     directory exists), else the synthetic digits, which the example says on its first line.
# Run from anywhere; needs cargo, and `dot` for the SVGs (apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")/.."

figures=docs/src/figures
mkdir -p "$figures"

if ! command -v dot >/dev/null 2>&1; then
  echo "note: Graphviz \`dot\` not found; writing DOT files only" >&2
fi
cargo run --quiet --example figures -- "$figures"

if [ -z "${DENDRITE_MNIST_DIR:-}" ] && [ -d ../shared/data/mnist ]; then
  export DENDRITE_MNIST_DIR="$(cd ../shared/data/mnist && pwd)"
fi
cargo run --quiet --release --example mnist -- --plot "$figures/mnist_curves.svg"

echo "figures in $figures:"
ls -l "$figures"
