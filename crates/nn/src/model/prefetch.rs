//! Writing the next batches on a second thread while the current one trains.
//!
//! Writing a shuffled MNIST batch means fetching its images from all over 47 MB of pixels,
//! mostly from main memory with a TLB miss per image, then converting them to floats: about
//! 9 µs of a step at batch 32 and 35 µs at batch 128 (reference model, 2-core Zen 2). Nothing in
//! a step depends on the batches after it, so a writer thread fills batch buffers ahead of the
//! training thread, which only reads them. The buffers rotate through a ring of [`DEPTH`].
//!
//! Measured with `examples/mnist` at batch 128 (seconds per epoch, three runs each): all on one
//! thread 0.094; the writer one step ahead (two buffers) 0.079; two steps ahead (three)
//! 0.078, kept; three ahead 0.078-0.079. Also tried: the writer only gathering the image
//! *bytes* and the training thread converting them (4x less data crossing between cores):
//! 0.081-0.085 against 0.076-0.081, ten alternating runs each; the conversion costs the
//! training thread more than reading floats another core wrote. Splitting the matrix products between the cores, the other way to use the second
//! core, made training slower (see the graph crate's `gemm` module): there both cores store,
//! every step, to lines the other has just read.
//!
//! Hand-offs go through two channels of `DEPTH - 1` slots, polled (see [`recv`]) so that
//! neither side pays a futex wake-up while steps keep coming, and nothing is allocated per
//! step.

use crate::error::{NnError, Result};
use std::sync::mpsc::{sync_channel, Receiver, RecvError, TryRecvError};
use std::time::{Duration, Instant};

/// Batch buffers in the ring: the one training plus those being written ahead.
pub(crate) const DEPTH: usize = 3;

/// How long a side polls an empty channel with the CPU's spin hint alone: long enough for a
/// batch that is almost ready, short enough not to matter if the other thread is not running.
const SPIN_FOR: Duration = Duration::from_micros(20);

/// How long it then keeps polling, yielding its core between polls: when the two threads share
/// one core (a busy machine, or a process limited to one CPU) the other thread runs at once
/// instead of after a scheduler time slice. Measured with both threads held on one core: 1.02
/// s per epoch at batch 128 with spinning alone, about the one-thread time with yielding.
/// Longer than any training step of a small model, so an epoch never sleeps.
const YIELD_FOR: Duration = Duration::from_millis(2);

/// The sleep between polls after that: by then steps take milliseconds, so waking up to this
/// much late costs a few percent at most, and an idle writer stops using its core.
const NAP: Duration = Duration::from_micros(100);

/// Receives from `rx`: polls, spinning for [`SPIN_FOR`], then yielding until [`YIELD_FOR`],
/// then napping. Never blocks on the channel itself: a blocking receive registers a waker,
/// which allocates, and training steps do not allocate.
fn recv<T>(rx: &Receiver<T>) -> std::result::Result<T, RecvError> {
    let start = Instant::now();
    let mut polls = 0_u32;
    loop {
        match rx.try_recv() {
            Ok(value) => return Ok(value),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {}
        }
        polls = polls.wrapping_add(1);
        if polls < 64 {
            std::hint::spin_loop();
            continue;
        }
        let waited = start.elapsed();
        if waited < SPIN_FOR {
            std::hint::spin_loop();
        } else if waited < YIELD_FOR {
            std::thread::yield_now();
        } else {
            std::thread::sleep(NAP);
        }
    }
}

/// Runs `step` on every batch of `batches` in order. `step` gets the step number (from 0), the
/// buffer `fill` wrote the batch into, and the batch's indices. With two or more `buffers` and
/// two or more batches, a writer thread fills them `buffers.len() - 1` steps ahead; otherwise,
/// or when no thread can be started, each batch is written into one buffer on this thread just
/// before its step. Stops at the first error, from `fill` or from `step`; `epoch` only names
/// the epoch in an error.
pub(crate) fn pipelined<'d, 'b, B, W, S>(
    batches: impl ExactSizeIterator<Item = &'d [usize]>,
    mut buffers: Vec<&'b mut B>,
    fill: W,
    epoch: usize,
    mut step: S,
) -> Result<()>
where
    B: Send,
    W: Fn(&mut B, &[usize]) -> Result<()> + Sync,
    S: FnMut(usize, &B, &[usize]) -> Result<()>,
{
    if buffers.len() < 2 || batches.len() < 2 {
        return one_by_one(batches, buffers.pop(), &fill, &mut step, epoch);
    }
    std::thread::scope(|scope| {
        let ahead = buffers.len() - 1;
        let (job_tx, job_rx) = sync_channel::<(&'b mut B, &'d [usize])>(ahead);
        let (done_tx, done_rx) = sync_channel::<((&'b mut B, &'d [usize]), Result<()>)>(ahead);
        let spawned = std::thread::Builder::new()
            .name("dendrite-batch-writer".into())
            .spawn_scoped(scope, {
                let fill = &fill;
                move || {
                    while let Ok((buffer, indices)) = recv(&job_rx) {
                        let filled = fill(buffer, indices);
                        if done_tx.send(((buffer, indices), filled)).is_err() {
                            break;
                        }
                    }
                }
            });
        let Ok(writer) = spawned else {
            // No thread to be had (a resource limit).
            return one_by_one(batches, buffers.pop(), &fill, &mut step, epoch);
        };
        let run = || -> Result<()> {
            let stopped = || NnError::BatchWriterStopped { epoch };
            let mut batches = batches;
            let mut in_flight = 0;
            while in_flight < ahead {
                let (Some(indices), Some(buffer)) = (batches.next(), buffers.pop()) else {
                    break;
                };
                job_tx.send((buffer, indices)).map_err(|_| stopped())?;
                in_flight += 1;
            }
            let mut s = 0;
            while in_flight > 0 {
                let ((current, indices), filled) = recv(&done_rx).map_err(|_| stopped())?;
                in_flight -= 1;
                filled?;
                if let (Some(next), Some(buffer)) = (batches.next(), buffers.pop()) {
                    job_tx.send((buffer, next)).map_err(|_| stopped())?;
                    in_flight += 1;
                }
                step(s, current, indices)?;
                buffers.push(current);
                s += 1;
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

/// The single-thread epoch: each batch written into `buffer`, then its step.
fn one_by_one<'d, B, W, S>(
    batches: impl Iterator<Item = &'d [usize]>,
    buffer: Option<&mut B>,
    fill: &W,
    step: &mut S,
    epoch: usize,
) -> Result<()>
where
    W: Fn(&mut B, &[usize]) -> Result<()>,
    S: FnMut(usize, &B, &[usize]) -> Result<()>,
{
    let mut batches = batches.enumerate().peekable();
    if batches.peek().is_none() {
        return Ok(());
    }
    // Callers always pass a buffer; without one no batch could be written.
    let buffer = buffer.ok_or(NnError::BatchWriterStopped { epoch })?;
    for (s, indices) in batches {
        fill(buffer, indices)?;
        step(s, buffer, indices)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataError;

    /// A fill that writes each batch's indices, doubled, into its buffer.
    fn double(buffer: &mut Vec<usize>, indices: &[usize]) -> Result<()> {
        buffer.clear();
        buffer.extend(indices.iter().map(|i| 2 * i));
        Ok(())
    }

    /// Every batch reaches `step` once, in order, with its own contents, whatever the ring
    /// size and however the batches divide (a short last batch, a single batch, none).
    #[test]
    fn steps_see_every_batch_in_order() -> Result<()> {
        for depth in 2..=5 {
            for (len, batch) in [(0, 4), (1, 4), (4, 4), (10, 3), (37, 8)] {
                let order: Vec<usize> = (0..len).rev().collect();
                let mut ring: Vec<Vec<usize>> = vec![Vec::with_capacity(batch); depth];
                let mut seen = Vec::new();
                pipelined(
                    order.chunks(batch),
                    ring.iter_mut().collect(),
                    double,
                    1,
                    |s, filled: &Vec<usize>, indices| {
                        assert_eq!(filled.len(), indices.len());
                        assert!(filled.iter().zip(indices).all(|(f, i)| *f == 2 * i));
                        seen.push((s, indices.to_vec()));
                        Ok(())
                    },
                )?;
                let expected: Vec<(usize, Vec<usize>)> = order
                    .chunks(batch)
                    .map(<[usize]>::to_vec)
                    .enumerate()
                    .collect();
                assert_eq!(seen, expected, "depth {depth}, {len} samples by {batch}");
            }
        }
        Ok(())
    }

    /// An error while writing batch k stops the epoch with that error after steps 0..k, and
    /// the writer thread ends (the call returns rather than hanging).
    #[test]
    fn a_writing_error_stops_at_its_batch() {
        let order: Vec<usize> = (0..20).collect();
        let mut ring: Vec<Vec<usize>> = vec![Vec::new(); 3];
        let mut steps = Vec::new();
        let result = pipelined(
            order.chunks(2),
            ring.iter_mut().collect(),
            |buffer: &mut Vec<usize>, indices: &[usize]| {
                if indices.contains(&10) {
                    return Err(DataError::IndexOutOfRange { index: 10, len: 10 }.into());
                }
                double(buffer, indices)
            },
            7,
            |s, _: &Vec<usize>, _| {
                steps.push(s);
                Ok(())
            },
        );
        assert!(matches!(
            result,
            Err(NnError::Data(DataError::IndexOutOfRange { index: 10, .. }))
        ));
        assert_eq!(steps, vec![0, 1, 2, 3, 4]);
    }

    /// An error from a step stops the epoch at once, with the writer still ahead.
    #[test]
    fn a_step_error_stops_the_epoch() {
        let order: Vec<usize> = (0..50).collect();
        let mut ring: Vec<Vec<usize>> = vec![Vec::new(); 3];
        let mut steps = 0;
        let result = pipelined(
            order.chunks(5),
            ring.iter_mut().collect(),
            double,
            2,
            |s, _: &Vec<usize>, _| {
                steps += 1;
                if s == 3 {
                    return Err(NnError::ZeroEpochs);
                }
                Ok(())
            },
        );
        assert!(matches!(result, Err(NnError::ZeroEpochs)));
        assert_eq!(steps, 4);
    }

    /// A panic on the writer thread becomes an error naming the epoch, not a panic in `fit`.
    #[test]
    fn a_panicking_writer_is_an_error() {
        let order: Vec<usize> = (0..8).collect();
        let mut ring: Vec<Vec<usize>> = vec![Vec::new(); 3];
        let result = pipelined(
            order.chunks(2),
            ring.iter_mut().collect(),
            |buffer: &mut Vec<usize>, indices: &[usize]| {
                if indices.contains(&4) {
                    #[allow(clippy::panic)]
                    {
                        panic!("a bug in a Data implementation");
                    }
                }
                double(buffer, indices)
            },
            3,
            |_, _: &Vec<usize>, _| Ok(()),
        );
        assert!(matches!(
            result,
            Err(NnError::BatchWriterStopped { epoch: 3 })
        ));
    }
}
