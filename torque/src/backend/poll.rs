//! POSIX `poll(2)`. The `pollfd` array is kept between waits and edited in place, so
//! a wait costs one syscall plus a scan of the registered fds.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::{BackendInfo, BackendKind, Event, Events, Interest, Poller, Token, WaitSet};
use crate::sys::{cvt, timeout_millis, waker::Waker};

#[derive(Clone)]
pub(crate) struct PollPoller {
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

impl PollPoller {
    pub(crate) fn new(waker: Arc<Waker>) -> PollPoller {
        let waker_entry = libc::pollfd { fd: waker.read_fd(), events: libc::POLLIN, revents: 0 };
        PollPoller { waker, fds: vec![waker_entry], tokens: vec![Token(u64::MAX)], index_of: Vec::new() }
    }

    fn index(&self, fd: RawFd) -> Option<usize> {
        self.index_of.get(usize::try_from(fd).ok()?).copied().filter(|&i| i != usize::MAX)
    }
}

fn bad_fd() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl Poller for PollPoller {
    fn info(&self) -> &'static BackendInfo {
        BackendKind::Poll.info()
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let slot = usize::try_from(fd).map_err(|_| bad_fd())?;
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

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.register(fd, token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(i) = self.index(fd) else { return Ok(()) };
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        self.index_of[fd as usize] = usize::MAX;
        if let Some(moved) = self.fds.get(i) {
            self.index_of[moved.fd as usize] = i;
        }
        Ok(())
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
            if token.0 == u64::MAX {
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

impl WaitSet for PollPoller {
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        Poller::wait(self, events, timeout)
    }
}
