//! `kqueue(2)` and `kevent(2)` on macOS and the BSDs: the calls the kqueue
//! backend and the waker share (the waker's trigger must be reachable from a
//! signal handler, which lives in this layer).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::cvt;

/// The `EVFILT_USER` identifier of a reactor's cross-thread wake.
pub(crate) const WAKE_IDENT: usize = 0x746f_7271;

/// A new kqueue, close-on-exec.
pub(crate) fn kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue has no arguments.
    let fd = cvt(unsafe { libc::kqueue() })?;
    // SAFETY: the fd was just created and nothing else owns it.
    let kq = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_SETFD on an fd we own. (kqueues are not inherited across fork
    // anyway; this keeps exec from leaking the number.)
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(kq)
}

/// One `struct kevent`: the other fields (and FreeBSD's `ext`) zeroed.
pub(crate) fn event(ident: usize, filter: i16, flags: u16, fflags: u32, udata: u64) -> libc::kevent {
    // SAFETY: an all-zero kevent is a valid value.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = ident as _;
    ev.filter = filter as _;
    ev.flags = flags as _;
    ev.fflags = fflags as _;
    ev.udata = udata as _;
    ev
}

/// The token stored in an event's `udata`.
pub(crate) fn udata(ev: &libc::kevent) -> u64 {
    ev.udata as u64
}

/// Submits `changes` and waits up to `timeout` (`None`: forever) for events,
/// which fill `events` up to its capacity (its length is set to the count).
/// EINTR returns with no events.
pub(crate) fn kevent(
    kq: RawFd,
    changes: &[libc::kevent],
    events: &mut Vec<libc::kevent>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    events.clear();
    let spec;
    let spec_ptr = match timeout {
        None => std::ptr::null(),
        Some(d) => {
            // Cap far-future timeouts (as the other backends do) so the seconds fit.
            let d = d.min(Duration::from_secs(i32::MAX as u64));
            spec = libc::timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ };
            &spec as *const libc::timespec
        }
    };
    // SAFETY: `changes` is a valid array of its length; `events` has room for
    // `capacity` entries and the kernel writes at most that many; `spec_ptr` is
    // null or points at a live timespec.
    let n = unsafe {
        libc::kevent(
            kq,
            changes.as_ptr(),
            changes.len() as _,
            events.as_mut_ptr(),
            events.capacity() as _,
            spec_ptr,
        )
    };
    match cvt(n) {
        Ok(n) => {
            // SAFETY: the kernel initialised the first `n` entries.
            unsafe { events.set_len(n as usize) };
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

/// Triggers the `EVFILT_USER` wake event on `kq`. Async-signal-safe: one
/// `kevent(2)`, the error ignored (the kqueue may be closing).
pub(crate) fn trigger_user(kq: RawFd) {
    let trigger = event(WAKE_IDENT, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER, 0);
    // SAFETY: one valid change, no event list, no timeout pointer needed
    // (nothing is waited for).
    unsafe {
        libc::kevent(kq, &trigger, 1, std::ptr::null_mut(), 0, std::ptr::null());
    }
}
