//! Win32 handles on the reactor: Twisted's `addEvent`, for any waitable
//! handle (an event, a process or thread, a waitable timer, a change
//! notification), on every Windows backend. Helper threads wait on the
//! handles in groups of 63 (`sys/windows/event_waiter.rs`), so there is no
//! 64-handle limit, and each signal is delivered on the reactor's thread
//! through its thread-call queue: the callback runs there like any other.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::windows::io::{AsHandle, AsRawHandle};
use std::rc::Rc;
use std::sync::Arc;

use super::Reactor;
use crate::error::ReactorError;
use crate::sys::event_waiter::EventWaiter;

/// A callback registered with [`Reactor::add_event`].
type EventCallback = Rc<RefCell<dyn FnMut(&Reactor, EventId)>>;

/// Names a handle registered with [`Reactor::add_event`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId(u64);

/// The reactor's registered handles and their helper threads.
#[derive(Default)]
pub(crate) struct Win32Events {
    waiter: Option<EventWaiter>,
    callbacks: HashMap<u64, EventCallback>,
    next_id: u64,
}

impl Reactor {
    /// Calls `callback` on the reactor's thread each time `handle` is
    /// signalled (Twisted's `addEvent`). A handle that stays signalled — a
    /// manual-reset event, an exited process or thread — is reported again
    /// after each call, until the callback resets it or
    /// [`remove_event`](Reactor::remove_event) is called; an auto-reset event
    /// is reset by the wait itself. Any number of handles may be added, on
    /// every backend. Keep `handle` open until it is removed.
    ///
    /// ```no_run
    /// # #[cfg(windows)] {
    /// let reactor = torque::Reactor::new()?;
    /// let worker = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(10)));
    /// // A thread's handle is signalled once it has exited.
    /// reactor.add_event(&worker, |r, id| {
    ///     r.remove_event(id);
    ///     r.stop().unwrap();
    /// })?;
    /// reactor.run()?;
    /// # }
    /// # Ok::<(), torque::ReactorError>(())
    /// ```
    pub fn add_event(
        &self,
        handle: &impl AsHandle,
        callback: impl FnMut(&Reactor, EventId) + 'static,
    ) -> Result<EventId, ReactorError> {
        let raw = handle.as_handle().as_raw_handle();
        let mut events = self.inner.win32_events.borrow_mut();
        events.next_id += 1;
        let id = events.next_id;
        if events.waiter.is_none() {
            let thread_calls = self.handle();
            let report: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |id| {
                thread_calls.call_from_thread(move |r| r.event_signalled(id));
            });
            events.waiter = Some(EventWaiter::new(report));
        }
        events.waiter.as_mut().expect("made above").add(id, raw).map_err(ReactorError::Os)?;
        events.callbacks.insert(id, Rc::new(RefCell::new(callback)));
        Ok(EventId(id))
    }

    /// Stops watching a handle added with [`add_event`](Reactor::add_event);
    /// false if it was not registered. A signal already on its way is dropped.
    pub fn remove_event(&self, id: EventId) -> bool {
        let mut events = self.inner.win32_events.borrow_mut();
        let removed = events.callbacks.remove(&id.0);
        if removed.is_some()
            && let Some(waiter) = events.waiter.as_mut()
        {
            waiter.remove(id.0);
        }
        drop(events);
        // Dropped after the borrow: the callback may own reactor objects.
        removed.is_some()
    }

    /// Handle `id` was signalled: run its callback, then wait on it again.
    fn event_signalled(&self, id: u64) {
        let callback = self.inner.win32_events.borrow().callbacks.get(&id).cloned();
        let Some(callback) = callback else { return };
        (callback.borrow_mut())(self, EventId(id));
        let events = self.inner.win32_events.borrow();
        if events.callbacks.contains_key(&id)
            && let Some(waiter) = events.waiter.as_ref()
        {
            waiter.rearm(id);
        }
    }
}
