//! Latency under GLib: the delay from a byte being written to a socket pair to
//! the fd callback running on the GLib thread, 10,000 samples per row, side by
//! side with Torque's own `run()` loop:
//!
//! - `run()`: the reactor's own loop (epoll or kqueue), the baseline;
//! - `glib-driven`: `torque_glib`'s source, GLib's loop doing the waiting;
//! - `interleave + idle_add_once`: `Reactor::interleave` on each backend with
//!   `glib::idle_add_once` as the GUI waker (the threaded path a GTK program
//!   would use with select or poll).
//!
//! `cargo bench -p torque-glib --bench latency` (`-- --samples N`).

#[path = "../../torque/benches/common/latency.rs"]
mod latency;

use std::time::Duration;

use latency::{measure, percentile, samples_from_args};
use torque::{BackendKind, Reactor};

#[derive(Clone, Copy)]
enum Mode {
    Run,
    GlibDriven,
    InterleaveIdle,
}

/// Returns latencies in ns, sorted.
fn measure_mode(kind: BackendKind, mode: Mode, samples: usize) -> Vec<u64> {
    let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
    let context = glib::MainContext::default();
    measure(&reactor, samples, |done| match mode {
        Mode::Run => {
            while !done() {
                reactor.iterate(Duration::from_secs(10)).unwrap();
            }
        }
        Mode::GlibDriven => {
            let run = torque_glib::attach(&reactor, &context).unwrap();
            while !done() {
                context.iteration(true);
            }
            drop(run);
        }
        Mode::InterleaveIdle => {
            reactor
                .interleave(|call| {
                    glib::idle_add_once(call);
                })
                .unwrap();
            while !done() {
                context.iteration(true);
            }
            reactor.stop().unwrap();
            while reactor.is_interleaved() {
                context.iteration(true);
            }
        }
    })
}

fn main() {
    let samples = samples_from_args();
    let context = glib::MainContext::default();
    let _owner = context.acquire().expect("the default main context");
    println!("{samples} samples each: byte written → fd callback on the GLib thread\n");
    println!("| driving | backend | median µs | p99 µs | added at the median vs run() µs |");
    println!("|---|---|---:|---:|---:|");
    // The backend GLib can watch (epoll, kqueue).
    let watched = torque_glib::reactor().expect("a backend with a watch fd").backend().kind;
    let baseline = measure_mode(watched, Mode::Run, samples);
    let base_median = percentile(&baseline, 0.5);
    println!("| run() | {watched} | {base_median:.1} | {:.1} | — |", percentile(&baseline, 0.99));
    let glib = measure_mode(watched, Mode::GlibDriven, samples);
    let m = percentile(&glib, 0.5);
    println!(
        "| glib-driven (torque-glib) | {watched} | {m:.1} | {:.1} | {:.1} |",
        percentile(&glib, 0.99),
        m - base_median
    );
    for &kind in BackendKind::all() {
        let inter = measure_mode(kind, Mode::InterleaveIdle, samples);
        let m = percentile(&inter, 0.5);
        println!(
            "| interleave + idle_add_once | {kind} | {m:.1} | {:.1} | {:.1} |",
            percentile(&inter, 0.99),
            m - base_median
        );
    }
}
