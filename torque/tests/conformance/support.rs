//! Shared helpers for the conformance suite: the harness that runs each case
//! on every backend (and way of driving) that can do what it needs, reactors
//! with a fake clock, pipes and closure-based fd handlers.

#![allow(dead_code)] // shared by several test binaries, each using a part

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};
use torque::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use torque::testing::FakeClock;
use torque::{BackendKind, Capability, Embedded, FdHandler, GuiCall, LostReason, Reactor, ReactorError};

/// How long one test may take before it counts as hung.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// One behaviour test, written once: run on every backend in
/// [`BackendKind::all`] that has what it needs (and, if `driven`, in every
/// way of driving the reactor). On a backend that lacks a need, its instance
/// asserts that backend's clear "unsupported" error instead.
#[derive(Clone, Copy)]
pub struct Case {
    /// The module, as `module_path!()` gives it.
    pub module: &'static str,
    pub name: &'static str,
    pub run: fn(BackendKind),
    /// What the case uses that a backend might not offer.
    pub needs: &'static [Capability],
    /// Drives its reactor only through `support::{run, step, spin,
    /// iterate_until}`, so it also runs interleaved, embedded and under GLib.
    pub driven: bool,
    /// Set when the case's code uses what this platform lacks (`#[cfg(unix)]`
    /// before its name in `cases!`): it is listed as ignored, with the reason.
    pub built_only_on: Option<&'static str>,
}

/// Declares a module's cases in groups, each with what it needs and whether it
/// is driven (see [`Case`]), and makes the module's `cases()`:
///
/// ```ignore
/// crate::cases! {
///     [FdSets] driven { a_reader_reads, a_writer_writes }
///     [FdSets, WatchFd] plain { the_watch_fd_is_readable }
/// }
/// ```
#[macro_export]
macro_rules! cases {
    ($( [$($need:ident),* $(,)?] $mode:ident { $( $(#[cfg($only:meta)])? $name:ident ),* $(,)? } )*) => {
        /// This module's cases.
        pub fn cases() -> Vec<$crate::support::Case> {
            let mut all = Vec::new();
            $({
                let needs: &'static [torque::Capability] = &[$(torque::Capability::$need),*];
                let driven = $crate::cases!(@driven $mode);
                $(
                    #[cfg(all($($only)?))]
                    all.push($crate::support::Case {
                        module: module_path!(),
                        name: stringify!($name),
                        run: $name,
                        needs,
                        driven,
                        built_only_on: None,
                    });
                    #[cfg(not(all($($only)?)))]
                    all.push($crate::support::Case {
                        module: module_path!(),
                        name: stringify!($name),
                        run: |_| {},
                        needs,
                        driven,
                        built_only_on: Some(stringify!($($only)?)),
                    });
                )*
            })*
            all
        }
    };
    (@driven plain) => { false };
    (@driven driven) => { true };
}

/// A way of driving the reactor that cases run under.
#[derive(Clone, Copy)]
pub struct Mode {
    /// The name's segment in test names (`interleaved::epoll::…`); empty for
    /// `run()` itself.
    pub name: &'static str,
    /// What the backend must offer for this mode.
    pub needs: &'static [Capability],
    /// Makes the case thread's driver.
    pub driver: fn() -> Rc<dyn Driver>,
}

/// `run()` and `iterate()` themselves; every case runs this way.
pub const PLAIN: Mode = Mode { name: "", needs: &[], driver: || Rc::new(PlainDriver) };
/// Interleaved into a channel loop on the test thread.
pub const INTERLEAVED: Mode = Mode {
    name: "interleaved",
    needs: &[Capability::Interleave],
    driver: || Rc::new(InterleavedDriver::new()),
};
/// Embedded in a thread-less loop: poll(2) on the watch fd, or a 1 ms timer.
pub const EMBEDDED: Mode =
    Mode { name: "embedded", needs: &[], driver: || Rc::new(EmbeddedDriver::default()) };

/// The test instances of `cases`: each case on every backend compiled in,
/// in `PLAIN` mode and (driven cases) in the other `modes` given. Names are
/// `module::[mode::]backend::case`.
pub fn trials(cases: Vec<Case>, modes: &[Mode]) -> Vec<libtest_mimic::Trial> {
    let mut trials = Vec::new();
    for case in cases {
        let module = case.module.split_once("::").map_or(case.module, |(_, rest)| rest);
        for &mode in modes {
            if !mode.name.is_empty() && !case.driven {
                continue;
            }
            for &kind in BackendKind::all() {
                let prefix = if mode.name.is_empty() { String::new() } else { format!("{}::", mode.name) };
                let name = format!("{module}::{prefix}{kind}::{}", case.name);
                let missing =
                    case.needs.iter().chain(mode.needs).copied().find(|&n| !kind.info().supports(n));
                let trial = match missing {
                    _ if case.built_only_on.is_some() => libtest_mimic::Trial::test(name, || Ok(()))
                        .with_kind(format!("test code for {} only", case.built_only_on.unwrap_or_default()))
                        .with_ignored_flag(true),
                    Some(need) => libtest_mimic::Trial::test(name, move || {
                        torque::testing::check_unsupported(kind, need).map_err(Into::into)
                    }),
                    None => libtest_mimic::Trial::test(name, move || {
                        outcome(|| run_case_with(kind, mode.driver, case.run))
                    }),
                };
                trials.push(trial);
            }
        }
    }
    trials
}

/// Runs `cases` in `modes` as this test binary's `main` (it has
/// `harness = false`): filters, `--list`, `--exact` and `--test-threads` work
/// as with the built-in harness.
pub fn main(cases: Vec<Case>, modes: &[Mode]) {
    // This harness cannot capture output: keep the panics cases cause on
    // purpose (to test that the reactor survives them) out of the log.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !message.contains("on purpose") {
            report(info);
        }
    }));
    let args = libtest_mimic::Arguments::from_args();
    print_plan(&cases, modes);
    libtest_mimic::run(&args, trials(cases, modes)).exit();
}

/// Says, per backend, how many cases run, how many instead check the
/// backend's "unsupported" error (and for which needs), and how many are not
/// built on this platform, before libtest's own count of passed and ignored.
fn print_plan(cases: &[Case], modes: &[Mode]) {
    for &kind in BackendKind::all() {
        let (mut run, mut refused, mut not_built) = (0, 0, 0);
        let mut lacking: Vec<&str> = Vec::new();
        let mut built_for: Vec<&str> = Vec::new();
        for case in cases {
            for mode in modes.iter().filter(|m| m.name.is_empty() || case.driven) {
                let missing =
                    case.needs.iter().chain(mode.needs).copied().find(|&n| !kind.info().supports(n));
                if let Some(platform) = case.built_only_on {
                    not_built += 1;
                    if !built_for.contains(&platform) {
                        built_for.push(platform);
                    }
                } else if let Some(need) = missing {
                    refused += 1;
                    if !lacking.contains(&need.name()) {
                        lacking.push(need.name());
                    }
                } else {
                    run += 1;
                }
            }
        }
        let lacking =
            if lacking.is_empty() { String::new() } else { format!(" ({} lacking)", lacking.join(", ")) };
        let built_for = if built_for.is_empty() {
            String::new()
        } else {
            format!(" (their test code is for {} only)", built_for.join(", "))
        };
        println!(
            "on {kind}: {run} cases run, {refused} check the unsupported error{lacking}, \
             {not_built} not built on this platform{built_for}"
        );
    }
}

/// Runs `f`, turning a panic into the test's failure message.
pub fn outcome(f: impl FnOnce()) -> Result<(), libtest_mimic::Failed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the test panicked".to_owned());
        message.into()
    })
}

/// How a case drives its reactor: the test thread's stand-in for a real
/// program's main loop.
pub trait Driver {
    /// `reactor.run()`, or the same run with another loop in charge.
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError>;
    /// One pass waiting at most `max_wait` (`reactor.iterate(max_wait)`). With
    /// a zero wait it must dispatch whatever is ready *now*, as `iterate` does.
    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError>;
    /// The driving's name, for messages.
    fn name(&self) -> &'static str;
}

/// `run()` and `iterate()` themselves.
pub struct PlainDriver;

impl Driver for PlainDriver {
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        reactor.run()
    }
    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
        reactor.iterate(max_wait)
    }
    fn name(&self) -> &'static str {
        "plain"
    }
}

/// `Reactor::interleave` into a channel that the test thread drains: the
/// threaded-select path a GUI program uses, with a channel as its loop.
pub struct InterleavedDriver {
    sender: mpsc::Sender<GuiCall>,
    calls: mpsc::Receiver<GuiCall>,
}

impl InterleavedDriver {
    pub fn new() -> InterleavedDriver {
        let (sender, calls) = mpsc::channel();
        InterleavedDriver { sender, calls }
    }

    fn ensure_interleaved(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        if !reactor.is_interleaved() {
            let sender = self.sender.clone();
            reactor.interleave(move |call| {
                let _ = sender.send(call);
            })?;
        }
        Ok(())
    }

    /// Runs the next batch the helper sends, waiting at most `limit`.
    fn run_next_batch(&self, limit: Duration) -> bool {
        match self.calls.recv_timeout(limit) {
            Ok(call) => {
                call();
                true
            }
            Err(_) => false,
        }
    }
}

impl Driver for InterleavedDriver {
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.ensure_interleaved(reactor)?;
        let start = std::time::Instant::now();
        while reactor.is_interleaved() {
            assert!(start.elapsed() < Duration::from_secs(30), "interleaved run did not end within 30 s");
            self.run_next_batch(Duration::from_millis(100));
        }
        Ok(())
    }
    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
        self.ensure_interleaved(reactor)?;
        if max_wait.is_zero() {
            // One pass, as `iterate(0)`: the woken wait returns at once with
            // whatever is ready (the sets are level-triggered).
            reactor.wake_up();
            assert!(self.run_next_batch(Duration::from_secs(30)), "no interleaved batch within 30 s");
        } else {
            self.run_next_batch(max_wait);
        }
        Ok(())
    }
    fn name(&self) -> &'static str {
        "interleaved"
    }
}

/// `Reactor::embed` driven by a loop on the test thread with no helper thread:
/// on epoll it polls the reactor's fd (how calloop or libuv embed a loop); on
/// select and poll, which have no such fd, it dispatches from a short timer
/// (Twisted's Tk support).
#[derive(Default)]
pub struct EmbeddedDriver {
    runs: RefCell<Vec<Embedded>>,
}

impl EmbeddedDriver {
    fn ensure_embedded(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        // A finished run ends here, so `run` may be called again afterwards.
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        if !reactor.is_started() {
            let run = reactor.embed()?;
            self.runs.borrow_mut().push(run);
        }
        Ok(())
    }
}

impl Driver for EmbeddedDriver {
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.ensure_embedded(reactor)?;
        while reactor.is_started() {
            // No cap on the wait: a lost wake-up must hang (the case's hard
            // timeout reports it), not be papered over by a periodic poll.
            self.step(reactor, Duration::from_secs(3600))?;
        }
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        Ok(())
    }
    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
        self.ensure_embedded(reactor)?;
        // The run's own timeout, as a real embedder asks it: it also hands
        // queued registration changes to the backend before the wait.
        let timeout = match self.runs.borrow().last() {
            Some(run) => run.timeout(),
            None => reactor.timeout(),
        };
        match reactor.watch_fd() {
            #[cfg(not(unix))]
            Ok(_) => unreachable!("no Windows backend has a watch fd"),
            #[cfg(unix)]
            Ok(fd) => {
                // One wait on the reactor's fd, bounded by its timeout.
                let wait = timeout.map_or(max_wait, |t| t.min(max_wait));
                let mut watched = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                let millis = wait.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                // SAFETY (test): one valid pollfd.
                unsafe { libc::poll(&mut watched, 1, millis) };
                reactor.iterate(Duration::ZERO)
            }
            Err(ReactorError::Unsupported { capability: Capability::WatchFd, .. }) => {
                // Tk-style: no fd to watch, so a 1 ms timer, then one pass.
                let wait = timeout.map_or(max_wait, |t| t.min(max_wait));
                std::thread::sleep(wait.min(Duration::from_millis(1)));
                reactor.iterate(Duration::ZERO)
            }
            Err(e) => Err(e),
        }
    }
    fn name(&self) -> &'static str {
        "embedded"
    }
}

thread_local! {
    static DRIVER: RefCell<Rc<dyn Driver>> = RefCell::new(Rc::new(PlainDriver));
}

/// The driver of this test thread.
pub fn driver() -> Rc<dyn Driver> {
    DRIVER.with(|d| d.borrow().clone())
}

/// Whether this case runs interleaved (or otherwise under a foreign loop), for
/// the few assertions that differ.
pub fn foreign_loop() -> bool {
    driver().name() != "plain"
}

/// Runs `reactor` to completion with this thread's driver.
pub fn run(reactor: &Reactor) -> Result<(), ReactorError> {
    driver().run(reactor)
}

/// One pass with this thread's driver.
pub fn step(reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
    driver().step(reactor, max_wait)
}

/// Runs `case` on a fresh thread (the reactor need not be on the main thread) and
/// fails the test if it does not finish within [`HARD_TIMEOUT`].
pub fn run_case(kind: BackendKind, case: fn(BackendKind)) {
    run_case_with(kind, || Rc::new(PlainDriver), case)
}

/// As [`run_case`], with `driver` (made on the case's thread) driving.
pub fn run_case_with(kind: BackendKind, driver: fn() -> Rc<dyn Driver>, case: fn(BackendKind)) {
    // A backend with an fd limit (select) needs low fd numbers for whatever
    // its case opens: it runs while no fd-heavy case (`fd_heavy`) does.
    let limited = kind.info().fd_limit.is_some();
    if limited {
        enter_fd_room(|room| !room.heavy, |room| room.limited += 1);
    }
    let heavy = Arc::new(AtomicBool::new(false));
    let _left = LeaveFdRoom { limited, heavy: Arc::clone(&heavy) };
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("case-{kind}"))
        .spawn(move || {
            HEAVY_CASE.with(|slot| *slot.borrow_mut() = Some(heavy));
            DRIVER.with(|d| *d.borrow_mut() = driver());
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

/// Gives the fd room back when a case's run ends (after its thread was
/// joined, so whatever its locals held is closed), also if it failed.
struct LeaveFdRoom {
    limited: bool,
    heavy: Arc<AtomicBool>,
}

impl Drop for LeaveFdRoom {
    fn drop(&mut self) {
        if self.limited {
            leave_fd_room(|room| room.limited -= 1);
        }
        if self.heavy.load(Ordering::SeqCst) {
            leave_fd_room(|room| room.heavy = false);
        }
    }
}

/// A reactor on `kind` that leaves signals alone.
pub fn reactor(kind: BackendKind) -> Reactor {
    build_with_room(kind, || Reactor::builder().backend(kind).handle_signals(false))
}

/// A reactor on `kind` driven by a fake clock.
pub fn fake_reactor(kind: BackendKind) -> (Reactor, FakeClock) {
    let clock = FakeClock::new();
    let reactor =
        build_with_room(kind, || Reactor::builder().backend(kind).handle_signals(false).clock(clock.clone()));
    (reactor, clock)
}

/// Builds a reactor. A backend with an fd limit (select: below FD_SETSIZE)
/// cannot open while cases running beside it (a thousand connections each)
/// hold the low fd numbers; it waits for them, bounded, rather than fail.
fn build_with_room(kind: BackendKind, builder: impl Fn() -> torque::ReactorBuilder) -> Reactor {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match builder().build() {
            Ok(reactor) => return reactor,
            Err(torque::ReactorError::Os(e))
                if kind.info().fd_limit.is_some()
                    && e.kind() == std::io::ErrorKind::InvalidInput
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("build reactor: {e:?}"),
        }
    }
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
    /// The read end, to register.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.r.as_fd()
    }
    /// The write end, to register.
    pub fn writer(&self) -> BorrowedFd<'_> {
        self.w.as_fd()
    }
    /// The read end's number (for `readers()`, and for closures that read it).
    pub fn rfd(&self) -> RawFd {
        self.r.as_raw_fd()
    }
    /// The write end's number.
    pub fn wfd(&self) -> RawFd {
        self.w.as_raw_fd()
    }
    pub fn send(&self, data: &[u8]) {
        torque::fd::write(&self.w, data).expect("write to pipe");
    }
}

/// A registered fd's number, borrowed for the fd-set calls of a handler that
/// only knows the number (the test keeps the fd open while it is registered).
pub fn borrowed(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY (test): every caller keeps `fd` open while the reactor may use it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Reads whatever is available from `fd` (empty at EOF or when nothing is there).
pub fn drain(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match torque::fd::read(borrowed(fd), &mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

type ReadyFn = Box<dyn FnMut(&Reactor)>;
type LostFn = Box<dyn FnMut(&Reactor, LostReason)>;

/// An [`FdHandler`] made of closures, for an fd the test keeps open.
pub struct Handler {
    pub fd: BorrowedFd<'static>,
    pub on_read: Option<ReadyFn>,
    pub on_write: Option<ReadyFn>,
    pub on_lost: Option<LostFn>,
}

impl Handler {
    /// A handler for `fd` with no callbacks yet.
    pub fn new(fd: impl AsFd) -> Handler {
        Handler { fd: borrowed(fd.as_fd().as_raw_fd()), on_read: None, on_write: None, on_lost: None }
    }
    pub fn reading(fd: impl AsFd, f: impl FnMut(&Reactor) + 'static) -> Rc<RefCell<Handler>> {
        Rc::new(RefCell::new(Handler { on_read: Some(Box::new(f)), ..Handler::new(fd) }))
    }
    pub fn writing(fd: impl AsFd, f: impl FnMut(&Reactor) + 'static) -> Rc<RefCell<Handler>> {
        Rc::new(RefCell::new(Handler { on_write: Some(Box::new(f)), ..Handler::new(fd) }))
    }
    pub fn with_lost(
        self_: Rc<RefCell<Handler>>,
        f: impl FnMut(&Reactor, LostReason) + 'static,
    ) -> Rc<RefCell<Handler>> {
        self_.borrow_mut().on_lost = Some(Box::new(f));
        self_
    }
}

impl AsFd for Handler {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
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
        step(reactor, Duration::ZERO).expect("iterate");
    }
}

/// Iterates (waiting up to 50 ms a pass) until `done` holds; panics after 30 s so a
/// missing event fails the test instead of hanging it (generous: CI machines are
/// loaded, and nothing here asserts on speed).
pub fn iterate_until(reactor: &Reactor, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "condition not reached within 30 s");
        step(reactor, Duration::from_millis(50)).expect("iterate");
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

/// A connected pair of non-blocking-capable byte streams in this process:
/// UNIX sockets where there are some, loopback TCP on Windows.
#[cfg(unix)]
pub fn stream_pair() -> (std::os::unix::net::UnixStream, std::os::unix::net::UnixStream) {
    std::os::unix::net::UnixStream::pair().unwrap()
}

/// A connected pair of non-blocking-capable byte streams in this process:
/// UNIX sockets where there are some, loopback TCP on Windows.
#[cfg(windows)]
pub fn stream_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    (a, b)
}

/// Raises the soft fd limit to at least `want` (within the hard limit).
/// Windows has no such limit.
#[cfg(windows)]
pub fn raise_fd_limit(_want: u64) {}

/// The current soft fd limit (Windows: none).
#[cfg(windows)]
pub fn fd_limit() -> u64 {
    u64::MAX
}

/// Raises the soft fd limit to at least `want` (within the hard limit).
#[cfg(unix)]
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
#[cfg(unix)]
pub fn fd_limit() -> libc::rlim_t {
    // SAFETY (test): getrlimit on a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Asserts that the server closed `client`'s connection without sending it
/// anything (end of file or a reset), waiting at most 10 s.
pub fn assert_closed_unserved(client: &mut std::net::TcpStream) {
    use std::io::Read;
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut byte = [0u8; 1];
    match client.read(&mut byte) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes from a connection that should have been closed unserved"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Who holds the low fd numbers: cases on backends with an fd limit
/// (select), any number at once, or one case that opens thousands of fds,
/// which would take the numbers select needs and get its registrations
/// refused.
#[derive(Default)]
struct FdRoom {
    limited: usize,
    heavy: bool,
}

static FD_ROOM: Mutex<FdRoom> = Mutex::new(FdRoom { limited: 0, heavy: false });
static FD_ROOM_CHANGED: Condvar = Condvar::new();

fn fd_room() -> std::sync::MutexGuard<'static, FdRoom> {
    FD_ROOM.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `ready` holds for the room, then applies `take`.
fn enter_fd_room(ready: impl Fn(&FdRoom) -> bool, take: impl FnOnce(&mut FdRoom)) {
    let mut room = fd_room();
    while !ready(&room) {
        room = FD_ROOM_CHANGED.wait(room).unwrap_or_else(|e| e.into_inner());
    }
    take(&mut room);
}

fn leave_fd_room(give_back: impl FnOnce(&mut FdRoom)) {
    give_back(&mut fd_room());
    FD_ROOM_CHANGED.notify_all();
}

thread_local! {
    /// Set by `run_case_with` on a case's thread: the case took the room
    /// exclusively (`fd_heavy`), to be given back once the thread is gone.
    static HEAVY_CASE: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Called by a case that opens thousands of fds on a backend without an fd
/// limit: no select case runs until this case's thread has ended — its fds
/// may outlive the case function (a GLib context holds the reactor until
/// the thread's locals are dropped).
pub fn fd_heavy(kind: BackendKind) {
    if kind.info().fd_limit.is_some() {
        return;
    }
    enter_fd_room(|room| room.limited == 0 && !room.heavy, |room| room.heavy = true);
    HEAVY_CASE.with(|slot| {
        if let Some(flag) = slot.borrow().as_ref() {
            flag.store(true, Ordering::SeqCst);
        }
    });
}
