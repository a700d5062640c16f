//! A running child: its pipes (stream transports over pipe fds), its reaper
//! (the backend's watch on its exit — a pidfd, `EVFILT_PROC` — or a SIGCHLD
//! watcher), and the exactly-once `process_exited` / `process_ended`
//! bookkeeping.
//!
//! Borrows: `protocol` is borrowed only while a process-protocol callback runs;
//! `state` never across user code.
//!
//! Lifetime: a running child keeps itself alive — its pipes' protocols and its
//! reaper (the exit watch's handler or the SIGCHLD watcher) hold the process strongly — so dropping every `ProcessTransport`
//! (as Twisted programs drop `spawnProcess`'s result) loses nothing. The cycle
//! through the open pipes ends as each pipe closes, and the reaper's when the
//! child is reaped.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::platform;
use super::{ChildFd, ProcessError, ProcessExit, ProcessOptions, ProcessProtocol, SpawnError};
use crate::net::stream::PipeEnd;
use crate::net::{DisconnectReason, Producer, ProducerError, Protocol, Transport};
use crate::sys::fd::{AsRawFd, OwnedFd};
use crate::{Reactor, WeakReactor};

pub(super) struct State {
    /// Cleared once reaped (the pid may then belong to someone else).
    pub(super) running: bool,
    /// How the child's exit is watched (the platform's: a pidfd or
    /// `EVFILT_PROC`, else SIGCHLD; a process handle on Windows).
    pub(super) watch: platform::ExitWatch,
    /// Open pipes by child fd number, with their direction.
    pipes: Vec<(i32, Transport, PipeEnd)>,
    /// Events for a protocol that was busy further up the stack (a nested
    /// `iterate`), in order; delivered on a later timer step.
    queued: Vec<Queued>,
    delivery_scheduled: bool,
    /// Pipes paused while events were queued, resumed once delivered.
    paused_for_queue: Vec<i32>,
    exit: Option<ProcessExit>,
    exited_told: bool,
    ended_told: bool,
    pty: bool,
}

pub(super) struct Inner {
    reactor: WeakReactor,
    pub(super) pid: u32,
    /// The platform's handle on the child (Windows: its process handle).
    #[cfg_attr(unix, allow(dead_code))]
    pub(super) child: platform::Child,
    pub(super) program: String,
    pub(super) state: RefCell<State>,
    protocol: RefCell<Option<Box<dyn ProcessProtocol>>>,
    /// Started leading a process group of its own (its id is the pid).
    group_leader: bool,
}

/// The handle to a running child (Twisted's `IProcessTransport`). Clones share
/// one child.
#[derive(Clone)]
pub struct ProcessTransport {
    pub(super) inner: Rc<Inner>,
}

impl fmt::Debug for ProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("ProcessTransport")
            .field("pid", &self.inner.pid)
            .field("program", &self.inner.program)
            .field("exit", &state.exit)
            .finish()
    }
}

/// Forwards one pipe's events to the process protocol as `fd`'s.
struct ChildPipe {
    fd: i32,
    /// The fd its data is reported as: `fd`, except a PTY's (fd 0, output as 1).
    data_fd: i32,
    process: Rc<Inner>,
}

impl Protocol for ChildPipe {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let process = ProcessTransport { inner: Rc::clone(&self.process) };
        if process.can_deliver_now() {
            // The usual case: straight from the read buffer, no copy.
            process.child_data(self.data_fd, data);
        } else {
            process.deliver(Queued::Data(self.data_fd, data.to_vec()), Some((self.fd, transport)));
        }
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.lose_connection();
    }
    fn connection_lost(&mut self, _reason: DisconnectReason) {
        ProcessTransport { inner: Rc::clone(&self.process) }.pipe_closed(self.fd);
    }
}

/// A process-protocol event held while the protocol was busy.
enum Queued {
    Data(i32, Vec<u8>),
    Closed(i32),
}

impl Reactor {
    /// Starts `program` (looked up in `PATH` unless it contains a `/`) with
    /// `args`, its events going to `protocol` (Twisted's `spawnProcess`; the
    /// program name is not repeated in `args`). A program that cannot be started
    /// — not found, not executable, a bad working directory — is an error here,
    /// naming it and the cause, never a child that silently dies.
    pub fn spawn_process<P: ProcessProtocol + 'static>(
        &self,
        protocol: P,
        program: &str,
        args: &[&str],
        options: ProcessOptions,
    ) -> Result<ProcessTransport, SpawnError> {
        spawn(self, Box::new(protocol), program, args, options)
    }
}

fn spawn(
    reactor: &Reactor,
    protocol: Box<dyn ProcessProtocol>,
    program: &str,
    args: &[&str],
    options: ProcessOptions,
) -> Result<ProcessTransport, SpawnError> {
    reactor.backend().require(crate::Capability::Processes)?;
    let bad = |reason: String| SpawnError::BadOptions { program: program.to_owned(), reason };
    let exec_error = |source| SpawnError::Exec { program: program.to_owned(), source };
    if let Some(dir) = &options.cwd {
        if !dir.is_dir() {
            return Err(SpawnError::BadDirectory { program: program.to_owned(), dir: dir.clone() });
        }
    }
    // Parent ends (kept) and child ends (closed once the child has them).
    let mut parent_ends: Vec<(i32, OwnedFd, PipeEnd)> = Vec::new();
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    let mut map = Vec::new();
    for (&fd, what) in &options.child_fds {
        if fd < 0 {
            return Err(bad(format!("child fd {fd} is negative")));
        }
        if options.pty.is_some() && (0..=2).contains(&fd) {
            continue; // the PTY takes these
        }
        match what {
            ChildFd::Read | ChildFd::Write => {
                let end = if matches!(what, ChildFd::Read) { PipeEnd::Read } else { PipeEnd::Write };
                let (ours, theirs) = platform::child_pipe(end).map_err(exec_error)?;
                map.push((fd, theirs.as_raw_fd()));
                child_ends.push(theirs);
                parent_ends.push((fd, ours, end));
            }
            ChildFd::Inherit(source) => map.push((fd, source.as_raw_fd())),
        }
    }
    if let Some(size) = options.pty {
        let (master, slave) = platform::open_pty(program, size)?;
        for fd in 0..=2 {
            map.push((fd, slave.as_raw_fd()));
        }
        child_ends.push(slave);
        parent_ends.push((0, master, PipeEnd::Pty));
    }
    for (_, fd, _) in &parent_ends {
        crate::sys::set_nonblocking(fd.as_raw_fd()).map_err(exec_error)?;
    }
    platform::before_spawn();
    let (pid, child) = platform::start_child(program, args, &options, map)?;
    drop(child_ends);
    let inner = Rc::new(Inner {
        reactor: reactor.downgrade(),
        pid,
        child,
        program: program.to_owned(),
        state: RefCell::new(State {
            running: true,
            watch: Default::default(),
            pipes: Vec::new(),
            queued: Vec::new(),
            delivery_scheduled: false,
            paused_for_queue: Vec::new(),
            exit: None,
            exited_told: false,
            ended_told: false,
            pty: options.pty.is_some(),
        }),
        group_leader: options.process_group || options.pty.is_some(),
        protocol: RefCell::new(Some(protocol)),
    });
    let process = ProcessTransport { inner };
    // Pipes first, so output is read from the start.
    for (fd, end_fd, end) in parent_ends {
        let data_fd = if end == PipeEnd::Pty { 1 } else { fd };
        let shim = ChildPipe { fd, data_fd, process: Rc::clone(&process.inner) };
        match Transport::start_pipe(reactor, end_fd, end, Box::new(shim), None) {
            Ok(transport) => process.inner.state.borrow_mut().pipes.push((fd, transport, end)),
            Err(e) => {
                process.kill_after_failed_setup();
                return Err(e.into());
            }
        }
    }
    if let Err(e) = platform::watch_exit(&process, reactor, options.reaping) {
        process.kill_after_failed_setup();
        return Err(e.into());
    }
    process.with_protocol("connection_made", |p, t| p.connection_made(t));
    Ok(process)
}

impl ProcessTransport {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// How the child ended, once reaped.
    pub fn exit_status(&self) -> Option<ProcessExit> {
        self.inner.state.borrow().exit
    }

    /// Writes to the child's stdin (fd 0; the terminal with a PTY), buffered and
    /// flow-controlled like any transport. Dropped once stdin is closed.
    pub fn write(&self, data: &[u8]) {
        if let Some(t) = self.child_transport(0) {
            t.write(data);
        }
    }

    /// Writes several buffers to stdin in order.
    pub fn write_vectored(&self, parts: &[&[u8]]) {
        if let Some(t) = self.child_transport(0) {
            t.write_vectored(parts);
        }
    }

    /// Writes to child fd `fd` (one mapped as [`ChildFd::Write`]).
    ///
    /// # Errors
    ///
    /// [`ProcessError::NoSuchChildFd`] if `fd` is not an open pipe we write to:
    /// never mapped, mapped for reading, or closed already (Twisted raises
    /// `KeyError`). Nothing is written then.
    pub fn write_to_child(&self, fd: i32, data: &[u8]) -> Result<(), ProcessError> {
        let writable = {
            let state = self.inner.state.borrow();
            state
                .pipes
                .iter()
                .find(|(n, _, _)| *n == fd)
                .filter(|(_, t, end)| *end != PipeEnd::Read && !t.is_disconnected())
                .map(|(_, t, _)| t.clone())
        };
        match writable {
            Some(t) => {
                t.write(data);
                Ok(())
            }
            None => Err(ProcessError::NoSuchChildFd(fd)),
        }
    }

    /// Closes stdin once what was written has been sent; the child reads end of
    /// file. With a PTY, sends the terminal's end-of-file character (^D).
    pub fn close_stdin(&self) {
        if self.inner.state.borrow().pty {
            self.write(b"\x04");
        } else {
            self.close_child_fd(0);
        }
    }

    /// Closes our end of child fd `fd` (after flushing, for a write pipe).
    pub fn close_child_fd(&self, fd: i32) {
        if let Some(t) = self.child_transport(fd) {
            t.lose_connection();
        }
    }

    /// Closes stdout (fd 1).
    pub fn close_stdout(&self) {
        self.close_child_fd(1);
    }

    /// Closes stderr (fd 2).
    pub fn close_stderr(&self) {
        self.close_child_fd(2);
    }

    /// The stream transport behind child fd `fd` while it is open: for
    /// producers (`register_producer` on stdin) and flow control
    /// (`pause_producing` on an output pipe). A PTY is fd 0.
    pub fn child_transport(&self, fd: i32) -> Option<Transport> {
        let state = self.inner.state.borrow();
        state.pipes.iter().find(|(n, _, _)| *n == fd).map(|(_, t, _)| t.clone())
    }

    /// Registers a producer for stdin (see [`Transport::register_producer`]).
    /// With stdin closed the producer is told `stop_producing`, as a closed
    /// transport does.
    ///
    /// # Errors
    ///
    /// [`ProducerError::AlreadyRegistered`] if stdin has a producer already.
    pub fn register_producer(
        &self,
        producer: Rc<RefCell<dyn Producer>>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        match self.child_transport(0) {
            Some(t) => t.register_producer(producer, streaming),
            None => {
                producer.borrow_mut().stop_producing();
                Ok(())
            }
        }
    }

    /// Unregisters stdin's producer.
    pub fn unregister_producer(&self) {
        if let Some(t) = self.child_transport(0) {
            t.unregister_producer();
        }
    }

    /// Stops reading the child's output (every read pipe) until
    /// [`resume_producing`](ProcessTransport::resume_producing); the child
    /// blocks once its pipe fills.
    pub fn pause_producing(&self) {
        for t in self.output_pipes() {
            t.pause_producing();
        }
    }

    /// Resumes reading after `pause_producing`.
    pub fn resume_producing(&self) {
        for t in self.output_pipes() {
            t.resume_producing();
        }
    }

    /// The pipes the child writes to (and a PTY).
    fn output_pipes(&self) -> Vec<Transport> {
        let state = self.inner.state.borrow();
        state.pipes.iter().filter(|(_, _, end)| *end != PipeEnd::Write).map(|(_, t, _)| t.clone()).collect()
    }

    /// Sends signal `signal` (a number, or see [`signal_named`](Self::signal_named)).
    /// An error once the child has been reaped.
    pub fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        let state = self.inner.state.borrow();
        if !state.running {
            return Err(ProcessError::Exited);
        }
        platform::signal(&self.inner, &state.watch, signal).map_err(ProcessError::Io)
    }

    /// Sends `signal` to the child's whole process group — it and whatever it
    /// started that stayed in the group (a shell's pipeline, background jobs)
    /// — when it leads one of its own ([`ProcessOptions::process_group`], or
    /// a PTY). The group outlives its leader while any member lives, so this
    /// also reaches members left after the child exited; once none is left it
    /// is an `Io` error (ESRCH).
    ///
    /// # Errors
    ///
    /// [`ProcessError::NoProcessGroup`] if the child was not started leading
    /// a group; `Io` if the system refuses.
    pub fn signal_group(&self, signal: i32) -> Result<(), ProcessError> {
        if !self.inner.group_leader {
            return Err(ProcessError::NoProcessGroup);
        }
        platform::signal_group(self.inner.pid, signal).map_err(ProcessError::Io)
    }

    /// Sends a signal by name: `"TERM"`, `"SIGKILL"`, `"hup"`, or a number.
    pub fn signal_named(&self, name: &str) -> Result<(), ProcessError> {
        let number =
            super::signal_number(name).ok_or_else(|| ProcessError::UnknownSignal(name.to_owned()))?;
        self.signal(number)
    }

    /// Sets the PTY's window size (the child gets SIGWINCH).
    pub fn set_window_size(&self, size: super::WindowSize) -> Result<(), ProcessError> {
        if !self.inner.state.borrow().pty {
            return Err(ProcessError::NoPty);
        }
        let fd = self.child_transport(0).and_then(|t| t.fd()).ok_or(ProcessError::Exited)?;
        platform::set_window_size(fd, size).map_err(ProcessError::Io)
    }

    // ----- internals -----

    /// Runs `f` on the protocol (callers have checked it is free). A panic is
    /// logged, never unwound into the reactor (whichever path reaped the
    /// child); `false` then.
    fn with_protocol(&self, what: &str, f: impl FnOnce(&mut dyn ProcessProtocol, &ProcessTransport)) -> bool {
        let Ok(mut slot) = self.inner.protocol.try_borrow_mut() else { return true };
        let Some(protocol) = slot.as_mut() else { return true };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(protocol.as_mut(), self)));
        drop(slot);
        match result {
            Ok(()) => true,
            Err(payload) => {
                let message = crate::reactor::panic_message(&*payload);
                tracing::error!(pid = self.inner.pid, program = %self.inner.program, panic = %message, "the process protocol's {what} panicked");
                false
            }
        }
    }

    /// Output from child fd `fd`. A panic closes that pipe, as an exception
    /// in `childDataReceived` does in Twisted (`child_connection_lost`
    /// follows).
    fn child_data(&self, fd: i32, data: &[u8]) {
        if !self.with_protocol("child_data_received", |p, t| p.child_data_received(t, fd, data)) {
            let pipe =
                self.inner.state.borrow().pipes.iter().find(|(n, _, _)| *n == fd).map(|(_, t, _)| t.clone());
            if let Some(pipe) = pipe {
                pipe.abort_connection();
            }
        }
    }

    /// Setup failed after the fork: do not leave the child running.
    fn kill_after_failed_setup(&self) {
        if std::mem::take(&mut self.inner.state.borrow_mut().running) {
            platform::kill(&self.inner);
        }
        let pipes = std::mem::take(&mut self.inner.state.borrow_mut().pipes);
        for (_, t, _) in pipes {
            t.abort_connection();
        }
        self.inner.protocol.borrow_mut().take();
    }

    /// Gives the protocol one event now, or — while it is busy further up the
    /// stack — queues it (pausing the pipe it came from) for a later step.
    /// Events already queued go first, so the order never changes.
    fn deliver(&self, event: Queued, from: Option<(i32, &Transport)>) {
        if self.can_deliver_now() {
            match event {
                Queued::Data(fd, data) => self.child_data(fd, &data),
                Queued::Closed(fd) => {
                    self.with_protocol("child_connection_lost", |p, t| p.child_connection_lost(t, fd));
                }
            }
            return;
        }
        let schedule = {
            let mut state = self.inner.state.borrow_mut();
            if let Some((fd, transport)) = from {
                transport.pause_producing();
                if !state.paused_for_queue.contains(&fd) {
                    state.paused_for_queue.push(fd);
                }
            }
            state.queued.push(event);
            !std::mem::replace(&mut state.delivery_scheduled, true)
        };
        if schedule {
            if let Some(reactor) = self.inner.reactor.upgrade() {
                let this = self.clone();
                reactor.call_later(Duration::ZERO, move |r| this.deliver_queued(r));
            }
        }
    }

    fn deliver_queued(&self, reactor: &Reactor) {
        if self.inner.protocol.try_borrow_mut().is_err() {
            let this = self.clone();
            reactor.call_later(Duration::ZERO, move |r| this.deliver_queued(r));
            return;
        }
        loop {
            let next = {
                let mut state = self.inner.state.borrow_mut();
                if state.queued.is_empty() {
                    state.delivery_scheduled = false;
                    None
                } else {
                    Some(state.queued.remove(0))
                }
            };
            match next {
                Some(Queued::Data(fd, data)) => self.child_data(fd, &data),
                Some(Queued::Closed(fd)) => {
                    self.with_protocol("child_connection_lost", |p, t| p.child_connection_lost(t, fd));
                }
                None => break,
            }
        }
        let paused = std::mem::take(&mut self.inner.state.borrow_mut().paused_for_queue);
        for fd in paused {
            if let Some(t) = self.child_transport(fd) {
                t.resume_producing();
            }
        }
        self.maybe_ended(reactor);
    }

    /// Whether an event can go to the protocol now: it is not running further
    /// up the stack and nothing is queued ahead.
    fn can_deliver_now(&self) -> bool {
        self.inner.protocol.try_borrow_mut().is_ok() && self.inner.state.borrow().queued.is_empty()
    }

    /// Collects this child's exit if it has ended (Unix: `waitpid(pid,
    /// WNOHANG)` for it only), then tells the protocol.
    pub(super) fn try_reap(&self, reactor: &Reactor) {
        if !self.inner.state.borrow().running {
            return;
        }
        let Some(exit) = platform::take_exit(&self.inner) else { return };
        let watch = {
            let mut state = self.inner.state.borrow_mut();
            state.running = false;
            state.exit = Some(exit);
            std::mem::take(&mut state.watch)
        };
        platform::stop_watch(reactor, watch);
        self.tell_exited(reactor);
    }

    /// `process_exited`, then `process_ended` if the pipes are all closed; each
    /// once. A protocol busy further up the stack is told on a later step.
    fn tell_exited(&self, reactor: &Reactor) {
        if self.inner.protocol.try_borrow_mut().is_err() {
            let this = self.clone();
            reactor.call_later(Duration::ZERO, move |r| this.tell_exited(r));
            return;
        }
        let exit = {
            let mut state = self.inner.state.borrow_mut();
            let Some(exit) = state.exit else { return };
            if std::mem::replace(&mut state.exited_told, true) { None } else { Some(exit) }
        };
        if let Some(exit) = exit {
            self.with_protocol("process_exited", |p, _| p.process_exited(exit));
        }
        self.maybe_ended(reactor);
    }

    fn pipe_closed(&self, fd: i32) {
        self.inner.state.borrow_mut().pipes.retain(|(n, _, _)| *n != fd);
        self.deliver(Queued::Closed(fd), None);
        if let Some(reactor) = self.inner.reactor.upgrade() {
            self.maybe_ended(&reactor);
        }
    }

    fn maybe_ended(&self, reactor: &Reactor) {
        let exit = {
            let mut state = self.inner.state.borrow_mut();
            if !state.exited_told || !state.pipes.is_empty() || !state.queued.is_empty() || state.ended_told {
                return;
            }
            if self.inner.protocol.try_borrow_mut().is_err() {
                drop(state);
                let this = self.clone();
                reactor.call_later(Duration::ZERO, move |r| this.maybe_ended(r));
                return;
            }
            state.ended_told = true;
            state.exit.unwrap_or(ProcessExit::Unknown)
        };
        // The last event: the protocol is dropped after it (breaking cycles).
        self.with_protocol("process_ended", |p, _| p.process_ended(exit));
        let protocol = self.inner.protocol.borrow_mut().take();
        drop(protocol);
    }
}
