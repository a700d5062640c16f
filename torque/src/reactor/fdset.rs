//! The registry of fd handlers (Twisted's IReactorFDSet).
//!
//! One handler per fd, with a read and a write interest. Registrations live in slots;
//! a slot's [`Token`] packs its index and a generation that changes whenever the slot
//! is vacated, so an event fetched for an earlier registration (removed, or replaced
//! after its fd number was reused) no longer matches and is dropped.

use crate::sys::fd::RawFd;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use super::Reactor;
use crate::backend::{Change, Event, Interest, Token};

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

/// What a registration watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An fd, for readiness.
    Fd(RawFd),
    /// A child process's exit, through the backend's own mechanism.
    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    Child(u32),
}

struct Slot {
    generation: u32,
    source: Source,
    handler: Option<FdHandlerRef>,
    interest: Interest,
    /// A file poll(2) calls always ready (a regular file): never given to the
    /// backend; every pass reports it ready.
    always_ready: bool,
}

/// What the backend was last told about one fd number.
#[derive(Clone, Copy)]
struct Applied {
    token: Token,
    interest: Interest,
    /// In `dirty`: wanted and applied may differ.
    dirty: bool,
}

const NOT_APPLIED: Applied = Applied { token: Token::IGNORED, interest: Interest::NONE, dirty: false };

/// The handlers, and the registration changes the backend has yet to hear.
///
/// Changes are queued, not sent: [`take_changes`](FdRegistry::take_changes)
/// hands over the net change of each fd touched since the last call, so an fd
/// whose writer is added and removed in one pass costs the backend nothing,
/// and one changed five ways costs one call.
#[derive(Default)]
pub(crate) struct FdRegistry {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// fd number → slot index + 1 (0: none).
    by_fd: Vec<u32>,
    /// fd number → what the backend has.
    applied: Vec<Applied>,
    /// fds whose wanted state may differ from what the backend has.
    dirty: Vec<RawFd>,
    /// fds whose registration ended since the changes were last taken.
    ended: Vec<RawFd>,
    /// Slots of always-ready registrations.
    always_ready: Vec<u32>,
}

fn token(index: u32, generation: u32) -> Token {
    Token((u64::from(generation) << 32) | u64::from(index))
}

impl FdRegistry {
    fn slot_of_fd(&self, fd: RawFd) -> Option<u32> {
        let i = *self.by_fd.get(usize::try_from(fd).ok()?)?;
        i.checked_sub(1)
    }

    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    fn token_of(&self, index: u32) -> Token {
        token(index, self.slots[index as usize].generation)
    }

    fn live_slot(&self, t: Token) -> Option<&Slot> {
        let slot = self.slots.get((t.0 & 0xffff_ffff) as usize)?;
        (u64::from(slot.generation) == t.0 >> 32 && slot.handler.is_some()).then_some(slot)
    }

    /// The live slot a token names, if it is still current.
    pub(crate) fn lookup(&self, t: Token) -> Option<(FdHandlerRef, Interest, Source)> {
        let slot = self.live_slot(t)?;
        Some((slot.handler.clone()?, slot.interest, slot.source))
    }

    /// The current interest of a token's registration (empty if stale).
    pub(crate) fn interest(&self, t: Token) -> Interest {
        self.live_slot(t).map_or(Interest::NONE, |slot| slot.interest)
    }

    /// Notes that `fd`'s wanted state changed.
    fn touch(&mut self, fd: RawFd) {
        let f = fd as usize;
        if self.applied.len() <= f {
            self.applied.resize(f + 1, NOT_APPLIED);
        }
        if !std::mem::replace(&mut self.applied[f].dirty, true) {
            self.dirty.push(fd);
        }
    }

    fn allocate(
        &mut self,
        source: Source,
        handler: FdHandlerRef,
        interest: Interest,
        always_ready: bool,
    ) -> u32 {
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.source = source;
                slot.handler = Some(handler);
                slot.interest = interest;
                slot.always_ready = always_ready;
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    source,
                    handler: Some(handler),
                    interest,
                    always_ready,
                });
                (self.slots.len() - 1) as u32
            }
        };
        if always_ready {
            self.always_ready.push(index);
        }
        if let Source::Fd(fd) = source {
            let f = fd as usize;
            if self.by_fd.len() <= f {
                self.by_fd.resize(f + 1, 0);
            }
            self.by_fd[f] = index + 1;
            self.touch(fd);
        }
        index
    }

    /// Empties a slot and bumps its generation; returns the handler to drop later.
    fn vacate(&mut self, index: u32) -> Option<FdHandlerRef> {
        let slot = &mut self.slots[index as usize];
        let handler = slot.handler.take();
        slot.generation = slot.generation.wrapping_add(1);
        slot.interest = Interest::NONE;
        if std::mem::take(&mut slot.always_ready) {
            self.always_ready.retain(|&i| i != index);
        }
        if let Source::Fd(fd) = slot.source {
            if self.by_fd.get(fd as usize) == Some(&(index + 1)) {
                self.by_fd[fd as usize] = 0;
            }
            self.touch(fd);
            self.ended.push(fd);
        }
        self.free.push(index);
        handler
    }

    /// Whether `handler` is the one registered for `fd`.
    pub(crate) fn is_registered(&self, fd: RawFd, handler: &FdHandlerRef) -> bool {
        self.slot_of_fd(fd)
            .and_then(|index| self.slots[index as usize].handler.as_ref())
            .is_some_and(|h| Rc::ptr_eq(h, handler))
    }

    /// The fd `handler` is registered for, if it is.
    pub(crate) fn fd_of(&self, handler: &FdHandlerRef) -> Option<RawFd> {
        self.slots.iter().find_map(|slot| match (slot.source, &slot.handler) {
            (Source::Fd(fd), Some(h)) if Rc::ptr_eq(h, handler) => Some(fd),
            _ => None,
        })
    }

    /// Adds `handler` for `fd` with the directions in `add`; returns a handler
    /// it replaced, to drop outside the borrow. `always_ready` applies to a
    /// new registration (not to more directions for the registered handler).
    pub(crate) fn add(
        &mut self,
        fd: RawFd,
        handler: FdHandlerRef,
        add: Interest,
        always_ready: bool,
    ) -> Option<FdHandlerRef> {
        if let Some(index) = self.slot_of_fd(fd) {
            let same = self.slots[index as usize].handler.as_ref().is_some_and(|h| Rc::ptr_eq(h, &handler));
            if same {
                let slot = &mut self.slots[index as usize];
                let interest = Interest {
                    read: slot.interest.read || add.read,
                    write: slot.interest.write || add.write,
                };
                if interest != slot.interest {
                    slot.interest = interest;
                    self.touch(fd);
                }
                return None;
            }
            // A different handler takes the fd over: a new registration with a new
            // token, so events fetched for the old one are never delivered to it.
            let old = self.vacate(index);
            self.allocate(Source::Fd(fd), handler, add, always_ready);
            return old;
        }
        self.allocate(Source::Fd(fd), handler, add, always_ready);
        None
    }

    /// Registers a watch on child `pid`'s exit; returns its token.
    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    pub(crate) fn add_child(&mut self, pid: u32, handler: FdHandlerRef) -> Token {
        let index = self.allocate(Source::Child(pid), handler, Interest::READ, false);
        self.token_of(index)
    }

    /// Removes the directions in `remove` from `fd`'s registration.
    pub(crate) fn remove(&mut self, fd: RawFd, remove: Interest) -> Option<FdHandlerRef> {
        let index = self.slot_of_fd(fd)?;
        let slot = &mut self.slots[index as usize];
        let interest = Interest {
            read: slot.interest.read && !remove.read,
            write: slot.interest.write && !remove.write,
        };
        if interest.is_empty() {
            return self.vacate(index);
        }
        if interest != slot.interest {
            slot.interest = interest;
            self.touch(fd);
        }
        None
    }

    /// Removes the registration a token names; returns what it watched and
    /// its handler.
    pub(crate) fn remove_token(&mut self, t: Token) -> Option<(Source, FdHandlerRef)> {
        let source = self.live_slot(t)?.source;
        self.vacate((t.0 & 0xffff_ffff) as u32).map(|h| (source, h))
    }

    /// Removes every registration; returns what each watched and its handler,
    /// fds in order, then children.
    pub(crate) fn remove_all(&mut self) -> Vec<(Source, FdHandlerRef)> {
        let mut removed = Vec::new();
        for i in 0..self.slots.len() {
            if self.slots[i].handler.is_some() {
                let source = self.slots[i].source;
                if let Some(h) = self.vacate(i as u32) {
                    removed.push((source, h));
                }
            }
        }
        removed.sort_by_key(|(source, _)| match source {
            Source::Fd(fd) => (0, *fd as i128),
            Source::Child(pid) => (1, i128::from(*pid)),
        });
        removed
    }

    /// Appends the net change of every fd touched since the last call to
    /// `out`, and records them as applied.
    pub(crate) fn take_changes(&mut self, out: &mut Vec<Change>) {
        let dirty = std::mem::take(&mut self.dirty);
        self.dirty = self.take_listed(dirty, out);
        self.ended.clear();
    }

    /// Appends the net change of every fd whose registration ended since the
    /// changes were last taken (the other dirty fds wait for the next call).
    pub(crate) fn take_ended_changes(&mut self, out: &mut Vec<Change>) {
        let ended = std::mem::take(&mut self.ended);
        self.ended = self.take_listed(ended, out);
    }

    /// Takes the change of each fd in `list`; returns the list emptied, for
    /// its allocation.
    fn take_listed(&mut self, mut list: Vec<RawFd>, out: &mut Vec<Change>) -> Vec<RawFd> {
        for &fd in &list {
            self.take_change(fd, out);
        }
        list.clear();
        list
    }

    /// Whether a registration ended since the changes were last taken.
    pub(crate) fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    /// `fd`'s net change, if it has one, appended to `out` and recorded as
    /// applied. (An fd taken here and dirtied again is taken again later.)
    fn take_change(&mut self, fd: RawFd, out: &mut Vec<Change>) {
        let Some(applied) = self.applied.get(fd as usize).copied() else { return };
        if !applied.dirty {
            return;
        }
        let (token, interest) = match self.by_fd.get(fd as usize).and_then(|i| i.checked_sub(1)) {
            Some(index) if !self.slots[index as usize].always_ready => {
                (token(index, self.slots[index as usize].generation), self.slots[index as usize].interest)
            }
            // No registration, or one the backend never hears of.
            _ => (Token::IGNORED, Interest::NONE),
        };
        self.applied[fd as usize] = Applied { token, interest, dirty: false };
        if applied.interest == interest && (applied.token == token || interest.is_empty()) {
            return;
        }
        out.push(Change { fd, token, old_token: applied.token, old: applied.interest, new: interest });
    }

    /// Whether an always-ready registration wants an event: the pass must not
    /// wait.
    pub(crate) fn has_always_ready(&self) -> bool {
        self.always_ready.iter().any(|&i| !self.slots[i as usize].interest.is_empty())
    }

    /// An event for each always-ready registration, as the backend would
    /// report a file that is always readable and writable.
    pub(crate) fn always_ready_events(&self) -> Vec<Event> {
        self.always_ready
            .iter()
            .filter_map(|&index| {
                let slot = &self.slots[index as usize];
                (!slot.interest.is_empty()).then(|| Event {
                    token: token(index, slot.generation),
                    readable: slot.interest.read,
                    writable: slot.interest.write,
                    invalid: false,
                })
            })
            .collect()
    }

    /// Whether changes wait to be applied.
    pub(crate) fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The fds registered with the given direction, sorted.
    pub(crate) fn fds_with(&self, read: bool) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self
            .slots
            .iter()
            .filter(|s| s.handler.is_some() && if read { s.interest.read } else { s.interest.write })
            .filter_map(|s| match s.source {
                Source::Fd(fd) => Some(fd),
                Source::Child(_) => None,
            })
            .collect();
        fds.sort_unstable();
        fds
    }

    /// The number of registrations.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl FdHandler for Nothing {}

    fn handler() -> FdHandlerRef {
        Rc::new(RefCell::new(Nothing))
    }

    impl FdRegistry {
        fn add_for_test(&mut self, fd: RawFd, handler: FdHandlerRef, add: Interest) -> Option<FdHandlerRef> {
            self.add(fd, handler, add, false)
        }
    }

    fn changes(registry: &mut FdRegistry) -> Vec<Change> {
        let mut out = Vec::new();
        registry.take_changes(&mut out);
        out
    }

    #[test]
    fn an_fd_added_and_removed_before_the_backend_hears_costs_nothing() {
        let mut registry = FdRegistry::default();
        let h = handler();
        let _ = registry.add_for_test(7, h.clone(), Interest::READ);
        let _ = registry.add_for_test(7, h, Interest::WRITE);
        let _ = registry.remove(7, Interest::BOTH);
        assert!(changes(&mut registry).is_empty());
        assert!(!registry.has_changes());
    }

    #[test]
    fn several_changes_to_one_fd_are_one_change_of_the_net_effect() {
        let mut registry = FdRegistry::default();
        let h = handler();
        let _ = registry.add_for_test(5, h.clone(), Interest::READ);
        let _ = registry.add_for_test(5, h.clone(), Interest::WRITE);
        let _ = registry.remove(5, Interest::READ);
        let got = changes(&mut registry);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].fd, got[0].old, got[0].new), (5, Interest::NONE, Interest::WRITE));
        // A writer added and removed again in a later pass: nothing to tell.
        let _ = registry.add_for_test(5, h.clone(), Interest::READ);
        let _ = registry.remove(5, Interest::READ);
        assert!(changes(&mut registry).is_empty());
        // Removing it all is one removal from what the backend has.
        let _ = registry.remove(5, Interest::WRITE);
        let got = changes(&mut registry);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].old, got[0].new), (Interest::WRITE, Interest::NONE));
    }

    #[test]
    fn a_new_handler_on_a_reused_fd_number_is_a_change_of_token() {
        let mut registry = FdRegistry::default();
        let _ = registry.add_for_test(9, handler(), Interest::READ);
        let first = changes(&mut registry);
        // Closed and its number reused, in one pass: removed, then added anew.
        let _ = registry.remove(9, Interest::READ);
        let _ = registry.add_for_test(9, handler(), Interest::READ);
        let got = changes(&mut registry);
        assert_eq!(got.len(), 1, "one change for the fd: {got:?}");
        assert_eq!(got[0].old_token, first[0].token);
        assert_ne!(got[0].token, first[0].token, "the new registration has a new token");
        assert!(registry.lookup(first[0].token).is_none(), "the old token is stale");
        assert!(registry.lookup(got[0].token).is_some());
    }
}
