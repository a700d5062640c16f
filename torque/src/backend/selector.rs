//! The readiness interface every readiness backend implements, split by role:
//! the registry (changes, applied in batches), the wait, child exits, and the
//! optional foreign-loop capabilities. The cross-thread wake is the backend's
//! [`Waker`](crate::sys::waker::Waker), made when the backend opens.

use crate::sys::fd::{OwnedFd, RawFd};
use std::io;
use std::time::Duration;

use super::BackendInfo;

/// Identifies one registration. The reactor packs a slot index and a generation into
/// it, so an event for a registration that was removed (or whose fd number was
/// reused) is recognised as stale and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    /// The token of changes whose failure means nothing (a removal: the fd may
    /// have been closed, and the kernel forgot it already).
    pub(crate) const IGNORED: Token = Token(u64::MAX);

    /// Not a registration: the thread's window messages are waiting (wfmo,
    /// whose wait includes the message queue). The reactor pumps them.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) const WINDOW_MESSAGES: Token = Token(u64::MAX - 1);
}

/// Which readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    /// Report when the fd is readable (or at EOF, or in error).
    pub(crate) read: bool,
    /// Report when the fd is writable (or in error).
    pub(crate) write: bool,
}

impl Interest {
    /// Interest in reads only.
    pub(crate) const READ: Interest = Interest { read: true, write: false };
    /// Interest in writes only.
    pub(crate) const WRITE: Interest = Interest { read: false, write: true };
    /// Interest in both.
    pub(crate) const BOTH: Interest = Interest { read: true, write: true };
    /// No interest: not registered.
    pub(crate) const NONE: Interest = Interest { read: false, write: false };

    /// Whether neither direction is wanted.
    pub(crate) fn is_empty(self) -> bool {
        !self.read && !self.write
    }
}

/// One registration change, from what the backend was last told (`old` under
/// `old_token`) to what is wanted now (`new` under `token`), for fd `fd`. An
/// empty `new` removes the fd; an empty `old` adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) fd: RawFd,
    pub(crate) token: Token,
    pub(crate) old_token: Token,
    pub(crate) old: Interest,
    pub(crate) new: Interest,
}

/// A change the OS refused, with why.
pub(crate) type Refused = (Token, io::Error);

/// Received bytes lent straight out of a backend's memory (io_uring's
/// provided buffer ring), so a protocol reads them without a copy. They go
/// back with [`Selector::give_back_received`]; until then the backend neither
/// reuses nor frees that memory. Only io_uring makes them (Linux).
#[cfg_attr(not(linux_like), allow(dead_code))]
pub(crate) struct ReceivedBytes {
    start: std::ptr::NonNull<u8>,
    len: usize,
    /// The backend's name for the memory (a buffer number).
    pub(in crate::backend) id: u16,
}

#[cfg_attr(not(linux_like), allow(dead_code))]
impl ReceivedBytes {
    /// Lends `bytes`, which must stay valid and unchanged until this value is
    /// given back to the backend that made it (its buffer `id`).
    pub(in crate::backend) fn lend(bytes: &[u8], id: u16) -> ReceivedBytes {
        ReceivedBytes { start: std::ptr::NonNull::from(bytes).cast(), len: bytes.len(), id }
    }
}

impl std::ops::Deref for ReceivedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: made by `lend` from a live slice of backend memory that the
        // backend keeps valid and untouched until this value is given back
        // (`Selector::give_back_received`), which consumes it; the reactor
        // (and its backend) outlives the read that holds it.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The registration's token.
    pub(crate) token: Token,
    /// Readable, at EOF, or in error: a read will not block. (For a watched
    /// child: it exited.)
    pub(crate) readable: bool,
    /// Writable or in error: a write will not block.
    pub(crate) writable: bool,
    /// The fd is no longer open (POLLNVAL, or EBADF found by select).
    pub(crate) invalid: bool,
}

/// A reusable buffer of events, so waiting allocates nothing once warmed up.
#[derive(Debug, Default)]
pub(crate) struct Events {
    list: Vec<Event>,
}

impl Events {
    /// An empty buffer with room for `capacity` events.
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }
    /// Removes all events, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
    /// Appends one event.
    pub(crate) fn push(&mut self, event: Event) {
        self.list.push(event);
    }
    /// The number of events.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
    /// The event at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<Event> {
        self.list.get(index).copied()
    }
    /// The event at `index`, to merge another report into it (wfmo).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Event> {
        self.list.get_mut(index)
    }
}

/// A readiness backend. Level-triggered, as in Twisted: an fd that is still
/// readable is reported again on the next wait. Implementations are `Send` so
/// that a wait set can run on a helper thread (`Reactor::interleave`).
pub(crate) trait Selector: Send {
    /// This backend's description.
    fn info(&self) -> &'static BackendInfo;

    /// Applies registration changes now, in order. A change the OS refuses is
    /// reported in `refused` (removals of fds the OS already forgot are not).
    fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>);

    /// Blocks until an fd is ready, the waker fires, or `timeout` passes
    /// (`None`: forever), then fills `events` (cleared first). EINTR returns
    /// with no events.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;

    /// Applies `changes`, then waits: a backend whose wait call takes changes
    /// (kqueue's `kevent`) does both in one system call.
    fn apply_and_wait(
        &mut self,
        changes: &[Change],
        refused: &mut Vec<Refused>,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.apply(changes, refused);
        self.wait(events, timeout)
    }

    /// Reports child `pid`'s exit as a readable event for `token` (kqueue's
    /// `EVFILT_PROC`). Backends whose [`ChildExit`](super::ChildExit) is not
    /// `ProcFilter` refuse with `Unsupported`.
    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    fn watch_child(&mut self, pid: u32, token: Token) -> io::Result<()> {
        let _ = (pid, token);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Stops watching child `pid` (already reaped is not an error).
    fn unwatch_child(&mut self, pid: u32) {
        let _ = pid;
    }

    /// Submits work the backend queued since its last wait (io_uring's re-armed
    /// polls), before another loop waits on [`watch_fd`](Selector::watch_fd)
    /// or a helper thread on [`foreign_wait`](Selector::foreign_wait).
    fn flush(&mut self) {}

    /// Optional: an fd another event loop can watch for readability, ready
    /// whenever this backend has events (the epoll or kqueue fd).
    fn watch_fd(&self) -> Option<RawFd> {
        None
    }

    /// Optional: a wait that can run on another thread (`Reactor::interleave`).
    fn foreign_wait(&self) -> Option<ForeignWait> {
        None
    }
}

/// A backend that also runs operations to completion itself (io_uring): TCP
/// sockets' receives and sends, listening sockets' accepts. The reactor holds
/// such a backend as `Driver::Completion` (`reactor/driver.rs`) and asks
/// these before a transport or port registers; readiness backends have none of
/// them. Everything else (user fds, pipes, UNIX sockets, pidfds) still goes
/// through the [`Selector`] role.
pub(crate) trait Completions: Selector {
    /// This backend in its readiness role (`self`; spelled out so the crate
    /// needs no trait upcasting, Rust 1.86).
    fn as_selector(&mut self) -> &mut dyn Selector;

    /// As [`as_selector`](Completions::as_selector), shared.
    fn as_selector_ref(&self) -> &dyn Selector;

    /// Asks that `fd` (a stream socket) be served by completions: its reads
    /// taken with [`take_received`](Completions::take_received) instead of
    /// readiness plus `read(2)`, its writes handed over with
    /// [`send_lent`](Completions::send_lent) (io_uring's multishot receive and
    /// sends); false if this backend does not. Asked by a stream transport
    /// before it registers the fd.
    fn stream_completions(&mut self, fd: RawFd) -> bool;

    /// As `read(2)` on `fd`, from what its receives delivered (`None`: `fd`
    /// does not receive completions; read it yourself).
    fn take_received(&mut self, fd: RawFd, out: &mut [u8]) -> Option<io::Result<usize>>;

    /// What `fd`'s receives delivered, lent without a copy, when it is all
    /// that waits in one piece of backend memory (`None`: use
    /// [`take_received`](Completions::take_received)). Give it back with
    /// [`give_back_received`](Completions::give_back_received).
    fn lend_received(&mut self, fd: RawFd) -> Option<ReceivedBytes>;

    /// Takes back what [`lend_received`](Completions::lend_received) lent.
    fn give_back_received(&mut self, bytes: ReceivedBytes);

    /// As a one-byte `MSG_PEEK` on `fd`, from what its receives delivered.
    fn peek_received(&mut self, fd: RawFd) -> Option<io::Result<usize>>;

    /// Starts sending `buffer[offset..]` (or its start) on `fd`. The buffer
    /// moves in, so nothing can move or free the bytes while the kernel reads
    /// them; it comes back with the result from
    /// [`send_done`](Completions::send_done) (or with the error, if the send
    /// could not start: `WouldBlock` while a send is in flight or its result
    /// waits). Its completion is announced as writable to a registered writer.
    fn send_lent(&mut self, fd: RawFd, buffer: Vec<u8>, offset: usize) -> Result<(), (io::Error, Vec<u8>)>;

    /// A write made directly on completion-served `fd` (`sendfile` of a
    /// file body, zero-copy) found the socket full: announce it writable once
    /// the kernel says it has room again, not at once as after a send.
    fn await_room(&mut self, fd: RawFd);

    /// Asks that listening socket `fd`'s connections arrive by completions
    /// (io_uring's multishot accept), taken with
    /// [`take_accepted`](Completions::take_accepted) instead of readiness plus
    /// `accept(2)`; false if this backend does not. Asked before the port
    /// registers the fd.
    fn accept_completions(&mut self, fd: RawFd) -> bool;

    /// As `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` on `fd`, from what
    /// its accepts delivered (`None`: `fd` does not accept by completions).
    fn take_accepted(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>>;

    /// The transport of completion-served `fd` wants to hear once it can write
    /// (a pull producer, a direct write that found the socket full): announce
    /// it writable when no send is in flight, until its next
    /// [`send_done`](Completions::send_done).
    fn notify_writable(&mut self, fd: RawFd);

    /// The finished send's result (bytes sent, or its error) and the buffer
    /// it was lent, once; the transport is handling its writable event, so
    /// a `notify_writable` ends here too. A send that took everything it was
    /// given is announced only if the transport asked (`notify_writable`);
    /// otherwise its result waits for [`take_send_result`](Completions::take_send_result).
    fn send_done(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)>;

    /// As [`send_done`](Completions::send_done), outside a writable event (the
    /// transport settles a finished send before it writes or decides on its
    /// buffer): a `notify_writable` stays.
    fn take_send_result(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)>;

    /// Starts connecting stream socket `fd` to `address` by a completion
    /// (IOCP's `ConnectEx`, binding the socket first if it is not): `None`
    /// if this backend does not (call `connect` yourself), else whether it
    /// started. Its end is announced as writable to the registration, and
    /// its result taken with [`take_connect_result`](Completions::take_connect_result).
    fn start_connect(&mut self, _fd: RawFd, _address: &socket2::SockAddr) -> Option<io::Result<()>> {
        None
    }

    /// The finished connect's result, once (`None`: no connect by completion
    /// finished for `fd`; read `SO_ERROR`).
    fn take_connect_result(&mut self, _fd: RawFd) -> Option<io::Result<()>> {
        None
    }

    /// `fd`'s owner is closing it: drop what its completions hold (received
    /// bytes not read, accepted connections not taken, which are closed) and
    /// cancel what is in flight.
    fn forget_completions(&mut self, fd: RawFd);
}

/// A blocking wait detached from its [`Selector`], to run on a helper thread.
pub(crate) trait WaitSet: Send {
    /// As [`Selector::wait`].
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;
}

impl<S: Selector> WaitSet for S {
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        Selector::wait(self, events, timeout)
    }
}

/// How a backend waits on a helper thread.
#[cfg_attr(not(unix), allow(dead_code))] // wfmo has no foreign wait yet
pub(crate) enum ForeignWait {
    /// A second handle on the kernel's interest set (epoll, kqueue): changes
    /// applied on the reactor's thread reach a wait already in flight.
    Live(Box<dyn WaitSet>),
    /// A copy of an interest set kept in user memory (select, poll): the
    /// reactor wakes the wait and sends a fresh copy after each change.
    Snapshot(Box<dyn WaitSet>),
    /// A wait that only learns that events are there (io_uring: its fd is
    /// readable; iocp: it takes the port's packets and keeps them for the
    /// selector), live like `Live`; the reactor's thread then collects them
    /// with a wait of zero.
    #[cfg_attr(not(any(linux_like, windows)), allow(dead_code))]
    Reap(Box<dyn WaitSet>),
    /// A wait on a copy of the backend's handles that only learns that
    /// events are there (wfmo: its event objects), sent afresh after each
    /// change like `Snapshot`; the reactor's thread collects like `Reap`.
    #[cfg_attr(not(windows), allow(dead_code))]
    ReapSnapshot(Box<dyn WaitSet>),
}
