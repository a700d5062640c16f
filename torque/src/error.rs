//! Error types, one enum per concern, with variants a Twisted user will recognise.

use crate::sys::fd::RawFd;
use std::io;

/// Errors from the reactor's lifecycle, backends, triggers and fd registration.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    /// `stop()` when the reactor is not running, or already stopping
    /// (Twisted's `ReactorNotRunning`).
    #[error("the reactor is not running")]
    NotRunning,
    /// `run()` while the reactor is already running (Twisted's `ReactorAlreadyRunning`).
    #[error("the reactor is already running")]
    AlreadyRunning,
    /// A backend name that is not compiled in or does not exist.
    #[error("unknown reactor backend {name:?}; available: {available}")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The names that would have worked, comma-separated.
        available: String,
    },
    /// A known backend that this platform does not have (epoll outside Linux,
    /// kqueue on Linux).
    #[error(
        "the {name} backend is not available on this platform; available: {}",
        crate::backend::available_names()
    )]
    BackendUnavailable {
        /// The backend's name.
        name: &'static str,
    },
    /// A backend this platform has that cannot start here: io_uring where the
    /// kernel lacks it, or a sandbox, seccomp filter or sysctl forbids it.
    #[error("the {name} backend cannot start here: {cause}")]
    BackendRefused {
        /// The backend's name.
        name: &'static str,
        /// Why, in one line (the OS error and what causes it).
        cause: String,
    },
    /// `remove_system_event_trigger` with an id that is not registered: it was
    /// removed already, or has already run.
    #[error("no such system event trigger (already removed, or already run)")]
    UnknownTrigger,
    /// The backend refused an fd.
    #[error("cannot watch fd {fd} with the {backend} backend: {source}")]
    Register {
        /// The fd.
        fd: RawFd,
        /// The backend's name.
        backend: &'static str,
        /// Why, from the OS or the backend (select: not below `FD_SETSIZE`).
        #[source]
        source: io::Error,
    },
    /// `add_reader` or `add_writer` with a handler that is inside one of its
    /// own callbacks and not registered yet, so it cannot be asked for its fd.
    #[error("the handler is busy in a callback and not registered, so its fd cannot be asked for")]
    HandlerBusy,
    /// An fd number that cannot be valid (negative).
    #[error("invalid file descriptor {0}")]
    InvalidFd(RawFd),
    /// The backend cannot do what was asked: select and poll have no fd
    /// another loop can watch ([`Capability::WatchFd`](crate::Capability::WatchFd)),
    /// a completion backend may have no fd sets. [`BackendInfo::supports`](crate::BackendInfo::supports)
    /// tells beforehand.
    #[error("the {backend} backend does not support {capability}: {}", capability.instead())]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What it lacks.
        capability: crate::Capability,
    },
    /// An operating-system call failed.
    #[error("operating system error: {0}")]
    Os(#[source] io::Error),
}

/// Errors from a [`DelayedCall`](crate::DelayedCall) (Twisted's `AlreadyCalled` and
/// `AlreadyCancelled`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DelayedCallError {
    /// The call has already run (or is running now).
    #[error("the delayed call has already been called")]
    AlreadyCalled,
    /// The call was cancelled.
    #[error("the delayed call has already been cancelled")]
    AlreadyCancelled,
}
