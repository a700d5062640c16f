//! Driving the reactor from another loop on the same thread, with no helper
//! thread (how calloop and libuv embed loops, and how the GLib-driven reactor in
//! `torque-glib` works): the other loop watches [`Reactor::watch_fd`], bounds its
//! wait by [`Embedded::timeout`], and calls [`Embedded::dispatch`] — one
//! non-blocking pass — when the fd is readable or the timeout has passed.

use crate::sys::fd::RawFd;
use std::time::Duration;

use super::Reactor;
use crate::ReactorError;

/// A run of the reactor that another loop drives; see [`Reactor::embed`].
/// Dropping it before the run finished ends the run as [`Reactor::crash`] does.
#[derive(Debug)]
#[must_use = "dropping the run ends it at once (as crash() does)"]
pub struct Embedded {
    reactor: Reactor,
}

impl Reactor {
    /// Starts a run that another event loop on this thread drives, one
    /// non-blocking pass at a time (Twisted's `startRunning` plus `iterate`, as
    /// its Tk and CoreFoundation support use them). Startup triggers fire inside
    /// this call; [`stop`](Reactor::stop) works as in `run()`, and once its
    /// shutdown has run [`Embedded::is_finished`] turns true: quit the other loop
    /// then (or from an after-shutdown trigger).
    ///
    /// A loop that can watch an fd watches [`watch_fd`](Reactor::watch_fd) (epoll
    /// and kqueue); one that cannot calls [`Embedded::dispatch`] from its own timer.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // The platform's default backend (epoll, kqueue) has a watch fd.
    /// let reactor = torque::Reactor::builder().handle_signals(false).build()?;
    /// let run = reactor.embed()?;
    /// let fd = reactor.watch_fd()?;
    /// reactor.call_later(Duration::from_millis(5), |r| {
    ///     let _ = r.stop();
    /// });
    /// // The "other loop": poll(2) on the reactor's fd, bounded by its timeout.
    /// while !run.is_finished() {
    ///     let millis = run.timeout().map_or(-1, |t| t.as_millis().min(1000) as i32);
    ///     let mut watched = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    ///     // SAFETY: one valid pollfd.
    ///     unsafe { libc::poll(&mut watched, 1, millis) };
    ///     run.dispatch()?;
    /// }
    /// # Ok::<(), torque::ReactorError>(())
    /// ```
    pub fn embed(&self) -> Result<Embedded, ReactorError> {
        if self.inner.in_run.get() {
            return Err(ReactorError::AlreadyRunning);
        }
        self.begin_run();
        Ok(Embedded { reactor: self.clone() })
    }
}

impl Embedded {
    /// The reactor this run drives.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// How long the other loop may wait before calling
    /// [`dispatch`](Embedded::dispatch) even if the watched fd stays quiet: zero
    /// when work is queued, `None` when only an fd event can bring work.
    pub fn timeout(&self) -> Option<Duration> {
        // The other loop waits next: the backend must have every change.
        if let Err(e) = self.reactor.apply_changes(None) {
            tracing::debug!(error = %e, "backend refused a change");
        }
        self.reactor.timeout()
    }

    /// One non-blocking pass: dispatches whatever fds are ready, then due
    /// timers, thread calls, tasks, end-of-pass work and a pending shutdown.
    pub fn dispatch(&self) -> Result<(), ReactorError> {
        self.reactor.iterate(Duration::ZERO)
    }

    /// Whether the run has ended: `stop()`'s shutdown has fully run, or
    /// `crash()` was called. The other loop should quit (or stop calling).
    pub fn is_finished(&self) -> bool {
        !self.reactor.inner.started.get()
    }

    /// The fd the other loop watches; see [`Reactor::watch_fd`].
    pub fn watch_fd(&self) -> Result<RawFd, ReactorError> {
        self.reactor.watch_fd()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if self.reactor.inner.started.get() {
            self.reactor.crash();
        }
        self.reactor.end_run();
    }
}
