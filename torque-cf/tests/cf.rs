//! What only the CFRunLoop-driven reactor does: the run loop does the waiting,
//! so CF timers and Torque callbacks share one thread; a Torque timer moved
//! earlier from a CF callback shortens the run loop's sleep; another thread's
//! call wakes it; and the run is refused on another thread's run loop and on
//! backends without a watch fd. (macOS only; compile-checked in CI.)

#![cfg(target_os = "macos")]

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::rc::Rc;
use std::time::Duration;

use core_foundation::runloop::{
    CFRunLoop, CFRunLoopTimer, CFRunLoopTimerContext, CFRunLoopTimerRef, kCFRunLoopCommonModes,
};
use core_foundation_sys::date::CFAbsoluteTimeGetCurrent;
use torque::{BackendKind, Capability, ReactorError};

/// Runs `f` once, `after` from now, from a CF timer on this thread's run loop.
/// The returned timer must be kept until it has fired.
fn cf_timer(after: Duration, f: impl FnOnce() + 'static) -> CFRunLoopTimer {
    extern "C" fn fire(_timer: CFRunLoopTimerRef, info: *mut c_void) {
        // SAFETY (test): `info` is the boxed closure cell made below, alive
        // while the timer is (the test keeps both).
        let cell = unsafe { &*(info as *const RefCell<Option<Box<dyn FnOnce()>>>) };
        if let Some(f) = cell.borrow_mut().take() {
            f();
        }
    }
    let f: Box<dyn FnOnce()> = Box::new(f);
    let cell: &'static RefCell<Option<Box<dyn FnOnce()>>> = Box::leak(Box::new(RefCell::new(Some(f))));
    let mut context = CFRunLoopTimerContext {
        version: 0,
        info: cell as *const _ as *mut c_void,
        retain: None,
        release: None,
        copyDescription: None,
    };
    // SAFETY (test): CFAbsoluteTimeGetCurrent has no arguments.
    let now = unsafe { CFAbsoluteTimeGetCurrent() };
    let timer = CFRunLoopTimer::new(now + after.as_secs_f64(), 0.0, 0, 0, fire, &mut context);
    // SAFETY (test): an immutable CFString constant.
    CFRunLoop::get_current().add_timer(&timer, unsafe { kCFRunLoopCommonModes });
    timer
}

/// Fails the test if the run is still going after 20 s.
fn guard() -> CFRunLoopTimer {
    cf_timer(Duration::from_secs(20), || panic!("the CFRunLoop-driven reactor did not finish within 20 s"))
}

#[test]
fn cf_timers_and_reactor_callbacks_run_on_one_thread() {
    let reactor = torque_cf::reactor().unwrap();
    let here = std::thread::current().id();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let _early =
        cf_timer(Duration::ZERO, move || s.borrow_mut().push(("cf timer", std::thread::current().id())));
    let s = seen.clone();
    reactor.call_later(Duration::from_millis(50), move |r| {
        s.borrow_mut().push(("torque timer", std::thread::current().id()));
        r.stop().unwrap();
    });
    let _guard = guard();
    torque_cf::run(&reactor).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.iter().map(|(what, _)| *what).collect::<Vec<_>>(), ["cf timer", "torque timer"]);
    assert!(seen.iter().all(|(_, thread)| *thread == here), "everything ran on the run loop's thread");
    assert!(!reactor.is_started());
}

/// The run loop sleeps on the reactor's one-hour timer; a CF timer moves that
/// timer to 10 ms, and it must fire long before the hour (or the guard).
#[test]
fn a_timer_moved_earlier_shortens_the_run_loops_sleep() {
    let reactor = torque_cf::reactor().unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let call = reactor.call_later(Duration::from_secs(3600), move |r| {
        f.set(true);
        r.stop().unwrap();
    });
    let _mover = cf_timer(Duration::from_millis(20), move || {
        call.reset(Duration::from_millis(10)).unwrap();
    });
    let _guard = guard();
    torque_cf::run(&reactor).unwrap();
    assert!(fired.get());
}

/// No timers and no fds: only the other thread's call can end the sleep (the
/// kqueue's EVFILT_USER makes the watched fd readable).
#[test]
fn a_call_from_another_thread_wakes_the_run_loop() {
    let reactor = torque_cf::reactor().unwrap();
    let handle = reactor.handle();
    reactor.call_when_running(move |_| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.call_from_thread(|r| {
                let _ = r.stop();
            });
        });
    });
    let _guard = guard();
    torque_cf::run(&reactor).unwrap();
    assert!(!reactor.is_started());
}

#[test]
fn crash_from_a_cf_callback_ends_the_run() {
    let reactor = torque_cf::reactor().unwrap();
    let r = reactor.clone();
    let _crasher = cf_timer(Duration::from_millis(10), move || r.crash());
    let _guard = guard();
    torque_cf::run(&reactor).unwrap();
    assert!(!reactor.is_started());
}

#[test]
fn another_threads_run_loop_is_refused() {
    let main_like = CFRunLoop::get_current();
    let err = std::thread::spawn(move || {
        let reactor = torque_cf::reactor().unwrap();
        torque_cf::attach(&reactor, &main_like).map(drop).unwrap_err().to_string()
    })
    .join()
    .unwrap();
    assert!(err.contains("another thread"), "{err}");
}

#[test]
fn backends_without_a_watch_fd_are_refused_with_a_clear_error() {
    for &kind in BackendKind::all().iter().filter(|k| !k.info().supports(Capability::WatchFd)) {
        let reactor = torque::Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
        let err = torque_cf::attach(&reactor, &CFRunLoop::get_current()).map(drop).unwrap_err();
        assert!(
            matches!(
                err,
                torque_cf::Error::Reactor(ReactorError::Unsupported { capability: Capability::WatchFd, .. })
            ),
            "{err}"
        );
        assert!(!reactor.is_started(), "a refused attach starts nothing");
    }
}

#[test]
fn a_dropped_run_ends_like_crash() {
    let reactor = torque_cf::reactor().unwrap();
    let run = torque_cf::attach(&reactor, &CFRunLoop::get_current()).unwrap();
    assert!(reactor.is_started());
    drop(run);
    assert!(!reactor.is_started());
}
