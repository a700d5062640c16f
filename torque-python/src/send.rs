//! The write side of Twisted's own stream connections: a write to a connection
//! with nothing queued goes to the socket without waiting a pass for
//! writability, and writes made while the connection's own `dataReceived`
//! runs are held and sent together when it returns (a request's headers and
//! body in one `write(2)`, so Nagle never holds the second back).
//!
//! Held bytes belong to the delivery (the transport whose `dataReceived` is
//! running), not to its fd registration, which may be dropped and made again
//! meanwhile (`pauseProducing` then `resumeProducing`). Order is kept with
//! Twisted's own buffer both ways: before a write takes Twisted's path the
//! held bytes are flushed, and a flush finding Twisted's buffer non-empty
//! (something wrote around this module, as TLS does) puts them at its front.
//! Every write this cannot serve exactly as Twisted would (TLS, pull
//! producers, a streaming producer's pause point, a closed, half-closed or
//! aborted transport, queued data) and whatever the socket does not take go
//! to Twisted's own buffering `write`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::fdset::{Dispatch, FdState};
use crate::stream::StreamCalls;

/// The largest write held back to go out with the others of its delivery;
/// bigger ones are sent at once, after what is held.
const HOLD_LIMIT: usize = 64 * 1024;

/// A connection whose `dataReceived` is running, and what it wrote meanwhile.
pub(crate) struct Delivery {
    transport: Py<PyAny>,
    held: Vec<u8>,
}

impl Delivery {
    /// The transport, for the garbage collector.
    pub(crate) fn transport(&self) -> &Py<PyAny> {
        &self.transport
    }
}

/// Starts holding `transport`'s writes (its `dataReceived` is about to run).
pub(crate) fn begin_delivery(dispatch: &Dispatch, transport: &Bound<'_, PyAny>) {
    dispatch
        .deliveries
        .borrow_mut()
        .push(Delivery { transport: transport.clone().unbind(), held: Vec::new() });
}

/// Ends the innermost delivery, sending what it held (dropped if the
/// connection was lost or aborted meanwhile, as Twisted drops its buffer).
pub(crate) fn end_delivery(
    py: Python<'_>,
    dispatch: &Dispatch,
    transport: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let delivery = dispatch.deliveries.borrow_mut().pop();
    match delivery {
        Some(d) => flush(py, transport, &d.held, &dispatch.stream),
        None => Ok(()),
    }
}

/// Takes what `transport`'s running delivery holds, if it is running.
fn take_held(py: Python<'_>, dispatch: &Dispatch, transport: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut deliveries = dispatch.deliveries.borrow_mut();
    let delivery = deliveries.iter_mut().rev().find(|d| d.transport.bind(py).is(transport))?;
    Some(std::mem::take(&mut delivery.held))
}

/// Holds `bytes` if `transport`'s delivery is running; false if it is not.
fn hold(py: Python<'_>, dispatch: &Dispatch, transport: &Bound<'_, PyAny>, parts: &[&[u8]]) -> bool {
    let mut deliveries = dispatch.deliveries.borrow_mut();
    match deliveries.iter_mut().rev().find(|d| d.transport.bind(py).is(transport)) {
        Some(delivery) => {
            for part in parts {
                delivery.held.extend_from_slice(part);
            }
            true
        }
        None => false,
    }
}

fn held_len(py: Python<'_>, dispatch: &Dispatch, transport: &Bound<'_, PyAny>) -> usize {
    let deliveries = dispatch.deliveries.borrow();
    deliveries.iter().rev().find(|d| d.transport.bind(py).is(transport)).map_or(0, |d| d.held.len())
}

/// Twisted's `transport.write(data)` for a connection read natively.
/// `state` is its fd's state if it is registered natively and not waiting for
/// writability (Twisted's buffer is empty); `pass` is the reactor's pass.
pub(crate) fn write(
    py: Python<'_>,
    state: Option<&FdState>,
    transport: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    dispatch: &Dispatch,
    pass: u64,
) -> PyResult<()> {
    let bytes = data.cast::<PyBytes>().ok().map(|b| b.as_bytes());
    if let (Some(state), Some(bytes)) = (state, bytes) {
        if bypass(py, state, transport, &[bytes], dispatch, pass)? {
            return Ok(());
        }
    }
    flush_held(py, dispatch, transport)?;
    dispatch.stream.buffered_write.call1(py, (transport, data)).map(drop)
}

/// Holds `parts` (the running delivery's) or sends them now, if they may
/// bypass Twisted's buffer; false if they must take Twisted's path.
fn bypass(
    py: Python<'_>,
    state: &FdState,
    transport: &Bound<'_, PyAny>,
    parts: &[&[u8]],
    dispatch: &Dispatch,
    pass: u64,
) -> PyResult<bool> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if !may_send_now(py, transport, held_len(py, dispatch, transport) + total)? {
        return Ok(false);
    }
    state.sent_in_pass.set(pass);
    if total <= HOLD_LIMIT && hold(py, dispatch, transport, parts) {
        return Ok(true);
    }
    flush_held(py, dispatch, transport)?;
    match parts {
        // One write: sent from Python's bytes, no copy.
        [only] => send(py, transport, only, &dispatch.stream)?,
        _ => send(py, transport, &parts.concat(), &dispatch.stream)?,
    }
    Ok(true)
}

/// Twisted's `transport.writeSequence(items)` for a connection read
/// natively: as one `write` of the items joined, when they are all bytes.
pub(crate) fn write_sequence(
    py: Python<'_>,
    state: Option<&FdState>,
    transport: &Bound<'_, PyAny>,
    items: &Bound<'_, PyAny>,
    dispatch: &Dispatch,
    pass: u64,
) -> PyResult<()> {
    if let (Some(state), Ok(list)) = (state, items.cast::<PyList>()) {
        let mut parts = Vec::with_capacity(list.len());
        let mut all_bytes = true;
        for item in list.iter() {
            match item.cast_into::<PyBytes>() {
                Ok(bytes) => parts.push(bytes),
                Err(_) => {
                    all_bytes = false;
                    break;
                }
            }
        }
        if all_bytes {
            let slices: Vec<&[u8]> = parts.iter().map(|b| b.as_bytes()).collect();
            if bypass(py, state, transport, &slices, dispatch, pass)? {
                return Ok(());
            }
        }
    }
    // Twisted's writeSequence raises the TypeError for anything not bytes.
    flush_held(py, dispatch, transport)?;
    dispatch.stream.buffered_write_sequence.call1(py, (transport, items)).map(drop)
}

/// Sends what `transport`'s running delivery holds, before something else is
/// written (so bytes keep their order).
fn flush_held(py: Python<'_>, dispatch: &Dispatch, transport: &Bound<'_, PyAny>) -> PyResult<()> {
    match take_held(py, dispatch, transport) {
        Some(held) => flush(py, transport, &held, &dispatch.stream),
        None => Ok(()),
    }
}

/// Sends `held`: at once if Twisted's buffer is empty, else in front of
/// what it holds; nothing if the connection was lost or aborted.
fn flush(py: Python<'_>, transport: &Bound<'_, PyAny>, held: &[u8], calls: &StreamCalls) -> PyResult<()> {
    if held.is_empty()
        || !transport.getattr(pyo3::intern!(py, "connected"))?.is_truthy()?
        || transport.getattr(pyo3::intern!(py, "_aborting"))?.is_truthy()?
    {
        return Ok(());
    }
    let buffer = transport.getattr(pyo3::intern!(py, "dataBuffer"))?;
    let offset: usize = transport.getattr(pyo3::intern!(py, "offset"))?.extract()?;
    let queued = transport.getattr(pyo3::intern!(py, "_tempDataBuffer"))?;
    if buffer.len()? > offset || queued.len()? > 0 {
        let rest = buffer.get_item(pyo3::types::PySlice::new(py, offset as isize, isize::MAX, 1))?;
        let front = PyBytes::new(py, held).add(rest)?;
        transport.setattr(pyo3::intern!(py, "dataBuffer"), front)?;
        transport.setattr(pyo3::intern!(py, "offset"), 0)?;
        transport.call_method0(pyo3::intern!(py, "startWriting"))?;
        return Ok(());
    }
    send(py, transport, held, calls)
}

/// Whether `len` more bytes may bypass Twisted's buffer with nothing about
/// the transport's behaviour changing: no TLS (its layer writes), connected
/// and not closing its write side or aborting, and no producer, or a
/// streaming one that Twisted would not pause for these bytes (it pauses when
/// its buffer passes `bufferSize`). A pull producer is asked for more when
/// Twisted's buffer drains, so its writes stay there.
fn may_send_now(py: Python<'_>, transport: &Bound<'_, PyAny>, len: usize) -> PyResult<bool> {
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
    Ok(len <= limit)
}

/// `write(2)` now; the rest, or all after an error, to Twisted's buffer
/// (which Twisted was not using: the caller checked).
fn send(py: Python<'_>, transport: &Bound<'_, PyAny>, bytes: &[u8], calls: &StreamCalls) -> PyResult<()> {
    let fd: std::os::fd::RawFd = transport.call_method0(pyo3::intern!(py, "fileno"))?.extract()?;
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: the connected transport owns this socket and keeps it open for
    // the call; only its number is used.
    let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sent = match torque::fd::write(socket, bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => {
            // The socket's error is consumed: the end of file that follows
            // is a lost connection (stream.rs reads this mark).
            transport.setattr(pyo3::intern!(py, "_torqueSendFailed"), true)?;
            0
        }
    };
    if sent == bytes.len() {
        return Ok(());
    }
    let rest = PyBytes::new(py, &bytes[sent..]);
    calls.buffered_write.call1(py, (transport, rest)).map(drop)
}
