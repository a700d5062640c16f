//! Win32 handles on the reactor (`add_event`, Twisted's `addEvent`): every
//! Windows backend, any number of handles. A thread's handle is the waitable
//! object here (signalled once the thread has exited, and for good), so the
//! tests need no `unsafe`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use torque::BackendKind;

use crate::support::{iterate_until, reactor, spin};

fn finished_thread() -> std::thread::JoinHandle<()> {
    std::thread::spawn(|| {})
}

fn a_signalled_handle_runs_its_callback_on_the_reactor_thread(kind: BackendKind) {
    let r = reactor(kind);
    let worker = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(20)));
    let here = std::thread::current().id();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    r.add_event(&worker, move |r, id| {
        c.borrow_mut().push(std::thread::current().id());
        assert!(r.remove_event(id), "registered while its callback runs");
    })
    .unwrap();
    iterate_until(&r, || !calls.borrow().is_empty());
    spin(&r, 5);
    assert_eq!(*calls.borrow(), vec![here], "once, on the reactor's thread");
}

fn a_handle_that_stays_signalled_is_reported_after_each_call_until_removed(kind: BackendKind) {
    let r = reactor(kind);
    let worker = finished_thread();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    r.add_event(&worker, move |r, id| {
        c.set(c.get() + 1);
        if c.get() == 3 {
            r.remove_event(id);
        }
    })
    .unwrap();
    iterate_until(&r, || calls.get() == 3);
    spin(&r, 10);
    assert_eq!(calls.get(), 3, "nothing after the removal");
}

fn a_hundred_handles_each_reach_their_own_callback(kind: BackendKind) {
    // More than one wait's 64 handles: the helper threads share them.
    let r = reactor(kind);
    let workers: Vec<_> = (0..100).map(|_| finished_thread()).collect();
    let seen = Rc::new(RefCell::new(vec![0u32; workers.len()]));
    for (i, worker) in workers.iter().enumerate() {
        let s = seen.clone();
        r.add_event(worker, move |r, id| {
            s.borrow_mut()[i] += 1;
            r.remove_event(id);
        })
        .unwrap();
    }
    iterate_until(&r, || seen.borrow().iter().all(|&n| n > 0));
    spin(&r, 5);
    assert!(seen.borrow().iter().all(|&n| n == 1), "each exactly once: {:?}", seen.borrow());
}

fn a_handle_removed_before_its_signal_is_never_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let _ = wait.recv();
    });
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let id = r.add_event(&worker, move |_, _| c.set(c.get() + 1)).unwrap();
    spin(&r, 2);
    assert!(r.remove_event(id));
    assert!(!r.remove_event(id), "removed once");
    go.send(()).unwrap();
    // A second handle proves the helper thread still runs and delivers.
    let later = finished_thread();
    let other = Rc::new(Cell::new(false));
    let o = other.clone();
    r.add_event(&later, move |r, id| {
        o.set(true);
        r.remove_event(id);
    })
    .unwrap();
    iterate_until(&r, || other.get());
    spin(&r, 5);
    assert_eq!(calls.get(), 0);
    drop(worker);
}

crate::cases! {
    [] driven {
        a_signalled_handle_runs_its_callback_on_the_reactor_thread,
        a_handle_that_stays_signalled_is_reported_after_each_call_until_removed,
        a_hundred_handles_each_reach_their_own_callback,
        a_handle_removed_before_its_signal_is_never_reported,
    }
}
