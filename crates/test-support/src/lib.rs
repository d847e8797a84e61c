//! Helpers shared by the tests, benches and examples of the Dendrite workspace (a dev-only
//! crate, never published), so that each exists once instead of being included by path:
//!
//! - [`reference`](mod@reference): the reference model (Dense 784->32 relu, Dense 32->10, softmax
//!   cross-entropy), as a training graph and as a [`dendrite_nn::Sequential`], so that the
//!   benches, the profiling example and the allocation tests measure the same model;
//! - [`idx`]: hand-built IDX files, gzip-compressed or not;
//! - [`alloc`]: a global allocator that records the largest single allocation;
//! - [`http`]: a loopback HTTP/1.1 server with chosen misbehaviours, for the download tests;
//! - [`scratch`]: a temporary directory for a test's files, removed when the test ends.

// Test code: a broken setup aborts the test that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod alloc;
pub mod http;
pub mod idx;
pub mod reference;
pub mod scratch;
