//! Deferreds on the reactor: `spawn`, `sleep`, `defer_later`, `defer_to_thread`
//! and timeouts.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::deferred::CallbackPanicked;
use super::{CancelledError, Deferred, Failure, TimeoutError};
use crate::Reactor;

/// Polls the inner (pinned in place) future, turning a panic into `Err(payload)`.
struct CatchPanic<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchPanic<'_, F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

impl Reactor {
    /// Runs `future` on the reactor thread (no `Send` needed) and returns a
    /// Deferred of its output. Cancelling the Deferred drops the future (its
    /// destructors run) and fails the Deferred with `CancelledError`; a panic
    /// fails it with `CallbackPanicked`. Dropping the Deferred leaves the task
    /// running, as with a detached task.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = torque::Reactor::new()?;
    /// let answer = reactor.spawn({
    ///     let r = reactor.clone();
    ///     async move {
    ///         r.sleep(Duration::from_millis(1)).await.unwrap();
    ///         40 + 2
    ///     }
    /// });
    /// let r = reactor.clone();
    /// let _done = answer.map(move |n| {
    ///     assert_eq!(n, 42);
    ///     r.stop().unwrap();
    /// });
    /// reactor.run()?;
    /// # Ok::<(), torque::ReactorError>(())
    /// ```
    pub fn spawn<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Deferred<T> {
        let task: Rc<Cell<Option<crate::reactor::TaskId>>> = Rc::default();
        let (weak, t) = (self.downgrade(), Rc::clone(&task));
        let (deferred, resolver) = Deferred::with_canceller(move |_| {
            if let (Some(r), Some(id)) = (weak.upgrade(), t.get()) {
                r.cancel_task(id);
            }
        });
        let id = self.spawn_task(async move {
            let future = std::pin::pin!(future);
            let outcome = CatchPanic(future).await;
            let _ =
                resolver.resolve(outcome.map_err(|payload| {
                    Failure::new(CallbackPanicked(crate::reactor::panic_message(&*payload)))
                }));
        });
        task.set(Some(id));
        deferred
    }

    /// A Deferred that fires with `()` after `delay` on the reactor's clock;
    /// cancelling it cancels the timer (Twisted's `deferLater` with no function).
    pub fn sleep(&self, delay: Duration) -> Deferred<()> {
        self.defer_later(delay, |_| ())
    }

    /// Calls `f` after `delay` and fires with its result (Twisted's `deferLater`).
    /// Cancelling the Deferred cancels the call.
    pub fn defer_later<T: 'static>(
        &self,
        delay: Duration,
        f: impl FnOnce(&Reactor) -> T + 'static,
    ) -> Deferred<T> {
        let call: Rc<Cell<Option<crate::DelayedCall>>> = Rc::default();
        let c = Rc::clone(&call);
        let (deferred, resolver) = Deferred::with_canceller(move |_| {
            if let Some(call) = c.take() {
                let _ = call.cancel();
            }
        });
        let delayed = self.call_later(delay, move |r| {
            // A panic fails the Deferred instead of leaving it pending forever.
            let outcome = catch_unwind(AssertUnwindSafe(|| f(r)))
                .map_err(|payload| Failure::new(CallbackPanicked(crate::reactor::panic_message(&*payload))));
            let _ = resolver.resolve(outcome);
        });
        call.set(Some(delayed));
        deferred
    }

    /// Runs the blocking `work` on the thread pool and fires with its result on the
    /// reactor thread (Twisted's `deferToThread`). A panic fails the Deferred.
    pub fn defer_to_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T> {
        let (deferred, resolver) = Deferred::pending();
        self.run_in_thread(work, move |_, result| {
            let _ = resolver.resolve(result.map_err(Failure::new));
        });
        deferred
    }
}

impl<T: 'static> Deferred<T> {
    /// Cancels this Deferred if it has not fired within `timeout` on `reactor`'s
    /// clock; the cancellation then reads as `TimeoutError` (Twisted's
    /// `addTimeout`).
    pub fn add_timeout(self, reactor: &Reactor, timeout: Duration) -> Deferred<T> {
        let timed_out = Rc::new(Cell::new(false));
        let (flag, chain) = (Rc::clone(&timed_out), Rc::clone(&self.chain));
        let call = reactor.call_later(timeout, move |_| {
            flag.set(true);
            chain.cancel_chain();
        });
        self.add_both(move |result| {
            let _ = call.cancel();
            match result {
                Err(failure) if timed_out.get() && failure.is::<CancelledError>() => {
                    Err(Failure::new(TimeoutError))
                }
                other => other,
            }
        })
    }
}

impl<T: 'static> crate::IntoTriggerOutcome for Deferred<T> {
    fn into_trigger_outcome(self) -> crate::TriggerOutcome {
        crate::TriggerOutcome::Pending(crate::PendingTrigger(Box::new(move |done| {
            let _tail: Deferred<()> = self.add_both(move |result| {
                done(result.map(drop).map_err(|f| f.to_string()));
                Ok::<(), Failure>(())
            });
        })))
    }
}
