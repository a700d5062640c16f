//! IReactorTime: call_later and DelayedCall, on a fake clock unless stated.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torque::{BackendKind, DelayedCall, DelayedCallError};

use crate::support::{Log, fake_reactor, reactor, run, spin, step};

const SEC: Duration = Duration::from_secs(1);

fn a_call_runs_at_its_deadline_not_before(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    let l = log.clone();
    let call = r.call_later(SEC, move |r| l.push(format!("at {:?}", r.now())));
    assert_eq!(call.time(), SEC);
    clock.advance(SEC / 2);
    spin(&r, 3);
    assert_eq!(log.len(), 0);
    assert!(call.active());
    clock.advance(SEC / 2);
    spin(&r, 1);
    assert_eq!(log.take(), ["at 1s"]);
    assert!(!call.active());
}

fn equal_deadlines_run_in_scheduling_order(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    for i in 0..100 {
        let l = log.clone();
        r.call_later(SEC, move |_| l.push(i.to_string()));
    }
    // An earlier deadline scheduled later still runs first.
    let l = log.clone();
    r.call_later(SEC / 2, move |_| l.push("early"));
    clock.advance(SEC);
    spin(&r, 1);
    let mut expected = vec!["early".to_string()];
    expected.extend((0..100).map(|i| i.to_string()));
    assert_eq!(log.take(), expected);
}

fn cancel_and_reset_errors_follow_twisted(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let cancelled = r.call_later(SEC, move |_| flag.set(true));
    cancelled.cancel().unwrap();
    assert!(!cancelled.active());
    assert_eq!(cancelled.cancel(), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(cancelled.reset(SEC), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(cancelled.delay(SEC), Err(DelayedCallError::AlreadyCancelled));

    let called = r.call_later(SEC, |_| {});
    clock.advance(SEC);
    spin(&r, 1);
    assert!(!ran.get(), "a cancelled call never runs");
    assert_eq!(called.cancel(), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(called.reset(SEC), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(called.delay(SEC), Err(DelayedCallError::AlreadyCalled));
}

fn cancel_from_inside_the_call_itself_is_already_called(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let me: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
    let result = Rc::new(Cell::new(None));
    let (m, res) = (me.clone(), result.clone());
    *me.borrow_mut() = Some(r.call_later(SEC, move |_| {
        let call = m.borrow().clone().unwrap();
        res.set(Some((call.cancel(), call.reset(SEC), call.active())));
    }));
    clock.advance(SEC);
    spin(&r, 1);
    assert_eq!(
        result.get(),
        Some((Err(DelayedCallError::AlreadyCalled), Err(DelayedCallError::AlreadyCalled), false))
    );
}

fn reset_and_delay_move_the_deadline(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    let l = log.clone();
    let call = r.call_later(SEC, move |r| l.push(format!("{:?}", r.now())));
    call.reset(3 * SEC).unwrap();
    assert_eq!(call.time(), 3 * SEC);
    call.delay(SEC).unwrap();
    assert_eq!(call.time(), 4 * SEC);
    clock.advance(3 * SEC);
    spin(&r, 2);
    assert_eq!(log.len(), 0, "the old deadline is stale after reset");
    clock.advance(SEC);
    spin(&r, 2);
    assert_eq!(log.take(), ["4s"], "runs exactly once, at the new deadline");
    // Reset to an earlier time also works.
    let l = log.clone();
    let call = r.call_later(10 * SEC, move |_| l.push("early"));
    call.reset(Duration::ZERO).unwrap();
    spin(&r, 1);
    assert_eq!(log.take(), ["early"]);
}

fn a_zero_delay_call_from_a_timed_call_waits_a_pass(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.call_later(Duration::ZERO, move |r| {
        l.push("outer");
        let inner = l.clone();
        r.call_later(Duration::ZERO, move |_| inner.push("inner"));
    });
    spin(&r, 1);
    assert_eq!(log.snapshot(), ["outer"]);
    spin(&r, 1);
    assert_eq!(log.take(), ["outer", "inner"]);
}

fn a_call_absurdly_far_in_the_future_does_not_break_the_wait(kind: BackendKind) {
    let r = reactor(kind);
    let far = r.call_later(Duration::MAX, |_| panic!("ran"));
    let far2 = r.call_later(Duration::from_secs(u64::MAX / 4), |_| panic!("ran"));
    assert_eq!(far.time(), Duration::MAX);
    assert!(r.timeout().unwrap() > Duration::from_secs(1 << 40));
    let start = Instant::now();
    step(&r, Duration::from_millis(5)).unwrap();
    // Generous bound: the wait must honour the 5 ms cap, not sleep for years.
    assert!(start.elapsed() < Duration::from_secs(30));
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    r.call_when_running(move |r| {
        r.call_later(Duration::from_millis(2), move |r| {
            s.set(true);
            r.stop().unwrap();
        });
    });
    run(&r).unwrap();
    assert!(stopped.get());
    assert!(far.active() && far2.active());
}

fn delayed_calls_lists_pending_calls_in_time_order(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let c = r.call_later(3 * SEC, |_| {});
    let a = r.call_later(SEC, |_| {});
    let b = r.call_later(2 * SEC, |_| {});
    b.cancel().unwrap();
    let listed = r.delayed_calls();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].same_call(&a) && listed[1].same_call(&c));
}

fn seconds_reads_the_injected_clock(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    assert_eq!(r.seconds(), 0.0);
    clock.advance(Duration::from_millis(1500));
    assert_eq!(r.seconds(), 1.5);
    assert_eq!(r.now(), Duration::from_millis(1500));
}

fn a_timer_can_cancel_another_due_in_the_same_pass(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    let victim: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
    let (v, l) = (victim.clone(), log.clone());
    r.call_later(SEC, move |_| {
        l.push("first");
        v.borrow().as_ref().unwrap().cancel().unwrap();
    });
    let l = log.clone();
    *victim.borrow_mut() = Some(r.call_later(SEC, move |_| l.push("victim")));
    clock.advance(SEC);
    spin(&r, 2);
    assert_eq!(log.take(), ["first"]);
}

fn a_panicking_call_is_logged_and_the_rest_run(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let log = Log::default();
    r.call_later(SEC, |_| panic!("timer panicked on purpose"));
    let l = log.clone();
    r.call_later(SEC, move |_| l.push("survivor"));
    clock.advance(SEC);
    let logs = crate::support::capture_logs(|| spin(&r, 1));
    assert_eq!(log.take(), ["survivor"]);
    assert!(logs.contains("a delayed call panicked") && logs.contains("timer panicked on purpose"), "{logs}");
}

fn cancelling_drops_the_closure_and_its_captures(kind: BackendKind) {
    let (r, _clock) = fake_reactor(kind);
    let token = Rc::new(());
    let t = token.clone();
    let call = r.call_later(SEC, move |_| drop(t));
    assert_eq!(Rc::strong_count(&token), 2);
    call.cancel().unwrap();
    assert_eq!(Rc::strong_count(&token), 1);
}

fn many_cancelled_timers_do_not_accumulate(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let count = Rc::new(Cell::new(0));
    for round in 0..20u32 {
        let calls: Vec<DelayedCall> = (0..1000)
            .map(|_| {
                let c = count.clone();
                r.call_later(SEC * (round + 1), move |_| c.set(c.get() + 1))
            })
            .collect();
        for call in calls.iter().skip(1) {
            call.cancel().unwrap();
        }
    }
    assert_eq!(r.delayed_calls().len(), 20);
    clock.advance(SEC * 21);
    spin(&r, 1);
    assert_eq!(count.get(), 20);
}

fn a_real_clock_timer_fires_after_its_delay(kind: BackendKind) {
    let r = reactor(kind);
    let start = Instant::now();
    let fired_at = Rc::new(Cell::new(None));
    let f = fired_at.clone();
    r.call_later(Duration::from_millis(20), move |r| {
        f.set(Some(start.elapsed()));
        r.stop().unwrap();
    });
    run(&r).unwrap();
    assert!(fired_at.get().unwrap() >= Duration::from_millis(20));
}

crate::cases! {
    [] driven {
        a_call_runs_at_its_deadline_not_before,
        equal_deadlines_run_in_scheduling_order,
        cancel_and_reset_errors_follow_twisted,
        cancel_from_inside_the_call_itself_is_already_called,
        reset_and_delay_move_the_deadline,
        a_zero_delay_call_from_a_timed_call_waits_a_pass,
        a_call_absurdly_far_in_the_future_does_not_break_the_wait,
        delayed_calls_lists_pending_calls_in_time_order,
        seconds_reads_the_injected_clock,
        a_timer_can_cancel_another_due_in_the_same_pass,
        a_panicking_call_is_logged_and_the_rest_run,
        cancelling_drops_the_closure_and_its_captures,
        many_cancelled_timers_do_not_accumulate,
        a_real_clock_timer_fires_after_its_delay,
    }
}
