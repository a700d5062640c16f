//! Deferred semantics, tested directly (no reactor needed).

#[path = "conformance/support.rs"]
mod support;

use support::capture_logs;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torque::defer::{
    CallbackPanicked, CancelledError, Deferred, DeferredError, Failure, FirstError, all_settled,
    first_success, gather_results, maybe_deferred,
};

/// The value of a finished Deferred, panicking on failure.
fn value<T: 'static>(d: Deferred<T>) -> Option<T> {
    d.result().map(|r| r.unwrap_or_else(|f| panic!("unexpected failure: {f}")))
}

#[derive(Debug, thiserror::Error)]
#[error("boom {0}")]
struct Boom(u32);

#[test]
fn callbacks_chain_and_change_the_type() {
    let (d, r) = Deferred::<u32>::pending();
    let d = d.map(|n| n + 1).add_callback(|n| Ok::<String, Failure>(format!("n={n}")));
    assert!(!r.is_called());
    r.callback(41).unwrap();
    assert_eq!(d.result().unwrap().unwrap(), "n=42");
}

#[test]
fn firing_twice_is_already_called() {
    let (_d, r) = Deferred::<u32>::pending();
    r.callback(1).unwrap();
    assert_eq!(r.callback(2), Err(DeferredError::AlreadyCalled));
    assert_eq!(r.errback(Failure::msg("late")), Err(DeferredError::AlreadyCalled));
}

#[test]
fn failures_skip_callbacks_reach_errbacks_and_can_recover() {
    let (d, r) = Deferred::<u32>::pending();
    let skipped = Rc::new(Cell::new(false));
    let s = skipped.clone();
    let d = d
        .map(move |n| {
            s.set(true);
            n
        })
        .add_errback(|f| if f.is::<Boom>() { Ok(7) } else { Err(f) })
        .add_callback(|n| if n == 7 { Err(Failure::new(Boom(n))) } else { Ok(n) })
        .add_errback(Err::<u32, _>);
    r.errback(Boom(1)).unwrap();
    let failure = d.result().unwrap().unwrap_err();
    assert!(!skipped.get());
    assert_eq!(failure.downcast_ref::<Boom>().unwrap().0, 7, "recovered, then failed again");
}

#[test]
fn add_callbacks_runs_exactly_one_of_the_pair_and_add_both_sees_either() {
    let ok = Deferred::succeed(2u32).add_callbacks(|n| Ok(format!("ok {n}")), |f| Ok(format!("err {f}")));
    assert_eq!(value(ok), Some("ok 2".to_string()));
    let err = Deferred::<u32>::fail(Boom(9)).add_callbacks(|n| Ok(n as i64), |_| Ok(-1));
    assert_eq!(value(err), Some(-1));
    let both = Deferred::<u32>::fail(Boom(1)).add_both(|r| Ok::<bool, Failure>(r.is_err()));
    assert_eq!(value(both), Some(true));
}

#[test]
fn callbacks_added_after_firing_run_at_once() {
    let d = Deferred::succeed(5u32);
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let _d = d.map(move |n| s.set(n));
    assert_eq!(seen.get(), 5);
}

#[test]
fn a_callback_returning_a_deferred_pauses_the_chain() {
    let (inner, inner_r) = Deferred::<&'static str>::pending();
    let inner_cell = Rc::new(RefCell::new(Some(inner)));
    let ic = inner_cell.clone();
    let (d, r) = Deferred::<u32>::pending();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let d = d.add_callback(move |_| ic.borrow_mut().take().unwrap()).map(move |s| {
        a.set(true);
        s.len()
    });
    r.callback(1).unwrap();
    assert!(!after.get(), "waiting for the inner deferred");
    inner_r.callback("four").unwrap();
    assert!(after.get());
    assert_eq!(value(d), Some(4));
}

/// Twisted's rule: without a canceller, the one late firing of a cancelled
/// Deferred is ignored; a second one is `AlreadyCalled`.
#[test]
fn cancelling_without_a_canceller_ignores_one_late_firing_only() {
    let (d, r) = Deferred::<u32>::pending();
    d.cancel();
    assert_eq!(r.callback(3), Ok(()), "the late firing after a cancel is ignored, as in Twisted");
    assert_eq!(r.callback(4), Err(DeferredError::AlreadyCalled), "not every later one");
    assert_eq!(r.errback(Failure::msg("late")), Err(DeferredError::AlreadyCalled));
    let failure = d.result().unwrap().unwrap_err();
    assert!(failure.is::<CancelledError>());
}

/// With a canceller, the canceller is the way to fire on cancel: a later
/// firing is `AlreadyCalled` (Twisted suppresses only without one).
#[test]
fn a_canceller_may_fire_the_deferred_itself() {
    let (d, _r) = Deferred::<u32>::with_canceller(|r| r.callback(99).unwrap());
    d.cancel();
    assert_eq!(value(d), Some(99));
    let (d2, r2) = Deferred::<u32>::with_canceller(|_| {});
    d2.cancel();
    assert!(d2.result().unwrap().unwrap_err().is::<CancelledError>());
    assert_eq!(r2.callback(1), Err(DeferredError::AlreadyCalled));
}

#[test]
fn cancelling_a_fired_deferred_does_nothing() {
    let d = Deferred::succeed(1u32);
    d.cancel();
    assert_eq!(value(d), Some(1));
}

#[test]
fn cancelling_a_chain_waiting_on_another_cancels_that_one() {
    let (inner, _inner_r) = Deferred::<u32>::pending();
    let slot = Rc::new(RefCell::new(Some(inner)));
    let (d, r) = Deferred::<u32>::pending();
    let d = d.add_callback(move |_| slot.borrow_mut().take().unwrap());
    r.callback(0).unwrap();
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().is::<CancelledError>());
}

#[test]
fn a_panicking_callback_becomes_a_failure() {
    let d = Deferred::succeed(1u32).map(|_| -> u32 { panic!("callback panicked on purpose") });
    let failure = d.result().unwrap().unwrap_err();
    assert!(failure.is::<CallbackPanicked>());
    assert!(failure.to_string().contains("on purpose"));
}

#[test]
fn long_chains_do_not_overflow_the_stack() {
    // 100,000 callbacks on one deferred.
    let (mut d, r) = Deferred::<u64>::pending();
    for _ in 0..100_000 {
        d = d.map(|n| n + 1);
    }
    r.callback(0).unwrap();
    assert_eq!(value(d), Some(100_000));
    // 100,000 chains, each waiting on the one inside it; the innermost fires
    // last, so the resumptions cascade 100,000 levels out (the trampoline's job).
    let (innermost, innermost_r) = Deferred::<u64>::pending();
    let mut current = innermost;
    let mut resolvers = Vec::new();
    for _ in 0..100_000 {
        let (outer, outer_r) = Deferred::<u64>::pending();
        let inner = RefCell::new(Some(current));
        current = outer.add_callback(move |_| inner.borrow_mut().take().unwrap()).map(|n| n + 1);
        resolvers.push(outer_r);
    }
    for r in &resolvers {
        r.callback(0).unwrap(); // each chain now waits on the one inside it
    }
    assert!(!current.is_called() || current_is_waiting(&current));
    innermost_r.callback(0).unwrap();
    assert_eq!(value(current), Some(100_000));
}

fn current_is_waiting<T>(d: &Deferred<T>) -> bool {
    format!("{d:?}").contains("waiting: true")
}

#[test]
fn callbacks_added_to_a_fired_deferred_run_at_once_even_deep_in_a_cascade() {
    // Inside the 50th level of a resumption cascade, a fresh fired Deferred's
    // callbacks still run before add_callback returns.
    let checked = Rc::new(Cell::new(0));
    let (innermost, innermost_r) = Deferred::<u64>::pending();
    let mut current = innermost;
    let mut resolvers = Vec::new();
    for _ in 0..50 {
        let (outer, outer_r) = Deferred::<u64>::pending();
        let inner = RefCell::new(Some(current));
        let c = checked.clone();
        current = outer.add_callback(move |_| inner.borrow_mut().take().unwrap()).map(move |n| {
            let ran = Deferred::succeed(1u64).map(|x| x + 1).result();
            if ran.is_some() {
                c.set(c.get() + 1);
            }
            n + 1
        });
        resolvers.push(outer_r);
    }
    resolvers.iter().for_each(|r| r.callback(0).unwrap());
    innermost_r.callback(0).unwrap();
    assert_eq!(value(current), Some(50));
    assert_eq!(checked.get(), 50);
}

#[test]
fn first_success_may_cancel_the_rest_from_its_callback() {
    let (a, ra) = Deferred::<u32>::pending();
    let (b, _rb) = Deferred::<u32>::pending();
    let b_cell = Rc::new(RefCell::new(Some(b)));
    let winner = first_success(vec![a, Deferred::<u32>::pending().0]);
    let bc = b_cell.clone();
    let logs = capture_logs(move || {
        let done = winner.map(move |(i, v)| {
            // The usual pattern: cancel the losers.
            if let Some(b) = bc.borrow_mut().take() {
                b.cancel();
            }
            (i, v)
        });
        ra.callback(5).unwrap();
        assert_eq!(value(done), Some((0, 5)));
    });
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn maybe_deferred_wraps_values_failures_and_panics() {
    assert_eq!(value(maybe_deferred(|| Ok::<_, Failure>(3u8))), Some(3));
    assert!(maybe_deferred(|| Err::<u8, _>(Failure::msg("no"))).result().unwrap().is_err());
    let d = maybe_deferred(|| -> Result<u8, Failure> { panic!("maybe_deferred panicked on purpose") });
    assert!(d.result().unwrap().unwrap_err().is::<CallbackPanicked>());
    assert_eq!(value(maybe_deferred(|| Deferred::succeed(9u8))), Some(9));
}

#[test]
fn gathering_all_first_and_first_failure() {
    let (a, ra) = Deferred::<u32>::pending();
    let (b, rb) = Deferred::<u32>::pending();
    let all = all_settled(vec![a, b], true);
    rb.errback(Boom(2)).unwrap();
    ra.callback(1).unwrap();
    let results = all.result().unwrap().unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &1);
    assert!(results[1].as_ref().unwrap_err().is::<Boom>());

    let (a, ra) = Deferred::<u32>::pending();
    let (b, rb) = Deferred::<u32>::pending();
    let gathered = gather_results(vec![a, b], true);
    rb.errback(Boom(5)).unwrap();
    let failure = gathered.result().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    ra.callback(1).unwrap();

    let gathered = gather_results(vec![Deferred::succeed(1u32), Deferred::succeed(2)], true);
    assert_eq!(value(gathered), Some(vec![1, 2]));

    let (a, ra) = Deferred::<u32>::pending();
    let (b, rb) = Deferred::<u32>::pending();
    let first = first_success(vec![a, b]);
    ra.errback(Boom(0)).unwrap();
    assert!(!first.is_called(), "one failure does not settle first_success");
    rb.callback(8).unwrap();
    assert_eq!(value(first), Some((1, 8)));
    assert_eq!(value(gather_results(Vec::<Deferred<u32>>::new(), true)), Some(vec![]));
}

#[test]
fn an_unhandled_failure_is_logged_when_the_deferred_is_dropped() {
    let logs = capture_logs(|| {
        let (d, r) = Deferred::<u32>::pending();
        r.errback(Boom(3)).unwrap();
        drop(d);
        drop(r);
    });
    assert!(logs.contains("Unhandled error in Deferred") && logs.contains("boom 3"), "{logs}");
    let quiet = capture_logs(|| {
        let d = Deferred::<u32>::fail(Boom(4)).add_errback(|_| Ok(0));
        drop(d);
    });
    assert!(!quiet.contains("Unhandled"), "{quiet}");
}
