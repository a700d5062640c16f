//! The io_uring selector: per-fd state, the operations armed for it, and the
//! one `io_uring_enter` per pass.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::buffers::{self, BufferRing};
use super::receive::ReceiveQueue;
use crate::backend::{
    BackendInfo, Change, Completions, Event, Events, ForeignWait, Interest, Opened, OpenedSelector,
    ReceivedBytes, Refused, Selector, Token, WaitSet,
};
use crate::error::ReactorError;
use crate::sys::waker::Waker;

/// Submission queue size; the completion queue gets four times as many.
const ENTRIES: u32 = 1024;
/// Receive buffers shared by every connection of the reactor, and their size:
/// 8 MiB of address space, touched as used.
const BUFFERS: u16 = 2048;
const BUFFER_SIZE: usize = 4096;
/// The most ring buffers one connection's queue holds (64 KiB, what one read
/// takes): past it its receive is cancelled, so the rest waits in the socket
/// (and TCP's window applies) instead of draining the shared ring — a peer
/// sending faster than its protocol reads could otherwise take every buffer
/// and starve the others. Armed again once the queue is half read. When the
/// ring runs dry, connections that stopped reading copy their queues out of it.
const QUEUE_LIMIT: usize = 16;
/// The waker's poll.
const WAKER_DATA: u64 = u64::MAX;
/// Entries whose completion means nothing (removals, cancels, no-ops).
const IGNORED_DATA: u64 = u64::MAX - 1;
/// The kind of operation, in the top bits of the low half of its user data
/// (the high half is the fd); the rest is its sequence number.
const KIND_MASK: u32 = 0b11 << 30;
const RECEIVE_KIND: u32 = 0b10 << 30;
const SEND_KIND: u32 = 0b01 << 30;
const ACCEPT_KIND: u32 = 0b11 << 30;
const SEQ_MASK: u32 = !KIND_MASK;
/// The most one send hands the kernel (it takes what the socket holds and
/// reports that; the rest goes with the next send).
const SEND_MAX: usize = 1 << 30;

/// Connections one listening socket's queue holds at most: past it its
/// accept is cancelled (armed again once half were taken), so the rest wait
/// in the kernel's backlog, as with readiness.
const ACCEPT_QUEUE_LIMIT: usize = 64;

/// A listening socket whose connections arrive by a multishot accept.
struct Listener {
    fd: RawFd,
    /// The accept armed (its number), if any.
    armed: Option<u32>,
    /// Accepts numbered below this (in the fd's own count, `next_accept`)
    /// belong to an earlier socket on this fd number: what they accepted is
    /// closed.
    valid_from: u32,
    /// Accepted connections (or an errno), not taken yet.
    queue: VecDeque<Result<OwnedFd, i32>>,
}

impl Listener {
    fn is_current(&self, seq: u32) -> bool {
        seq.wrapping_sub(self.valid_from) & SEQ_MASK < 1 << 29
    }
}

/// What the backend knows of one fd number.
struct FdState {
    token: Token,
    /// What the reactor wants (empty: not registered).
    interest: Interest,
    /// The one-shot poll armed for it (sequence number), if any.
    poll_armed: Option<u32>,
    /// Reads arrive as completions of a multishot receive (stream sockets
    /// whose transport asked for it), not as readiness.
    receives: bool,
    /// The multishot receive armed for it (its number), if any.
    receive_armed: Option<u32>,
    /// The number of the next receive armed for this fd.
    next_receive: u32,
    /// The number of the next accept armed for this fd (counted per fd, as
    /// receives are, so a long-lived port's numbers stay current).
    next_accept: u32,
    /// Receives numbered below this belong to an earlier connection on this
    /// fd number: their data is dropped.
    receive_valid_from: u32,
    /// The receive reported the end of file or an error: not armed again.
    receive_ended: bool,
    queue: ReceiveQueue,
    /// In `RingSelector::unread` (its queue may hold something to announce).
    listed: bool,
    /// Writes go through ring sends (stream sockets whose transport asked).
    sends: bool,
    /// A listening socket whose connections come by a multishot accept (in
    /// `RingSelector::listeners`), not as readiness.
    accepts: bool,
    /// Its accept failed for want of fds (EMFILE, ENFILE): until an fd is
    /// free again the port accepts by readiness (a poll) and `accept(2)`,
    /// which sheds what it cannot serve; an accept armed while the table is
    /// full fails at once, pending connection or not.
    accept_waits: bool,
    /// The send in flight (its number) and the buffer lent to it, which
    /// stays here until the kernel reports the send done, then until the
    /// transport takes it back with the result.
    send_in_flight: Option<u32>,
    send_buffer: Option<Vec<u8>>,
    next_send: u32,
    /// The finished send's result (bytes sent, or `-errno`), until taken.
    send_result: Option<i32>,
    /// How many bytes the last send was given.
    send_len: u32,
    /// In `RingSelector::writable`.
    send_listed: bool,
    /// The transport asked to hear once it can write (a pull producer, a
    /// direct write that found the socket full): announced writable when no
    /// send is in flight, until its next `send_done`.
    wants_writable: bool,
    /// A direct write (`sendfile`) found the socket full: a poll for room
    /// announces it writable, not the (absent) send's completion.
    await_room: bool,
}

impl Default for FdState {
    fn default() -> FdState {
        FdState {
            token: Token::IGNORED,
            interest: Interest::NONE,
            poll_armed: None,
            receives: false,
            receive_armed: None,
            next_receive: 0,
            next_accept: 0,
            receive_valid_from: 0,
            receive_ended: false,
            queue: ReceiveQueue::default(),
            listed: false,
            sends: false,
            accepts: false,
            accept_waits: false,
            send_in_flight: None,
            send_buffer: None,
            next_send: 0,
            send_result: None,
            send_len: 0,
            send_listed: false,
            wants_writable: false,
            await_room: false,
        }
    }
}

impl FdState {
    /// Whether receive number `seq` belongs to the current connection (numbers
    /// wrap, so compared by distance).
    fn receive_is_current(&self, seq: u32) -> bool {
        seq.wrapping_sub(self.receive_valid_from) & SEQ_MASK < 1 << 29
    }

    /// Whether to announce the fd writable: a send finished (its result is
    /// for the transport to take), or the transport asked and no send is in
    /// flight nor room awaited. A completion connection keeps write interest
    /// registered for its life, so the result always reaches it.
    fn can_send(&self) -> bool {
        self.interest.write
            && self.send_in_flight.is_none()
            && !self.await_room
            && (self.wants_writable || self.send_needs_writer())
    }

    /// Whether the finished send left work for the transport: bytes it did
    /// not take, or an error. A send that took everything waits quietly
    /// until the transport next writes (or asks, `wants_writable`): nothing
    /// waits for it, so no event is spent on it.
    fn send_needs_writer(&self) -> bool {
        self.send_result.is_some_and(|r| r < 0 || r as u32 != self.send_len)
    }

    /// Whether `RingSelector::writable` should keep listing the fd (a send
    /// in flight lists it again when it completes).
    fn send_pending(&self) -> bool {
        self.sends && (self.wants_writable || self.send_needs_writer())
    }

    /// What the poll covers: reads and writes, unless they come as
    /// completions (writes too while waiting for room).
    fn poll_interest(&self) -> Interest {
        Interest {
            read: self.interest.read && !self.receives && (!self.accepts || self.accept_waits),
            write: self.interest.write && (!self.sends || self.await_room),
        }
    }

    /// Whether queued completions should be announced as readable now.
    fn announce(&self) -> bool {
        self.interest.read && !self.queue.is_empty()
    }
}

pub(super) fn open() -> Result<Opened, ReactorError> {
    let refused = |cause: String| ReactorError::BackendRefused { name: super::INFO.name, cause };
    // Completions are posted when this thread next enters the kernel, not by
    // interrupting it (COOP_TASKRUN, 5.19; without it, older kernels).
    let ring = IoUring::builder()
        .setup_cqsize(ENTRIES * 4)
        .setup_clamp()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(ENTRIES)
        .or_else(|_| IoUring::builder().setup_cqsize(ENTRIES * 4).setup_clamp().build(ENTRIES))
        .map_err(|e| refused(setup_failure(&e)))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(refused(
            "the kernel's io_uring lacks IORING_FEAT_EXT_ARG (waits with a timeout, Linux 5.11)".into(),
        ));
    }
    if !ring.params().is_feature_nodrop() {
        return Err(refused("the kernel's io_uring lacks IORING_FEAT_NODROP (Linux 5.5)".into()));
    }
    let buffers = if receives_supported() {
        match BufferRing::new(&ring, BUFFERS, BUFFER_SIZE) {
            Ok(buffers) => Some(buffers),
            Err(e) => {
                tracing::debug!(error = %e, "io_uring: no provided buffer ring; reads use readiness");
                None
            }
        }
    } else {
        None
    };
    let waker = Arc::new(Waker::new_fd().map_err(ReactorError::Os)?);
    let waker_fd = waker.read_fd().ok_or_else(|| ReactorError::Os(io::Error::other("no waker fd")))?;
    let mut selector = RingSelector {
        ring,
        buffers,
        waker: Arc::clone(&waker),
        waker_fd,
        fds: Vec::new(),
        next_seq: 0,
        rearm: Vec::new(),
        fired: Vec::new(),
        backlog_rearm: Vec::new(),
        backlog: Vec::new(),
        refused_backlog: Vec::new(),
        unread: Vec::new(),
        receive_rearm: Vec::new(),
        starved: Vec::new(),
        writable: Vec::new(),
        orphans: Vec::new(),
        listeners: Vec::new(),
        accept_rearm: Vec::new(),
        completions: Vec::with_capacity(ENTRIES as usize),
    };
    selector.arm_waker().map_err(ReactorError::Os)?;
    selector.ring.submit().map_err(|e| refused(format!("io_uring_enter failed: {e}")))?;
    Ok(Opened { selector: OpenedSelector::Completion(Box::new(selector)), waker })
}

/// Multishot receives with provided buffer rings: Linux 6.0.
fn receives_supported() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 0)
}

/// Whether the process may open another file: a slot in its fd table and a
/// new file in the system's (an eventfd, closed again at once; a duplicate
/// would need no new file, so it would not see ENFILE).
fn fd_available() -> bool {
    // SAFETY: eventfd has no pointer arguments; a new fd is closed below.
    let probe = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if probe < 0 {
        return false;
    }
    // SAFETY: `probe` was just opened here and nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(probe) });
    true
}

/// One line naming why `io_uring_setup` failed.
fn setup_failure(error: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    match error.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring_setup is not implemented (kernel without io_uring, or a sandbox that hides it): ENOSYS"
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
    /// The receive buffers, where the kernel has multishot receives.
    buffers: Option<BufferRing>,
    waker: Arc<Waker>,
    waker_fd: RawFd,
    /// By fd number.
    fds: Vec<FdState>,
    next_seq: u32,
    /// Fds whose poll readiness was delivered: re-armed with the next enter,
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
    /// Fds whose receive queue may hold something (announced while it does
    /// and reading is wanted).
    unread: Vec<RawFd>,
    /// Fds whose multishot receive ended early, or whose full queue was read
    /// down: armed again with the next enter.
    receive_rearm: Vec<RawFd>,
    /// Fds whose receive found no free buffer: armed again only once a buffer
    /// was given back (re-arming at once would spin while the ring is empty).
    starved: Vec<RawFd>,
    /// Fds sending through the ring with a writer registered (announced
    /// writable while no send is in flight).
    writable: Vec<RawFd>,
    /// Sends of connections that closed meanwhile, by user data: their bytes
    /// live until the kernel is done with them.
    orphans: Vec<(u64, Vec<u8>)>,
    /// Listening sockets served by multishot accepts (a few per reactor).
    listeners: Vec<Listener>,
    /// Listening sockets whose accept ended, or whose full queue was taken
    /// down: armed again with the next enter.
    accept_rearm: Vec<RawFd>,
    /// `(user data, result, flags)` of the completions being reaped, kept for
    /// its allocation.
    completions: Vec<(u64, i32, u32)>,
}

impl Drop for RingSelector {
    fn drop(&mut self) {
        // Sends still in flight read memory this drop frees: cancel them and
        // wait (bounded) for the kernel to report each one done.
        let mut in_flight: Vec<u64> = self.orphans.iter().map(|(data, _)| *data).collect();
        for (fd, state) in self.fds.iter().enumerate() {
            if let Some(seq) = state.send_in_flight {
                in_flight.push(user_data(fd as RawFd, seq | SEND_KIND));
            }
        }
        for data in in_flight {
            let _ = self.push(&opcode::AsyncCancel::new(data).build().user_data(IGNORED_DATA));
        }
        let mut events = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..100 {
            let sending = !self.orphans.is_empty() || self.fds.iter().any(|s| s.send_in_flight.is_some());
            if !sending || self.enter(Some(Duration::from_millis(10))).is_err() {
                break;
            }
            self.reap(&mut events, &mut refused);
        }
        // Still not reported: the kernel may yet read them, so they are never freed.
        for (_, buffer) in self.orphans.drain(..) {
            std::mem::forget(buffer);
        }
        for state in self.fds.iter_mut().filter(|s| s.send_in_flight.is_some()) {
            if let Some(buffer) = state.send_buffer.take() {
                std::mem::forget(buffer);
            }
        }
        // The kernel lets go of the buffers before their memory goes.
        if let Some(buffers) = &self.buffers {
            buffers.unregister(&self.ring);
        }
    }
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
            // SAFETY: the memory entries point at outlives their operations:
            // receives draw from the registered buffer ring, which lives as
            // long as the ring; a send's bytes live in its fd's state (or the
            // orphans) until its completion, and `Drop` waits for in-flight
            // sends or leaks their bytes. Polls, removals, cancels and no-ops
            // point at no memory.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.submit_now()?;
        }
    }

    /// Submits what is queued without waiting. Completions stay in the ring
    /// for the next reap.
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

    fn state(&mut self, fd: RawFd) -> &mut FdState {
        let index = fd as usize;
        if index >= self.fds.len() {
            self.fds.resize_with(index + 1, FdState::default);
        }
        &mut self.fds[index]
    }

    fn next_seq(&mut self) -> u32 {
        let seq = self.next_seq & SEQ_MASK;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// Arms a one-shot poll for what `fd`'s poll covers, unless one is armed.
    fn arm_poll(&mut self, fd: RawFd) -> io::Result<()> {
        let seq = self.next_seq();
        let state = self.state(fd);
        let interest = state.poll_interest();
        if interest.is_empty() || state.poll_armed.is_some() {
            return Ok(());
        }
        state.poll_armed = Some(seq);
        self.push(
            &opcode::PollAdd::new(types::Fd(fd), poll_mask(interest)).build().user_data(user_data(fd, seq)),
        )
    }

    /// Removes `fd`'s armed poll, if any.
    fn disarm_poll(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(seq) = self.state(fd).poll_armed.take() else { return Ok(()) };
        self.push(&opcode::PollRemove::new(user_data(fd, seq)).build().user_data(IGNORED_DATA))
    }

    /// Arms `fd`'s multishot receive, if reads are wanted and none is armed.
    fn arm_receive(&mut self, fd: RawFd) -> io::Result<()> {
        let state = self.state(fd);
        // A full queue waits until it is half read (see QUEUE_LIMIT).
        if !state.receives
            || !state.interest.read
            || state.receive_armed.is_some()
            || state.receive_ended
            || state.queue.len() >= QUEUE_LIMIT
        {
            return Ok(());
        }
        let seq = state.next_receive & SEQ_MASK;
        state.next_receive = state.next_receive.wrapping_add(1);
        let entry = opcode::RecvMulti::new(types::Fd(fd), buffers::GROUP)
            .build()
            .user_data(user_data(fd, seq | RECEIVE_KIND));
        self.push(&entry)?;
        self.state(fd).receive_armed = Some(seq);
        Ok(())
    }

    /// Cancels `fd`'s multishot receive. What it received before the cancel
    /// still arrives, and is kept.
    fn disarm_receive(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(seq) = self.state(fd).receive_armed.take() else { return Ok(()) };
        self.push(
            &opcode::AsyncCancel::new(user_data(fd, seq | RECEIVE_KIND)).build().user_data(IGNORED_DATA),
        )
    }

    /// Arms listening socket `fd`'s multishot accept, if connections are
    /// wanted, none is armed and its queue has room.
    fn arm_accept(&mut self, fd: RawFd) -> io::Result<()> {
        // Out of fds, the port accepts by readiness until one is free.
        let wanted =
            self.fds.get(fd as usize).is_some_and(|s| s.accepts && s.interest.read && !s.accept_waits);
        let Some(listener) = self.listeners.iter_mut().find(|l| l.fd == fd) else { return Ok(()) };
        if !wanted || listener.armed.is_some() || listener.queue.len() >= ACCEPT_QUEUE_LIMIT {
            return Ok(());
        }
        let state = &mut self.fds[fd as usize];
        let seq = state.next_accept & SEQ_MASK;
        state.next_accept = state.next_accept.wrapping_add(1);
        listener.armed = Some(seq);
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(fd, seq | ACCEPT_KIND));
        self.push(&entry)
    }

    /// Cancels `fd`'s multishot accept; connections it took before the
    /// cancel still arrive and are kept.
    fn disarm_accept(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(listener) = self.listeners.iter_mut().find(|l| l.fd == fd) else { return Ok(()) };
        let Some(seq) = listener.armed.take() else { return Ok(()) };
        self.push(&opcode::AsyncCancel::new(user_data(fd, seq | ACCEPT_KIND)).build().user_data(IGNORED_DATA))
    }

    /// Queues the entries for one change.
    fn change(&mut self, change: &Change) -> io::Result<()> {
        let Change { fd, token, new, .. } = *change;
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if fd == self.ring.as_raw_fd() && !new.is_empty() {
            // Its readiness is its own completions: a loop (epoll refuses itself
            // the same way).
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let state = self.state(fd);
        let old_poll = state.poll_interest();
        let retoken = state.token != token;
        state.token = token;
        state.interest = new;
        if state.poll_interest() != old_poll || retoken {
            self.disarm_poll(fd)?;
            self.arm_poll(fd)?;
        }
        if new.read {
            self.arm_receive(fd)?;
            self.arm_accept(fd)?;
            let state = self.state(fd);
            if state.announce() && !state.listed {
                state.listed = true;
                self.unread.push(fd);
            }
        } else {
            self.disarm_receive(fd)?;
            self.disarm_accept(fd)?;
            if !self.starved.is_empty() {
                // Receives wait for buffers this reader may hold.
                self.release_stopped_readers();
            }
        }
        Ok(())
    }

    fn queue_changes(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
        for change in changes {
            if let Err(e) = self.change(change) {
                if change.token != Token::IGNORED {
                    refused.push((change.token, e));
                }
            }
        }
    }

    /// Re-arms the polls whose readiness was delivered, and the receives that
    /// ended early.
    fn rearm_delivered(&mut self) -> io::Result<()> {
        let fired = std::mem::take(&mut self.rearm);
        for &fd in &fired {
            self.arm_poll(fd)?;
        }
        self.rearm = fired;
        self.rearm.clear();
        let ended = std::mem::take(&mut self.receive_rearm);
        for &fd in &ended {
            self.arm_receive(fd)?;
        }
        self.receive_rearm = ended;
        self.receive_rearm.clear();
        let ended = std::mem::take(&mut self.accept_rearm);
        for &fd in &ended {
            self.arm_accept(fd)?;
        }
        self.accept_rearm = ended;
        self.accept_rearm.clear();
        Ok(())
    }

    /// Takes every completion: poll readiness into `events`, received data into
    /// the fds' queues, refused polls into `refused`.
    fn reap(&mut self, events: &mut Vec<Event>, refused: &mut Vec<Refused>) {
        let mut rearm_waker = false;
        // The completion queue borrows the ring; collect first, then update the fds.
        let mut reaped = std::mem::take(&mut self.completions);
        reaped.extend(self.ring.completion().map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
        for &(data, result, flags) in &reaped {
            match data {
                WAKER_DATA => {
                    self.waker.reset();
                    rearm_waker |= !cqueue::more(flags);
                }
                IGNORED_DATA => {}
                _ if data as u32 & KIND_MASK == ACCEPT_KIND => self.accepted(data, result, flags),
                _ if data as u32 & KIND_MASK == RECEIVE_KIND => self.received(data, result, flags),
                _ if data as u32 & KIND_MASK == SEND_KIND => self.sent(data, result),
                _ => self.polled(data, result, events, refused),
            }
        }
        reaped.clear();
        self.completions = reaped;
        if rearm_waker {
            if let Err(e) = self.arm_waker() {
                tracing::error!(error = %e, "io_uring: cannot re-arm the waker's poll");
            }
        }
    }

    /// One poll's completion.
    fn polled(&mut self, data: u64, result: i32, events: &mut Vec<Event>, refused: &mut Vec<Refused>) {
        let fd = (data >> 32) as RawFd;
        let state = self.state(fd);
        if state.poll_armed != Some(data as u32) {
            return; // a poll replaced or removed since
        }
        state.poll_armed = None;
        if state.sends && std::mem::take(&mut state.await_room) {
            // The socket has room (or failed): its writer hears it as any
            // completion connection's writer does.
            self.list_writable(fd);
            return;
        }
        let token = state.token;
        if result < 0 {
            // The fd was closed, or cannot be polled: drop it, as epoll refuses
            // such an fd when it is added.
            state.interest = Interest::NONE;
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

    /// One multishot receive's completion: data, the end of file, an error,
    /// or the end of the receive.
    fn received(&mut self, data: u64, result: i32, flags: u32) {
        let fd = (data >> 32) as RawFd;
        let seq = data as u32 & SEQ_MASK;
        let bid = cqueue::buffer_select(flags);
        let Some(buffers) = self.buffers.as_mut() else { return };
        let index = fd as usize;
        let Some(state) = self.fds.get_mut(index) else {
            if let Some(bid) = bid {
                buffers.give_back(bid);
            }
            return;
        };
        let current = state.receive_is_current(seq);
        let mut dry = false;
        if !cqueue::more(flags) && state.receive_armed == Some(seq) {
            state.receive_armed = None;
            // Out of buffers: armed again once one is given back. Ended by the
            // kernel with data (for room): armed with the next enter. The end
            // of file and errors end it.
            if result == -libc::ENOBUFS {
                tracing::trace!(fd, "io_uring: no free receive buffer; armed again once one is back");
                self.starved.push(fd);
                dry = true;
            } else if result > 0 {
                self.receive_rearm.push(fd);
            } else if result != -libc::ECANCELED {
                state.receive_ended = true;
            }
        }
        if dry {
            self.release_stopped_readers();
            return;
        }
        let Some(buffers) = self.buffers.as_mut() else { return };
        let Some(state) = self.fds.get_mut(index) else { return };
        if !current {
            if let Some(bid) = bid {
                buffers.give_back(bid);
            }
            return;
        }
        match result {
            n if n > 0 => match bid {
                Some(bid) => state.queue.push_data(bid, n as u32),
                None => state.queue.push_error(libc::EIO),
            },
            0 => state.queue.push_eof(),
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => return,
            e => state.queue.push_error(-e),
        }
        let full = state.queue.len() >= QUEUE_LIMIT && state.receive_armed.is_some();
        if !state.listed {
            state.listed = true;
            self.unread.push(fd);
        }
        if full {
            if let Err(e) = self.disarm_receive(fd) {
                tracing::error!(error = %e, "io_uring: cannot pause a full receive");
            }
        }
    }

    /// One multishot accept's completion: a connection, an error, or the end
    /// of the accept.
    fn accepted(&mut self, data: u64, result: i32, flags: u32) {
        let fd = (data >> 32) as RawFd;
        let seq = data as u32 & SEQ_MASK;
        // SAFETY: a non-negative result is a connection's fd the kernel just
        // opened for this process; nothing else owns it.
        let connection = (result >= 0).then(|| unsafe { OwnedFd::from_raw_fd(result) });
        let Some(listener) = self.listeners.iter_mut().find(|l| l.fd == fd && l.is_current(seq)) else {
            drop(connection); // its port stopped meanwhile: closed
            return;
        };
        let mut wait_for_connection = false;
        if !cqueue::more(flags) && listener.armed == Some(seq) {
            listener.armed = None;
            if result == -libc::EMFILE || result == -libc::ENFILE {
                wait_for_connection = true;
            } else if result != -libc::ECANCELED {
                self.accept_rearm.push(fd);
            }
        }
        match connection {
            Some(connection) => listener.queue.push_back(Ok(connection)),
            // Out of fds: the port hears it from its own accept(2) (below).
            None if result == -libc::ECANCELED || wait_for_connection => {}
            None => listener.queue.push_back(Err(-result)),
        }
        if listener.queue.len() >= ACCEPT_QUEUE_LIMIT && listener.armed.is_some() {
            if let Err(e) = self.disarm_accept(fd) {
                tracing::error!(error = %e, "io_uring: cannot pause a full accept queue");
            }
        }
        if wait_for_connection {
            self.state(fd).accept_waits = true;
            if let Err(e) = self.arm_poll(fd) {
                tracing::error!(error = %e, "io_uring: cannot poll a listening socket");
            }
        }
    }

    /// The ring ran dry: connections that stopped reading (paused, parked)
    /// copy what they hold out of it, so the others are not starved by them.
    /// Only then: copying costs memory the kernel's socket buffers would
    /// otherwise hold, and usually the ring has room.
    fn release_stopped_readers(&mut self) {
        let Some(buffers) = self.buffers.as_mut() else { return };
        let mut released = false;
        for state in self.fds.iter_mut().filter(|s| s.receives && !s.interest.read && !s.queue.is_empty()) {
            released |= state.queue.detach(buffers);
        }
        if released {
            self.receive_rearm.append(&mut self.starved);
        }
    }

    /// One send's completion: its result and buffer wait for the transport;
    /// an orphan's buffer is freed now that the kernel is done with it.
    fn sent(&mut self, data: u64, result: i32) {
        let fd = (data >> 32) as RawFd;
        let seq = data as u32 & SEQ_MASK;
        match self.fds.get_mut(fd as usize) {
            Some(state) if state.send_in_flight == Some(seq) => {
                state.send_in_flight = None;
                state.send_result = Some(result);
                if state.wants_writable || state.send_needs_writer() {
                    self.list_writable(fd);
                }
            }
            // A send of a connection that closed meanwhile.
            _ => {
                if let Some(i) = self.orphans.iter().position(|(d, _)| *d == data) {
                    self.orphans.swap_remove(i);
                }
            }
        }
    }

    /// Lists `fd` for `announce_unread`'s writable pass.
    fn list_writable(&mut self, fd: RawFd) {
        let state = self.state(fd);
        if !state.send_listed {
            state.send_listed = true;
            self.writable.push(fd);
        }
    }

    /// Whether some fd's received data waits to be announced, or a writer
    /// can send.
    fn unread_pending(&self) -> bool {
        let fds = &self.fds;
        self.unread.iter().any(|&fd| fds.get(fd as usize).is_some_and(FdState::announce))
            || self.writable.iter().any(|&fd| fds.get(fd as usize).is_some_and(FdState::can_send))
            || self.listeners.iter().any(|l| self.accepted_wanted(l))
    }

    fn listener_queue_is_empty(&self, fd: RawFd) -> bool {
        self.listeners.iter().find(|l| l.fd == fd).is_none_or(|l| l.queue.is_empty())
    }

    /// Whether `listener` holds connections and its port wants them.
    fn accepted_wanted(&self, listener: &Listener) -> bool {
        !listener.queue.is_empty() && self.fds.get(listener.fd as usize).is_some_and(|s| s.interest.read)
    }

    /// Announces every fd whose queue holds something, while reading is
    /// wanted (level-triggered, like readiness); forgets the others.
    fn announce_unread(&mut self, events: &mut Events) {
        for listener in &self.listeners {
            if self.accepted_wanted(listener) {
                let token = self.fds[listener.fd as usize].token;
                events.push(Event { token, readable: true, writable: false, invalid: false });
            }
        }
        let mut index = 0;
        while index < self.unread.len() {
            let fd = self.unread[index];
            let state = &mut self.fds[fd as usize];
            if state.queue.is_empty() || !state.interest.read {
                state.listed = false;
                self.unread.swap_remove(index);
                continue;
            }
            events.push(Event { token: state.token, readable: true, writable: false, invalid: false });
            index += 1;
        }
        let mut index = 0;
        while index < self.writable.len() {
            let fd = self.writable[index];
            let state = &mut self.fds[fd as usize];
            if !state.send_pending() {
                state.send_listed = false;
                self.writable.swap_remove(index);
                continue;
            }
            if state.can_send() {
                events.push(Event { token: state.token, readable: false, writable: true, invalid: false });
            }
            index += 1;
        }
    }

    /// Submits the queue, and reaps at once so refusals are known now.
    fn submit_and_reap(&mut self, refused: &mut Vec<Refused>) {
        if let Err(e) = self.rearm_delivered().and_then(|()| self.submit_now()) {
            tracing::error!(error = %e, "io_uring: submitting changes failed");
        }
        let mut events = std::mem::take(&mut self.backlog);
        self.reap(&mut events, refused);
        self.backlog = events;
        self.backlog_rearm.append(&mut self.fired);
        if !self.backlog.is_empty()
            || !self.refused_backlog.is_empty()
            || !self.receive_rearm.is_empty()
            || self.unread_pending()
        {
            // The ring's fd must stay readable while reaped events (or receives
            // to arm again) wait, or a loop watching it (embed, interleave)
            // would sleep on them: a no-op's completion keeps it so.
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
        self.rearm_delivered()?;
        // Readiness reaped earlier, refusals or unread data: do not sleep on them.
        let pending = !self.backlog.is_empty() || !refused.is_empty() || self.unread_pending();
        self.enter(if pending { Some(Duration::ZERO) } else { timeout })?;
        let mut reaped = std::mem::take(&mut self.backlog);
        self.reap(&mut reaped, refused);
        for event in reaped.drain(..) {
            events.push(event);
        }
        self.backlog = reaped;
        self.announce_unread(events);
        // Everything reaped is delivered now: re-armed at the next enter.
        self.rearm.append(&mut self.backlog_rearm);
        self.rearm.append(&mut self.fired);
        Ok(())
    }

    fn flush(&mut self) {
        if self.rearm.is_empty()
            && self.receive_rearm.is_empty()
            && self.accept_rearm.is_empty()
            && self.backlog.is_empty()
            && self.refused_backlog.is_empty()
            && self.ring.submission().is_empty()
            && !self.unread_pending()
        {
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
        // SAFETY: the ring owns this fd and outlives the call; the clone is a
        // new fd the helper owns.
        let fd = unsafe { BorrowedFd::borrow_raw(self.ring.as_raw_fd()) }.try_clone_to_owned().ok()?;
        Some(ForeignWait::Reap(Box::new(RingReadable { fd })))
    }
}

impl Completions for RingSelector {
    fn as_selector(&mut self) -> &mut dyn Selector {
        self
    }

    fn as_selector_ref(&self) -> &dyn Selector {
        self
    }

    fn stream_completions(&mut self, fd: RawFd) -> bool {
        if self.buffers.is_none() || fd < 0 {
            return false;
        }
        let state = self.state(fd);
        state.receives = true;
        state.receive_ended = false;
        state.sends = true;
        true
    }

    fn send_lent(&mut self, fd: RawFd, buffer: Vec<u8>, offset: usize) -> Result<(), (io::Error, Vec<u8>)> {
        let state = self.state(fd);
        if !state.sends {
            return Err((io::ErrorKind::Unsupported.into(), buffer));
        }
        if state.send_in_flight.is_some() || state.send_result.is_some() || offset >= buffer.len() {
            return Err((io::ErrorKind::WouldBlock.into(), buffer));
        }
        let bytes = &buffer[offset..];
        let len = bytes.len().min(SEND_MAX);
        state.send_len = len as u32;
        let entry = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(fd, (state.next_send & SEQ_MASK) | SEND_KIND));
        // The bytes live in the fd's state (or, once it closes, among the
        // orphans) until the completion: moving the Vec does not move them.
        state.send_buffer = Some(buffer);
        if let Err(e) = self.push(&entry) {
            let buffer = self.state(fd).send_buffer.take().unwrap_or_default();
            return Err((e, buffer));
        }
        let state = self.state(fd);
        state.send_in_flight = Some(state.next_send & SEQ_MASK);
        state.next_send = state.next_send.wrapping_add(1);
        // This send's completion announces the writer now, not the poll.
        if std::mem::take(&mut state.await_room) {
            if let Err(e) = self.disarm_poll(fd) {
                tracing::error!(error = %e, fd, "io_uring: cannot remove a poll for room");
            }
        }
        Ok(())
    }

    fn await_room(&mut self, fd: RawFd) {
        let state = self.state(fd);
        if !state.sends || state.await_room {
            return;
        }
        state.await_room = true;
        if let Err(e) = self.disarm_poll(fd).and_then(|()| self.arm_poll(fd)) {
            tracing::error!(error = %e, fd, "io_uring: cannot poll a full socket for room");
        }
    }

    fn notify_writable(&mut self, fd: RawFd) {
        if self.state(fd).sends {
            self.state(fd).wants_writable = true;
            self.list_writable(fd);
        }
    }

    fn send_done(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        // The transport is writing now: it asks again if it still wants to —
        // unless a send started since this event was announced (earlier in
        // the pass): the ask is for that send's end, so it stays.
        let state = self.fds.get_mut(fd as usize)?;
        if state.send_in_flight.is_none() {
            state.wants_writable = false;
        }
        self.take_send_result(fd)
    }

    fn take_send_result(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        let state = self.fds.get_mut(fd as usize)?;
        let result = state.send_result.take()?;
        let buffer = state.send_buffer.take().unwrap_or_default();
        let result =
            if result >= 0 { Ok(result as usize) } else { Err(io::Error::from_raw_os_error(-result)) };
        Some((result, buffer))
    }

    fn take_received(&mut self, fd: RawFd, out: &mut [u8]) -> Option<io::Result<usize>> {
        let buffers = self.buffers.as_mut()?;
        let state = self.fds.get_mut(fd as usize).filter(|s| s.receives)?;
        let taken = state.queue.take(out, buffers);
        // A receive stopped for a full queue resumes once half of it was read.
        if state.receive_armed.is_none() && !state.receive_ended && state.queue.len() <= QUEUE_LIMIT / 2 {
            self.receive_rearm.push(fd);
        }
        // Buffers came back: receives that found none may try again.
        self.receive_rearm.append(&mut self.starved);
        Some(taken)
    }

    fn lend_received(&mut self, fd: RawFd) -> Option<ReceivedBytes> {
        let buffers = self.buffers.as_mut()?;
        let state = self.fds.get_mut(fd as usize).filter(|s| s.receives)?;
        let (bid, from, to) = state.queue.take_only_buffer()?;
        if state.receive_armed.is_none() && !state.receive_ended {
            self.receive_rearm.push(fd); // the queue is empty now
        }
        Some(ReceivedBytes::lend(&buffers.bytes(bid, to)[from..], bid))
    }

    fn give_back_received(&mut self, bytes: ReceivedBytes) {
        if let Some(buffers) = self.buffers.as_mut() {
            buffers.give_back(bytes.id);
        }
        // Receives that found no buffer may try again.
        self.receive_rearm.append(&mut self.starved);
    }

    fn peek_received(&mut self, fd: RawFd) -> Option<io::Result<usize>> {
        self.fds.get(fd as usize).filter(|s| s.receives).map(|s| s.queue.peek())
    }

    fn accept_completions(&mut self, fd: RawFd) -> bool {
        // Multishot accepts came in 5.19; served with the receives (6.0).
        if self.buffers.is_none() || fd < 0 {
            return false;
        }
        self.forget_completions(fd);
        let valid_from = self.state(fd).next_accept & SEQ_MASK;
        self.listeners.push(Listener { fd, armed: None, valid_from, queue: VecDeque::new() });
        self.state(fd).accepts = true;
        true
    }

    fn take_accepted(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>> {
        if self.fds.get(fd as usize).is_some_and(|s| s.accept_waits) && self.listener_queue_is_empty(fd) {
            if !fd_available() {
                return None; // accept(2) it is: it sheds what it cannot serve
            }
            // Fds are back: the multishot accept serves the port again.
            let state = self.state(fd);
            state.accept_waits = false;
            if let Err(e) = self.disarm_poll(fd) {
                tracing::error!(error = %e, "io_uring: cannot remove a listening socket's poll");
            }
            self.accept_rearm.push(fd);
            return Some(Err(io::ErrorKind::WouldBlock.into()));
        }
        let listener = self.listeners.iter_mut().find(|l| l.fd == fd)?;
        let taken = listener.queue.pop_front();
        // An accept stopped for a full queue resumes once half of it was taken.
        if listener.armed.is_none() && listener.queue.len() <= ACCEPT_QUEUE_LIMIT / 2 {
            self.accept_rearm.push(fd);
        }
        Some(match taken {
            Some(Ok(connection)) => Ok(connection),
            Some(Err(errno)) => Err(io::Error::from_raw_os_error(errno)),
            None => Err(io::ErrorKind::WouldBlock.into()),
        })
    }

    fn forget_completions(&mut self, fd: RawFd) {
        if let Some(index) = self.listeners.iter().position(|l| l.fd == fd) {
            // Connections not taken close with the queue; the accept is
            // cancelled now (it holds the socket open).
            let listener = self.listeners.swap_remove(index);
            let state = self.state(fd);
            state.accepts = false;
            state.accept_waits = false;
            if let Some(seq) = listener.armed {
                let cancel = opcode::AsyncCancel::new(user_data(fd, seq | ACCEPT_KIND))
                    .build()
                    .user_data(IGNORED_DATA);
                if let Err(e) = self.push(&cancel).and_then(|()| self.submit_now()) {
                    tracing::error!(error = %e, "io_uring: cannot cancel an accept");
                }
            }
            return;
        }
        let Some(buffers) = self.buffers.as_mut() else { return };
        let Some(state) = self.fds.get_mut(fd as usize) else { return };
        state.queue.clear(buffers);
        self.receive_rearm.append(&mut self.starved);
        state.receives = false;
        state.receive_ended = false;
        // Data still in flight from its receives belongs to no one now.
        state.receive_valid_from = state.next_receive & SEQ_MASK;
        state.sends = false;
        state.await_room = false;
        state.wants_writable = false;
        if state.send_result.take().is_some() {
            state.send_buffer = None; // the kernel is done with it
        }
        if let Some(seq) = state.send_in_flight.take() {
            // Cancelled now (the send holds the socket open); its bytes live
            // until the kernel reports it.
            let data = user_data(fd, seq | SEND_KIND);
            let buffer = state.send_buffer.take().unwrap_or_default();
            self.orphans.push((data, buffer));
            let cancel = opcode::AsyncCancel::new(data).build().user_data(IGNORED_DATA);
            if let Err(e) = self.push(&cancel).and_then(|()| self.submit_now()) {
                tracing::error!(error = %e, "io_uring: cannot cancel a send");
            }
        }
    }
}

/// `interleave`'s wait: blocks until the ring has completions; the reactor's
/// thread reaps them.
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
