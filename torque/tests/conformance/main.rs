//! The conformance suite: every behaviour test is written once, declares what it
//! needs of a backend, and is instantiated for every backend compiled in
//! (`lifecycle::epoll::stop_fires_shutdown_phases`, …); driven cases also run
//! interleaved (`lifecycle::interleaved::epoll::…`) and embedded
//! (`lifecycle::embedded::epoll::…`). A backend that lacks a need asserts its
//! "unsupported" error instead. `torque-glib` runs the driven cases under GLib.

mod netkit;
mod support;
mod tlskit;

mod defer;
mod fdset;
mod interleave;
mod lifecycle;
mod memory;
mod misbehaving;
mod process;
mod protocols;
mod tcp;
mod threads;
mod timers;
mod tls;
mod triggers;
mod udp;
mod unix;

fn main() {
    let cases = [
        defer::cases(),
        fdset::cases(),
        interleave::cases(),
        lifecycle::cases(),
        memory::cases(),
        misbehaving::cases(),
        process::cases(),
        protocols::cases(),
        tcp::cases(),
        threads::cases(),
        timers::cases(),
        tls::cases(),
        triggers::cases(),
        udp::cases(),
        unix::cases(),
    ]
    .concat();
    support::main(cases, &[support::PLAIN, support::INTERLEAVED, support::EMBEDDED]);
}
