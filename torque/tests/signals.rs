//! Stop signals. These tests raise real SIGINT/SIGTERM, so they live in their own
//! test binary and take a lock: a signal reaches every reactor of the process that
//! listens for it.

#[path = "conformance/support.rs"]
mod support;

use std::sync::Mutex;

use torque::{BackendKind, Phase, Reactor, SystemEvent};

use support::Log;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn current_handler(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY (test): querying the disposition with a null new action.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

fn stop_signal_runs_a_graceful_shutdown(kind: BackendKind, sig: libc::c_int) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = current_handler(sig);
    let r = Reactor::builder().backend(kind).build().unwrap();
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| l.push("shutdown ran"));
    r.call_when_running(move |_| {
        // SAFETY (test): raise has no pointer arguments.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
    });
    r.run().unwrap();
    assert_eq!(log.take(), ["shutdown ran"]);
    assert_eq!(current_handler(sig), before, "the previous handler is restored after run()");
    assert_eq!(r.stop_signal(), Some(sig), "the reactor says which signal stopped it");
}

/// As in Twisted, the stop-signal handlers are installed at the start of
/// startup's `during` phase: a before-startup trigger still sees the previous
/// disposition (and may install the program's own), the rest of startup sees
/// ours. A run stopped by `stop()` has no stop signal.
fn signal_handlers_are_installed_after_the_before_startup_triggers(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = current_handler(libc::SIGTERM);
    let r = Reactor::builder().backend(kind).build().unwrap();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Startup, move |_| {
        s.borrow_mut().push(("before", current_handler(libc::SIGTERM)));
    });
    let s = seen.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Startup, move |_| {
        s.borrow_mut().push(("during", current_handler(libc::SIGTERM)));
    });
    r.call_when_running(|r| r.stop().unwrap());
    r.run().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0], ("before", before), "not yet ours in a before-startup trigger");
    assert_eq!(seen[1].0, "during");
    assert_ne!(seen[1].1, before, "ours from startup's during phase");
    assert_eq!(current_handler(libc::SIGTERM), before);
    assert_eq!(r.stop_signal(), None);
}

fn sigint_stops_gracefully(kind: BackendKind) {
    stop_signal_runs_a_graceful_shutdown(kind, libc::SIGINT);
}

fn sigterm_stops_gracefully(kind: BackendKind) {
    stop_signal_runs_a_graceful_shutdown(kind, libc::SIGTERM);
}

fn signal_handling_can_be_turned_off(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = current_handler(libc::SIGINT);
    let r = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    let seen = std::rc::Rc::new(std::cell::Cell::new(0));
    let s = seen.clone();
    r.call_when_running(move |r| {
        s.set(current_handler(libc::SIGINT));
        r.stop().unwrap();
    });
    r.run().unwrap();
    assert_eq!(seen.get(), before, "run() left SIGINT alone");
}

cases! {
    [] plain {
        sigint_stops_gracefully,
        sigterm_stops_gracefully,
        signal_handling_can_be_turned_off,
        signal_handlers_are_installed_after_the_before_startup_triggers,
    }
}

fn main() {
    support::main(cases(), &[support::PLAIN]);
}
