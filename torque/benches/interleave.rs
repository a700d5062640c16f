//! Latency of `interleave(waker)`: the delay from a byte being written to a
//! socket pair to the protocol callback running on the reactor's (GUI) thread,
//! with the plain `run()` loop and with the wait on the helper thread and a
//! channel as the "GUI" waker. Median and p99 over 10,000 samples per backend.
//! `cargo bench -p torque --bench interleave` (`-- --samples N`).

#[path = "common/latency.rs"]
mod latency;

use std::sync::mpsc;
use std::time::Duration;

use latency::{measure, percentile, samples_from_args};
use torque::{BackendKind, Reactor};

fn plain(kind: BackendKind, samples: usize) -> Vec<u64> {
    let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    measure(&reactor, samples, |done| {
        while !done() {
            reactor.iterate(Duration::from_secs(10)).unwrap();
        }
    })
}

fn interleaved(kind: BackendKind, samples: usize) -> Vec<u64> {
    let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    measure(&reactor, samples, |done| {
        let (tx, calls) = mpsc::channel::<torque::GuiCall>();
        reactor
            .interleave(move |call| {
                let _ = tx.send(call);
            })
            .unwrap();
        while !done() {
            let call = calls.recv_timeout(Duration::from_secs(10)).expect("a batch");
            call();
        }
        reactor.stop().unwrap();
        while reactor.is_interleaved() {
            if let Ok(call) = calls.recv_timeout(Duration::from_secs(10)) {
                call();
            }
        }
    })
}

fn main() {
    let samples = samples_from_args();
    println!("{samples} samples each: byte written → callback on the reactor's thread\n");
    println!(
        "| backend | run() median µs | run() p99 µs | interleaved median µs | interleaved p99 µs | added at the median µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for &kind in BackendKind::all() {
        let plain = plain(kind, samples);
        let inter = interleaved(kind, samples);
        let (pm, pp) = (percentile(&plain, 0.5), percentile(&plain, 0.99));
        let (im, ip) = (percentile(&inter, 0.5), percentile(&inter, 0.99));
        println!("| {kind} | {pm:.1} | {pp:.1} | {im:.1} | {ip:.1} | {:.1} |", im - pm);
    }
}
