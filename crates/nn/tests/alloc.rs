//! The training loop allocates nothing per step, on any thread: a counting allocator compares a
//! fit of 10 steps with a fit of 40 steps, with one thread and with the batch-writing thread
//! (issue 5's rule, checked by counting, not timing), for the reference model, for one with
//! every option a step can take (gradient clipping, regularizers, several metrics), for models
//! with a batch normalization (a separate training graph, state written back after each step)
//! and with a layer normalization, and for keras.io's MNIST convnet (whose second
//! convolution's products are the largest a step makes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    Activation, Adam, BatchLogs, BatchNormalization, Callback, Control, Dense, FitConfig,
    Initializer, LayerNormalization, Loss, Metric, Regularizer, Sequential, TerminateOnNaN,
};
use dendrite_test_support::reference::{keras_convnet_layers, reference_model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

// Counted on every thread, so the batch-writing thread's allocations count too. This file
// holds one test, so no other test allocates while it counts.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations made by one fit of one epoch over `samples` samples (batch 32).
fn fit_allocations(
    model: &mut Sequential,
    data: &dendrite_nn::data::Dataset,
    samples: usize,
    threads: usize,
) -> u64 {
    let slice = data.take(samples);
    let mut batches = 0;
    let before = allocations();
    let counter = BatchCounter(&mut batches);
    model
        .fit(
            &slice,
            FitConfig::default()
                .epochs(1)
                .batch_size(32)
                .verbosity(0)
                .threads(threads)
                .callback(counter)
                .callback(TerminateOnNaN),
        )
        .unwrap();
    let allocated = allocations() - before;
    assert_eq!(
        batches,
        samples.div_ceil(32),
        "on_batch_end ran once per step"
    );
    allocated
}

/// A callback that counts the steps without allocating.
struct BatchCounter<'a>(&'a mut usize);

impl Callback<f32> for BatchCounter<'_> {
    fn on_batch_end(&mut self, _logs: &BatchLogs) -> Control {
        *self.0 += 1;
        Control::Continue
    }
}

/// The same shape with clipping, regularizers, an initializer and several metrics.
fn with_options() -> Sequential {
    let mut model = Sequential::new();
    model.add(
        Dense::new(32)
            .input_dim(784)
            .activation(Activation::Relu)
            .kernel_initializer(Initializer::HeNormal)
            .kernel_regularizer(Regularizer::l1_l2(1e-5, 1e-4))
            .bias_regularizer(Regularizer::l2(1e-4)),
    );
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default().global_clipnorm(1.0),
            Loss::SparseCategoricalCrossentropy,
            &[
                Metric::Accuracy,
                Metric::SparseTopKCategoricalAccuracy { k: 3 },
            ],
        )
        .unwrap();
    model
}

/// Batch normalization: a training graph apart from the inference one, and moving
/// statistics written back after every step.
fn with_batch_norm() -> Sequential {
    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784));
    model.add(BatchNormalization::new());
    model.add(Activation::Relu);
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
}

/// The reference shape with a layer normalization between the two dense layers.
fn normalized() -> Sequential {
    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(LayerNormalization::new());
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
}

/// keras.io's "Simple MNIST convnet" (without Dropout).
fn convnet() -> Sequential {
    let mut m = keras_convnet_layers(1);
    m.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn training_steps_do_not_allocate() {
    let flat = synthetic_digits(32 * 40, 0).unwrap();
    let images = flat.clone().with_sample_shape([28, 28, 1]).unwrap();
    for (name, mut model, data) in [
        ("reference", reference_model(0).unwrap(), &flat),
        ("with options", with_options(), &flat),
        ("with batch normalization", with_batch_norm(), &flat),
        ("layer normalization", normalized(), &flat),
        ("convnet", convnet(), &images),
    ] {
        // Warm up: the plan's buffers reach their size on the first full batch.
        // One thread, and two: the second gathers each batch's bytes ahead of the step.
        for threads in [1, 2] {
            fit_allocations(&mut model, data, 64, threads);
            let short = fit_allocations(&mut model, data, 32 * 10, threads);
            let long = fit_allocations(&mut model, data, 32 * 40, threads);
            println!("{name}, threads {threads}: allocations: 10 steps {short}, 40 steps {long}");
            assert_eq!(
                long,
                short,
                "{name}: {} allocations per step with {threads} threads",
                (long as f64 - short as f64) / 30.0
            );
        }
    }
}
