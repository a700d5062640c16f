//! The reactor's thread pool (Twisted's `reactor.getThreadPool()`): workers
//! start on demand up to a maximum, run jobs in order, and stop at shutdown.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::threads::lock;

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    max_threads: usize,
    completed: u64,
    stopping: bool,
    workers: Vec<JoinHandle<()>>,
}

struct PoolShared {
    state: Mutex<PoolState>,
    work: Condvar,
}

/// A reactor's thread pool, as an object (Twisted's `ThreadPool` from
/// `reactor.getThreadPool()`): its size, what it is doing, and stopping it.
///
/// A cheap `Send + Sync` handle; [`Reactor::thread_pool`](crate::Reactor::thread_pool)
/// returns the current pool. The reactor stops it at shutdown and starts a
/// fresh one when a later run needs threads again; a job given to a stopped
/// pool is dropped (and logged), never run.
///
/// ```
/// let reactor = torque::Reactor::new()?;
/// let pool = reactor.thread_pool();
/// pool.set_max_threads(4);
/// let (tx, rx) = std::sync::mpsc::channel();
/// pool.call_in_thread(move || tx.send(6 * 7).unwrap());
/// assert_eq!(rx.recv().unwrap(), 42);
/// assert_eq!(pool.stats().max_threads, 4);
/// pool.stop();
/// assert!(pool.stats().stopped);
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<PoolShared>,
}

/// What a [`ThreadPool`] is doing (Twisted's `dumpStats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadPoolStats {
    /// Worker threads alive.
    pub threads: usize,
    /// Of those, how many wait for work.
    pub idle: usize,
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Jobs finished so far.
    pub completed: u64,
    /// The most workers the pool starts.
    pub max_threads: usize,
    /// Whether the pool was stopped.
    pub stopped: bool,
}

impl fmt::Display for ThreadPoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of at most {} threads ({} idle), {} queued, {} done{}",
            self.threads,
            self.max_threads,
            self.idle,
            self.queued,
            self.completed,
            if self.stopped { ", stopped" } else { "" }
        )
    }
}

impl ThreadPool {
    pub(crate) fn new(max_threads: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    max_threads: max_threads.max(1),
                    completed: 0,
                    stopping: false,
                    workers: Vec::new(),
                }),
                work: Condvar::new(),
            }),
        }
    }

    /// Sets the most workers the pool starts (Twisted's `adjustPoolsize`;
    /// at least one). Workers above a lowered maximum finish their job first.
    pub fn set_max_threads(&self, max: usize) {
        lock(&self.shared.state).max_threads = max.max(1);
        // Idle workers above the new maximum leave.
        self.shared.work.notify_all();
    }

    /// What the pool is doing now.
    pub fn stats(&self) -> ThreadPoolStats {
        let state = lock(&self.shared.state);
        ThreadPoolStats {
            threads: state.threads,
            idle: state.idle,
            queued: state.jobs.len(),
            completed: state.completed,
            max_threads: state.max_threads,
            stopped: state.stopping,
        }
    }

    /// Runs `f` on a worker. A panic in `f` is logged. On a stopped pool `f`
    /// is dropped unrun.
    pub fn call_in_thread(&self, f: impl FnOnce() + Send + 'static) {
        self.submit(Box::new(move || {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                tracing::error!(panic = %super::panic_message(&*payload), "a thread-pool job panicked");
            }
        }));
    }

    /// Queues `job`, starting a worker if none is idle and the maximum allows.
    pub(crate) fn submit(&self, job: Job) {
        let mut state = lock(&self.shared.state);
        if state.stopping {
            drop(state);
            tracing::warn!("a job was given to a stopped thread pool; it is dropped");
            return;
        }
        state.jobs.push_back(job);
        let spawn = state.jobs.len() > state.idle && state.threads < state.max_threads;
        if spawn {
            state.threads += 1;
            let number = state.threads;
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("torque-pool-{number}"))
                .spawn(move || worker(&shared));
            match spawned {
                Ok(handle) => state.workers.push(handle),
                Err(e) => {
                    state.threads -= 1;
                    tracing::error!(error = %e, "cannot start a thread-pool worker");
                }
            }
        }
        drop(state);
        self.shared.work.notify_one();
    }

    /// Stops the pool (Twisted's `ThreadPool.stop`): queued jobs still run,
    /// then every worker is joined. Called from one of the pool's own
    /// workers, it does not wait for that one.
    pub fn stop(&self) {
        let workers = {
            let mut state = lock(&self.shared.state);
            state.stopping = true;
            std::mem::take(&mut state.workers)
        };
        self.shared.work.notify_all();
        let me = std::thread::current().id();
        for handle in workers {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    /// Asks the workers to finish without waiting for them (used on drop).
    pub(crate) fn detach(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
    }

    /// Whether two handles are the same pool.
    pub fn same_pool(&self, other: &ThreadPool) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThreadPool").field(&self.stats()).finish()
    }
}

fn worker(shared: &PoolShared) {
    let mut state = lock(&shared.state);
    loop {
        if state.threads > state.max_threads && !state.stopping {
            // The maximum was lowered: this one leaves (jobs wait for the rest).
            state.threads -= 1;
            return;
        }
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // Jobs catch their own panics (see `call_in_thread`).
            job();
            state = lock(&shared.state);
            state.completed += 1;
            continue;
        }
        if state.stopping {
            state.threads -= 1;
            return;
        }
        state.idle += 1;
        state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
        state.idle -= 1;
    }
}
