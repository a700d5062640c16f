//! Deferreds and async/await on the reactor, on every backend.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use torque::defer::{
    CallbackPanicked, CancelledError, Cooperator, Deferred, Failure, LoopingCall, LoopingCallError,
    TimeoutError,
};
use torque::{BackendKind, Phase, SystemEvent};

use crate::support::{Log, fake_reactor, iterate_until, reactor, spin};

fn spawned_futures_run_and_fire_their_deferred(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let r2 = r.clone();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let _d = r
        .spawn(async move {
            r2.sleep(Duration::from_secs(5)).await.unwrap();
            let nested = r2.spawn(async { 20 });
            nested.await.unwrap() + 22
        })
        .map(move |n| g.set(Some(n)));
    spin(&r, 3);
    assert_eq!(got.get(), None, "still sleeping on the fake clock");
    clock.advance(Duration::from_secs(5));
    iterate_until(&r, || got.get().is_some());
    assert_eq!(got.get(), Some(42));
    spin(&r, 2);
    assert_eq!(r.spawned_tasks(), 0);
}

struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn cancelling_a_spawned_task_drops_its_future(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let r2 = r.clone();
    let d = r.spawn(async move {
        let _flag = flag;
        r2.sleep(Duration::from_secs(3600)).await.unwrap();
        1
    });
    spin(&r, 2);
    assert!(!dropped.get());
    d.cancel();
    assert!(dropped.get(), "the future (and what it owns) is dropped at once");
    assert!(d.result().unwrap().unwrap_err().is::<CancelledError>());
    spin(&r, 1);
    assert_eq!(r.spawned_tasks(), 0);
}

fn a_panicking_task_fails_its_deferred(kind: BackendKind) {
    let r = reactor(kind);
    let d = r.spawn(async { panic!("task panicked on purpose") });
    let failure = Rc::new(RefCell::new(None));
    let f = failure.clone();
    let _tail = d.add_errback(move |e: Failure| {
        *f.borrow_mut() = Some(e);
        Ok(())
    });
    iterate_until(&r, || failure.borrow().is_some());
    assert!(failure.borrow().as_ref().unwrap().is::<CallbackPanicked>());
}

fn callbacks_and_await_mix_with_threads(kind: BackendKind) {
    let r = reactor(kind);
    let r2 = r.clone();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let _d = r
        .spawn(async move {
            let blocking = r2.defer_to_thread(|| (1..=5u64).product::<u64>());
            let doubled = blocking.map(|n| n * 2);
            doubled.await.unwrap()
        })
        .map(move |n| g.set(Some(n)));
    iterate_until(&r, || got.get().is_some());
    assert_eq!(got.get(), Some(240));
}

fn a_timeout_cancels_a_slow_deferred(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let (slow, _resolver) = Deferred::<u32>::pending();
    let slow = slow.add_timeout(&r, Duration::from_secs(2));
    let (fast, fast_resolver) = Deferred::<u32>::pending();
    let fast = fast.add_timeout(&r, Duration::from_secs(2));
    fast_resolver.callback(7).unwrap();
    clock.advance(Duration::from_secs(2));
    spin(&r, 1);
    assert!(slow.result().unwrap().unwrap_err().is::<TimeoutError>());
    assert_eq!(fast.result().unwrap().unwrap(), 7);
    assert!(r.delayed_calls().is_empty(), "the fast deferred cancelled its timeout");
}

/// A before-shutdown trigger returning a Deferred holds shutdown back while the
/// loop keeps serving timers; then the later phases run and run() returns.
fn shutdown_waits_for_a_before_trigger_deferred(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        l.push("before: finishing in-flight work");
        let l2 = l.clone();
        let l3 = l.clone();
        r.call_later(Duration::from_millis(1), move |_| l2.push("timer still served"));
        r.sleep(Duration::from_millis(20)).map(move |_| l3.push("in-flight work done"))
    });
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| l.push("during"));
    let l = log.clone();
    r.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| l.push("after"));
    r.call_when_running(|r| r.stop().unwrap());
    r.run().unwrap();
    assert_eq!(
        log.take(),
        ["before: finishing in-flight work", "timer still served", "in-flight work done", "during", "after"]
    );
}

fn startup_waits_too_and_failures_do_not_block(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Startup, move |r| {
        l.push("before startup");
        let l2 = l.clone();
        r.sleep(Duration::from_millis(5)).map(move |_| l2.push("startup work done"))
    });
    r.add_system_event_trigger(Phase::Before, SystemEvent::Startup, |r| {
        r.sleep(Duration::from_millis(1))
            .add_callback(|_| Err::<(), _>(Failure::msg("warm-up failed on purpose")))
    });
    let l = log.clone();
    r.call_when_running(move |r| {
        l.push(format!("running={}", r.is_running()));
        r.stop().unwrap();
    });
    let logs = crate::support::capture_logs(|| r.run().unwrap());
    assert_eq!(log.take(), ["before startup", "startup work done", "running=true"]);
    assert!(logs.contains("warm-up failed on purpose"), "the failure was logged: {logs}");
}

const SEC: Duration = Duration::from_secs(1);

fn a_looping_call_runs_on_its_interval_and_stops(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let times = Rc::new(RefCell::new(Vec::new()));
    let t = times.clone();
    let looping = LoopingCall::new(move |r| t.borrow_mut().push(r.now().as_secs()));
    let stopped = looping.start(&r, SEC, true).unwrap();
    assert_eq!(looping.start(&r, SEC, true).unwrap_err(), LoopingCallError::AlreadyRunning);
    for _ in 0..3 {
        clock.advance(SEC);
        spin(&r, 1);
    }
    assert_eq!(*times.borrow(), [0, 1, 2, 3]);
    assert!(looping.running());
    looping.stop();
    assert!(!looping.running());
    assert!(stopped.result().unwrap().is_ok());
    clock.advance(SEC * 5);
    spin(&r, 2);
    assert_eq!(times.borrow().len(), 4, "no calls after stop");
}

fn with_count_reports_skipped_intervals(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let counts = Rc::new(RefCell::new(Vec::new()));
    let c = counts.clone();
    let looping = LoopingCall::with_count(move |_, n| c.borrow_mut().push(n));
    let _d = looping.start(&r, SEC, false).unwrap();
    clock.advance(Duration::from_millis(3500));
    spin(&r, 1);
    clock.advance(Duration::from_millis(500));
    spin(&r, 1);
    assert_eq!(*counts.borrow(), [3, 1], "fell behind by two intervals, then on time");
    looping.stop();
}

fn a_failing_call_stops_the_loop_and_fails_its_deferred(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let looping = LoopingCall::new(move |_| {
        c.set(c.get() + 1);
        if c.get() == 2 { Err(Failure::msg("tick failed on purpose")) } else { Ok(()) }
    });
    let done = looping.start(&r, SEC, true).unwrap();
    clock.advance(SEC);
    spin(&r, 1);
    clock.advance(SEC * 3);
    spin(&r, 2);
    assert_eq!(calls.get(), 2);
    assert!(!looping.running());
    assert!(done.result().unwrap().unwrap_err().to_string().contains("on purpose"));
}

fn a_call_returning_a_deferred_holds_the_next_one(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let times = Rc::new(RefCell::new(Vec::new()));
    let t = times.clone();
    let looping = LoopingCall::new(move |r| {
        t.borrow_mut().push(r.now().as_millis());
        r.sleep(Duration::from_millis(2500))
    });
    let _d = looping.start(&r, SEC, true).unwrap();
    for _ in 0..6 {
        clock.advance(Duration::from_millis(500));
        spin(&r, 2);
    }
    // Called at 0; its work ends at 2.5 s; the next grid point is 3 s.
    assert_eq!(*times.borrow(), [0, 3000]);
    looping.stop();
}

fn a_cooperator_interleaves_iterators_without_starving_timers(kind: BackendKind) {
    let r = reactor(kind);
    let coop = Cooperator::with_slice(&r, Duration::from_millis(2));
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let a = coop.cooperate((0..3).map(move |i| l1.borrow_mut().push(format!("a{i}"))));
    let b = coop.cooperate((0..3).map(move |i| l2.borrow_mut().push(format!("b{i}"))));
    // A long iterator: 200 steps of 1 ms each, so at least ~100 slices.
    let slow = coop.cooperate((0..200).map(|_| std::thread::sleep(Duration::from_millis(1))));
    let timer_fired_early = Rc::new(Cell::new(None));
    let (t, slow_done) = (timer_fired_early.clone(), Rc::new(Cell::new(false)));
    let sd = slow_done.clone();
    r.call_later(Duration::from_millis(1), move |_| t.set(Some(!sd.get())));
    let _s = slow.map(move |_| slow_done.set(true));
    let _a = a.map(|_| ());
    let _b = b.map(|_| ());
    iterate_until(&r, || timer_fired_early.get().is_some() && r.delayed_calls().is_empty());
    assert_eq!(timer_fired_early.get(), Some(true), "the timer ran while the slow iterator was still going");
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"], "round-robin");
}

fn a_looping_call_restarted_from_inside_itself_runs_once_per_interval(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let calls = Rc::new(Cell::new(0));
    let me: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let first_done = Rc::new(RefCell::new(None));
    let (c, m, fd) = (calls.clone(), me.clone(), first_done.clone());
    let looping = LoopingCall::new(move |r| {
        c.set(c.get() + 1);
        if c.get() == 2 {
            let lc = m.borrow().clone().unwrap();
            lc.stop();
            *fd.borrow_mut() = Some(lc.start(r, SEC, false).unwrap());
        }
    });
    *me.borrow_mut() = Some(looping.clone());
    let first = looping.start(&r, SEC, true).unwrap();
    for _ in 0..4 {
        clock.advance(SEC);
        spin(&r, 2);
    }
    assert_eq!(calls.get(), 5, "one call per interval, never two");
    assert!(first.result().unwrap().is_ok(), "the first run's Deferred fired when it was stopped");
    assert_eq!(r.delayed_calls().len(), 1, "exactly one timer pending");
    looping.stop();
}

fn defer_later_with_a_panicking_function_fails(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let d = r.defer_later(SEC, |_| -> u32 { panic!("deferLater function panicked on purpose") });
    clock.advance(SEC);
    spin(&r, 1);
    assert!(d.result().unwrap().unwrap_err().is::<CallbackPanicked>());
}

fn a_crash_abandons_a_waiting_shutdown(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        l.push("before");
        // Crash while this trigger's Deferred is still pending.
        r.call_later(Duration::ZERO, |r| r.crash());
        r.sleep(SEC * 5)
    });
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| l.push("during"));
    r.call_when_running(|r| r.stop().unwrap());
    r.run().unwrap();
    assert_eq!(log.take(), ["before"]);
    // Run again: the abandoned firing's Deferred finishes now, and must not run
    // the shutdown's later phases in the middle of this run.
    clock.advance(SEC * 10);
    r.call_when_running(|r| {
        r.call_later(Duration::ZERO, |r| {
            r.call_later(Duration::ZERO, |r| r.crash());
        });
    });
    r.run().unwrap();
    assert!(log.take().is_empty(), "the during-trigger waits for a real shutdown");
}

fn a_task_woken_from_a_nested_pass_is_not_lost(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let r2 = r.clone();
    let done = Rc::new(Cell::new(false));
    let d2 = done.clone();
    let _task = r.spawn(async move {
        let wait = r2.sleep(Duration::ZERO);
        let mut wait = std::pin::pin!(wait);
        // Poll once (pending), then run a nested pass in which the timer fires and
        // wakes this very task while it is still being polled.
        std::future::poll_fn(|cx| {
            let _ = wait.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        r2.iterate(Duration::ZERO).unwrap();
        // Now return Pending once without arranging a wake-up of our own: only
        // the wake the timer gave during the nested pass can bring us back.
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                std::task::Poll::Pending
            }
        })
        .await;
        wait.await.unwrap();
        d2.set(true);
    });
    iterate_until(&r, || done.get());
}

crate::cases! {
    [] plain {
        a_looping_call_restarted_from_inside_itself_runs_once_per_interval,
        defer_later_with_a_panicking_function_fails,
        a_crash_abandons_a_waiting_shutdown,
        a_task_woken_from_a_nested_pass_is_not_lost,
        a_looping_call_runs_on_its_interval_and_stops,
        with_count_reports_skipped_intervals,
        a_failing_call_stops_the_loop_and_fails_its_deferred,
        a_call_returning_a_deferred_holds_the_next_one,
        a_cooperator_interleaves_iterators_without_starving_timers,
        spawned_futures_run_and_fire_their_deferred,
        cancelling_a_spawned_task_drops_its_future,
        a_panicking_task_fails_its_deferred,
        callbacks_and_await_mix_with_threads,
        a_timeout_cancels_a_slow_deferred,
        shutdown_waits_for_a_before_trigger_deferred,
        startup_waits_too_and_failures_do_not_block,
    }
}
