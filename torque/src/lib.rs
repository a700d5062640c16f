//! # Torque
//!
//! Twisted's reactor, rebuilt natively in Rust: one single-threaded event loop with
//! Twisted's interfaces (lifecycle and system-event triggers, `call_later`, fd sets,
//! thread calls) over backends chosen at run time: `epoll`, `poll` and `select`.
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
//!
//! See `ARCHITECTURE.md` in the repository for the layers and the loop pass.

#![warn(missing_docs, missing_debug_implementations)]

pub mod backend;
pub mod defer;
mod error;
pub mod net;
mod reactor;
pub(crate) mod sys;
pub mod testing;

pub use backend::{BackendInfo, BackendKind, Features, Support};
pub use error::{DelayedCallError, ReactorError};
pub use reactor::{
    Clock, DelayedCall, FdHandler, FdHandlerRef, IntoTriggerOutcome, LostReason, MonotonicClock,
    PendingTrigger, Phase, REACTOR_ENV, Reactor, ReactorBuilder, ReactorHandle, SystemEvent, ThreadPanic,
    TriggerId, TriggerOutcome, WeakReactor,
};

/// The README's code blocks, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Small fd helpers for programs and tests that drive the reactor with raw fds.
pub mod fd {
    pub use crate::sys::{pipe, read, set_nonblocking, write};
}
