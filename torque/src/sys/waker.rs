//! Cross-thread wake-up of a reactor blocked in its backend's wait.
//!
//! On Linux the waker is an `eventfd`; elsewhere a non-blocking pipe. Wakes coalesce:
//! an atomic flag records that a wake is already on its way, so a burst of a million
//! `call_from_thread` calls costs a handful of syscalls, not a million.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// A handle any thread may use to interrupt the backend's blocking wait.
#[derive(Debug)]
pub struct Waker {
    read: OwnedFd,
    /// The write end for pipes; `None` for an eventfd, which reads and writes one fd.
    write: Option<OwnedFd>,
    /// Set by the first `wake` since the last `reset`; later wakes skip the syscall.
    pending: AtomicBool,
}

impl Waker {
    /// Creates the platform's waker (eventfd on Linux, a pipe elsewhere).
    pub fn new() -> io::Result<Waker> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: eventfd has no pointer arguments; the result is checked by cvt.
            let fd = super::cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
            // SAFETY: eventfd succeeded, so `fd` is open and owned only by us.
            let read = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            Ok(Waker { read, write: None, pending: AtomicBool::new(false) })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Self::new_pipe()
        }
    }

    /// Creates a pipe-based waker, the portable fallback.
    #[allow(dead_code)]
    pub fn new_pipe() -> io::Result<Waker> {
        let (read, write) = super::pipe()?;
        Ok(Waker { read, write: Some(write), pending: AtomicBool::new(false) })
    }

    /// The fd a backend watches for readability.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The fd a signal handler writes to (async-signal-safe, no flag involved).
    pub fn write_fd(&self) -> RawFd {
        self.write.as_ref().unwrap_or(&self.read).as_raw_fd()
    }

    /// Whether this is an eventfd (8-byte counter writes) rather than a pipe.
    pub fn is_eventfd(&self) -> bool {
        self.write.is_none()
    }

    /// Interrupts the wait, unless a wake is already pending.
    pub fn wake(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        raw_wake(self.write_fd(), self.is_eventfd());
    }

    /// Drains the fd, then clears the pending flag.
    ///
    /// The order matters. Clearing first would let a wake that lands between the
    /// clear and the drain have its write eaten by the drain while the flag stays
    /// set, and every later wake would then be skipped for good. Drained first, a
    /// wake that finds the flag still set is one whose work was queued before this
    /// clear, so the dispatch that follows sees it (the `AcqRel` swap makes the
    /// producer's queue push visible); a wake after the clear writes again.
    pub fn reset(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = super::read(self.read_fd(), &mut buf) {
            if n == 0 || self.is_eventfd() {
                break;
            }
        }
        self.pending.swap(false, Ordering::AcqRel);
    }
}

/// Writes one wake token to `fd`. Async-signal-safe: one `write(2)`, errors ignored
/// (a full pipe or a saturated eventfd already guarantees a pending wake-up).
pub(crate) fn raw_wake(fd: RawFd, eventfd: bool) {
    let one: u64 = 1;
    let len = if eventfd { 8 } else { 1 };
    // SAFETY: `one` lives for the call and is at least `len` bytes long.
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(waker: &Waker) -> u64 {
        let mut buf = [0u8; 64];
        match crate::sys::read(waker.read_fd(), &mut buf) {
            Ok(8) if waker.is_eventfd() => u64::from_ne_bytes(buf[..8].try_into().unwrap()),
            Ok(n) => n as u64,
            Err(_) => 0,
        }
    }

    fn check_coalescing(waker: Waker) {
        for _ in 0..1000 {
            waker.wake();
        }
        assert_eq!(tokens(&waker), 1, "a thousand wakes wrote once");
        waker.reset();
        waker.wake();
        assert_eq!(tokens(&waker), 1, "after reset the next wake writes again");
    }

    #[test]
    fn eventfd_wakes_coalesce() {
        check_coalescing(Waker::new().unwrap());
    }

    #[test]
    fn pipe_wakes_coalesce() {
        check_coalescing(Waker::new_pipe().unwrap());
    }

    #[test]
    fn reset_drains_the_fd() {
        let waker = Waker::new_pipe().unwrap();
        raw_wake(waker.write_fd(), false);
        raw_wake(waker.write_fd(), false);
        waker.reset();
        assert_eq!(tokens(&waker), 0);
    }
}
