//! The single-threaded core: lifecycle, the loop pass, and the public API that the
//! other reactor modules implement.
//!
//! # One pass
//!
//! 1. **prepare**: work out how long the wait may block: zero if thread calls,
//!    woken tasks, end-of-pass work or a shutdown are pending, else until the
//!    earliest timer, capped by the caller's limit.
//! 2. **wait**: the backend's blocking call. The only step that blocks, and the only
//!    one that runs no user code.
//! 3. **dispatch**: stop signals, then I/O events in the order the backend reported
//!    them, then due timers, then the batch of thread calls, then woken tasks, then
//!    end-of-pass work (close notices), then, if `stop()` was called, the shutdown
//!    event.
//!
//! # Reentrancy
//!
//! No `RefCell` of the reactor is borrowed while user code runs: handlers, timer
//! closures and triggers are taken (or their `Rc` cloned) out of their container, the
//! borrow is dropped, then they are called. Any API call is allowed from any
//! callback, including `iterate` (a nested pass skips a handler that is already
//! running; level-triggering reports it again later).

mod builder;
// Child processes are Unix-only so far (`process/`).
#[cfg(unix)]
mod children;
mod clock;
mod driver;
mod embed;
mod fdset;
mod interleave;
mod pool;
mod tasks;
mod threads;
mod timers;
mod triggers;
mod wait_hook;
#[cfg(windows)]
mod win32_events;

pub use builder::{REACTOR_ENV, ReactorBuilder};
#[cfg(unix)]
pub(crate) use children::{ChildWatch, ChildWatcher};
pub use clock::{Clock, MonotonicClock};
pub use embed::Embedded;
pub use fdset::{FdHandler, FdHandlerRef, LostReason};
pub use interleave::GuiCall;
pub use pool::{ThreadPool, ThreadPoolStats};
pub use threads::ReactorHandle;
pub use timers::DelayedCall;
pub use triggers::{IntoTriggerOutcome, PendingTrigger, Phase, SystemEvent, TriggerId, TriggerOutcome};
pub use wait_hook::WaitHook;
#[cfg(windows)]
pub use win32_events::EventId;

use crate::sys::fd::{AsFd, AsRawFd, RawFd};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{BackendInfo, Capability, Change, Event, Events, Interest, Opened, Refused, Token};
use crate::error::ReactorError;
#[cfg(unix)]
use crate::sys::signal::ChildSignalGuard;
use crate::sys::signal::SignalGuard;
use driver::Driver;
use fdset::{FdRegistry, Source};
pub(crate) use tasks::TaskId;
use tasks::{ReadyList, Tasks};
use threads::{ThreadCall, ThreadShared, lock};
use timers::{LiveCount, TimerQueue};
use triggers::{TriggerFn, Triggers};

/// The error a function run on the thread pool reports when it panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the function panicked on the thread pool: {message}")]
pub struct ThreadPanic {
    /// The panic's message.
    pub message: String,
}

type ResultCallback = Box<dyn FnOnce(&Reactor, Box<dyn Any + Send>)>;
type EndOfPass = Box<dyn FnOnce(&Reactor)>;

/// Size of the reactor-owned read buffer transports read into.
pub(crate) const READ_BUFFER_SIZE: usize = 64 * 1024;

pub(crate) struct Inner {
    driver: RefCell<Driver>,
    /// The backend's description (read without borrowing the driver).
    info: &'static BackendInfo,
    events: RefCell<Events>,
    /// The spare change list, filled from the registry before each wait.
    changes: RefCell<Vec<Change>>,
    /// How many passes are dispatching on this thread (nested `iterate` adds
    /// one). Registration changes made outside any pass reach the backend at
    /// once; those made inside one wait for the next wait (or the pass's end).
    dispatch_depth: Cell<usize>,
    /// The fd handler being called (its address) and its fd: a handler that
    /// removed itself can still add itself again from its callback. Only the
    /// innermost call runs code, so one entry suffices; a nested call saves
    /// and restores it.
    calling: Cell<(*const (), RawFd)>,
    clock: Rc<dyn Clock>,
    timers: RefCell<TimerQueue>,
    live_timers: LiveCount,
    fds: RefCell<FdRegistry>,
    triggers: RefCell<Triggers>,
    threads: Arc<ThreadShared>,
    /// The spare vector swapped with the thread-call queue each pass.
    thread_batch: RefCell<Vec<ThreadCall>>,
    pool: RefCell<Option<ThreadPool>>,
    pool_size: Cell<usize>,
    thread_results: RefCell<HashMap<u64, ResultCallback>>,
    /// Work queued for the end of the pass (connection_lost and other close
    /// notifications), so it never runs inside the call that caused it.
    end_of_pass: RefCell<Vec<EndOfPass>>,
    /// The buffer transports read into; lent out (taken) while a protocol reads it.
    /// Spare read buffers: one for a socket read, one more for TLS plaintext,
    /// more only for nested `iterate` calls.
    read_buffers: RefCell<Vec<Vec<u8>>>,
    /// Spawned futures and the list of those woken.
    tasks: RefCell<Tasks>,
    ready: Arc<ReadyList>,
    next_result_id: Cell<u64>,
    handle_signals: bool,
    /// Called around each wait that may block (see [`WaitHook`]).
    wait_hook: Option<Box<dyn WaitHook>>,
    signals: RefCell<Option<SignalGuard>>,
    /// SIGCHLD watching for children without a pidfd: the registration and a
    /// check per child, run after each SIGCHLD until it returns `false`.
    #[cfg(unix)]
    child_signals: RefCell<Option<(ChildSignalGuard, Vec<ChildWatcher>)>>,
    /// Win32 handles watched by helper threads (`add_event`).
    #[cfg(windows)]
    win32_events: RefCell<win32_events::Win32Events>,
    /// Called for a stop signal that arrives while already stopping.
    repeated_signal: RefCell<Option<SignalHook>>,
    /// The signal that stopped the current or last run (Twisted's `_exitSignal`).
    stop_signal: Cell<Option<i32>>,
    /// Inside `run()`.
    in_run: Cell<bool>,
    /// `interleave`'s link to its helper thread.
    interleaved: RefCell<Option<interleave::Interleaved>>,
    /// An interleaved wait is running on the helper thread.
    wait_in_flight: Cell<bool>,
    /// The loop in `run()` keeps going while set; cleared by shutdown and `crash()`.
    started: Cell<bool>,
    /// Twisted's `running`: from startup's `during` phase to shutdown's.
    running: Cell<bool>,
    /// `stop()` was called and the shutdown has not finished.
    stopping: Cell<bool>,
    /// `stop()` was called and the shutdown event is yet to be fired.
    shutdown_pending: Cell<bool>,
    /// Bumped by `crash()`: a before-trigger's Deferred finishing after a crash
    /// must not resume an event firing that the crash abandoned.
    crash_epoch: Cell<u64>,
}

/// Ends a pass's awake span ([`set_awake`](crate::sys::waker::Waker::set_awake)) even if a callback unwinds
/// out of the dispatch.
struct AwakeGuard<'a>(&'a crate::sys::waker::Waker);

impl Drop for AwakeGuard<'_> {
    fn drop(&mut self) {
        self.0.may_sleep();
    }
}

/// What runs for a stop signal that arrives while already stopping.
type SignalHook = Rc<dyn Fn(&Reactor, i32)>;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(link) = self.interleaved.get_mut().take() {
            // Dropped while interleaved (never stopped): the helper sees `closed`
            // once its wait returns, and this wake makes that now.
            link.forget();
            self.threads.closed.store(true, Ordering::Release);
            self.threads.waker.wake();
        }
        // Spawned futures are dropped (cancelled) with the reactor.
        let futures = self.tasks.get_mut().drain();
        drop(futures);
        self.threads.closed.store(true, Ordering::Release);
        if let Some(pool) = self.pool.get_mut().take() {
            pool.detach();
        }
    }
}

/// Twisted's reactor: one single-threaded event loop over a run-time chosen backend.
///
/// `Reactor` is a cheap, clonable handle (`Rc`); it is `!Send`: use
/// [`handle`](Reactor::handle) to reach it from other threads.
///
/// ```
/// use std::time::Duration;
/// use torque::Reactor;
///
/// let reactor = Reactor::new()?;
/// reactor.call_later(Duration::from_millis(10), |r| {
///     println!("10 ms later, on the {} backend", r.backend().name);
///     r.stop().unwrap();
/// });
/// reactor.run()?;
/// # Ok::<(), torque::ReactorError>(())
/// ```
#[derive(Clone)]
pub struct Reactor {
    pub(crate) inner: Rc<Inner>,
}

/// A weak reference to a [`Reactor`], for handlers that must keep one.
#[derive(Clone)]
pub struct WeakReactor(Weak<Inner>);

impl std::fmt::Debug for WeakReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakReactor").field("alive", &(self.0.strong_count() > 0)).finish()
    }
}

impl WeakReactor {
    /// The reactor, if it still exists.
    pub fn upgrade(&self) -> Option<Reactor> {
        self.0.upgrade().map(|inner| Reactor { inner })
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Reactor {
    /// A reactor on the platform's best backend, or the one `TORQUE_REACTOR` names
    /// (`select`, `poll`, `epoll`). An unknown name is an error listing the choices.
    pub fn new() -> Result<Reactor, ReactorError> {
        ReactorBuilder::default().build()
    }

    /// Starts configuring a reactor.
    pub fn builder() -> ReactorBuilder {
        ReactorBuilder::default()
    }

    fn from_parts(
        opened: Opened,
        clock: Rc<dyn Clock>,
        handle_signals: bool,
        pool_size: usize,
        wait_hook: Option<Box<dyn WaitHook>>,
    ) -> Reactor {
        let Opened { selector, waker } = opened;
        let driver = Driver::from(selector);
        let ready = Arc::new(ReadyList::new(Arc::clone(&waker)));
        let threads = Arc::new(ThreadShared {
            queue: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            waker,
            closed: AtomicBool::new(false),
            thread: std::thread::current().id(),
        });
        Reactor {
            inner: Rc::new(Inner {
                info: driver.info(),
                driver: RefCell::new(driver),
                events: RefCell::new(Events::with_capacity(1024)),
                changes: RefCell::new(Vec::new()),
                dispatch_depth: Cell::new(0),
                calling: Cell::new((std::ptr::null(), crate::sys::NO_FD)),
                clock,
                timers: RefCell::new(TimerQueue::default()),
                live_timers: Cell::new(0),
                fds: RefCell::new(FdRegistry::default()),
                triggers: RefCell::new(Triggers::default()),
                threads,
                thread_batch: RefCell::new(Vec::new()),
                pool: RefCell::new(None),
                pool_size: Cell::new(pool_size),
                thread_results: RefCell::new(HashMap::new()),
                end_of_pass: RefCell::new(Vec::new()),
                read_buffers: RefCell::new(vec![vec![0; READ_BUFFER_SIZE]]),
                tasks: RefCell::new(Tasks::default()),
                ready,
                next_result_id: Cell::new(0),
                handle_signals,
                signals: RefCell::new(None),
                #[cfg(unix)]
                child_signals: RefCell::new(None),
                #[cfg(windows)]
                win32_events: RefCell::default(),
                repeated_signal: RefCell::new(None),
                stop_signal: Cell::new(None),
                in_run: Cell::new(false),
                interleaved: RefCell::new(None),
                wait_in_flight: Cell::new(false),
                started: Cell::new(false),
                running: Cell::new(false),
                stopping: Cell::new(false),
                shutdown_pending: Cell::new(false),
                crash_epoch: Cell::new(0),
                wait_hook,
            }),
        }
    }

    /// The backend's description.
    pub fn backend(&self) -> &'static BackendInfo {
        self.inner.info
    }

    /// A weak reference to this reactor.
    pub fn downgrade(&self) -> WeakReactor {
        WeakReactor(Rc::downgrade(&self.inner))
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle { shared: Arc::clone(&self.inner.threads) }
    }

    // ----- lifecycle (IReactorCore) -----

    /// Runs the loop: fires startup, then passes until `stop()` (after the shutdown
    /// event has fully run) or `crash()`.
    ///
    /// `run()` inside a running reactor is [`ReactorError::AlreadyRunning`] and the
    /// outer loop goes on. Unlike Twisted, a reactor may be run again after it was
    /// stopped (or crashed): startup fires again; triggers that already ran, having
    /// run once, do not.
    pub fn run(&self) -> Result<(), ReactorError> {
        let inner = &self.inner;
        if inner.in_run.get() {
            return Err(ReactorError::AlreadyRunning);
        }
        self.begin_run();
        let mut result = Ok(());
        while inner.started.get() {
            // The next pass's wait applies what this one changed.
            if let Err(e) = self.pass(None, false) {
                tracing::error!(error = %e, "the backend's wait failed; the reactor stops");
                self.crash();
                result = Err(e);
            }
        }
        self.end_run();
        result
    }

    /// The start of every kind of run (`run`, `interleave`, `embed`): marks the
    /// reactor running and fires startup (whose `during` phase installs the
    /// stop-signal handlers). The caller has checked that no run is active.
    fn begin_run(&self) {
        let inner = &self.inner;
        inner.in_run.set(true);
        inner.started.set(true);
        inner.stopping.set(false);
        inner.shutdown_pending.set(false);
        inner.stop_signal.set(None);
        self.fire_system_event(SystemEvent::Startup);
    }

    /// Installs the SIGINT/SIGTERM handlers, as Twisted does at the start of
    /// startup's `during` phase: after the before-startup triggers, so one of
    /// them may install a program's own handlers first.
    fn install_signal_handlers(&self) {
        let inner = &self.inner;
        if !inner.handle_signals || inner.signals.borrow().is_some() {
            return;
        }
        match SignalGuard::install(Arc::clone(&inner.threads.waker)) {
            Ok(guard) => *inner.signals.borrow_mut() = Some(guard),
            Err(e) => tracing::warn!(error = %e, "cannot install SIGINT/SIGTERM handlers"),
        }
    }

    /// The end of every kind of run, once `started` is false.
    fn end_run(&self) {
        // Anything the after-shutdown triggers queued for the end of the pass.
        self.run_end_of_pass();
        // The shutdown's removals, so the backend matches the registry between
        // runs (a refusal here queues work for the next pass).
        let _ = self.apply_changes(None);
        drop(self.inner.signals.borrow_mut().take());
        self.inner.in_run.set(false);
    }

    /// Whether a run (`run()`, `interleave`, `embed`) is active and has not yet
    /// been ended by `stop()`'s shutdown or by `crash()`. A foreign loop driving
    /// the reactor quits once this turns false.
    pub fn is_started(&self) -> bool {
        self.inner.in_run.get() && self.inner.started.get()
    }

    /// Asks a running reactor to shut down. The shutdown event fires at the end of
    /// the current pass (the next one if called between passes), never inside this
    /// call; `run()` returns once its triggers have all run.
    /// [`ReactorError::NotRunning`] if `run()` is not active, or the reactor is
    /// already stopping.
    pub fn stop(&self) -> Result<(), ReactorError> {
        let inner = &self.inner;
        // Like Twisted, a reactor counts as started from the moment `run()` begins
        // firing startup, so a before-startup trigger may already stop it.
        if !(inner.in_run.get() && inner.started.get()) || inner.stopping.get() {
            return Err(ReactorError::NotRunning);
        }
        inner.stopping.set(true);
        inner.shutdown_pending.set(true);
        self.note_change();
        Ok(())
    }

    /// Ends `run()` after the current pass without firing shutdown (Twisted's
    /// `crash`). Handlers, timers and triggers stay; `run()` may be called again.
    pub fn crash(&self) {
        let inner = &self.inner;
        inner.crash_epoch.set(inner.crash_epoch.get() + 1);
        inner.started.set(false);
        inner.running.set(false);
        inner.stopping.set(false);
        inner.shutdown_pending.set(false);
        self.note_change();
    }

    /// Whether the reactor is running: from startup's `during` phase until
    /// shutdown's.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Runs one pass, waiting at most `max_wait` for events. Works whether or not the
    /// reactor is running, and from inside callbacks (also inside an interleaved
    /// batch). Between interleaved batches it is [`ReactorError::AlreadyRunning`]:
    /// the helper thread's wait is in flight, and a second waiter would split the
    /// events.
    pub fn iterate(&self, max_wait: Duration) -> Result<(), ReactorError> {
        if self.inner.wait_in_flight.get() {
            return Err(ReactorError::AlreadyRunning);
        }
        // Another loop may wait on the backend's fd next: apply what changed.
        self.pass(Some(max_wait), true)
    }

    /// Runs `f` once the reactor is running: now if it is, else after startup.
    pub fn call_when_running(&self, f: impl FnOnce(&Reactor) + 'static) {
        if self.is_running() {
            f(self);
        } else {
            self.add_system_event_trigger(Phase::After, SystemEvent::Startup, f);
        }
    }

    // ----- system event triggers -----

    /// Registers `f` to run once in `phase` of the next firing of `event`.
    pub fn add_system_event_trigger<R: IntoTriggerOutcome>(
        &self,
        phase: Phase,
        event: impl Into<SystemEvent>,
        f: impl FnOnce(&Reactor) -> R + 'static,
    ) -> TriggerId {
        let event = event.into();
        let f: TriggerFn = Box::new(move |r| f(r).into_trigger_outcome());
        self.inner.triggers.borrow_mut().add(phase, event, f)
    }

    /// Removes a trigger that has not run. [`ReactorError::UnknownTrigger`] if it was
    /// removed before or has run.
    pub fn remove_system_event_trigger(&self, id: TriggerId) -> Result<(), ReactorError> {
        let removed = self.inner.triggers.borrow_mut().remove(id);
        match removed {
            Some(f) => {
                drop(f);
                Ok(())
            }
            None => Err(ReactorError::UnknownTrigger),
        }
    }

    /// Fires `event`: its before, during and after triggers, FIFO within each
    /// phase. A failing or panicking trigger is logged and the rest still run. A
    /// before-phase trigger that returns a Deferred holds the during and after
    /// phases back until it fires, while the loop keeps serving I/O and timers
    /// (so a server can finish in-flight work on SIGTERM).
    pub fn fire_system_event(&self, event: impl Into<SystemEvent>) {
        let event = event.into();
        // One count per unfinished before-trigger, plus one for this call.
        let waiting = Rc::new(Cell::new(1usize));
        loop {
            let next = self.inner.triggers.borrow_mut().pop(&event, Phase::Before);
            let Some(trigger) = next else { break };
            if let Some(pending) = self.run_trigger(trigger, &event, Phase::Before) {
                waiting.set(waiting.get() + 1);
                let (weak, waiting, event) = (self.downgrade(), Rc::clone(&waiting), event.clone());
                let epoch = self.inner.crash_epoch.get();
                (pending.0)(Box::new(move |result| {
                    if let Err(msg) = result {
                        tracing::error!(%event, error = %msg, "a before-trigger's deferred failed");
                    }
                    waiting.set(waiting.get() - 1);
                    if waiting.get() == 0 {
                        if let Some(r) = weak.upgrade() {
                            if r.inner.crash_epoch.get() == epoch {
                                r.continue_firing(&event);
                            } else {
                                tracing::debug!(%event, "a firing abandoned by crash() is not resumed");
                            }
                        }
                    }
                }));
            }
        }
        waiting.set(waiting.get() - 1);
        if waiting.get() == 0 {
            self.continue_firing(&event);
        }
    }

    /// The during and after phases of `event`.
    fn continue_firing(&self, event: &SystemEvent) {
        self.internal_during(event);
        for phase in [Phase::During, Phase::After] {
            loop {
                let next = self.inner.triggers.borrow_mut().pop(event, phase);
                let Some(trigger) = next else { break };
                if let Some(pending) = self.run_trigger(trigger, event, phase) {
                    // Only before-triggers hold the event back; still, report failures.
                    let event = event.clone();
                    (pending.0)(Box::new(move |result| {
                        if let Err(msg) = result {
                            tracing::error!(%event, ?phase, error = %msg, "a trigger's deferred failed");
                        }
                    }));
                }
            }
        }
    }

    /// Runs one trigger, logging failures; returns its pending work, if any.
    fn run_trigger(&self, trigger: TriggerFn, event: &SystemEvent, phase: Phase) -> Option<PendingTrigger> {
        match catch_unwind(AssertUnwindSafe(|| trigger(self))) {
            Ok(TriggerOutcome::Done) => None,
            Ok(TriggerOutcome::Pending(pending)) => Some(pending),
            Ok(TriggerOutcome::Failed(msg)) => {
                tracing::error!(%event, ?phase, error = %msg, "a system event trigger failed");
                None
            }
            Err(payload) => {
                tracing::error!(%event, ?phase, panic = %panic_message(&*payload), "a system event trigger panicked");
                None
            }
        }
    }

    /// The reactor's own work at the start of an event's `during` phase.
    fn internal_during(&self, event: &SystemEvent) {
        let inner = &self.inner;
        match event {
            SystemEvent::Startup if inner.in_run.get() && inner.started.get() => {
                self.install_signal_handlers();
                inner.running.set(true);
            }
            SystemEvent::Shutdown if inner.stopping.get() => {
                inner.running.set(false);
                inner.started.set(false);
                self.disconnect_all();
                // Close notifications queued by the disconnects run now: the loop
                // ends after this event, so there is no later pass to run them.
                self.run_end_of_pass();
                let pool = inner.pool.borrow_mut().take();
                if let Some(pool) = pool {
                    pool.stop();
                }
            }
            _ => {}
        }
    }

    /// Removes every fd handler and tells each it was lost to the shutdown.
    fn disconnect_all(&self) {
        for handler in self.remove_all() {
            self.deliver_lost(handler, LostReason::Shutdown);
        }
    }

    /// Calls `connection_lost`. A handler that is running further up the stack (a
    /// nested `iterate` from inside it) is told on the next timer step instead.
    fn deliver_lost(&self, handler: FdHandlerRef, reason: LostReason) {
        let Ok(mut h) = handler.try_borrow_mut() else {
            self.call_later(Duration::ZERO, move |r| r.deliver_lost(handler, reason));
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| h.connection_lost(self, reason)));
        if let Err(payload) = result {
            tracing::error!(panic = %panic_message(&*payload), "connection_lost panicked");
        }
    }

    // ----- time (IReactorTime) -----

    /// The reactor clock's current time, as a duration since its origin.
    pub fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// The reactor clock's current time in seconds (Twisted's `seconds()`).
    pub fn seconds(&self) -> f64 {
        self.now().as_secs_f64()
    }

    /// Runs `f` once, `delay` from now. Calls with equal deadlines run in the order
    /// they were scheduled; a call scheduled from inside a timed call runs on a later
    /// pass even with a zero delay.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce(&Reactor) + 'static) -> DelayedCall {
        let inner = &self.inner;
        let deadline = inner.clock.now().saturating_add(delay);
        let entry = inner.timers.borrow_mut().schedule(deadline, f, &inner.live_timers);
        self.note_change();
        DelayedCall { entry, reactor: Rc::downgrade(&self.inner) }
    }

    /// Every pending delayed call, in the order they will run.
    pub fn delayed_calls(&self) -> Vec<DelayedCall> {
        let entries = self.inner.timers.borrow().live_entries();
        entries.into_iter().map(|entry| DelayedCall { entry, reactor: Rc::downgrade(&self.inner) }).collect()
    }

    /// How long the next pass may wait: zero if work is already queued (thread
    /// calls, woken tasks, close notices, a pending shutdown), else until the next
    /// timer (`None`: no timers, so until an fd or a wake-up).
    pub fn timeout(&self) -> Option<Duration> {
        if self.has_queued_work() {
            return Some(Duration::ZERO);
        }
        let deadline = self.inner.timers.borrow_mut().next_deadline()?;
        Some(deadline.saturating_sub(self.now()))
    }

    fn has_queued_work(&self) -> bool {
        let inner = &self.inner;
        inner.shutdown_pending.get()
            || inner.threads.queued.load(Ordering::Acquire) != 0
            || !inner.end_of_pass.borrow().is_empty()
            || inner.ready.has_ready()
            || inner.fds.borrow().has_always_ready()
    }

    fn run_due_timers(&self) {
        if self.inner.live_timers.get() == 0 {
            // No clock read (and nothing to pop) on a pass without timers.
            return;
        }
        let now = self.now();
        let mark = {
            let mut timers = self.inner.timers.borrow_mut();
            timers.compact_if_stale(&self.inner.live_timers);
            timers.sequence_mark()
        };
        loop {
            let due = self.inner.timers.borrow_mut().pop_due(now, mark);
            let Some(entry) = due else { break };
            self.run_timer_entry(&entry);
        }
    }

    // ----- fd sets (IReactorFDSet) -----

    /// Calls `handler.readable` whenever its fd — the one its [`AsFd`] gives
    /// — is readable (Twisted's `addReader`, which asks the reader for its
    /// `fileno()`).
    ///
    /// The registration holds the handler, and the handler holds its fd (a
    /// `File`, a `UnixStream`, an `OwnedFd`), so the fd stays open while it is
    /// registered: its number cannot be closed and reused under the handler,
    /// whose events would otherwise go to whatever file took the number. The
    /// handler is dropped once removed in both directions. A handler that only
    /// borrows its fd (`BorrowedFd::borrow_raw`) promises to remove itself
    /// before the fd closes; if it does not, poll and select report the closed
    /// fd as [`LostReason::FdClosed`] and epoll and kqueue forget it silently
    /// (see [`BackendInfo::reports_closed_fds`]).
    ///
    /// Files that `poll(2)` calls always ready — regular files, directories,
    /// block devices — are always ready on every backend (epoll itself
    /// refuses them): the handler is called on every pass, and passes do not
    /// wait while one is registered.
    ///
    /// One handler per fd: adding a different handler for a registered fd
    /// replaces the old one (in both directions). A handler may add itself
    /// (either direction, also after removing itself) from inside its own
    /// callback; one busy elsewhere and not registered cannot be asked for
    /// its fd: [`ReactorError::HandlerBusy`].
    ///
    /// Outside the loop's passes the backend hears of the change at once, and
    /// an fd it refuses is an error here. Inside a callback an addition or
    /// change waits for the pass's end (so an fd changed several times in a
    /// pass costs one system call, or none) and a refusal then reaches the
    /// handler's `connection_lost` as [`LostReason::Error`], at the end of the
    /// pass; a removal that leaves the fd unwatched reaches the backend at
    /// once. Backends without fd sets refuse with
    /// [`ReactorError::Unsupported`].
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    /// use std::rc::Rc;
    ///
    /// use torque::{FdHandler, Reactor};
    ///
    /// /// Reads a pipe until its writer closes it.
    /// struct Drain {
    ///     pipe: OwnedFd,
    ///     got: Vec<u8>,
    /// }
    ///
    /// impl AsFd for Drain {
    ///     fn as_fd(&self) -> BorrowedFd<'_> {
    ///         self.pipe.as_fd()
    ///     }
    /// }
    ///
    /// impl FdHandler for Drain {
    ///     fn readable(&mut self, reactor: &Reactor) {
    ///         let mut buf = [0; 64];
    ///         match torque::fd::read(&self.pipe, &mut buf) {
    ///             Ok(0) | Err(_) => {
    ///                 reactor.remove_reader(&*self);
    ///                 reactor.stop().unwrap();
    ///             }
    ///             Ok(n) => self.got.extend_from_slice(&buf[..n]),
    ///         }
    ///     }
    /// }
    ///
    /// let reactor = Reactor::builder().handle_signals(false).build()?;
    /// let (read, write) = torque::fd::pipe()?;
    /// let drain = Rc::new(RefCell::new(Drain { pipe: read, got: Vec::new() }));
    /// reactor.add_reader(&drain)?;
    /// torque::fd::write(&write, b"hello")?;
    /// drop(write);
    /// reactor.run()?;
    /// assert_eq!(drain.borrow().got, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_reader<H: FdHandler + AsFd + 'static>(
        &self,
        handler: &Rc<RefCell<H>>,
    ) -> Result<(), ReactorError> {
        self.add_descriptor(handler, Interest::READ)
    }

    /// Calls `handler.writable` whenever its fd is writable (Twisted's
    /// `addWriter`). See [`add_reader`](Reactor::add_reader).
    pub fn add_writer<H: FdHandler + AsFd + 'static>(
        &self,
        handler: &Rc<RefCell<H>>,
    ) -> Result<(), ReactorError> {
        self.add_descriptor(handler, Interest::WRITE)
    }

    /// Stops reading `fd`. Removing what is not registered does nothing. The
    /// handler is dropped here (closing the fd it owns) if it is not also
    /// writing.
    pub fn remove_reader(&self, fd: impl AsFd) {
        self.unwatch(fd.as_fd().as_raw_fd(), Interest::READ);
    }

    /// Stops writing `fd`. See [`remove_reader`](Reactor::remove_reader).
    pub fn remove_writer(&self, fd: impl AsFd) {
        self.unwatch(fd.as_fd().as_raw_fd(), Interest::WRITE);
    }

    fn add_descriptor<H: FdHandler + AsFd + 'static>(
        &self,
        handler: &Rc<RefCell<H>>,
        add: Interest,
    ) -> Result<(), ReactorError> {
        self.inner.info.require(Capability::FdSets)?;
        let erased: FdHandlerRef = handler.clone();
        let fd = match handler.try_borrow() {
            Ok(h) => h.as_fd().as_raw_fd(),
            // In one of its own callbacks: we called it for its fd, or it is
            // registered (or borrowed elsewhere: then it cannot be asked).
            Err(_) => {
                let address = Rc::as_ptr(handler).cast::<()>();
                let (called, fd) = self.inner.calling.get();
                let calling = (called == address).then_some(fd);
                calling.or_else(|| self.inner.fds.borrow().fd_of(&erased)).ok_or(ReactorError::HandlerBusy)?
            }
        };
        let always_ready = if self.inner.fds.borrow().is_registered(fd, &erased) {
            false
        } else {
            crate::sys::is_always_ready(fd).map_err(|source| ReactorError::Register {
                fd,
                backend: self.inner.info.name,
                source,
            })?
        };
        self.watch_as(fd, erased, add, always_ready)
    }

    /// Watches `fd` (owned by the caller, a transport or port of this crate)
    /// for `add`, calling `handler`. See [`add_reader`](Reactor::add_reader).
    pub(crate) fn watch(&self, fd: RawFd, handler: FdHandlerRef, add: Interest) -> Result<(), ReactorError> {
        self.watch_as(fd, handler, add, false)
    }

    fn watch_as(
        &self,
        fd: RawFd,
        handler: FdHandlerRef,
        add: Interest,
        always_ready: bool,
    ) -> Result<(), ReactorError> {
        if !crate::sys::is_valid_fd(fd) {
            return Err(ReactorError::InvalidFd(fd));
        }
        if let Some(limit) = self.inner.info.fd_limit {
            if fd as usize >= limit && !always_ready {
                let source = std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "fd {fd} is not below FD_SETSIZE ({limit}); use a backend without that limit (poll, epoll, kqueue)"
                    ),
                );
                return Err(ReactorError::Register { fd, backend: self.inner.info.name, source });
            }
        }
        let replaced = self.inner.fds.borrow_mut().add(fd, handler, add, always_ready);
        let result = self.registry_changed(Some(fd));
        // Dropped once the backend has let go: it may close its fd.
        drop(replaced);
        result
    }

    /// Stops watching `fd` for `remove`.
    pub(crate) fn unwatch(&self, fd: RawFd, remove: Interest) {
        let removed = self.inner.fds.borrow_mut().remove(fd, remove);
        if let Err(e) = self.registry_changed(None) {
            tracing::debug!(error = %e, "backend refused a change");
        }
        // Dropped once the backend has let go: it may close its fd.
        drop(removed);
    }

    /// After a registry change: outside a pass, tell the backend now (an
    /// error for `fd`'s own registration is returned, and it is removed);
    /// inside one, the next wait or the pass's end will — except that a
    /// registration that ended is removed from the backend at once, while its
    /// fd is surely still open. Its owner may close it next: epoll keeps a
    /// closed fd's registration while any duplicate of it lives (one nothing
    /// could remove any more, reported forever under a stale token), and
    /// kqueue answers a removal of a closed fd by returning from the wait.
    fn registry_changed(&self, fd: Option<RawFd>) -> Result<(), ReactorError> {
        self.note_change();
        if self.inner.dispatch_depth.get() == 0 {
            self.apply_changes(fd)
        } else if self.inner.fds.borrow().has_ended() {
            self.apply_queued(None, true)
        } else {
            Ok(())
        }
    }

    /// Applies every queued registration change now. A refusal drops its
    /// handler, told with [`LostReason::Error`] at the end of the pass, except
    /// that of `returning`'s registration, which is removed quietly and
    /// returned.
    fn apply_changes(&self, returning: Option<RawFd>) -> Result<(), ReactorError> {
        if !self.inner.fds.borrow().has_changes() {
            // No change, but the backend may hold queued work (io_uring's
            // re-armed polls) that must reach the kernel before another loop waits.
            self.inner.driver.borrow_mut().flush();
            return Ok(());
        }
        self.apply_queued(returning, false)
    }

    /// Applies the queued changes (`ended_only`: those of registrations that
    /// ended); see [`apply_changes`](Reactor::apply_changes).
    fn apply_queued(&self, returning: Option<RawFd>, ended_only: bool) -> Result<(), ReactorError> {
        let mut changes = std::mem::take(&mut *self.inner.changes.borrow_mut());
        if ended_only {
            self.inner.fds.borrow_mut().take_ended_changes(&mut changes);
        } else {
            self.inner.fds.borrow_mut().take_changes(&mut changes);
        }
        let mut refused = Vec::new();
        self.inner.driver.borrow_mut().apply(&changes, &mut refused);
        changes.clear();
        *self.inner.changes.borrow_mut() = changes;
        self.handle_refused(refused, returning)
    }

    /// Removes each refused registration and tells its handler why (at the
    /// end of the pass); the one for `returning` (the fd just added) is
    /// returned instead.
    fn handle_refused(&self, refused: Vec<Refused>, returning: Option<RawFd>) -> Result<(), ReactorError> {
        let mut result = Ok(());
        for (token, source) in refused {
            let removed = self.inner.fds.borrow_mut().remove_token(token);
            let Some((what, handler)) = removed else { continue };
            match what {
                Source::Fd(fd) if Some(fd) == returning => {
                    drop(handler);
                    result = Err(ReactorError::Register { fd, backend: self.inner.info.name, source });
                }
                _ => {
                    tracing::debug!(error = %source, "the backend refused a registration");
                    // Told at the end of the pass: never inside whatever call
                    // happened to apply the change.
                    self.at_end_of_pass(move |r| r.deliver_lost(handler, LostReason::Error(source)));
                }
            }
        }
        // The removals' own changes (the backend may still hold a refused
        // modification) go out with the next batch.
        result
    }

    /// Removes every handler and returns them (Twisted's `removeAll`).
    pub fn remove_all(&self) -> Vec<FdHandlerRef> {
        let removed = self.inner.fds.borrow_mut().remove_all();
        let mut handlers = Vec::with_capacity(removed.len());
        for (source, handler) in removed {
            if let Source::Child(pid) = source {
                self.inner.driver.borrow_mut().unwatch_child(pid);
            }
            handlers.push(handler);
        }
        if let Err(e) = self.registry_changed(None) {
            tracing::debug!(error = %e, "backend refused a change");
        }
        handlers
    }

    /// The fds being read, sorted.
    pub fn readers(&self) -> Vec<RawFd> {
        self.inner.fds.borrow().fds_with(true)
    }

    /// The fds being written, sorted.
    pub fn writers(&self) -> Vec<RawFd> {
        self.inner.fds.borrow().fds_with(false)
    }

    /// An fd another event loop can watch to know this reactor has work: the
    /// epoll or kqueue fd itself, readable whenever a registered fd is ready or
    /// another thread woke the reactor. Watch it, and call
    /// [`iterate`](Reactor::iterate) with a zero wait when it is readable or
    /// [`timeout`](Reactor::timeout) has passed (see [`embed`](Reactor::embed)).
    /// The reactor owns the fd; it stays open as long as the reactor.
    ///
    /// select and poll keep their interest set in user memory, so no single fd
    /// stands for it: [`ReactorError::Unsupported`] for
    /// [`Capability::WatchFd`]. Use [`interleave`](Reactor::interleave) with
    /// them, or call `iterate` from the other loop's timer.
    pub fn watch_fd(&self) -> Result<RawFd, ReactorError> {
        self.inner.info.require(Capability::WatchFd)?;
        let fd = self.inner.driver.borrow().watch_fd();
        fd.ok_or(ReactorError::Unsupported { backend: self.inner.info.name, capability: Capability::WatchFd })
    }

    /// Wakes the reactor's current or next wait (Twisted's `wakeUp`): the pass
    /// ends early and runs whatever is due. Other threads use
    /// [`ReactorHandle::wake`].
    pub fn wake_up(&self) {
        self.inner.threads.waker.wake();
    }

    fn dispatch_event(&self, event: Event) {
        if event.token == Token::WINDOW_MESSAGES {
            // Window procedures run here, outside every borrow; WM_QUIT stops.
            if crate::sys::pump_window_messages() {
                let _ = self.stop();
            }
            return;
        }
        let found = self.inner.fds.borrow().lookup(event.token);
        let Some((handler, interest, source)) = found else { return };
        if event.invalid {
            self.drop_handler(event, LostReason::FdClosed);
            return;
        }
        let fd = match source {
            Source::Fd(fd) => fd,
            Source::Child(_) => crate::sys::NO_FD,
        };
        if event.readable && interest.read {
            self.call_handler(&handler, fd, event, |h, r| h.readable(r));
        }
        // The read callback may have removed or replaced this registration.
        if event.writable && self.inner.fds.borrow().interest(event.token).write {
            self.call_handler(&handler, fd, event, |h, r| h.writable(r));
        }
    }

    fn call_handler(
        &self,
        handler: &FdHandlerRef,
        fd: RawFd,
        event: Event,
        f: impl FnOnce(&mut dyn FdHandler, &Reactor),
    ) {
        // Busy means a nested `iterate` from inside this very handler: skip it; the
        // fd is level-triggered and will be reported again.
        let Ok(mut h) = handler.try_borrow_mut() else { return };
        let outer = self.inner.calling.replace((Rc::as_ptr(handler).cast::<()>(), fd));
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut *h, self)));
        self.inner.calling.set(outer);
        drop(h);
        if let Err(payload) = result {
            let message = panic_message(&*payload);
            tracing::error!(panic = %message, "an fd handler panicked; it is removed");
            self.drop_handler(event, LostReason::Panicked(message));
        }
    }

    /// Removes the registration behind `event` and tells its handler why.
    fn drop_handler(&self, event: Event, reason: LostReason) {
        let removed = self.inner.fds.borrow_mut().remove_token(event.token);
        let Some((source, handler)) = removed else { return };
        if let Source::Child(pid) = source {
            self.inner.driver.borrow_mut().unwatch_child(pid);
        }
        let _ = self.registry_changed(None);
        self.deliver_lost(handler, reason);
    }

    // ----- threads (IReactorThreads) -----

    /// Runs `f` on the thread pool, which starts lazily and stops at shutdown.
    /// A panic in `f` is logged.
    pub fn call_in_thread(&self, f: impl FnOnce() + Send + 'static) {
        let job = Box::new(move || {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                tracing::error!(panic = %panic_message(&*payload), "a thread-pool job panicked");
            }
        });
        self.submit_job(job);
    }

    fn submit_job(&self, job: Box<dyn FnOnce() + Send>) {
        self.thread_pool().submit(job);
    }

    /// The thread pool as an object (Twisted's `getThreadPool`): its size and
    /// stats, and `stop`. Made on first use; the reactor stops it at shutdown
    /// and makes a fresh one when a later run needs threads. Jobs given to a
    /// pool stopped by hand are dropped until then.
    pub fn thread_pool(&self) -> ThreadPool {
        let mut pool = self.inner.pool.borrow_mut();
        pool.get_or_insert_with(|| ThreadPool::new(self.inner.pool_size.get())).clone()
    }

    /// Runs the blocking `work` on the thread pool and then `on_done` with its result
    /// back on the reactor thread (`on_done` need not be `Send`). A panic in `work`
    /// arrives as [`ThreadPanic`].
    pub fn run_in_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        on_done: impl FnOnce(&Reactor, Result<T, ThreadPanic>) + 'static,
    ) {
        let id = self.inner.next_result_id.get();
        self.inner.next_result_id.set(id + 1);
        let callback: ResultCallback = Box::new(move |r, boxed| {
            if let Ok(result) = boxed.downcast::<Result<T, ThreadPanic>>() {
                on_done(r, *result);
            }
        });
        self.inner.thread_results.borrow_mut().insert(id, callback);
        let handle = self.handle();
        self.submit_job(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work))
                .map_err(|payload| ThreadPanic { message: panic_message(&*payload) });
            handle.call_from_thread(move |r| {
                let callback = r.inner.thread_results.borrow_mut().remove(&id);
                if let Some(callback) = callback {
                    callback(r, Box::new(result));
                }
            });
        }));
    }

    /// Sets the most threads the pool may run (Twisted's `suggestThreadPoolSize`).
    pub fn suggest_thread_pool_size(&self, max: usize) {
        self.inner.pool_size.set(max.max(1));
        if let Some(pool) = self.inner.pool.borrow().as_ref() {
            pool.set_max_threads(max);
        }
    }

    fn run_thread_calls(&self) {
        let threads = &self.inner.threads;
        if threads.queued.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut batch = std::mem::take(&mut *self.inner.thread_batch.borrow_mut());
        {
            let mut queue = lock(&threads.queue);
            std::mem::swap(&mut *queue, &mut batch);
            threads.queued.store(0, Ordering::Release);
        }
        for call in batch.drain(..) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| call(self))) {
                tracing::error!(panic = %panic_message(&*payload), "a call from a thread panicked");
            }
        }
        *self.inner.thread_batch.borrow_mut() = batch;
    }

    // ----- the pass -----

    /// Step 1: how long the wait may block.
    fn prepare(&self, max_wait: Option<Duration>) -> Option<Duration> {
        match (self.timeout(), max_wait) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// One pass: apply queued registration changes and wait (one backend call
    /// where it can), then dispatch. With `apply_after`, changes made while
    /// dispatching reach the backend before this returns, for a loop other
    /// than `run()`'s that waits next.
    fn pass(&self, max_wait: Option<Duration>, apply_after: bool) -> Result<(), ReactorError> {
        let waker = &self.inner.threads.waker;
        // Before the queues are looked at: work queued from now on wakes the
        // wait (a nested pass inside a dispatch needs this too).
        waker.may_sleep();
        let timeout = self.prepare(max_wait);
        // Step 2: wait. The event and change buffers are taken out of their
        // cells so that a nested pass started from a callback uses its own.
        let mut events = std::mem::take(&mut *self.inner.events.borrow_mut());
        let mut changes = std::mem::take(&mut *self.inner.changes.borrow_mut());
        self.inner.fds.borrow_mut().take_changes(&mut changes);
        let mut refused = Vec::new();
        let hook = self.inner.wait_hook.as_deref().filter(|_| timeout != Some(Duration::ZERO));
        if let Some(hook) = hook {
            hook.before_wait();
        }
        let waited = self.inner.driver.borrow_mut().wait(&changes, &mut refused, &mut events, timeout);
        if let Some(hook) = hook {
            hook.after_wait();
        }
        changes.clear();
        *self.inner.changes.borrow_mut() = changes;
        // Work other threads queue while this pass dispatches is seen by the
        // next pass's prepare step: no wake needed. Only `run()`'s passes:
        // after `iterate` or an embedded dispatch another loop may wait next
        // without asking `timeout()`, and interleave never comes here.
        if !apply_after {
            waker.set_awake();
        }
        let awake = AwakeGuard(waker);
        let result = self.dispatch_after_wait(waited, refused, &mut events);
        drop(awake);
        *self.inner.events.borrow_mut() = events;
        if apply_after {
            self.apply_changes(None)?;
        }
        result
    }

    /// Step 3, after a wait here or on the interleave helper: drop refused
    /// registrations, dispatch the events, then timers, thread calls, tasks,
    /// end-of-pass work and a pending shutdown.
    fn dispatch_after_wait(
        &self,
        waited: std::io::Result<()>,
        refused: Vec<Refused>,
        events: &mut Events,
    ) -> Result<(), ReactorError> {
        let depth = &self.inner.dispatch_depth;
        depth.set(depth.get() + 1);
        let _leave = DepthGuard(depth);
        self.check_signals();
        #[cfg(unix)]
        self.check_child_signals();
        let _ = self.handle_refused(refused, None);
        if let Err(e) = waited {
            return Err(ReactorError::Os(e));
        }
        for i in 0..events.len() {
            if let Some(event) = events.get(i) {
                self.dispatch_event(event);
            }
        }
        events.clear();
        // Files the backend is never given: ready on every pass.
        let always_ready = self.inner.fds.borrow().always_ready_events();
        for event in always_ready {
            self.dispatch_event(event);
        }
        self.run_due_timers();
        self.run_thread_calls();
        tasks::run_ready(&self.inner.tasks, &self.inner.ready);
        self.run_end_of_pass();
        if self.inner.shutdown_pending.get() && self.inner.in_run.get() {
            self.inner.shutdown_pending.set(false);
            self.fire_system_event(SystemEvent::Shutdown);
        }
        Ok(())
    }

    /// Starts polling `future` on this thread; it is polled on the pass after each
    /// wake-up.
    pub(crate) fn spawn_task(&self, future: impl std::future::Future<Output = ()> + 'static) -> TaskId {
        self.inner.tasks.borrow_mut().insert(Box::pin(future), &self.inner.ready)
    }

    /// Drops a spawned task's future (now, or once its current poll returns).
    pub(crate) fn cancel_task(&self, id: TaskId) {
        let future = self.inner.tasks.borrow_mut().cancel(id);
        drop(future);
    }

    /// How many spawned tasks are still alive.
    pub fn spawned_tasks(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    /// Queues `f` to run at the end of the current pass (or of the next one, if
    /// called between passes): after I/O, timers and thread calls. Used for close
    /// notifications, so `connection_lost` never runs inside the call that caused it.
    pub(crate) fn at_end_of_pass(&self, f: impl FnOnce(&Reactor) + 'static) {
        self.inner.end_of_pass.borrow_mut().push(Box::new(f));
        self.note_change();
    }

    fn run_end_of_pass(&self) {
        // Work queued by this work runs in the same step, so a close that causes
        // another close completes within the pass.
        loop {
            let batch = std::mem::take(&mut *self.inner.end_of_pass.borrow_mut());
            if batch.is_empty() {
                return;
            }
            for f in batch {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(self))) {
                    tracing::error!(panic = %panic_message(&*payload), "an end-of-pass callback panicked");
                }
            }
        }
    }

    /// Asks the backend to serve stream socket `fd` by completions (io_uring's
    /// multishot receive and sends); then [`take_received`](Reactor::take_received)
    /// replaces `read(2)` and [`send_lent`](Reactor::send_lent) `send(2)`.
    /// False where the backend does not.
    pub(crate) fn stream_completions(&self, fd: RawFd) -> bool {
        self.inner.driver.borrow_mut().stream_completions(fd)
    }

    /// As `read(2)` on `fd`, from what the backend received for it.
    pub(crate) fn take_received(&self, fd: RawFd, out: &mut [u8]) -> std::io::Result<usize> {
        let taken = self.inner.driver.borrow_mut().take_received(fd, out);
        taken.unwrap_or_else(|| Err(std::io::ErrorKind::WouldBlock.into()))
    }

    /// What the backend received for `fd`, lent without a copy when it is
    /// all that waits in one buffer; give it back with
    /// [`give_back_received`](Reactor::give_back_received).
    pub(crate) fn lend_received(&self, fd: RawFd) -> Option<crate::backend::ReceivedBytes> {
        self.inner.driver.borrow_mut().lend_received(fd)
    }

    /// Takes back bytes [`lend_received`](Reactor::lend_received) lent.
    pub(crate) fn give_back_received(&self, bytes: crate::backend::ReceivedBytes) {
        self.inner.driver.borrow_mut().give_back_received(bytes);
    }

    /// As a one-byte `MSG_PEEK` on `fd`, from what the backend received for it.
    pub(crate) fn peek_received(&self, fd: RawFd) -> std::io::Result<usize> {
        let peeked = self.inner.driver.borrow_mut().peek_received(fd);
        peeked.unwrap_or_else(|| Err(std::io::ErrorKind::WouldBlock.into()))
    }

    /// A direct write on completion-served `fd` found its socket full: the
    /// backend announces it writable once there is room.
    pub(crate) fn await_room(&self, fd: RawFd) {
        self.inner.driver.borrow_mut().await_room(fd);
    }

    /// Starts connecting stream socket `fd` to `address` by a completion
    /// (IOCP's `ConnectEx`): `None` where the backend does not (call
    /// `connect` yourself). Its end is a writable event; its result comes
    /// from [`take_connect_result`](Reactor::take_connect_result).
    pub(crate) fn start_connect(
        &self,
        fd: RawFd,
        address: &socket2::SockAddr,
    ) -> Option<std::io::Result<()>> {
        self.inner.driver.borrow_mut().start_connect(fd, address)
    }

    /// The result of `fd`'s connect by completion, once it finished (`None`:
    /// none did; read `SO_ERROR`).
    pub(crate) fn take_connect_result(&self, fd: RawFd) -> Option<std::io::Result<()>> {
        self.inner.driver.borrow_mut().take_connect_result(fd)
    }

    /// Asks the backend to deliver listening socket `fd`'s connections by
    /// completions (io_uring's multishot accept); then
    /// [`take_accepted`](Reactor::take_accepted) replaces `accept(2)`. False
    /// where the backend does not.
    pub(crate) fn accept_completions(&self, fd: RawFd) -> bool {
        self.inner.driver.borrow_mut().accept_completions(fd)
    }

    /// As `accept4(2)` (non-blocking, close-on-exec) on `fd`, from what the
    /// backend accepted for it; `WouldBlock` when nothing waits; `None`: call
    /// `accept(2)` yourself this time (the backend is out of fds to accept
    /// with, and the port's own accept sheds what it cannot serve).
    pub(crate) fn take_accepted(&self, fd: RawFd) -> Option<std::io::Result<crate::sys::fd::OwnedFd>> {
        self.inner.driver.borrow_mut().take_accepted(fd)
    }

    /// Lends `buffer` to the backend to send `buffer[offset..]` on `fd`; it
    /// comes back from [`send_done`](Reactor::send_done), or with the error.
    pub(crate) fn send_lent(
        &self,
        fd: RawFd,
        buffer: Vec<u8>,
        offset: usize,
    ) -> Result<(), (std::io::Error, Vec<u8>)> {
        self.inner.driver.borrow_mut().send_lent(fd, buffer, offset)
    }

    /// Completion-served `fd`'s transport wants a writable event once no send
    /// is in flight (its write interest stays registered for its life).
    pub(crate) fn notify_writable(&self, fd: RawFd) {
        self.inner.driver.borrow_mut().notify_writable(fd);
    }

    /// The result of `fd`'s finished send and its buffer, if it finished,
    /// taken outside a writable event.
    pub(crate) fn take_send_result(&self, fd: RawFd) -> Option<(std::io::Result<usize>, Vec<u8>)> {
        self.inner.driver.borrow_mut().take_send_result(fd)
    }

    /// The result of `fd`'s finished send and its buffer, once.
    pub(crate) fn send_done(&self, fd: RawFd) -> Option<(std::io::Result<usize>, Vec<u8>)> {
        self.inner.driver.borrow_mut().send_done(fd)
    }

    /// `fd`'s connection closes: the backend drops what it received for it and
    /// cancels its send.
    pub(crate) fn forget_completions(&self, fd: RawFd) {
        self.inner.driver.borrow_mut().forget_completions(fd);
    }

    /// Lends out the reactor's read buffer. A nested pass that needs it meanwhile
    /// gets a fresh one, so the lender never aliases.
    pub(crate) fn take_read_buffer(&self) -> Vec<u8> {
        match self.inner.read_buffers.borrow_mut().pop() {
            Some(buffer) if buffer.len() == READ_BUFFER_SIZE => buffer,
            _ => vec![0; READ_BUFFER_SIZE],
        }
    }

    /// Returns the buffer lent by [`take_read_buffer`](Reactor::take_read_buffer).
    pub(crate) fn return_read_buffer(&self, buffer: Vec<u8>) {
        let mut spare = self.inner.read_buffers.borrow_mut();
        // Two cover a socket read plus TLS plaintext; more would only hold memory.
        if spare.len() < 2 {
            spare.push(buffer);
        }
    }

    /// Stop signals our handler recorded, while this run handles them.
    fn check_signals(&self) {
        let pending = match self.inner.signals.borrow().as_ref() {
            Some(guard) => guard.take_pending(),
            None => return,
        };
        if pending == 0 {
            return;
        }
        let signal = pending.trailing_zeros() as i32;
        if self.stop().is_ok() {
            self.inner.stop_signal.set(Some(signal));
            tracing::info!(signal, "received a stop signal; stopping the reactor");
            return;
        }
        // Already stopping: a second signal goes to the hook, if any.
        let hook = self.inner.repeated_signal.borrow().clone();
        if let Some(hook) = hook {
            hook(self, signal);
        }
    }

    /// The signal (SIGINT or SIGTERM) that stopped the current or last run, if a
    /// signal did (Twisted's `_exitSignal`): a program exiting after `run()`
    /// may then re-raise it or exit with `128 + signal`. Cleared when a run
    /// starts.
    pub fn stop_signal(&self) -> Option<i32> {
        self.inner.stop_signal.get()
    }

    /// Runs `hook` with the signal number when SIGINT or SIGTERM arrives while
    /// the reactor is already shutting down (by default such a signal is ignored;
    /// the shutdown goes on). The `torque` command uses it to exit at once on a
    /// second Ctrl-C while in-flight work is still being finished.
    pub fn on_repeated_stop_signal(&self, hook: impl Fn(&Reactor, i32) + 'static) {
        *self.inner.repeated_signal.borrow_mut() = Some(Rc::new(hook));
    }

    /// The number of registered fds.
    pub fn registered_fds(&self) -> usize {
        self.inner.fds.borrow().len()
    }
}

/// Dropping the last handle closes whatever is still registered — connections,
/// listening ports, process pipes, fd handlers — as a shutdown would: each is
/// told [`LostReason::Shutdown`] and protocols hear `connection_lost`. A
/// connection and its protocol, producer or handler hold each other, so
/// without this a reactor dropped before shutting down (one driven by
/// `iterate`, say) would leak their fds.
impl Drop for Reactor {
    fn drop(&mut self) {
        // A handle made inside (a callback cloning the reactor) is not the
        // last: it drops with the count still above one.
        if Rc::strong_count(&self.inner) == 1 && self.registered_fds() > 0 {
            self.disconnect_all();
            self.run_end_of_pass();
        }
    }
}

/// Reactors compare by identity: two handles are equal when they drive the
/// same loop.
impl PartialEq for Reactor {
    fn eq(&self, other: &Reactor) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Reactor {}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &self.backend().name)
            .field("running", &self.is_running())
            .field("fds", &self.registered_fds())
            .field("timers", &self.inner.live_timers.get())
            .finish()
    }
}

/// Leaves a dispatching pass (also when a callback unwinds through it).
struct DepthGuard<'a>(&'a Cell<usize>);

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
