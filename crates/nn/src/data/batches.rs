//! Epoch orders and mini-batches of sample indices.
//!
//! Batching works on indices only: an [`EpochOrder`] holds one permutation of `0..n` and
//! reshuffles it in place each epoch, [`Batches`] cuts it into `&[usize]` slices, and
//! [`Dataset::write_batch`](super::Dataset::write_batch) turns a slice into floats in a
//! reusable buffer. Nothing is copied or allocated per epoch or per batch.

use std::iter::FusedIterator;
use std::path::Path;
use std::slice::Chunks;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::{DataError, IN_MEMORY};
use super::limit::{check_bytes, try_vec};

/// The generator for `(seed, epoch)`: the seed picks the ChaCha key, the epoch its stream, so
/// each epoch's order is independent of the others and reproducible on its own.
fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    rng
}

/// Fisher-Yates, written out so the order depends only on the generator's output (not on how
/// a library version happens to implement `shuffle`).
pub(crate) fn fisher_yates<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.gen_range(0..=i);
        items.swap(i, j);
    }
}

/// A permutation of `0..n` for epoch `epoch` of a run seeded with `seed`: the same arguments
/// always give the same order. Allocates; in a loop prefer [`EpochOrder`], which reuses its
/// buffer.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::shuffled_indices;
///
/// let a = shuffled_indices(10, 7, 0)?;
/// assert_eq!(a, shuffled_indices(10, 7, 0)?);
/// assert_ne!(a, shuffled_indices(10, 7, 1)?);
/// let mut sorted = a.clone();
/// sorted.sort_unstable();
/// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
///
/// # Errors
///
/// As [`EpochOrder::new`].
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Result<Vec<usize>, DataError> {
    let mut order = EpochOrder::new(n, seed)?;
    order.shuffle(epoch);
    Ok(order.indices)
}

/// The order in which one epoch visits the samples, kept in a buffer that is reused across
/// epochs.
///
/// [`EpochOrder::shuffle`] resets the buffer to `0..n` and shuffles it with a ChaCha8 generator
/// seeded from `(seed, epoch)`, so epoch `k`'s order does not depend on which epochs ran before
/// (a resumed run sees the same orders).
///
/// # Example
///
/// ```
/// use dendrite_nn::data::EpochOrder;
///
/// let mut order = EpochOrder::new(10, 42)?;
/// for epoch in 0..3 {
///     order.shuffle(epoch);
///     let sizes: Vec<usize> = order.batches(4)?.map(<[usize]>::len).collect();
///     assert_eq!(sizes, [4, 4, 2]);
/// }
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EpochOrder {
    seed: u64,
    indices: Vec<usize>,
}

impl EpochOrder {
    /// An order over `0..n`, initially sequential.
    ///
    /// # Errors
    ///
    /// [`DataError::TooLarge`] if `n` indices exceed the per-tensor limit
    /// ([`dendrite_graph::limits::max_tensor_bytes`]), [`DataError::AllocationFailed`] if the
    /// allocator refuses them.
    ///
    /// ```
    /// use dendrite_nn::data::{DataError, EpochOrder};
    ///
    /// assert_eq!(EpochOrder::new(3, 0)?.indices(), [0, 1, 2]);
    /// assert!(matches!(EpochOrder::new(usize::MAX, 0), Err(DataError::TooLarge { .. })));
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn new(n: usize, seed: u64) -> Result<Self, DataError> {
        let memory = Path::new(IN_MEMORY);
        let bytes = (n as u64).checked_mul(std::mem::size_of::<usize>() as u64);
        check_bytes(memory, "the epoch order", bytes)?;
        let mut indices = try_vec(memory, "the epoch order", n)?;
        indices.extend(0..n);
        Ok(Self { seed, indices })
    }

    /// The seed given to [`EpochOrder::new`].
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of indices (samples per epoch).
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The current order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Makes the order the permutation for `epoch` and returns it. O(n), no allocation.
    pub fn shuffle(&mut self, epoch: u64) -> &[usize] {
        self.sequential();
        fisher_yates(&mut self.indices, &mut epoch_rng(self.seed, epoch));
        &self.indices
    }

    /// Makes the order `0, 1, ..., n - 1` (for evaluation) and returns it.
    pub fn sequential(&mut self) -> &[usize] {
        for (i, slot) in self.indices.iter_mut().enumerate() {
            *slot = i;
        }
        &self.indices
    }

    /// The current order cut into batches of `batch_size` (the last may be shorter).
    ///
    /// # Errors
    ///
    /// [`DataError::ZeroBatchSize`] if `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> Result<Batches<'_>, DataError> {
        batches(&self.indices, batch_size)
    }
}

/// Iterator over consecutive slices of `batch_size` indices; the last slice holds the
/// remainder and may be shorter. Made by [`batches`] or [`EpochOrder::batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    chunks: Chunks<'a, usize>,
}

impl<'a> Iterator for Batches<'a> {
    type Item = &'a [usize];

    fn next(&mut self) -> Option<Self::Item> {
        self.chunks.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Batches<'_> {}
impl FusedIterator for Batches<'_> {}

/// Cuts `indices` into batches of `batch_size` (the last may be shorter). `len()` on the
/// result is the number of batches, `indices.len().div_ceil(batch_size)`.
///
/// # Errors
///
/// [`DataError::ZeroBatchSize`] if `batch_size` is 0.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::batches;
///
/// let order: Vec<usize> = (0..5).collect();
/// let all: Vec<&[usize]> = batches(&order, 2)?.collect();
/// assert_eq!(all, [&[0, 1][..], &[2, 3], &[4]]);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn batches(indices: &[usize], batch_size: usize) -> Result<Batches<'_>, DataError> {
    if batch_size == 0 {
        return Err(DataError::ZeroBatchSize);
    }
    Ok(Batches {
        chunks: indices.chunks(batch_size),
    })
}
