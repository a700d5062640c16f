//! Twisted's timed-call queue (`callLater`) in Rust: the heap, the due calls
//! run straight from it, and the next deadline for the wait.
//!
//! The handles stay Twisted's own `DelayedCall` objects, so `cancel`,
//! `reset`, `delay`, `active`, `getTime` and everything programs and tests read
//! from them behave as on Twisted's reactors. Twisted's rules are kept: a call
//! scheduled while due calls run waits for the next pass (new calls are held
//! apart until then, Twisted's `_newTimedCalls`); a call postponed with
//! `delay`/`reset` is re-queued lazily when it comes up (`delayed_time`), one
//! brought forward is re-queued at once; cancelled calls are skipped and
//! swept out in bulk. Each queued entry carries a number, written on the call
//! as `_torqueSeq`; an entry whose number is no longer the call's is stale (the
//! call was re-queued) and is dropped. Equal deadlines run in scheduling order.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

/// The longest wait `timeout()` reports, as Twisted's (2**31 ms, in seconds).
const LONGEST_TIMEOUT: f64 = 2_147_483.0;

struct Entry {
    time: f64,
    seq: u64,
    call: Py<PyAny>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap, the earliest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.time.total_cmp(&self.time).then(other.seq.cmp(&self.seq))
    }
}

/// The queue of a reactor's timed calls.
#[derive(Default)]
pub(crate) struct TimedCalls {
    heap: RefCell<BinaryHeap<Entry>>,
    /// Scheduled since the last pass: `(number, call)`, inserted with the
    /// call's time then.
    incoming: RefCell<Vec<(u64, Py<PyAny>)>>,
    next_seq: Cell<u64>,
    /// Cancellations not yet swept out (Twisted's `_cancellations`).
    cancelled: Cell<usize>,
}

impl TimedCalls {
    fn number(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<u64> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        call.setattr(pyo3::intern!(py, "_torqueSeq"), seq)?;
        Ok(seq)
    }

    fn is_current(py: Python<'_>, call: &Bound<'_, PyAny>, seq: u64) -> PyResult<bool> {
        Ok(call.getattr(pyo3::intern!(py, "_torqueSeq"))?.extract::<u64>()? == seq)
    }

    /// A new call (from `callLater`): queued at the next pass.
    pub(crate) fn schedule(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        let seq = self.number(py, call)?;
        self.incoming.borrow_mut().push((seq, call.clone().unbind()));
        Ok(())
    }

    /// A call brought forward by `reset`: re-queued at once if it is queued,
    /// else its new time is read when it is.
    pub(crate) fn moved_sooner(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        let seq: u64 = call.getattr(pyo3::intern!(py, "_torqueSeq"))?.extract()?;
        if self.incoming.borrow().iter().any(|(s, _)| *s == seq) {
            return Ok(());
        }
        self.push(py, call)
    }

    pub(crate) fn note_cancelled(&self) {
        self.cancelled.set(self.cancelled.get() + 1);
    }

    fn push(&self, py: Python<'_>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        let time: f64 = call.getattr(pyo3::intern!(py, "time"))?.extract()?;
        let seq = self.number(py, call)?;
        self.heap.borrow_mut().push(Entry { time, seq, call: call.clone().unbind() });
        Ok(())
    }

    /// Moves the calls scheduled since the last pass into the heap, as
    /// Twisted's `_insertNewDelayedCalls` (a call postponed meanwhile takes
    /// its new time first).
    pub(crate) fn insert_new(&self, py: Python<'_>) -> PyResult<()> {
        let incoming = std::mem::take(&mut *self.incoming.borrow_mut());
        for (seq, call) in incoming {
            let call = call.bind(py);
            if call.getattr(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
                continue;
            }
            if !Self::is_current(py, call, seq)? {
                continue;
            }
            call.call_method0(pyo3::intern!(py, "activate_delay"))?;
            let time: f64 = call.getattr(pyo3::intern!(py, "time"))?.extract()?;
            self.heap.borrow_mut().push(Entry { time, seq, call: call.clone().unbind() });
        }
        Ok(())
    }

    /// Seconds until the earliest call is due from `now` (0 if one is), or
    /// `None` without calls: Twisted's `timeout()`.
    pub(crate) fn timeout(&self, py: Python<'_>, now: f64) -> PyResult<Option<f64>> {
        self.insert_new(py)?;
        loop {
            let top = self.heap.borrow().peek().map(|e| (e.time, e.seq, e.call.clone_ref(py)));
            let Some((time, seq, call)) = top else { return Ok(None) };
            let call = call.bind(py);
            if Self::is_current(py, call, seq)?
                && !call.getattr(pyo3::intern!(py, "cancelled"))?.is_truthy()?
            {
                return Ok(Some((time - now).clamp(0.0, LONGEST_TIMEOUT)));
            }
            // Stale or cancelled at the top: drop it now.
            if self.heap.borrow_mut().pop().is_some() && Self::is_current(py, call, seq)? {
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
            }
        }
    }

    /// Runs every call due at `now` (Twisted's `runUntilCurrent`, timers
    /// part). `failed(call, exception)` handles an exception a call raised
    /// (Twisted logs it); what it raises in turn ends the run.
    pub(crate) fn run_due(&self, py: Python<'_>, now: f64, failed: &Bound<'_, PyAny>) -> PyResult<()> {
        self.insert_new(py)?;
        loop {
            let due = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(top) if top.time <= now => heap.pop(),
                    _ => None,
                }
            };
            let Some(entry) = due else { break };
            let call = entry.call.bind(py);
            if !Self::is_current(py, call, entry.seq)? {
                continue;
            }
            if call.getattr(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
                continue;
            }
            if call.getattr(pyo3::intern!(py, "delayed_time"))?.extract::<f64>()? > 0.0 {
                call.call_method0(pyo3::intern!(py, "activate_delay"))?;
                self.push(py, call)?;
                continue;
            }
            call.setattr(pyo3::intern!(py, "called"), 1)?;
            let func = call.getattr(pyo3::intern!(py, "func"))?;
            let args = call.getattr(pyo3::intern!(py, "args"))?;
            let kw = call.getattr(pyo3::intern!(py, "kw"))?;
            let args = match args.cast_into::<PyTuple>() {
                Ok(tuple) => tuple,
                Err(e) => PyTuple::new(py, e.into_inner().try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
            };
            let kw = kw.cast_into::<PyDict>().ok();
            if let Err(e) = func.call(args, kw.as_ref()) {
                failed.call1((call, e.into_value(py)))?;
            }
        }
        self.sweep(py)
    }

    /// Drops cancelled and stale entries in bulk once cancellations pass 50
    /// and half the heap, as Twisted does.
    fn sweep(&self, py: Python<'_>) -> PyResult<()> {
        let cancelled = self.cancelled.get();
        if cancelled <= 50 || cancelled <= self.heap.borrow().len() >> 1 {
            return Ok(());
        }
        self.cancelled.set(0);
        let entries = std::mem::take(&mut *self.heap.borrow_mut()).into_vec();
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let call = entry.call.bind(py);
            if Self::is_current(py, call, entry.seq)?
                && !call.getattr(pyo3::intern!(py, "cancelled"))?.is_truthy()?
            {
                kept.push(entry);
            }
        }
        // Pushed back, not assigned: nothing queued meanwhile is lost.
        self.heap.borrow_mut().extend(kept);
        Ok(())
    }

    /// Visits every queued call, for the garbage collector (none while the
    /// queue is in use).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(heap) = self.heap.try_borrow() {
            for entry in heap.iter() {
                visit.call(&entry.call)?;
            }
        }
        if let Ok(incoming) = self.incoming.try_borrow() {
            for (_, call) in incoming.iter() {
                visit.call(call)?;
            }
        }
        Ok(())
    }

    /// Drops every queued call (breaking reference cycles through them).
    pub(crate) fn clear(&self) {
        let heap = self.heap.try_borrow_mut().map(|mut h| std::mem::take(&mut *h));
        let incoming = self.incoming.try_borrow_mut().map(|mut i| std::mem::take(&mut *i));
        drop((heap, incoming));
    }

    /// The live calls, queued ones first (Twisted's `getDelayedCalls`).
    pub(crate) fn live(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let mut calls = Vec::new();
        let queued: Vec<(u64, Py<PyAny>)> =
            self.heap.borrow().iter().map(|e| (e.seq, e.call.clone_ref(py))).collect();
        let incoming: Vec<(u64, Py<PyAny>)> =
            self.incoming.borrow().iter().map(|(s, c)| (*s, c.clone_ref(py))).collect();
        for (seq, call) in queued.into_iter().chain(incoming) {
            let bound = call.bind(py);
            if Self::is_current(py, bound, seq)?
                && !bound.getattr(pyo3::intern!(py, "cancelled"))?.is_truthy()?
            {
                calls.push(call);
            }
        }
        Ok(calls)
    }
}
