//! Scheduling helpers (Twisted's `twisted.internet.task`): `LoopingCall` and the
//! `Cooperator`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::deferred::CallbackPanicked;
use super::{Deferred, Failure, Resolver};
use crate::{DelayedCall, Reactor, WeakReactor};

/// What a looping function may return: `()`, `Result<(), Failure>`, or a
/// `Deferred<()>` the loop waits for before scheduling the next call.
pub trait LoopResult {
    /// Converts into a Deferred.
    fn into_deferred(self) -> Deferred<()>;
}

impl LoopResult for () {
    fn into_deferred(self) -> Deferred<()> {
        Deferred::succeed(())
    }
}

impl LoopResult for Result<(), Failure> {
    fn into_deferred(self) -> Deferred<()> {
        match self {
            Ok(()) => Deferred::succeed(()),
            Err(f) => Deferred::fail(f),
        }
    }
}

impl LoopResult for Deferred<()> {
    fn into_deferred(self) -> Deferred<()> {
        self
    }
}

/// Errors from starting a [`LoopingCall`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoopingCallError {
    /// `start` on a loop that is already running.
    #[error("the looping call is already running")]
    AlreadyRunning,
}

type LoopFn = Box<dyn FnMut(&Reactor, u64) -> Deferred<()>>;

struct LoopState {
    running: bool,
    interval: Duration,
    start: Duration,
    /// Index of the interval the last call ran in.
    last_index: Option<u64>,
    call: Option<DelayedCall>,
    resolver: Option<Resolver<()>>,
    reactor: Option<WeakReactor>,
    /// A call's Deferred is outstanding.
    busy: bool,
    /// Bumped by every `start`, so timers and completions of an earlier run of
    /// the loop are recognised and ignored.
    epoch: u64,
}

struct LoopInner {
    f: RefCell<LoopFn>,
    state: RefCell<LoopState>,
}

/// Calls a function every `interval` on the reactor's clock (Twisted's
/// `LoopingCall`). Calls stay on the interval grid: if the loop falls behind,
/// missed intervals are skipped, and [`with_count`](LoopingCall::with_count)
/// reports how many intervals each call covers.
///
/// ```
/// use std::time::Duration;
/// use torque::defer::LoopingCall;
/// use torque::testing::FakeClock;
///
/// let clock = FakeClock::new();
/// let reactor = torque::Reactor::builder().clock(clock.clone()).build()?;
/// let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
/// let t = ticks.clone();
/// let looping = LoopingCall::new(move |_| t.set(t.get() + 1));
/// let _stopped = looping.start(&reactor, Duration::from_secs(1), true).unwrap();
/// for _ in 0..3 {
///     clock.advance(Duration::from_secs(1));
///     reactor.iterate(Duration::ZERO)?;
/// }
/// assert_eq!(ticks.get(), 4); // now, then after 1, 2 and 3 seconds
/// looping.stop();
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<LoopInner>,
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("LoopingCall")
            .field("running", &state.running)
            .field("interval", &state.interval)
            .finish()
    }
}

impl LoopingCall {
    /// A loop calling `f`.
    pub fn new<R: LoopResult>(mut f: impl FnMut(&Reactor) -> R + 'static) -> LoopingCall {
        LoopingCall::build(Box::new(move |r, _| f(r).into_deferred()))
    }

    /// A loop calling `f` with the number of intervals since its previous call
    /// (1 when on time; more when the loop fell behind and skipped calls).
    pub fn with_count<R: LoopResult>(mut f: impl FnMut(&Reactor, u64) -> R + 'static) -> LoopingCall {
        LoopingCall::build(Box::new(move |r, n| f(r, n).into_deferred()))
    }

    fn build(f: LoopFn) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(LoopInner {
                f: RefCell::new(f),
                state: RefCell::new(LoopState {
                    running: false,
                    interval: Duration::ZERO,
                    start: Duration::ZERO,
                    last_index: None,
                    call: None,
                    resolver: None,
                    reactor: None,
                    busy: false,
                    epoch: 0,
                }),
            }),
        }
    }

    /// Starts calling every `interval` (zero: every pass), first at once if `now`.
    /// The Deferred fires when the loop is stopped, or fails with the function's
    /// failure (which stops the loop).
    pub fn start(
        &self,
        reactor: &Reactor,
        interval: Duration,
        now: bool,
    ) -> Result<Deferred<()>, LoopingCallError> {
        let (deferred, resolver) = Deferred::pending();
        let (epoch, previous) = {
            let mut state = self.inner.state.borrow_mut();
            if state.running {
                return Err(LoopingCallError::AlreadyRunning);
            }
            state.running = true;
            state.epoch += 1;
            state.interval = interval;
            state.start = reactor.now();
            // Started without a call now: the start itself is interval 0, so a late
            // first call counts every interval since.
            state.last_index = if now { None } else { Some(0) };
            state.reactor = Some(reactor.downgrade());
            state.busy = false;
            // A stopped run whose last call was still busy hands over here.
            (state.epoch, state.resolver.replace(resolver))
        };
        if let Some(previous) = previous {
            let _ = previous.callback(());
        }
        if now && self.inner.f.try_borrow_mut().is_ok() {
            self.tick(reactor, epoch);
        } else if now {
            // Restarted from inside the function itself: the first call waits a pass.
            let this = self.clone();
            let call = reactor.call_later(Duration::ZERO, move |r| this.tick(r, epoch));
            self.replace_call(Some(call));
        } else {
            self.schedule(reactor, epoch);
        }
        Ok(deferred)
    }

    /// Installs the next timer, cancelling any other (only one may be pending).
    fn replace_call(&self, call: Option<DelayedCall>) {
        let old = std::mem::replace(&mut self.inner.state.borrow_mut().call, call);
        if let Some(old) = old {
            let _ = old.cancel();
        }
    }

    /// Stops the loop; its Deferred fires (once an outstanding call's Deferred
    /// has finished, if one is running).
    pub fn stop(&self) {
        let (call, resolver) = {
            let mut state = self.inner.state.borrow_mut();
            if !state.running {
                return;
            }
            state.running = false;
            let resolver = if state.busy { None } else { state.resolver.take() };
            (state.call.take(), resolver)
        };
        if let Some(call) = call {
            let _ = call.cancel();
        }
        if let Some(resolver) = resolver {
            let _ = resolver.callback(());
        }
    }

    /// Whether the loop is running.
    pub fn running(&self) -> bool {
        self.inner.state.borrow().running
    }

    fn interval_index(state: &LoopState, now: Duration) -> u64 {
        if state.interval.is_zero() {
            return 0;
        }
        ((now.saturating_sub(state.start)).as_nanos() / state.interval.as_nanos()) as u64
    }

    fn schedule(&self, reactor: &Reactor, epoch: u64) {
        let delay = {
            let state = self.inner.state.borrow();
            if !state.running || state.epoch != epoch {
                return;
            }
            if state.interval.is_zero() {
                Duration::ZERO
            } else {
                // The next point on the interval grid strictly after now, in u128
                // nanoseconds so a long-running loop cannot overflow.
                let now = reactor.now();
                let interval = state.interval.as_nanos();
                let next_index = u128::from(Self::interval_index(&state, now)) + 1;
                let offset = (next_index * interval).min(u128::from(u64::MAX));
                (state.start + Duration::from_nanos(offset as u64)).saturating_sub(now)
            }
        };
        let this = self.clone();
        let call = reactor.call_later(delay, move |r| this.tick(r, epoch));
        self.replace_call(Some(call));
    }

    fn tick(&self, reactor: &Reactor, epoch: u64) {
        let count = {
            let mut state = self.inner.state.borrow_mut();
            if state.epoch != epoch {
                return;
            }
            state.call = None;
            if !state.running {
                return;
            }
            let index = Self::interval_index(&state, reactor.now());
            let count = match state.last_index {
                Some(last) => index.saturating_sub(last).max(1),
                None => 1,
            };
            state.last_index = Some(index);
            state.busy = true;
            count
        };
        let outcome = match self.inner.f.try_borrow_mut() {
            Ok(mut f) => catch_unwind(AssertUnwindSafe(|| f(reactor, count))),
            Err(_) => Ok(Deferred::fail(Failure::msg("the looping function re-entered itself"))),
        };
        let deferred = outcome.unwrap_or_else(|payload| {
            Deferred::fail(CallbackPanicked(crate::reactor::panic_message(&*payload)))
        });
        let this = self.clone();
        let _tail: Deferred<()> = deferred.add_both(move |result| {
            this.call_finished(result, epoch);
            Ok::<(), Failure>(())
        });
    }

    fn call_finished(&self, result: Result<(), Failure>, epoch: u64) {
        let (reactor, resolver, failure) = {
            let mut state = self.inner.state.borrow_mut();
            if state.epoch != epoch {
                // A later start() took over; its resolver is not ours to fire.
                if let Err(failure) = result {
                    tracing::error!(%failure, "a looping call from an earlier run failed");
                }
                return;
            }
            state.busy = false;
            let reactor = state.reactor.as_ref().and_then(WeakReactor::upgrade);
            match result {
                Err(failure) => {
                    state.running = false;
                    (reactor, state.resolver.take(), Some(failure))
                }
                Ok(()) if !state.running => (reactor, state.resolver.take(), None),
                Ok(()) => (reactor, None, None),
            }
        };
        match (resolver, failure) {
            (Some(resolver), Some(failure)) => {
                let _ = resolver.errback(failure);
            }
            (Some(resolver), None) => {
                let _ = resolver.callback(());
            }
            (None, _) => {
                if let Some(reactor) = reactor {
                    self.schedule(&reactor, epoch);
                }
            }
        }
    }
}

struct CoopTask {
    steps: Box<dyn Iterator<Item = ()>>,
    resolver: Resolver<()>,
    cancelled: Rc<Cell<bool>>,
}

struct CoopInner {
    reactor: WeakReactor,
    tasks: RefCell<VecDeque<CoopTask>>,
    scheduled: Cell<bool>,
    slice: Duration,
}

/// Runs many long iterators a few steps at a time, round-robin, within a time
/// slice per reactor pass, so none of them starves I/O (Twisted's `Cooperator`).
#[derive(Clone)]
pub struct Cooperator {
    inner: Rc<CoopInner>,
}

impl fmt::Debug for Cooperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cooperator").field("tasks", &self.inner.tasks.borrow().len()).finish()
    }
}

impl Cooperator {
    /// A cooperator on `reactor` with Twisted's 10 ms slice per pass.
    pub fn new(reactor: &Reactor) -> Cooperator {
        Cooperator::with_slice(reactor, Duration::from_millis(10))
    }

    /// A cooperator that works at most `slice` per pass.
    pub fn with_slice(reactor: &Reactor, slice: Duration) -> Cooperator {
        Cooperator {
            inner: Rc::new(CoopInner {
                reactor: reactor.downgrade(),
                tasks: RefCell::new(VecDeque::new()),
                scheduled: Cell::new(false),
                slice,
            }),
        }
    }

    /// Runs `steps` to the end, a step at a time; the Deferred fires when it is
    /// exhausted (or fails if a step panics). Cancelling it drops the iterator.
    pub fn cooperate(&self, steps: impl Iterator<Item = ()> + 'static) -> Deferred<()> {
        let cancelled = Rc::new(Cell::new(false));
        let flag = Rc::clone(&cancelled);
        let (deferred, resolver) = Deferred::with_canceller(move |_| flag.set(true));
        self.inner.tasks.borrow_mut().push_back(CoopTask { steps: Box::new(steps), resolver, cancelled });
        self.schedule();
        deferred
    }

    fn schedule(&self) {
        if self.inner.scheduled.replace(true) {
            return;
        }
        let Some(reactor) = self.inner.reactor.upgrade() else { return };
        let this = self.clone();
        // A zero-delay call from a timer waits a pass: I/O runs between slices.
        reactor.call_later(Duration::ZERO, move |_| this.tick());
    }

    fn tick(&self) {
        self.inner.scheduled.set(false);
        let deadline = Instant::now() + self.inner.slice;
        loop {
            let task = self.inner.tasks.borrow_mut().pop_front();
            let Some(mut task) = task else { return };
            if task.cancelled.get() {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| task.steps.next())) {
                Ok(Some(())) => self.inner.tasks.borrow_mut().push_back(task),
                Ok(None) => {
                    let _ = task.resolver.callback(());
                }
                Err(payload) => {
                    let failure = Failure::new(CallbackPanicked(crate::reactor::panic_message(&*payload)));
                    let _ = task.resolver.errback(failure);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if !self.inner.tasks.borrow().is_empty() {
            self.schedule();
        }
    }
}

/// Runs `steps` cooperatively on `reactor` with a cooperator of its own (Twisted's
/// `coiterate`). To share one time slice among many iterators, use one
/// [`Cooperator`] for all of them.
pub fn coiterate(reactor: &Reactor, steps: impl Iterator<Item = ()> + 'static) -> Deferred<()> {
    Cooperator::new(reactor).cooperate(steps)
}
