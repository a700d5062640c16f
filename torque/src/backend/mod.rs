//! The backends: one file per OS mechanism, each describing itself.
//!
//! [`BackendKind::info`] is the single description of each backend (name,
//! platforms, status, limits, capabilities); `torque reactors` prints it, the
//! README's table is its output, and the conformance suite reads it to decide
//! which cases a backend runs and which must fail with a clear "unsupported"
//! error.
//!
//! Adding a backend: write `backend/NAME.rs` with its `INFO`, an `ENTRY`
//! (`open` only where the platform has it) and its [`Selector`]; add its
//! [`BackendKind`] variant and its `ENTRY` to [`BACKENDS`]. Everything else —
//! `-r NAME`, `TORQUE_REACTOR`, `torque reactors`, every conformance case on
//! it — follows from that list.

mod epoll;
mod io_uring;
mod iocp;
mod kqueue;
mod poll;
mod select;
pub(crate) mod selector;
mod wfmo;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use crate::error::ReactorError;
use crate::sys::waker::Waker;
pub(crate) use selector::{
    Change, Completions, Event, Events, ForeignWait, Interest, ReceivedBytes, Refused, Selector, Token,
    WaitSet,
};

/// The backends Torque has, on any platform; [`BackendKind::all`] lists those
/// compiled into this build.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Linux `epoll(7)`: O(ready) per wait.
    Epoll,
    /// Linux `io_uring(7)`: changes, re-arms and the wait in one ring enter per pass.
    IoUring,
    /// macOS and BSD `kqueue(2)`: O(ready) per wait, changes sent with the wait.
    Kqueue,
    /// POSIX `poll(2)`: O(registered) per wait, no fd limit.
    Poll,
    /// POSIX `select(2)`: O(highest fd) per wait, fds below `FD_SETSIZE` only.
    Select,
    /// Windows I/O completion ports: socket readiness as poll requests whose
    /// answers arrive on the port, no socket limit.
    Iocp,
    /// Windows `WaitForMultipleObjects`: sockets through `WSAEventSelect`, and
    /// window messages in the same wait; 62 sockets at most.
    Wfmo,
}

/// How far a backend has been proven.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passes the whole conformance suite in CI.
    Stable,
    /// Works and is tested, with known gaps.
    Experimental,
    /// Compiled for its platforms in CI, with its tests; not run there (no
    /// such machine in CI yet).
    CompileChecked,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Stable => "stable",
            Status::Experimental => "experimental",
            Status::CompileChecked => "compile-checked",
        })
    }
}

/// Whether a reactor feature works on a backend.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented and covered by the conformance suite.
    Yes,
    /// Not built yet in this version of Torque (planned).
    Planned,
    /// The mechanism cannot offer it.
    No,
}

impl Support {
    /// Whether it works now.
    pub fn is_yes(self) -> bool {
        self == Support::Yes
    }
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

/// Something a program (or a conformance case) may need from a backend.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Timers (`call_later`) and cooperative scheduling.
    Scheduling,
    /// `call_from_thread`, `call_in_thread` and the thread pool.
    Threads,
    /// TCP stream transports.
    Tcp,
    /// TLS over stream transports.
    Tls,
    /// UDP and multicast.
    Udp,
    /// UNIX stream and datagram sockets (with fd passing).
    UnixSockets,
    /// Child processes, with pipes and PTYs.
    Processes,
    /// `add_reader` / `add_writer` on any fd (Twisted's `IReactorFDSet`).
    FdSets,
    /// One fd another event loop can watch ([`Reactor::watch_fd`](crate::Reactor::watch_fd)):
    /// what `torque-glib` and `torque-cf` drive.
    WatchFd,
    /// [`Reactor::interleave`](crate::Reactor::interleave): the wait on a helper thread.
    Interleave,
}

impl Capability {
    /// Every capability, in table order.
    pub const ALL: [Capability; 10] = [
        Capability::Scheduling,
        Capability::Threads,
        Capability::Tcp,
        Capability::Tls,
        Capability::Udp,
        Capability::UnixSockets,
        Capability::Processes,
        Capability::FdSets,
        Capability::WatchFd,
        Capability::Interleave,
    ];

    /// The short name used in tables (`fd-sets`, `watch-fd`, …).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Scheduling => "scheduling",
            Capability::Threads => "threads",
            Capability::Tcp => "tcp",
            Capability::Tls => "tls",
            Capability::Udp => "udp",
            Capability::UnixSockets => "unix",
            Capability::Processes => "processes",
            Capability::FdSets => "fd-sets",
            Capability::WatchFd => "watch-fd",
            Capability::Interleave => "interleave",
        }
    }

    /// What to do instead, for the "unsupported" error.
    pub(crate) fn instead(self) -> &'static str {
        match self {
            Capability::WatchFd => {
                "use Reactor::interleave, or call iterate(Duration::ZERO) from the other loop's timer"
            }
            Capability::FdSets => "use the transports (TCP, UNIX, pipes), which every backend serves",
            _ => "choose another backend (torque reactors lists them)",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What each [`Capability`] is on a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// Timers (`call_later`) and cooperative scheduling.
    pub scheduling: Support,
    /// `call_from_thread`, `call_in_thread` and the thread pool.
    pub threads: Support,
    /// TCP stream transports.
    pub tcp: Support,
    /// TLS over stream transports.
    pub tls: Support,
    /// UDP and multicast.
    pub udp: Support,
    /// UNIX stream and datagram sockets.
    pub unix_sockets: Support,
    /// Child processes.
    pub processes: Support,
    /// `add_reader` / `add_writer`.
    pub fd_sets: Support,
    /// An fd another loop can watch.
    pub watch_fd: Support,
    /// `Reactor::interleave`.
    pub interleave: Support,
}

impl Features {
    /// The support for one capability.
    pub fn get(&self, capability: Capability) -> Support {
        match capability {
            Capability::Scheduling => self.scheduling,
            Capability::Threads => self.threads,
            Capability::Tcp => self.tcp,
            Capability::Tls => self.tls,
            Capability::Udp => self.udp,
            Capability::UnixSockets => self.unix_sockets,
            Capability::Processes => self.processes,
            Capability::FdSets => self.fd_sets,
            Capability::WatchFd => self.watch_fd,
            Capability::Interleave => self.interleave,
        }
    }
}

/// How a backend delivers events.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoModel {
    /// The OS says an fd is ready; the reactor then reads or writes it.
    Readiness,
    /// The OS runs the reads and writes and reports them done (io_uring, IOCP).
    Completion,
}

/// How a backend learns that a child process exited.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// A pidfd per child, watched like any fd (Linux 5.3+).
    Pidfd,
    /// kqueue's `EVFILT_PROC`: the kernel reports the exit, no signal handler.
    ProcFilter,
    /// A SIGCHLD handler (chained to the previous one) wakes the reactor,
    /// which checks only its own children.
    Sigchld,
    /// Windows: the child's process handle, signalled once it exits, waited
    /// on by the Win32 event helper threads (`Reactor::add_event`).
    ProcessHandle,
}

/// How another thread wakes a backend's wait.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// An eventfd (Linux).
    EventFd,
    /// A non-blocking pipe.
    Pipe,
    /// kqueue's `EVFILT_USER` event: no fd at all.
    UserEvent,
    /// A Win32 event object the wait includes.
    Event,
    /// A packet posted to the backend's completion port.
    PortPacket,
}

/// How a backend hears SIGINT and SIGTERM.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalDelivery {
    /// A process-wide handler records the signal and wakes the reactor through
    /// its [`Wake`] mechanism (the handler's one async-signal-safe call).
    Handler,
    /// Windows: a console control handler (Ctrl-C as SIGINT; Ctrl-Break and
    /// closing the console as SIGTERM) records the request and wakes the
    /// reactor through its [`Wake`] mechanism.
    ConsoleHandler,
}

/// What a backend is and can do: the one place each backend describes itself.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Which backend.
    pub kind: BackendKind,
    /// The name used by `-r` and `TORQUE_REACTOR`.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// How far it has been proven.
    pub status: Status,
    /// Platforms it runs on.
    pub platforms: &'static str,
    /// Readiness or completion.
    pub io_model: IoModel,
    /// The highest fd number it accepts plus one (select's `FD_SETSIZE`), if limited.
    pub fd_limit: Option<usize>,
    /// The most fds one reactor can watch at once, if limited (wfmo: 62, from
    /// WaitForMultipleObjects' 64 handles); one more is refused with an error
    /// that says so.
    pub most_registrations: Option<usize>,
    /// How the cost of one wait grows.
    pub wait_cost: &'static str,
    /// Whether a registered fd that is closed is reported (and then dropped with
    /// `connection_lost`); epoll and kqueue forget closed fds silently instead.
    pub reports_closed_fds: bool,
    /// How child exits are noticed.
    pub child_exit: ChildExit,
    /// How another thread wakes the wait.
    pub wake: Wake,
    /// How stop signals arrive.
    pub signals: SignalDelivery,
    /// What works.
    pub features: Features,
}

impl BackendInfo {
    /// Whether `capability` works on this backend.
    pub fn supports(&self, capability: Capability) -> bool {
        self.features.get(capability).is_yes()
    }

    /// [`ReactorError::Unsupported`] unless `capability` works here.
    pub(crate) fn require(&self, capability: Capability) -> Result<(), ReactorError> {
        if self.supports(capability) {
            Ok(())
        } else {
            Err(ReactorError::Unsupported { backend: self.name, capability })
        }
    }
}

/// What every backend Torque ships offers, before its own differences.
const BASE_FEATURES: Features = Features {
    scheduling: Support::Yes,
    threads: Support::Yes,
    tcp: Support::Yes,
    tls: Support::Yes,
    udp: Support::Yes,
    unix_sockets: Support::Yes,
    processes: Support::Yes,
    fd_sets: Support::Yes,
    watch_fd: Support::Yes,
    interleave: Support::Yes,
};

/// What the Windows backends (iocp, wfmo) offer: all but AF_UNIX sockets
/// (not built; Wine 8, where they are tested, has none) and a watch fd (no
/// single fd stands for a completion port or a set of event objects).
const WINDOWS_FEATURES: Features =
    Features { unix_sockets: Support::Planned, watch_fd: Support::No, ..BASE_FEATURES };

/// The wake of the fd-based backends: an eventfd where there is one.
const FD_WAKE: Wake = if cfg!(linux_like) { Wake::EventFd } else { Wake::Pipe };

/// How fd-based backends see children exit: pidfds where there are some.
const FD_CHILD_EXIT: ChildExit = if cfg!(linux_like) { ChildExit::Pidfd } else { ChildExit::Sigchld };

/// An opened backend: its selector and its waker.
pub(crate) struct Opened {
    pub(crate) selector: OpenedSelector,
    pub(crate) waker: Arc<Waker>,
}

/// What an opened backend can do: readiness only, or completions too.
pub(crate) enum OpenedSelector {
    Readiness(Box<dyn Selector>),
    /// io_uring (Linux only, so far).
    #[cfg_attr(not(any(linux_like, windows)), allow(dead_code))]
    Completion(Box<dyn Completions>),
}

/// A backend in [`BACKENDS`]: its description, and how to open it where it
/// is compiled in.
pub(crate) struct Entry {
    info: &'static BackendInfo,
    open: Option<fn() -> Result<Opened, ReactorError>>,
}

/// Every backend, best first.
static BACKENDS: [Entry; 7] =
    [epoll::ENTRY, io_uring::ENTRY, kqueue::ENTRY, iocp::ENTRY, poll::ENTRY, select::ENTRY, wfmo::ENTRY];

static AVAILABLE: LazyLock<Vec<BackendKind>> =
    LazyLock::new(|| BACKENDS.iter().filter(|e| e.open.is_some()).map(|e| e.info.kind).collect());

static KNOWN: LazyLock<Vec<BackendKind>> = LazyLock::new(|| BACKENDS.iter().map(|e| e.info.kind).collect());

impl BackendKind {
    /// Every backend compiled into this build, best first.
    pub fn all() -> &'static [BackendKind] {
        &AVAILABLE
    }

    /// Every backend Torque has on any platform (for documentation: see
    /// [`is_available`](BackendKind::is_available)).
    pub fn known() -> &'static [BackendKind] {
        &KNOWN
    }

    /// Whether this backend is compiled into this build.
    pub fn is_available(self) -> bool {
        BackendKind::all().contains(&self)
    }

    /// The best backend for this platform.
    pub fn platform_default() -> BackendKind {
        BackendKind::all()[0]
    }

    fn entry(self) -> &'static Entry {
        BACKENDS.iter().find(|e| e.info.kind == self).expect("every BackendKind has its entry in BACKENDS")
    }

    /// The backend's description.
    pub fn info(self) -> &'static BackendInfo {
        self.entry().info
    }

    /// The backend's name (`"epoll"`, `"io_uring"`, `"kqueue"`, `"poll"`, `"select"`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Opens this backend.
    pub(crate) fn open(self) -> Result<Opened, ReactorError> {
        match self.entry().open {
            Some(open) => open(),
            None => Err(ReactorError::BackendUnavailable { name: self.name() }),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = ReactorError;

    /// Parses a backend name, case-insensitively. A backend that exists but not
    /// on this platform, and an unknown name, are errors that list the backends
    /// available here.
    fn from_str(name: &str) -> Result<BackendKind, ReactorError> {
        let wanted = name.trim().to_ascii_lowercase();
        match BackendKind::known().iter().copied().find(|k| k.name() == wanted) {
            Some(kind) if kind.is_available() => Ok(kind),
            Some(kind) => Err(ReactorError::BackendUnavailable { name: kind.name() }),
            None => Err(ReactorError::UnknownBackend { name: name.to_owned(), available: available_names() }),
        }
    }
}

/// The names of the compiled-in backends, comma-separated.
pub(crate) fn available_names() -> String {
    BackendKind::all().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_entry() {
        for entry in &BACKENDS {
            assert_eq!(entry.info.kind.info(), entry.info, "{}", entry.info.name);
        }
        let mut names: Vec<_> = BACKENDS.iter().map(|e| e.info.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BACKENDS.len(), "names are unique");
        assert!(!BackendKind::all().is_empty());
    }
}
