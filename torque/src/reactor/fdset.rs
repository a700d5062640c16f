//! The registry of fd handlers (Twisted's IReactorFDSet).
//!
//! One handler per fd, with a read and a write interest. Registrations live in slots;
//! a slot's [`Token`] packs its index and a generation that changes whenever the slot
//! is vacated, so an event fetched for an earlier registration (removed, or replaced
//! after its fd number was reused) no longer matches and is dropped.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use super::Reactor;
use crate::backend::{Interest, Token};

/// Something the reactor calls when its fd is ready (Twisted's `IReadDescriptor`,
/// `IWriteDescriptor` and `connectionLost`).
///
/// Every method receives the reactor, so a handler need not store it (storing a
/// [`Reactor`] inside a registered handler makes a reference cycle; store a
/// [`WeakReactor`](crate::WeakReactor) if you must).
pub trait FdHandler {
    /// The fd is readable, at end of file, or in error.
    fn readable(&mut self, reactor: &Reactor) {
        let _ = reactor;
    }
    /// The fd is writable (or in error).
    fn writable(&mut self, reactor: &Reactor) {
        let _ = reactor;
    }
    /// The reactor dropped this handler without being asked to: see [`LostReason`].
    /// Not called for removals the program asked for.
    fn connection_lost(&mut self, reactor: &Reactor, reason: LostReason) {
        let _ = (reactor, reason);
    }
}

/// A shared, registered handler.
pub type FdHandlerRef = Rc<RefCell<dyn FdHandler>>;

/// Why the reactor dropped a handler on its own.
#[derive(Debug)]
pub enum LostReason {
    /// The reactor shut down (Twisted's `disconnectAll` at shutdown).
    Shutdown,
    /// The fd was closed while still registered (Twisted's `ConnectionFdescWentAway`).
    FdClosed,
    /// The handler panicked; the message is the panic's.
    Panicked(String),
    /// The backend failed to watch the fd.
    Error(io::Error),
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Shutdown => f.write_str("the reactor shut down"),
            LostReason::FdClosed => f.write_str("the file descriptor was closed while registered"),
            LostReason::Panicked(msg) => write!(f, "the handler panicked: {msg}"),
            LostReason::Error(e) => write!(f, "the backend failed: {e}"),
        }
    }
}

struct Slot {
    generation: u32,
    fd: RawFd,
    handler: Option<FdHandlerRef>,
    interest: Interest,
}

/// What a registry change asks of the backend, applied by the caller.
pub(crate) enum BackendOp {
    Register(RawFd, Token, Interest),
    Reregister(RawFd, Token, Interest),
    Deregister(RawFd),
    Nothing,
}

#[derive(Default)]
pub(crate) struct FdRegistry {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// fd number → slot index + 1 (0: none).
    by_fd: Vec<u32>,
}

fn token(index: u32, generation: u32) -> Token {
    Token((u64::from(generation) << 32) | u64::from(index))
}

impl FdRegistry {
    fn slot_of_fd(&self, fd: RawFd) -> Option<u32> {
        let i = *self.by_fd.get(usize::try_from(fd).ok()?)?;
        i.checked_sub(1)
    }

    fn token_of(&self, index: u32) -> Token {
        token(index, self.slots[index as usize].generation)
    }

    /// The live slot a token names, if it is still current.
    pub(crate) fn lookup(&self, t: Token) -> Option<(FdHandlerRef, Interest)> {
        let slot = self.slots.get((t.0 & 0xffff_ffff) as usize)?;
        if u64::from(slot.generation) != t.0 >> 32 {
            return None;
        }
        Some((slot.handler.clone()?, slot.interest))
    }

    /// The current interest of a token's registration (empty if stale).
    pub(crate) fn interest(&self, t: Token) -> Interest {
        match self.slots.get((t.0 & 0xffff_ffff) as usize) {
            Some(slot) if u64::from(slot.generation) == t.0 >> 32 && slot.handler.is_some() => slot.interest,
            _ => Interest::default(),
        }
    }

    fn allocate(&mut self, fd: RawFd, handler: FdHandlerRef, interest: Interest) -> u32 {
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.fd = fd;
                slot.handler = Some(handler);
                slot.interest = interest;
                i
            }
            None => {
                self.slots.push(Slot { generation: 0, fd, handler: Some(handler), interest });
                (self.slots.len() - 1) as u32
            }
        };
        let f = fd as usize;
        if self.by_fd.len() <= f {
            self.by_fd.resize(f + 1, 0);
        }
        self.by_fd[f] = index + 1;
        index
    }

    /// Empties a slot and bumps its generation; returns the handler to drop later.
    fn vacate(&mut self, index: u32) -> Option<FdHandlerRef> {
        let slot = &mut self.slots[index as usize];
        let handler = slot.handler.take();
        slot.generation = slot.generation.wrapping_add(1);
        slot.interest = Interest::default();
        if self.by_fd.get(slot.fd as usize) == Some(&(index + 1)) {
            self.by_fd[slot.fd as usize] = 0;
        }
        self.free.push(index);
        handler
    }

    /// Adds `handler` for `fd` with the directions in `add`.
    pub(crate) fn add(
        &mut self,
        fd: RawFd,
        handler: FdHandlerRef,
        add: Interest,
    ) -> (BackendOp, Option<FdHandlerRef>) {
        if let Some(index) = self.slot_of_fd(fd) {
            let same = self.slots[index as usize].handler.as_ref().is_some_and(|h| Rc::ptr_eq(h, &handler));
            if same {
                let slot = &mut self.slots[index as usize];
                let interest = Interest {
                    read: slot.interest.read || add.read,
                    write: slot.interest.write || add.write,
                };
                if interest == slot.interest {
                    return (BackendOp::Nothing, None);
                }
                slot.interest = interest;
                return (BackendOp::Reregister(fd, self.token_of(index), interest), None);
            }
            // A different handler takes the fd over: a new registration with a new
            // token, so events fetched for the old one are never delivered to it.
            let old = self.vacate(index);
            let index = self.allocate(fd, handler, add);
            return (BackendOp::Reregister(fd, self.token_of(index), add), old);
        }
        let index = self.allocate(fd, handler, add);
        (BackendOp::Register(fd, self.token_of(index), add), None)
    }

    /// Undoes a registration whose backend call failed.
    pub(crate) fn forget(&mut self, fd: RawFd) -> Option<FdHandlerRef> {
        let index = self.slot_of_fd(fd)?;
        self.vacate(index)
    }

    /// Removes the directions in `remove` from `fd`'s registration.
    pub(crate) fn remove(&mut self, fd: RawFd, remove: Interest) -> (BackendOp, Option<FdHandlerRef>) {
        let Some(index) = self.slot_of_fd(fd) else { return (BackendOp::Nothing, None) };
        let slot = &mut self.slots[index as usize];
        let interest = Interest {
            read: slot.interest.read && !remove.read,
            write: slot.interest.write && !remove.write,
        };
        if interest.is_empty() {
            let old = self.vacate(index);
            return (BackendOp::Deregister(fd), old);
        }
        if interest == slot.interest {
            return (BackendOp::Nothing, None);
        }
        slot.interest = interest;
        (BackendOp::Reregister(fd, self.token_of(index), interest), None)
    }

    /// Removes the registration a token names; returns its fd and handler.
    pub(crate) fn remove_token(&mut self, t: Token) -> Option<(RawFd, FdHandlerRef)> {
        let index = (t.0 & 0xffff_ffff) as u32;
        let slot = self.slots.get(index as usize)?;
        if u64::from(slot.generation) != t.0 >> 32 || slot.handler.is_none() {
            return None;
        }
        let fd = slot.fd;
        self.vacate(index).map(|h| (fd, h))
    }

    /// Removes every registration; returns `(fd, handler)` pairs in fd order.
    pub(crate) fn remove_all(&mut self) -> Vec<(RawFd, FdHandlerRef)> {
        let mut removed = Vec::new();
        for i in 0..self.slots.len() {
            if self.slots[i].handler.is_some() {
                let fd = self.slots[i].fd;
                if let Some(h) = self.vacate(i as u32) {
                    removed.push((fd, h));
                }
            }
        }
        removed.sort_by_key(|(fd, _)| *fd);
        removed
    }

    /// The fds registered with the given direction, sorted.
    pub(crate) fn fds_with(&self, read: bool) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self
            .slots
            .iter()
            .filter(|s| s.handler.is_some() && if read { s.interest.read } else { s.interest.write })
            .map(|s| s.fd)
            .collect();
        fds.sort_unstable();
        fds
    }

    /// The number of registered fds.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}
