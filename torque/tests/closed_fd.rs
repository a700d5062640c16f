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
    let handler = Handler::with_lost(Handler::reading(|_| panic!("a closed fd was read")), move |_, why| {
        l.borrow_mut().push(matches!(why, LostReason::FdClosed));
    });
    r.add_reader(borrowed(fd), handler).unwrap();
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
    r.add_reader(
        borrowed(fd2),
        Handler::reading(move |r| {
            g.set(true);
            r.remove_reader(borrowed(fd2));
        }),
    )
    .unwrap();
    again.send(b"x");
    iterate_until(&r, || got.get());
}

cases! {
    [FdSets] plain {
        a_closed_registered_fd_is_dropped_not_spun_on,
    }
}

fn main() {
    support::main(cases(), &[support::PLAIN]);
}
