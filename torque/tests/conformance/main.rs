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
