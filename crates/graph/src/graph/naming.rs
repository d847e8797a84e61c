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

    /// Runs `build` so that [`Graph::parameter`] returns the parameter already named so (in
    /// the current scope) instead of refusing the name: building a layer a second time, in
    /// the same scope, then reads the first build's weights. The given initial value is
    /// dropped; a parameter that does not exist yet is created as usual.
    ///
    /// This is how one set of weights serves two forward graphs, e.g. a model's training
    /// graph (with dropout) and its inference graph (without).
    ///
    /// # Errors
    /// Whatever `build` returns; inside it, [`GraphError::DuplicateName`] when the name
    /// belongs to a node that is not a parameter, [`GraphError::InvalidShape`] when the
    /// existing parameter's shape is not the new value's.
    ///
    /// ```
    /// use ndarray::arr1;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.with_scope("dense", |g| g.parameter("w", arr1(&[1.0_f32, 2.0]).into_dyn()))?;
    /// let again = g.with_shared_parameters(|g| {
    ///     g.with_scope("dense", |g| g.parameter("w", arr1(&[0.0_f32, 0.0]).into_dyn()))
    /// })?;
    /// assert_eq!(again, w);
    /// assert_eq!(g.value(w)?.as_slice(), Some(&[1.0_f32, 2.0][..]));
    /// assert!(g.with_scope("dense", |g| g.parameter("w", arr1(&[0.0_f32]).into_dyn())).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_shared_parameters<T>(&mut self, build: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.sharing_parameters, true);
        let out = build(self);
        self.sharing_parameters = outer;
        out
    }

    /// The existing parameter `name` (already scoped) when parameters are shared and it has
    /// `shape`; `None` when a new parameter should be created.
    pub(super) fn shared_parameter(&self, name: &str, shape: &[usize]) -> Result<Option<NodeId>> {
        let Some(&id) = self.names.get(name).filter(|_| self.sharing_parameters) else {
            return Ok(None);
        };
        if !matches!(self.op(id)?, crate::ops::Op::Parameter) {
            return Err(GraphError::DuplicateName {
                name: name.to_owned(),
            });
        }
        let existing = self.shape(id)?;
        if *existing != crate::shape::Shape::fixed(shape) {
            return Err(GraphError::InvalidShape {
                op: "parameter",
                node: name.to_owned(),
                reason: format!("a shared parameter is reused with shape {shape:?}"),
                shape: existing.clone(),
            });
        }
        Ok(Some(id))
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
