//! No heap allocation per training step after the first: a counting global allocator watches
//! the reference model's forward + backward plan (graph and autodiff crates directly). The
//! test counts; it does not time.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::compile;

#[path = "shared/reference_graph.rs"]
mod reference_graph;
use ndarray::{Array1, Array2};
use reference_graph::reference_training_graph;
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
