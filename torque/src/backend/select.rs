//! POSIX `select(2)`, the most portable backend. `fd_set` is a fixed bitmap of
//! `FD_SETSIZE` bits, so an fd at or above that is refused at registration with a
//! clear error instead of writing past the end of the set.

use super::{BackendInfo, BackendKind, Entry, Features, IoModel, SignalDelivery, Status, Support};

/// select's bitmap size (where it is not compiled in, POSIX's usual value,
/// for its description).
#[cfg(unix)]
const FD_SETSIZE: usize = libc::FD_SETSIZE;
#[cfg(not(unix))]
const FD_SETSIZE: usize = 1024;

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Select,
    name: "select",
    summary: "POSIX select(2); the most portable, fds below FD_SETSIZE only",
    status: Status::Stable,
    platforms: "Linux, macOS, BSD, other POSIX",
    io_model: IoModel::Readiness,
    fd_limit: Some(FD_SETSIZE),
    most_registrations: None,
    wait_cost: "O(highest fd)",
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
    use crate::sys::{cvt, fd_is_open, waker::Waker};
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::Arc;
    use std::time::Duration;

    use super::INFO;

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let waker = Arc::new(Waker::new_fd().map_err(ReactorError::Os)?);
        let waker_fd = waker.read_fd().ok_or_else(|| ReactorError::Os(io::Error::other("no waker fd")))?;
        SelectSelector::check(waker_fd).map_err(ReactorError::Os)?;
        let selector = SelectSelector {
            waker: Arc::clone(&waker),
            waker_fd,
            registrations: Vec::new(),
            read_set: FdSet::new(),
            write_set: FdSet::new(),
            highest_fd: -1,
        };
        Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
    }

    /// A safe wrapper over `fd_set` that only ever touches fds below `FD_SETSIZE`.
    #[derive(Clone, Copy)]
    struct FdSet(libc::fd_set);

    impl FdSet {
        fn new() -> FdSet {
            // SAFETY: a zeroed fd_set is valid storage; FD_ZERO then clears it properly.
            let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
            // SAFETY: `set` is a valid fd_set.
            unsafe { libc::FD_ZERO(&mut set) };
            FdSet(set)
        }
        fn insert(&mut self, fd: RawFd) {
            debug_assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
            // SAFETY: 0 <= fd < FD_SETSIZE, checked at registration.
            unsafe { libc::FD_SET(fd, &mut self.0) }
        }
        fn remove(&mut self, fd: RawFd) {
            // SAFETY: as in `insert`.
            unsafe { libc::FD_CLR(fd, &mut self.0) }
        }
        fn contains(&self, fd: RawFd) -> bool {
            // SAFETY: as in `insert`.
            unsafe { libc::FD_ISSET(fd, &self.0) }
        }
    }

    #[derive(Clone, Copy)]
    struct Registration {
        token: Token,
        interest: Interest,
    }

    #[derive(Clone)]
    struct SelectSelector {
        waker: Arc<Waker>,
        waker_fd: RawFd,
        /// Indexed by fd; `None` when not registered.
        registrations: Vec<Option<Registration>>,
        read_set: FdSet,
        write_set: FdSet,
        highest_fd: RawFd,
    }

    impl SelectSelector {
        /// Refuses fds select cannot hold. The reactor checks `fd_limit` before
        /// queueing a registration, so this is the second line of defence.
        fn check(fd: RawFd) -> io::Result<usize> {
            let limit = libc::FD_SETSIZE;
            match usize::try_from(fd) {
                Ok(slot) if slot < limit => Ok(slot),
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "fd {fd} is not below FD_SETSIZE ({limit}); use a backend without that limit (poll, epoll, kqueue)"
                    ),
                )),
                Err(_) => Err(io::Error::from_raw_os_error(libc::EBADF)),
            }
        }

        fn set(&mut self, fd: RawFd, registration: Option<Registration>) {
            let slot = fd as usize;
            if self.registrations.len() <= slot {
                self.registrations.resize(slot + 1, None);
            }
            self.registrations[slot] = registration;
            let interest = registration.map(|r| r.interest).unwrap_or_default();
            if interest.read {
                self.read_set.insert(fd)
            } else {
                self.read_set.remove(fd)
            }
            if interest.write {
                self.write_set.insert(fd)
            } else {
                self.write_set.remove(fd)
            }
            if registration.is_some() {
                self.highest_fd = self.highest_fd.max(fd);
            } else if fd == self.highest_fd {
                self.highest_fd =
                    self.registrations.iter().rposition(Option::is_some).map_or(-1, |i| i as RawFd);
            }
        }

        /// After EBADF: report every registered fd that is no longer open as invalid.
        fn report_closed(&self, events: &mut Events) {
            for (fd, registration) in self.registrations.iter().enumerate() {
                if let Some(r) = registration {
                    if !fd_is_open(fd as RawFd) {
                        events.push(Event {
                            token: r.token,
                            readable: false,
                            writable: false,
                            invalid: true,
                        });
                    }
                }
            }
        }
    }

    impl Selector for SelectSelector {
        fn info(&self) -> &'static BackendInfo {
            &INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            for change in changes {
                let fd = change.fd;
                if change.new.is_empty() {
                    if Self::check(fd).is_ok()
                        && self.registrations.get(fd as usize).is_some_and(Option::is_some)
                    {
                        self.set(fd, None);
                    }
                } else if let Err(e) = Self::check(fd) {
                    refused.push((change.token, e));
                } else {
                    self.set(fd, Some(Registration { token: change.token, interest: change.new }));
                }
            }
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            let waker_fd = self.waker_fd;
            let mut read = self.read_set;
            let mut write = self.write_set;
            read.insert(waker_fd);
            let nfds = self.highest_fd.max(waker_fd) + 1;
            let mut tv;
            let tv_ptr = match timeout {
                None => std::ptr::null_mut(),
                Some(d) => {
                    // Cap far-future timeouts at ~24 days, as the other backends do.
                    let d = d.min(Duration::from_millis(i32::MAX as u64));
                    tv = libc::timeval {
                        tv_sec: d.as_secs() as libc::time_t,
                        tv_usec: d.subsec_micros() as libc::suseconds_t,
                    };
                    &mut tv as *mut libc::timeval
                }
            };
            // SAFETY: the sets are valid fd_sets covering fds < nfds <= FD_SETSIZE, and
            // `tv_ptr` is null or points at a live timeval.
            let n = unsafe { libc::select(nfds, &mut read.0, &mut write.0, std::ptr::null_mut(), tv_ptr) };
            let mut remaining = match cvt(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                    self.report_closed(events);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if read.contains(waker_fd) {
                self.waker.reset();
                read.remove(waker_fd);
                remaining = remaining.saturating_sub(1);
            }
            for fd in 0..=self.highest_fd {
                if remaining == 0 {
                    break;
                }
                let (readable, writable) = (read.contains(fd), write.contains(fd));
                if !(readable || writable) {
                    continue;
                }
                remaining = remaining.saturating_sub(usize::from(readable) + usize::from(writable));
                if let Some(Some(r)) = self.registrations.get(fd as usize) {
                    events.push(Event { token: r.token, readable, writable, invalid: false });
                }
            }
            Ok(())
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            Some(ForeignWait::Snapshot(Box::new(self.clone())))
        }
    }
}
