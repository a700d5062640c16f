//! A Torque reactor driven by GLib's main loop (Twisted's `gireactor` /
//! `gtk3reactor`): GLib does the waiting, so GTK widgets and Torque protocols
//! live on one thread with no helper thread.
//!
//! The reactor's fds reach GLib as *one* fd, the epoll fd, which is readable
//! whenever any of them is ready; its timers reach GLib through the source's
//! `prepare` step, which GLib runs before every poll, so a timer scheduled or
//! moved earlier from any callback shortens the very next wait. Why one fd and
//! not a GLib source per Torque fd: GLib then polls one fd however many
//! connections are open, and adding or removing a Torque reader costs an
//! `epoll_ctl` and no GLib call. select and poll have no such fd, so this crate
//! needs epoll ([`reactor`] builds one); other backends get
//! [`torque::ReactorError::NoWatchFd`] — use [`torque::Reactor::interleave`]
//! with them.
//!
//! ```
//! use std::time::Duration;
//!
//! let reactor = torque_glib::reactor()?;
//! reactor.call_later(Duration::from_millis(10), |r| {
//!     let _ = r.stop();
//! });
//! // Runs the thread-default GLib main context until the reactor has stopped.
//! torque_glib::run(&reactor)?;
//! # Ok::<(), torque::ReactorError>(())
//! ```
//!
//! With a `gtk::Application` (or any `gio::Application`), call
//! [`register_application`] and then `app.run()`.

use std::cell::RefCell;
use std::rc::Rc;

use gio::prelude::*;
use torque::{BackendKind, Reactor, ReactorError};

mod source;

/// A reactor on the backend GLib can watch (epoll), leaving SIGINT and SIGTERM
/// to the application. Use [`torque::Reactor::builder`] for other settings; the
/// backend must be epoll.
pub fn reactor() -> Result<Reactor, ReactorError> {
    Reactor::builder().backend(BackendKind::Epoll).handle_signals(false).build()
}

/// A reactor run attached to a GLib main context; see [`attach`]. Dropping it
/// detaches the reactor; a run that had not finished ends as `crash()` ends it.
#[derive(Debug)]
pub struct GlibRun {
    source: glib::Source,
}

/// Starts a run of `reactor` driven by `context`'s main loop: startup triggers
/// fire now, and from here on every iteration of the context (`MainLoop::run`,
/// `gtk::Application::run`, `MainContext::iteration`) also runs the reactor's
/// ready fds, due timers and thread calls. `reactor.stop()` works as in
/// `run()`; when its shutdown has run, the source removes itself and
/// [`GlibRun::is_finished`] turns true.
///
/// Errors: [`ReactorError::AlreadyRunning`] if the reactor is running,
/// [`ReactorError::NoWatchFd`] on a backend other than epoll.
pub fn attach(reactor: &Reactor, context: &glib::MainContext) -> Result<GlibRun, ReactorError> {
    let fd = reactor.watch_fd()?;
    let run = reactor.embed()?;
    Ok(GlibRun { source: source::attach(run, fd, context) })
}

impl GlibRun {
    /// Whether the run has ended (`stop()`'s shutdown has run, or `crash()`).
    pub fn is_finished(&self) -> bool {
        source::with_state(&self.source, |state| state.run.as_ref().is_none_or(|run| run.is_finished()))
    }

    /// Runs `f` on the GLib thread once the run has finished (at once if it
    /// has): where a program quits its main loop or application.
    pub fn on_finished(&self, f: impl FnOnce() + 'static) {
        if self.is_finished() {
            f();
        } else {
            source::with_state(&self.source, |state| state.on_finished = Some(Box::new(f)));
        }
    }
}

impl Drop for GlibRun {
    fn drop(&mut self) {
        self.source.destroy();
        // Ends an unfinished run now, not whenever GLib lets go of the source.
        let run = source::with_state(&self.source, |state| state.run.take());
        drop(run);
    }
}

/// Runs `reactor` under a GLib main loop on the thread-default main context
/// until it has stopped (the GLib-driven counterpart of `Reactor::run`).
/// GTK widgets and other GLib sources on the context run meanwhile.
pub fn run(reactor: &Reactor) -> Result<(), ReactorError> {
    let context = glib::MainContext::ref_thread_default();
    let run = attach(reactor, &context)?;
    let main_loop = glib::MainLoop::new(Some(&context), false);
    let quit = main_loop.clone();
    run.on_finished(move || quit.quit());
    if !run.is_finished() {
        main_loop.run();
    }
    Ok(())
}

/// Why [`register_application`] refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The reactor cannot be driven by GLib (not epoll), or is already running.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
    /// The reactor already has an application (Twisted: "Can't register more
    /// than one application instance").
    #[error("this reactor is already registered with an application")]
    AlreadyRegistered,
}

thread_local! {
    /// Reactors registered with an application on this thread.
    static REGISTERED: RefCell<Vec<torque::WeakReactor>> = const { RefCell::new(Vec::new()) };
}

/// Makes `app` drive `reactor` (Twisted's `registerGApplication`): when the
/// application starts, the reactor starts on the application's main context
/// and holds the application (a windowless `gio::Application` keeps running);
/// `reactor.stop()` runs the shutdown triggers and then quits the application;
/// and an application that quits by itself (`app.quit()`) stops the reactor
/// first, running its shutdown triggers before `app.run()` returns.
///
/// ```
/// use gio::prelude::*;
/// use std::time::Duration;
///
/// let reactor = torque_glib::reactor()?;
/// let app = gio::Application::new(Some("org.example.Service"), gio::ApplicationFlags::NON_UNIQUE);
/// app.connect_activate(|_| {});
/// torque_glib::register_application(&reactor, &app)?;
/// reactor.call_when_running(|r| {
///     r.call_later(Duration::from_millis(10), |r| r.stop().unwrap());
/// });
/// app.run_with_args(&[] as &[&str]); // returns once the reactor has stopped
/// assert!(!reactor.is_started());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Errors: [`ReactorError::AlreadyRunning`] if the reactor is running,
/// [`ReactorError::NoWatchFd`] on a backend other than epoll, and
/// [`RegisterError::AlreadyRegistered`] for a second application.
pub fn register_application(
    reactor: &Reactor,
    app: &impl IsA<gio::Application>,
) -> Result<(), RegisterError> {
    if reactor.is_started() {
        return Err(ReactorError::AlreadyRunning.into());
    }
    reactor.watch_fd()?;
    let registered = REGISTERED.with(|all| {
        let mut all = all.borrow_mut();
        all.retain(|weak| weak.upgrade().is_some());
        if all.iter().any(|weak| weak.upgrade().as_ref() == Some(reactor)) {
            return true;
        }
        all.push(reactor.downgrade());
        false
    });
    if registered {
        return Err(RegisterError::AlreadyRegistered);
    }
    let app = app.as_ref().clone();
    let slot: Rc<RefCell<Option<(GlibRun, gio::ApplicationHoldGuard)>>> = Rc::default();

    let (r, s) = (reactor.clone(), Rc::clone(&slot));
    app.connect_startup(move |app| {
        let context = glib::MainContext::ref_thread_default();
        match attach(&r, &context) {
            Ok(run) => {
                let weak_app = app.downgrade();
                let s2 = Rc::clone(&s);
                run.on_finished(move || {
                    // Release the hold before quitting, so nothing keeps the
                    // application alive, then end its loop.
                    let held = s2.borrow_mut().take();
                    if let Some(app) = weak_app.upgrade() {
                        app.quit();
                    }
                    drop(held);
                });
                if !run.is_finished() {
                    *s.borrow_mut() = Some((run, app.hold()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the reactor with the application");
                app.quit();
            }
        }
    });

    let (r, s) = (reactor.clone(), slot);
    app.connect_shutdown(move |_| {
        let running = s.borrow().as_ref().is_some_and(|(run, _)| !run.is_finished());
        if running {
            // The application quit first: run the reactor's shutdown on this
            // context before `app.run()` returns.
            let _ = r.stop();
            let context = glib::MainContext::ref_thread_default();
            while s.borrow().as_ref().is_some_and(|(run, _)| !run.is_finished()) {
                context.iteration(true);
            }
        }
        drop(s.borrow_mut().take());
    });
    Ok(())
}
