//! Unix children: spawned with `posix_spawnp` or `fork` + `exec`, pipes and
//! PTYs as fds, reaped through the backend's watch (a pidfd, `EVFILT_PROC`)
//! or SIGCHLD, signalled with `kill` (or `pidfd_send_signal`).

use std::cell::RefCell;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::rc::Rc;

use super::transport::{Inner, ProcessTransport};
use super::{ProcessExit, ProcessOptions, Reaping, SpawnError, WindowSize};
use crate::net::stream::PipeEnd;
use crate::reactor::ChildWatch;
use crate::sys::process as sys;
use crate::{FdHandler, LostReason, Reactor};

/// Nothing beyond the pid: a Unix child is named by it (and its pidfd,
/// which the watch holds).
pub(super) struct Child;

/// The backend's watch on the child's exit; none while SIGCHLD watches it.
pub(super) type ExitWatch = Option<ChildWatch>;

/// A pipe for a child fd: `(our end, the child's end)`, the child's blocking
/// as programs expect of their stdio.
pub(super) fn child_pipe(end: PipeEnd) -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = sys::blocking_pipe()?;
    Ok(if end == PipeEnd::Read { (read, write) } else { (write, read) })
}

/// A PTY pair, `(master, slave)`.
pub(super) fn open_pty(program: &str, size: WindowSize) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    sys::open_pty(size.rows, size.cols)
        .map_err(|source| SpawnError::Exec { program: program.to_owned(), source })
}

/// Once per process: writes to a pipe whose reader left fail with EPIPE
/// instead of killing this process.
pub(super) fn before_spawn() {
    sys::ignore_sigpipe_once();
}

/// Starts the child with `map` as its fds: `posix_spawnp` where it can do the
/// job (glibc, no uid/gid change, no PTY), else `fork` + `exec` with the setup
/// in `sys::process::spawn`. Returns the pid.
pub(super) fn start_child(
    program: &str,
    args: &[&str],
    options: &ProcessOptions,
    map: Vec<(RawFd, RawFd)>,
) -> Result<(u32, Child), SpawnError> {
    let exec_error = |source| SpawnError::Exec { program: program.to_owned(), source };
    if sys::HAS_POSIX_SPAWN && options.uid.is_none() && options.gid.is_none() && options.pty.is_none() {
        let bad = |what: &str| SpawnError::BadOptions {
            program: program.to_owned(),
            reason: format!("{what} contains a NUL byte"),
        };
        let c = |text: &[u8], what: &str| CString::new(text).map_err(|_| bad(what));
        let argv0 = c(program.as_bytes(), "the program name")?;
        let mut argv = vec![argv0];
        for arg in args {
            argv.push(c(arg.as_bytes(), "an argument")?);
        }
        // Unchanged environment: the child gets this process's, and glibc finds
        // the program in PATH (the same PATH the child has). Changed: a copy,
        // with the program found in the child's PATH, as std does.
        let (program_c, env) = if !options.clear_env && options.env.is_empty() {
            (c(program.as_bytes(), "the program name")?, None)
        } else {
            let mut vars: Vec<(OsString, OsString)> =
                if options.clear_env { Vec::new() } else { std::env::vars_os().collect() };
            for (key, value) in &options.env {
                vars.retain(|(k, _)| k != key);
                if let Some(value) = value {
                    vars.push((key.clone(), value.clone()));
                }
            }
            let path = vars.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
            let program_c = sys::find_program(program, path).map_err(exec_error)?;
            let mut env = Vec::with_capacity(vars.len());
            for (key, value) in vars {
                let mut entry = key.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                env.push(c(&entry, "an environment variable")?);
            }
            (program_c, Some(env))
        };
        let cwd = match &options.cwd {
            Some(dir) => Some(c(dir.as_os_str().as_bytes(), "the working directory")?),
            None => None,
        };
        let request = sys::SpawnRequest {
            program: &program_c,
            args: &argv,
            env: env.as_deref(),
            cwd: cwd.as_deref(),
            map: &map,
            process_group: options.process_group,
        };
        return sys::posix_spawn(&request).map(|pid| (pid, Child)).map_err(exec_error);
    }
    let mut command = options.command(program, args);
    if let Some(uid) = options.uid {
        std::os::unix::process::CommandExt::uid(&mut command, uid);
    }
    if let Some(gid) = options.gid {
        std::os::unix::process::CommandExt::gid(&mut command, gid);
    }
    if options.process_group && options.pty.is_none() {
        // (A PTY child leads a session, and so a group, already.)
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
    }
    let setup = sys::ChildSetup { map, controlling_tty: options.pty.is_some() };
    let child = sys::spawn(&mut command, setup).map_err(exec_error)?;
    // The std handle holds no pipes (stdio is set up by us); only the pid is kept.
    Ok((child.id(), Child))
}

/// Watches the child's exit: the backend's own mechanism where it has one
/// that works here (select cannot hold a high pidfd; old kernels have none)
/// and `reaping` allows it, else SIGCHLD.
pub(super) fn watch_exit(
    process: &ProcessTransport,
    reactor: &Reactor,
    reaping: Reaping,
) -> Result<(), crate::ReactorError> {
    let watch = match reaping {
        Reaping::Auto => {
            let reaper = Rc::new(RefCell::new(Reaper { process: process.clone() }));
            reactor.watch_child_exit(process.inner.pid, reaper).ok()
        }
        Reaping::Sigchld => None,
    };
    match watch {
        Some(watch) => {
            process.inner.state.borrow_mut().watch = Some(watch);
            Ok(())
        }
        None => watch_sigchld(process, reactor),
    }
}

/// Reaps the child after each SIGCHLD (no pidfd).
fn watch_sigchld(process: &ProcessTransport, reactor: &Reactor) -> Result<(), crate::ReactorError> {
    let watched = process.clone();
    reactor.watch_child_signals(Box::new(move |r: &Reactor| {
        watched.try_reap(r);
        watched.inner.state.borrow().running
    }))
}

/// Hears the child's exit from the backend's watch.
struct Reaper {
    process: ProcessTransport,
}

impl FdHandler for Reaper {
    fn readable(&mut self, reactor: &Reactor) {
        self.process.try_reap(reactor);
    }
    fn connection_lost(&mut self, reactor: &Reactor, _reason: LostReason) {
        // The reactor shut down (or the watch failed): keep reaping on
        // SIGCHLD, so a later `run()` still reports the child.
        let watch = self.process.inner.state.borrow_mut().watch.take();
        drop(watch);
        self.process.try_reap(reactor);
        if self.process.inner.state.borrow().running {
            let _ = watch_sigchld(&self.process, reactor);
        }
    }
}

/// Stops the backend's watch once the child is reaped.
pub(super) fn stop_watch(reactor: &Reactor, watch: ExitWatch) {
    if let Some(watch) = watch {
        reactor.unwatch_child_exit(watch);
    }
}

/// `waitpid(pid, WNOHANG)` for this child only: how it ended, or `None`
/// while it runs.
pub(super) fn take_exit(inner: &Inner) -> Option<ProcessExit> {
    match sys::try_wait(inner.pid) {
        Ok(None) => None,
        Ok(Some(status)) => Some(exit_from_status(status)),
        // ECHILD: another waitpid in the program took it.
        Err(_) => Some(ProcessExit::Unknown),
    }
}

fn exit_from_status(status: std::process::ExitStatus) -> ProcessExit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => ProcessExit::Done,
        (Some(code), _) => ProcessExit::Exited(code),
        (None, Some(signal)) => ProcessExit::Signaled { signal, core_dumped: status.core_dumped() },
        (None, None) => ProcessExit::Unknown,
    }
}

/// Kills and reaps a child whose setup failed half way.
pub(super) fn kill(inner: &Inner) {
    sys::kill_and_reap(inner.pid);
}

/// Sends `signal` to the child (through its pidfd where the watch has one:
/// no pid-reuse race).
pub(super) fn signal(inner: &Inner, watch: &ExitWatch, signal: i32) -> io::Result<()> {
    let pidfd = watch.as_ref().and_then(ChildWatch::pidfd);
    sys::send_signal(pidfd, inner.pid, signal)
}

/// Sends `signal` to process group `pgid`.
pub(super) fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    sys::send_group_signal(pgid, signal)
}

/// Sets a PTY's window size.
pub(super) fn set_window_size(master: RawFd, size: WindowSize) -> io::Result<()> {
    sys::set_window_size(master, size.rows, size.cols)
}
