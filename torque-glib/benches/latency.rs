//! Latency under GLib: the delay from a byte being written to a socket pair to
//! the fd callback running on the GLib thread, 10,000 samples per row, side by
//! side with Torque's own `run()` loop:
//!
//! - `run()`: the reactor's own loop (epoll), the baseline;
//! - `glib-driven`: `torque_glib`'s source, GLib's loop doing the waiting;
//! - `interleave + MainContext::invoke`: `Reactor::interleave` on each backend
//!   with GLib's `invoke` as the GUI waker (the threaded path a GTK program
//!   would use with select or poll).
//!
//! `cargo bench -p torque-glib --bench latency` (`-- --samples N`).

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, atomic::AtomicU64, atomic::Ordering};
use std::time::{Duration, Instant};

use torque::{BackendKind, FdHandler, LostReason, Reactor};

struct Probe {
    fd: i32,
    base: Instant,
    sent_at: Arc<AtomicU64>,
    samples: Rc<RefCell<Vec<u64>>>,
    ack: mpsc::Sender<()>,
}

impl FdHandler for Probe {
    fn readable(&mut self, _r: &Reactor) {
        let now = self.base.elapsed().as_nanos() as u64;
        let mut buf = [0u8; 64];
        let _ = torque::fd::read(self.fd, &mut buf);
        self.samples.borrow_mut().push(now.saturating_sub(self.sent_at.load(Ordering::SeqCst)));
        let _ = self.ack.send(());
    }
    fn connection_lost(&mut self, _r: &Reactor, _reason: LostReason) {}
}

#[derive(Clone, Copy)]
enum Mode {
    Run,
    GlibDriven,
    InterleaveInvoke,
}

/// Returns latencies in ns, sorted.
fn measure(kind: BackendKind, mode: Mode, samples: usize) -> Vec<u64> {
    let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let (ours, theirs): (OwnedFd, OwnedFd) = (ours.into(), theirs.into());
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let got = Rc::new(RefCell::new(Vec::with_capacity(samples)));
    let (ack_tx, ack_rx) = mpsc::channel();
    let probe =
        Probe { fd: ours.as_raw_fd(), base, sent_at: sent_at.clone(), samples: got.clone(), ack: ack_tx };
    reactor.add_reader(ours.as_raw_fd(), Rc::new(RefCell::new(probe))).unwrap();
    let writer = {
        let sent_at = sent_at.clone();
        std::thread::spawn(move || {
            for _ in 0..samples {
                std::thread::sleep(Duration::from_micros(200));
                sent_at.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                torque::fd::write(theirs.as_raw_fd(), b"x").unwrap();
                if ack_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                    break;
                }
            }
        })
    };
    let context = glib::MainContext::default();
    match mode {
        Mode::Run => {
            while got.borrow().len() < samples {
                reactor.iterate(Duration::from_secs(10)).unwrap();
            }
        }
        Mode::GlibDriven => {
            let run = torque_glib::attach(&reactor, &context).unwrap();
            while got.borrow().len() < samples {
                context.iteration(true);
            }
            drop(run);
        }
        Mode::InterleaveInvoke => {
            let invoker = context.clone();
            reactor.interleave(move |call| invoker.invoke(call)).unwrap();
            while got.borrow().len() < samples {
                context.iteration(true);
            }
            reactor.stop().unwrap();
            while reactor.is_interleaved() {
                context.iteration(true);
            }
        }
    }
    writer.join().unwrap();
    reactor.remove_reader(ours.as_raw_fd());
    let mut samples = got.borrow().clone();
    samples.sort_unstable();
    samples
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let context = glib::MainContext::default();
    let _owner = context.acquire().expect("the default main context");
    println!("{samples} samples each: byte written → fd callback on the GLib thread\n");
    println!("| driving | backend | median µs | p99 µs | added at the median vs run() µs |");
    println!("|---|---|---:|---:|---:|");
    let baseline = measure(BackendKind::Epoll, Mode::Run, samples);
    let base_median = percentile(&baseline, 0.5);
    println!("| run() | epoll | {base_median:.1} | {:.1} | — |", percentile(&baseline, 0.99));
    let glib = measure(BackendKind::Epoll, Mode::GlibDriven, samples);
    let m = percentile(&glib, 0.5);
    println!(
        "| glib-driven (torque-glib) | epoll | {m:.1} | {:.1} | {:.1} |",
        percentile(&glib, 0.99),
        m - base_median
    );
    for &kind in BackendKind::all() {
        let inter = measure(kind, Mode::InterleaveInvoke, samples);
        let m = percentile(&inter, 0.5);
        println!(
            "| interleave + MainContext::invoke | {kind} | {m:.1} | {:.1} | {:.1} |",
            percentile(&inter, 0.99),
            m - base_median
        );
    }
}
