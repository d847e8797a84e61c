//! Leaves: inputs fed at run time, parameters and constants holding their values.

use super::Graph;
use crate::error::{GraphError, Result};
use crate::ops::Op;
use crate::shape::Shape;
use crate::{Element, NodeId};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

impl<F: Element> Graph<F> {
    /// Adds an input (placeholder) fed by name on every run. `None` marks a dynamic dimension,
    /// like Keras' batch dimension.
    ///
    /// # Errors
    /// [`GraphError::DuplicateName`] when the name is taken.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(784)])?;
    /// assert!(g.input("x", [1]).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn input(&mut self, name: &str, shape: impl Into<Shape>) -> Result<NodeId> {
        let name = self.scoped(name);
        let shape = shape.into();
        self.check_leaf(&name, &Op::Input, &shape)?;
        Ok(self.append(name, Op::Input, shape, &[], None))
    }

    /// Adds a trainable parameter with its initial value. Its shape is the value's shape.
    ///
    /// # Errors
    /// [`GraphError::DuplicateName`] when the name is taken.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::Array2::<f32>::zeros((3, 2)).into_dyn())?;
    /// assert_eq!(g.shape(w)?.to_string(), "[3, 2]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn parameter(&mut self, name: &str, value: ArrayD<F>) -> Result<NodeId> {
        let name = self.scoped(name);
        if let Some(shared) = self.shared_parameter(&name, value.shape())? {
            return Ok(shared);
        }
        let shape = Shape::fixed(value.shape());
        self.check_leaf(&name, &Op::Parameter, &shape)?;
        Ok(self.append(name, Op::Parameter, shape, &[], Some(value)))
    }

    /// Adds a constant tensor.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let c = g.constant(ndarray::arr1(&[1.0_f32, 2.0]).into_dyn());
    /// assert_eq!(g.shape(c)?.to_string(), "[2]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn constant(&mut self, value: ArrayD<F>) -> NodeId {
        let shape = Shape::fixed(value.shape());
        let name = self.auto_name("constant");
        // An array's shape is representable and an automatic name is free.
        self.append(name, Op::Constant, shape, &[], Some(value))
    }

    /// Adds a rank-0 constant.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f64>::new();
    /// let two = g.scalar(2.0);
    /// assert_eq!(g.value(two)?.sum(), 2.0);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn scalar(&mut self, value: f64) -> NodeId {
        self.constant(ndarray::arr0(F::of(value)).into_dyn())
    }

    /// The stored value of a parameter or constant.
    ///
    /// # Errors
    /// [`GraphError::WrongNodeKind`] for any other node.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32, 2.0]).into_dyn())?;
    /// assert_eq!(g.value(w)?.sum(), 3.0);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn value(&self, id: NodeId) -> Result<ArrayViewD<'_, F>> {
        let node = self.node(id)?;
        match self.values.get(id.index()).and_then(Option::as_ref) {
            Some(v) => Ok(v.view()),
            None => Err(GraphError::WrongNodeKind {
                node: node.name.clone(),
                expected: "parameter or constant",
                actual: node.op.name(),
            }),
        }
    }

    /// Mutable access to a parameter's value, for in-place updates by an optimizer.
    ///
    /// # Errors
    /// [`GraphError::WrongNodeKind`] unless `id` is a parameter.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32]).into_dyn())?;
    /// g.parameter_mut(w)?[[0]] = 5.0;
    /// assert_eq!(g.value(w)?[[0]], 5.0);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn parameter_mut(&mut self, id: NodeId) -> Result<ArrayViewMutD<'_, F>> {
        let node = self.node(id)?;
        if !matches!(node.op, Op::Parameter) {
            return Err(GraphError::WrongNodeKind {
                node: node.name.clone(),
                expected: "parameter",
                actual: node.op.name(),
            });
        }
        match self.values.get_mut(id.index()).and_then(Option::as_mut) {
            Some(v) => Ok(v.view_mut()),
            None => Err(GraphError::UnknownNode {
                graph: self.id,
                index: id.index(),
            }),
        }
    }

    /// Replaces a parameter's value with one of the same shape.
    ///
    /// # Errors
    /// [`GraphError::ValueShape`] on a shape change, [`GraphError::WrongNodeKind`] unless `id` is
    /// a parameter.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32]).into_dyn())?;
    /// g.set_parameter(w, ndarray::arr1(&[3.0_f32]).view().into_dyn())?;
    /// assert!(g.set_parameter(w, ndarray::arr1(&[1.0_f32, 2.0]).view().into_dyn()).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn set_parameter(&mut self, id: NodeId, value: ArrayViewD<'_, F>) -> Result<()> {
        let mut target = self.parameter_mut(id)?;
        if target.shape() != value.shape() {
            let expected = Shape::fixed(target.shape());
            return Err(GraphError::ValueShape {
                node: self.name(id)?.to_owned(),
                expected,
                actual: Shape::fixed(value.shape()),
            });
        }
        target.assign(&value);
        Ok(())
    }
}
