//! `torque procmon` (Twisted's `procmon`): keeps commands running. Each exit
//! restarts its command after a delay that doubles while it keeps dying quickly
//! (from `min_delay` up to `max_delay`) and resets once it ran for `threshold`;
//! output is logged line by line under the command's name (control
//! characters escaped); stopping sends SIGTERM, then SIGKILL after
//! `kill_time`, and finishes when every child has ended. Each command runs in
//! a process group of its own and signals go to the whole group, so what a
//! shell command starts (`cd dir && ./server`, pipes, background jobs) stops
//! with it and never outlives it into a restart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use torque::defer::{Deferred, Resolver};
use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport};
use torque::{DelayedCall, Reactor};

use crate::service::{Service, ServiceError};

/// Timing for restarts and stops.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// First restart delay.
    pub min_delay: Duration,
    /// Longest restart delay.
    pub max_delay: Duration,
    /// A run this long resets the delay to `min_delay`.
    pub threshold: Duration,
    /// Between SIGTERM and SIGKILL when stopping.
    pub kill_time: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            threshold: Duration::from_secs(1),
            kill_time: Duration::from_secs(5),
        }
    }
}

/// A command to keep running.
#[derive(Clone, Debug)]
pub struct Monitored {
    /// The name in logs.
    pub name: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
}

/// One command's state.
struct Slot {
    monitored: Monitored,
    running: Option<ProcessTransport>,
    started_at: Option<Duration>,
    delay: Duration,
    restart: Option<DelayedCall>,
    kill: Option<DelayedCall>,
}

struct Shared {
    reactor: Reactor,
    timing: Timing,
    slots: HashMap<String, Slot>,
    stopping: bool,
    /// Fired once every child has exited after a stop (one per stop call).
    stopped: Vec<Resolver<()>>,
}

/// The process monitor service.
pub struct ProcessMonitor {
    commands: Vec<Monitored>,
    timing: Timing,
    shared: Option<Rc<RefCell<Shared>>>,
}

impl std::fmt::Debug for ProcessMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMonitor").field("commands", &self.commands).finish()
    }
}

impl ProcessMonitor {
    /// Monitors `commands` (names must be distinct).
    pub fn new(commands: Vec<Monitored>, timing: Timing) -> ProcessMonitor {
        ProcessMonitor { commands, timing, shared: None }
    }
}

/// Logs a child's output line by line and tells the monitor when it ends.
struct Child {
    name: String,
    partial: [Vec<u8>; 2],
    shared: Rc<RefCell<Shared>>,
}

/// Longest line kept whole; longer ones are logged in pieces.
const MAX_LINE: usize = 16 * 1024;

impl Child {
    fn log_lines(&mut self, fd: i32, data: &[u8]) {
        let index = usize::from(fd != 1);
        let stream = if fd == 1 { "stdout" } else { "stderr" };
        let buffer = &mut self.partial[index];
        buffer.extend_from_slice(data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            log_line(&self.name, stream, &line[..line.len() - 1]);
        }
        if buffer.len() > MAX_LINE {
            let piece = std::mem::take(buffer);
            log_line(&self.name, stream, &piece);
        }
    }

    fn flush(&mut self) {
        for (index, stream) in [(0, "stdout"), (1, "stderr")] {
            let rest = std::mem::take(&mut self.partial[index]);
            if !rest.is_empty() {
                log_line(&self.name, stream, &rest);
            }
        }
    }
}

fn log_line(name: &str, stream: &str, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let text = escape_controls(&text);
    tracing::info!(target: "torque::procmon", process = name, stream, "{text}");
}

/// A child's output line with control characters — carriage returns, NUL,
/// escape sequences — written as escapes (`\r`, `\0`, `\u{1b}`), so a
/// child cannot rewrite or hide log lines. Tabs stay.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push('\t'),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.into()
}

impl ProcessProtocol for Child {
    fn child_data_received(&mut self, _p: &ProcessTransport, fd: i32, data: &[u8]) {
        self.log_lines(fd, data);
    }
    // Restarts and stops follow the child's exit, not the end of its pipes: a
    // grandchild may keep those open long after.
    fn process_exited(&mut self, exit: ProcessExit) {
        child_exited(&self.shared, &self.name, exit);
    }
    fn process_ended(&mut self, _exit: ProcessExit) {
        self.flush();
    }
}

fn start(shared: &Rc<RefCell<Shared>>, name: &str) {
    let (reactor, argv) = {
        let s = shared.borrow();
        let Some(slot) = s.slots.get(name) else { return };
        if s.stopping || slot.running.is_some() {
            return;
        }
        (s.reactor.clone(), slot.monitored.argv.clone())
    };
    let child = Child { name: name.to_owned(), partial: [Vec::new(), Vec::new()], shared: Rc::clone(shared) };
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    // A group of its own: signals reach whatever the command starts (a
    // shell's children and background jobs), not just the command.
    match reactor.spawn_process(child, &argv[0], &args, ProcessOptions::default().process_group()) {
        Ok(process) => {
            // Nothing to say: the command reads end of file.
            process.close_stdin();
            tracing::info!(target: "torque::procmon", process = name, pid = process.pid(), "started");
            let mut s = shared.borrow_mut();
            if let Some(slot) = s.slots.get_mut(name) {
                slot.running = Some(process);
                slot.started_at = Some(reactor.now());
            }
        }
        Err(e) => {
            tracing::error!(target: "torque::procmon", process = name, error = %e, "cannot start");
            schedule_restart(shared, name);
        }
    }
}

fn child_exited(shared: &Rc<RefCell<Shared>>, name: &str, exit: ProcessExit) {
    let (stopping, all_ended, leftovers) = {
        let mut s = shared.borrow_mut();
        let now = s.reactor.now();
        let timing = s.timing;
        let mut leftovers = None;
        if let Some(slot) = s.slots.get_mut(name) {
            leftovers = slot.running.take();
            if let Some(kill) = slot.kill.take() {
                let _ = kill.cancel();
            }
            // A run past the threshold resets the back-off.
            let ran = slot.started_at.take().map(|t| now.saturating_sub(t)).unwrap_or_default();
            if ran >= timing.threshold {
                slot.delay = timing.min_delay;
            }
        }
        let all_ended = s.slots.values().all(|slot| slot.running.is_none());
        (s.stopping, all_ended, leftovers)
    };
    tracing::info!(target: "torque::procmon", process = name, "{exit}");
    if let Some(group) = leftovers {
        end_leftovers(shared, name, &group, stopping);
    }
    if stopping {
        if all_ended {
            let resolvers = std::mem::take(&mut shared.borrow_mut().stopped);
            for resolver in resolvers {
                let _ = resolver.callback(());
            }
        }
    } else {
        schedule_restart(shared, name);
    }
}

/// The command has exited; what it started in its group must not outlive it
/// (a restart would run a second copy beside it). Stopping, they already had
/// their TERM with the command: KILL now. Otherwise TERM, and KILL after
/// `kill_time` for what ignores it. (No one left: ESRCH, ignored.)
fn end_leftovers(shared: &Rc<RefCell<Shared>>, name: &str, group: &ProcessTransport, stopping: bool) {
    if stopping {
        if group.signal_group(signal("KILL")).is_ok() {
            tracing::warn!(target: "torque::procmon", process = name, "killed what the command left running");
        }
        return;
    }
    if group.signal_group(signal("TERM")).is_err() {
        return; // nothing left in the group
    }
    tracing::info!(target: "torque::procmon", process = name, "stopping what the command left running (SIGTERM)");
    let (reactor, kill_time) = {
        let s = shared.borrow();
        (s.reactor.clone(), s.timing.kill_time)
    };
    let group = group.clone();
    reactor.call_later(kill_time, move |_| {
        let _ = group.signal_group(signal("KILL"));
    });
}

/// `name`'s number here (the common ones exist everywhere).
fn signal(name: &str) -> i32 {
    torque::process::signal_number(name).expect("a signal every platform names")
}

/// Sends `name` to the command's whole group, or, where groups take no
/// signals (Windows: TERM and KILL end the command itself), to the command.
fn stop(process: &ProcessTransport, name: &str) {
    if process.signal_group(signal(name)).is_err() {
        let _ = process.signal_named(name);
    }
}

fn schedule_restart(shared: &Rc<RefCell<Shared>>, name: &str) {
    let mut s = shared.borrow_mut();
    let reactor = s.reactor.clone();
    let max = s.timing.max_delay;
    let Some(slot) = s.slots.get_mut(name) else { return };
    let delay = slot.delay;
    slot.delay = (delay * 2).min(max);
    tracing::info!(target: "torque::procmon", process = name, delay = ?delay, "restarting after a delay");
    let (weak, name_owned) = (Rc::downgrade(shared), name.to_owned());
    slot.restart = Some(reactor.call_later(delay, move |_| {
        if let Some(shared) = weak.upgrade() {
            if let Some(slot) = shared.borrow_mut().slots.get_mut(&name_owned) {
                slot.restart = None;
            }
            start(&shared, &name_owned);
        }
    }));
}

impl Service for ProcessMonitor {
    fn name(&self) -> &str {
        "procmon"
    }

    fn start_service(&mut self, reactor: &Reactor) -> Result<(), ServiceError> {
        let timing = self.timing;
        let mut slots = HashMap::new();
        for monitored in &self.commands {
            if monitored.argv.is_empty() {
                return Err(ServiceError::Other {
                    service: "procmon".into(),
                    message: format!("{:?} has no command", monitored.name),
                });
            }
            let slot = Slot {
                monitored: monitored.clone(),
                running: None,
                started_at: None,
                delay: timing.min_delay,
                restart: None,
                kill: None,
            };
            if slots.insert(monitored.name.clone(), slot).is_some() {
                return Err(ServiceError::Other {
                    service: "procmon".into(),
                    message: format!("two commands are named {:?}", monitored.name),
                });
            }
        }
        let shared = Rc::new(RefCell::new(Shared {
            reactor: reactor.clone(),
            timing,
            slots,
            stopping: false,
            stopped: Vec::new(),
        }));
        for monitored in &self.commands {
            start(&shared, &monitored.name);
        }
        self.shared = Some(shared);
        Ok(())
    }

    fn stop_service(&mut self, reactor: &Reactor, _grace: Duration) -> Deferred<()> {
        let Some(shared) = self.shared.clone() else { return Deferred::succeed(()) };
        let (done, resolver) = Deferred::pending();
        if shared.borrow().stopping {
            // Already stopping: this Deferred fires with the first one.
            let running = shared.borrow().slots.values().any(|slot| slot.running.is_some());
            if running {
                shared.borrow_mut().stopped.push(resolver);
            } else {
                let _ = resolver.callback(());
            }
            return done;
        }
        let running: Vec<(String, ProcessTransport)> = {
            let mut s = shared.borrow_mut();
            s.stopping = true;
            for slot in s.slots.values_mut() {
                if let Some(restart) = slot.restart.take() {
                    let _ = restart.cancel();
                }
            }
            s.slots
                .iter()
                .filter_map(|(name, slot)| slot.running.clone().map(|p| (name.clone(), p)))
                .collect()
        };
        if running.is_empty() {
            let _ = resolver.callback(());
            return done;
        }
        shared.borrow_mut().stopped.push(resolver);
        let kill_time = shared.borrow().timing.kill_time;
        for (name, process) in running {
            tracing::info!(target: "torque::procmon", process = %name, pid = process.pid(), "stopping (SIGTERM)");
            stop(&process, "TERM");
            let target = process.clone();
            let kill = reactor.call_later(kill_time, move |_| {
                tracing::warn!(target: "torque::procmon", pid = target.pid(), "still running; SIGKILL");
                stop(&target, "KILL");
            });
            if let Some(slot) = shared.borrow_mut().slots.get_mut(&name) {
                slot.kill = Some(kill);
            }
        }
        // Keep the shared state alive until the children have ended.
        let keep = Rc::clone(&shared);
        done.map(move |()| drop(keep))
    }
}
