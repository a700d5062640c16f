//! Choosing a backend, a clock and options before the reactor exists.

use std::rc::Rc;

use super::Reactor;
use super::clock::{Clock, MonotonicClock};
use super::wait_hook::WaitHook;
use crate::backend::{BackendKind, Capability};
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
    needs: Vec<Capability>,
    clock: Option<Rc<dyn Clock>>,
    handle_signals: bool,
    thread_pool_size: usize,
    wait_hook: Option<Box<dyn WaitHook>>,
}

impl std::fmt::Debug for ReactorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorBuilder")
            .field("backend", &self.backend)
            .field("needs", &self.needs)
            .field("custom_clock", &self.clock.is_some())
            .field("handle_signals", &self.handle_signals)
            .field("thread_pool_size", &self.thread_pool_size)
            .field("wait_hook", &self.wait_hook.is_some())
            .finish()
    }
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        ReactorBuilder {
            backend: None,
            needs: Vec::new(),
            clock: None,
            handle_signals: true,
            thread_pool_size: 10,
            wait_hook: None,
        }
    }
}

impl ReactorBuilder {
    /// Uses this backend, whatever `TORQUE_REACTOR` says.
    pub fn backend(mut self, kind: BackendKind) -> Self {
        self.backend = Some(kind);
        self
    }

    /// Needs `capability` of the backend: without a backend set in code or by
    /// `TORQUE_REACTOR`, the best one of this platform that has it is chosen;
    /// a backend chosen either way that lacks it is
    /// [`ReactorError::Unsupported`]. (`torque-glib` and `torque-cf` need
    /// [`Capability::WatchFd`].)
    ///
    /// ```
    /// use torque::{Capability, Reactor};
    /// let reactor = Reactor::builder().require(Capability::WatchFd).handle_signals(false).build()?;
    /// assert!(reactor.backend().supports(Capability::WatchFd));
    /// # Ok::<(), torque::ReactorError>(())
    /// ```
    pub fn require(mut self, capability: Capability) -> Self {
        self.needs.push(capability);
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

    /// Calls `hook` around each wait that may block (see [`WaitHook`]).
    pub fn wait_hook(mut self, hook: impl WaitHook + 'static) -> Self {
        self.wait_hook = Some(Box::new(hook));
        self
    }

    /// The backend this builder would use: the one set in code, else
    /// `TORQUE_REACTOR`, else the platform's best (that has what
    /// [`require`](ReactorBuilder::require) asked for).
    pub fn chosen_backend(&self) -> Result<BackendKind, ReactorError> {
        let chosen = match (self.backend, std::env::var(REACTOR_ENV)) {
            (Some(kind), _) => kind,
            (None, Ok(name)) if !name.trim().is_empty() => name.parse()?,
            _ => {
                let fits = |k: &&BackendKind| self.needs.iter().all(|&n| k.info().supports(n));
                BackendKind::all().iter().find(fits).copied().unwrap_or_else(BackendKind::platform_default)
            }
        };
        for &need in &self.needs {
            chosen.info().require(need)?;
        }
        Ok(chosen)
    }

    /// Opens the backend and builds the reactor.
    pub fn build(self) -> Result<Reactor, ReactorError> {
        let kind = self.chosen_backend()?;
        let opened = kind.open()?;
        let clock = self.clock.unwrap_or_else(|| Rc::new(MonotonicClock::new()));
        Ok(Reactor::from_parts(opened, clock, self.handle_signals, self.thread_pool_size, self.wait_hook))
    }
}
