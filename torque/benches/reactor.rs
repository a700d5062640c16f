//! Side-by-side benchmarks of Torque's backends against tokio's current-thread
//! runtime, in one run, reported as ratios (absolute times on a shared machine are
//! noise). Run with `cargo bench --bench reactor` (add `-- --reps 9` for more runs,
//! `-- timers` to run one scenario).
//!
//! Scenarios (from the reactor-core issue):
//! - `timers`: schedule 1,000,000 timers (deadlines spread over 1–11 ms), cancel every
//!   second one, run the rest. tokio: one spawned task per timer doing `sleep_until`,
//!   every second task aborted.
//! - `threads`: 4 threads × 250,000 calls into the loop. tokio: an unbounded mpsc
//!   channel of boxed closures drained by the runtime (its fastest idiom for this).
//! - `deferreds`: 1,000,000 Deferreds with 10 callbacks each, fired and collected;
//!   tokio: a oneshot channel and a `spawn_local` task per chain doing the same steps.
//! - `spawn`: spawning and completing 1,000,000 trivial async tasks; tokio:
//!   `spawn_local` on a `LocalSet`.
//! - `idle-fds`: one wake-up of the loop (write a byte to a pipe, the loop reads it)
//!   with N idle registered fds beside it. Idle fds are eventfds so 10,000 of them
//!   fit the 20,000-fd limit; the active one is a pipe.

use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use torque::{BackendKind, DelayedCall, FdHandler, Reactor};

const TIMERS: usize = 1_000_000;
const THREADS: usize = 4;
const CALLS_PER_THREAD: usize = 250_000;
const IDLE_SIZES: [usize; 3] = [100, 1_000, 10_000];
const ROUND_TRIPS: usize = 2_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    Torque(BackendKind),
    Tokio,
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Torque(kind) => format!("torque/{kind}"),
            Contender::Tokio => "tokio current-thread".to_owned(),
        }
    }
}

fn contenders() -> Vec<Contender> {
    let mut list: Vec<Contender> = BackendKind::all().iter().map(|&k| Contender::Torque(k)).collect();
    list.push(Contender::Tokio);
    list
}

fn reactor(kind: BackendKind) -> Reactor {
    Reactor::builder().backend(kind).handle_signals(false).build().expect("reactor")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

// ----- timers -----

fn timers(contender: Contender) -> Result<Duration, String> {
    let spread = |i: usize| Duration::from_micros(1_000 + (i % 10_000) as u64);
    match contender {
        Contender::Torque(kind) => {
            let r = reactor(kind);
            let count = Rc::new(Cell::new(0usize));
            let start = Instant::now();
            let calls: Vec<DelayedCall> = (0..TIMERS)
                .map(|i| {
                    let c = count.clone();
                    r.call_later(spread(i), move |_| c.set(c.get() + 1))
                })
                .collect();
            for call in calls.iter().step_by(2) {
                call.cancel().expect("cancel");
            }
            while count.get() < TIMERS / 2 {
                r.iterate(Duration::from_millis(50)).expect("iterate");
            }
            Ok(start.elapsed())
        }
        Contender::Tokio => {
            let rt = tokio_rt();
            Ok(rt.block_on(async {
                let count = Arc::new(AtomicUsize::new(0));
                let done = Arc::new(tokio::sync::Notify::new());
                let start = Instant::now();
                let base = tokio::time::Instant::now();
                let handles: Vec<_> = (0..TIMERS)
                    .map(|i| {
                        let (c, d) = (count.clone(), done.clone());
                        let deadline = base + spread(i);
                        tokio::spawn(async move {
                            tokio::time::sleep_until(deadline).await;
                            if c.fetch_add(1, Ordering::Relaxed) + 1 == TIMERS / 2 {
                                d.notify_one();
                            }
                        })
                    })
                    .collect();
                for handle in handles.iter().step_by(2) {
                    handle.abort();
                }
                done.notified().await;
                start.elapsed()
            }))
        }
    }
}

// ----- cross-thread calls -----

static CALLS_SEEN: AtomicUsize = AtomicUsize::new(0);

fn threads(contender: Contender) -> Result<Duration, String> {
    let total = THREADS * CALLS_PER_THREAD;
    CALLS_SEEN.store(0, Ordering::Relaxed);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    match contender {
        Contender::Torque(kind) => {
            let r = reactor(kind);
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (handle, barrier) = (r.handle(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..CALLS_PER_THREAD {
                            handle.call_from_thread(|_| {
                                CALLS_SEEN.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            while CALLS_SEEN.load(Ordering::Relaxed) < total {
                r.iterate(Duration::from_millis(50)).expect("iterate");
            }
            let elapsed = start.elapsed();
            workers.into_iter().for_each(|w| w.join().expect("worker"));
            Ok(elapsed)
        }
        Contender::Tokio => {
            let rt = tokio_rt();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Box<dyn FnOnce() + Send>>();
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (tx, barrier) = (tx.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..CALLS_PER_THREAD {
                            let _ = tx.send(Box::new(|| {
                                CALLS_SEEN.fetch_add(1, Ordering::Relaxed);
                            }));
                        }
                    })
                })
                .collect();
            drop(tx);
            barrier.wait();
            let start = Instant::now();
            rt.block_on(async {
                while let Some(f) = rx.recv().await {
                    f();
                    if CALLS_SEEN.load(Ordering::Relaxed) == total {
                        break;
                    }
                }
            });
            let elapsed = start.elapsed();
            workers.into_iter().for_each(|w| w.join().expect("worker"));
            Ok(elapsed)
        }
    }
}

// ----- idle fds -----

/// An fd that never becomes readable: an eventfd on Linux, elsewhere a pipe's
/// read end whose write end is kept (in `keep`) so it never sees end of file.
fn idle_fd(keep: &mut Vec<OwnedFd>) -> OwnedFd {
    #[cfg(target_os = "linux")]
    {
        let _ = keep;
        // SAFETY: eventfd has no pointer arguments; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd owned by nobody else.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (read, write) = torque::fd::pipe().expect("pipe");
        keep.push(write);
        read
    }
}

struct Idle(OwnedFd);
impl FdHandler for Idle {}
impl AsFd for Idle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

struct Reader {
    fd: OwnedFd,
    seen: Rc<Cell<usize>>,
}
impl AsFd for Reader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
impl FdHandler for Reader {
    fn readable(&mut self, _: &Reactor) {
        let mut buf = [0u8; 64];
        if let Ok(n) = torque::fd::read(&self.fd, &mut buf) {
            self.seen.set(self.seen.get() + n);
        }
    }
}

/// Mean time of one loop wake-up with `idle` idle fds registered.
// tokio deprecated `AsyncFd::with_interest` for fds it cannot prove are owned; ours
// are `OwnedFd`s moved into it, which is the sound case.
#[allow(deprecated)]
fn idle_fds(contender: Contender, idle: usize) -> Result<Duration, String> {
    // The reactor comes first, so select's waker fd stays below FD_SETSIZE.
    let torque_reactor = match contender {
        Contender::Torque(kind) => Some(reactor(kind)),
        Contender::Tokio => None,
    };
    let mut write_ends = Vec::new();
    let idle_fds: Vec<OwnedFd> = (0..idle).map(|_| idle_fd(&mut write_ends)).collect();
    let (read_end, write_end) = torque::fd::pipe().expect("pipe");
    match (contender, torque_reactor) {
        (Contender::Torque(_), Some(r)) => {
            for fd in idle_fds {
                r.add_reader(&Rc::new(std::cell::RefCell::new(Idle(fd)))).map_err(|e| format!("n/a: {e}"))?;
            }
            let seen = Rc::new(Cell::new(0));
            let reader = Rc::new(std::cell::RefCell::new(Reader { fd: read_end, seen: seen.clone() }));
            r.add_reader(&reader).map_err(|e| format!("n/a: {e}"))?;
            let start = Instant::now();
            for k in 1..=ROUND_TRIPS {
                torque::fd::write(&write_end, b"x").expect("write");
                while seen.get() < k {
                    r.iterate(Duration::from_secs(1)).expect("iterate");
                }
            }
            Ok(start.elapsed() / ROUND_TRIPS as u32)
        }
        _ => {
            use tokio::io::Interest;
            use tokio::io::unix::AsyncFd;
            let rt = tokio_rt();
            rt.block_on(async {
                let _idle: Vec<AsyncFd<OwnedFd>> = idle_fds
                    .into_iter()
                    .map(|fd| AsyncFd::with_interest(fd, Interest::READABLE).expect("register idle fd"))
                    .collect();
                let reader = AsyncFd::with_interest(read_end, Interest::READABLE).expect("register pipe");
                let start = Instant::now();
                for _ in 0..ROUND_TRIPS {
                    torque::fd::write(&write_end, b"x").expect("write");
                    // Read until WouldBlock, as edge-triggered tokio code must: that
                    // clears tokio's cached readiness, so the next trip really waits.
                    let mut got = 0;
                    loop {
                        let mut guard = reader.readable().await.expect("readable");
                        let mut buf = [0u8; 64];
                        match guard.try_io(|fd| torque::fd::read(fd, &mut buf)) {
                            Ok(Ok(n)) => got += n,
                            Ok(Err(e)) => panic!("read: {e}"),
                            Err(_would_block) if got > 0 => break,
                            Err(_would_block) => continue,
                        }
                    }
                }
                Ok(start.elapsed() / ROUND_TRIPS as u32)
            })
        }
    }
}

// ----- deferreds and tasks -----

const DEFERREDS: usize = 1_000_000;

/// 1,000,000 Deferreds, each with a chain of 10 callbacks, fired and collected.
/// tokio: a oneshot channel per chain and a `spawn_local` task that awaits it and
/// runs the same 10 steps.
fn deferred_chains(contender: Contender) -> Result<Duration, String> {
    match contender {
        Contender::Torque(kind) => {
            let _r = reactor(kind);
            let start = Instant::now();
            let mut total = 0u64;
            for i in 0..DEFERREDS as u64 {
                let (d, resolver) = torque::defer::Deferred::<u64>::pending();
                let mut d = d;
                for step in 0..10u64 {
                    d = d.map(move |v| v + step);
                }
                resolver.callback(i).expect("fire");
                total += d.result().expect("fired").expect("ok");
            }
            std::hint::black_box(total);
            Ok(start.elapsed())
        }
        Contender::Tokio => {
            let rt = tokio_rt();
            let local = tokio::task::LocalSet::new();
            let total = Rc::new(Cell::new(0u64));
            let start = Instant::now();
            local.block_on(&rt, async {
                let mut handles = Vec::with_capacity(DEFERREDS);
                for i in 0..DEFERREDS as u64 {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    let t = total.clone();
                    handles.push(tokio::task::spawn_local(async move {
                        let mut v = rx.await.expect("sent");
                        for step in 0..10u64 {
                            v += step;
                        }
                        t.set(t.get() + v);
                    }));
                    let _ = tx.send(i);
                }
                for h in handles {
                    h.await.expect("task");
                }
            });
            std::hint::black_box(total.get());
            Ok(start.elapsed())
        }
    }
}

/// Spawn 1,000,000 trivial async tasks and run them to completion.
fn spawn_tasks(contender: Contender) -> Result<Duration, String> {
    let done = Rc::new(Cell::new(0usize));
    match contender {
        Contender::Torque(kind) => {
            let r = reactor(kind);
            let start = Instant::now();
            for _ in 0..DEFERREDS {
                let d = done.clone();
                drop(r.spawn(async move { d.set(d.get() + 1) }));
            }
            while done.get() < DEFERREDS {
                r.iterate(Duration::from_millis(50)).expect("iterate");
            }
            Ok(start.elapsed())
        }
        Contender::Tokio => {
            let rt = tokio_rt();
            let local = tokio::task::LocalSet::new();
            let start = Instant::now();
            local.block_on(&rt, async {
                for _ in 0..DEFERREDS {
                    let d = done.clone();
                    drop(tokio::task::spawn_local(async move { d.set(d.get() + 1) }));
                }
                while done.get() < DEFERREDS {
                    tokio::task::yield_now().await;
                }
            });
            Ok(start.elapsed())
        }
    }
}

// ----- harness -----

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn fmt(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} µs", d.as_secs_f64() * 1e6)
    }
}

fn report(title: &str, reps: usize, mut run: impl FnMut(Contender) -> Result<Duration, String>) {
    println!("\n### {title} (median of {reps})\n");
    println!("| contender | time | vs tokio |");
    println!("|---|---:|---:|");
    let mut rows = Vec::new();
    for contender in contenders() {
        let mut samples = Vec::new();
        let mut failure = None;
        // Interleaving is by repetition inside a contender; one warm-up run first.
        for rep in 0..=reps {
            match run(contender) {
                Ok(d) if rep > 0 => samples.push(d),
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        rows.push((contender, failure.map(Err).unwrap_or_else(|| Ok(median(samples)))));
    }
    let tokio = rows.iter().find(|(c, _)| *c == Contender::Tokio).and_then(|(_, r)| r.as_ref().ok().copied());
    for (contender, result) in rows {
        match (result, tokio) {
            (Ok(d), Some(t)) => {
                println!(
                    "| {} | {} | {:.2}× tokio's time |",
                    contender.name(),
                    fmt(d),
                    d.as_secs_f64() / t.as_secs_f64()
                )
            }
            (Ok(d), None) => println!("| {} | {} | – |", contender.name(), fmt(d)),
            (Err(e), _) => println!("| {} | {e} | – |", contender.name()),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5;
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--reps" => reps = it.next().and_then(|n| n.parse().ok()).unwrap_or(reps),
            "--bench" => {}
            other if other.starts_with("--") => {}
            other => filters.push(other.to_owned()),
        }
    }
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    println!("Torque reactor benchmarks: lower is better; ratio < 1 means faster than tokio.");
    if wanted("timers") {
        report("timers: schedule 1,000,000, cancel half, run the rest", reps, timers);
    }
    if wanted("threads") {
        report("threads: 4 threads × 250,000 calls into the loop", reps, threads);
    }
    if wanted("deferreds") {
        report(
            "deferreds: 1,000,000 chains of 10 callbacks (tokio: oneshot + spawn_local)",
            reps,
            deferred_chains,
        );
    }
    if wanted("spawn") {
        report("spawn: 1,000,000 trivial async tasks (tokio: spawn_local)", reps, spawn_tasks);
    }
    if wanted("idle-fds") {
        for idle in IDLE_SIZES {
            report(&format!("idle-fds: one wake-up with {idle} idle registered fds"), reps, |c| {
                idle_fds(c, idle)
            });
        }
    }
}
