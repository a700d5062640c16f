//! How a child's exit reaches the reactor: the backend's own mechanism where
//! it has one — a pidfd watched like any fd (Linux), kqueue's `EVFILT_PROC` —
//! else a SIGCHLD handler, chained to whatever handler was there before,
//! after which the reactor checks only its own children.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::{FdHandlerRef, Reactor};
use crate::backend::{ChildExit, Interest, Token};
use crate::error::ReactorError;
use crate::sys::signal::ChildSignalGuard;

/// A check run after each SIGCHLD; `false` once it no longer needs to run.
pub(crate) type ChildWatcher = Box<dyn FnMut(&Reactor) -> bool>;

/// A child's exit watched by the backend; see [`Reactor::watch_child_exit`].
#[derive(Debug)]
pub(crate) enum ChildWatch {
    /// A pidfd registered for reading; it also signals the child with no
    /// pid-reuse race.
    Pidfd(OwnedFd),
    /// `EVFILT_PROC` on the pid, under a registration's token.
    Process(u32, Token),
}

impl ChildWatch {
    /// The pidfd, where the watch has one.
    pub(crate) fn pidfd(&self) -> Option<RawFd> {
        match self {
            ChildWatch::Pidfd(fd) => Some(fd.as_raw_fd()),
            ChildWatch::Process(..) => None,
        }
    }
}

impl Reactor {
    /// Watches child `pid` with the backend's own mechanism: `handler.readable`
    /// runs once it has exited (then reap it). An error when the backend has
    /// none ([`ChildExit::Sigchld`]) or it failed: use
    /// [`watch_child_signals`](Reactor::watch_child_signals) then.
    pub(crate) fn watch_child_exit(
        &self,
        pid: u32,
        handler: FdHandlerRef,
    ) -> Result<ChildWatch, ReactorError> {
        match self.inner.info.child_exit {
            ChildExit::Pidfd => {
                let pidfd = crate::sys::process::pidfd_open(pid).map_err(ReactorError::Os)?;
                self.watch(pidfd.as_raw_fd(), handler, Interest::READ)?;
                Ok(ChildWatch::Pidfd(pidfd))
            }
            ChildExit::ProcFilter => {
                let token = self.inner.fds.borrow_mut().add_child(pid, handler);
                let watched = self.inner.driver.borrow_mut().watch_child(pid, token);
                if let Err(e) = watched {
                    let removed = self.inner.fds.borrow_mut().remove_token(token);
                    drop(removed);
                    return Err(ReactorError::Os(e));
                }
                Ok(ChildWatch::Process(pid, token))
            }
            ChildExit::Sigchld | ChildExit::ProcessHandle => {
                Err(ReactorError::Os(std::io::Error::from(std::io::ErrorKind::Unsupported)))
            }
        }
    }

    /// Stops a watch (the child was reaped, or is handed to SIGCHLD).
    pub(crate) fn unwatch_child_exit(&self, watch: ChildWatch) {
        match watch {
            ChildWatch::Pidfd(pidfd) => {
                self.unwatch(pidfd.as_raw_fd(), Interest::READ);
                // Closing it makes the kernel forget it at once; a removal
                // still queued finds it gone, which is not an error.
                drop(pidfd);
            }
            ChildWatch::Process(pid, token) => {
                let removed = self.inner.fds.borrow_mut().remove_token(token);
                drop(removed);
                self.inner.driver.borrow_mut().unwatch_child(pid);
            }
        }
    }

    /// Runs `watcher` after every SIGCHLD (and once at the end of this pass, for
    /// a child that ended before the handler was in place) until it returns
    /// `false`. The process-wide handler is installed while any watcher lives and
    /// chains to the one it replaced.
    pub(crate) fn watch_child_signals(&self, watcher: ChildWatcher) -> Result<(), ReactorError> {
        {
            let mut slot = self.inner.child_signals.borrow_mut();
            match slot.as_mut() {
                Some((_, watchers)) => watchers.push(watcher),
                None => {
                    let guard = ChildSignalGuard::install(Arc::clone(&self.inner.threads.waker))
                        .map_err(ReactorError::Os)?;
                    *slot = Some((guard, vec![watcher]));
                }
            }
        }
        self.at_end_of_pass(|r| r.run_child_watchers());
        Ok(())
    }

    pub(super) fn check_child_signals(&self) {
        let arrived =
            self.inner.child_signals.borrow().as_ref().is_some_and(|(guard, _)| guard.take_pending());
        if arrived {
            self.run_child_watchers();
        }
    }

    fn run_child_watchers(&self) {
        // Taken out so a watcher may add others (or spawn) while it runs.
        let mut watchers = match self.inner.child_signals.borrow_mut().as_mut() {
            Some((_, watchers)) => std::mem::take(watchers),
            None => return,
        };
        // A watcher that panics is done: its child must not be checked forever.
        watchers.retain_mut(|watch| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watch(self))).unwrap_or_else(|payload| {
                let message = super::panic_message(&*payload);
                tracing::error!(panic = %message, "a child watcher panicked");
                false
            })
        });
        let mut slot = self.inner.child_signals.borrow_mut();
        if let Some((_, added)) = slot.as_mut() {
            watchers.append(added);
            if watchers.is_empty() {
                // No child waits: give SIGCHLD back to its previous owner.
                *slot = None;
            } else {
                *added = watchers;
            }
        }
    }
}
