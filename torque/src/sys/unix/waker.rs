//! Cross-thread wake-up of a reactor blocked in its backend's wait.
//!
//! Each backend picks its mechanism: an `eventfd` (Linux), a non-blocking pipe
//! (the portable fallback), or kqueue's own `EVFILT_USER` event, which needs no
//! fd at all. How wakes coalesce is the same everywhere: `sys/wake.rs`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
#[cfg(kqueue)]
use std::sync::Arc;

pub(crate) use crate::sys::wake::Waker;

/// How a waker interrupts the wait.
#[derive(Debug)]
pub(crate) enum Mechanism {
    /// An eventfd: 8-byte counter writes, one fd.
    #[cfg(linux_like)]
    EventFd(OwnedFd),
    /// A pipe: one byte per wake, drained by the waiting side.
    #[cfg_attr(linux_like, allow(dead_code))]
    Pipe { read: OwnedFd, write: OwnedFd },
    /// `EVFILT_USER` on the backend's kqueue (registered with `EV_CLEAR`, so
    /// fetching the event resets it).
    #[cfg(kqueue)]
    KqueueUser(Arc<OwnedFd>),
}

/// Where a signal handler sends its wake: an fd and how to write to it, packed
/// in one `u64` so a handler reads it with one atomic load. [`NO_TARGET`] for
/// none.
pub(crate) type SignalTarget = u64;

/// A slot with no wake target.
pub(crate) const NO_TARGET: SignalTarget = u64::MAX;
const KIND_SHIFT: u32 = 32;
const KIND_EVENTFD: u64 = 0;
const KIND_PIPE: u64 = 1;
#[cfg(kqueue)]
const KIND_KQUEUE: u64 = 2;

fn target(fd: RawFd, kind: u64) -> SignalTarget {
    u64::from(fd as u32) | (kind << KIND_SHIFT)
}

impl Waker {
    /// The fd-based waker of this platform: an eventfd on Linux, a pipe elsewhere.
    pub(crate) fn new_fd() -> io::Result<Waker> {
        #[cfg(linux_like)]
        {
            // SAFETY: eventfd has no pointer arguments; the result is checked by cvt.
            let fd = super::cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
            // SAFETY: eventfd succeeded, so `fd` is open and owned only by us.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            Ok(Waker::with(Mechanism::EventFd(fd)))
        }
        #[cfg(not(linux_like))]
        {
            Self::new_pipe()
        }
    }

    /// A pipe-based waker, the portable fallback (on Linux only in tests).
    #[cfg_attr(linux_like, allow(dead_code))]
    pub(crate) fn new_pipe() -> io::Result<Waker> {
        let (read, write) = super::pipe()?;
        Ok(Waker::with(Mechanism::Pipe { read, write }))
    }

    /// A waker that triggers `EVFILT_USER` event [`super::kqueue::WAKE_IDENT`]
    /// on `kqueue`; the backend registers that event.
    #[cfg(kqueue)]
    pub(crate) fn new_kqueue_user(kqueue: Arc<OwnedFd>) -> Waker {
        Waker::with(Mechanism::KqueueUser(kqueue))
    }

    /// The fd a backend watches for readability, for fd-based wakers.
    pub(crate) fn read_fd(&self) -> Option<RawFd> {
        match &self.mechanism {
            #[cfg(linux_like)]
            Mechanism::EventFd(fd) => Some(fd.as_raw_fd()),
            Mechanism::Pipe { read, .. } => Some(read.as_raw_fd()),
            #[cfg(kqueue)]
            Mechanism::KqueueUser(_) => None,
        }
    }

    /// What a signal handler writes to, async-signal-safely, to wake this waker.
    pub(crate) fn signal_target(&self) -> SignalTarget {
        self.mechanism.signal_target()
    }

    /// The mechanism's name.
    #[cfg(test)]
    pub(crate) fn mechanism(&self) -> &'static str {
        match &self.mechanism {
            #[cfg(linux_like)]
            Mechanism::EventFd(_) => "eventfd",
            Mechanism::Pipe { .. } => "pipe",
            #[cfg(kqueue)]
            Mechanism::KqueueUser(_) => "EVFILT_USER",
        }
    }
}

impl Mechanism {
    /// Interrupts the wait (`wake`'s call).
    pub(crate) fn signal(&self) {
        raw_wake(self.signal_target());
    }

    /// What a signal handler writes to, async-signal-safely, to wake it.
    fn signal_target(&self) -> SignalTarget {
        match self {
            #[cfg(linux_like)]
            Mechanism::EventFd(fd) => target(fd.as_raw_fd(), KIND_EVENTFD),
            Mechanism::Pipe { write, .. } => target(write.as_raw_fd(), KIND_PIPE),
            #[cfg(kqueue)]
            Mechanism::KqueueUser(kq) => target(kq.as_raw_fd(), KIND_KQUEUE),
        }
    }

    /// Drains the fd (`EVFILT_USER` clears itself when fetched).
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 64];
        match self {
            #[cfg(linux_like)]
            Mechanism::EventFd(fd) => {
                let _ = super::read(fd.as_raw_fd(), &mut buf);
            }
            Mechanism::Pipe { read, .. } => {
                while let Ok(n) = super::read(read.as_raw_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            #[cfg(kqueue)]
            Mechanism::KqueueUser(_) => {}
        }
    }
}

/// Wakes `target` (see [`Waker::signal_target`]). Async-signal-safe: one
/// `write(2)` or `kevent(2)`, errors ignored (a full pipe or a saturated
/// eventfd already guarantees a pending wake-up).
pub(crate) fn raw_wake(target: SignalTarget) {
    if target == NO_TARGET {
        return;
    }
    let fd = (target & 0xffff_ffff) as u32 as RawFd;
    match target >> KIND_SHIFT {
        #[cfg(kqueue)]
        KIND_KQUEUE => super::kqueue::trigger_user(fd),
        kind => {
            let one: u64 = 1;
            let len = if kind == KIND_EVENTFD { 8 } else { 1 };
            // SAFETY: `one` lives for the call and is at least `len` bytes long.
            unsafe {
                libc::write(fd, (&one as *const u64).cast(), len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(waker: &Waker) -> u64 {
        let mut buf = [0u8; 64];
        let Some(fd) = waker.read_fd() else { return 0 };
        match crate::sys::read(fd, &mut buf) {
            Ok(8) if waker.mechanism() == "eventfd" => u64::from_ne_bytes(buf[..8].try_into().unwrap()),
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
    fn fd_wakes_coalesce() {
        check_coalescing(Waker::new_fd().unwrap());
    }

    #[test]
    fn pipe_wakes_coalesce() {
        check_coalescing(Waker::new_pipe().unwrap());
    }

    #[test]
    fn queued_work_is_not_woken_for_while_the_reactor_dispatches() {
        let waker = Waker::new_fd().unwrap();
        waker.set_awake();
        waker.wake_for_queued();
        assert_eq!(tokens(&waker), 0, "the dispatching reactor sees the work itself");
        waker.wake();
        assert_eq!(tokens(&waker), 1, "a plain wake always writes");
        waker.reset();
        waker.may_sleep();
        waker.wake_for_queued();
        assert_eq!(tokens(&waker), 1, "a reactor that may sleep is woken");
    }

    #[test]
    fn reset_drains_the_fd() {
        let waker = Waker::new_pipe().unwrap();
        raw_wake(waker.signal_target());
        raw_wake(waker.signal_target());
        waker.reset();
        assert_eq!(tokens(&waker), 0);
    }
}
