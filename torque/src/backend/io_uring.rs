//! Linux `io_uring(7)`, first stage: readiness through the ring.
//!
//! Every registration is a one-shot `POLL_ADD` in the ring, re-armed after it
//! fires, so an fd that is still ready is reported again on the next wait —
//! level-triggered, like the other backends (a re-armed poll checks readiness
//! when the kernel takes it, which is the next `io_uring_enter`, after the
//! handlers ran). Registration changes, re-arms and the wait go to the kernel in
//! one `io_uring_enter` per pass; a removal is submitted at once, because an
//! armed poll holds a reference to its file and the owner may close the fd next.
//! A poll the OS refuses fails in the kernel as the entry is taken, so changes
//! applied outside a pass reap the ring at once and report refusals then;
//! readiness reaped that way waits for the next wait.
//!
//! The ring's fd is readable whenever completions wait, so other loops watch it
//! (`embed`, `torque-glib`), and `interleave`'s helper thread waits on it and
//! lets the reactor's thread reap ([`ForeignWait::Reap`]).
//!
//! What this stage does not do yet (planned): the completion path, where the
//! ring runs accepts, receives (multishot, into a provided buffer ring) and
//! sends itself. Until then the ring saves no system calls over epoll.
//!
//! Opening refuses cleanly where io_uring is missing or forbidden (ENOSYS, EPERM
//! from seccomp or `kernel.io_uring_disabled`, ENOMEM from `RLIMIT_MEMLOCK` on
//! old kernels) with [`ReactorError::BackendRefused`] naming the cause.
//!
//! [`ReactorError::BackendRefused`]: crate::ReactorError::BackendRefused
//! [`ForeignWait::Reap`]: super::ForeignWait::Reap

use super::{BackendInfo, BackendKind, Entry, IoModel, SignalDelivery, Status, Wake};

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::IoUring,
    name: "io_uring",
    summary: "Linux io_uring(7): one ring enter per pass; readiness through ring polls (completion I/O planned)",
    status: Status::Experimental,
    platforms: "Linux 5.11+",
    io_model: IoModel::Readiness,
    fd_limit: None,
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
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::sync::Arc;
    use std::time::Duration;

    use io_uring::{IoUring, cqueue, opcode, squeue, types};

    use crate::backend::{
        BackendInfo, Change, Event, Events, ForeignWait, Interest, Opened, Refused, Selector, Token, WaitSet,
    };
    use crate::error::ReactorError;
    use crate::sys::waker::Waker;

    /// Submission queue size; the completion queue gets four times as many.
    const ENTRIES: u32 = 1024;
    /// The waker's poll.
    const WAKER_DATA: u64 = u64::MAX;
    /// Entries whose completion means nothing (poll removals, no-ops).
    const IGNORED_DATA: u64 = u64::MAX - 1;

    /// What the backend knows of one fd.
    #[derive(Clone, Copy)]
    struct Registration {
        token: Token,
        interest: Interest,
        /// The sequence number of the poll armed for it, if one is.
        armed: Option<u32>,
    }

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let refused = |cause: String| ReactorError::BackendRefused { name: super::INFO.name, cause };
        let ring = IoUring::builder()
            .setup_cqsize(ENTRIES * 4)
            .setup_clamp()
            .build(ENTRIES)
            .map_err(|e| refused(setup_failure(&e)))?;
        if !ring.params().is_feature_ext_arg() {
            return Err(refused(
                "the kernel's io_uring lacks IORING_FEAT_EXT_ARG (waits with a timeout, Linux 5.11)".into(),
            ));
        }
        if !ring.params().is_feature_nodrop() {
            return Err(refused("the kernel's io_uring lacks IORING_FEAT_NODROP (Linux 5.5)".into()));
        }
        let waker = Arc::new(Waker::new_fd().map_err(ReactorError::Os)?);
        let waker_fd = waker.read_fd().ok_or_else(|| ReactorError::Os(io::Error::other("no waker fd")))?;
        let mut selector = RingSelector {
            ring,
            waker: Arc::clone(&waker),
            waker_fd,
            registrations: Vec::new(),
            next_seq: 0,
            rearm: Vec::new(),
            fired: Vec::new(),
            backlog_rearm: Vec::new(),
            backlog: Vec::new(),
            refused_backlog: Vec::new(),
            completions: Vec::with_capacity(ENTRIES as usize),
        };
        selector.arm_waker().map_err(ReactorError::Os)?;
        selector.ring.submit().map_err(|e| refused(format!("io_uring_enter failed: {e}")))?;
        Ok(Opened { selector: Box::new(selector), waker })
    }

    /// One line naming why `io_uring_setup` failed.
    fn setup_failure(error: &io::Error) -> String {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        match error.raw_os_error() {
            Some(libc::ENOSYS) => {
                "io_uring_setup is not implemented (kernel without io_uring, or a sandbox that \
                                   hides it): ENOSYS"
                    .into()
            }
            Some(libc::EPERM) if disabled > 0 => {
                format!("io_uring is disabled by the sysctl kernel.io_uring_disabled={disabled}: EPERM")
            }
            Some(libc::EPERM) => {
                "io_uring_setup is forbidden (a seccomp filter or container policy): EPERM".into()
            }
            Some(libc::ENOMEM) => {
                "no memory for the ring (RLIMIT_MEMLOCK too low on kernels before 5.12): ENOMEM".into()
            }
            _ => format!("io_uring_setup failed: {error}"),
        }
    }

    pub(super) struct RingSelector {
        ring: IoUring,
        waker: Arc<Waker>,
        waker_fd: RawFd,
        /// By fd number.
        registrations: Vec<Option<Registration>>,
        next_seq: u32,
        /// Fds whose readiness was delivered: re-armed with the next enter,
        /// after their handlers ran.
        rearm: Vec<RawFd>,
        /// Fds whose poll fired in the reap going on.
        fired: Vec<RawFd>,
        /// Readiness reaped while applying changes, for the next wait...
        backlog: Vec<Event>,
        /// ...and those events' fds, re-armed only once it was delivered.
        backlog_rearm: Vec<RawFd>,
        /// Refusals reaped where no caller could be told, for the next wait.
        refused_backlog: Vec<Refused>,
        /// `(user data, result, flags)` of the completions being reaped, kept
        /// for its allocation.
        completions: Vec<(u64, i32, u32)>,
    }

    fn poll_mask(interest: Interest) -> u32 {
        let mut mask = 0;
        if interest.read {
            mask |= libc::POLLIN | libc::POLLRDHUP | libc::POLLPRI;
        }
        if interest.write {
            mask |= libc::POLLOUT;
        }
        mask as u32
    }

    fn user_data(fd: RawFd, seq: u32) -> u64 {
        (u64::from(fd as u32) << 32) | u64::from(seq)
    }

    impl RingSelector {
        /// Queues `entry`, submitting first if the queue is full.
        fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
            loop {
                // SAFETY: the entries this backend makes (polls and poll removals)
                // point at no user memory, so nothing must outlive the submission.
                if unsafe { self.ring.submission().push(entry) }.is_ok() {
                    return Ok(());
                }
                self.submit_now()?;
            }
        }

        /// Submits what is queued without waiting. Completions are left in the
        /// ring for the next reap.
        fn submit_now(&mut self) -> io::Result<()> {
            loop {
                match self.ring.submit() {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // The completion queue is full and the kernel holds more:
                    // reaping makes room.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        let mut events = std::mem::take(&mut self.backlog);
                        let mut refused = std::mem::take(&mut self.refused_backlog);
                        self.reap(&mut events, &mut refused);
                        self.backlog = events;
                        self.refused_backlog = refused;
                        self.backlog_rearm.append(&mut self.fired);
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        fn arm_waker(&mut self) -> io::Result<()> {
            let entry = opcode::PollAdd::new(types::Fd(self.waker_fd), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(WAKER_DATA);
            self.push(&entry)
        }

        fn slot(&mut self, fd: RawFd) -> &mut Option<Registration> {
            let index = fd as usize;
            if index >= self.registrations.len() {
                self.registrations.resize(index + 1, None);
            }
            &mut self.registrations[index]
        }

        /// Arms a one-shot poll for `fd`'s registration.
        fn arm(&mut self, fd: RawFd) -> io::Result<()> {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            let Some(registration) = self.slot(fd).as_mut() else { return Ok(()) };
            if registration.interest.is_empty() || registration.armed.is_some() {
                return Ok(());
            }
            registration.armed = Some(seq);
            let mask = poll_mask(registration.interest);
            self.push(&opcode::PollAdd::new(types::Fd(fd), mask).build().user_data(user_data(fd, seq)))
        }

        /// Cancels `fd`'s armed poll, if any.
        fn disarm(&mut self, fd: RawFd) -> io::Result<()> {
            let Some(registration) = self.slot(fd).as_mut() else { return Ok(()) };
            let Some(seq) = registration.armed.take() else { return Ok(()) };
            self.push(&opcode::PollRemove::new(user_data(fd, seq)).build().user_data(IGNORED_DATA))
        }

        /// Queues the entries for one change.
        fn change(&mut self, change: &Change) -> io::Result<()> {
            let Change { fd, token, new, .. } = *change;
            if fd < 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            if fd == self.ring.as_raw_fd() && !new.is_empty() {
                // Its readiness is its own completions: a loop (epoll refuses
                // itself the same way).
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.disarm(fd)?;
            if new.is_empty() {
                *self.slot(fd) = None;
                return Ok(());
            }
            *self.slot(fd) = Some(Registration { token, interest: new, armed: None });
            self.arm(fd)
        }

        /// Queues the changes; true if one ends a registration (submit now).
        fn queue_changes(&mut self, changes: &[Change], refused: &mut Vec<Refused>) -> bool {
            let mut removes = false;
            for change in changes {
                removes |= change.new.is_empty() && !change.old.is_empty();
                if let Err(e) = self.change(change) {
                    if change.token != Token::IGNORED {
                        refused.push((change.token, e));
                    }
                }
            }
            removes
        }

        /// Re-arms the polls that fired since the last enter.
        fn rearm_fired(&mut self) -> io::Result<()> {
            let fired = std::mem::take(&mut self.rearm);
            for &fd in &fired {
                self.arm(fd)?;
            }
            self.rearm = fired;
            self.rearm.clear();
            Ok(())
        }

        /// Takes every completion: readiness into `events`, refused polls into `refused`.
        fn reap(&mut self, events: &mut Vec<Event>, refused: &mut Vec<Refused>) {
            let mut rearm_waker = false;
            // The completion queue borrows the ring; collect first, then update
            // the registrations.
            let mut fired = std::mem::take(&mut self.completions);
            fired.extend(self.ring.completion().map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
            for &(data, result, flags) in &fired {
                match data {
                    WAKER_DATA => {
                        self.waker.reset();
                        rearm_waker |= !cqueue::more(flags);
                    }
                    IGNORED_DATA => {}
                    _ => self.completed(data, result, events, refused),
                }
            }
            fired.clear();
            self.completions = fired;
            if rearm_waker {
                if let Err(e) = self.arm_waker() {
                    tracing::error!(error = %e, "io_uring: cannot re-arm the waker's poll");
                }
            }
        }

        /// One poll's completion.
        fn completed(&mut self, data: u64, result: i32, events: &mut Vec<Event>, refused: &mut Vec<Refused>) {
            let fd = (data >> 32) as RawFd;
            let seq = data as u32;
            let Some(registration) = self.slot(fd).as_mut() else { return };
            if registration.armed != Some(seq) {
                return; // a poll replaced or removed since
            }
            registration.armed = None;
            let token = registration.token;
            if result < 0 {
                // The fd was closed, or cannot be polled: drop it, as epoll
                // refuses such an fd when it is added.
                *self.slot(fd) = None;
                refused.push((token, io::Error::from_raw_os_error(-result)));
                return;
            }
            let bits = result as u32 as libc::c_short;
            let error = bits & (libc::POLLERR | libc::POLLHUP) != 0;
            events.push(Event {
                token,
                readable: error || bits & (libc::POLLIN | libc::POLLRDHUP | libc::POLLPRI) != 0,
                writable: error || bits & libc::POLLOUT != 0,
                invalid: bits & libc::POLLNVAL != 0,
            });
            self.fired.push(fd);
        }

        /// Submits the queue, and reaps at once so refusals are known now.
        fn submit_and_reap(&mut self, refused: &mut Vec<Refused>) {
            if let Err(e) = self.rearm_fired().and_then(|()| self.submit_now()) {
                tracing::error!(error = %e, "io_uring: submitting changes failed");
            }
            let mut events = std::mem::take(&mut self.backlog);
            self.reap(&mut events, refused);
            self.backlog = events;
            self.backlog_rearm.append(&mut self.fired);
            if !self.backlog.is_empty() || !self.refused_backlog.is_empty() {
                // The ring's fd must stay readable while reaped events wait, or a
                // loop watching it (embed, interleave) would sleep on them: a
                // no-op's completion keeps it so.
                let nop = opcode::Nop::new().build().user_data(IGNORED_DATA);
                if let Err(e) = self.push(&nop).and_then(|()| self.submit_now()) {
                    tracing::error!(error = %e, "io_uring: cannot post a no-op");
                }
            }
        }

        /// Blocks in one `io_uring_enter` that submits the queue and waits for a
        /// completion or the timeout.
        fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            let result = match timeout {
                None => self.ring.submit_and_wait(1),
                Some(t) if t.is_zero() => self.ring.submit(),
                Some(t) => {
                    let ts = types::Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
            };
            match result {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }

    impl Selector for RingSelector {
        fn info(&self) -> &'static BackendInfo {
            &super::INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            self.queue_changes(changes, refused);
            self.submit_and_reap(refused);
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            // Refusals wait for the next `apply_and_wait`, which can report them.
            let mut refused = Vec::new();
            let result = self.apply_and_wait(&[], &mut refused, events, timeout);
            self.refused_backlog.append(&mut refused);
            result
        }

        fn apply_and_wait(
            &mut self,
            changes: &[Change],
            refused: &mut Vec<Refused>,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.clear();
            refused.append(&mut self.refused_backlog);
            self.queue_changes(changes, refused);
            self.rearm_fired()?;
            // Readiness reaped earlier, or refusals: do not sleep on them.
            let pending = !self.backlog.is_empty() || !refused.is_empty();

            self.enter(if pending { Some(Duration::ZERO) } else { timeout })?;
            let mut reaped = std::mem::take(&mut self.backlog);
            self.reap(&mut reaped, refused);
            for event in reaped.drain(..) {
                events.push(event);
            }
            self.backlog = reaped;
            // Everything reaped is delivered now: re-armed at the next enter.
            self.rearm.append(&mut self.backlog_rearm);
            self.rearm.append(&mut self.fired);
            Ok(())
        }

        fn flush(&mut self) {
            if self.rearm.is_empty() && self.ring.submission().is_empty() {
                return;
            }
            // A re-armed poll refused here is reported by the next wait.
            let mut refused = std::mem::take(&mut self.refused_backlog);
            self.submit_and_reap(&mut refused);
            self.refused_backlog = refused;
        }

        fn watch_fd(&self) -> Option<RawFd> {
            Some(self.ring.as_raw_fd())
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            // SAFETY: the ring owns this fd and outlives the call; the clone is
            // a new fd the helper owns.
            let fd = unsafe { BorrowedFd::borrow_raw(self.ring.as_raw_fd()) }.try_clone_to_owned().ok()?;
            Some(ForeignWait::Reap(Box::new(RingReadable { fd })))
        }
    }

    /// `interleave`'s wait: blocks until the ring has completions; the
    /// reactor's thread reaps them.
    struct RingReadable {
        fd: OwnedFd,
    }

    impl WaitSet for RingReadable {
        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            let mut pollfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pollfd, 1, crate::sys::timeout_millis(timeout)) };
            match crate::sys::cvt(n) {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
                _ => Ok(()),
            }
        }
    }
}
