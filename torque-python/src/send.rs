//! The write side of Twisted's own stream connections: a write to a connection
//! with nothing queued goes to the socket without waiting a pass for
//! writability; writes made while the connection's own `dataReceived` runs
//! are held and sent together when it returns (a request's headers and body
//! in one `write(2)`). Whatever the socket does not take, and every write
//! this cannot serve exactly as Twisted would (TLS, pull producers, a closed,
//! half-closed or aborted transport, queued data), goes to Twisted's own
//! buffering `write`, after anything held.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::fdset::FdState;
use crate::stream::StreamCalls;

/// The largest write held back to go out with the others of its delivery;
/// bigger ones are sent at once, after what is held.
const HOLD_LIMIT: usize = 64 * 1024;

/// Twisted's `transport.write(data)` for a connection read natively.
/// `state` is its fd's state if it is registered natively and not waiting for
/// writability (Twisted's buffer is empty); `pass` is the reactor's pass.
pub(crate) fn write(
    py: Python<'_>,
    state: Option<&FdState>,
    transport: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    calls: &StreamCalls,
    pass: u64,
) -> PyResult<()> {
    let Some(state) = state else {
        return calls.buffered_write.call1(py, (transport, data)).map(drop);
    };
    let Ok(bytes) = data.cast::<PyBytes>() else {
        return to_twisted(py, state, transport, data, calls);
    };
    let bytes = bytes.as_bytes();
    if !may_send_now(py, state, transport, bytes.len())? {
        return to_twisted(py, state, transport, data, calls);
    }
    state.sent_in_pass.set(pass);
    if state.delivering.get() && bytes.len() <= HOLD_LIMIT {
        state.held.borrow_mut().extend_from_slice(bytes);
        return Ok(());
    }
    flush_held(py, state, transport, calls)?;
    send(py, state, transport, bytes, calls)
}

/// Twisted's `transport.writeSequence(items)` for a connection read
/// natively: as one `write` of the items joined, when they are all bytes.
pub(crate) fn write_sequence(
    py: Python<'_>,
    state: Option<&FdState>,
    transport: &Bound<'_, PyAny>,
    items: &Bound<'_, PyAny>,
    calls: &StreamCalls,
    pass: u64,
) -> PyResult<()> {
    let twisted = |state: Option<&FdState>| -> PyResult<()> {
        if let Some(state) = state {
            flush_held(py, state, transport, calls)?;
        }
        calls.buffered_write_sequence.call1(py, (transport, items)).map(drop)
    };
    let Some(state) = state else { return twisted(None) };
    let Ok(list) = items.cast::<PyList>() else { return twisted(Some(state)) };
    let mut total = 0;
    for item in list.iter() {
        match item.cast::<PyBytes>() {
            Ok(bytes) => total += bytes.as_bytes().len(),
            // Twisted's writeSequence raises the TypeError for it.
            Err(_) => return twisted(Some(state)),
        }
    }
    if !may_send_now(py, state, transport, total)? {
        return twisted(Some(state));
    }
    state.sent_in_pass.set(pass);
    if state.delivering.get() && total <= HOLD_LIMIT {
        let mut held = state.held.borrow_mut();
        for item in list.iter() {
            held.extend_from_slice(item.cast::<PyBytes>()?.as_bytes());
        }
        return Ok(());
    }
    flush_held(py, state, transport, calls)?;
    let mut joined = Vec::with_capacity(total);
    for item in list.iter() {
        joined.extend_from_slice(item.cast::<PyBytes>()?.as_bytes());
    }
    send(py, state, transport, &joined, calls)
}

/// Sends what `write` held during a delivery (dropped if the connection was
/// lost or aborted meanwhile, as Twisted drops its buffer then).
pub(crate) fn flush_held(
    py: Python<'_>,
    state: &FdState,
    transport: &Bound<'_, PyAny>,
    calls: &StreamCalls,
) -> PyResult<()> {
    if state.held.borrow().is_empty() {
        return Ok(());
    }
    let held = std::mem::take(&mut *state.held.borrow_mut());
    if !transport.getattr(pyo3::intern!(py, "connected"))?.is_truthy()?
        || transport.getattr(pyo3::intern!(py, "_aborting"))?.is_truthy()?
    {
        return Ok(());
    }
    send(py, state, transport, &held, calls)
}

/// Twisted's write, after what is held (so bytes keep their order).
fn to_twisted(
    py: Python<'_>,
    state: &FdState,
    transport: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    calls: &StreamCalls,
) -> PyResult<()> {
    flush_held(py, state, transport, calls)?;
    calls.buffered_write.call1(py, (transport, data)).map(drop)
}

/// Whether `len` more bytes may bypass Twisted's buffer with nothing about
/// the transport's behaviour changing: no TLS (its layer writes), connected
/// and not closing its write side or aborting, and no producer, or a
/// streaming one that Twisted would not pause for what is held plus this
/// (it pauses when its buffer passes `bufferSize`). A pull producer is asked
/// for more when Twisted's buffer drains, so its writes stay there.
fn may_send_now(py: Python<'_>, state: &FdState, transport: &Bound<'_, PyAny>, len: usize) -> PyResult<bool> {
    if transport.getattr(pyo3::intern!(py, "TLS"))?.is_truthy()?
        || !transport.getattr(pyo3::intern!(py, "connected"))?.is_truthy()?
        || transport.getattr(pyo3::intern!(py, "_writeDisconnected"))?.is_truthy()?
        || transport.getattr(pyo3::intern!(py, "_aborting"))?.is_truthy()?
    {
        return Ok(false);
    }
    if transport.getattr(pyo3::intern!(py, "producer"))?.is_none() {
        return Ok(true);
    }
    if !transport.getattr(pyo3::intern!(py, "streamingProducer"))?.is_truthy()? {
        return Ok(false);
    }
    let limit: usize = transport.getattr(pyo3::intern!(py, "bufferSize"))?.extract()?;
    Ok(state.held.borrow().len() + len <= limit)
}

/// `write(2)` now; the rest, or all after an error (which Twisted's flush or
/// the next read reports), to Twisted's buffer.
fn send(
    py: Python<'_>,
    state: &FdState,
    transport: &Bound<'_, PyAny>,
    bytes: &[u8],
    calls: &StreamCalls,
) -> PyResult<()> {
    let sent = match torque::fd::write(state, bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => {
            // The socket's error is consumed: the end of file that follows
            // is a lost connection.
            state.send_failed.set(true);
            0
        }
    };
    if sent == bytes.len() {
        return Ok(());
    }
    let rest = PyBytes::new(py, &bytes[sent..]);
    calls.buffered_write.call1(py, (transport, rest)).map(drop)
}
