//! A clock that moves only when told to (Twisted's `task.Clock`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::reactor::Clock;

/// A clock that moves only when told to. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use torque::{Reactor, testing::FakeClock};
///
/// let clock = FakeClock::new();
/// let reactor = Reactor::builder().clock(clock.clone()).build()?;
/// let fired = std::rc::Rc::new(std::cell::Cell::new(false));
/// let f = fired.clone();
/// reactor.call_later(Duration::from_secs(3600), move |_| f.set(true));
/// clock.advance(Duration::from_secs(3600));
/// reactor.iterate(Duration::ZERO)?;
/// assert!(fired.get());
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FakeClock {
    now: Rc<Cell<Duration>>,
}

impl FakeClock {
    /// A clock at time zero.
    pub fn new() -> FakeClock {
        FakeClock::default()
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get().saturating_add(by));
    }

    /// Sets the time; it must not go backwards, so an earlier time is ignored.
    pub fn set(&self, to: Duration) {
        if to > self.now.get() {
            self.now.set(to);
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.now.get()
    }
}
