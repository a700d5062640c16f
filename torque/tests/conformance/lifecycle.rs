//! IReactorCore: run, stop, crash, iterate, is_running, call_when_running.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use torque::{BackendKind, Phase, ReactorError, SystemEvent};

use crate::support::{Log, fake_reactor, foreign_loop, reactor, run, step};

fn stop_fires_shutdown_phases(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    for (phase, name) in [(Phase::After, "after"), (Phase::Before, "before"), (Phase::During, "during")] {
        let log = log.clone();
        r.add_system_event_trigger(phase, SystemEvent::Shutdown, move |r| {
            log.push(format!("{name} running={}", r.is_running()));
        });
    }
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push(format!("started running={}", r.is_running()));
        r.stop().unwrap();
    });
    run(&r).unwrap();
    assert_eq!(
        log.take(),
        ["started running=true", "before running=true", "during running=false", "after running=false"]
    );
    assert!(!r.is_running());
}

fn stop_when_not_running_is_an_error(kind: BackendKind) {
    let r = reactor(kind);
    assert!(matches!(r.stop(), Err(ReactorError::NotRunning)));
    let second = Rc::new(Cell::new(None));
    let s = second.clone();
    r.call_when_running(move |r| {
        r.stop().unwrap();
        s.set(Some(matches!(r.stop(), Err(ReactorError::NotRunning))));
    });
    run(&r).unwrap();
    assert_eq!(second.get(), Some(true), "a second stop() while stopping is NotRunning");
    assert!(matches!(r.stop(), Err(ReactorError::NotRunning)));
}

fn run_inside_run_is_an_error_and_the_outer_loop_goes_on(kind: BackendKind) {
    let r = reactor(kind);
    let nested = Rc::new(Cell::new(None));
    let n = nested.clone();
    r.call_when_running(move |r| {
        n.set(Some(matches!(r.run(), Err(ReactorError::AlreadyRunning))));
        r.call_later(Duration::from_millis(1), |r| r.stop().unwrap());
    });
    run(&r).unwrap();
    assert_eq!(nested.get(), Some(true));
}

fn shutdown_happens_on_a_later_pass_not_inside_stop(kind: BackendKind) {
    let r = reactor(kind);
    let shutdown_ran = Rc::new(Cell::new(false));
    let s = shutdown_ran.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |_| s.set(true));
    let seen = Rc::new(Cell::new(None));
    let (s, seen2) = (shutdown_ran.clone(), seen.clone());
    r.call_when_running(move |r| {
        r.stop().unwrap();
        seen2.set(Some((s.get(), r.is_running())));
    });
    run(&r).unwrap();
    assert_eq!(seen.get(), Some((false, true)), "stop() returned before shutdown began");
    assert!(shutdown_ran.get(), "run() returned after the shutdown triggers");
}

fn run_after_crash_works(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |_| l.push("shutdown"));
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push("first run");
        r.crash();
    });
    run(&r).unwrap();
    assert_eq!(log.take(), ["first run"], "crash skips shutdown");
    assert!(!r.is_running());
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push("second run");
        r.stop().unwrap();
    });
    run(&r).unwrap();
    assert_eq!(log.take(), ["second run", "shutdown"]);
}

/// Torque lifts Twisted's ReactorNotRestartable: run() after stop() starts afresh.
fn run_after_stop_restarts(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push("run 1");
        r.stop().unwrap();
    });
    run(&r).unwrap();
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Startup, move |_| l.push("startup 2"));
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push(format!("run 2 running={}", r.is_running()));
        r.call_later(Duration::ZERO, |r| r.stop().unwrap());
    });
    run(&r).unwrap();
    assert_eq!(log.take(), ["run 1", "startup 2", "run 2 running=true"]);
}

fn call_when_running_while_running_calls_now(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.call_when_running(move |r| {
        let inner = l.clone();
        r.call_when_running(move |_| inner.push("inner"));
        l.push("after inner");
        r.stop().unwrap();
    });
    run(&r).unwrap();
    assert_eq!(log.take(), ["inner", "after inner"]);
}

fn iterate_works_without_run(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    r.call_later(Duration::from_secs(5), move |_| f.set(true));
    step(&r, Duration::ZERO).unwrap();
    assert!(!fired.get());
    clock.advance(Duration::from_secs(5));
    step(&r, Duration::ZERO).unwrap();
    assert!(fired.get());
    // Plain `iterate` does not start the reactor; a foreign loop's run does.
    assert_eq!(r.is_running(), foreign_loop());
}

fn iterate_inside_a_callback_is_allowed(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.call_later(Duration::ZERO, move |r| {
        let inner = l.clone();
        r.call_later(Duration::ZERO, move |_| inner.push("inner timer"));
        r.iterate(Duration::ZERO).unwrap();
        l.push("outer timer done");
    });
    step(&r, Duration::ZERO).unwrap();
    assert_eq!(log.take(), ["inner timer", "outer timer done"]);
}

fn is_running_phases_during_startup(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    for (phase, name) in [(Phase::Before, "before"), (Phase::After, "after")] {
        let l = log.clone();
        r.add_system_event_trigger(phase, SystemEvent::Startup, move |r| {
            l.push(format!("{name} {}", r.is_running()))
        });
    }
    r.call_when_running(|r| r.stop().unwrap());
    run(&r).unwrap();
    assert_eq!(log.take(), ["before false", "after true"]);
}

/// As in Twisted, the reactor counts as started once run() begins firing startup,
/// so a before-startup trigger may stop it; shutdown then follows startup.
fn a_before_startup_trigger_may_stop_the_reactor(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Startup, move |r| {
        l.push(format!("stop: {:?}", r.stop().is_ok()));
    });
    let l = log.clone();
    r.call_when_running(move |_| l.push("running"));
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| l.push("shutdown"));
    run(&r).unwrap();
    assert_eq!(log.take(), ["stop: true", "running", "shutdown"]);
}

crate::cases! {
    [] driven {
        a_before_startup_trigger_may_stop_the_reactor,
        stop_fires_shutdown_phases,
        stop_when_not_running_is_an_error,
        run_inside_run_is_an_error_and_the_outer_loop_goes_on,
        shutdown_happens_on_a_later_pass_not_inside_stop,
        run_after_crash_works,
        run_after_stop_restarts,
        call_when_running_while_running_calls_now,
        iterate_works_without_run,
        iterate_inside_a_callback_is_allowed,
        is_running_phases_during_startup,
    }
}
