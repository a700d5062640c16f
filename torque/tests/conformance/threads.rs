//! IReactorThreads: call_from_thread, the thread pool, results back on the loop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use torque::{BackendKind, Reactor};

use crate::support::{iterate_until, reactor, run, spin};

fn a_thread_call_wakes_a_sleeping_reactor(kind: BackendKind) {
    let r = reactor(kind);
    let handle = r.handle();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.call_from_thread(|r| r.stop().unwrap());
    });
    // No timers, no fds: only the waker can end this wait.
    run(&r).unwrap();
    worker.join().unwrap();
}

fn calls_from_one_thread_run_in_order(kind: BackendKind) {
    let r = reactor(kind);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let handle = r.handle();
    let sender = std::thread::spawn(move || {
        for i in 0..10_000u32 {
            // Each call carries only Send data; the reactor side records it.
            handle.call_from_thread(move |r| record(r, i));
        }
    });
    thread_local! { static ORDER: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) }; }
    fn record(_: &Reactor, i: u32) {
        ORDER.with(|o| o.borrow_mut().push(i));
    }
    sender.join().unwrap();
    iterate_until(&r, || ORDER.with(|o| o.borrow().len() == 10_000));
    ORDER.with(|o| seen.borrow_mut().extend(o.borrow().iter().copied()));
    assert!(seen.borrow().iter().copied().eq(0..10_000));
}

fn a_call_made_inside_a_thread_call_runs_on_a_later_pass(kind: BackendKind) {
    let r = reactor(kind);
    let handle = r.handle();
    let inner = handle.clone();
    thread_local! { static STEPS: Cell<u32> = const { Cell::new(0) }; }
    handle.call_from_thread(move |_| {
        STEPS.with(|s| s.set(1));
        inner.call_from_thread(|_| STEPS.with(|s| s.set(2)));
    });
    spin(&r, 1);
    assert_eq!(STEPS.with(Cell::get), 1, "the nested call waits for the next pass");
    spin(&r, 1);
    assert_eq!(STEPS.with(Cell::get), 2);
}

fn calls_after_the_reactor_is_gone_are_dropped(kind: BackendKind) {
    let r = reactor(kind);
    let handle = r.handle();
    assert!(!handle.is_closed());
    drop(r);
    assert!(handle.is_closed());
    let dropped = Arc::new(());
    let d = dropped.clone();
    handle.call_from_thread(move |_| drop(d));
    assert_eq!(Arc::strong_count(&dropped), 1, "the closure was dropped, not queued");
}

fn call_in_thread_runs_off_the_reactor_thread(kind: BackendKind) {
    let r = reactor(kind);
    let reactor_thread = std::thread::current().id();
    let handle = r.handle();
    thread_local! { static RAN_ELSEWHERE: Cell<Option<bool>> = const { Cell::new(None) }; }
    r.call_in_thread(move || {
        let elsewhere = std::thread::current().id() != reactor_thread;
        handle.call_from_thread(move |r| {
            RAN_ELSEWHERE.with(|c| c.set(Some(elsewhere)));
            r.crash();
        });
    });
    run(&r).unwrap();
    assert_eq!(RAN_ELSEWHERE.with(Cell::get), Some(true));
}

fn run_in_thread_delivers_results_and_panics_on_the_reactor_thread(kind: BackendKind) {
    let r = reactor(kind);
    let reactor_thread = std::thread::current().id();
    let results = Rc::new(RefCell::new(Vec::new()));
    let res = results.clone();
    r.run_in_thread(
        || (1..=10u64).product::<u64>(),
        move |_, result| {
            let here = std::thread::current().id() == reactor_thread;
            res.borrow_mut().push(format!("{result:?} on reactor thread: {here}"));
        },
    );
    let res = results.clone();
    r.run_in_thread(
        || -> u64 { panic!("worker panicked on purpose") },
        move |_, result| res.borrow_mut().push(result.unwrap_err().message),
    );
    iterate_until(&r, || results.borrow().len() == 2);
    // A panicking fire-and-forget job is logged on the pool thread (not captured
    // here); the pool survives it and runs the next job.
    r.call_in_thread(|| panic!("pool job panicked on purpose"));
    let res = results.clone();
    r.run_in_thread(|| "after", move |_, v| res.borrow_mut().push(v.unwrap().to_string()));
    iterate_until(&r, || results.borrow().len() == 3);
    let mut got = results.borrow().clone();
    got.sort();
    assert_eq!(got, ["Ok(3628800) on reactor thread: true", "after", "worker panicked on purpose"]);
}

fn the_pool_respects_its_suggested_size(kind: BackendKind) {
    let r = reactor(kind);
    r.suggest_thread_pool_size(1);
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Rc::new(Cell::new(0));
    for _ in 0..4 {
        let (a, m, d) = (active.clone(), most.clone(), done.clone());
        r.run_in_thread(
            move || {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                a.fetch_sub(1, Ordering::SeqCst);
            },
            move |_, _| d.set(d.get() + 1),
        );
    }
    iterate_until(&r, || done.get() == 4);
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

fn the_pool_stops_at_shutdown_and_restarts_lazily(kind: BackendKind) {
    let r = reactor(kind);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    r.call_in_thread(move || {
        std::thread::sleep(Duration::from_millis(10));
        f.fetch_add(1, Ordering::SeqCst);
    });
    r.call_when_running(|r| r.stop().unwrap());
    run(&r).unwrap();
    // Shutdown joined the workers, so the queued job has finished.
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    r.run_in_thread(|| 7, move |_, v| g.set(v.ok()));
    iterate_until(&r, || got.get().is_some());
    assert_eq!(got.get(), Some(7));
}

fn thread_calls_under_load_all_arrive(kind: BackendKind) {
    let r = reactor(kind);
    const THREADS: usize = 4;
    const CALLS: usize = 20_000;
    let barrier = Arc::new(Barrier::new(THREADS));
    thread_local! { static COUNT: Cell<usize> = const { Cell::new(0) }; }
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (handle, barrier) = (r.handle(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..CALLS {
                    handle.call_from_thread(|_| COUNT.with(|c| c.set(c.get() + 1)));
                }
            })
        })
        .collect();
    // Meanwhile the loop also serves a repeating timer.
    let ticks = Rc::new(Cell::new(0));
    fn tick(r: &Reactor, ticks: Rc<Cell<u32>>) {
        ticks.set(ticks.get() + 1);
        r.call_later(Duration::from_millis(1), move |r| tick(r, ticks));
    }
    tick(&r, ticks.clone());
    iterate_until(&r, || COUNT.with(Cell::get) == THREADS * CALLS);
    for w in workers {
        w.join().unwrap();
    }
    spin(&r, 2);
    assert_eq!(COUNT.with(Cell::get), THREADS * CALLS);
    assert!(ticks.get() >= 1);
}

/// Producers in tight loops against a reactor that has nothing else to wake it:
/// a lost wake-up (a waker left "pending" with an empty fd) hangs this test.
fn wakes_are_never_lost_under_contention(kind: BackendKind) {
    const PRODUCERS: usize = 4;
    const CALLS: usize = 50_000;
    thread_local! { static SEEN: Cell<usize> = const { Cell::new(0) }; }
    let r = reactor(kind);
    let barrier = Arc::new(Barrier::new(PRODUCERS));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (handle, barrier) = (r.handle(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..CALLS {
                    handle.call_from_thread(|r| {
                        let seen = SEEN.with(|s| {
                            s.set(s.get() + 1);
                            s.get()
                        });
                        if seen == PRODUCERS * CALLS {
                            r.stop().unwrap();
                        }
                    });
                    // Give the reactor a chance to drain between bursts, so wakes
                    // race with resets many times.
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // No timers and no fds: only the waker ends each wait.
    run(&r).unwrap();
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(SEEN.with(Cell::get), PRODUCERS * CALLS);
}

/// Calls from other threads, made while the reactor dispatches a pass (no
/// wake is written for those: it looks at its queue again before it waits)
/// and while it sleeps right after one (those must wake it), all run. A lost
/// call hangs here until the harness's timeout.
fn calls_made_during_and_after_a_dispatch_all_run(kind: BackendKind) {
    let r = reactor(kind);
    let ran = Arc::new(AtomicUsize::new(0));
    for round in 0..20 {
        let handle = r.handle();
        let ran_in = ran.clone();
        r.handle().call_from_thread(move |_| {
            // Made and finished while this pass runs its thread calls, after
            // it took the queue: it lands in the next pass's.
            let during = handle.clone();
            std::thread::spawn(move || during.call_from_thread(|_| {})).join().unwrap();
            // Made once the reactor has (most likely) gone to sleep.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                handle.call_from_thread(move |r| {
                    ran_in.fetch_add(1, Ordering::Relaxed);
                    r.crash();
                });
            });
        });
        // Nothing else would end the wait for an hour.
        let idle = r.call_later(Duration::from_secs(3600), |_| {});
        run(&r).unwrap();
        idle.cancel().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), round + 1);
    }
}

/// The pool as an object (Twisted's `getThreadPool`): its maximum, what it
/// is doing, and stopping it by hand; the reactor makes a fresh one after
/// shutdown. Jobs given to a stopped pool are dropped, never run.
fn the_thread_pool_is_an_object_with_size_stats_and_stop(kind: BackendKind) {
    use std::sync::mpsc;
    let r = reactor(kind);
    let pool = r.thread_pool();
    assert!(pool.same_pool(&r.thread_pool()));
    pool.set_max_threads(2);
    // Four jobs that each wait for a go: two run, two queue.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go = Arc::new(std::sync::Mutex::new(go_rx));
    let (done_tx, done_rx) = mpsc::channel();
    for i in 0..4 {
        let (go, done) = (go.clone(), done_tx.clone());
        pool.call_in_thread(move || {
            go.lock().unwrap().recv().unwrap();
            done.send(i).unwrap();
        });
    }
    // Two workers take a job each and wait; the other two jobs queue.
    let start = std::time::Instant::now();
    while pool.stats().queued != 2 || pool.stats().idle != 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", pool.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = pool.stats();
    assert_eq!(
        (stats.threads, stats.max_threads, stats.completed, stats.stopped),
        (2, 2, 0, false),
        "{stats}"
    );
    for _ in 0..4 {
        go_tx.send(()).unwrap();
    }
    let mut finished: Vec<i32> =
        (0..4).map(|_| done_rx.recv_timeout(Duration::from_secs(30)).unwrap()).collect();
    finished.sort();
    assert_eq!(finished, [0, 1, 2, 3]);
    pool.stop();
    let stats = pool.stats();
    assert!(stats.stopped && stats.threads == 0 && stats.queued == 0, "{stats}");
    assert_eq!(stats.completed, 4);
    // A stopped pool drops what it is given (the sender goes with the job).
    let (tx, rx) = mpsc::channel::<()>();
    pool.call_in_thread(move || tx.send(()).unwrap());
    assert!(matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected)));
    // After a run's shutdown the reactor works with a fresh pool.
    r.call_when_running(|r| r.stop().unwrap());
    run(&r).unwrap();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    r.run_in_thread(|| 7, move |_, v| g.set(v.ok()));
    iterate_until(&r, || got.get().is_some());
    assert_eq!(got.get(), Some(7));
    assert!(!pool.same_pool(&r.thread_pool()));
}

/// `ReactorHandle::is_reactor_thread` (Twisted's `isInIOThread`).
fn a_handle_knows_whether_it_is_on_the_reactor_thread(kind: BackendKind) {
    let r = reactor(kind);
    let handle = r.handle();
    assert!(handle.is_reactor_thread());
    let elsewhere = std::thread::spawn(move || handle.is_reactor_thread()).join().unwrap();
    assert!(!elsewhere);
    let on_pool = Rc::new(Cell::new(None));
    let (o, h) = (on_pool.clone(), r.handle());
    r.run_in_thread(
        move || h.is_reactor_thread(),
        move |r, v| o.set(Some((v.unwrap(), r.handle().is_reactor_thread()))),
    );
    iterate_until(&r, || on_pool.get().is_some());
    assert_eq!(on_pool.get(), Some((false, true)));
}

crate::cases! {
    [] driven {
        wakes_are_never_lost_under_contention,
        calls_made_during_and_after_a_dispatch_all_run,
        a_thread_call_wakes_a_sleeping_reactor,
        calls_from_one_thread_run_in_order,
        a_call_made_inside_a_thread_call_runs_on_a_later_pass,
        calls_after_the_reactor_is_gone_are_dropped,
        call_in_thread_runs_off_the_reactor_thread,
        run_in_thread_delivers_results_and_panics_on_the_reactor_thread,
        the_pool_respects_its_suggested_size,
        the_pool_stops_at_shutdown_and_restarts_lazily,
        the_thread_pool_is_an_object_with_size_stats_and_stop,
        a_handle_knows_whether_it_is_on_the_reactor_thread,
        thread_calls_under_load_all_arrive,
    }
}
