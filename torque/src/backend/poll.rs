//! POSIX `poll(2)`. The `pollfd` array is kept between waits and edited in place, so
//! a wait costs one syscall plus a scan of the registered fds.

use super::{BackendInfo, BackendKind, Entry, Features, IoModel, SignalDelivery, Status, Support};

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Poll,
    name: "poll",
    summary: "POSIX poll(2); no fd limit, cost grows with registered fds",
    status: Status::Stable,
    platforms: "Linux, macOS, BSD, other POSIX",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(registered fds)",
    reports_closed_fds: true,
    child_exit: super::FD_CHILD_EXIT,
    wake: super::FD_WAKE,
    signals: SignalDelivery::Handler,
    // The interest set lives in user memory: no single fd stands for it.
    features: Features { watch_fd: Support::No, ..super::BASE_FEATURES },
};

#[cfg(unix)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(imp::open) };
#[cfg(not(unix))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };

#[cfg(unix)]
mod imp {

    use crate::backend::{
        BackendInfo, Change, Event, Events, ForeignWait, Interest, Opened, OpenedSelector, Refused, Selector,
        Token,
    };
    use crate::error::ReactorError;
    use crate::sys::{cvt, timeout_millis, waker::Waker};
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::Arc;
    use std::time::Duration;

    use super::INFO;

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let waker = Arc::new(Waker::new_fd().map_err(ReactorError::Os)?);
        let waker_fd = waker.read_fd().ok_or_else(|| ReactorError::Os(io::Error::other("no waker fd")))?;
        let waker_entry = libc::pollfd { fd: waker_fd, events: libc::POLLIN, revents: 0 };
        let selector = PollSelector {
            waker: Arc::clone(&waker),
            fds: vec![waker_entry],
            tokens: vec![Token::IGNORED],
            index_of: Vec::new(),
        };
        Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
    }

    #[derive(Clone)]
    struct PollSelector {
        waker: Arc<Waker>,
        /// Entry 0 is the waker; the rest are registrations.
        fds: Vec<libc::pollfd>,
        tokens: Vec<Token>,
        /// fd number → index in `fds`, or `usize::MAX`.
        index_of: Vec<usize>,
    }

    fn poll_events(interest: Interest) -> libc::c_short {
        let mut events = 0;
        if interest.read {
            events |= libc::POLLIN | libc::POLLPRI;
        }
        if interest.write {
            events |= libc::POLLOUT;
        }
        events
    }

    impl PollSelector {
        fn index(&self, fd: RawFd) -> Option<usize> {
            self.index_of.get(usize::try_from(fd).ok()?).copied().filter(|&i| i != usize::MAX)
        }

        fn set(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
            let slot = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
            if let Some(i) = self.index(fd) {
                self.fds[i].events = poll_events(interest);
                self.tokens[i] = token;
                return Ok(());
            }
            if self.index_of.len() <= slot {
                self.index_of.resize(slot + 1, usize::MAX);
            }
            self.index_of[slot] = self.fds.len();
            self.fds.push(libc::pollfd { fd, events: poll_events(interest), revents: 0 });
            self.tokens.push(token);
            Ok(())
        }

        fn remove(&mut self, fd: RawFd) {
            let Some(i) = self.index(fd) else { return };
            self.fds.swap_remove(i);
            self.tokens.swap_remove(i);
            self.index_of[fd as usize] = usize::MAX;
            if let Some(moved) = self.fds.get(i) {
                self.index_of[moved.fd as usize] = i;
            }
        }
    }

    impl Selector for PollSelector {
        fn info(&self) -> &'static BackendInfo {
            &INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            for change in changes {
                if change.new.is_empty() {
                    self.remove(change.fd);
                } else if let Err(e) = self.set(change.fd, change.token, change.new) {
                    refused.push((change.token, e));
                }
            }
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            // SAFETY: `fds` is a valid, initialised array of `len` pollfd entries.
            let n = unsafe {
                libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, timeout_millis(timeout))
            };
            let mut remaining = match cvt(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            };
            for (entry, &token) in self.fds.iter().zip(&self.tokens) {
                if remaining == 0 {
                    break;
                }
                let bits = entry.revents;
                if bits == 0 {
                    continue;
                }
                remaining -= 1;
                if token == Token::IGNORED {
                    self.waker.reset();
                    continue;
                }
                let error = bits & (libc::POLLERR | libc::POLLHUP) != 0;
                events.push(Event {
                    token,
                    readable: error || bits & (libc::POLLIN | libc::POLLPRI) != 0,
                    writable: error || bits & libc::POLLOUT != 0,
                    invalid: bits & libc::POLLNVAL != 0,
                });
            }
            Ok(())
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            Some(ForeignWait::Snapshot(Box::new(self.clone())))
        }
    }
}
