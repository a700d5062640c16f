//! The cross-thread waker every backend uses: the coalescing rules, shared by
//! every platform, over the platform's [`Mechanism`] (an eventfd, a pipe,
//! kqueue's `EVFILT_USER` in `unix/waker.rs`; an event object in
//! `windows/waker.rs`), which says how to interrupt the wait and how to
//! clear it.
//!
//! Wakes coalesce: an atomic flag records that a wake is already on its way,
//! so a burst of a million `call_from_thread` calls costs a handful of system
//! calls, not a million; and while the reactor's thread dispatches a pass,
//! work queued for it needs no call at all.

use std::sync::atomic::{AtomicBool, Ordering, fence};

use super::waker::Mechanism;

/// A handle any thread may use to interrupt the backend's blocking wait.
#[derive(Debug)]
pub(crate) struct Waker {
    pub(super) mechanism: Mechanism,
    /// Set by the first `wake` since the last `reset`; later wakes skip the call.
    pending: AtomicBool,
    /// Set while the reactor's thread dispatches a pass: it looks at its
    /// queues again before it next waits, so work queued meanwhile needs no
    /// wake at all (see [`Waker::wake_for_queued`]).
    awake: AtomicBool,
}

impl Waker {
    /// A waker over `mechanism`, with no wake pending.
    pub(super) fn with(mechanism: Mechanism) -> Waker {
        Waker { mechanism, pending: AtomicBool::new(false), awake: AtomicBool::new(false) }
    }

    /// Wakes the reactor for work the caller has just queued where the
    /// reactor's prepare step looks (thread calls, ready tasks) — unless the
    /// reactor is dispatching a pass, in which case it sees the work before it
    /// waits and no call is made.
    ///
    /// The two sides form Dekker's pattern: the caller queues, fences, reads
    /// `awake`; the reactor clears `awake`, fences ([`Waker::may_sleep`]),
    /// reads its queues. With both fences sequentially consistent, at least one
    /// side sees the other's write: either the reactor finds the work before
    /// waiting, or the caller finds it may sleep and wakes it.
    pub(crate) fn wake_for_queued(&self) {
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::Relaxed) {
            return;
        }
        self.wake();
    }

    /// The reactor's thread is dispatching a pass (after its wait, before it
    /// looks at its queues again): queued work needs no wake.
    pub(crate) fn set_awake(&self) {
        self.awake.store(true, Ordering::Relaxed);
    }

    /// The reactor's thread may wait next: from now on queued work wakes it.
    /// Called before it looks at its queues to choose the wait's timeout.
    pub(crate) fn may_sleep(&self) {
        self.awake.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Interrupts the wait, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        self.mechanism.signal();
    }

    /// Clears the mechanism (drains the fd, resets the event), then the
    /// pending flag.
    ///
    /// The order matters. Clearing the flag first would let a wake that lands
    /// between the two have its signal eaten by the drain while the flag stays
    /// set, and every later wake would then be skipped for good. Drained
    /// first, a wake that finds the flag still set is one whose work was
    /// queued before this clear, so the dispatch that follows sees it (the
    /// `AcqRel` swap makes the producer's queue push visible); a wake after
    /// the clear signals again.
    pub(crate) fn reset(&self) {
        self.mechanism.clear();
        self.pending.swap(false, Ordering::AcqRel);
    }
}
