//! The hot path of Twisted's own stream connections (`tcp.Server`,
//! `tcp.Client`, and their UNIX twins without fd passing): the reactor reads
//! the socket itself and calls the protocol's `dataReceived` directly, inside
//! the same log context `log.callWithLogger` would give it, and a write to an
//! idle connection is sent at once instead of waiting a pass for writability.
//! Everything rarer (end of file, errors, buffering, producers, TLS) is
//! Twisted's own Python code.

use std::cell::{OnceCell, RefCell};
use std::io;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::{PyTraverseError, PyVisit};

use std::os::fd::IntoRawFd;

use crate::fdset::{Descriptor, NativeRead};

/// How much one read takes (Twisted's `bufferSize`).
const READ_SIZE: usize = 64 * 1024;

/// The Python functions native reads fall back on, and the state they share.
pub(crate) struct StreamCalls {
    /// `ended(transport, lost)`: end of file (`lost` false) or a read error.
    pub(crate) ended: Py<PyAny>,
    /// `failed(transport, exception)`: `dataReceived` raised.
    pub(crate) failed: Py<PyAny>,
    /// Twisted's own `write` for stream connections (it buffers, and knows TLS).
    pub(crate) buffered_write: Py<PyAny>,
    /// Twisted's own `writeSequence` for them.
    pub(crate) buffered_write_sequence: Py<PyAny>,
    /// `twisted.python.log.ILogContext`, the key of the logging context.
    pub(crate) log_key: Py<PyAny>,
    /// `twisted.python.context.theContextTracker`.
    pub(crate) tracker: Py<PyAny>,
    /// The reactor thread's context stack, found on first use.
    pub(crate) contexts: OnceCell<Py<PyList>>,
    pub(crate) buffer: RefCell<Vec<u8>>,
}

impl StreamCalls {
    /// Visits every Python object held, for the garbage collector.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for object in [
            &self.ended,
            &self.failed,
            &self.buffered_write,
            &self.buffered_write_sequence,
            &self.log_key,
            &self.tracker,
        ] {
            visit.call(object)?;
        }
        if let Some(contexts) = self.contexts.get() {
            visit.call(contexts)?;
        }
        Ok(())
    }

    pub(crate) fn new(
        ended: Py<PyAny>,
        failed: Py<PyAny>,
        buffered_write: Py<PyAny>,
        buffered_write_sequence: Py<PyAny>,
        log_key: Py<PyAny>,
        tracker: Py<PyAny>,
    ) -> Self {
        StreamCalls {
            ended,
            failed,
            buffered_write,
            buffered_write_sequence,
            log_key,
            tracker,
            contexts: OnceCell::new(),
            buffer: RefCell::new(vec![0; READ_SIZE]),
        }
    }
}

/// The context dict last pushed for one connection, with what it was made
/// from: the stack's top and the log prefix. Both rarely change.
#[derive(Default)]
pub(crate) struct LogContextCache(RefCell<Option<PushedContext>>);

impl LogContextCache {
    /// Visits the cached objects (none while the cache is in use).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(cache) = self.0.try_borrow() {
            if let Some((top, prefix, pushed)) = cache.as_ref() {
                visit.call(top)?;
                visit.call(prefix)?;
                visit.call(pushed)?;
            }
        }
        Ok(())
    }
}

/// (the stack's top, the log prefix, the dict pushed).
type PushedContext = (Py<PyAny>, Py<PyAny>, Py<PyAny>);

/// A readable event on a native-read connection.
pub(crate) fn read(descriptor: &Descriptor) {
    let calls = &descriptor.dispatch.stream;
    let mut fds = Vec::new();
    let outcome = {
        let mut buffer = calls.buffer.borrow_mut();
        let received = match descriptor.state.native_read.get() {
            NativeRead::ReceiveFds => torque::fd::recv_with_fds(descriptor, &mut buffer, &mut fds),
            _ => torque::fd::read(descriptor, &mut buffer),
        };
        match received {
            Ok(0) => Err(false),
            Ok(n) => Ok(Python::attach(|py| PyBytes::new(py, &buffer[..n]).unbind())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                return;
            }
            Err(_) => Err(true),
        }
    };
    Python::attach(|py| {
        let transport = descriptor.state.selectable.borrow().clone_ref(py);
        let transport = transport.bind(py);
        // Descriptors first, as Twisted's UNIX doRead hands them over.
        if !fds.is_empty() {
            let packed: Vec<u8> = fds.into_iter().flat_map(|fd| fd.into_raw_fd().to_ne_bytes()).collect();
            let packed = PyBytes::new(py, &packed);
            let handed = in_log_context(py, descriptor, transport, || {
                transport.call_method1(pyo3::intern!(py, "_ancillaryLevelSOLSOCKETTypeSCMRIGHTS"), (packed,))
            });
            if let Err(e) = handed {
                let result = calls.failed.call1(py, (transport, e.into_value(py)));
                descriptor.dispatch.keep_first(result);
                return;
            }
        }
        let result = match outcome {
            Ok(data) => {
                let dispatch = &descriptor.dispatch;
                crate::send::begin_delivery(dispatch, transport);
                let delivered = in_log_context(py, descriptor, transport, || {
                    let protocol = transport.getattr(pyo3::intern!(py, "protocol"))?;
                    protocol.call_method1(pyo3::intern!(py, "dataReceived"), (data.bind(py),))
                });
                let handled = match delivered {
                    Ok(_) => Ok(()),
                    Err(e) => calls.failed.call1(py, (transport, e.into_value(py))).map(drop),
                };
                // What it wrote, in one write(2): after a failure the
                // connection is gone and this drops it.
                let flushed = crate::send::end_delivery(py, dispatch, transport);
                handled.and(flushed)
            }
            Err(lost) => {
                // After a send that met the peer's reset, which consumed the
                // socket's error, the end of file is a lost connection.
                let send_failed = transport
                    .getattr_opt(pyo3::intern!(py, "_torqueSendFailed"))
                    .ok()
                    .flatten()
                    .is_some_and(|v| v.is_truthy().unwrap_or(false));
                calls.ended.call1(py, (transport, lost || send_failed)).map(drop)
            }
        };
        descriptor.dispatch.keep_first(result);
    });
}

/// Runs `call` with the transport's log prefix as the logging system, as
/// `log.callWithLogger(transport, ...)` does.
fn in_log_context<'py>(
    py: Python<'py>,
    descriptor: &Descriptor,
    transport: &Bound<'py, PyAny>,
    call: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let contexts = contexts(py, &descriptor.dispatch.stream)?;
    let pushed = log_context(py, descriptor, transport, contexts)?;
    contexts.append(pushed)?;
    let result = call();
    // Pop what was pushed, even if the protocol pushed and forgot to pop.
    let depth = contexts.len();
    if depth > 0 {
        contexts.del_item(depth - 1)?;
    }
    result
}

fn contexts<'a, 'py>(py: Python<'py>, calls: &'a StreamCalls) -> PyResult<&'a Bound<'py, PyList>> {
    if calls.contexts.get().is_none() {
        let current = calls.tracker.bind(py).call_method0("currentContext")?;
        let list = current.getattr("contexts")?.cast_into::<PyList>()?;
        let _ = calls.contexts.set(list.unbind());
    }
    Ok(calls.contexts.get().expect("just set").bind(py))
}

/// The dict to push: the stack's top with the log context's `system` set to
/// the transport's log prefix. Made again only when the top or the prefix
/// changed.
fn log_context<'py>(
    py: Python<'py>,
    descriptor: &Descriptor,
    transport: &Bound<'py, PyAny>,
    contexts: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyAny>> {
    let prefix = transport.call_method0(pyo3::intern!(py, "logPrefix"))?;
    let top = contexts.get_item(contexts.len().saturating_sub(1))?;
    let mut cache = descriptor.state.log_context.0.borrow_mut();
    if let Some((cached_top, cached_prefix, pushed)) = cache.as_ref() {
        if cached_top.is(&top) && (cached_prefix.is(&prefix) || cached_prefix.bind(py).eq(&prefix)?) {
            return Ok(pushed.bind(py).clone());
        }
    }
    let key = descriptor.dispatch.stream.log_key.bind(py);
    let merged = top.cast::<PyDict>()?.copy()?;
    let log = match merged.get_item(key)? {
        Some(previous) => previous.cast::<PyDict>()?.copy()?,
        None => PyDict::new(py),
    };
    log.set_item("system", &prefix)?;
    merged.set_item(key, log)?;
    let pushed = merged.into_any();
    *cache = Some((top.unbind(), prefix.unbind(), pushed.clone().unbind()));
    Ok(pushed)
}
