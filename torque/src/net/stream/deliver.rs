//! How a connection's events reach its protocol: one rule for every callback.
//!
//! - **Panics** never escape a protocol callback: the connection closes and
//!   `connection_lost` reports [`DisconnectReason::Panicked`] — even if the
//!   same callback had already closed it another way (`abort_connection`
//!   then a panic is still the panic).
//! - **A busy protocol** (running further up the stack, typically a nested
//!   `iterate` from one of its callbacks) never loses an event. Bytes are left
//!   in the kernel: the reader is parked before it reads, and resumed on a
//!   later pass once the protocol is free. Events the transport makes itself
//!   (end of file, the write side closed, the handshake done) wait in order
//!   in `held`, and nothing is read while they wait.

use crate::sys::fd::OwnedFd;
use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::{Protocol, Transport};
use crate::Reactor;
use crate::backend::Interest;
use crate::net::DisconnectReason;

/// A protocol event that waits for a busy protocol.
pub(crate) enum Held {
    /// The peer's end of file (`read_connection_lost`).
    ReadLost,
    /// Our writing side was shut (`write_connection_lost`).
    WriteLost,
    /// The TLS handshake finished (`handshake_completed`).
    Handshake,
    /// A passed descriptor (`file_descriptor_received`).
    Fd(OwnedFd),
}

/// The per-connection state of delivery.
#[derive(Default)]
pub(crate) struct Delivery {
    /// Events waiting for the protocol, in order.
    held: VecDeque<Held>,
    /// The reader is parked until the protocol is free again.
    parked: bool,
    /// A retry is scheduled.
    retry_scheduled: bool,
    /// A protocol callback panicked: the reason `connection_lost` reports.
    panicked: Option<String>,
}

impl Transport {
    /// Whether an event can go to the protocol now: it is not running further
    /// up the stack and nothing waits ahead of it.
    pub(super) fn protocol_free(&self) -> bool {
        self.conn.protocol.try_borrow_mut().is_ok() && self.conn.delivery.borrow().held.is_empty()
    }

    /// Runs `f` on the protocol; `false` if the protocol is running further up
    /// the stack (or gone). A panic closes the connection with the panic as its
    /// reason.
    pub(super) fn call_protocol(&self, f: impl FnOnce(&mut dyn Protocol, &Transport)) -> bool {
        let Ok(mut slot) = self.conn.protocol.try_borrow_mut() else { return false };
        let Some(protocol) = slot.as_mut() else { return true };
        let result = catch_unwind(AssertUnwindSafe(|| f(protocol.as_mut(), self)));
        drop(slot);
        if let Err(payload) = result {
            self.protocol_panicked(crate::reactor::panic_message(&*payload));
        }
        true
    }

    /// A protocol callback panicked: log it and close, the panic being the
    /// reason whatever else the callback did.
    fn protocol_panicked(&self, message: String) {
        tracing::error!(panic = %message, peer = %self.conn.peer, "a protocol callback panicked; the connection is closed");
        self.conn.delivery.borrow_mut().panicked = Some(message.clone());
        self.close_now(DisconnectReason::Panicked(message));
    }

    /// The reason `connection_lost` reports: a panic wins over `reason`.
    pub(super) fn final_reason(&self, reason: DisconnectReason) -> DisconnectReason {
        match self.conn.delivery.borrow_mut().panicked.take() {
            Some(message) => DisconnectReason::Panicked(message),
            None => reason,
        }
    }

    /// Before `connection_lost`: every event still waiting, in order.
    pub(super) fn deliver_held_before_lost(&self) {
        loop {
            let next = self.conn.delivery.borrow_mut().held.pop_front();
            match next {
                Some(event) => self.call_held(event),
                None => return,
            }
        }
    }

    /// Gives the protocol `event` now, or after what waits ahead of it once
    /// the protocol is free.
    pub(super) fn deliver(&self, event: Held) {
        if self.protocol_free() {
            self.call_held(event);
            return;
        }
        self.conn.delivery.borrow_mut().held.push_back(event);
        self.schedule_retry();
    }

    /// Calls the protocol with `event`; only when it is free.
    fn call_held(&self, event: Held) {
        let called = match event {
            Held::ReadLost => self.call_protocol(|p, t| p.read_connection_lost(t)),
            Held::WriteLost => self.call_protocol(|p, t| p.write_connection_lost(t)),
            Held::Handshake => self.call_protocol(|p, t| p.handshake_completed(t)),
            Held::Fd(fd) => self.call_protocol(move |p, t| p.file_descriptor_received(t, fd)),
        };
        debug_assert!(called, "call_held runs only when the protocol is free");
    }

    /// The protocol is busy: leave the bytes in the kernel. The reader is
    /// parked (not watched, so a nested pass does not spin on it) and resumed
    /// once the protocol is free.
    pub(super) fn wait_for_protocol(&self, reactor: &Reactor) {
        let park = !std::mem::replace(&mut self.conn.delivery.borrow_mut().parked, true);
        if park {
            reactor.unwatch(self.conn.fd, Interest::READ);
        }
        self.schedule_retry();
    }

    /// Retries on a later pass (a timer step, not the end of this pass: a
    /// nested pass runs end-of-pass work while the protocol is still busy).
    fn schedule_retry(&self) {
        if std::mem::replace(&mut self.conn.delivery.borrow_mut().retry_scheduled, true) {
            return;
        }
        let Some(reactor) = self.reactor() else { return };
        let this = self.clone();
        reactor.call_later(Duration::ZERO, move |r| {
            this.conn.delivery.borrow_mut().retry_scheduled = false;
            this.retry_delivery(r);
        });
    }

    /// Delivers what waits, then resumes a parked reader; again later if the
    /// protocol is still busy.
    fn retry_delivery(&self, reactor: &Reactor) {
        loop {
            if self.conn.protocol.try_borrow_mut().is_err() {
                self.schedule_retry();
                return;
            }
            let next = self.conn.delivery.borrow_mut().held.pop_front();
            match next {
                Some(event) => self.call_held(event),
                None => break,
            }
        }
        if self.conn.io.memory().is_some() {
            self.flush_memory();
            return;
        }
        if !std::mem::take(&mut self.conn.delivery.borrow_mut().parked) {
            return;
        }
        let resume = {
            let state = self.conn.state.borrow();
            !(state.disconnected || state.read_shut || state.reader_parked)
        };
        if resume {
            if let Some(handler) = self.handler() {
                if let Err(e) = reactor.watch(self.conn.fd, handler, Interest::READ) {
                    self.close_now(DisconnectReason::Lost(io::Error::other(e.to_string())));
                }
            }
        }
    }
}
