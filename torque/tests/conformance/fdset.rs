//! IReactorFDSet: readers and writers, reentrancy, stale events, backend limits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use torque::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use torque::{BackendKind, FdHandler, LostReason, Reactor};

use crate::support::{Handler, Log, Pipe, borrowed, drain, iterate_until, reactor, run, spin, step};

fn a_readable_pipe_reaches_its_reader(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, fd) = (got.clone(), pipe.rfd());
    r.add_reader(&Handler::reading(borrowed(fd), move |_| g.borrow_mut().extend(drain(fd)))).unwrap();
    assert_eq!(r.readers(), [fd]);
    assert!(r.writers().is_empty());
    spin(&r, 2);
    assert!(got.borrow().is_empty(), "no data, no call");
    pipe.send(b"hello");
    iterate_until(&r, || !got.borrow().is_empty());
    assert_eq!(&*got.borrow(), b"hello");
    r.remove_reader(borrowed(fd));
    assert!(r.readers().is_empty());
}

fn a_writer_is_called_until_removed(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let calls = Rc::new(Cell::new(0));
    let (c, fd) = (calls.clone(), pipe.wfd());
    r.add_writer(&Handler::writing(borrowed(fd), move |r| {
        c.set(c.get() + 1);
        if c.get() == 3 {
            r.remove_writer(borrowed(fd));
        }
    }))
    .unwrap();
    assert_eq!(r.writers(), [fd]);
    spin(&r, 10);
    assert_eq!(calls.get(), 3);
    assert!(r.writers().is_empty());
}

fn level_triggered_unread_data_is_reported_again(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    r.add_reader(&Handler::reading(pipe.reader(), move |_| c.set(c.get() + 1))).unwrap();
    pipe.send(b"x");
    spin(&r, 3);
    assert_eq!(calls.get(), 3);
}

fn one_handler_may_read_and_write_the_same_fd(kind: BackendKind) {
    let r = reactor(kind);
    let (a, b) = crate::support::stream_pair();
    a.set_nonblocking(true).unwrap();
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let fd = a.as_raw_fd();
    let handler = Rc::new(RefCell::new(Handler {
        on_read: Some(Box::new(move |r| {
            l1.push("read");
            drain(fd);
            r.remove_reader(borrowed(fd));
        })),
        on_write: Some(Box::new(move |r| {
            l2.push("write");
            r.remove_writer(borrowed(fd));
        })),
        ..Handler::new(&a)
    }));
    r.add_reader(&handler).unwrap();
    r.add_writer(&handler).unwrap();
    std::io::Write::write_all(&mut &b, b"ping").unwrap();
    iterate_until(&r, || log.len() == 2);
    let mut seen = log.take();
    seen.sort();
    assert_eq!(seen, ["read", "write"]);
    assert!(r.readers().is_empty() && r.writers().is_empty());
}

fn a_handler_removing_itself_gets_no_more_events(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let calls = Rc::new(Cell::new(0));
    let (c, fd) = (calls.clone(), pipe.rfd());
    r.add_reader(&Handler::reading(borrowed(fd), move |r| {
        c.set(c.get() + 1);
        r.remove_reader(borrowed(fd));
    }))
    .unwrap();
    pipe.send(b"data stays unread");
    spin(&r, 5);
    assert_eq!(calls.get(), 1);
}

/// Two fds ready in one pass; whichever runs first removes the other, which must
/// then get nothing, even though its event was already fetched.
fn a_handler_removed_earlier_in_the_pass_gets_nothing(kind: BackendKind) {
    let r = reactor(kind);
    let (p1, p2) = (Pipe::new(), Pipe::new());
    let log = Log::default();
    let fds = [p1.rfd(), p2.rfd()];
    for (i, fd) in fds.into_iter().enumerate() {
        let (l, other) = (log.clone(), fds[1 - i]);
        r.add_reader(&Handler::reading(borrowed(fd), move |r| {
            l.push(format!("fd{i}"));
            r.remove_reader(borrowed(other));
            r.remove_reader(borrowed(fd));
        }))
        .unwrap();
    }
    p1.send(b"a");
    p2.send(b"b");
    // Make sure both are ready before the single pass that matters.
    spin(&r, 3);
    assert_eq!(log.len(), 1, "exactly one handler ran: {:?}", log.snapshot());
}

/// The first handler to run closes the other pipe's read end and puts a new pipe's
/// read end at the same fd number, registering a new handler for it. The old
/// handler's already-fetched event must not reach the new handler, nor the old one.
#[cfg(unix)]
fn an_fd_closed_and_reused_in_one_pass_never_gets_the_old_event(kind: BackendKind) {
    let r = reactor(kind);
    let p1 = Rc::new(RefCell::new(Some(Pipe::new())));
    let p2 = Rc::new(RefCell::new(Some(Pipe::new())));
    let log = Log::default();
    let swapped = Rc::new(Cell::new(false));
    let replacement: Rc<RefCell<Option<Pipe>>> = Rc::default();
    let pipes = [p1.clone(), p2.clone()];
    for i in 0..2 {
        let fd = pipes[i].borrow().as_ref().unwrap().rfd();
        let other = pipes[1 - i].clone();
        let (l, sw, rep) = (log.clone(), swapped.clone(), replacement.clone());
        r.add_reader(&Handler::reading(borrowed(fd), move |r| {
            if sw.get() {
                l.push(format!("old handler {i} after swap"));
                return;
            }
            sw.set(true);
            l.push(format!("handler {i}"));
            drain(fd);
            r.remove_reader(borrowed(fd));
            // Put a new pipe's read end at the other pipe's fd number without
            // removing the old registration first (dup2 closes the old file and
            // reuses the number atomically, so no other thread can grab it).
            let old = other.borrow_mut().take().unwrap();
            let number = old.rfd();
            let Pipe { r: old_read, w: _old_write } = old;
            let fresh = Pipe::new();
            // SAFETY (test): dup2 onto a number we own; the old OwnedFd is forgotten
            // because that number now belongs to `fresh_read`.
            let dup = unsafe { libc::dup2(fresh.rfd(), number) };
            assert_eq!(dup, number);
            std::mem::forget(old_read);
            let fresh_read = unsafe { OwnedFd::from_raw_fd(number) };
            let fresh = Pipe { r: fresh_read, w: fresh.w };
            let l2 = l.clone();
            r.add_reader(&Handler::reading(borrowed(number), move |r| {
                l2.push(format!("new handler got {:?}", String::from_utf8_lossy(&drain(number))));
                r.remove_reader(borrowed(number));
            }))
            .unwrap();
            *rep.borrow_mut() = Some(fresh);
        }))
        .unwrap();
    }
    p1.borrow().as_ref().unwrap().send(b"1");
    p2.borrow().as_ref().unwrap().send(b"2");
    spin(&r, 1);
    let first = log.take();
    assert_eq!(first.len(), 1, "only the first handler ran in that pass: {first:?}");
    spin(&r, 2);
    assert!(log.take().is_empty(), "the new pipe is empty, so nothing more runs");
    replacement.borrow().as_ref().unwrap().send(b"fresh");
    iterate_until(&r, || log.len() == 1);
    assert_eq!(log.take(), ["new handler got \"fresh\""]);
}

/// The registration holds the handler and the handler owns its fd, so a
/// registered fd cannot be closed and its number reused under it (on poll and
/// select the newcomer's readiness would reach the old handler; on epoll it
/// would not): the fd stays open after the program drops its own handle, and
/// closes when the handler is removed.
#[cfg(unix)]
fn a_registered_handler_keeps_its_fd_open_until_removed(kind: BackendKind) {
    struct Owner {
        pipe: OwnedFd,
        got: Rc<RefCell<Vec<u8>>>,
    }
    impl AsFd for Owner {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.pipe.as_fd()
        }
    }
    impl FdHandler for Owner {
        fn readable(&mut self, _: &Reactor) {
            self.got.borrow_mut().extend(drain(self.pipe.as_raw_fd()));
        }
    }
    let identity = |fd: RawFd| {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY (test): fstat fills `stat` or fails without touching it.
        (unsafe { libc::fstat(fd, stat.as_mut_ptr()) } == 0).then(|| {
            // SAFETY (test): fstat succeeded.
            let stat = unsafe { stat.assume_init() };
            (stat.st_dev, stat.st_ino)
        })
    };
    let r = reactor(kind);
    let Pipe { r: read_end, w: write_end } = Pipe::new();
    let fd = read_end.as_raw_fd();
    let file = identity(fd).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    r.add_reader(&Rc::new(RefCell::new(Owner { pipe: read_end, got: got.clone() }))).unwrap();
    // Our handle is gone; the registration's keeps the pipe open.
    spin(&r, 2);
    assert_eq!(identity(fd), Some(file), "the registered fd is still the pipe");
    torque::fd::write(&write_end, b"still here").unwrap();
    iterate_until(&r, || !got.borrow().is_empty());
    assert_eq!(&*got.borrow(), b"still here");
    r.remove_reader(borrowed(fd));
    assert_ne!(identity(fd), Some(file), "removing the handler dropped it, closing the pipe");
    assert_eq!(r.registered_fds(), 0);
}

/// A handler stops reading and starts writing from inside its own callback
/// (it is busy, so the reactor knows its fd from the call); one that is busy
/// elsewhere and not registered cannot be asked for its fd and is refused
/// clearly.
fn a_busy_handler_adds_its_other_direction_and_an_unregistered_one_is_refused(kind: BackendKind) {
    let r = reactor(kind);
    let (a, b) = crate::support::stream_pair();
    a.set_nonblocking(true).unwrap();
    let log = Log::default();
    let me: Rc<RefCell<Option<Rc<RefCell<Handler>>>>> = Rc::default();
    let (l1, l2, m, fd) = (log.clone(), log.clone(), me.clone(), a.as_raw_fd());
    let handler = Rc::new(RefCell::new(Handler {
        on_read: Some(Box::new(move |r| {
            l1.push("read");
            drain(fd);
            r.remove_reader(borrowed(fd));
            let me = m.borrow().clone().unwrap();
            r.add_writer(&me).expect("a registered handler may add itself from its callback");
        })),
        on_write: Some(Box::new(move |r| {
            l2.push("write");
            r.remove_writer(borrowed(fd));
        })),
        ..Handler::new(&a)
    }));
    *me.borrow_mut() = Some(handler.clone());
    r.add_reader(&handler).unwrap();
    std::io::Write::write_all(&mut &b, b"ping").unwrap();
    iterate_until(&r, || log.len() == 2);
    assert_eq!(log.take(), ["read", "write"]);
    assert_eq!(r.registered_fds(), 0);
    me.borrow_mut().take();
    let pipe = Pipe::new();
    let unregistered = Handler::reading(pipe.reader(), |_| {});
    let busy = unregistered.borrow_mut();
    assert!(matches!(r.add_reader(&unregistered), Err(torque::ReactorError::HandlerBusy)));
    drop(busy);
    assert_eq!(r.registered_fds(), 0);
}

fn adding_another_handler_for_an_fd_replaces_the_first(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let log = Log::default();
    let (l1, l2, fd) = (log.clone(), log.clone(), pipe.rfd());
    r.add_reader(&Handler::reading(borrowed(fd), move |_| l1.push("first"))).unwrap();
    r.add_reader(&Handler::reading(borrowed(fd), move |r| {
        l2.push("second");
        r.remove_reader(borrowed(fd));
    }))
    .unwrap();
    pipe.send(b"x");
    iterate_until(&r, || log.len() == 1);
    spin(&r, 2);
    assert_eq!(log.take(), ["second"]);
}

fn remove_all_returns_every_handler(kind: BackendKind) {
    let r = reactor(kind);
    let (p1, p2) = (Pipe::new(), Pipe::new());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    r.add_reader(&Handler::reading(p1.reader(), |_| {})).unwrap();
    r.add_writer(&Handler::writing(p2.writer(), move |_| c.set(c.get() + 1))).unwrap();
    assert_eq!(r.registered_fds(), 2);
    assert_eq!(r.remove_all().len(), 2);
    assert!(r.readers().is_empty() && r.writers().is_empty());
    assert_eq!(r.registered_fds(), 0);
    spin(&r, 2);
    assert_eq!(calls.get(), 0, "a removed (always writable) writer is never called");
}

fn a_peer_hangup_reads_as_end_of_file(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let Pipe { r: read_end, w } = pipe;
    let eof = Rc::new(Cell::new(false));
    let (e, fd) = (eof.clone(), read_end.as_raw_fd());
    r.add_reader(&Handler::reading(borrowed(fd), move |r| {
        let mut buf = [0u8; 16];
        if torque::fd::read(borrowed(fd), &mut buf).unwrap() == 0 {
            e.set(true);
            r.remove_reader(borrowed(fd));
        }
    }))
    .unwrap();
    drop(w);
    iterate_until(&r, || eof.get());
}

fn a_panicking_handler_is_dropped_with_connection_lost(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let lost = Rc::new(RefCell::new(None));
    let l = lost.clone();
    let handler = Handler::with_lost(
        Handler::reading(pipe.reader(), |_| panic!("handler panicked on purpose")),
        move |_, why| {
            *l.borrow_mut() = Some(why.to_string());
        },
    );
    r.add_reader(&handler).unwrap();
    pipe.send(b"x");
    let logs = crate::support::capture_logs(|| iterate_until(&r, || lost.borrow().is_some()));
    assert!(lost.borrow().as_ref().unwrap().contains("handler panicked on purpose"));
    assert!(logs.contains("an fd handler panicked"), "{logs}");
    assert!(r.readers().is_empty());
    spin(&r, 2);
}

fn shutdown_tells_registered_handlers_they_are_lost(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let why = Rc::new(RefCell::new(None));
    let w = why.clone();
    let handler = Handler::with_lost(Handler::reading(pipe.reader(), |_| {}), move |r, reason| {
        *w.borrow_mut() = Some((matches!(reason, LostReason::Shutdown), r.is_running()));
    });
    r.add_reader(&handler).unwrap();
    r.call_when_running(|r| r.stop().unwrap());
    run(&r).unwrap();
    assert_eq!(*why.borrow(), Some((true, false)));
    assert!(r.readers().is_empty());
}

/// Changes made inside a callback reach the backend as one net change at the
/// pass's end: a writer added and removed again never fires, a reader replaced
/// twice serves only the last handler, and nothing is left registered.
fn changes_within_a_pass_apply_as_their_net_effect(kind: BackendKind) {
    let r = reactor(kind);
    let (trigger, watched) = (Pipe::new(), Pipe::new());
    let log = Log::default();
    let (l, t, w, wr) = (log.clone(), trigger.rfd(), watched.wfd(), watched.rfd());
    r.add_reader(&Handler::reading(trigger.reader(), move |r| {
        drain(t);
        // A writer that comes and goes within the pass: net nothing.
        let l2 = l.clone();
        r.add_writer(&Handler::writing(borrowed(w), move |_| l2.push("writer"))).unwrap();
        r.remove_writer(borrowed(w));
        // A reader replaced twice: only the last is registered.
        for name in ["first", "second", "third"] {
            let l3 = l.clone();
            r.add_reader(&Handler::reading(borrowed(wr), move |_| l3.push(name))).unwrap();
        }
        r.remove_reader(borrowed(t));
    }))
    .unwrap();
    trigger.send(b"go");
    iterate_until(&r, || r.readers() == [wr]);
    spin(&r, 3);
    assert!(log.snapshot().is_empty(), "nothing fired: {:?}", log.snapshot());
    assert!(r.writers().is_empty());
    watched.send(b"x");
    iterate_until(&r, || !log.snapshot().is_empty());
    assert_eq!(log.take()[0], "third");
    r.remove_reader(watched.reader());
    assert_eq!(r.registered_fds(), 0);
}

/// A registration the backend refuses (epoll and kqueue refuse to watch
/// themselves) is the caller's error outside a pass, and inside a callback —
/// where changes wait for the pass's end — reaches the handler's
/// `connection_lost` as the same error, at the end of the pass, never inside
/// the `add_reader` call.
fn a_refused_registration_is_an_error_outside_a_pass_and_lost_inside_one(kind: BackendKind) {
    let r = reactor(kind);
    let own = r.watch_fd().unwrap();
    let outside = r.add_reader(&Handler::reading(borrowed(own), |_| {}));
    assert!(matches!(outside, Err(torque::ReactorError::Register { fd, .. }) if fd == own), "{outside:?}");
    assert!(r.readers().is_empty(), "a refused fd is not left registered");
    let trigger = Pipe::new();
    let log = Log::default();
    let (l, t) = (log.clone(), trigger.rfd());
    r.add_reader(&Handler::reading(trigger.reader(), move |r| {
        drain(t);
        r.remove_reader(borrowed(t));
        let (read, lost) = (l.clone(), l.clone());
        let handler = Handler::with_lost(
            Handler::reading(borrowed(own), move |_| read.push("readable")),
            move |_, why| lost.push(format!("lost: {}", matches!(why, LostReason::Error(_)))),
        );
        assert!(r.add_reader(&handler).is_ok(), "inside a pass the change waits");
        l.push("added");
    }))
    .unwrap();
    trigger.send(b"go");
    iterate_until(&r, || log.len() >= 2);
    assert_eq!(log.take(), ["added", "lost: true"]);
    spin(&r, 2);
    assert!(r.readers().is_empty());
}

/// Files poll(2) calls always ready (regular files, directories) — which epoll
/// refuses to watch — are ready both ways on every pass on every backend, and
/// a pass with one registered does not wait. Added inside a pass too.
#[cfg(unix)]
fn a_regular_file_is_always_ready_on_every_backend(kind: BackendKind) {
    let r = reactor(kind);
    let file = tempfile::tempfile().unwrap();
    let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let handler = Rc::new(RefCell::new(Handler {
        on_read: Some(Box::new(move |_| l1.push("read"))),
        on_write: Some(Box::new(move |_| l2.push("write"))),
        ..Handler::new(&file)
    }));
    r.add_reader(&handler).expect("a regular file is accepted");
    r.add_writer(&handler).unwrap();
    assert_eq!(r.readers(), [file.as_raw_fd()]);
    assert_eq!(r.timeout(), Some(Duration::ZERO), "the next pass must not wait");
    // A long wait returns at once: the file is ready.
    step(&r, Duration::from_secs(60)).unwrap();
    assert_eq!(log.take(), ["read", "write"]);
    step(&r, Duration::from_secs(60)).unwrap();
    assert_eq!(log.take(), ["read", "write"], "ready again on the next pass (level-triggered)");
    r.remove_writer(&file);
    step(&r, Duration::from_secs(60)).unwrap();
    assert_eq!(log.take(), ["read"]);
    r.remove_reader(&file);
    assert_eq!(r.registered_fds(), 0);
    assert_ne!(r.timeout(), Some(Duration::ZERO), "nothing keeps the loop awake");
    // Added from inside a callback, a directory is ready from the same pass's end on.
    let trigger = Pipe::new();
    let (l, t, d) = (log.clone(), trigger.rfd(), dir.as_raw_fd());
    r.add_reader(&Handler::reading(trigger.reader(), move |r| {
        drain(t);
        r.remove_reader(borrowed(t));
        let l = l.clone();
        r.add_reader(&Handler::reading(borrowed(d), move |r| {
            l.push("dir");
            r.remove_reader(borrowed(d));
        }))
        .unwrap();
    }))
    .unwrap();
    trigger.send(b"go");
    iterate_until(&r, || !log.snapshot().is_empty());
    assert_eq!(log.take(), ["dir"]);
    assert_eq!(r.registered_fds(), 0);
}

/// select's fd_set holds fds below FD_SETSIZE; it must refuse larger ones with a
/// clear error. The other backends take them.
#[cfg(unix)]
fn fds_beyond_the_backends_limit_are_refused_clearly(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    crate::support::raise_fd_limit(2048);
    // SAFETY (test): F_DUPFD returns a new fd >= 1100 or -1.
    let high = unsafe { libc::fcntl(pipe.rfd(), libc::F_DUPFD_CLOEXEC, 1100) };
    assert!(high >= 1100, "cannot dup above 1100: {}", std::io::Error::last_os_error());
    let high_fd = unsafe { OwnedFd::from_raw_fd(high) };
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    let result = r.add_reader(&Handler::reading(borrowed(high), move |r| {
        g.set(true);
        r.remove_reader(borrowed(high));
    }));
    match r.backend().fd_limit {
        Some(limit) => {
            assert!(high as usize >= limit);
            let err = result.expect_err("select must refuse the fd");
            let text = err.to_string();
            assert!(text.contains("FD_SETSIZE") && text.contains(&high.to_string()), "{text}");
            assert!(r.readers().is_empty(), "a refused fd is not left registered");
        }
        None => {
            result.unwrap();
            pipe.send(b"x");
            iterate_until(&r, || got.get());
        }
    }
    drop(high_fd);
}

/// Another loop can watch `watch_fd()` to learn the reactor has work (epoll).
/// Another loop can watch `watch_fd()` to learn the reactor has work (epoll,
/// kqueue; backends without one answer "unsupported", checked by the harness).
#[cfg(unix)]
fn the_watch_fd_signals_pending_work(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let ready = |fd: RawFd| {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY (test): one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 1000) == 1 }
    };
    r.add_reader(&Handler::reading(pipe.reader(), |_| {})).unwrap();
    let fd = r.watch_fd().unwrap();
    assert!(!ready_now(fd), "nothing is pending yet");
    pipe.send(b"x");
    assert!(ready(fd), "the watch fd is readable when an fd is ready");
}

#[cfg(unix)]
fn ready_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY (test): one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

fn a_handler_may_iterate_the_reactor_reentrantly(kind: BackendKind) {
    let r = reactor(kind);
    let (p1, p2) = (Pipe::new(), Pipe::new());
    let log = Log::default();
    let (l, fd1, p2_write) = (log.clone(), p1.rfd(), p2.wfd());
    r.add_reader(&Handler::reading(borrowed(fd1), move |r| {
        l.push("outer");
        // fd1 is still readable: the nested pass must skip this busy handler and
        // serve fd2, which becomes readable only now.
        torque::fd::write(borrowed(p2_write), b"2").unwrap();
        r.iterate(Duration::from_millis(10)).unwrap();
        drain(fd1);
        r.remove_reader(borrowed(fd1));
    }))
    .unwrap();
    let (l, fd2) = (log.clone(), p2.rfd());
    r.add_reader(&Handler::reading(borrowed(fd2), move |r| {
        drain(fd2);
        l.push("inner");
        r.remove_reader(borrowed(fd2));
    }))
    .unwrap();
    p1.send(b"1");
    iterate_until(&r, || log.len() == 2);
    assert_eq!(log.take(), ["outer", "inner"]);
}

/// Shutdown reached from a nested pass while a handler is still running: that
/// handler is told it was lost once it has returned, not skipped.
fn a_busy_handler_still_hears_of_the_shutdown(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let lost = Rc::new(Cell::new(false));
    let (l, fd) = (lost.clone(), pipe.rfd());
    let handler = Handler::with_lost(
        Handler::reading(borrowed(fd), move |r| {
            drain(fd);
            r.stop().unwrap();
            r.iterate(Duration::ZERO).unwrap();
        }),
        move |_, why| l.set(matches!(why, LostReason::Shutdown)),
    );
    r.add_reader(&handler).unwrap();
    pipe.send(b"x");
    run(&r).unwrap();
    assert!(lost.get());
}

crate::cases! {
    [FdSets] driven {
        a_readable_pipe_reaches_its_reader,
        a_writer_is_called_until_removed,
        level_triggered_unread_data_is_reported_again,
        one_handler_may_read_and_write_the_same_fd,
        a_handler_removing_itself_gets_no_more_events,
        a_handler_removed_earlier_in_the_pass_gets_nothing,
        #[cfg(unix)] an_fd_closed_and_reused_in_one_pass_never_gets_the_old_event,
        #[cfg(unix)] a_registered_handler_keeps_its_fd_open_until_removed,
        a_busy_handler_adds_its_other_direction_and_an_unregistered_one_is_refused,
        adding_another_handler_for_an_fd_replaces_the_first,
        remove_all_returns_every_handler,
        a_peer_hangup_reads_as_end_of_file,
        a_panicking_handler_is_dropped_with_connection_lost,
        shutdown_tells_registered_handlers_they_are_lost,
        changes_within_a_pass_apply_as_their_net_effect,
        #[cfg(unix)] a_regular_file_is_always_ready_on_every_backend,
        #[cfg(unix)] fds_beyond_the_backends_limit_are_refused_clearly,
        a_handler_may_iterate_the_reactor_reentrantly,
        a_busy_handler_still_hears_of_the_shutdown,
    }
    [FdSets, WatchFd] driven {
        #[cfg(unix)] the_watch_fd_signals_pending_work,
        a_refused_registration_is_an_error_outside_a_pass_and_lost_inside_one,
    }
}
