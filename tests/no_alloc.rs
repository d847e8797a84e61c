//! No heap allocation per training step after the first: a counting global allocator watches
//! the reference model's forward + backward plan (graph and autodiff crates directly). The
//! test counts; it does not time.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::compile;
use dendrite_test_support::reference::reference_training_graph;
use ndarray::{Array1, Array2};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by the current thread while counting is switched on, so that the
/// test harness's other threads do not disturb the count.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates every call to the system allocator unchanged; the bookkeeping touches only
// const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn a_training_step_allocates_nothing_after_the_first() {
    let (g, fetches) = reference_training_graph().unwrap();
    let mut plan = compile(&g, &fetches).unwrap();
    let big_x =
        Array2::from_shape_fn((128, 784), |(i, j)| ((i + j) % 255) as f32 / 255.0).into_dyn();
    let big_y = Array1::from_shape_fn(128, |i| (i % 10) as f32).into_dyn();
    let small_x =
        Array2::from_shape_fn((32, 784), |(i, j)| ((i * j) % 255) as f32 / 255.0).into_dyn();
    let small_y = Array1::from_shape_fn(32, |i| (i % 10) as f32).into_dyn();
    // First run at the largest batch sizes every buffer.
    plan.run(&g, &[("x", big_x.view()), ("y", big_y.view())])
        .unwrap();
    let mut losses = Vec::with_capacity(8);
    let count = allocations_during(|| {
        for (x, y) in [(&small_x, &small_y), (&big_x, &big_y), (&small_x, &small_y)] {
            let out = plan.run(&g, &[("x", x.view()), ("y", y.view())]).unwrap();
            losses.push(out.scalar(0).unwrap());
        }
    });
    assert_eq!(count, 0, "plan.run allocated {count} times in three steps");
    assert!(losses.iter().all(|l| l.is_finite()));
}

/// `y = x sin x` as a user-defined primitive, with its VJP rule built from primitives.
struct XSinX;

impl dendrite_graph::CustomOp<f32> for XSinX {
    fn name(&self) -> &'static str {
        "xsinx"
    }
    fn infer_shape(
        &self,
        operands: &[&dendrite_graph::Shape],
    ) -> Result<dendrite_graph::Shape, dendrite_graph::CustomOpError> {
        operands
            .first()
            .map(|x| (*x).clone())
            .ok_or_else(|| dendrite_graph::CustomOpError::new("expects one operand"))
    }
    fn forward(
        &self,
        xs: &[ndarray::ArrayViewD<'_, f32>],
        out: ndarray::ArrayViewMutD<'_, f32>,
    ) -> Result<(), dendrite_graph::CustomOpError> {
        ndarray::Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x * x.sin());
        Ok(())
    }
    fn vjp(
        &self,
        g: &mut dendrite_graph::Graph<f32>,
        xs: &[dendrite_graph::NodeId],
        _y: dendrite_graph::NodeId,
        y_bar: dendrite_graph::NodeId,
    ) -> dendrite_graph::Result<dendrite_graph::OperandGrads> {
        let (s, c) = (g.sin(xs[0])?, g.cos(xs[0])?);
        let xc = g.mul(xs[0], c)?;
        let d = g.add(s, xc)?;
        Ok(dendrite_graph::OperandGrads::from_slice(&[Some(
            g.mul(y_bar, d)?,
        )]))
    }
}

#[test]
fn a_step_through_a_custom_op_allocates_nothing_after_the_first() {
    let mut g = dendrite_graph::Graph::<f32>::new();
    let x = g.input("x", [None, Some(16)]).unwrap();
    let w = g
        .parameter("w", Array2::from_elem((16, 4), 0.1_f32).into_dyn())
        .unwrap();
    let h = g.matmul(x, w).unwrap();
    let y = g.custom(std::sync::Arc::new(XSinX), &[h]).unwrap();
    let loss = g.mean_all(y).unwrap();
    let dw = dendrite_autodiff::grad(&mut g, loss, &[w]).unwrap();
    let mut plan = compile(&g, &[loss, dw[0]]).unwrap();
    let big = Array2::from_elem((64, 16), 0.5_f32).into_dyn();
    let small = Array2::from_elem((8, 16), 0.25_f32).into_dyn();
    plan.run(&g, &[("x", big.view())]).unwrap();
    let count = allocations_during(|| {
        for x in [&small, &big, &small] {
            plan.run(&g, &[("x", x.view())]).unwrap();
        }
    });
    assert_eq!(count, 0, "plan.run allocated {count} times in three steps");
}
