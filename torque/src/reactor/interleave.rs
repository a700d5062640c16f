//! Running inside a foreign event loop (Twisted's threaded-select reactor,
//! `interleave(waker)`): the blocking wait moves to one long-lived helper thread,
//! and each batch of events comes back to the caller's (GUI) thread through the
//! caller's `waker`, where it is dispatched exactly as a pass of `run()` would.
//!
//! The cycle: the GUI thread sends the helper a wait set (a copy of the
//! interest set, or epoll's shared kernel object) and a timeout; the helper
//! waits and hands `(result, events)` to `waker` as a `Send` closure; the
//! closure, run on the GUI thread, dispatches, runs timers, thread calls, tasks
//! and end-of-pass work, and sends the next wait. One wait is in flight at a
//! time. A change made on the GUI thread between batches (an fd added, a timer
//! moved earlier, `stop()`) wakes the wait so the next one uses it.

use std::cell::RefCell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::threads::ThreadShared;
use super::{Inner, Reactor, WeakReactor};
use crate::ReactorError;
use crate::backend::{Capability, Events, ForeignWait, WaitSet};

/// What the caller's waker runs on the GUI thread.
pub type GuiCall = Box<dyn FnOnce() + Send>;

/// One wait for the helper.
struct Request {
    /// A new wait set, or `None` to reuse the last (a live epoll set).
    set: Option<Box<dyn WaitSet>>,
    timeout: Option<Duration>,
    events: Events,
}

/// An interleaved reactor's link to its helper.
pub(crate) struct Interleaved {
    id: u64,
    requests: Option<mpsc::Sender<Request>>,
    helper: Option<std::thread::JoinHandle<()>>,
    sent_live_set: bool,
    /// The helper's wait only says events are there ([`ForeignWait::Reap`]);
    /// each batch collects them on this thread.
    reaps_here: bool,
    /// The event buffer, back from the last batch, for the next wait.
    spare_events: Events,
}

thread_local! {
    /// The interleaved reactors of this (GUI) thread, by id: a batch closure
    /// carries only the id, since a `Reactor` cannot cross threads.
    static REACTORS: RefCell<Vec<(u64, WeakReactor)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Reactor {
    /// Runs the reactor inside another event loop (Twisted's
    /// `threadedselectreactor.interleave`). `waker` is called on a helper thread
    /// with a closure that must run on *this* thread, soon: pass it to
    /// `glib::idle_add_once`, a winit `EventLoopProxy`, fltk's `awake`, or a
    /// channel your loop drains. The hand-off must always queue: a waker that
    /// runs the closure at once on the calling (helper) thread — as
    /// `glib::MainContext::invoke` does when no thread owns the context — is
    /// refused with a logged error, and the reactor stalls. Every event, timer, thread call and task then
    /// runs on this thread, inside those closures; protocol code stays
    /// single-threaded.
    ///
    /// Startup triggers fire inside this call. `stop()` runs the shutdown phases
    /// on this thread (quit the foreign loop from an after-shutdown trigger);
    /// `crash()` ends the interleaving without them. Afterwards the helper thread
    /// exits and [`is_interleaved`](Reactor::is_interleaved) is false.
    ///
    /// ```
    /// use std::sync::{Arc, mpsc};
    /// use std::time::Duration;
    ///
    /// let reactor = torque::Reactor::builder().handle_signals(false).build()?;
    /// // A minimal foreign loop: a channel of closures.
    /// let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    /// reactor.interleave(move |call| {
    ///     let _ = tx.send(call);
    /// })?;
    /// reactor.call_later(Duration::from_millis(10), |r| {
    ///     let _ = r.stop();
    /// });
    /// while reactor.is_interleaved() {
    ///     let call = rx.recv_timeout(Duration::from_secs(10)).expect("a batch");
    ///     call();
    /// }
    /// # Ok::<(), torque::ReactorError>(())
    /// ```
    pub fn interleave(&self, waker: impl Fn(GuiCall) + Send + 'static) -> Result<(), ReactorError> {
        let inner = &self.inner;
        inner.info.require(Capability::Interleave)?;
        if inner.in_run.get() {
            return Err(ReactorError::AlreadyRunning);
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (requests, receive) = mpsc::channel::<Request>();
        let shared = Arc::clone(&inner.threads);
        let helper = std::thread::Builder::new()
            .name("torque-interleave".into())
            .spawn(move || helper_loop(id, receive, shared, waker))
            .map_err(ReactorError::Os)?;
        REACTORS.with(|all| all.borrow_mut().push((id, self.downgrade())));
        *inner.interleaved.borrow_mut() = Some(Interleaved {
            id,
            requests: Some(requests),
            helper: Some(helper),
            sent_live_set: false,
            reaps_here: false,
            spare_events: Events::default(),
        });
        self.begin_run();
        self.next_wait_or_finish();
        Ok(())
    }

    /// Whether [`interleave`](Reactor::interleave) is in effect.
    pub fn is_interleaved(&self) -> bool {
        self.inner.interleaved.borrow().is_some()
    }

    /// A change that may shorten the next wait (an fd, a timer, queued work,
    /// `stop`): while interleaved with a wait in flight, wake it so the next
    /// wait uses the change.
    pub(crate) fn note_change(&self) {
        self.inner.wake_interleaved_wait();
    }

    /// On the GUI thread: one batch from the helper.
    fn interleaved_batch(&self, mut waited: io::Result<()>, mut events: Events) {
        self.inner.wait_in_flight.set(false);
        let reaps = self.inner.interleaved.borrow().as_ref().is_some_and(|link| link.reaps_here);
        let mut refused = Vec::new();
        if reaps && waited.is_ok() {
            // The helper only saw that events are there: collect them here.
            let mut changes = std::mem::take(&mut *self.inner.changes.borrow_mut());
            self.inner.fds.borrow_mut().take_changes(&mut changes);
            waited = self.inner.driver.borrow_mut().wait(
                &changes,
                &mut refused,
                &mut events,
                Some(Duration::ZERO),
            );
            changes.clear();
            *self.inner.changes.borrow_mut() = changes;
        }
        if let Err(e) = self.dispatch_after_wait(waited, refused, &mut events) {
            tracing::error!(error = %e, "the helper thread's wait failed; the reactor stops");
            self.crash();
        }
        if let Some(link) = self.inner.interleaved.borrow_mut().as_mut() {
            link.return_events(events);
        }
        self.next_wait_or_finish();
    }

    /// Sends the next wait, or ends the interleaving once the reactor stopped.
    fn next_wait_or_finish(&self) {
        if !self.inner.started.get() {
            self.finish_interleave();
            return;
        }
        // The helper waits next: the backend must have every change first
        // (and a refusal queues work, which the timeout must see).
        if let Err(e) = self.apply_changes(None) {
            tracing::debug!(error = %e, "backend refused a change");
        }
        let timeout = self.prepare(None);
        let need_set = self.inner.interleaved.borrow().as_ref().is_some_and(|link| !link.sent_live_set);
        // A live set, once sent, sees later changes by itself; a snapshot is
        // sent afresh each time.
        let set = if need_set { self.inner.driver.borrow().foreign_wait() } else { None };
        let sent = {
            let mut slot = self.inner.interleaved.borrow_mut();
            let Some(link) = slot.as_mut() else { return };
            let set = match set {
                Some(ForeignWait::Live(set)) => {
                    link.sent_live_set = true;
                    Some(set)
                }
                Some(ForeignWait::Snapshot(set)) => Some(set),
                Some(ForeignWait::Reap(set)) => {
                    link.sent_live_set = true;
                    link.reaps_here = true;
                    Some(set)
                }
                Some(ForeignWait::ReapSnapshot(set)) => {
                    link.reaps_here = true;
                    Some(set)
                }
                None => None,
            };
            let events = link.take_events();
            link.requests.as_ref().is_some_and(|tx| tx.send(Request { set, timeout, events }).is_ok())
        };
        if sent {
            self.inner.wait_in_flight.set(true);
        } else {
            tracing::error!("the interleave helper thread is gone; the reactor stops");
            self.crash();
            self.finish_interleave();
        }
    }

    fn finish_interleave(&self) {
        let link = self.inner.interleaved.borrow_mut().take();
        if let Some(mut link) = link {
            drop(link.requests.take()); // the helper's recv ends
            if let Some(helper) = link.helper.take() {
                let _ = helper.join();
            }
            let _ = REACTORS.try_with(|all| all.borrow_mut().retain(|(id, _)| *id != link.id));
        }
        self.inner.wait_in_flight.set(false);
        self.end_run();
    }
}

impl Inner {
    pub(super) fn wake_interleaved_wait(&self) {
        if self.wait_in_flight.get() {
            self.threads.waker.wake();
        }
    }
}

impl Interleaved {
    /// Forgets this link's thread-local entry (the reactor is being dropped).
    pub(crate) fn forget(&self) {
        let _ = REACTORS.try_with(|all| all.borrow_mut().retain(|(id, _)| *id != self.id));
    }

    fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.spare_events)
    }

    fn return_events(&mut self, events: Events) {
        self.spare_events = events;
    }
}

/// The helper thread: wait, hand the batch to the GUI thread, repeat until the
/// reactor drops its sender (or was dropped itself: `closed`). A panicking wait
/// becomes an error batch, never a silent stop.
fn helper_loop(
    id: u64,
    requests: mpsc::Receiver<Request>,
    shared: Arc<ThreadShared>,
    waker: impl Fn(GuiCall),
) {
    let mut current: Option<Box<dyn WaitSet>> = None;
    while let Ok(Request { set, timeout, mut events }) = requests.recv() {
        if let Some(set) = set {
            current = Some(set);
        }
        let result = match current.as_mut() {
            Some(set) => {
                catch_unwind(AssertUnwindSafe(|| set.wait(&mut events, timeout))).unwrap_or_else(|_| {
                    Err(io::Error::other("the backend's wait panicked on the helper thread"))
                })
            }
            None => Err(io::Error::other("no wait set")),
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let shared = Arc::clone(&shared);
        let helper = std::thread::current().id();
        waker(Box::new(move || {
            if shared.closed.load(Ordering::Acquire) {
                return; // the reactor was dropped meanwhile
            }
            if std::thread::current().id() == helper {
                tracing::error!(
                    "the interleave waker ran a batch at once on the helper thread; it must hand it to the \
                     reactor's thread (glib::MainContext::invoke does this when no thread owns the context: \
                     use glib::idle_add_once or MainContext::spawn); the reactor is stuck"
                );
                return;
            }
            deliver(id, result, events)
        }));
    }
}

/// On the GUI thread: finds the reactor and dispatches the batch.
fn deliver(id: u64, result: io::Result<()>, events: Events) {
    let reactor =
        REACTORS.with(|all| all.borrow().iter().find(|(i, _)| *i == id).and_then(|(_, r)| r.upgrade()));
    match reactor {
        Some(reactor) => reactor.interleaved_batch(result, events),
        None => tracing::error!(
            "an interleaved batch ran on a thread without its reactor (the waker must run it on the thread \
             that called interleave); the reactor is stuck"
        ),
    }
}
