//! `interleave(waker)`: the reactor driven from a foreign loop (here a channel
//! of closures on the test thread), on every backend. Everything must run on
//! the foreign loop's thread; changes made between batches must reach the
//! helper's wait; stop and crash must end the interleaving.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use torque::fd::{AsFd, BorrowedFd};

use torque::net::{ListenOptions, factory_fn};
use torque::{BackendKind, FdHandler, LostReason, Phase, Reactor, SystemEvent};

use crate::netkit::{Echo, Queue, Recorder};
use crate::support::{Pipe, reactor};

type Call = Box<dyn FnOnce() + Send>;

/// A foreign loop: the reactor's batches arrive as closures on a channel.
struct Foreign {
    calls: mpsc::Receiver<Call>,
}

impl Foreign {
    fn start(r: &Reactor) -> Foreign {
        let (tx, calls) = mpsc::channel::<Call>();
        r.interleave(move |call| {
            let _ = tx.send(call);
        })
        .expect("interleave");
        Foreign { calls }
    }

    /// Runs batches until `done` holds (bounded: 30 s).
    fn run_until(&self, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(30), "condition not reached within 30 s");
            if let Ok(call) = self.calls.recv_timeout(Duration::from_millis(50)) {
                call();
            }
        }
    }
}

fn startup_timers_and_shutdown_run_on_the_foreign_thread(kind: BackendKind) {
    let r = reactor(kind);
    let me = std::thread::current().id();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let l = log.clone();
    r.add_system_event_trigger(Phase::After, SystemEvent::Startup, move |_| {
        l.borrow_mut().push("started".into());
    });
    let l = log.clone();
    r.call_later(Duration::from_millis(20), move |r| {
        assert_eq!(std::thread::current().id(), me);
        l.borrow_mut().push("timer".into());
        r.stop().unwrap();
    });
    let quit = Rc::new(Cell::new(false));
    let q = quit.clone();
    r.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| {
        assert_eq!(std::thread::current().id(), me);
        q.set(true); // where a GUI program quits its loop
    });
    let foreign = Foreign::start(&r);
    assert_eq!(*log.borrow(), ["started"], "startup triggers fire inside interleave");
    assert!(r.is_interleaved());
    assert!(r.iterate(Duration::ZERO).is_err(), "no second wait while interleaved");
    foreign.run_until(|| quit.get());
    assert_eq!(*log.borrow(), ["started", "timer"]);
    foreign.run_until(|| !r.is_interleaved());
    // Runs again afterwards, the ordinary way.
    r.iterate(Duration::ZERO).unwrap();
}

fn tcp_echo_runs_on_the_foreign_thread(kind: BackendKind) {
    let r = reactor(kind);
    let port =
        r.listen_tcp(0, factory_fn(|_| Echo), ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let number = port.address().port().unwrap();
    let foreign = Foreign::start(&r);
    // Connecting between batches: the new socket must reach the helper's wait.
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"over the foreign loop")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, Default::default());
    foreign.run_until(|| seen.data_len() == 21);
    assert_eq!(&*seen.data.borrow(), b"over the foreign loop");
    r.stop().unwrap();
    foreign.run_until(|| !r.is_interleaved());
}

/// Counts readable events and drains the pipe.
struct CountReads {
    fd: torque::fd::RawFd,
    count: Rc<Cell<u32>>,
}

impl AsFd for CountReads {
    fn as_fd(&self) -> BorrowedFd<'_> {
        crate::support::borrowed(self.fd)
    }
}

impl FdHandler for CountReads {
    fn readable(&mut self, _r: &Reactor) {
        crate::support::drain(self.fd);
        self.count.set(self.count.get() + 1);
    }
    fn connection_lost(&mut self, _r: &Reactor, _reason: LostReason) {}
}

fn a_reader_added_between_batches_reaches_the_wait(kind: BackendKind) {
    let r = reactor(kind);
    let foreign = Foreign::start(&r);
    // No timers and no fds: the helper now waits with no timeout at all.
    std::thread::sleep(Duration::from_millis(20));
    let pipe = Pipe::new();
    let count = Rc::new(Cell::new(0));
    r.add_reader(&Rc::new(RefCell::new(CountReads { fd: pipe.rfd(), count: count.clone() }))).unwrap();
    pipe.send(b"x");
    foreign.run_until(|| count.get() == 1);
    r.remove_reader(pipe.reader());
    r.stop().unwrap();
    foreign.run_until(|| !r.is_interleaved());
}

fn an_earlier_timer_shortens_the_wait(kind: BackendKind) {
    let r = reactor(kind);
    r.call_later(Duration::from_secs(3600), |_| {});
    let foreign = Foreign::start(&r);
    std::thread::sleep(Duration::from_millis(20)); // the helper waits for an hour
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    r.call_later(Duration::from_millis(10), move |_| f.set(true));
    foreign.run_until(|| fired.get());
    r.stop().unwrap();
    foreign.run_until(|| !r.is_interleaved());
}

fn thread_calls_run_on_the_foreign_thread(kind: BackendKind) {
    let r = reactor(kind);
    let foreign = Foreign::start(&r);
    let handle = r.handle();
    let me = std::thread::current().id();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..100 {
            let tx = done_tx.clone();
            handle.call_from_thread(move |_| {
                assert_eq!(std::thread::current().id(), me);
                let _ = tx.send(i);
            });
        }
    });
    let mut got = Vec::new();
    foreign.run_until(|| {
        got.extend(done_rx.try_iter());
        got.len() == 100
    });
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order");
    r.stop().unwrap();
    foreign.run_until(|| !r.is_interleaved());
}

fn crash_ends_the_interleaving_without_shutdown(kind: BackendKind) {
    let r = reactor(kind);
    let shut = Rc::new(Cell::new(false));
    let s = shut.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| s.set(true));
    let foreign = Foreign::start(&r);
    r.call_later(Duration::from_millis(5), |r| r.crash());
    foreign.run_until(|| !r.is_interleaved());
    assert!(!shut.get(), "crash skips the shutdown triggers");
    // Interleaving again works.
    let again = Foreign::start(&r);
    r.stop().unwrap();
    again.run_until(|| !r.is_interleaved());
    assert!(shut.get());
}

/// A reactor dropped while interleaved (never stopped) must not leave its
/// helper blocked in a wait forever: the helper exits, dropping the waker (and
/// with it the channel's sender).
fn a_dropped_interleaved_reactor_ends_its_helper(kind: BackendKind) {
    let r = reactor(kind);
    let foreign = Foreign::start(&r);
    foreign.run_until(|| r.is_running());
    drop(r);
    let start = Instant::now();
    loop {
        match foreign.calls.recv_timeout(Duration::from_millis(100)) {
            Ok(call) => call(), // a batch of the dropped reactor: ignored
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(start.elapsed() < Duration::from_secs(30), "the helper thread outlived its reactor");
            }
        }
    }
}

/// Between batches the helper's wait is in flight: a second waiter would split
/// the events, so `iterate` is refused. Inside a batch it is a nested pass.
fn iterate_is_refused_between_batches_and_allowed_inside_one(kind: BackendKind) {
    let r = reactor(kind);
    let foreign = Foreign::start(&r);
    assert!(matches!(r.iterate(Duration::ZERO), Err(torque::ReactorError::AlreadyRunning)));
    assert!(matches!(r.run(), Err(torque::ReactorError::AlreadyRunning)));
    let nested = Rc::new(RefCell::new(None));
    let (n, inner_ran) = (nested.clone(), Rc::new(Cell::new(false)));
    let i = inner_ran.clone();
    r.call_later(Duration::ZERO, move |r| {
        let i = i.clone();
        r.call_later(Duration::ZERO, move |_| i.set(true));
        *n.borrow_mut() = Some(r.iterate(Duration::ZERO).is_ok());
    });
    foreign.run_until(|| nested.borrow().is_some());
    assert_eq!(*nested.borrow(), Some(true), "a nested pass inside a batch works");
    assert!(inner_ran.get(), "and runs what is due");
    r.stop().unwrap();
    foreign.run_until(|| !r.is_interleaved());
}

/// `embed()`: dropping the run before it finished ends it as `crash()` does
/// (no shutdown triggers), and the reactor can run again.
fn an_embedded_run_dropped_early_ends_like_crash(kind: BackendKind) {
    let r = reactor(kind);
    let shut = Rc::new(Cell::new(0));
    let s = shut.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move |_| s.set(s.get() + 1));
    let run = r.embed().unwrap();
    assert!(r.is_running());
    assert!(matches!(r.embed(), Err(torque::ReactorError::AlreadyRunning)));
    assert!(matches!(r.run(), Err(torque::ReactorError::AlreadyRunning)));
    run.dispatch().unwrap();
    drop(run);
    assert!(!r.is_started() && !r.is_running());
    assert_eq!(shut.get(), 0, "dropping is a crash: no shutdown");
    r.call_later(Duration::ZERO, |r| r.stop().unwrap());
    r.run().unwrap();
    assert_eq!(shut.get(), 1);
}

crate::cases! {
    [Interleave] plain {
        a_dropped_interleaved_reactor_ends_its_helper,
        iterate_is_refused_between_batches_and_allowed_inside_one,
        startup_timers_and_shutdown_run_on_the_foreign_thread,
        an_earlier_timer_shortens_the_wait,
        thread_calls_run_on_the_foreign_thread,
        crash_ends_the_interleaving_without_shutdown,
    }
    [] plain {
        an_embedded_run_dropped_early_ends_like_crash,
    }
    [Interleave, Tcp] plain {
        tcp_echo_runs_on_the_foreign_thread,
    }
    [Interleave, FdSets] plain {
        a_reader_added_between_batches_reaches_the_wait,
    }
}
