//! Cross-thread wake-up of a reactor blocked in its backend's wait: a
//! manual-reset event object the wait includes among its handles. How wakes
//! coalesce is the same everywhere: `sys/wake.rs`.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, SetEvent};

pub(crate) use crate::sys::wake::Waker;

/// How a waker interrupts the wait: a manual-reset event, set by a wake and
/// reset by the reactor's thread.
#[derive(Debug)]
pub(crate) struct Mechanism(OwnedHandle);

impl Mechanism {
    /// Interrupts the wait (`wake`'s call).
    pub(crate) fn signal(&self) {
        // SAFETY: the event handle is open for as long as `self` lives.
        unsafe { SetEvent(self.0.as_raw_handle()) };
    }

    /// Unsignals the event.
    pub(crate) fn clear(&self) {
        // SAFETY: the event handle is open for as long as `self` lives.
        unsafe { ResetEvent(self.0.as_raw_handle()) };
    }
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
        Ok(Waker::with(Mechanism(unsafe { OwnedHandle::from_raw_handle(event) })))
    }

    /// The event a backend's wait includes.
    pub(crate) fn event(&self) -> HANDLE {
        self.mechanism.0.as_raw_handle()
    }
}
