//! The conformance suite: every behaviour test is written once and instantiated for
//! every backend compiled in (`lifecycle::epoll::stop_fires_shutdown_phases`, …).

mod netkit;
mod support;
mod tlskit;

mod defer;
mod fdset;
mod interleave;
mod lifecycle;
mod memory;
mod process;
mod protocols;
mod tcp;
mod threads;
mod timers;
mod tls;
mod triggers;
mod udp;
mod unix;

/// Instantiates each listed test once per backend driven by `run()` /
/// `iterate()` ([`backend_tests!`](crate::backend_tests)) and once per backend interleaved into a
/// channel-driven foreign loop on the test thread (`interleaved::epoll::name`, …)
/// and once per backend embedded in a thread-less loop (`embedded::…`).
/// Tests written for it drive their reactor through `support::{run, step, spin,
/// iterate_until}`, so the same body runs every way. (`torque-glib` includes
/// these modules and defines this macro for its GLib-driven reactor.)
#[macro_export]
macro_rules! driven_tests {
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!($($name),*);
        mod interleaved {
            use super::*;
            $crate::backend_tests!(@with run_interleaved; $($name),*);
        }
        mod embedded {
            use super::*;
            $crate::backend_tests!(@with run_embedded; $($name),*);
        }
    };
}
