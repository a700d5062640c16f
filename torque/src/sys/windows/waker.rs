//! Cross-thread wake-up of a reactor blocked in its backend's wait: a
//! manual-reset event object the wait includes among its handles (wfmo), or
//! a packet posted to the backend's completion port (iocp). How wakes
//! coalesce is the same everywhere: `sys/wake.rs`.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::IO::PostQueuedCompletionStatus;
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, SetEvent};

pub(crate) use crate::sys::wake::Waker;

/// How a waker interrupts the wait.
#[derive(Debug)]
pub(crate) enum Mechanism {
    /// A manual-reset event, set by a wake and reset by the reactor's thread.
    Event(OwnedHandle),
    /// A completion port: a wake posts a packet with this key and no
    /// operation, which the wait takes as the wake-up.
    Port { port: Arc<OwnedHandle>, key: usize },
}

impl Mechanism {
    /// Interrupts the wait (`wake`'s call).
    pub(crate) fn signal(&self) {
        match self {
            // SAFETY: the event handle is open for as long as `self` lives.
            Mechanism::Event(event) => unsafe {
                SetEvent(event.as_raw_handle());
            },
            // SAFETY: the port is open for as long as `self` holds it; a null
            // OVERLAPPED is allowed and marks the packet as no operation's.
            Mechanism::Port { port, key } => unsafe {
                PostQueuedCompletionStatus(port.as_raw_handle(), 0, *key, std::ptr::null());
            },
        }
    }

    /// Unsignals the event (a port's packet is taken by the wait itself).
    pub(crate) fn clear(&self) {
        if let Mechanism::Event(event) = self {
            // SAFETY: the event handle is open for as long as `self` lives.
            unsafe { ResetEvent(event.as_raw_handle()) };
        }
    }
}

impl Waker {
    /// A waker over a new unsignalled manual-reset event, and that event
    /// for the backend's wait (valid while the waker lives).
    pub(crate) fn new_event() -> io::Result<(Waker, HANDLE)> {
        // SAFETY: no security attributes, manual reset, initially unsignalled,
        // no name: all pointer arguments are null, which CreateEventW allows.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: CreateEventW succeeded, so `event` is an open handle nobody else owns.
        let owned = unsafe { OwnedHandle::from_raw_handle(event) };
        Ok((Waker::with(Mechanism::Event(owned)), event))
    }

    /// A waker that posts packets with completion key `key` to `port`.
    pub(crate) fn new_port(port: Arc<OwnedHandle>, key: usize) -> Waker {
        Waker::with(Mechanism::Port { port, key })
    }
}
