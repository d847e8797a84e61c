//! All or nothing: a builder that adds several nodes and then fails leaves no trace.

use super::Graph;
use crate::Element;
use petgraph::graph::NodeIndex;

impl<F: Element> Graph<F> {
    /// Runs `build`; when it fails, removes every node it added, so the graph is as it was
    /// before. Composites (relu, softmax, the losses of the nn crate, a gradient) build several
    /// nodes and can be refused part way, by a foreign handle, say: wrapped in this, a refusal
    /// leaves no orphan constant behind. Renames made inside `build` are kept. A handle to a
    /// removed node that escapes `build` is refused from then on ([`GraphError::StaleNode`]),
    /// even after its index is given to a new node.
    ///
    /// [`GraphError::StaleNode`]: crate::GraphError::StaleNode
    ///
    /// # Errors
    /// Whatever `build` returns.
    ///
    /// ```
    /// use dendrite_graph::{Graph, GraphError};
    /// let mut g = Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let before = g.node_count();
    /// let refused: Result<_, GraphError> = g.atomically(|g| {
    ///     let two = g.scalar(2.0);
    ///     g.sum(two, &[0]) // a scalar has no axis 0
    /// });
    /// assert!(refused.is_err());
    /// assert_eq!(g.node_count(), before);
    /// # let _ = x;
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn atomically<T, E>(
        &mut self,
        build: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let mark = self.node_count();
        let result = build(self);
        if result.is_err() {
            self.truncate(mark);
        }
        result
    }

    /// Removes the nodes from index `len` on (the newest first: the last node of a petgraph
    /// graph is removed without moving any other).
    fn truncate(&mut self, len: usize) {
        while self.dag.node_count() > len {
            let last = NodeIndex::new(self.dag.node_count() - 1);
            if let Some(node) = self.dag.remove_node(last) {
                self.names.remove(&node.name);
            }
            self.values.pop();
        }
    }
}
