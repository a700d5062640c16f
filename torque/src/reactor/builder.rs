//! Choosing a backend, a clock and options before the reactor exists.

use std::rc::Rc;

use super::Reactor;
use super::clock::{Clock, MonotonicClock};
use crate::backend::BackendKind;
use crate::error::ReactorError;

/// The environment variable that picks the backend when code does not.
pub const REACTOR_ENV: &str = "TORQUE_REACTOR";

/// Configures and builds a [`Reactor`].
///
/// ```
/// use torque::{BackendKind, Reactor};
/// let reactor = Reactor::builder().backend(BackendKind::Poll).handle_signals(false).build()?;
/// assert_eq!(reactor.backend().name, "poll");
/// # Ok::<(), torque::ReactorError>(())
/// ```
pub struct ReactorBuilder {
    backend: Option<BackendKind>,
    clock: Option<Rc<dyn Clock>>,
    handle_signals: bool,
    thread_pool_size: usize,
}

impl std::fmt::Debug for ReactorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorBuilder")
            .field("backend", &self.backend)
            .field("custom_clock", &self.clock.is_some())
            .field("handle_signals", &self.handle_signals)
            .field("thread_pool_size", &self.thread_pool_size)
            .finish()
    }
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        ReactorBuilder { backend: None, clock: None, handle_signals: true, thread_pool_size: 10 }
    }
}

impl ReactorBuilder {
    /// Uses this backend, whatever `TORQUE_REACTOR` says.
    pub fn backend(mut self, kind: BackendKind) -> Self {
        self.backend = Some(kind);
        self
    }

    /// Reads time from `clock` instead of the monotonic system clock (for tests:
    /// [`FakeClock`](crate::testing::FakeClock)).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Rc::new(clock));
        self
    }

    /// Whether `run()` turns SIGINT and SIGTERM into a graceful `stop()` (default:
    /// yes). The previous handlers are restored when `run()` returns.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// The most threads the pool may start (default 10, as in Twisted).
    pub fn thread_pool_size(mut self, max: usize) -> Self {
        self.thread_pool_size = max.max(1);
        self
    }

    /// The backend this builder would use: the one set in code, else
    /// `TORQUE_REACTOR`, else the platform's best.
    pub fn chosen_backend(&self) -> Result<BackendKind, ReactorError> {
        if let Some(kind) = self.backend {
            return Ok(kind);
        }
        match std::env::var(REACTOR_ENV) {
            Ok(name) if !name.trim().is_empty() => name.parse(),
            _ => Ok(BackendKind::platform_default()),
        }
    }

    /// Opens the backend and builds the reactor.
    pub fn build(self) -> Result<Reactor, ReactorError> {
        let kind = self.chosen_backend()?;
        let opened = kind.open()?;
        let clock = self.clock.unwrap_or_else(|| Rc::new(MonotonicClock::new()));
        Ok(Reactor::from_parts(opened, clock, self.handle_signals, self.thread_pool_size))
    }
}
