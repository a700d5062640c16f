//! Torque's conformance suite (core, time, fd sets, threads, TCP, UNIX, UDP) on
//! the CFRunLoop-driven reactor: the same driven cases as
//! `torque/tests/conformance`, each run with the run loop doing the waiting
//! (`fdset::cf::kqueue::…`), on every backend; those without a watch fd assert
//! their "unsupported" error. macOS only (compile-checked in CI); elsewhere
//! this binary runs nothing.

#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/netkit.rs"]
mod netkit;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/support.rs"]
mod support;

#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/fdset.rs"]
mod fdset;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/lifecycle.rs"]
mod lifecycle;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/misbehaving.rs"]
mod misbehaving;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/tcp.rs"]
mod tcp;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/threads.rs"]
mod threads;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/timers.rs"]
mod timers;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/udp.rs"]
mod udp;
#[cfg(target_os = "macos")]
#[path = "../../../torque/tests/conformance/unix.rs"]
mod unix;

#[cfg(target_os = "macos")]
mod cf_driver;

#[cfg(target_os = "macos")]
fn main() {
    let cases = [
        fdset::cases(),
        lifecycle::cases(),
        misbehaving::cases(),
        tcp::cases(),
        threads::cases(),
        timers::cases(),
        udp::cases(),
        unix::cases(),
    ]
    .concat();
    support::main(cases, &[cf_driver::CF]);
}

#[cfg(not(target_os = "macos"))]
fn main() {}
