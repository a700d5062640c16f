//! Calls into the reactor from other threads (IReactorThreads; the pool is in
//! [`pool`](super::pool)).
//!
//! `call_from_thread` pushes a boxed closure onto a mutex-protected queue and wakes the
//! backend through its coalescing [`Waker`]. The reactor swaps the whole queue out
//! once per pass, so a call made from inside such a call lands in the fresh queue and
//! runs on a later pass: thread calls cannot starve I/O.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

use super::Reactor;
use crate::sys::waker::Waker;

pub(crate) type ThreadCall = Box<dyn FnOnce(&Reactor) + Send>;

/// The part of a reactor other threads can reach.
pub(crate) struct ThreadShared {
    pub(crate) queue: Mutex<Vec<ThreadCall>>,
    /// Mirrors `!queue.is_empty()` so the reactor's prepare step needs no lock.
    pub(crate) queued: AtomicUsize,
    pub(crate) waker: Arc<Waker>,
    /// Set when the reactor is dropped; later calls are dropped.
    pub(crate) closed: AtomicBool,
    /// The thread the reactor lives on (it is `!Send`, so the one that made it).
    pub(crate) thread: ThreadId,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (pushes
    // and swaps only), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `Send + Sync + Clone` handle to a reactor, for other threads.
///
/// ```
/// let reactor = torque::Reactor::new()?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || handle.call_from_thread(|r| r.crash()));
/// reactor.run()?;
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone)]
pub struct ReactorHandle {
    pub(crate) shared: Arc<ThreadShared>,
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread on its next pass, waking it if it is asleep.
    /// Calls from one thread run in the order made. A call made while the reactor
    /// is not running waits for its next `run()` or `iterate()`; once the reactor is
    /// dropped, calls are dropped (the closure is dropped on this thread), never a
    /// panic.
    pub fn call_from_thread(&self, f: impl FnOnce(&Reactor) + Send + 'static) {
        if self.is_closed() {
            return;
        }
        let mut queue = lock(&self.shared.queue);
        queue.push(Box::new(f));
        // Set under the lock, so it can never be cleared while an item is queued.
        self.shared.queued.store(1, Ordering::Release);
        drop(queue);
        self.shared.waker.wake_for_queued();
    }

    /// Interrupts the reactor's wait without queueing anything.
    pub fn wake(&self) {
        self.shared.waker.wake();
    }

    /// Whether the calling thread is the reactor's own (Twisted's
    /// `isInIOThread`): code that may run on either can then call the
    /// reactor directly or go through [`call_from_thread`](ReactorHandle::call_from_thread).
    pub fn is_reactor_thread(&self) -> bool {
        std::thread::current().id() == self.shared.thread
    }

    /// Whether the reactor is gone, so calls would be dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorHandle").field("closed", &self.is_closed()).finish()
    }
}
