//! Twisted's `IReactorFDSet` on Torque's fd registry: one handler per fd,
//! whose events become one Python call each — or, for Twisted's own stream
//! connections, a native `read(2)` straight into the protocol's
//! `dataReceived` ([`crate::stream`]).

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::rc::Rc;

use pyo3::prelude::*;
use torque::{FdHandler, LostReason, Reactor};

use crate::stream::StreamCalls;

/// The event flag passed to Python for a readable fd.
pub(crate) const READ: u32 = 1;
/// The event flag passed to Python for a writable fd.
pub(crate) const WRITE: u32 = 4;

/// What every descriptor calls: the Python reactor's dispatch functions, and
/// the first exception one of them let out (re-raised by `iterate`).
pub(crate) struct Dispatch {
    /// `event(selectable, fd, flag)`: a readiness event.
    pub(crate) event: Py<PyAny>,
    /// `lost(selectable, fd, fd_closed, why)`: the reactor dropped the registration.
    pub(crate) lost: Py<PyAny>,
    /// What native stream reads call.
    pub(crate) stream: StreamCalls,
    /// The connections whose `dataReceived` is running, innermost last, each
    /// with the writes held until it returns ([`crate::send`]).
    pub(crate) deliveries: RefCell<Vec<crate::send::Delivery>>,
    pub(crate) error: RefCell<Option<PyErr>>,
}

impl Dispatch {
    pub(crate) fn keep_first<T>(&self, result: PyResult<T>) {
        if let Err(e) = result {
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                *slot = Some(e);
            }
        }
    }
}

/// How a registered fd's readable events are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NativeRead {
    /// By the selectable's own `doRead` (Python).
    No,
    /// `read(2)` into `dataReceived`: Twisted's `tcp.Connection.doRead`.
    Read,
    /// `recvmsg(2)`, passed descriptors first: Twisted's UNIX `_SendmsgMixin.doRead`.
    ReceiveFds,
}

impl NativeRead {
    /// From the number Python passes: 0, 1 or 2.
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => NativeRead::Read,
            2 => NativeRead::ReceiveFds,
            _ => NativeRead::No,
        }
    }
}

/// What the core and a registered fd's handler share: the Python object to
/// tell (Twisted's selectable, which owns the fd; swapped while the handler
/// may be running) and the native stream state.
pub(crate) struct FdState {
    pub(crate) fd: RawFd,
    pub(crate) selectable: RefCell<Py<PyAny>>,
    /// Read natively: a stream connection of Twisted's own classes.
    pub(crate) native_read: Cell<NativeRead>,
    /// The pass in which a write last went out at once.
    pub(crate) sent_in_pass: Cell<u64>,
    /// The log context pushed around its protocol's calls, cached.
    pub(crate) log_context: crate::stream::LogContextCache,
}

impl FdState {
    pub(crate) fn new(fd: RawFd, selectable: Py<PyAny>) -> Self {
        FdState {
            fd,
            selectable: RefCell::new(selectable),
            native_read: Cell::new(NativeRead::No),
            sent_in_pass: Cell::new(u64::MAX),
            log_context: Default::default(),
        }
    }
}

/// A registered fd's handler.
pub(crate) struct Descriptor {
    pub(crate) state: Rc<FdState>,
    pub(crate) dispatch: Rc<Dispatch>,
}

impl Descriptor {
    fn deliver(&self, flag: u32) {
        Python::attach(|py| {
            // Cloned out: the call may swap it.
            let selectable = self.state.selectable.borrow().clone_ref(py);
            let result = self.dispatch.event.call1(py, (selectable, self.state.fd, flag));
            self.dispatch.keep_first(result);
        });
    }
}

impl AsFd for Descriptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.state.as_fd()
    }
}

impl AsFd for FdState {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to the Python selectable, which Twisted's
        // contract keeps open while registered (it removes itself before
        // closing; the core drops this state when it is removed); the
        // registry only reads its number, and a closed fd is reported as
        // lost, never used.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl FdHandler for Descriptor {
    fn readable(&mut self, _: &Reactor) {
        if self.state.native_read.get() != NativeRead::No {
            crate::stream::read(self);
        } else {
            self.deliver(READ);
        }
    }

    fn writable(&mut self, _: &Reactor) {
        self.deliver(WRITE);
    }

    fn connection_lost(&mut self, _: &Reactor, reason: LostReason) {
        Python::attach(|py| {
            let selectable = self.state.selectable.borrow().clone_ref(py);
            let closed = matches!(reason, LostReason::FdClosed);
            let result =
                self.dispatch.lost.call1(py, (selectable, self.state.fd, closed, reason.to_string()));
            self.dispatch.keep_first(result);
        });
    }
}
