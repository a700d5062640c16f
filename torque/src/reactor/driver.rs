//! The reactor's one seam to its backend: an enum of the ways a backend can
//! work, so each call is a match, never a dynamic dispatch per event.
//!
//! Readiness backends (select, poll, epoll, kqueue) say an fd is ready and the
//! reactor's handlers do the I/O. Completion backends (io_uring) also run
//! operations to completion themselves — TCP receives and sends, accepts —
//! and the transports and ports take what they received and hand over what
//! to send through the calls below; for everything else they are readiness
//! backends too. On a readiness backend those calls say "not served by
//! completions" (false, `None`), so the transport does the I/O itself.

use crate::sys::fd::{OwnedFd, RawFd};
use std::io;
use std::time::Duration;

use crate::backend::{
    Change, Completions, Events, ForeignWait, OpenedSelector, ReceivedBytes, Refused, Selector, Token,
};

/// The backend behind one reactor.
pub(crate) enum Driver {
    /// select, poll, epoll, kqueue.
    Readiness(Box<dyn Selector>),
    /// io_uring: readiness for what it does not complete itself.
    Completion(Box<dyn Completions>),
}

impl From<OpenedSelector> for Driver {
    fn from(opened: OpenedSelector) -> Driver {
        match opened {
            OpenedSelector::Readiness(selector) => Driver::Readiness(selector),
            OpenedSelector::Completion(selector) => Driver::Completion(selector),
        }
    }
}

impl Driver {
    /// The readiness role, which every backend has.
    fn selector(&mut self) -> &mut dyn Selector {
        match self {
            Driver::Readiness(selector) => selector.as_mut(),
            Driver::Completion(selector) => selector.as_selector(),
        }
    }

    fn selector_ref(&self) -> &dyn Selector {
        match self {
            Driver::Readiness(selector) => selector.as_ref(),
            Driver::Completion(selector) => selector.as_selector_ref(),
        }
    }

    /// The completion role, where the backend has one.
    fn completions(&mut self) -> Option<&mut dyn Completions> {
        match self {
            Driver::Readiness(_) => None,
            Driver::Completion(selector) => Some(selector.as_mut()),
        }
    }

    /// The backend's description.
    pub(crate) fn info(&self) -> &'static crate::backend::BackendInfo {
        self.selector_ref().info()
    }

    /// Applies registration changes now (outside a pass, or before another
    /// loop waits on the backend's fd).
    pub(crate) fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
        self.selector().apply(changes, refused);
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
        self.selector().apply_and_wait(changes, refused, events, timeout)
    }

    /// Submits what the backend queued since its last wait (see
    /// [`Selector::flush`]).
    pub(crate) fn flush(&mut self) {
        self.selector().flush();
    }

    /// See [`Completions::stream_completions`]; false on a readiness backend.
    pub(crate) fn stream_completions(&mut self, fd: RawFd) -> bool {
        self.completions().is_some_and(|c| c.stream_completions(fd))
    }

    /// See [`Completions::take_received`].
    pub(crate) fn take_received(&mut self, fd: RawFd, out: &mut [u8]) -> Option<io::Result<usize>> {
        self.completions()?.take_received(fd, out)
    }

    /// See [`Completions::lend_received`].
    pub(crate) fn lend_received(&mut self, fd: RawFd) -> Option<ReceivedBytes> {
        self.completions()?.lend_received(fd)
    }

    /// See [`Completions::give_back_received`].
    pub(crate) fn give_back_received(&mut self, bytes: ReceivedBytes) {
        if let Some(completions) = self.completions() {
            completions.give_back_received(bytes);
        }
    }

    /// See [`Completions::peek_received`].
    pub(crate) fn peek_received(&mut self, fd: RawFd) -> Option<io::Result<usize>> {
        self.completions()?.peek_received(fd)
    }

    /// See [`Completions::await_room`].
    pub(crate) fn await_room(&mut self, fd: RawFd) {
        if let Some(completions) = self.completions() {
            completions.await_room(fd);
        }
    }

    /// See [`Completions::accept_completions`]; false on a readiness backend.
    pub(crate) fn accept_completions(&mut self, fd: RawFd) -> bool {
        self.completions().is_some_and(|c| c.accept_completions(fd))
    }

    /// See [`Completions::take_accepted`].
    pub(crate) fn take_accepted(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>> {
        self.completions()?.take_accepted(fd)
    }

    /// See [`Completions::send_lent`].
    pub(crate) fn send_lent(
        &mut self,
        fd: RawFd,
        buffer: Vec<u8>,
        offset: usize,
    ) -> Result<(), (io::Error, Vec<u8>)> {
        match self.completions() {
            Some(completions) => completions.send_lent(fd, buffer, offset),
            None => Err((io::ErrorKind::Unsupported.into(), buffer)),
        }
    }

    /// See [`Completions::notify_writable`].
    pub(crate) fn notify_writable(&mut self, fd: RawFd) {
        if let Some(completions) = self.completions() {
            completions.notify_writable(fd);
        }
    }

    /// See [`Completions::send_done`].
    pub(crate) fn send_done(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        self.completions()?.send_done(fd)
    }

    /// See [`Completions::take_send_result`].
    pub(crate) fn take_send_result(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        self.completions()?.take_send_result(fd)
    }

    /// See [`Completions::start_connect`]; `None` on a readiness backend.
    pub(crate) fn start_connect(&mut self, fd: RawFd, address: &socket2::SockAddr) -> Option<io::Result<()>> {
        self.completions()?.start_connect(fd, address)
    }

    /// See [`Completions::take_connect_result`].
    pub(crate) fn take_connect_result(&mut self, fd: RawFd) -> Option<io::Result<()>> {
        self.completions()?.take_connect_result(fd)
    }

    /// See [`Completions::forget_completions`].
    pub(crate) fn forget_completions(&mut self, fd: RawFd) {
        if let Some(completions) = self.completions() {
            completions.forget_completions(fd);
        }
    }

    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    pub(crate) fn watch_child(&mut self, pid: u32, token: Token) -> io::Result<()> {
        self.selector().watch_child(pid, token)
    }

    pub(crate) fn unwatch_child(&mut self, pid: u32) {
        self.selector().unwatch_child(pid);
    }

    pub(crate) fn watch_fd(&self) -> Option<RawFd> {
        self.selector_ref().watch_fd()
    }

    pub(crate) fn foreign_wait(&self) -> Option<ForeignWait> {
        self.selector_ref().foreign_wait()
    }
}
