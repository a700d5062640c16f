//! The reactor's source of time, injectable so tests can drive timers without sleeping.

use std::time::{Duration, Instant};

/// A monotonic source of time for a reactor.
///
/// Times are durations since an origin the clock chooses (for [`MonotonicClock`], its
/// creation). The reactor reads the clock once per timer step and when scheduling,
/// so a clock need not be fast beyond reason, but it must never go backwards.
pub trait Clock {
    /// The current time, as a duration since the clock's origin.
    fn now(&self) -> Duration;
}

/// The real clock: [`Instant`] measured from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
