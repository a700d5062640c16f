//! The readiness interface and its implementations, one file per OS mechanism.
//!
//! A backend registers fds under a [`Token`] with an [`Interest`], waits with a timeout
//! and fills an [`Events`] buffer. All backends are level-triggered, as in Twisted: an
//! fd that is still readable is reported again on the next wait. Each owns a
//! [`Waker`] that any thread may trigger and that never surfaces as an event.
//!
//! [`BackendKind::info`] is the single description of each backend (name, platforms,
//! limits, features); the README's table repeats it, and the planned `torque
//! reactors` command is to print it.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
mod poll;
mod select;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ReactorError;
pub use crate::sys::waker::Waker;

/// Identifies one registration. The reactor packs a slot index and a generation into
/// it, so an event for a registration that was removed (or whose fd number was
/// reused) is recognised as stale and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// Which readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interest {
    /// Report when the fd is readable (or at EOF, or in error).
    pub read: bool,
    /// Report when the fd is writable (or in error).
    pub write: bool,
}

impl Interest {
    /// Interest in reads only.
    pub const READ: Interest = Interest { read: true, write: false };
    /// Interest in writes only.
    pub const WRITE: Interest = Interest { read: false, write: true };
    /// Interest in both.
    pub const BOTH: Interest = Interest { read: true, write: true };

    /// Whether neither direction is wanted.
    pub fn is_empty(self) -> bool {
        !self.read && !self.write
    }
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The registration's token.
    pub token: Token,
    /// Readable, at EOF, or in error: a read will not block.
    pub readable: bool,
    /// Writable or in error: a write will not block.
    pub writable: bool,
    /// The fd is no longer open (POLLNVAL, or EBADF found by select).
    pub invalid: bool,
}

/// A reusable buffer of events, so waiting allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct Events {
    list: Vec<Event>,
}

impl Events {
    /// An empty buffer with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }
    /// Removes all events, keeping the allocation.
    pub fn clear(&mut self) {
        self.list.clear();
    }
    /// Appends one event.
    pub fn push(&mut self, event: Event) {
        self.list.push(event);
    }
    /// The number of events.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// The event at `index`.
    pub fn get(&self, index: usize) -> Option<Event> {
        self.list.get(index).copied()
    }
    /// Iterates over the events.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.list.iter()
    }
}

/// The OS readiness mechanism behind a reactor.
///
/// Implementations are `Send` so that a later foreign-loop integration can run the
/// blocking [`wait`](Poller::wait) on a helper thread.
pub trait Poller: Send {
    /// This backend's description.
    fn info(&self) -> &'static BackendInfo;
    /// Starts watching `fd`.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Changes the token or interest of a watched fd.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`. An fd the OS already forgot (closed) is not an error.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Blocks until an fd is ready, the waker fires, or `timeout` passes (`None`:
    /// forever), then fills `events` (cleared first). EINTR returns with no events.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;
    /// The waker that interrupts [`wait`](Poller::wait) from any thread.
    fn waker(&self) -> &Arc<Waker>;
    /// An fd another event loop can watch for readability: the epoll fd itself
    /// (ready whenever an event is pending). `None` where the interest set lives
    /// in user memory (select, poll).
    fn watch_fd(&self) -> Option<RawFd>;
    /// A wait that can run on another thread (`Reactor::interleave`): a copy of
    /// the interest set (select, poll), or a second handle on the kernel's
    /// (epoll).
    fn wait_set(&self) -> Box<dyn WaitSet>;
    /// Whether a [`wait_set`](Poller::wait_set) sees later registrations by
    /// itself (epoll: they go to the kernel object it shares). A copy does not:
    /// the interleaving reactor then wakes the wait and sends a fresh one.
    fn wait_set_is_live(&self) -> bool {
        false
    }
}

/// A blocking wait detached from its [`Poller`], to run on a helper thread.
pub trait WaitSet: Send {
    /// As [`Poller::wait`].
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;
}

/// The backends Torque knows, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Linux `epoll(7)`: O(ready) per wait.
    Epoll,
    /// POSIX `poll(2)`: O(registered) per wait, no fd limit.
    Poll,
    /// POSIX `select(2)`: O(highest fd) per wait, fds below `FD_SETSIZE` only.
    Select,
}

/// Whether a reactor feature works on a backend yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented and covered by the conformance suite.
    Yes,
    /// Not built yet in this version of Torque (planned).
    Planned,
    /// The mechanism cannot offer it.
    No,
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width and alignment flags work in tables.
        f.pad(match self {
            Support::Yes => "yes",
            Support::Planned => "planned",
            Support::No => "no",
        })
    }
}

/// The feature columns of the reactor table in Twisted's "Choosing a Reactor".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// Timers (`call_later`) and cooperative scheduling.
    pub scheduling: Support,
    /// `call_from_thread`, `call_in_thread` and the thread pool.
    pub threads: Support,
    /// TCP and UNIX stream transports.
    pub tcp: Support,
    /// TLS over stream transports.
    pub tls: Support,
    /// UDP and UNIX datagram sockets.
    pub udp: Support,
    /// Child processes.
    pub processes: Support,
}

/// What a backend is and can do: the one place each backend describes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Which backend.
    pub kind: BackendKind,
    /// The name used by `TORQUE_REACTOR` (and the planned command's `-r`).
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Stable or experimental.
    pub status: &'static str,
    /// Platforms it runs on.
    pub platforms: &'static str,
    /// The highest fd number it accepts plus one (select's `FD_SETSIZE`), if limited.
    pub fd_limit: Option<usize>,
    /// How the cost of one wait grows.
    pub wait_cost: &'static str,
    /// Whether a registered fd that is closed is reported (and then dropped with
    /// `connection_lost`); epoll forgets closed fds silently instead.
    pub reports_closed_fds: bool,
    /// Feature support.
    pub features: Features,
}

const CORE_FEATURES: Features = Features {
    scheduling: Support::Yes,
    threads: Support::Yes,
    tcp: Support::Yes,
    tls: Support::Yes,
    udp: Support::Yes,
    processes: Support::Yes,
};

const EPOLL_INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Epoll,
    name: "epoll",
    summary: "Linux epoll(7), level-triggered; the default on Linux",
    status: "stable",
    platforms: "Linux",
    fd_limit: None,
    wait_cost: "O(ready fds)",
    reports_closed_fds: false,
    features: CORE_FEATURES,
};

const POLL_INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Poll,
    name: "poll",
    summary: "POSIX poll(2); no fd limit, cost grows with registered fds",
    status: "stable",
    platforms: "Linux, macOS, BSD, other POSIX",
    fd_limit: None,
    wait_cost: "O(registered fds)",
    reports_closed_fds: true,
    features: CORE_FEATURES,
};

const SELECT_INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Select,
    name: "select",
    summary: "POSIX select(2); the most portable, fds below FD_SETSIZE only",
    status: "stable",
    platforms: "Linux, macOS, BSD, other POSIX",
    fd_limit: Some(libc::FD_SETSIZE),
    wait_cost: "O(highest fd)",
    reports_closed_fds: true,
    features: CORE_FEATURES,
};

impl BackendKind {
    /// Every backend compiled into this build, best first.
    pub fn all() -> &'static [BackendKind] {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            &[BackendKind::Epoll, BackendKind::Poll, BackendKind::Select]
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            &[BackendKind::Poll, BackendKind::Select]
        }
    }

    /// The best backend for this platform.
    pub fn platform_default() -> BackendKind {
        BackendKind::all()[0]
    }

    /// The backend's description.
    pub fn info(self) -> &'static BackendInfo {
        match self {
            BackendKind::Epoll => &EPOLL_INFO,
            BackendKind::Poll => &POLL_INFO,
            BackendKind::Select => &SELECT_INFO,
        }
    }

    /// The backend's name (`"epoll"`, `"poll"`, `"select"`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Opens this backend.
    pub fn open(self) -> Result<Box<dyn Poller>, ReactorError> {
        if !BackendKind::all().contains(&self) {
            return Err(ReactorError::BackendUnavailable { name: self.name() });
        }
        let waker = Arc::new(Waker::new().map_err(ReactorError::Os)?);
        let poller: Box<dyn Poller> = match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            BackendKind::Epoll => Box::new(epoll::EpollPoller::new(waker)?),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            BackendKind::Epoll => unreachable!("checked against BackendKind::all above"),
            BackendKind::Poll => Box::new(poll::PollPoller::new(waker)),
            BackendKind::Select => Box::new(select::SelectPoller::new(waker).map_err(ReactorError::Os)?),
        };
        Ok(poller)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = ReactorError;

    /// Parses a backend name, case-insensitively; an unknown name is an error that
    /// lists the backends available here.
    fn from_str(name: &str) -> Result<BackendKind, ReactorError> {
        let wanted = name.trim().to_ascii_lowercase();
        BackendKind::all().iter().copied().find(|k| k.name() == wanted).ok_or_else(|| {
            ReactorError::UnknownBackend { name: name.to_owned(), available: available_names() }
        })
    }
}

/// The names of the compiled-in backends, comma-separated.
pub(crate) fn available_names() -> String {
    BackendKind::all().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}
