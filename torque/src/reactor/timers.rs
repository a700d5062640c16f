//! The timer queue behind `call_later` (Twisted's IReactorTime).
//!
//! A binary heap ordered by `(deadline, sequence)`: equal deadlines run in scheduling
//! order. Each timer is one allocation, an `Rc<TimerEntry<..>>` holding its state and
//! closure, shared by the heap and the user's [`DelayedCall`]. Cancelling only marks
//! the entry; the heap drops stale items when they reach the top, and is compacted
//! when stale items exceed half the live ones (heaps of 1024+ items). `reset` pushes a new item with a new
//! sequence number; the old one becomes stale.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::{Inner, Reactor};
use crate::error::DelayedCallError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerState {
    Pending,
    Running,
    Called,
    Cancelled,
}

/// The type-erased closure of a timer.
pub(crate) trait TimerCall {
    /// Takes the closure out and runs it.
    fn run(&self, reactor: &Reactor);
    /// Takes the closure out and drops it (cancellation releases its captures).
    fn discard(&self);
}

pub(crate) struct TimerClosure<F>(Cell<Option<F>>);

impl<F: FnOnce(&Reactor)> TimerCall for TimerClosure<F> {
    fn run(&self, reactor: &Reactor) {
        if let Some(f) = self.0.take() {
            f(reactor);
        }
    }
    fn discard(&self) {
        drop(self.0.take());
    }
}

pub(crate) struct TimerEntry<C: ?Sized> {
    state: Cell<TimerState>,
    deadline: Cell<Duration>,
    seq: Cell<u64>,
    call: C,
}

type EntryRef = Rc<TimerEntry<dyn TimerCall>>;

/// 32 bytes: the deadline as whole nanoseconds (saturating at ~584 years), so the
/// heap compares two integers and moves little memory per sift.
struct HeapItem {
    deadline: u64,
    seq: u64,
    entry: EntryRef,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl HeapItem {
    fn is_live(&self) -> bool {
        self.entry.state.get() == TimerState::Pending && self.entry.seq.get() == self.seq
    }
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    /// Reversed, so the std max-heap pops the earliest deadline, then the lowest seq.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// Pending timers.
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<HeapItem>,
    next_seq: u64,
}

/// Live timer count, kept outside the queue's `RefCell` so cancel never borrows it.
pub(crate) type LiveCount = Cell<usize>;

impl TimerQueue {
    pub(crate) fn schedule<F: FnOnce(&Reactor) + 'static>(
        &mut self,
        deadline: Duration,
        f: F,
        live: &LiveCount,
    ) -> EntryRef {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry: EntryRef = Rc::new(TimerEntry {
            state: Cell::new(TimerState::Pending),
            deadline: Cell::new(deadline),
            seq: Cell::new(seq),
            call: TimerClosure(Cell::new(Some(f))),
        });
        live.set(live.get() + 1);
        self.push(entry.clone(), live);
        entry
    }

    fn push(&mut self, entry: EntryRef, live: &LiveCount) {
        self.compact_if_stale(live);
        self.heap.push(HeapItem { deadline: nanos(entry.deadline.get()), seq: entry.seq.get(), entry });
    }

    /// Drops stale items in bulk once they exceed half the live ones: one O(n) pass
    /// instead of popping each one at O(log n), and memory stays proportional to the
    /// live timers. Amortised O(1) per cancellation.
    pub(crate) fn compact_if_stale(&mut self, live: &LiveCount) {
        let len = self.heap.len();
        if len >= 1024 && len - live.get().min(len) > live.get() / 2 {
            self.heap.retain(HeapItem::is_live);
        }
    }

    /// Gives `entry` a new deadline and sequence number (reset / delay).
    fn reschedule(&mut self, entry: &EntryRef, deadline: Duration, live: &LiveCount) {
        let seq = self.next_seq;
        self.next_seq += 1;
        entry.deadline.set(deadline);
        entry.seq.set(seq);
        self.push(entry.clone(), live);
    }

    /// The sequence number the next scheduled timer will get. Timers at or past this
    /// mark were scheduled during the current timer step and wait for the next pass.
    pub(crate) fn sequence_mark(&self) -> u64 {
        self.next_seq
    }

    /// The earliest live deadline, dropping stale items off the top.
    pub(crate) fn next_deadline(&mut self) -> Option<Duration> {
        while let Some(top) = self.heap.peek() {
            if top.is_live() {
                return Some(top.entry.deadline.get());
            }
            self.heap.pop();
        }
        None
    }

    /// Pops the next timer due at `now` that was scheduled before `mark`.
    pub(crate) fn pop_due(&mut self, now: Duration, mark: u64) -> Option<EntryRef> {
        self.next_deadline()?;
        let top = self.heap.peek()?;
        if top.deadline <= nanos(now) && top.seq < mark {
            self.heap.pop().map(|item| item.entry)
        } else {
            None
        }
    }

    /// Every pending timer, in the order they will run.
    pub(crate) fn live_entries(&self) -> Vec<EntryRef> {
        let mut live: Vec<&HeapItem> = self.heap.iter().filter(|item| item.is_live()).collect();
        live.sort_by_key(|item| (item.deadline, item.seq));
        live.into_iter().map(|item| item.entry.clone()).collect()
    }
}

impl Reactor {
    /// Runs one due timer entry (the caller has already popped it).
    pub(crate) fn run_timer_entry(&self, entry: &EntryRef) {
        entry.state.set(TimerState::Running);
        self.inner.live_timers.set(self.inner.live_timers.get() - 1);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.call.run(self)));
        entry.state.set(TimerState::Called);
        if let Err(payload) = result {
            tracing::error!(panic = %crate::reactor::panic_message(&*payload), "a delayed call panicked");
        }
    }
}

/// A call scheduled with [`Reactor::call_later`] (Twisted's `IDelayedCall`).
///
/// Holding a `DelayedCall` does not keep the reactor alive.
#[derive(Clone)]
pub struct DelayedCall {
    pub(crate) entry: EntryRef,
    pub(crate) reactor: Weak<Inner>,
}

impl DelayedCall {
    fn check_pending(&self) -> Result<(), DelayedCallError> {
        match self.entry.state.get() {
            TimerState::Pending => Ok(()),
            TimerState::Running | TimerState::Called => Err(DelayedCallError::AlreadyCalled),
            TimerState::Cancelled => Err(DelayedCallError::AlreadyCancelled),
        }
    }

    /// Cancels the call. Errors if it already ran (including from inside the call
    /// itself) or was already cancelled.
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        self.entry.state.set(TimerState::Cancelled);
        if let Some(inner) = self.reactor.upgrade() {
            inner.live_timers.set(inner.live_timers.get() - 1);
        }
        // Outside any reactor borrow: dropping the closure may run user Drop code.
        self.entry.call.discard();
        Ok(())
    }

    /// Reschedules the call to run `delay` from now.
    pub fn reset(&self, delay: Duration) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        let Some(inner) = self.reactor.upgrade() else { return Ok(()) };
        let deadline = inner.clock.now().saturating_add(delay);
        inner.timers.borrow_mut().reschedule(&self.entry, deadline, &inner.live_timers);
        inner.wake_interleaved_wait();
        Ok(())
    }

    /// Postpones the call by `extra` beyond its current time.
    pub fn delay(&self, extra: Duration) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        let Some(inner) = self.reactor.upgrade() else { return Ok(()) };
        let deadline = self.entry.deadline.get().saturating_add(extra);
        inner.timers.borrow_mut().reschedule(&self.entry, deadline, &inner.live_timers);
        inner.wake_interleaved_wait();
        Ok(())
    }

    /// Whether the call is still pending: not run, not running, not cancelled.
    pub fn active(&self) -> bool {
        self.entry.state.get() == TimerState::Pending
    }

    /// When the call is due, on the reactor's clock (see [`Reactor::now`]).
    pub fn time(&self) -> Duration {
        self.entry.deadline.get()
    }

    /// Whether two handles name the same call.
    pub fn same_call(&self, other: &DelayedCall) -> bool {
        Rc::ptr_eq(&self.entry, &other.entry)
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("time", &self.entry.deadline.get())
            .field("state", &self.entry.state.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::Reactor;
    use crate::testing::FakeClock;

    #[test]
    fn cancelled_timers_are_compacted_out_of_the_heap() {
        let clock = FakeClock::new();
        let r = Reactor::builder().clock(clock.clone()).handle_signals(false).build().unwrap();
        let calls: Vec<_> = (0..10_000).map(|i| r.call_later(Duration::from_secs(i + 1), |_| {})).collect();
        for call in &calls[..9_000] {
            call.cancel().unwrap();
        }
        // The next schedule compacts: 9,000 stale items are far over half the live.
        r.call_later(Duration::from_secs(1), |_| {});
        let heap_len = r.inner.timers.borrow().heap.len();
        assert_eq!(heap_len, 1_001, "only live timers remain");
        assert_eq!(r.inner.live_timers.get(), 1_001);
        assert_eq!(r.delayed_calls().len(), 1_001);
    }

    #[test]
    fn the_live_count_follows_runs_cancels_and_resets() {
        let clock = FakeClock::new();
        let r = Reactor::builder().clock(clock.clone()).handle_signals(false).build().unwrap();
        let a = r.call_later(Duration::from_secs(1), |_| {});
        let b = r.call_later(Duration::from_secs(2), |_| {});
        a.reset(Duration::from_secs(3)).unwrap();
        assert_eq!(r.inner.live_timers.get(), 2);
        b.cancel().unwrap();
        assert_eq!(r.inner.live_timers.get(), 1);
        clock.advance(Duration::from_secs(3));
        r.iterate(Duration::ZERO).unwrap();
        assert_eq!(r.inner.live_timers.get(), 0);
        assert!(r.timeout().is_none());
    }
}
