//! A team of threads for the large kernels: one pool of parked helper threads per process,
//! started at the first parallel run, woken for each parallel kernel, and sharing its tasks
//! with the calling thread.
//!
//! What a team may change is *where* work runs, never *what* is computed: a kernel splits its
//! output into tasks whose results depend on the task's index alone (disjoint output chunks,
//! or partial sums combined in a fixed order afterwards), so a plan gives the same bits at any
//! thread count. A helper claims the next task with one atomic add; nothing is allocated per
//! run (the pool's threads are spawned once; waking one is a futex call).
//!
//! Runs never nest and never wait for each other: a run that finds the pool busy (another
//! plan on another thread, or a kernel called from inside a task) does all its tasks on the
//! calling thread.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// The most threads a plan uses, the calling one included (see [`crate::Plan::set_threads`]).
///
/// ```
/// assert_eq!(dendrite_graph::MAX_THREADS, 8);
/// ```
pub const MAX_THREADS: usize = 8;

/// How long a helper keeps polling for the next run before it parks: kernels of one step
/// follow each other within microseconds, and a parked helper takes tens of them to wake.
const SPIN_FOR: Duration = Duration::from_micros(200);

/// The threads a kernel may use: a count, resolved against the process' pool when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Team {
    threads: usize,
}

/// A task's body: the task's index and the worker (0 for the calling thread) running it.
type Body<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// A chunked task's body: the task's index, its output chunk and its worker's scratch.
type ChunkBody<'a, T, S> = dyn Fn(usize, &mut [T], &mut [S]) + Sync + 'a;

/// A run being shared: its body, with the lifetime erased (see [`Team::run`]), and its size.
#[derive(Clone, Copy)]
struct Job {
    body: *const Body<'static>,
    tasks: usize,
    /// Workers allowed: helpers numbered at or above this skip the run.
    workers: usize,
}

// SAFETY: the body is `Sync`, and `Team::run` keeps it alive until every helper has left it.
unsafe impl Send for Job {}

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
    /// Mirrors `State::generation`, for helpers polling without the lock.
    generation: AtomicU64,
    /// Held for the whole of a run: a second run finding it taken works alone.
    running: Mutex<()>,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Helpers inside the current job's body.
    inside: AtomicUsize,
    panicked: AtomicBool,
    helpers: usize,
}

struct State {
    job: Option<Job>,
    generation: u64,
}

/// The process' pool: `MAX_THREADS - 1` helpers at most, one fewer than the machine's cores.
fn pool() -> Option<&'static Arc<Pool>> {
    static POOL: OnceLock<Option<Arc<Pool>>> = OnceLock::new();
    POOL.get_or_init(start_pool).as_ref()
}

fn start_pool() -> Option<Arc<Pool>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = cores.clamp(1, MAX_THREADS) - 1;
    let pool = Arc::new(Pool {
        state: Mutex::new(State {
            job: None,
            generation: 0,
        }),
        wake: Condvar::new(),
        generation: AtomicU64::new(0),
        running: Mutex::new(()),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        inside: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        helpers: wanted,
    });
    let mut started = 0;
    for id in 1..=wanted {
        let shared = Arc::clone(&pool);
        let spawned = std::thread::Builder::new()
            .name(format!("dendrite-team-{id}"))
            .spawn(move || helper(&shared, id));
        if spawned.is_err() {
            break;
        }
        started += 1;
    }
    if started == 0 {
        return None;
    }
    // Helpers that did not start are never waited for: a job counts tasks, not helpers.
    Some(pool)
}

/// A helper's life: wait for a new generation, work on its job, repeat.
fn helper(pool: &Pool, id: usize) {
    let mut seen = 0;
    loop {
        let Some(job) = next_job(pool, &mut seen) else {
            continue;
        };
        if id < job.workers {
            // SAFETY: `Team::run` does not return (so the body lives) until `inside` is back
            // to zero, and this helper entered before the job was withdrawn.
            let body = unsafe { &*job.body };
            if catch_unwind(AssertUnwindSafe(|| work(pool, body, job.tasks, id))).is_err() {
                pool.panicked.store(true, Ordering::Release);
            }
        }
        pool.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits for a generation after `seen`, polling for [`SPIN_FOR`] and then parked. Returns its
/// job, counted in `inside`, or `None` when the run was already withdrawn.
fn next_job(pool: &Pool, seen: &mut u64) -> Option<Job> {
    let start = Instant::now();
    while pool.generation.load(Ordering::Acquire) == *seen && start.elapsed() < SPIN_FOR {
        std::hint::spin_loop();
    }
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    while state.generation == *seen {
        state = pool.wake.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    *seen = state.generation;
    let job = state.job?;
    pool.inside.fetch_add(1, Ordering::AcqRel);
    Some(job)
}

/// Claims and runs tasks until none is left.
fn work(pool: &Pool, body: &Body<'_>, tasks: usize, worker: usize) {
    loop {
        let task = pool.next.fetch_add(1, Ordering::AcqRel);
        if task >= tasks {
            return;
        }
        body(task, worker);
        pool.done.fetch_add(1, Ordering::AcqRel);
    }
}

impl Team {
    /// The calling thread alone.
    pub const ONE: Team = Team { threads: 1 };

    /// Up to `threads` threads (at least 1, at most [`MAX_THREADS`]).
    pub fn new(threads: usize) -> Team {
        Team {
            threads: threads.clamp(1, MAX_THREADS),
        }
    }

    /// The threads asked for.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Workers a run may use: the threads asked for, within the pool's helpers plus the
    /// calling thread. Kernels size their per-worker scratch by it.
    pub fn workers(&self) -> usize {
        if self.threads == 1 {
            return 1;
        }
        pool().map_or(1, |p| self.threads.min(p.helpers + 1))
    }

    /// Runs `body(task, worker)` for every task in `0..tasks`, each exactly once, and returns
    /// when all are done. `worker` is below [`Team::workers`], and one worker runs one task at
    /// a time. A panic in a task is resumed here after the other tasks finish.
    pub fn run(&self, tasks: usize, body: &Body<'_>) {
        let workers = self.workers();
        let alone = || (0..tasks).for_each(|task| body(task, 0));
        let Some(pool) = pool().filter(|_| workers > 1 && tasks > 1) else {
            return alone();
        };
        let _running = match pool.running.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return alone(),
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
        };
        pool.next.store(0, Ordering::Release);
        pool.done.store(0, Ordering::Release);
        pool.panicked.store(false, Ordering::Release);
        // SAFETY: only the lifetime is erased; the job is withdrawn and every helper has left
        // the body (`inside` is zero) before this function returns, panics included.
        let body_ptr: *const Body<'static> = unsafe {
            std::mem::transmute::<*const Body<'_>, *const Body<'static>>(body as *const Body<'_>)
        };
        publish(
            pool,
            Some(Job {
                body: body_ptr,
                tasks,
                workers,
            }),
        );
        let own = catch_unwind(AssertUnwindSafe(|| work(pool, body, tasks, 0)));
        wait_until(|| {
            pool.done.load(Ordering::Acquire) >= tasks
                || own.is_err()
                || pool.panicked.load(Ordering::Acquire)
        });
        publish(pool, None);
        wait_until(|| pool.inside.load(Ordering::Acquire) == 0);
        if let Err(payload) = own {
            resume_unwind(payload);
        }
        if pool.panicked.load(Ordering::Acquire) {
            resume_unwind(Box::new("a task of a parallel kernel panicked"));
        }
    }

    /// Splits `out` into chunks of `chunk` elements (the last may be shorter) and `scratch`
    /// into one piece of `per_worker` elements per worker, then runs `body(task, out_chunk,
    /// scratch_piece)` for every chunk. `scratch` must hold `per_worker · workers()` elements.
    pub fn for_chunks<T: Send, S: Send>(
        &self,
        out: &mut [T],
        chunk: usize,
        scratch: &mut [S],
        per_worker: usize,
        body: &ChunkBody<'_, T, S>,
    ) {
        let chunk = chunk.max(1);
        let tasks = out.len().div_ceil(chunk);
        let workers = self.workers();
        let per_worker = if scratch.len() >= per_worker.saturating_mul(workers) {
            per_worker
        } else {
            0
        };
        let (out, scratch) = (Shared::new(out), Shared::new(scratch));
        self.run(tasks, &|task, worker| {
            let start = task * chunk;
            // SAFETY: each task index is run exactly once, so its chunk has one user; a worker
            // runs one task at a time, so its scratch piece has one user at a time.
            let (mine, own) = unsafe {
                (
                    out.range(start, chunk.min(out.len - start)),
                    scratch.range(worker * per_worker, per_worker),
                )
            };
            body(task, mine, own);
        });
    }
}

/// Publishes `job` as a new generation and wakes the helpers.
fn publish(pool: &Pool, job: Option<Job>) {
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    state.job = job;
    if job.is_some() {
        state.generation += 1;
        pool.generation.store(state.generation, Ordering::Release);
    }
    drop(state);
    if job.is_some() {
        pool.wake.notify_all();
    }
}

/// Spins, then yields, until `ready`.
fn wait_until(ready: impl Fn() -> bool) {
    let mut polls = 0_u32;
    while !ready() {
        polls = polls.wrapping_add(1);
        if polls < 1 << 12 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A mutable slice handed out in disjoint ranges to the tasks of one run.
struct Shared<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: ranges go to one task at a time (see `Team::for_chunks`); `T: Send` lets them move
// between threads.
unsafe impl<T: Send> Sync for Shared<'_, T> {}

impl<'a, T> Shared<'a, T> {
    fn new(slice: &'a mut [T]) -> Self {
        Shared {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: PhantomData,
        }
    }

    /// `len` elements from `start`, clipped to the slice.
    ///
    /// # Safety
    /// No other live reference may overlap the range.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range(&self, start: usize, len: usize) -> &mut [T] {
        let start = start.min(self.len);
        let len = len.min(self.len - start);
        // SAFETY: within the borrowed slice; exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
