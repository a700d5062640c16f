//! Shared helpers for the conformance suite: per-backend instantiation with a hard
//! timeout, reactors with a fake clock, pipes and closure-based fd handlers.

#![allow(dead_code)] // shared by several test binaries, each using a part

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use torque::testing::FakeClock;
use torque::{BackendKind, FdHandler, LostReason, Reactor};

/// How long one test may take before it counts as hung.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Instantiates each listed test function (`fn(BackendKind)`) once per backend, as
/// `epoll::name`, `poll::name`, `select::name`. Backends not compiled in are skipped.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        #[cfg(target_os = "linux")]
        mod epoll {
            $( #[test] fn $name() { $crate::support::run_case(torque::BackendKind::Epoll, super::$name) } )*
        }
        mod poll {
            $( #[test] fn $name() { $crate::support::run_case(torque::BackendKind::Poll, super::$name) } )*
        }
        mod select {
            $( #[test] fn $name() { $crate::support::run_case(torque::BackendKind::Select, super::$name) } )*
        }
    };
}

/// Runs `case` on a fresh thread (the reactor need not be on the main thread) and
/// fails the test if it does not finish within [`HARD_TIMEOUT`].
pub fn run_case(kind: BackendKind, case: fn(BackendKind)) {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("case-{kind}"))
        .spawn(move || {
            case(kind);
            let _ = done_tx.send(());
        })
        .expect("spawn test thread");
    match done_rx.recv_timeout(HARD_TIMEOUT) {
        Ok(()) => thread.join().expect("test thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The case panicked: re-raise its panic here.
            if let Err(payload) = thread.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{kind}: test hung for {HARD_TIMEOUT:?}"),
    }
}

/// A reactor on `kind` that leaves signals alone.
pub fn reactor(kind: BackendKind) -> Reactor {
    Reactor::builder().backend(kind).handle_signals(false).build().expect("build reactor")
}

/// A reactor on `kind` driven by a fake clock.
pub fn fake_reactor(kind: BackendKind) -> (Reactor, FakeClock) {
    let clock = FakeClock::new();
    let reactor = Reactor::builder()
        .backend(kind)
        .handle_signals(false)
        .clock(clock.clone())
        .build()
        .expect("build reactor");
    (reactor, clock)
}

/// A shared list of what happened, in order.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// A non-blocking pipe.
pub struct Pipe {
    pub r: OwnedFd,
    pub w: OwnedFd,
}

impl Pipe {
    pub fn new() -> Pipe {
        let (r, w) = torque::fd::pipe().expect("pipe");
        Pipe { r, w }
    }
    pub fn rfd(&self) -> RawFd {
        self.r.as_raw_fd()
    }
    pub fn wfd(&self) -> RawFd {
        self.w.as_raw_fd()
    }
    pub fn send(&self, data: &[u8]) {
        torque::fd::write(self.wfd(), data).expect("write to pipe");
    }
}

/// Reads whatever is available from `fd` (empty at EOF or when nothing is there).
pub fn drain(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match torque::fd::read(fd, &mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

type ReadyFn = Box<dyn FnMut(&Reactor)>;
type LostFn = Box<dyn FnMut(&Reactor, LostReason)>;

/// An [`FdHandler`] made of closures.
#[derive(Default)]
pub struct Handler {
    pub on_read: Option<ReadyFn>,
    pub on_write: Option<ReadyFn>,
    pub on_lost: Option<LostFn>,
}

impl Handler {
    pub fn reading(f: impl FnMut(&Reactor) + 'static) -> Rc<RefCell<Handler>> {
        Rc::new(RefCell::new(Handler { on_read: Some(Box::new(f)), ..Handler::default() }))
    }
    pub fn writing(f: impl FnMut(&Reactor) + 'static) -> Rc<RefCell<Handler>> {
        Rc::new(RefCell::new(Handler { on_write: Some(Box::new(f)), ..Handler::default() }))
    }
    pub fn with_lost(
        self_: Rc<RefCell<Handler>>,
        f: impl FnMut(&Reactor, LostReason) + 'static,
    ) -> Rc<RefCell<Handler>> {
        self_.borrow_mut().on_lost = Some(Box::new(f));
        self_
    }
}

impl FdHandler for Handler {
    fn readable(&mut self, reactor: &Reactor) {
        if let Some(f) = self.on_read.as_mut() {
            f(reactor);
        }
    }
    fn writable(&mut self, reactor: &Reactor) {
        if let Some(f) = self.on_write.as_mut() {
            f(reactor);
        }
    }
    fn connection_lost(&mut self, reactor: &Reactor, reason: LostReason) {
        if let Some(f) = self.on_lost.as_mut() {
            f(reactor, reason);
        }
    }
}

/// Iterates with a zero wait `n` times.
pub fn spin(reactor: &Reactor, n: usize) {
    for _ in 0..n {
        reactor.iterate(Duration::ZERO).expect("iterate");
    }
}

/// Iterates (waiting up to 50 ms a pass) until `done` holds; panics after 30 s so a
/// missing event fails the test instead of hanging it (generous: CI machines are
/// loaded, and nothing here asserts on speed).
pub fn iterate_until(reactor: &Reactor, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "condition not reached within 30 s");
        reactor.iterate(Duration::from_millis(50)).expect("iterate");
    }
}

/// Runs `f` with a `tracing` subscriber that records this thread's log lines, and
/// returns them. Used to check that swallowed failures are logged, not lost.
pub fn capture_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Raises the soft fd limit to at least `want` (within the hard limit).
pub fn raise_fd_limit(want: libc::rlim_t) {
    // SAFETY (test): get/setrlimit on a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The current soft fd limit.
pub fn fd_limit() -> libc::rlim_t {
    // SAFETY (test): getrlimit on a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}
