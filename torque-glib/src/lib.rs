//! A Torque reactor driven by GLib's main loop (Twisted's `gireactor` /
//! `gtk3reactor`): GLib does the waiting, so GTK widgets and Torque protocols
//! live on one thread with no helper thread.
//!
//! The reactor's fds reach GLib as *one* fd, the backend's own (the epoll or
//! kqueue fd), which is readable whenever any of them is ready; its timers
//! reach GLib through the source's `prepare` step, which GLib runs before every
//! poll, so a timer scheduled or moved earlier from any callback shortens the
//! very next wait. Why one fd and not a GLib source per Torque fd: GLib then
//! polls one fd however many connections are open, and adding or removing a
//! Torque reader costs no GLib call. select and poll have no such fd
//! ([`torque::Capability::WatchFd`]), so this crate needs a backend that has
//! one ([`reactor`] picks it); others get [`torque::ReactorError::Unsupported`]
//! — use [`torque::Reactor::interleave`] with them.
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
//! # Ok::<(), torque_glib::Error>(())
//! ```
//!
//! With a `gtk::Application` (or any `gio::Application`), call
//! [`register_application`] and then `app.run()`.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use gio::prelude::*;
use torque::{Capability, Reactor, ReactorError};

mod source;

/// A reactor on the best backend GLib can watch (one with
/// [`Capability::WatchFd`]: epoll on Linux, kqueue on macOS and the BSDs),
/// leaving SIGINT and SIGTERM to the application (`TORQUE_REACTOR` may name
/// another such backend). Use [`torque::Reactor::builder`] with
/// [`require(Capability::WatchFd)`](torque::ReactorBuilder::require) for other
/// settings.
pub fn reactor() -> Result<Reactor, ReactorError> {
    Reactor::builder().require(Capability::WatchFd).handle_signals(false).build()
}

/// Why a GLib-driven run could not start, or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the reactor: a backend without a watch fd (`Unsupported`),
    /// already running, or a pass that failed (the reactor then stopped).
    #[error(transparent)]
    Reactor(#[from] ReactorError),
    /// Another thread owns the main context; GLib dispatches a context on its
    /// owner's thread only, and the reactor must stay on this one.
    #[error("the GLib main context is owned by another thread; attach on the thread that runs it")]
    ContextOwnedElsewhere,
    /// The reactor already has an application (Twisted: "Can't register more
    /// than one application instance").
    #[error("this reactor is already registered with an application")]
    AlreadyRegistered,
}

/// A reactor run attached to a GLib main context; see [`attach`]. Dropping it
/// detaches the reactor and ends a run that had not finished, as `crash()`
/// does (at once, or after the pass if dropped inside one). It is `!Send`: the
/// reactor lives on this thread.
#[derive(Debug)]
#[must_use = "dropping the run detaches the reactor at once"]
pub struct GlibRun {
    source: glib::Source,
    context: glib::MainContext,
    _not_send: PhantomData<*const ()>,
}

/// Starts a run of `reactor` driven by `context`'s main loop: startup triggers
/// fire now, and from here on every iteration of the context (`MainLoop::run`,
/// `gtk::Application::run`, `MainContext::iteration`) also runs the reactor's
/// ready fds, due timers and thread calls. `reactor.stop()` works as in
/// `run()`; when its shutdown has run, the source removes itself and
/// [`GlibRun::is_finished`] turns true.
///
/// This thread becomes (or stays) the context's owner for the life of the
/// returned [`GlibRun`], so GLib dispatches the reactor nowhere else.
///
/// Errors: [`ReactorError::AlreadyRunning`] if the reactor is running,
/// [`ReactorError::Unsupported`] on a backend without a watch fd (select,
/// poll), [`Error::ContextOwnedElsewhere`] if another thread owns `context`.
///
/// A nested GLib main loop run from inside a Torque callback does not run the
/// reactor (GLib does not re-enter a source that is dispatching); for a nested
/// pass, call `reactor.iterate` there.
pub fn attach(reactor: &Reactor, context: &glib::MainContext) -> Result<GlibRun, Error> {
    let fd = reactor.watch_fd()?;
    if !source::acquire(context) {
        return Err(Error::ContextOwnedElsewhere);
    }
    let run = match reactor.embed() {
        Ok(run) => run,
        Err(e) => {
            source::release(context);
            return Err(e.into());
        }
    };
    Ok(GlibRun { source: source::attach(run, fd, context), context: context.clone(), _not_send: PhantomData })
}

impl GlibRun {
    /// Whether the run has ended (`stop()`'s shutdown has run, or `crash()`).
    pub fn is_finished(&self) -> bool {
        source::with_state(&self.source, |state| {
            state.finished || state.run.as_ref().is_some_and(|run| run.is_finished())
        })
    }

    /// Runs `f` on the GLib thread once the run has finished (at once if it
    /// has): where a program quits its main loop or application. Replaces an
    /// earlier `f` not yet run.
    pub fn on_finished(&self, f: impl FnOnce() + 'static) {
        if self.is_finished() {
            f();
            return;
        }
        let earlier = source::with_state(&self.source, |state| state.on_finished.replace(Box::new(f)));
        drop(earlier); // outside the state's borrow: its Drop may be user code
    }

    /// The error that ended the run, if a pass failed (the reactor stopped).
    pub fn take_error(&self) -> Option<ReactorError> {
        source::with_state(&self.source, |state| state.error.take())
    }
}

impl Drop for GlibRun {
    fn drop(&mut self) {
        self.source.destroy();
        // Ends an unfinished run now, not whenever GLib lets go of the source
        // (inside a pass the run is out of the cell; the pass ends it).
        let run = source::with_state(&self.source, |state| {
            let run = state.run.take();
            state.finished |= run.is_some();
            run
        });
        drop(run);
        source::release(&self.context);
    }
}

/// Runs `reactor` under a GLib main loop on the thread-default main context
/// until it has stopped (the GLib-driven counterpart of `Reactor::run`).
/// GTK widgets and other GLib sources on the context run meanwhile.
///
/// Errors: as [`attach`], and a pass that failed ([`Error::Reactor`]; the
/// reactor has stopped).
pub fn run(reactor: &Reactor) -> Result<(), Error> {
    let context = glib::MainContext::ref_thread_default();
    let run = attach(reactor, &context)?;
    let main_loop = glib::MainLoop::new(Some(&context), false);
    let quit = main_loop.clone();
    run.on_finished(move || quit.quit());
    if !run.is_finished() {
        main_loop.run();
    }
    match run.take_error() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

thread_local! {
    /// Reactors registered with an application on this thread.
    static REGISTERED: RefCell<Vec<torque::WeakReactor>> = const { RefCell::new(Vec::new()) };
}

/// Makes `app` drive `reactor` (Twisted's `registerGApplication`): when the
/// application starts, the reactor starts on GLib's default main context (the
/// one `g_application_run` iterates)
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
/// [`ReactorError::Unsupported`] on a backend without a watch fd, and
/// [`Error::AlreadyRegistered`] for a second application. A failure to start
/// when the application starts (the reactor was started meanwhile, or another
/// thread owns the default context) is logged and printed, and the
/// application quits.
pub fn register_application(reactor: &Reactor, app: &impl IsA<gio::Application>) -> Result<(), Error> {
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
        return Err(Error::AlreadyRegistered);
    }
    let app = app.as_ref().clone();
    let slot: Rc<RefCell<Option<(GlibRun, gio::ApplicationHoldGuard)>>> = Rc::default();

    let (r, s) = (reactor.clone(), Rc::clone(&slot));
    app.connect_startup(move |app| {
        match attach(&r, &glib::MainContext::default()) {
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
                // No caller to return it to: make sure it is seen.
                tracing::error!(error = %e, "cannot start the reactor with the application");
                eprintln!("torque-glib: cannot start the reactor with the application: {e}");
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
            let context = glib::MainContext::default();
            while s.borrow().as_ref().is_some_and(|(run, _)| !run.is_finished()) {
                context.iteration(true);
            }
        }
        drop(s.borrow_mut().take());
    });
    Ok(())
}
