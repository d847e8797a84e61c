//! Node names: scopes, automatic names, renames.

use super::Graph;
use crate::error::{GraphError, Result};
use crate::{Element, NodeId};
use petgraph::graph::NodeIndex;

impl<F: Element> Graph<F> {
    /// Runs `build` with `scope` pushed onto the name scope, so nodes it adds are named
    /// `scope/op` (`dense_1/matmul`). Scopes nest.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.with_scope("layer", |g| g.exp(x))?;
    /// assert_eq!(g.name(y)?, "layer/exp");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_scope<T>(&mut self, scope: &str, build: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(scope.to_owned());
        let out = build(self);
        self.scopes.pop();
        out
    }

    /// Gives a node a new, unique name.
    ///
    /// # Errors
    /// [`GraphError::DuplicateName`] when another node has that name.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.exp(x)?;
    /// g.rename(y, "activation")?;
    /// assert_eq!(g.node_by_name("activation"), Some(y));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn rename(&mut self, id: NodeId, name: &str) -> Result<()> {
        self.check(id)?;
        if let Some(&other) = self.names.get(name) {
            if other == id {
                return Ok(());
            }
            return Err(GraphError::DuplicateName {
                name: name.to_owned(),
            });
        }
        let node = &mut self.dag[NodeIndex::new(id.index())];
        self.names.remove(&node.name);
        node.name = name.to_owned();
        self.names.insert(name.to_owned(), id);
        self.name_generation += 1;
        Ok(())
    }

    /// How many renames the graph has seen: plans compare it with the count they compiled at.
    pub(crate) fn name_generation(&self) -> u64 {
        self.name_generation
    }

    pub(super) fn scoped(&self, name: &str) -> String {
        if self.scopes.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{}", self.scopes.join("/"), name)
        }
    }

    /// A fresh name `scope/op`, or `scope/op_k` when taken.
    pub(crate) fn auto_name(&mut self, op: &str) -> String {
        let base = self.scoped(op);
        if !self.names.contains_key(&base) {
            return base;
        }
        let counter = self.next_suffix.entry(base.clone()).or_insert(1);
        loop {
            let candidate = format!("{base}_{counter}");
            *counter += 1;
            if !self.names.contains_key(&candidate) {
                return candidate;
            }
        }
    }
}
