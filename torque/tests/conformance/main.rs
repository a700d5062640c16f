//! The conformance suite: every behaviour test is written once, declares what it
//! needs of a backend, and is instantiated for every backend compiled in
//! (`lifecycle::epoll::stop_fires_shutdown_phases`, …); driven cases also run
//! interleaved (`lifecycle::interleaved::epoll::…`) and embedded
//! (`lifecycle::embedded::epoll::…`). A backend that lacks a need asserts its
//! "unsupported" error instead. `torque-glib` runs the driven cases under GLib.

// Some imports serve only the cases whose code is Unix-only (`#[cfg(unix)]`).
#![cfg_attr(windows, allow(unused_imports))]

mod netkit;
mod support;
mod tlskit;

mod defer;
mod fdset;
mod interleave;
mod lifecycle;
mod memory;
mod misbehaving;
// Child processes with Unix programs (PTYs, signals, fd maps): Unix-only.
#[cfg(unix)]
mod process;
mod protocols;
// Child processes with this binary as the child: every platform.
mod spawn;
mod tcp;
mod threads;
mod timers;
mod tls;
mod triggers;
mod udp;
// UNIX sockets: Unix-only test code, as the API so far.
#[cfg(unix)]
mod unix;
// Win32 handles (`add_event`): Windows' own interface.
#[cfg(windows)]
mod win32;

fn main() {
    if let Ok(mode) = std::env::var("TORQUE_TEST_CHILD") {
        spawn::child_main(&mode);
    }
    let cases = [
        defer::cases(),
        fdset::cases(),
        interleave::cases(),
        lifecycle::cases(),
        memory::cases(),
        misbehaving::cases(),
        #[cfg(unix)]
        process::cases(),
        protocols::cases(),
        spawn::cases(),
        tcp::cases(),
        threads::cases(),
        timers::cases(),
        tls::cases(),
        triggers::cases(),
        udp::cases(),
        #[cfg(unix)]
        unix::cases(),
        #[cfg(windows)]
        win32::cases(),
    ]
    .concat();
    support::main(cases, &[support::PLAIN, support::INTERLEAVED, support::EMBEDDED]);
}
