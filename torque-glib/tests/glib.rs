//! What only the GLib-driven reactor does: GLib's loop does the waiting, so GLib
//! sources and Torque callbacks share one thread; a Torque timer moved earlier
//! shortens GLib's wait; another thread's call wakes GLib's poll; and a
//! `gio::Application` drives the reactor both ways (stop quits it, quitting it
//! stops the reactor).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use gio::prelude::*;
use torque::{BackendKind, Capability, Phase, Reactor, ReactorError, SystemEvent};

/// GLib's global default context can be owned by one thread at a time, and a
/// `gio::Application` runs on it: tests that use it take this lock.
static DEFAULT_CONTEXT: Mutex<()> = Mutex::new(());

/// Runs `f` with a fresh main context as this thread's default.
fn on_own_context<T>(f: impl FnOnce(&glib::MainContext) -> T) -> T {
    let context = glib::MainContext::new();
    context.with_thread_default(|| f(&context)).expect("push a new context")
}

/// Runs `f` owning GLib's global default context, where `glib::idle_add_local`
/// and `glib::timeout_add_local` put their sources.
fn on_default_context<T>(f: impl FnOnce(&glib::MainContext) -> T) -> T {
    let _lock = DEFAULT_CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    let context = glib::MainContext::default();
    let _owner = context.acquire().expect("the default context is free under the lock");
    f(&context)
}

/// A GLib timeout that fails the test if `run` is still going after 20 s;
/// removed from the context when dropped.
struct Guard(glib::Source);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.destroy();
    }
}

fn guard(context: &glib::MainContext) -> Guard {
    let source = glib::timeout_source_new(Duration::from_secs(20), None, glib::Priority::DEFAULT, || {
        panic!("the GLib-driven reactor did not finish within 20 s")
    });
    source.attach(Some(context));
    Guard(source)
}

#[test]
fn glib_sources_and_reactor_callbacks_run_on_one_thread() {
    on_default_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let here = std::thread::current().id();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        glib::idle_add_local_once(move || s.borrow_mut().push(("glib idle", std::thread::current().id())));
        let s = seen.clone();
        reactor.call_later(Duration::from_millis(5), move |r| {
            s.borrow_mut().push(("torque timer", std::thread::current().id()));
            r.stop().unwrap();
        });
        let _guard = guard(context);
        torque_glib::run(&reactor).unwrap();
        let seen = seen.borrow();
        assert_eq!(seen.iter().map(|(what, _)| *what).collect::<Vec<_>>(), ["glib idle", "torque timer"]);
        assert!(seen.iter().all(|(_, thread)| *thread == here), "everything ran on the GLib thread");
        assert!(!reactor.is_started());
    });
}

/// GLib is blocked on the reactor's one-hour timer; a GLib callback moves that
/// timer to 10 ms, and it must fire long before the hour (or the 20 s guard).
#[test]
fn a_timer_moved_earlier_shortens_the_glib_wait() {
    on_default_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let call = reactor.call_later(Duration::from_secs(3600), move |r| {
            f.set(true);
            r.stop().unwrap();
        });
        glib::timeout_add_local_once(Duration::from_millis(20), move || {
            call.reset(Duration::from_millis(10)).unwrap();
        });
        let _guard = guard(context);
        torque_glib::run(&reactor).unwrap();
        assert!(fired.get());
    });
}

/// No timers and no fds: only the other thread's call can end GLib's poll.
#[test]
fn a_call_from_another_thread_wakes_the_glib_loop() {
    on_own_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let handle = reactor.handle();
        let ran_on = Rc::new(Cell::new(None));
        let r2 = ran_on.clone();
        reactor.call_when_running(move |_| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                handle.call_from_thread(|r| {
                    let _ = r.stop();
                });
            });
        });
        reactor.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| {
            r2.set(Some(std::thread::current().id()));
        });
        let _guard = guard(context);
        torque_glib::run(&reactor).unwrap();
        assert_eq!(ran_on.get(), Some(std::thread::current().id()));
    });
}

#[test]
fn backends_glib_cannot_watch_are_refused_with_a_clear_error() {
    let unwatchable = |e: &torque_glib::Error| {
        matches!(
            e,
            torque_glib::Error::Reactor(ReactorError::Unsupported { capability: Capability::WatchFd, .. })
        )
    };
    for &kind in BackendKind::all().iter().filter(|k| !k.info().supports(Capability::WatchFd)) {
        let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
        let err = torque_glib::attach(&reactor, &glib::MainContext::new()).unwrap_err();
        assert!(unwatchable(&err), "{err}");
        assert!(!reactor.is_started(), "a refused attach starts nothing");
        let app = gio::Application::new(None, gio::ApplicationFlags::NON_UNIQUE);
        let err = torque_glib::register_application(&reactor, &app).unwrap_err();
        assert!(unwatchable(&err), "{err}");
    }
}

#[test]
fn a_running_reactor_cannot_be_attached_twice() {
    on_own_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let run = torque_glib::attach(&reactor, context).unwrap();
        assert!(matches!(
            torque_glib::attach(&reactor, context),
            Err(torque_glib::Error::Reactor(ReactorError::AlreadyRunning))
        ));
        assert!(matches!(reactor.run(), Err(ReactorError::AlreadyRunning)));
        // Dropping the run ends it (as crash does); the reactor can run again.
        drop(run);
        assert!(!reactor.is_started());
        reactor.call_later(Duration::ZERO, |r| r.stop().unwrap());
        torque_glib::run(&reactor).unwrap();
    });
}

fn application() -> gio::Application {
    let app = gio::Application::new(Some("org.torque.GlibTest"), gio::ApplicationFlags::NON_UNIQUE);
    // GApplication warns when nothing handles `activate`.
    app.connect_activate(|_| {});
    app
}

fn shutdown_log(reactor: &Reactor) -> Rc<RefCell<Vec<&'static str>>> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |_| {
        l.borrow_mut().push("before shutdown")
    });
    let l = log.clone();
    reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| {
        l.borrow_mut().push("after shutdown")
    });
    log
}

#[test]
fn reactor_stop_quits_the_application() {
    let _lock = DEFAULT_CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    let reactor = torque_glib::reactor().unwrap();
    let app = application();
    torque_glib::register_application(&reactor, &app).unwrap();
    let second = application();
    assert!(matches!(
        torque_glib::register_application(&reactor, &second),
        Err(torque_glib::Error::AlreadyRegistered)
    ));
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    reactor.call_when_running(move |r| {
        s.set(true);
        r.call_later(Duration::from_millis(10), |r| r.stop().unwrap());
    });
    let log = shutdown_log(&reactor);
    let _guard = guard(&glib::MainContext::default());
    // Windowless: without the reactor's hold the application would return at once.
    let status = app.run_with_args(&[] as &[&str]);
    assert_eq!(status, glib::ExitCode::SUCCESS);
    assert!(started.get(), "the application's startup started the reactor");
    assert_eq!(*log.borrow(), ["before shutdown", "after shutdown"]);
    assert!(!reactor.is_started());
}

#[test]
fn quitting_the_application_stops_the_reactor_cleanly() {
    let _lock = DEFAULT_CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    let reactor = torque_glib::reactor().unwrap();
    let app = application();
    torque_glib::register_application(&reactor, &app).unwrap();
    let log = shutdown_log(&reactor);
    // A before-shutdown trigger that needs more passes: the application waits.
    let l = log.clone();
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        let (done, resolver) = torque::defer::Deferred::<()>::pending();
        let l = l.clone();
        r.call_later(Duration::from_millis(5), move |_| {
            l.borrow_mut().push("slow trigger done");
            let _ = resolver.callback(());
        });
        done
    });
    let a = app.clone();
    glib::timeout_add_local_once(Duration::from_millis(10), move || a.quit());
    let _guard = guard(&glib::MainContext::default());
    app.run_with_args(&[] as &[&str]);
    assert_eq!(*log.borrow(), ["before shutdown", "slow trigger done", "after shutdown"]);
    assert!(!reactor.is_started(), "the reactor stopped before app.run() returned");
}

/// `crash()` from a GLib callback (not inside a Torque pass) must still end
/// `torque_glib::run`, without the shutdown triggers.
#[test]
fn crash_from_a_glib_callback_ends_the_run() {
    on_default_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let log = shutdown_log(&reactor);
        let r = reactor.clone();
        glib::timeout_add_local_once(Duration::from_millis(10), move || r.crash());
        let _guard = guard(context);
        torque_glib::run(&reactor).unwrap();
        assert!(log.borrow().is_empty(), "crash skips the shutdown triggers");
        assert!(!reactor.is_started());
    });
}

/// Dropping the `GlibRun` from inside a Torque callback ends the run after
/// that pass (as `crash()`), so the reactor can run again at once.
#[test]
fn a_glib_run_dropped_inside_a_callback_ends_the_run() {
    on_own_context(|context| {
        let reactor = torque_glib::reactor().unwrap();
        let slot: Rc<RefCell<Option<torque_glib::GlibRun>>> = Rc::default();
        *slot.borrow_mut() = Some(torque_glib::attach(&reactor, context).unwrap());
        let s = slot.clone();
        let finished_inside = Rc::new(Cell::new(None));
        let f = finished_inside.clone();
        reactor.call_later(Duration::from_millis(5), move |_| {
            let run = s.borrow_mut().take().unwrap();
            f.set(Some(run.is_finished()));
            drop(run);
        });
        let _guard = guard(context);
        let start = std::time::Instant::now();
        while reactor.is_started() {
            assert!(start.elapsed() < Duration::from_secs(20), "the dropped run did not end");
            context.iteration(true);
        }
        assert_eq!(finished_inside.get(), Some(false), "inside a pass the run is not finished");
        reactor.call_later(Duration::ZERO, |r| r.stop().unwrap());
        torque_glib::run(&reactor).unwrap();
    });
}

/// GLib dispatches a context on its owner's thread only: attaching where
/// another thread owns the context is refused, not silently run elsewhere.
#[test]
fn attaching_to_a_context_another_thread_owns_is_refused() {
    let context = glib::MainContext::new();
    let (owned_tx, owned_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let other = context.clone();
    let owner = std::thread::spawn(move || {
        let _owner = other.acquire().expect("a new context is free");
        owned_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    owned_rx.recv().unwrap();
    let reactor = torque_glib::reactor().unwrap();
    let err = torque_glib::attach(&reactor, &context).unwrap_err();
    assert!(matches!(err, torque_glib::Error::ContextOwnedElsewhere), "{err}");
    assert!(!reactor.is_started(), "nothing started");
    release_tx.send(()).unwrap();
    owner.join().unwrap();
    let run = torque_glib::attach(&reactor, &context).expect("free again");
    drop(run);
}
