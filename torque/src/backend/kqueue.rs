//! macOS and BSD `kqueue(2)`, used level-triggered like the others.
//!
//! Registration changes go to the kernel in the same `kevent` call as the wait
//! (one system call per pass however many fds were added or changed; a
//! registration that ends is removed at once, while its fd is still open, see
//! `Reactor::registry_changed`). The cross-thread wake is an `EVFILT_USER`
//! event (no fd), and a child's exit an `EVFILT_PROC` event (no SIGCHLD
//! handler). Stop signals come through the same handler as on the other
//! backends, which triggers the `EVFILT_USER` event: `EVFILT_SIGNAL` would
//! need the signals ignored, and on macOS it does not see signals sent to one
//! thread (`raise`, `pthread_kill`), which would then be lost. The kqueue fd
//! itself is pollable, so other loops (`embed`, `torque-glib`, `torque-cf`)
//! watch it, and a second thread may wait on it (`interleave`). Built for
//! 64-bit macOS and FreeBSD.

use super::{BackendInfo, BackendKind, ChildExit, Entry, IoModel, SignalDelivery, Status, Wake};

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Kqueue,
    name: "kqueue",
    summary: "macOS and FreeBSD kqueue(2), level-triggered; the default there",
    status: Status::CompileChecked,
    platforms: "macOS, FreeBSD (64-bit)",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(ready fds)",
    reports_closed_fds: false,
    child_exit: ChildExit::ProcFilter,
    wake: Wake::UserEvent,
    signals: SignalDelivery::Handler,
    features: super::BASE_FEATURES,
};

#[cfg(kqueue)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(imp::open) };
#[cfg(not(kqueue))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };

#[cfg(kqueue)]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::backend::{
        BackendInfo, Change, Event, Events, ForeignWait, Opened, OpenedSelector, Refused, Selector, Token,
    };
    use crate::error::ReactorError;
    use crate::sys::kqueue::{WAKE_IDENT, event, kevent, kqueue, udata};
    use crate::sys::waker::Waker;

    /// How many events one wait may return (besides change errors).
    const BATCH: usize = 1024;

    /// The token of the setup entries, whose failure must be seen (removals,
    /// whose failure means nothing, carry `Token::IGNORED`).
    const SETUP: Token = Token(u64::MAX - 1);

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let kq = Arc::new(kqueue().map_err(ReactorError::Os)?);
        let waker = Arc::new(Waker::new_kqueue_user(Arc::clone(&kq)));
        let mut selector = KqueueSelector {
            kq,
            waker: Arc::clone(&waker),
            changes: Vec::new(),
            buffer: Vec::with_capacity(BATCH),
        };
        // The wake event; a kqueue without it could not be woken, so its
        // failure fails the open.
        let mut setup = [event(WAKE_IDENT, libc::EVFILT_USER, libc::EV_ADD | libc::EV_CLEAR, 0, SETUP.0)];
        match submit_with_receipts(&selector.kq, &mut setup, &mut selector.buffer) {
            Ok(refused) if refused.is_empty() => {}
            Ok(mut refused) => return Err(ReactorError::Os(refused.remove(0).1)),
            Err(e) => return Err(ReactorError::Os(e)),
        }
        Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
    }

    pub(super) struct KqueueSelector {
        /// Shared with the waker and with wait sets on helper threads.
        kq: Arc<OwnedFd>,
        waker: Arc<Waker>,
        /// The change list being built, kept for its allocation.
        changes: Vec<libc::kevent>,
        buffer: Vec<libc::kevent>,
    }

    // SAFETY: the only thing keeping `kevent` from being `Send` is its `udata`
    // pointer, which here only ever holds a token (an integer), never a pointer
    // to anything; the kernel copies it back unchanged.
    #[allow(unsafe_code)]
    unsafe impl Send for KqueueSelector {}

    /// The kevent entries for `change`: a filter is added (or re-pointed at a
    /// new token) when wanted, deleted when no longer wanted. A deletion's
    /// failure means nothing (the kernel forgets closed fds by itself).
    fn push_change(list: &mut Vec<libc::kevent>, change: &Change) {
        let ident = change.fd as usize;
        let retoken = change.token != change.old_token;
        for (filter, was, wanted) in [
            (libc::EVFILT_READ, change.old.read, change.new.read),
            (libc::EVFILT_WRITE, change.old.write, change.new.write),
        ] {
            if wanted && (!was || retoken) {
                list.push(event(ident, filter, libc::EV_ADD, 0, change.token.0));
            } else if was && !wanted {
                list.push(event(ident, filter, libc::EV_DELETE, 0, Token::IGNORED.0));
            }
        }
    }

    /// A change that failed, from its `EV_ERROR` entry (`None`: it succeeded,
    /// or its failure means nothing).
    fn refusal(entry: &libc::kevent) -> Option<Refused> {
        let token = Token(udata(entry));
        let errno = entry.data as i32;
        (errno != 0 && token != Token::IGNORED).then(|| (token, io::Error::from_raw_os_error(errno)))
    }

    /// Reports every addition or change in `changes` as refused with `error`.
    fn refuse_additions(changes: &[Change], error: &io::Error, refused: &mut Vec<Refused>) {
        for change in changes.iter().filter(|c| !c.new.is_empty()) {
            refused.push((change.token, io::Error::new(error.kind(), error.to_string())));
        }
    }

    /// Submits `list` with `EV_RECEIPT`, so every entry reports back and no
    /// pending event is consumed; returns the refusals.
    fn submit_with_receipts(
        kq: &OwnedFd,
        list: &mut [libc::kevent],
        buffer: &mut Vec<libc::kevent>,
    ) -> io::Result<Vec<Refused>> {
        for entry in list.iter_mut() {
            entry.flags |= libc::EV_RECEIPT;
        }
        buffer.reserve(list.len());
        kevent(kq.as_raw_fd(), list, buffer, Some(Duration::ZERO))?;
        Ok(buffer
            .iter()
            .filter(|e| e.flags as u32 & libc::EV_ERROR as u32 != 0)
            .filter_map(refusal)
            .collect())
    }

    impl KqueueSelector {
        /// Turns what the kernel returned into events; change errors into refusals.
        fn collect(&self, events: &mut Events, refused: &mut Vec<Refused>) {
            for entry in &self.buffer {
                let flags = entry.flags as u32;
                let filter = entry.filter as i32;
                if flags & libc::EV_ERROR as u32 != 0 {
                    refused.extend(refusal(entry));
                    continue;
                }
                if filter == libc::EVFILT_USER as i32 {
                    self.waker.reset();
                    continue;
                }
                let token = Token(udata(entry));
                let readable = filter == libc::EVFILT_READ as i32 || filter == libc::EVFILT_PROC as i32;
                let writable = filter == libc::EVFILT_WRITE as i32;
                events.push(Event { token, readable, writable, invalid: false });
            }
        }

        fn wait_with(
            &mut self,
            changes: &[Change],
            refused: &mut Vec<Refused>,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.clear();
            let mut list = std::mem::take(&mut self.changes);
            list.clear();
            for change in changes {
                push_change(&mut list, change);
            }
            // Room for an error entry per change besides the events, so a
            // refused change is always reported with its token (without room
            // the kernel fails the whole call).
            self.buffer.reserve(list.len() + BATCH);
            let result = kevent(self.kq.as_raw_fd(), &list, &mut self.buffer, timeout);
            self.changes = list;
            if let Err(e) = result {
                // The call failed as a whole: every addition is in doubt.
                refuse_additions(changes, &e, refused);
                return Err(e);
            }
            self.collect(events, refused);
            Ok(())
        }
    }

    impl Selector for KqueueSelector {
        fn info(&self) -> &'static BackendInfo {
            &super::INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            if changes.is_empty() {
                return;
            }
            let mut list = std::mem::take(&mut self.changes);
            list.clear();
            for change in changes {
                push_change(&mut list, change);
            }
            match submit_with_receipts(&self.kq, &mut list, &mut self.buffer) {
                Ok(failures) => refused.extend(failures),
                // The call itself failed: every addition is in doubt.
                Err(e) => refuse_additions(changes, &e, refused),
            }
            self.changes = list;
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            let mut ignored = Vec::new();
            self.wait_with(&[], &mut ignored, events, timeout)
        }

        fn apply_and_wait(
            &mut self,
            changes: &[Change],
            refused: &mut Vec<Refused>,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            self.wait_with(changes, refused, events, timeout)
        }

        fn watch_child(&mut self, pid: u32, token: Token) -> io::Result<()> {
            let mut list = [event(
                pid as usize,
                libc::EVFILT_PROC,
                libc::EV_ADD | libc::EV_ONESHOT,
                libc::NOTE_EXIT,
                token.0,
            )];
            match submit_with_receipts(&self.kq, &mut list, &mut self.buffer)?.into_iter().next() {
                Some((_, e)) => Err(e),
                None => Ok(()),
            }
        }

        fn unwatch_child(&mut self, pid: u32) {
            let mut list = [event(pid as usize, libc::EVFILT_PROC, libc::EV_DELETE, 0, Token::IGNORED.0)];
            let _ = submit_with_receipts(&self.kq, &mut list, &mut self.buffer);
        }

        fn watch_fd(&self) -> Option<RawFd> {
            Some(self.kq.as_raw_fd())
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            Some(ForeignWait::Live(Box::new(KqueueSelector {
                kq: Arc::clone(&self.kq),
                waker: Arc::clone(&self.waker),
                changes: Vec::new(),
                buffer: Vec::with_capacity(BATCH),
            })))
        }
    }
}
