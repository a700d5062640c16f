//! Torque's conformance suite (core, time, fd sets, threads, TCP, UNIX, UDP) on
//! the GLib-driven reactor: the same test bodies as `torque/tests/conformance`,
//! each run with GLib's main loop doing the waiting (`glib::…::name`).

#[path = "../../../torque/tests/conformance/netkit.rs"]
mod netkit;
#[path = "../../../torque/tests/conformance/support.rs"]
mod support;

#[path = "../../../torque/tests/conformance/fdset.rs"]
mod fdset;
#[path = "../../../torque/tests/conformance/lifecycle.rs"]
mod lifecycle;
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

/// Instantiates each listed test once, on a reactor driven by GLib
/// (`lifecycle::glib::stop_fires_shutdown_phases`, …). The case's backend is
/// epoll, the one GLib can watch.
#[macro_export]
macro_rules! driven_tests {
    ($($name:ident),* $(,)?) => {
        mod glib {
            $( #[test] fn $name() { $crate::glib_driver::run_case(super::$name) } )*
        }
    };
}
