//! Linux `epoll(7)`, used level-triggered so it behaves like select and poll.
//! At most one `epoll_ctl` per changed fd per pass: the reactor hands over the
//! net change of each fd just before the wait (a removal goes at once, before
//! its owner can close the fd; see `Reactor::registry_changed`).

use super::{BackendInfo, BackendKind, Entry, IoModel, SignalDelivery, Status, Wake};

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Epoll,
    name: "epoll",
    summary: "Linux epoll(7), level-triggered; the default on Linux",
    status: Status::Stable,
    platforms: "Linux",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(ready fds)",
    reports_closed_fds: false,
    child_exit: super::ChildExit::Pidfd,
    wake: Wake::EventFd,
    signals: SignalDelivery::Handler,
    features: super::BASE_FEATURES,
};

#[cfg(linux_like)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(imp::open) };
#[cfg(not(linux_like))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };

#[cfg(linux_like)]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::backend::{
        BackendInfo, Change, Event, Events, ForeignWait, Interest, Opened, OpenedSelector, Refused, Selector,
        Token,
    };
    use crate::error::ReactorError;
    use crate::sys::{cvt, timeout_millis, waker::Waker};

    /// The waker's registration; never handed to the reactor.
    const WAKER_DATA: u64 = u64::MAX;
    /// How many events one `epoll_wait` may return.
    const BATCH: usize = 1024;

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let waker = Arc::new(Waker::new_fd().map_err(ReactorError::Os)?);
        // SAFETY: epoll_create1 has no pointer arguments.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(ReactorError::Os)?;
        // SAFETY: the fd was just created and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let selector = EpollSelector {
            epfd: Arc::new(epfd),
            waker: Arc::clone(&waker),
            buffer: Vec::with_capacity(BATCH),
        };
        let waker_fd = waker.read_fd().ok_or_else(|| ReactorError::Os(io::Error::other("no waker fd")))?;
        selector
            .ctl(libc::EPOLL_CTL_ADD, waker_fd, WAKER_DATA, libc::EPOLLIN as u32)
            .map_err(ReactorError::Os)?;
        Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
    }

    pub(super) struct EpollSelector {
        /// Shared with wait sets on helper threads (`epoll_ctl` and `epoll_wait` may
        /// run on different threads at once).
        epfd: Arc<OwnedFd>,
        waker: Arc<Waker>,
        buffer: Vec<libc::epoll_event>,
    }

    fn flags(interest: Interest) -> u32 {
        let mut flags = 0;
        if interest.read {
            flags |= libc::EPOLLIN | libc::EPOLLRDHUP;
        }
        if interest.write {
            flags |= libc::EPOLLOUT;
        }
        flags as u32
    }

    impl EpollSelector {
        fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
            let mut event = libc::epoll_event { events, u64: data };
            // SAFETY: `event` is a valid epoll_event for the duration of the call.
            cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) }).map(drop)
        }

        fn change(&self, change: &Change) -> io::Result<()> {
            let Change { fd, token, old, new, .. } = *change;
            let (add, modify) = (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD);
            if new.is_empty() {
                return match self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
                    // Closed: the kernel dropped it already.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) => Ok(()),
                    other => other,
                };
            }
            let (first, fallback, fallback_on) =
                if old.is_empty() { (add, modify, libc::EEXIST) } else { (modify, add, libc::ENOENT) };
            match self.ctl(first, fd, token.0, flags(new)) {
                // EEXIST: the kernel still has this fd and file registered (our
                // registry let go of it after an error the kernel never saw).
                // ENOENT: the kernel dropped the fd when it was closed, and its
                // number was reused.
                Err(e) if e.raw_os_error() == Some(fallback_on) => {
                    self.ctl(fallback, fd, token.0, flags(new))
                }
                other => other,
            }
        }
    }

    impl Selector for EpollSelector {
        fn info(&self) -> &'static BackendInfo {
            &super::INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            for change in changes {
                if let Err(e) = self.change(change) {
                    refused.push((change.token, e));
                }
            }
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            self.buffer.clear();
            // SAFETY: the buffer has capacity BATCH; the kernel writes at most BATCH
            // entries and we set the length to what it reports.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.buffer.as_mut_ptr(),
                    BATCH as libc::c_int,
                    timeout_millis(timeout),
                )
            };
            let n = match cvt(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            };
            // SAFETY: epoll_wait initialised the first `n` entries.
            unsafe { self.buffer.set_len(n) };
            for raw in &self.buffer {
                let (data, bits) = (raw.u64, raw.events);
                if data == WAKER_DATA {
                    self.waker.reset();
                    continue;
                }
                let error = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
                events.push(Event {
                    token: Token(data),
                    readable: error || bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 != 0,
                    writable: error || bits & libc::EPOLLOUT as u32 != 0,
                    invalid: false,
                });
            }
            Ok(())
        }

        fn watch_fd(&self) -> Option<RawFd> {
            Some(self.epfd.as_raw_fd())
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            Some(ForeignWait::Live(Box::new(EpollSelector {
                epfd: Arc::clone(&self.epfd),
                waker: Arc::clone(&self.waker),
                buffer: Vec::with_capacity(BATCH),
            })))
        }
    }
}
