//! Gathering the next batch's bytes on a second thread while the current one trains.
//!
//! Writing a shuffled MNIST batch means fetching its images from all over 47 MB of pixels,
//! mostly from main memory with a TLB miss per image, then converting them to floats. The
//! fetching is most of it: about 25 µs of a 200 µs step at batch 128 (reference model, 2-core
//! Zen 2). Nothing in a step depends on the *next* batch, so a writer thread copies the next
//! batch's image bytes into one of two staging buffers while the training thread runs the step,
//! and the training thread converts the staged bytes itself (one sequential pass, a few µs).
//!
//! Why this split, measured on that machine: reading lines another core wrote is about as fast
//! as reading one's own L2 when it streams (784 KB: 14 µs either way), but *storing* to lines
//! the other core holds is not (100 KB: 12 µs instead of 3.5). A writer that produced the float
//! batch itself stored 400 KB per step into lines the step had just read and ran 18x slower, and
//! the step's products, reading the floats across cores tile by tile, 1.3x slower: no gain at
//! all. Staging bytes moves 4x less data across, read once in order, and the training thread
//! stores only to its own lines. (Splitting the matrix products between cores failed for the
//! same reason, see the graph crate's `gemm` module.)
//!
//! Hand-offs go through two one-slot channels, polled (see [`recv`]) so that neither side
//! pays a futex wake-up while steps keep coming, and nothing is allocated per step.

use crate::data::DataError;
use crate::error::{NnError, Result};
use std::sync::mpsc::{sync_channel, Receiver, RecvError, TryRecvError};
use std::time::{Duration, Instant};

/// How long a side polls an empty channel before it starts sleeping between polls. Longer than
/// any training step of a small model, so neither thread sleeps during an epoch; short enough
/// that an idle writer stops burning its core almost at once.
const SPIN_FOR: Duration = Duration::from_millis(2);

/// The sleep between polls after [`SPIN_FOR`]: by then steps take milliseconds, so waking up to
/// this much late costs a few percent at most.
const NAP: Duration = Duration::from_micros(100);

/// Receives from `rx`, polling for up to [`SPIN_FOR`], then polling with naps. Never blocks on
/// the channel itself: a blocking receive registers a waker, which allocates, and training
/// steps do not allocate.
fn recv<T>(rx: &Receiver<T>) -> std::result::Result<T, RecvError> {
    let start = Instant::now();
    let mut polls = 0_u32;
    let mut napping = false;
    loop {
        match rx.try_recv() {
            Ok(value) => return Ok(value),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {}
        }
        if napping {
            std::thread::sleep(NAP);
            continue;
        }
        polls = polls.wrapping_add(1);
        napping = polls % 64 == 0 && start.elapsed() > SPIN_FOR;
        std::hint::spin_loop();
    }
}

/// Runs `step` on every batch of `batches` in order, each batch's samples gathered from
/// `pixels` (`features` bytes per sample) into one of `front` and `back` by a writer thread one
/// step ahead. `step` gets the step number (from 0), the staged bytes and the batch's indices.
/// Stops at the first error, from gathering or from `step`; `epoch` only names the epoch in an
/// error.
pub(crate) fn pipelined<'d, 'b, S>(
    pixels: &'d [u8],
    features: usize,
    batches: impl Iterator<Item = &'d [usize]>,
    front: &'b mut Vec<u8>,
    back: &'b mut Vec<u8>,
    epoch: usize,
    mut step: S,
) -> Result<()>
where
    S: FnMut(usize, &[u8], &[usize]) -> Result<()>,
{
    type Job<'b, 'd> = (&'b mut Vec<u8>, &'d [usize]);
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = sync_channel::<Job<'b, 'd>>(1);
        let (done_tx, done_rx) = sync_channel::<(Job<'b, 'd>, Result<()>)>(1);
        let spawned = std::thread::Builder::new()
            .name("dendrite-batch-writer".into())
            .spawn_scoped(scope, move || {
                while let Ok((staged, indices)) = recv(&job_rx) {
                    let gathered = gather(pixels, features, indices, staged);
                    if done_tx.send(((staged, indices), gathered)).is_err() {
                        break;
                    }
                }
            });
        let Ok(writer) = spawned else {
            // No thread to be had (a resource limit): gather on this thread instead.
            for (s, indices) in batches.enumerate() {
                gather(pixels, features, indices, front)?;
                step(s, front, indices)?;
            }
            return Ok(());
        };
        let run = || -> Result<()> {
            let stopped = || NnError::BatchWriterStopped { epoch };
            let mut batches = batches;
            let Some(first) = batches.next() else {
                return Ok(());
            };
            job_tx.send((front, first)).map_err(|_| stopped())?;
            let mut spare = Some(back);
            for s in 0.. {
                let ((current, indices), gathered) = recv(&done_rx).map_err(|_| stopped())?;
                gathered?;
                let next = batches.next();
                if let (Some(next), Some(buffer)) = (next, spare.take()) {
                    job_tx.send((buffer, next)).map_err(|_| stopped())?;
                }
                step(s, current, indices)?;
                if next.is_none() {
                    break;
                }
                spare = Some(current);
            }
            Ok(())
        };
        let result = run();
        // Closing the job channel ends the writer's loop; joining it here (rather than letting
        // the scope do it) turns a panic on that thread into an error instead of a panic.
        drop(job_tx);
        let joined = writer.join();
        match (result, joined) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(_)) => Err(NnError::BatchWriterStopped { epoch }),
            (Ok(()), Ok(())) => Ok(()),
        }
    })
}

/// Copies the bytes of samples `indices` into `staged`, one after another. `staged` keeps its
/// capacity (reserved for a full batch), so nothing is allocated.
fn gather(pixels: &[u8], features: usize, indices: &[usize], staged: &mut Vec<u8>) -> Result<()> {
    staged.clear();
    let samples = pixels.len() / features.max(1);
    for &i in indices {
        let row = i
            .checked_mul(features)
            .and_then(|start| pixels.get(start..start + features))
            .ok_or(DataError::IndexOutOfRange {
                index: i,
                len: samples,
            })?;
        staged.extend_from_slice(row);
    }
    Ok(())
}
