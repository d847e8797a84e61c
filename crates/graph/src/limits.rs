//! The per-tensor size limit, and the one way the workspace allocates a tensor sized by input.
//!
//! A shape is user input: `broadcast_to(x, [1 << 21, 1 << 20])` or `one_hot(labels, 1 << 40)`
//! is a legal graph whose values cannot exist. Asking the allocator for them would abort the
//! process (`memory allocation of N bytes failed`), or, with overcommit, succeed and then get
//! the process killed when the pages are touched. So every buffer whose size comes from a
//! shape goes through one fallible growth path (behind [`zeros`] and a plan's buffers), which
//!
//! 1. computes the byte count with checked arithmetic,
//! 2. refuses it when it exceeds [`max_tensor_bytes`] ([`GraphError::TensorTooLarge`]),
//! 3. asks for the memory with `try_reserve`, turning a refusal into
//!    [`GraphError::AllocationFailed`] instead of an abort.
//!
//! The limit is per tensor, process-wide, and defaults to [`DEFAULT_MAX_TENSOR_BYTES`] (4 GiB);
//! a program that needs bigger tensors raises it with [`set_max_tensor_bytes`].
//!
//! ```
//! use dendrite_graph::{compile, limits, Graph, GraphError};
//! let mut g = Graph::<f32>::new();
//! let x = g.input("x", dendrite_graph::Shape::scalar())?;
//! let huge = g.broadcast_to(x, [1 << 21, 1 << 20])?; // 8 TiB of f32: a legal node
//! let mut plan = compile(&g, &[huge])?;
//! let one = ndarray::arr0(1.0_f32).into_dyn();
//! let err = plan.run(&g, &[("x", one.view())]).unwrap_err();
//! assert!(matches!(err, GraphError::TensorTooLarge { .. }));
//! assert!(limits::max_tensor_bytes() >= 1 << 30);
//! # Ok::<(), GraphError>(())
//! ```

use crate::error::{GraphError, Result};
use crate::shape::Shape;
use crate::Element;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default per-tensor limit: 4 GiB.
pub const DEFAULT_MAX_TENSOR_BYTES: usize = 1 << 32;

static MAX_TENSOR_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_TENSOR_BYTES);

/// The largest tensor, in bytes, that a plan run, a layer's weights or a loader may allocate.
///
/// ```
/// assert!(dendrite_graph::limits::max_tensor_bytes() > 0);
/// ```
pub fn max_tensor_bytes() -> usize {
    MAX_TENSOR_BYTES.load(Ordering::Relaxed)
}

/// Sets the per-tensor limit for the whole process (for example before building a very wide
/// layer) and returns the previous one.
///
/// ```
/// use dendrite_graph::limits;
/// let previous = limits::set_max_tensor_bytes(8 << 30);
/// assert_eq!(limits::max_tensor_bytes(), 8 << 30);
/// limits::set_max_tensor_bytes(previous);
/// ```
pub fn set_max_tensor_bytes(bytes: usize) -> usize {
    MAX_TENSOR_BYTES.swap(bytes, Ordering::Relaxed)
}

/// Checks that a tensor of `dims` elements of `F` fits the limit and returns its element
/// count. `op` and `node` name what asked, for the error.
///
/// # Errors
/// [`GraphError::TensorTooLarge`] when the byte count overflows or exceeds the limit.
///
/// ```
/// use dendrite_graph::limits;
/// assert_eq!(limits::check_size::<f32>("demo", "t", &[3, 4])?, 12);
/// assert!(limits::check_size::<f32>("demo", "t", &[usize::MAX, 2]).is_err());
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
pub fn check_size<F: Element>(op: &'static str, node: &str, dims: &[usize]) -> Result<usize> {
    let elements = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let bytes = elements.and_then(|n| n.checked_mul(std::mem::size_of::<F>()));
    let limit = max_tensor_bytes();
    match (elements, bytes) {
        (Some(n), Some(b)) if b <= limit => Ok(n),
        _ => Err(GraphError::TensorTooLarge {
            op,
            node: node.to_owned(),
            shape: Shape::fixed(dims),
            bytes,
            limit,
        }),
    }
}

/// Grows `data` to hold at least `len` elements (filling new ones with zero), without ever
/// aborting: the length is checked against the limit, then reserved fallibly.
///
/// # Errors
/// [`GraphError::TensorTooLarge`], or [`GraphError::AllocationFailed`] when the allocator
/// refuses.
pub(crate) fn grow_to<F: Element>(
    data: &mut Vec<F>,
    len: usize,
    op: &'static str,
    node: &str,
    dims: &[usize],
) -> Result<()> {
    if data.len() >= len {
        return Ok(());
    }
    check_size::<F>(op, node, dims)?;
    data.try_reserve_exact(len - data.len())
        .map_err(|_| GraphError::AllocationFailed {
            op,
            node: node.to_owned(),
            bytes: len.saturating_mul(std::mem::size_of::<F>()),
        })?;
    data.resize(len, F::zero());
    Ok(())
}

/// A zero-filled array of shape `dims`, allocated within the limit and fallibly.
///
/// # Errors
/// [`GraphError::TensorTooLarge`] or [`GraphError::AllocationFailed`], naming `op` and `node`.
///
/// ```
/// use dendrite_graph::limits;
/// let z = limits::zeros::<f64>("demo", "z", &[2, 3])?;
/// assert_eq!(z.shape(), &[2, 3]);
/// assert!(limits::zeros::<f64>("demo", "z", &[1 << 40, 1 << 40]).is_err());
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
pub fn zeros<F: Element>(
    op: &'static str,
    node: &str,
    dims: &[usize],
) -> Result<ndarray::ArrayD<F>> {
    let n = check_size::<F>(op, node, dims)?;
    let mut data = Vec::new();
    grow_to(&mut data, n, op, node, dims)?;
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), data).map_err(|_| GraphError::Internal {
        op,
        node: node.to_owned(),
        what: "a buffer disagrees with its shape",
    })
}
