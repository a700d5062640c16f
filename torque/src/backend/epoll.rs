//! Linux `epoll(7)`, used level-triggered so it behaves like select and poll.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::{BackendInfo, BackendKind, Event, Events, Interest, Poller, Token, WaitSet};
use crate::error::ReactorError;
use crate::sys::{cvt, timeout_millis, waker::Waker};

/// The waker's registration; never handed to the reactor.
const WAKER_DATA: u64 = u64::MAX;
/// How many events one `epoll_wait` may return.
const BATCH: usize = 1024;

pub(crate) struct EpollPoller {
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

impl EpollPoller {
    pub(crate) fn new(waker: Arc<Waker>) -> Result<EpollPoller, ReactorError> {
        // SAFETY: epoll_create1 has no pointer arguments.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(ReactorError::Os)?;
        // SAFETY: the fd was just created and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let poller = EpollPoller { epfd: Arc::new(epfd), waker, buffer: Vec::with_capacity(BATCH) };
        let waker_fd = poller.waker.read_fd();
        poller
            .ctl(libc::EPOLL_CTL_ADD, waker_fd, WAKER_DATA, libc::EPOLLIN as u32)
            .map_err(ReactorError::Os)?;
        Ok(poller)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }
}

impl Poller for EpollPoller {
    fn info(&self) -> &'static BackendInfo {
        BackendKind::Epoll.info()
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_ADD, fd, token.0, flags(interest)) {
            // The kernel still has this fd and file registered (our registry let go
            // of it after an error the kernel never saw): take it over.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.ctl(libc::EPOLL_CTL_MOD, fd, token.0, flags(interest))
            }
            other => other,
        }
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_MOD, fd, token.0, flags(interest)) {
            // The kernel dropped the fd when it was closed and its number was reused.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.ctl(libc::EPOLL_CTL_ADD, fd, token.0, flags(interest))
            }
            other => other,
        }
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EBADF)) => Ok(()),
            other => other,
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

    fn waker(&self) -> &Arc<Waker> {
        &self.waker
    }

    fn watch_fd(&self) -> Option<RawFd> {
        Some(self.epfd.as_raw_fd())
    }

    fn wait_set(&self) -> Box<dyn WaitSet> {
        Box::new(EpollPoller {
            epfd: Arc::clone(&self.epfd),
            waker: Arc::clone(&self.waker),
            buffer: Vec::with_capacity(BATCH),
        })
    }

    fn wait_set_is_live(&self) -> bool {
        true
    }
}

impl WaitSet for EpollPoller {
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        Poller::wait(self, events, timeout)
    }
}
