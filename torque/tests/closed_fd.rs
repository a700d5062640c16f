//! An fd closed while still registered. Closing a registered fd frees its number for
//! any thread's next open, so these tests live in their own binary and run one at a
//! time, with no other fds being opened meanwhile.

#[path = "conformance/support.rs"]
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use torque::{BackendKind, LostReason};

use support::{Handler, Pipe, borrowed, iterate_until, reactor};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn a_closed_registered_fd_is_dropped_not_spun_on(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    let pipe = Pipe::new();
    let Pipe { r: read_end, w: _w } = pipe;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&read_end);
    let lost = Rc::new(RefCell::new(Vec::new()));
    let l = lost.clone();
    let handler = Handler::with_lost(
        Handler::reading(borrowed(fd), |_| panic!("a closed fd was read")),
        move |_, why| {
            l.borrow_mut().push(matches!(why, LostReason::FdClosed));
        },
    );
    r.add_reader(&handler).unwrap();
    drop(read_end);
    if r.backend().reports_closed_fds {
        iterate_until(&r, || !lost.borrow().is_empty());
        assert_eq!(*lost.borrow(), [true]);
        assert!(r.readers().is_empty());
    } else {
        // epoll forgets a closed fd silently: no event, no busy loop, and the stale
        // registration is cleared by remove_reader without error.
        let start = std::time::Instant::now();
        r.iterate(Duration::from_millis(30)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(25), "the wait slept instead of spinning");
        assert!(lost.borrow().is_empty());
        r.remove_reader(borrowed(fd));
        assert!(r.readers().is_empty());
    }
    // The loop keeps working afterwards.
    let again = Pipe::new();
    let got = Rc::new(std::cell::Cell::new(false));
    let g = got.clone();
    let fd2 = again.rfd();
    r.add_reader(&Handler::reading(borrowed(fd2), move |r| {
        g.set(true);
        r.remove_reader(borrowed(fd2));
    }))
    .unwrap();
    again.send(b"x");
    iterate_until(&r, || got.get());
}

/// A handler removes its fd and closes it inside a callback (as a transport
/// does on close) while a duplicate of the fd lives on elsewhere (passed to a
/// child, sent to another process). The removal must reach the backend before
/// the close: epoll would otherwise keep the duplicate's open file registered
/// under the closed number, where nothing can remove it, and return from every
/// wait at once for its stale, level-triggered readiness.
fn an_fd_removed_then_closed_in_a_callback_leaves_nothing_behind(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    let pipe = Pipe::new();
    let Pipe { r: read_end, w: write_end } = pipe;
    let duplicate = read_end.try_clone().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&read_end);
    let owned = Rc::new(RefCell::new(Some(read_end)));
    let o = owned.clone();
    r.add_reader(&Handler::reading(borrowed(fd), move |r| {
        r.remove_reader(borrowed(fd));
        drop(o.borrow_mut().take()); // closed at once, as close_now does
    }))
    .unwrap();
    torque::fd::write(&write_end, b"x").unwrap();
    iterate_until(&r, || owned.borrow().is_none());
    assert!(r.readers().is_empty());
    // The duplicate stays readable; nothing watches it, so waits must wait.
    let start = std::time::Instant::now();
    for _ in 0..5 {
        r.iterate(Duration::from_millis(20)).unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_millis(80),
        "the loop returned at once {:?}: a stale registration is still reported",
        start.elapsed()
    );
    drop(duplicate);
}

cases! {
    [FdSets] plain {
        a_closed_registered_fd_is_dropped_not_spun_on,
        an_fd_removed_then_closed_in_a_callback_leaves_nothing_behind,
    }
}

fn main() {
    support::main(cases(), &[support::PLAIN]);
}
