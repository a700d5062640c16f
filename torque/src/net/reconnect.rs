//! A client factory that reconnects with exponential back-off (Twisted's
//! `ReconnectingClientFactory`).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Address, ClientFactory, Connector, DisconnectReason, Factory, NetError, Protocol};
use crate::DelayedCall;

/// Wraps a protocol factory; when a connection fails or is lost, connects again
/// after a delay that grows by `factor` per attempt up to `max_delay`, randomised
/// by `jitter` so many clients do not retry in lockstep. The delay resets when a
/// connection is made.
pub struct ReconnectingClientFactory<F> {
    inner: F,
    /// The first retry delay.
    pub initial_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// How much each retry multiplies the delay.
    pub factor: f64,
    /// Random spread as a fraction of the delay (0.1: ±10 %).
    pub jitter: f64,
    /// Give up after this many consecutive retries (`None`: never).
    pub max_retries: Option<u32>,
    delay: Duration,
    retries: u32,
    stopped: bool,
    pending: Option<DelayedCall>,
    rng: Cell<u64>,
}

impl<F> std::fmt::Debug for ReconnectingClientFactory<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingClientFactory")
            .field("retries", &self.retries)
            .field("delay", &self.delay)
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl<F: Factory> ReconnectingClientFactory<F> {
    /// Twisted's defaults: 1 s initial, ×2.718 per retry, ±11.9 % jitter, 1 hour cap.
    pub fn new(inner: F) -> ReconnectingClientFactory<F> {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        ReconnectingClientFactory {
            inner,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            factor: std::f64::consts::E,
            jitter: 0.119_626_565_582,
            max_retries: None,
            delay: Duration::from_secs(1),
            retries: 0,
            stopped: false,
            pending: None,
            rng: Cell::new(seed),
        }
    }

    /// The wrapped factory.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// How many retries have been scheduled since the last connection.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The delay the next retry will wait (before jitter).
    pub fn current_delay(&self) -> Duration {
        self.delay
    }

    /// Stops reconnecting and cancels a scheduled retry.
    pub fn stop_trying(&mut self) {
        self.stopped = true;
        if let Some(call) = self.pending.take() {
            let _ = call.cancel();
        }
    }

    /// Resets the back-off (done automatically when a connection is made).
    pub fn reset_delay(&mut self) {
        self.delay = self.initial_delay;
        self.retries = 0;
    }

    fn random_unit(&self) -> f64 {
        // xorshift64*: plenty for spreading retries; not for anything secret.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn retry(&mut self, connector: &Connector) {
        if self.stopped {
            return;
        }
        if self.max_retries.is_some_and(|max| self.retries >= max) {
            tracing::info!(destination = %connector.destination(), retries = self.retries, "giving up reconnecting");
            return;
        }
        let Some(reactor) = connector.reactor() else { return };
        let base = if self.retries == 0 { self.initial_delay } else { self.delay };
        let mut next = base.as_secs_f64();
        if self.retries > 0 {
            next = (next * self.factor).min(self.max_delay.as_secs_f64());
        }
        self.delay = Duration::from_secs_f64(next.min(self.max_delay.as_secs_f64()));
        let spread = self.delay.as_secs_f64() * self.jitter * (2.0 * self.random_unit() - 1.0);
        let wait = Duration::from_secs_f64((self.delay.as_secs_f64() + spread).max(0.0));
        self.retries += 1;
        tracing::debug!(destination = %connector.destination(), ?wait, "reconnecting later");
        let again = connector.clone();
        self.pending = Some(reactor.call_later(wait, move |_| again.connect()));
    }
}

impl<F: Factory> Factory for ReconnectingClientFactory<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        self.reset_delay();
        self.inner.build_protocol(peer)
    }
    fn start_factory(&mut self) {
        self.inner.start_factory();
    }
    fn stop_factory(&mut self) {
        self.inner.stop_factory();
    }
}

impl<F: Factory> ClientFactory for ReconnectingClientFactory<F> {
    fn client_connection_failed(&mut self, connector: &Connector, reason: NetError) {
        tracing::debug!(destination = %connector.destination(), %reason, "connection failed");
        self.retry(connector);
    }
    fn client_connection_lost(&mut self, connector: &Connector, reason: &DisconnectReason) {
        tracing::debug!(destination = %connector.destination(), %reason, "connection lost");
        self.retry(connector);
    }
}
