//! Win32 handles on the reactor (`add_event`, Twisted's `addEvent`): every
//! Windows backend, any number of handles. A thread's handle is the waitable
//! object here (signalled once the thread has exited, and for good). And
//! window messages: wfmo's wait includes the thread's message queue.

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

/// wfmo pumps the thread's window messages in its wait, and `WM_QUIT`
/// stops the reactor as it ends a message loop; iocp's wait does not
/// include them, so the message stays queued for the program's own loop.
fn wm_quit_stops_wfmo_and_waits_for_the_program_on_iocp(kind: BackendKind) {
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        MSG, PM_REMOVE, PeekMessageW, PostQuitMessage, WM_QUIT,
    };
    let r = reactor(kind);
    let fallback = Rc::new(Cell::new(false));
    let f = fallback.clone();
    // SAFETY: posts WM_QUIT to this thread's own queue.
    r.call_later(Duration::ZERO, |_| unsafe { PostQuitMessage(7) });
    let stop = r.call_later(Duration::from_secs(1), move |r| {
        f.set(true);
        r.stop().unwrap();
    });
    crate::support::run(&r).unwrap();
    // SAFETY: an all-zero MSG is valid for PeekMessageW to overwrite.
    let mut message: MSG = unsafe { std::mem::zeroed() };
    // SAFETY: `message` is valid for writes; a null window means this thread's queue.
    let queued =
        unsafe { PeekMessageW(&mut message, std::ptr::null_mut(), WM_QUIT, WM_QUIT, PM_REMOVE) } != 0;
    if kind == BackendKind::Wfmo {
        assert!(!fallback.get(), "WM_QUIT did not stop the wfmo reactor");
        assert!(!queued, "wfmo took WM_QUIT from the queue");
        assert!(stop.cancel().is_ok());
    } else {
        assert!(fallback.get(), "{kind} stopped without its own stop()");
        assert!(queued && message.wParam == 7, "WM_QUIT left queued for the program's loop");
    }
}

crate::cases! {
    [] plain {
        wm_quit_stops_wfmo_and_waits_for_the_program_on_iocp,
    }
    [] driven {
        a_signalled_handle_runs_its_callback_on_the_reactor_thread,
        a_handle_that_stays_signalled_is_reported_after_each_call_until_removed,
        a_hundred_handles_each_reach_their_own_callback,
        a_handle_removed_before_its_signal_is_never_reported,
    }
}
