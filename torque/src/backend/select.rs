//! POSIX `select(2)`, the most portable backend. `fd_set` is a fixed bitmap of
//! `FD_SETSIZE` bits, so an fd at or above that is refused at registration with a
//! clear error instead of writing past the end of the set.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::{BackendInfo, BackendKind, Event, Events, Interest, Poller, Token, WaitSet};
use crate::sys::{cvt, fd_is_open, waker::Waker};

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
pub(crate) struct SelectPoller {
    waker: Arc<Waker>,
    /// Indexed by fd; `None` when not registered.
    registrations: Vec<Option<Registration>>,
    read_set: FdSet,
    write_set: FdSet,
    highest_fd: RawFd,
}

impl SelectPoller {
    pub(crate) fn new(waker: Arc<Waker>) -> io::Result<SelectPoller> {
        Self::check(waker.read_fd())?;
        Ok(SelectPoller {
            waker,
            registrations: Vec::new(),
            read_set: FdSet::new(),
            write_set: FdSet::new(),
            highest_fd: -1,
        })
    }

    fn check(fd: RawFd) -> io::Result<usize> {
        let limit = libc::FD_SETSIZE;
        match usize::try_from(fd) {
            Ok(slot) if slot < limit => Ok(slot),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is not below FD_SETSIZE ({limit}); use the poll or epoll backend"),
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
            self.highest_fd = self.registrations.iter().rposition(Option::is_some).map_or(-1, |i| i as RawFd);
        }
    }

    /// After EBADF: report every registered fd that is no longer open as invalid.
    fn report_closed(&self, events: &mut Events) {
        for (fd, registration) in self.registrations.iter().enumerate() {
            if let Some(r) = registration {
                if !fd_is_open(fd as RawFd) {
                    events.push(Event { token: r.token, readable: false, writable: false, invalid: true });
                }
            }
        }
    }
}

impl Poller for SelectPoller {
    fn info(&self) -> &'static BackendInfo {
        BackendKind::Select.info()
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        Self::check(fd)?;
        self.set(fd, Some(Registration { token, interest }));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.register(fd, token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        if Self::check(fd).is_ok() && self.registrations.get(fd as usize).is_some_and(Option::is_some) {
            self.set(fd, None);
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let waker_fd = self.waker.read_fd();
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

    fn waker(&self) -> &Arc<Waker> {
        &self.waker
    }

    fn watch_fd(&self) -> Option<RawFd> {
        None
    }

    fn wait_set(&self) -> Box<dyn WaitSet> {
        Box::new(self.clone())
    }
}

impl WaitSet for SelectPoller {
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        Poller::wait(self, events, timeout)
    }
}
