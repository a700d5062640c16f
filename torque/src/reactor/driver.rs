//! The reactor's one seam to its backend: an enum of the ways a backend can
//! work, so each call is a match, never a dynamic dispatch per event.
//!
//! Readiness backends (select, poll, epoll, kqueue) say an fd is ready and the
//! reactor's handlers do the I/O. io_uring is a readiness backend too, with
//! optional stream hooks: for TCP connections the ring runs the receives and
//! sends itself, and the transport takes what was received and hands over what
//! to send through the calls below. A backend whose every operation is a
//! completion (IOCP) gets its own variant here.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use crate::backend::{Change, Events, ForeignWait, ReceivedBytes, Refused, Selector, Token};

/// The backend behind one reactor.
pub(crate) enum Driver {
    /// select, poll, epoll, kqueue, io_uring.
    Readiness(Box<dyn Selector>),
}

impl Driver {
    /// Applies registration changes now (outside a pass, or before another
    /// loop waits on the backend's fd).
    pub(crate) fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
        match self {
            Driver::Readiness(selector) => selector.apply(changes, refused),
        }
    }

    /// Applies `changes` and waits for events: one system call where the
    /// backend allows it.
    pub(crate) fn wait(
        &mut self,
        changes: &[Change],
        refused: &mut Vec<Refused>,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self {
            Driver::Readiness(selector) => selector.apply_and_wait(changes, refused, events, timeout),
        }
    }

    /// Submits what the backend queued since its last wait (see
    /// [`Selector::flush`]).
    pub(crate) fn flush(&mut self) {
        match self {
            Driver::Readiness(selector) => selector.flush(),
        }
    }

    /// See [`Selector::stream_completions`].
    pub(crate) fn stream_completions(&mut self, fd: RawFd) -> bool {
        match self {
            Driver::Readiness(selector) => selector.stream_completions(fd),
        }
    }

    /// See [`Selector::take_received`].
    pub(crate) fn take_received(&mut self, fd: RawFd, out: &mut [u8]) -> Option<io::Result<usize>> {
        match self {
            Driver::Readiness(selector) => selector.take_received(fd, out),
        }
    }

    /// See [`Selector::lend_received`].
    pub(crate) fn lend_received(&mut self, fd: RawFd) -> Option<ReceivedBytes> {
        match self {
            Driver::Readiness(selector) => selector.lend_received(fd),
        }
    }

    /// See [`Selector::give_back_received`].
    pub(crate) fn give_back_received(&mut self, bytes: ReceivedBytes) {
        match self {
            Driver::Readiness(selector) => selector.give_back_received(bytes),
        }
    }

    /// See [`Selector::peek_received`].
    pub(crate) fn peek_received(&mut self, fd: RawFd) -> Option<io::Result<usize>> {
        match self {
            Driver::Readiness(selector) => selector.peek_received(fd),
        }
    }

    /// See [`Selector::await_room`].
    pub(crate) fn await_room(&mut self, fd: RawFd) {
        match self {
            Driver::Readiness(selector) => selector.await_room(fd),
        }
    }

    /// See [`Selector::accept_completions`].
    pub(crate) fn accept_completions(&mut self, fd: RawFd) -> bool {
        match self {
            Driver::Readiness(selector) => selector.accept_completions(fd),
        }
    }

    /// See [`Selector::take_accepted`].
    pub(crate) fn take_accepted(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>> {
        match self {
            Driver::Readiness(selector) => selector.take_accepted(fd),
        }
    }

    /// See [`Selector::send_lent`].
    pub(crate) fn send_lent(
        &mut self,
        fd: RawFd,
        buffer: Vec<u8>,
        offset: usize,
    ) -> Result<(), (io::Error, Vec<u8>)> {
        match self {
            Driver::Readiness(selector) => selector.send_lent(fd, buffer, offset),
        }
    }

    /// See [`Selector::notify_writable`].
    pub(crate) fn notify_writable(&mut self, fd: RawFd) {
        match self {
            Driver::Readiness(selector) => selector.notify_writable(fd),
        }
    }

    /// See [`Selector::send_done`].
    pub(crate) fn send_done(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        match self {
            Driver::Readiness(selector) => selector.send_done(fd),
        }
    }

    /// See [`Selector::forget_completions`].
    pub(crate) fn forget_completions(&mut self, fd: RawFd) {
        match self {
            Driver::Readiness(selector) => selector.forget_completions(fd),
        }
    }

    pub(crate) fn watch_child(&mut self, pid: u32, token: Token) -> io::Result<()> {
        match self {
            Driver::Readiness(selector) => selector.watch_child(pid, token),
        }
    }

    pub(crate) fn unwatch_child(&mut self, pid: u32) {
        match self {
            Driver::Readiness(selector) => selector.unwatch_child(pid),
        }
    }

    pub(crate) fn watch_fd(&self) -> Option<RawFd> {
        match self {
            Driver::Readiness(selector) => selector.watch_fd(),
        }
    }

    pub(crate) fn foreign_wait(&self) -> Option<ForeignWait> {
        match self {
            Driver::Readiness(selector) => selector.foreign_wait(),
        }
    }
}
