//! One I/O completion port: what every operation of the iocp backend reports
//! to, and what its one wait takes packets from.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE, WAIT_TIMEOUT};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, OVERLAPPED_ENTRY, PostQueuedCompletionStatus,
};

/// A completion port, shared with the waker that posts to it.
pub(super) struct CompletionPort(Arc<OwnedHandle>);

impl CompletionPort {
    /// A new port. Its concurrency is left to the system (0): under
    /// `interleave` two threads take packets (the helper's wait, the
    /// reactor's zero waits), and a limit of one would keep the helper
    /// waiting while the program's thread runs.
    pub(super) fn new() -> io::Result<CompletionPort> {
        // SAFETY: INVALID_HANDLE_VALUE with no existing port creates a new
        // port unassociated with any file; a null result is an error.
        let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0) };
        if port.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the port was just created and nobody else owns it.
        Ok(CompletionPort(Arc::new(unsafe { OwnedHandle::from_raw_handle(port) })))
    }

    /// The port's handle, for the waker.
    pub(super) fn shared(&self) -> Arc<OwnedHandle> {
        Arc::clone(&self.0)
    }

    /// Sends `handle`'s completions here, marked with `key`. A handle joins
    /// one port for good.
    pub(super) fn associate(&self, handle: HANDLE, key: usize) -> io::Result<()> {
        // SAFETY: both handles are open; associating an existing port takes
        // no ownership of `handle`.
        let port = unsafe { CreateIoCompletionPort(handle, self.0.as_raw_handle(), key, 0) };
        if port.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes up to `entries.len()` packets, waiting up to `millis` for the
    /// first (`INFINITE` for ever); the number taken, 0 at the timeout.
    pub(super) fn wait(&self, entries: &mut [OVERLAPPED_ENTRY], millis: u32) -> io::Result<usize> {
        take_packets(&self.0, entries, millis)
    }

    /// Posts a packet with `key` and no operation.
    pub(super) fn post(&self, key: usize) {
        // SAFETY: the port is open; a null OVERLAPPED marks no operation.
        unsafe { PostQueuedCompletionStatus(self.0.as_raw_handle(), 0, key, std::ptr::null()) };
    }
}

/// [`CompletionPort::wait`] on a shared handle (another thread's wait).
pub(super) fn take_packets(
    port: &OwnedHandle,
    entries: &mut [OVERLAPPED_ENTRY],
    millis: u32,
) -> io::Result<usize> {
    let mut taken = 0u32;
    // SAFETY: `entries` is valid for `len` writes and `taken` for one; the
    // port is open. Not alertable: no APCs run inside the wait.
    let ok = unsafe {
        GetQueuedCompletionStatusEx(
            port.as_raw_handle(),
            entries.as_mut_ptr(),
            entries.len() as u32,
            &mut taken,
            millis,
            0,
        )
    };
    if ok == 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(WAIT_TIMEOUT as i32) {
            return Ok(0);
        }
        return Err(error);
    }
    Ok(taken as usize)
}
