//! Torque's conformance suite (core, time, fd sets, threads, TCP, UNIX, UDP) on
//! the GLib-driven reactor: the same driven cases as `torque/tests/conformance`,
//! each run with GLib's main loop doing the waiting (`fdset::glib::epoll::…`),
//! on every backend; those without a watch fd assert their "unsupported" error.

#[path = "../../../torque/tests/conformance/netkit.rs"]
mod netkit;
#[path = "../../../torque/tests/conformance/support.rs"]
mod support;

#[path = "../../../torque/tests/conformance/fdset.rs"]
mod fdset;
#[path = "../../../torque/tests/conformance/lifecycle.rs"]
mod lifecycle;
#[path = "../../../torque/tests/conformance/misbehaving.rs"]
mod misbehaving;
#[path = "../../../torque/tests/conformance/tcp.rs"]
mod tcp;
#[path = "../../../torque/tests/conformance/threads.rs"]
mod threads;
#[path = "../../../torque/tests/conformance/timers.rs"]
mod timers;
#[path = "../../../torque/tests/conformance/udp.rs"]
mod udp;
#[path = "../../../torque/tests/conformance/unix.rs"]
mod unix;

mod glib_driver;

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
    support::main(cases, &[glib_driver::GLIB]);
}
