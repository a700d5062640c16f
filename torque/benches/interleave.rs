//! Latency of `interleave(waker)`: the delay from a byte being written to a
//! socket pair to the protocol callback running on the reactor's (GUI) thread,
//! with the plain `run()` loop and with the wait on the helper thread and a
//! channel as the "GUI" waker. Median and p99 over 10,000 samples per backend.
//! `cargo bench -p torque --bench interleave` (`-- --samples N`).

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

fn pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (a.into(), b.into())
}

/// Returns latencies in ns.
fn measure(kind: BackendKind, interleaved: bool, samples: usize) -> Vec<u64> {
    let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    let (ours, theirs) = pair();
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
            let fd = theirs;
            for _ in 0..samples {
                std::thread::sleep(Duration::from_micros(200));
                sent_at.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                torque::fd::write(fd.as_raw_fd(), b"x").unwrap();
                if ack_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                    break;
                }
            }
        })
    };
    if interleaved {
        let (tx, calls) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        reactor
            .interleave(move |call| {
                let _ = tx.send(call);
            })
            .unwrap();
        while got.borrow().len() < samples {
            let call = calls.recv_timeout(Duration::from_secs(10)).expect("a batch");
            call();
        }
        reactor.stop().unwrap();
        while reactor.is_interleaved() {
            if let Ok(call) = calls.recv_timeout(Duration::from_secs(10)) {
                call();
            }
        }
    } else {
        while got.borrow().len() < samples {
            reactor.iterate(Duration::from_secs(10)).unwrap();
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
    println!("{samples} samples each: byte written → callback on the reactor's thread\n");
    println!(
        "| backend | run() median µs | run() p99 µs | interleaved median µs | interleaved p99 µs | added at the median µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for &kind in BackendKind::all() {
        let plain = measure(kind, false, samples);
        let inter = measure(kind, true, samples);
        let (pm, pp) = (percentile(&plain, 0.5), percentile(&plain, 0.99));
        let (im, ip) = (percentile(&inter, 0.5), percentile(&inter, 0.99));
        println!("| {kind} | {pm:.1} | {pp:.1} | {im:.1} | {ip:.1} | {:.1} |", im - pm);
    }
}
