//! # Torque
//!
//! Twisted's reactor, rebuilt natively in Rust: one single-threaded event loop with
//! Twisted's interfaces (lifecycle and system-event triggers, `call_later`, fd sets,
//! thread calls) over backends chosen at run time: `epoll` (Linux), `kqueue`
//! (macOS, BSD), `poll` and `select`.
//!
//! ```
//! use std::time::Duration;
//! use torque::{Phase, Reactor, SystemEvent};
//!
//! let reactor = Reactor::new()?; // TORQUE_REACTOR=poll picks another backend
//! reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, |_| println!("bye"));
//! reactor.call_when_running(|r| {
//!     r.call_later(Duration::from_millis(5), |r| r.stop().unwrap());
//! });
//! reactor.run()?;
//! # Ok::<(), torque::ReactorError>(())
//! ```
//!
//! Servers and clients are written as protocols, as in Twisted ([`net`]):
//!
//! ```no_run
//! use torque::net::{Protocol, Transport, factory_fn, server_from_string};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! let reactor = torque::Reactor::new()?;
//! server_from_string("tcp:8000:interface=127.0.0.1")?.listen(&reactor, factory_fn(|_| Echo))?;
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Results that arrive later are [`defer::Deferred`]s, which are also futures:
//! add callbacks Twisted-style, or `reactor.spawn(async { … })` and `.await` them.
//! The same small client, both ways:
//!
//! ```no_run
//! use torque::defer::Failure;
//! use torque::net::{Protocol, Transport, client_from_string};
//!
//! struct Printer;
//! impl Protocol for Printer {
//!     fn data_received(&mut self, _: &Transport, data: &[u8]) {
//!         print!("{}", String::from_utf8_lossy(data));
//!     }
//! }
//!
//! let reactor = torque::Reactor::new()?;
//! let endpoint = client_from_string("tcp:127.0.0.1:8000")?;
//!
//! // Deferred style: callbacks and errbacks.
//! let _sent = endpoint
//!     .connect_protocol(&reactor, Printer)
//!     .map(|transport| transport.write(b"hello from callbacks\r\n"))
//!     .add_errback(|failure: Failure| {
//!         eprintln!("cannot connect: {failure}");
//!         Ok(())
//!     });
//!
//! // async style: the same Deferred, awaited in a task on the reactor thread.
//! let r = reactor.clone();
//! let _task = reactor.spawn(async move {
//!     match endpoint.connect_protocol(&r, Printer).await {
//!         Ok(transport) => transport.write(b"hello from async\r\n"),
//!         Err(failure) => eprintln!("cannot connect: {failure}"),
//!     }
//! });
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`testing`] has what Twisted's tests use: a fake clock, memory transports, a
//! loopback joining two protocols, and a reactor that records listen and connect
//! calls.
//!
//! See `ARCHITECTURE.md` in the repository for the layers and the loop pass.

#![warn(missing_docs, missing_debug_implementations)]
// `unsafe` lives in `sys/` and `backend/` only (each allows it there), and
// every block says why it is sound.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[allow(unsafe_code)]
mod backend;
pub mod defer;
mod error;
pub mod net;
pub mod process;
mod reactor;
#[allow(unsafe_code)]
mod sys;
pub mod testing;
pub mod tls;

pub use backend::{
    BackendInfo, BackendKind, Capability, ChildExit, Features, IoModel, SignalDelivery, Status, Support, Wake,
};
pub use error::{DelayedCallError, ReactorError};
#[cfg(windows)]
pub use reactor::EventId;
pub use reactor::{
    Clock, DelayedCall, Embedded, FdHandler, FdHandlerRef, GuiCall, IntoTriggerOutcome, LostReason,
    MonotonicClock, PendingTrigger, Phase, REACTOR_ENV, Reactor, ReactorBuilder, ReactorHandle, SystemEvent,
    ThreadPanic, ThreadPool, ThreadPoolStats, TriggerId, TriggerOutcome, WaitHook, WeakReactor,
};

/// The README's code blocks, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Small fd helpers for programs and tests that drive the reactor with their
/// own descriptors, and this platform's descriptor types.
///
/// On Unix the types are `std::os::fd`'s. On Windows the reactors watch
/// sockets, so the same names are Winsock sockets (`RawFd` is a `RawSocket`,
/// `OwnedFd` an `OwnedSocket`, `AsFd` is implemented by everything
/// `AsSocket`), and [`pipe`](crate::fd::pipe) is a connected pair of loopback sockets.
pub mod fd {
    use std::io;

    pub use crate::sys::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

    /// A non-blocking, close-on-exec pipe: `(read end, write end)` (on
    /// Windows, two connected loopback TCP sockets).
    pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        crate::sys::pipe()
    }

    /// `read(2)` into `buf`, retrying on EINTR.
    pub fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
        crate::sys::read(fd.as_fd().as_raw_fd(), buf)
    }

    /// `write(2)` from `buf`, retrying on EINTR.
    pub fn write(fd: impl AsFd, buf: &[u8]) -> io::Result<usize> {
        crate::sys::write(fd.as_fd().as_raw_fd(), buf)
    }

    /// `recvmsg(2)` on a UNIX socket (on Windows: an `Unsupported` error) into `buf`, retrying on EINTR: the
    /// descriptors that arrive with the bytes (SCM_RIGHTS, close-on-exec) are
    /// appended to `fds`. At most 16 per message: the kernel closes any more,
    /// and a warning is logged. Returns the bytes read (0 at end of file).
    pub fn recv_with_fds(fd: impl AsFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        crate::sys::unix_socket::recv_with_fds(fd.as_fd().as_raw_fd(), buf, fds)
    }

    /// Puts `fd` in non-blocking mode.
    pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
        crate::sys::set_nonblocking(fd.as_fd().as_raw_fd())
    }
}
