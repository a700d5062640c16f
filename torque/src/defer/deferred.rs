//! `Deferred<T>`: a result that arrives later, with a chain of callbacks
//! (Twisted's `Deferred`), which is also a `Future`.
//!
//! A Deferred is a chain of steps over a type-erased value. The typed handles
//! ([`Deferred<T>`] for the chain's current tail, [`Resolver<T>`] for its head) keep
//! the types straight: each `add_callback` consumes the tail and returns a new one
//! typed for what the callback produces. Steps run in a loop, not by recursion;
//! a chain waiting on another Deferred is resumed through a depth-limited
//! trampoline, so neither long chains nor long chains of chains overflow the stack.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::failure::Failure;

/// A value in the chain: an `Option<T>` behind `dyn Any`, so a step that maps a
/// `T` to another `T` can put its result back in the same box (no allocation).
type Value = Box<dyn Any>;

fn boxed<T: 'static>(value: T) -> Value {
    Box::new(Some(value))
}
type Outcome = Result<Value, Failure>;

/// What one step of the chain produced.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub enum StepResult {
    /// A value or failure for the next step.
    Done(Outcome),
    /// Wait for another chain; its result continues this one.
    Wait(Rc<Chain>),
}

type Step = Box<dyn FnOnce(Outcome) -> StepResult>;

/// Errors from firing a Deferred.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeferredError {
    /// The Deferred was already fired (Twisted's `AlreadyCalledError`).
    #[error("the deferred has already been called")]
    AlreadyCalled,
}

/// A panic inside a callback, turned into a failure for the rest of the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a callback panicked: {0}")]
pub struct CallbackPanicked(pub String);

#[derive(Default)]
struct State {
    result: Option<Outcome>,
    fired: bool,
    /// Cancelled before firing with no canceller: the one late firing the
    /// cancelled producer will still make is ignored, as in Twisted (a second
    /// is `AlreadyCalled`).
    suppress_late_firing: bool,
    steps: VecDeque<Step>,
    running: bool,
    waiting_on: Option<Rc<Chain>>,
    canceller: Option<Box<dyn FnOnce()>>,
    waker: Option<Waker>,
}

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Chain {
    state: RefCell<State>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        if let Some(Err(failure)) = state.result.take() {
            tracing::error!(%failure, "Unhandled error in Deferred");
        }
    }
}

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static PENDING: RefCell<VecDeque<Rc<Chain>>> = const { RefCell::new(VecDeque::new()) };
}

/// How deep chains may resume each other by direct calls before the rest is
/// queued and run by the outermost call.
const MAX_DEPTH: u32 = 32;

/// Restores the resumption depth even if a step unwinds.
struct DepthGuard(u32);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(self.0));
    }
}

/// Resumes a chain that was waiting on another: directly while shallow, queued
/// for the outermost call beyond `MAX_DEPTH`, so a long chain of chains cannot
/// overflow the stack.
///
/// The thread-locals are reached with `try_with`: a reactor dropped while its
/// thread's locals are being destroyed still fires what its close fires
/// (directly, without the queue).
fn resume_later_if_deep(chain: &Rc<Chain>) {
    let depth = DEPTH.try_with(Cell::get).unwrap_or(0);
    if depth >= MAX_DEPTH && PENDING.try_with(|p| p.borrow_mut().push_back(Rc::clone(chain))).is_ok() {
        return;
    }
    run_now(chain);
}

/// Runs a chain now (firing, adding a step): callbacks added after firing run at
/// once, whatever the depth. The outermost call drains deferred resumptions.
fn run_now(chain: &Rc<Chain>) {
    let depth = DEPTH.try_with(Cell::get).unwrap_or(0);
    let _restore = DepthGuard(depth);
    let _ = DEPTH.try_with(|d| d.set(depth + 1));
    chain.run();
    if depth == 0 {
        while let Some(next) = PENDING.try_with(|p| p.borrow_mut().pop_front()).ok().flatten() {
            next.run();
        }
    }
}

fn panic_failure(payload: Box<dyn Any + Send>) -> Failure {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    Failure::new(CallbackPanicked(message))
}

impl Chain {
    fn new() -> Rc<Chain> {
        Rc::new(Chain { state: RefCell::new(State::default()) })
    }

    fn fired(outcome: Outcome) -> Rc<Chain> {
        let chain = Chain::new();
        {
            let mut state = chain.state.borrow_mut();
            state.fired = true;
            state.result = Some(outcome);
        }
        chain
    }

    /// Runs steps while there is a result and nothing to wait for.
    fn run(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            if state.running {
                return; // the loop further up the stack picks new steps up
            }
            state.running = true;
        }
        loop {
            let next = {
                let mut state = self.state.borrow_mut();
                if state.waiting_on.is_some() || state.result.is_none() {
                    None
                } else {
                    match state.steps.pop_front() {
                        Some(step) => Some((step, state.result.take().expect("checked above"))),
                        None => None,
                    }
                }
            };
            let Some((step, outcome)) = next else { break };
            let produced = catch_unwind(AssertUnwindSafe(|| step(outcome)))
                .unwrap_or_else(|payload| StepResult::Done(Err(panic_failure(payload))));
            match produced {
                StepResult::Done(outcome) => self.state.borrow_mut().result = Some(outcome),
                StepResult::Wait(inner) if Rc::ptr_eq(&inner, self) => {
                    let failure = Failure::msg("a callback returned the deferred it belongs to");
                    self.state.borrow_mut().result = Some(Err(failure));
                }
                StepResult::Wait(inner) => {
                    self.state.borrow_mut().waiting_on = Some(Rc::clone(&inner));
                    let outer = Rc::clone(self);
                    inner.push_step(Box::new(move |outcome| {
                        outer.resume(outcome);
                        // The result now belongs to the outer chain.
                        StepResult::Done(Ok(boxed(())))
                    }));
                }
            }
        }
        let waker = {
            let mut state = self.state.borrow_mut();
            state.running = false;
            if state.steps.is_empty() && state.waiting_on.is_none() && state.result.is_some() {
                state.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn resume(self: &Rc<Self>, outcome: Outcome) {
        {
            let mut state = self.state.borrow_mut();
            state.waiting_on = None;
            state.result = Some(outcome);
        }
        resume_later_if_deep(self);
    }

    pub(crate) fn push_step(self: &Rc<Self>, step: Step) {
        self.state.borrow_mut().steps.push_back(step);
        run_now(self);
    }

    /// Fires with `CancelledError` (a cancel that nothing else fired).
    fn fire_cancelled(self: &Rc<Self>) {
        let canceller = {
            let mut state = self.state.borrow_mut();
            if state.fired {
                return;
            }
            state.fired = true;
            state.result = Some(Err(Failure::cancelled()));
            state.canceller.take()
        };
        drop(canceller);
        run_now(self);
    }

    fn fire(self: &Rc<Self>, outcome: Outcome) -> Result<(), DeferredError> {
        let canceller = {
            let mut state = self.state.borrow_mut();
            if state.fired {
                return if std::mem::take(&mut state.suppress_late_firing) {
                    Ok(())
                } else {
                    Err(DeferredError::AlreadyCalled)
                };
            }
            state.fired = true;
            state.result = Some(outcome);
            state.canceller.take()
        };
        drop(canceller);
        run_now(self);
        Ok(())
    }

    pub(crate) fn cancel_chain(self: &Rc<Self>) {
        self.cancel();
    }

    fn cancel(self: &Rc<Self>) {
        let (fired, canceller, waiting_on) = {
            let mut state = self.state.borrow_mut();
            (state.fired, state.canceller.take(), state.waiting_on.clone())
        };
        if !fired {
            match canceller {
                // The canceller may fire the Deferred itself; if it does not, a
                // later firing is AlreadyCalled (Twisted's rule).
                Some(canceller) => canceller(),
                // No canceller: whoever holds the resolver will still fire it
                // once; that one firing is ignored.
                None => self.state.borrow_mut().suppress_late_firing = true,
            }
            let still_pending = !self.state.borrow().fired;
            if still_pending {
                self.fire_cancelled();
            }
        } else if let Some(inner) = waiting_on {
            inner.cancel();
        }
    }
}

/// The value side of a Deferred: the tail of its callback chain, typed for what
/// the last callback produces. Await it, or add callbacks.
///
/// ```
/// use torque::defer::{Deferred, Failure};
///
/// let (d, resolver) = Deferred::<u32>::pending();
/// let doubled = d.map(|n| n * 2).add_callback(|n| {
///     if n > 10 { Ok(n) } else { Err(Failure::msg("too small")) }
/// });
/// resolver.callback(21).unwrap();
/// assert_eq!(doubled.result().unwrap().unwrap(), 42);
/// ```
#[must_use = "a Deferred does nothing unless callbacks are added or it is awaited"]
pub struct Deferred<T> {
    pub(crate) chain: Rc<Chain>,
    _type: PhantomData<fn() -> T>,
}

/// The firing side of a Deferred: its head. Fire it once with `callback` or
/// `errback`.
pub struct Resolver<T> {
    chain: Rc<Chain>,
    _type: PhantomData<fn(T)>,
}

mod sealed {
    /// Keeps [`CallbackResult`](super::CallbackResult) to the two kinds the
    /// chain knows how to run.
    pub trait Sealed {}
    impl<V> Sealed for Result<V, super::Failure> {}
    impl<V> Sealed for super::Deferred<V> {}
}

/// What a callback may return: `Result<V, Failure>` (any `Error` converts with
/// `?`), or another `Deferred<V>`, whose result the chain then waits for.
/// Sealed: these two are all there is.
pub trait CallbackResult: sealed::Sealed {
    /// The value type the chain carries on.
    type Value: 'static;
    /// Converts into a chain step result.
    #[doc(hidden)]
    fn into_step(self) -> StepResult;
}

impl<V: 'static> CallbackResult for Result<V, Failure> {
    type Value = V;
    fn into_step(self) -> StepResult {
        StepResult::Done(self.map(boxed))
    }
}

impl<V: 'static> CallbackResult for Deferred<V> {
    type Value = V;
    fn into_step(self) -> StepResult {
        StepResult::Wait(self.chain)
    }
}

fn take<T: 'static>(value: &mut Value) -> T {
    match value.downcast_mut::<Option<T>>().and_then(Option::take) {
        Some(v) => v,
        None => unreachable!("a Deferred's handles always agree on its value type"),
    }
}

fn typed<T: 'static>(outcome: Outcome) -> Result<T, Failure> {
    outcome.map(|mut value| take::<T>(&mut value))
}

impl<T: 'static> Deferred<T> {
    /// An unfired Deferred and the resolver that fires it.
    pub fn pending() -> (Deferred<T>, Resolver<T>) {
        let chain = Chain::new();
        (Deferred::from_chain(Rc::clone(&chain)), Resolver { chain, _type: PhantomData })
    }

    /// Like [`pending`](Deferred::pending), with a canceller: `cancel()` on an
    /// unfired Deferred calls it (with the resolver, to fire the Deferred some
    /// other way); if it does not fire it, the Deferred fails with `CancelledError`.
    pub fn with_canceller(canceller: impl FnOnce(&Resolver<T>) + 'static) -> (Deferred<T>, Resolver<T>) {
        let (deferred, resolver) = Deferred::pending();
        let weak: Weak<Chain> = Rc::downgrade(&resolver.chain);
        resolver.chain.state.borrow_mut().canceller = Some(Box::new(move || {
            if let Some(chain) = weak.upgrade() {
                canceller(&Resolver { chain, _type: PhantomData });
            }
        }));
        (deferred, resolver)
    }

    /// A Deferred that has already succeeded with `value` (Twisted's `succeed`).
    pub fn succeed(value: T) -> Deferred<T> {
        Deferred::from_chain(Chain::fired(Ok(boxed(value))))
    }

    /// A Deferred that has already failed (Twisted's `fail`).
    pub fn fail(failure: impl Into<Failure>) -> Deferred<T> {
        Deferred::from_chain(Chain::fired(Err(failure.into())))
    }

    pub(crate) fn from_chain(chain: Rc<Chain>) -> Deferred<T> {
        Deferred { chain, _type: PhantomData }
    }

    fn then<U: 'static>(self, step: impl FnOnce(Result<T, Failure>) -> StepResult + 'static) -> Deferred<U> {
        let chain = Rc::clone(&self.chain);
        chain.push_step(Box::new(move |outcome| step(typed::<T>(outcome))));
        Deferred::from_chain(chain)
    }

    /// Adds a callback for success; failures pass it by. It may return
    /// `Ok(value)` (any type), `Err(failure)`, or a Deferred to wait for.
    /// Added after firing, it runs at once.
    pub fn add_callback<R: CallbackResult>(self, f: impl FnOnce(T) -> R + 'static) -> Deferred<R::Value> {
        self.then(move |r| match r {
            Ok(v) => f(v).into_step(),
            Err(e) => StepResult::Done(Err(e)),
        })
    }

    /// Adds an infallible callback that transforms the value. When `U` is `T`,
    /// the value stays in its box: no allocation per step.
    pub fn map<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Deferred<U> {
        let chain = Rc::clone(&self.chain);
        chain.push_step(Box::new(move |outcome| match outcome {
            Ok(mut value) => {
                let result = f(take::<T>(&mut value));
                match value.downcast_mut::<Option<U>>() {
                    Some(slot) => {
                        *slot = Some(result);
                        StepResult::Done(Ok(value))
                    }
                    None => StepResult::Done(Ok(boxed(result))),
                }
            }
            Err(e) => StepResult::Done(Err(e)),
        }));
        Deferred::from_chain(chain)
    }

    /// Adds an errback for failure; values pass it by. Returning `Ok(value)`
    /// recovers, `Err(failure)` carries on failing.
    pub fn add_errback<R: CallbackResult<Value = T>>(
        self,
        f: impl FnOnce(Failure) -> R + 'static,
    ) -> Deferred<T> {
        self.then(move |r| match r {
            Ok(v) => StepResult::Done(Ok(boxed(v))),
            Err(e) => f(e).into_step(),
        })
    }

    /// Adds one function for both outcomes (Twisted's `addBoth`).
    pub fn add_both<R: CallbackResult>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> R + 'static,
    ) -> Deferred<R::Value> {
        self.then(move |r| f(r).into_step())
    }

    /// Adds a callback and an errback at the same position (Twisted's
    /// `addCallbacks`): exactly one of them runs.
    pub fn add_callbacks<U: 'static>(
        self,
        callback: impl FnOnce(T) -> Result<U, Failure> + 'static,
        errback: impl FnOnce(Failure) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.then(move |r| {
            StepResult::Done(
                match r {
                    Ok(v) => callback(v),
                    Err(e) => errback(e),
                }
                .map(boxed),
            )
        })
    }

    /// Cancels: an unfired Deferred runs its canceller or fails with
    /// `CancelledError`; one waiting on another Deferred cancels that one; a
    /// fired one is left alone.
    pub fn cancel(&self) {
        self.chain.cancel();
    }

    /// Whether the Deferred has been fired (its result may still be on the way
    /// through a waiting chain).
    pub fn is_called(&self) -> bool {
        self.chain.state.borrow().fired
    }

    /// Takes the result if the chain has finished; `None` while pending. After
    /// this the chain holds nothing (an error taken here is handled).
    pub fn result(self) -> Option<Result<T, Failure>> {
        let mut state = self.chain.state.borrow_mut();
        if state.waiting_on.is_some() || !state.steps.is_empty() || state.running {
            return None;
        }
        state.result.take().map(typed::<T>)
    }
}

impl<T: 'static> Resolver<T> {
    /// Fires with a value. [`DeferredError::AlreadyCalled`] if already fired
    /// (ignored silently after a cancellation, as in Twisted).
    pub fn callback(&self, value: T) -> Result<(), DeferredError> {
        self.chain.fire(Ok(boxed(value)))
    }

    /// Fires with a failure.
    pub fn errback(&self, failure: impl Into<Failure>) -> Result<(), DeferredError> {
        self.chain.fire(Err(failure.into()))
    }

    /// Fires with a `Result`.
    pub fn resolve(&self, result: Result<T, Failure>) -> Result<(), DeferredError> {
        match result {
            Ok(v) => self.callback(v),
            Err(e) => self.errback(e),
        }
    }

    /// Whether it has been fired.
    pub fn is_called(&self) -> bool {
        self.chain.state.borrow().fired
    }
}

impl<T: 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.chain.state.borrow_mut();
        let finished = state.waiting_on.is_none() && state.steps.is_empty() && !state.running;
        match (finished, state.result.take()) {
            (true, Some(outcome)) => Poll::Ready(typed::<T>(outcome)),
            (_, result) => {
                state.result = result;
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.chain.state.borrow();
        f.debug_struct("Deferred")
            .field("called", &state.fired)
            .field("waiting", &state.waiting_on.is_some())
            .field("callbacks", &state.steps.len())
            .finish()
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("called", &self.chain.state.borrow().fired).finish()
    }
}

/// Calls `f` and returns its result as a Deferred, turning a panic into a failure
/// (Twisted's `maybeDeferred`).
pub fn maybe_deferred<R: CallbackResult>(f: impl FnOnce() -> R) -> Deferred<R::Value> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => match r.into_step() {
            StepResult::Done(outcome) => Deferred::from_chain(Chain::fired(outcome)),
            StepResult::Wait(chain) => Deferred::from_chain(chain),
        },
        Err(payload) => Deferred::from_chain(Chain::fired(Err(panic_failure(payload)))),
    }
}
