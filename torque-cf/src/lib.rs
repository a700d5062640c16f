//! A Torque reactor driven by CoreFoundation's `CFRunLoop` (Twisted's
//! `cfreactor`): the run loop does the waiting, so Cocoa (AppKit, or any
//! CFRunLoop user) and Torque protocols live on one thread, with no helper
//! thread. macOS only; elsewhere this crate is empty.
//!
//! The reactor's fds reach the run loop as *one* fd, the kqueue fd (readable
//! whenever any of them is ready), watched by a `CFFileDescriptor`. Its timers
//! reach the run loop through one repeating `CFRunLoopTimer` whose next fire
//! date an observer sets from the reactor's own timeout just before each
//! sleep (`kCFRunLoopBeforeWaiting`), so a timer scheduled or moved earlier
//! from any callback — Torque's or Cocoa's — shortens the very next wait. All
//! three are added in the run loop's common modes, so the reactor keeps
//! running while a menu or a window drag holds the run loop in a tracking
//! mode. select and poll have no fd to watch: they get
//! [`torque::ReactorError::Unsupported`] (use [`torque::Reactor::interleave`]
//! with them).
//!
//! **Status: compile-checked, not run.** CI builds this crate and its tests
//! for both macOS targets, but has no Mac to run them on.
//!
//! ```no_run
//! # #[cfg(target_os = "macos")]
//! # fn main() -> Result<(), torque_cf::Error> {
//! use std::time::Duration;
//!
//! let reactor = torque_cf::reactor()?;
//! reactor.call_later(Duration::from_millis(10), |r| {
//!     let _ = r.stop();
//! });
//! // Runs this thread's CFRunLoop until the reactor has stopped.
//! torque_cf::run(&reactor)?;
//! # Ok(())
//! # }
//! # #[cfg(not(target_os = "macos"))]
//! # fn main() {}
//! ```
//!
//! In a Cocoa application, call [`attach_main`] on the main thread before
//! `[NSApp run]`: the reactor runs inside the application's own run loop, and
//! [`CfRun::on_finished`] is where the application terminates itself when the
//! reactor stops (by default the main run loop is stopped).

// Elsewhere the crate is empty, so these docs' links have nothing to resolve to.
#![cfg_attr(not(target_os = "macos"), allow(rustdoc::broken_intra_doc_links))]
#![cfg(target_os = "macos")]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::marker::PhantomData;
use std::rc::Rc;

use core_foundation::runloop::CFRunLoop;
use torque::{Capability, Reactor, ReactorError};

#[allow(unsafe_code)]
mod source;

/// A reactor on the best backend a run loop can watch (one with
/// [`Capability::WatchFd`]: kqueue), leaving SIGINT and SIGTERM to the
/// application (`TORQUE_REACTOR` may name another such backend). Use
/// [`torque::Reactor::builder`] with
/// [`require(Capability::WatchFd)`](torque::ReactorBuilder::require) for other
/// settings.
pub fn reactor() -> Result<Reactor, ReactorError> {
    Reactor::builder().require(Capability::WatchFd).handle_signals(false).build()
}

/// Why a run-loop-driven run could not start, or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the reactor: a backend without a watch fd (`Unsupported`),
    /// already running, or a pass that failed (the reactor then stopped).
    #[error(transparent)]
    Reactor(#[from] ReactorError),
    /// The run loop is another thread's: a run loop runs only on its own
    /// thread, and the reactor must stay on this one.
    #[error("the CFRunLoop belongs to another thread; attach on the thread that runs it")]
    NotThisThread,
}

/// A reactor run attached to a `CFRunLoop`; see [`attach`]. Dropping it
/// detaches the reactor and ends a run that had not finished, as `crash()`
/// does (at once, or after the pass if dropped inside one). It is `!Send`:
/// the reactor lives on this thread.
#[derive(Debug)]
#[must_use = "dropping the run detaches the reactor at once"]
pub struct CfRun {
    shared: Rc<source::Shared>,
    _not_send: PhantomData<*const ()>,
}

/// Starts a run of `reactor` driven by `run_loop`, which must be this
/// thread's: startup triggers fire now, and from here on the run loop
/// (`CFRunLoopRun`, `[NSApp run]`, `CFRunLoopRunInMode`) also runs the
/// reactor's ready fds, due timers and thread calls. `reactor.stop()` works as
/// in `run()`; when its shutdown has run, the reactor's sources leave the run
/// loop and [`CfRun::is_finished`] turns true.
///
/// Errors: [`ReactorError::AlreadyRunning`] if the reactor is running,
/// [`ReactorError::Unsupported`] on a backend without a watch fd,
/// [`Error::NotThisThread`] for another thread's run loop.
pub fn attach(reactor: &Reactor, run_loop: &CFRunLoop) -> Result<CfRun, Error> {
    if *run_loop != CFRunLoop::get_current() {
        return Err(Error::NotThisThread);
    }
    let fd = reactor.watch_fd()?;
    let run = reactor.embed()?;
    Ok(CfRun { shared: source::attach(run, fd, run_loop), _not_send: PhantomData })
}

/// [`attach`] to the main run loop, from the main thread (the counterpart of
/// `torque_glib::register_application` for a Cocoa application): call it
/// before `[NSApp run]`. When the reactor's shutdown has run, the main run
/// loop is stopped; an application replaces that with its own termination
/// through [`CfRun::on_finished`].
pub fn attach_main(reactor: &Reactor) -> Result<CfRun, Error> {
    let main = CFRunLoop::get_main();
    let run = attach(reactor, &main)?;
    run.on_finished(move || main.stop());
    Ok(run)
}

/// Runs this thread's `CFRunLoop` until `reactor` has stopped: `run()` with
/// CoreFoundation doing the waiting. A pass that failed is the error.
pub fn run(reactor: &Reactor) -> Result<(), Error> {
    let run_loop = CFRunLoop::get_current();
    let attached = attach(reactor, &run_loop)?;
    let stopper = run_loop.clone();
    attached.on_finished(move || stopper.stop());
    while !attached.is_finished() {
        CFRunLoop::run_current();
    }
    match attached.shared.take_error() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

impl CfRun {
    /// Whether the run has ended (`stop()`'s shutdown has run, or `crash()`).
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// Runs `f` on the run loop's thread once the run has finished (at once if
    /// it has): where a program quits its run loop or application. Replaces an
    /// earlier `f` not yet run.
    pub fn on_finished(&self, f: impl FnOnce() + 'static) {
        self.shared.on_finished(Box::new(f));
    }

    /// Why a pass failed, if one did (the reactor then crashed).
    pub fn take_error(&self) -> Option<ReactorError> {
        self.shared.take_error()
    }
}

impl Drop for CfRun {
    fn drop(&mut self) {
        self.shared.detach();
    }
}
