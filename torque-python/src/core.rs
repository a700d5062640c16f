//! `Core`: the Torque reactor a Python `TorqueReactor` holds.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};
use torque::{BackendKind, Reactor, ReactorError, ReactorHandle};

use crate::fdset::{Descriptor, Dispatch, FdState, NativeRead};
use crate::interpreter::ReleaseInterpreter;
use crate::stream::StreamCalls;
use crate::timers::TimedCalls;

/// The longest single wait: `doIteration(None)` waits "forever", which
/// Twisted's main loop repeats anyway.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// One registered fd: its handler and what it is registered for.
struct Registration {
    handler: Rc<RefCell<Descriptor>>,
    state: Rc<FdState>,
    read: bool,
    write: bool,
}

/// A Torque reactor serving a Python `TorqueReactor`: the wait and the fd set.
/// It belongs to the thread that made it: a call from another thread is a
/// `RuntimeError` (other threads wake it through [`ThreadWaker`]).
#[pyclass(frozen, module = "torque_twisted._core")]
pub(crate) struct Core(OnOwnThread<CoreState>);

/// What a [`Core`] holds, on its own thread.
struct CoreState {
    reactor: Reactor,
    dispatch: Rc<Dispatch>,
    registered: RefCell<HashMap<RawFd, Registration>>,
    /// How many times `iterate` ran.
    passes: Cell<u64>,
    /// `callLater`'s queue.
    timers: TimedCalls,
}

#[pymethods]
impl Core {
    /// `Core(event, lost, stream_ended, stream_failed, buffered_write,
    /// buffered_write_sequence, log_key, tracker, backend=None)`: `event(selectable, fd, flag)` is
    /// called for each readiness event (`flag` is `READ` or `WRITE`), and
    /// `lost(selectable, fd, fd_closed, why)` when the reactor drops a
    /// registration on its own. Connections read natively call
    /// `stream_ended(transport, lost)` at end of file or a read error and
    /// `stream_failed(transport, exception)` when `dataReceived` raised;
    /// `buffered_write(transport, data)` and
    /// `buffered_write_sequence(transport, items)` are Twisted's own, for
    /// what cannot be sent at once. `log_key` and `tracker` are Twisted's
    /// `ILogContext` and `theContextTracker`. `backend` names a Torque backend
    /// (`epoll`, `poll`, `select`, `io_uring`); by default `TORQUE_REACTOR` or
    /// the platform's best.
    #[new]
    #[pyo3(signature = (event, lost, stream_ended, stream_failed, buffered_write, buffered_write_sequence, log_key, tracker, backend = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        event: Py<PyAny>,
        lost: Py<PyAny>,
        stream_ended: Py<PyAny>,
        stream_failed: Py<PyAny>,
        buffered_write: Py<PyAny>,
        buffered_write_sequence: Py<PyAny>,
        log_key: Py<PyAny>,
        tracker: Py<PyAny>,
        backend: Option<&str>,
    ) -> PyResult<Self> {
        let mut builder = Reactor::builder().handle_signals(false).wait_hook(ReleaseInterpreter::new());
        if let Some(name) = backend {
            let kind: BackendKind =
                name.parse().map_err(|e: ReactorError| PyValueError::new_err(e.to_string()))?;
            builder = builder.backend(kind);
        }
        let reactor = builder.build().map_err(to_python)?;
        let stream = StreamCalls::new(
            stream_ended,
            stream_failed,
            buffered_write,
            buffered_write_sequence,
            log_key,
            tracker,
        );
        let dispatch = Rc::new(Dispatch {
            event,
            lost,
            stream,
            deliveries: RefCell::new(Vec::new()),
            error: RefCell::new(None),
        });
        Ok(Core(OnOwnThread::new(CoreState {
            reactor,
            dispatch,
            registered: RefCell::new(HashMap::new()),
            passes: Cell::new(0),
            timers: TimedCalls::default(),
        })))
    }

    /// The backend's name.
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        let this = self.0.get()?;
        Ok(this.reactor.backend().name)
    }

    /// Registers `fd` (owned by `selectable`) for exactly `read` and `write`;
    /// neither removes it. With `native_read` 1 (a TCP connection) or 2 (a
    /// UNIX one, which may carry descriptors), `selectable` is one of
    /// Twisted's own stream connections, whose `doRead` the reactor does
    /// itself.
    #[pyo3(signature = (fd, selectable, read, write, native_read = 0))]
    fn set_interest(
        &self,
        py: Python<'_>,
        fd: RawFd,
        selectable: Py<PyAny>,
        read: bool,
        write: bool,
        native_read: u8,
    ) -> PyResult<()> {
        let this = self.0.get()?;
        if fd < 0 {
            return Err(PyValueError::new_err(format!("invalid file descriptor {fd}")));
        }
        let (handler, was_read, was_write) = {
            let mut registered = this.registered.borrow_mut();
            let entry = registered.entry(fd).or_insert_with(|| {
                let state = Rc::new(FdState::new(fd, selectable.clone_ref(py)));
                let handler = Descriptor { state: state.clone(), dispatch: this.dispatch.clone() };
                Registration { handler: Rc::new(RefCell::new(handler)), state, read: false, write: false }
            });
            let swapped = !entry.state.selectable.borrow().is(&selectable);
            if swapped {
                // Another object on a reused fd number: its own stream state.
                entry.state.sent_in_pass.set(u64::MAX);
                *entry.state.selectable.borrow_mut() = selectable;
            }
            entry.state.native_read.set(if read {
                NativeRead::from_code(native_read)
            } else {
                NativeRead::No
            });
            let was = (entry.read, entry.write);
            entry.read = read;
            entry.write = write;
            let handler = entry.handler.clone();
            if !read && !write {
                registered.remove(&fd);
            }
            (handler, was.0, was.1)
        };
        // SAFETY: as `Descriptor::as_fd`: the selectable keeps the fd open
        // while it is registered, and only the number is read.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        if was_read && !read {
            this.reactor.remove_reader(borrowed);
        }
        if was_write && !write {
            this.reactor.remove_writer(borrowed);
        }
        let mut added = Ok(());
        if read && !was_read {
            added = this.reactor.add_reader(&handler);
        }
        if added.is_ok() && write && !was_write {
            added = this.reactor.add_writer(&handler);
        }
        if let Err(e) = added {
            // Refused: forget it, as the registry did.
            this.registered.borrow_mut().remove(&fd);
            this.reactor.remove_reader(borrowed);
            this.reactor.remove_writer(borrowed);
            return Err(to_python(e));
        }
        Ok(())
    }

    /// Waits for events for at most `timeout` seconds (`None`: until
    /// something happens) and dispatches them; re-raises the first exception
    /// a dispatch function let out.
    #[pyo3(signature = (timeout = None))]
    fn iterate(&self, timeout: Option<f64>) -> PyResult<()> {
        let this = self.0.get()?;
        let wait = match timeout {
            None => LONGEST_WAIT,
            Some(t) if t.is_nan() || t <= 0.0 => Duration::ZERO,
            Some(t) => Duration::from_secs_f64(t.min(LONGEST_WAIT.as_secs_f64())),
        };
        // Counted before dispatching: writes and timers of this pass see one number.
        this.passes.set(this.passes.get() + 1);
        let result = this.reactor.iterate(wait);
        if let Some(e) = this.dispatch.error.borrow_mut().take() {
            return Err(e);
        }
        result.map_err(to_python)
    }

    /// Twisted's `write` for a connection read natively (see [`crate::send`]).
    fn write(&self, py: Python<'_>, transport: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = self.0.get()?;
        let state = this.idle_stream(py, transport)?;
        crate::send::write(py, state.as_deref(), transport, data, &this.dispatch, this.passes.get())
    }

    /// Twisted's `writeSequence` for a connection read natively (see
    /// [`crate::send`]).
    fn write_sequence(
        &self,
        py: Python<'_>,
        transport: &Bound<'_, PyAny>,
        items: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let this = self.0.get()?;
        let state = this.idle_stream(py, transport)?;
        crate::send::write_sequence(py, state.as_deref(), transport, items, &this.dispatch, this.passes.get())
    }

    /// Whether a write to `transport` went out at once since the last
    /// iteration: Twisted would still be waiting to flush it, and a pull
    /// producer registered now expects that flush to ask it for more.
    fn sent_this_pass(&self, py: Python<'_>, transport: &Bound<'_, PyAny>) -> PyResult<bool> {
        let this = self.0.get()?;
        let fd: RawFd = transport.call_method0(pyo3::intern!(py, "fileno"))?.extract()?;
        let passes = this.passes.get();
        Ok(this.registered.borrow().get(&fd).is_some_and(|r| r.state.sent_in_pass.get() == passes))
    }

    /// Queues a new `DelayedCall` (from `callLater`).
    fn schedule_timer(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.get()?.timers.schedule(py, call)
    }

    /// A queued `DelayedCall` was brought forward (its resetter).
    fn timer_moved_sooner(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.get()?.timers.moved_sooner(py, call)
    }

    /// A `DelayedCall` was cancelled (its canceller).
    fn timer_cancelled(&self) -> PyResult<()> {
        self.0.get()?.timers.note_cancelled();
        Ok(())
    }

    /// Queues the calls scheduled since the last pass.
    fn insert_new_timers(&self, py: Python<'_>) -> PyResult<()> {
        self.0.get()?.timers.insert_new(py)
    }

    /// Seconds from `now` until the earliest call is due, or `None`.
    fn timer_timeout(&self, py: Python<'_>, now: f64) -> PyResult<Option<f64>> {
        self.0.get()?.timers.timeout(py, now)
    }

    /// Runs the calls due at `now`; `failed(call, exception)` handles one
    /// that raised.
    fn run_timers(&self, py: Python<'_>, now: f64, failed: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.get()?.timers.run_due(py, now, failed)
    }

    /// The live `DelayedCall`s.
    fn delayed_calls(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.0.get()?.timers.live(py)
    }

    /// A handle other threads use to wake this reactor.
    fn waker(&self) -> PyResult<ThreadWaker> {
        let this = self.0.get()?;
        Ok(ThreadWaker(this.reactor.handle()))
    }

    /// Lets Python's garbage collector see what the core holds: the reactor
    /// (through its callbacks), the selectables and the timed calls, so a
    /// dropped reactor is collected, fds and all. Another thread sees nothing.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(this) = self.0.here() else { return Ok(()) };
        let dispatch = &this.dispatch;
        visit.call(&dispatch.event)?;
        visit.call(&dispatch.lost)?;
        dispatch.stream.traverse(&visit)?;
        if let Ok(deliveries) = dispatch.deliveries.try_borrow() {
            for delivery in deliveries.iter() {
                visit.call(delivery.transport())?;
            }
        }
        if let Ok(registered) = this.registered.try_borrow() {
            for registration in registered.values() {
                if let Ok(selectable) = registration.state.selectable.try_borrow() {
                    visit.call(&*selectable)?;
                }
                registration.state.log_context.traverse(&visit)?;
            }
        }
        this.timers.traverse(&visit)
    }

    /// Breaks the cycles the collector found: drops the registrations (the
    /// backend's too) and the timed calls.
    fn __clear__(&self) {
        let Some(this) = self.0.here() else { return };
        let registered = this.registered.try_borrow_mut().map(|mut r| std::mem::take(&mut *r));
        drop(this.reactor.remove_all());
        drop(registered);
        this.timers.clear();
    }

    /// How many fds are registered.
    fn __len__(&self) -> PyResult<usize> {
        let this = self.0.get()?;
        Ok(this.registered.borrow().len())
    }
}

impl CoreState {
    /// `transport`'s fd state if it is registered natively, as itself, and
    /// not waiting for writability (so Twisted's buffer is empty).
    fn idle_stream(&self, py: Python<'_>, transport: &Bound<'_, PyAny>) -> PyResult<Option<Rc<FdState>>> {
        let fd: RawFd = transport.call_method0(pyo3::intern!(py, "fileno"))?.extract()?;
        Ok(match self.registered.borrow().get(&fd) {
            Some(r)
                if r.state.native_read.get() != NativeRead::No
                    && !r.write
                    && r.state.selectable.borrow().is(transport) =>
            {
                Some(r.state.clone())
            }
            _ => None,
        })
    }
}

/// A value that stays on the thread that made it: reached only from there
/// (elsewhere `get` is a `RuntimeError`, where PyO3's `unsendable` would
/// panic) and dropped only there (elsewhere it is leaked).
struct OnOwnThread<T> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

impl<T> OnOwnThread<T> {
    fn new(value: T) -> Self {
        OnOwnThread { owner: std::thread::current().id(), value: ManuallyDrop::new(value) }
    }

    /// The value, on its own thread.
    fn here(&self) -> Option<&T> {
        (std::thread::current().id() == self.owner).then_some(&*self.value)
    }

    fn get(&self) -> PyResult<&T> {
        if std::thread::current().id() == self.owner {
            Ok(&self.value)
        } else {
            Err(PyRuntimeError::new_err(
                "the Torque reactor was called from a thread other than its own; use reactor.callFromThread",
            ))
        }
    }
}

impl<T> Drop for OnOwnThread<T> {
    fn drop(&mut self) {
        if std::thread::current().id() == self.owner {
            // SAFETY: dropped once, here, on the thread that owns it.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
    }
}

// SAFETY: the value (`Rc`s, the reactor) is only ever touched on its owner
// thread: `get` refuses other threads, and `drop` leaks it there.
unsafe impl<T> Send for OnOwnThread<T> {}
// SAFETY: as for `Send`: a shared reference from another thread cannot reach
// the value.
unsafe impl<T> Sync for OnOwnThread<T> {}

/// Wakes a [`Core`]'s wait from any thread (Twisted's `wakeUp`).
#[pyclass(frozen, module = "torque_twisted._core")]
pub(crate) struct ThreadWaker(ReactorHandle);

#[pymethods]
impl ThreadWaker {
    /// Ends the reactor's current or next wait.
    fn wake(&self) {
        self.0.wake();
    }
}

fn to_python(e: ReactorError) -> PyErr {
    match e {
        ReactorError::Register { source, .. } => {
            PyOSError::new_err((source.raw_os_error().unwrap_or(0), source.to_string()))
        }
        ReactorError::Os(source) => {
            PyOSError::new_err((source.raw_os_error().unwrap_or(0), source.to_string()))
        }
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
