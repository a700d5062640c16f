//! Cross-thread wake-up of a reactor blocked in its backend's wait: a
//! manual-reset event object the wait includes among its handles.
//!
//! Wakes coalesce as on Unix: an atomic flag records that a wake is already
//! on its way, and no call at all is made while the reactor is dispatching a
//! pass (it looks at its queues again before it waits).

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::atomic::{AtomicBool, Ordering, fence};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, SetEvent};

/// A handle any thread may use to interrupt the backend's blocking wait.
#[derive(Debug)]
pub(crate) struct Waker {
    /// A manual-reset event: set by `wake`, cleared by `reset`.
    event: OwnedHandle,
    /// Set by the first `wake` since the last `reset`; later wakes skip the call.
    pending: AtomicBool,
    /// Set while the reactor's thread dispatches a pass (see
    /// [`Waker::wake_for_queued`]).
    awake: AtomicBool,
}

impl Waker {
    /// A waker over a new unsignalled manual-reset event.
    pub(crate) fn new_event() -> io::Result<Waker> {
        // SAFETY: no security attributes, manual reset, initially unsignalled,
        // no name: all pointer arguments are null, which CreateEventW allows.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: CreateEventW succeeded, so `event` is an open handle nobody else owns.
        let event = unsafe { OwnedHandle::from_raw_handle(event) };
        Ok(Waker { event, pending: AtomicBool::new(false), awake: AtomicBool::new(false) })
    }

    /// The event a backend's wait includes.
    pub(crate) fn event(&self) -> HANDLE {
        self.event.as_raw_handle()
    }

    /// Wakes the reactor for work the caller has just queued where the
    /// reactor's prepare step looks — unless the reactor is dispatching a
    /// pass, in which case it sees the work before it waits. Dekker's pattern
    /// with [`Waker::may_sleep`], as the Unix waker explains.
    pub(crate) fn wake_for_queued(&self) {
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::Relaxed) {
            return;
        }
        self.wake();
    }

    /// The reactor's thread is dispatching a pass: queued work needs no wake.
    pub(crate) fn set_awake(&self) {
        self.awake.store(true, Ordering::Relaxed);
    }

    /// The reactor's thread may wait next: from now on queued work wakes it.
    pub(crate) fn may_sleep(&self) {
        self.awake.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Interrupts the wait, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the event handle is open for as long as `self` lives.
        unsafe { SetEvent(self.event()) };
    }

    /// Unsignals the event, then clears the pending flag (in that order, as
    /// on Unix: a wake after the clear signals again).
    pub(crate) fn reset(&self) {
        // SAFETY: the event handle is open for as long as `self` lives.
        unsafe { ResetEvent(self.event()) };
        self.pending.swap(false, Ordering::AcqRel);
    }
}
