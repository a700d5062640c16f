//! The latency probe shared by `torque/benches/interleave.rs` and
//! `torque-glib/benches/latency.rs` (included by `#[path]`): a writer thread
//! writes one byte to a socket pair every 200 µs, waits until the reactor's fd
//! callback has seen it, and the callback records the delay.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, atomic::AtomicU64, atomic::Ordering};
use std::time::{Duration, Instant};

use torque::{FdHandler, LostReason, Reactor};

struct Probe {
    fd: OwnedFd,
    base: Instant,
    sent_at: Arc<AtomicU64>,
    samples: Rc<RefCell<Vec<u64>>>,
    ack: mpsc::Sender<()>,
}

impl AsFd for Probe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FdHandler for Probe {
    fn readable(&mut self, _r: &Reactor) {
        let now = self.base.elapsed().as_nanos() as u64;
        let mut buf = [0u8; 64];
        let _ = torque::fd::read(&self.fd, &mut buf);
        self.samples.borrow_mut().push(now.saturating_sub(self.sent_at.load(Ordering::SeqCst)));
        let _ = self.ack.send(());
    }
    fn connection_lost(&mut self, _r: &Reactor, _reason: LostReason) {}
}

/// Measures `samples` delays (ns, sorted) with `drive` running `reactor`'s
/// loop; `drive` gets a check that turns true once every sample is in.
pub fn measure(reactor: &Reactor, samples: usize, drive: impl FnOnce(&dyn Fn() -> bool)) -> Vec<u64> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let (ours, theirs): (OwnedFd, OwnedFd) = (ours.into(), theirs.into());
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let got = Rc::new(RefCell::new(Vec::with_capacity(samples)));
    let (ack_tx, ack_rx) = mpsc::channel();
    let probe = Rc::new(RefCell::new(Probe {
        fd: ours,
        base,
        sent_at: sent_at.clone(),
        samples: got.clone(),
        ack: ack_tx,
    }));
    reactor.add_reader(&probe).unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..samples {
            std::thread::sleep(Duration::from_micros(200));
            sent_at.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
            torque::fd::write(&theirs, b"x").unwrap();
            if ack_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                break;
            }
        }
    });
    let done = || got.borrow().len() >= samples;
    drive(&done);
    writer.join().unwrap();
    reactor.remove_reader(&probe.borrow().fd);
    let mut samples = got.borrow().clone();
    samples.sort_unstable();
    samples
}

/// The `p` quantile of sorted ns samples, in µs.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `--samples N` from the command line, 10,000 by default.
pub fn samples_from_args() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
