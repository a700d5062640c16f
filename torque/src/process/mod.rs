//! Child processes (Twisted's `IReactorProcess.spawnProcess` and
//! `ProcessProtocol`): output, input and exit status flow through the reactor
//! without blocking and without zombies.
//!
//! [`Reactor::spawn_process`](crate::Reactor::spawn_process) starts a program with a map of child fds — each a
//! pipe the parent reads, a pipe the parent writes, or a parent fd passed
//! through; every other fd is closed in the child — or with a PTY. Its
//! [`ProcessProtocol`] hears the child's output per fd, each fd closing,
//! [`process_exited`](ProcessProtocol::process_exited) once the child is reaped
//! and [`process_ended`](ProcessProtocol::process_ended) once it is reaped *and*
//! every pipe is closed, each exactly once.
//!
//! Reaping never uses `waitpid(-1)`: on Linux each child has a pidfd the reactor
//! watches (no signal handler, so it works with the reactor on any thread and
//! beside any other library's children); without pidfds a SIGCHLD handler,
//! chained to whatever handler was there before, wakes the reactor, which checks
//! only its own children with `waitpid(pid, WNOHANG)`.
//!
//! ```no_run
//! use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport};
//!
//! struct Print;
//! impl ProcessProtocol for Print {
//!     fn child_data_received(&mut self, _p: &ProcessTransport, fd: i32, data: &[u8]) {
//!         print!("[fd {fd}] {}", String::from_utf8_lossy(data));
//!     }
//!     fn process_ended(&mut self, exit: ProcessExit) {
//!         println!("ended: {exit}");
//!     }
//! }
//!
//! let reactor = torque::Reactor::new()?;
//! let child = reactor.spawn_process(Print, "echo", &["hello"], ProcessOptions::default())?;
//! println!("pid {}", child.pid());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;
mod transport;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::sys::fd::{AsFd, OwnedFd};

pub use transport::ProcessTransport;

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessExit {
    /// Exited with status 0 (Twisted's `ProcessDone`).
    Done,
    /// Exited with a non-zero status (Twisted's `ProcessTerminated(exitCode)`).
    Exited(i32),
    /// Killed by a signal (Twisted's `ProcessTerminated(signal=…)`).
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// Someone else reaped the child (another `waitpid` in the program), so its
    /// status is unknown.
    Unknown,
}

impl ProcessExit {
    /// Whether the child exited with status 0.
    pub fn success(&self) -> bool {
        matches!(self, ProcessExit::Done)
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            ProcessExit::Done => Some(0),
            ProcessExit::Exited(code) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessExit::Done => f.write_str("exited with status 0"),
            ProcessExit::Exited(code) => write!(f, "exited with status {code}"),
            ProcessExit::Signaled { signal, core_dumped } => {
                let name = signal_name(*signal).unwrap_or("?");
                write!(
                    f,
                    "killed by signal {signal} (SIG{name}){}",
                    if *core_dumped { ", core dumped" } else { "" }
                )
            }
            ProcessExit::Unknown => f.write_str("reaped elsewhere; status unknown"),
        }
    }
}

/// What one child fd is connected to.
#[derive(Clone, Debug)]
pub enum ChildFd {
    /// A pipe the child writes and the parent reads (`child_data_received`).
    Read,
    /// A pipe the parent writes and the child reads (stdin is one).
    Write,
    /// A parent descriptor, passed through as it is (made by
    /// [`ChildFd::inherit`], which keeps a duplicate, so the options own what
    /// they pass).
    Inherit(Arc<OwnedFd>),
}

impl ChildFd {
    /// Passes `fd` to the child: a duplicate is kept in the options (it shares
    /// the open file, its offset and flags) until they are dropped.
    pub fn inherit(fd: impl AsFd) -> io::Result<ChildFd> {
        Ok(ChildFd::Inherit(Arc::new(fd.as_fd().try_clone_to_owned()?)))
    }
}

impl PartialEq for ChildFd {
    fn eq(&self, other: &ChildFd) -> bool {
        match (self, other) {
            (ChildFd::Read, ChildFd::Read) | (ChildFd::Write, ChildFd::Write) => true,
            (ChildFd::Inherit(a), ChildFd::Inherit(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for ChildFd {}

/// A PTY's window size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for WindowSize {
    fn default() -> Self {
        WindowSize { rows: 24, cols: 80 }
    }
}

/// How a child's exit is noticed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reaping {
    /// The backend's own mechanism ([`ChildExit`](crate::ChildExit): a pidfd
    /// on Linux 5.3+, kqueue's `EVFILT_PROC`), else SIGCHLD.
    #[default]
    Auto,
    /// A SIGCHLD handler (installed while such children run, chained to the
    /// previous handler) wakes the reactor, which then checks its own children
    /// with `waitpid(pid, WNOHANG)` — never `waitpid(-1)`.
    Sigchld,
}

/// How to start a child process. The default inherits the environment and
/// working directory (as `std::process::Command` does) and connects fd 0 to a
/// pipe the parent writes and fds 1 and 2 to pipes the parent reads.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    /// Start from an empty environment instead of this process's.
    pub clear_env: bool,
    /// Variables to set (`Some`) or remove (`None`), applied in order after the
    /// inherited or cleared environment.
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The working directory (default: this process's).
    pub cwd: Option<PathBuf>,
    /// Run as this user id (needs privilege).
    pub uid: Option<u32>,
    /// Run as this group id (needs privilege).
    pub gid: Option<u32>,
    /// The child's fds; every fd not listed is closed in the child.
    pub child_fds: BTreeMap<i32, ChildFd>,
    /// Connect fds 0, 1 and 2 to a new PTY (the child sees a terminal) instead
    /// of the pipes in `child_fds` for those numbers.
    pub pty: Option<WindowSize>,
    /// How the child's exit is noticed.
    pub reaping: Reaping,
    /// Start the child in a new process group of its own, so
    /// [`ProcessTransport::signal_group`] reaches it and everything it starts
    /// (a shell's children, background jobs). A PTY child leads its own
    /// session, and so a group, anyway.
    pub process_group: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        let child_fds = BTreeMap::from([(0, ChildFd::Write), (1, ChildFd::Read), (2, ChildFd::Read)]);
        ProcessOptions {
            clear_env: false,
            env: Vec::new(),
            cwd: None,
            uid: None,
            gid: None,
            child_fds,
            pty: None,
            reaping: Reaping::Auto,
            process_group: false,
        }
    }
}

impl ProcessOptions {
    /// A `std` command for `program` with `args`, this environment and
    /// working directory (the parts every platform sets the same way).
    pub(crate) fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.args(args);
        if self.clear_env {
            command.env_clear();
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ProcessOptions {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Starts from an empty environment.
    pub fn clear_env(mut self) -> ProcessOptions {
        self.clear_env = true;
        self
    }

    /// Starts the child leading a process group of its own (see
    /// [`process_group`](ProcessOptions::process_group)).
    pub fn process_group(mut self) -> ProcessOptions {
        self.process_group = true;
        self
    }

    /// Runs the child in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> ProcessOptions {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets what child fd `fd` is connected to.
    pub fn child_fd(mut self, fd: i32, what: ChildFd) -> ProcessOptions {
        self.child_fds.insert(fd, what);
        self
    }

    /// Uses a PTY of this size for fds 0, 1 and 2.
    pub fn pty(mut self, size: WindowSize) -> ProcessOptions {
        self.pty = Some(size);
        self
    }
}

/// A child's events (Twisted's `ProcessProtocol`). Every method has a default
/// except `child_data_received`.
pub trait ProcessProtocol {
    /// The child was started; its pipes are connected.
    fn connection_made(&mut self, process: &ProcessTransport) {
        let _ = process;
    }
    /// The child wrote `data` to its fd `fd` (1 stdout, 2 stderr, …; a PTY's
    /// output arrives as fd 1).
    fn child_data_received(&mut self, process: &ProcessTransport, fd: i32, data: &[u8]);
    /// Our end of child fd `fd` closed: the child closed it or exited (read
    /// pipes), or we closed it (`close_stdin`, `close_child_fd`), or the child
    /// stopped reading (write pipes).
    fn child_connection_lost(&mut self, process: &ProcessTransport, fd: i32) {
        let _ = (process, fd);
    }
    /// The child was reaped. Pipes may still be open (a grandchild holds them).
    fn process_exited(&mut self, exit: ProcessExit) {
        let _ = exit;
    }
    /// The child was reaped and all its pipes are closed: nothing more will
    /// happen. Runs exactly once, after `process_exited`.
    fn process_ended(&mut self, exit: ProcessExit) {
        let _ = exit;
    }
}

/// A program that could not be started.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The working directory does not exist or is not a directory.
    #[error("cannot run {program:?}: the working directory {dir:?} is not a directory")]
    BadDirectory {
        /// The program.
        program: String,
        /// The directory given.
        dir: PathBuf,
    },
    /// `exec` (or the setup before it) failed: not found, not executable, …
    #[error("cannot run {program:?}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The OS's reason.
        #[source]
        source: io::Error,
    },
    /// A child fd map that cannot work (a negative fd, a passed fd that is not
    /// open).
    #[error("cannot run {program:?}: {reason}")]
    BadOptions {
        /// The program.
        program: String,
        /// What is wrong.
        reason: String,
    },
    /// The reactor could not watch the child's pipes (select: fd too large).
    #[error(transparent)]
    Reactor(#[from] crate::ReactorError),
}

/// Errors from a process transport's calls.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The child was already reaped: its pid may belong to another process now.
    #[error("the process has already exited")]
    Exited,
    /// No such signal name.
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// This process has no PTY.
    #[error("the process has no PTY")]
    NoPty,
    /// The child was not started leading a process group of its own.
    #[error("the process does not lead a process group of its own (see ProcessOptions::process_group)")]
    NoProcessGroup,
    /// The child has no open pipe at this fd that we write to: it was never
    /// mapped, is mapped for reading, or was closed.
    #[error("child fd {0} is not an open pipe to write to")]
    NoSuchChildFd(i32),
    /// The OS refused.
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[cfg(unix)]
const SIGNALS: [(&str, i32); 16] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("ABRT", libc::SIGABRT),
    ("KILL", libc::SIGKILL),
    ("SEGV", libc::SIGSEGV),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("WINCH", libc::SIGWINCH),
];

/// Windows has no signals; these three end a child (`TerminateProcess`), as
/// in Twisted, under their usual numbers.
#[cfg(windows)]
const SIGNALS: [(&str, i32); 3] = [("INT", 2), ("KILL", 9), ("TERM", 15)];

/// A signal's number from its name (`"TERM"`, `"SIGTERM"`, `"term"`) or number.
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse::<i32>() {
        return (1..65).contains(&number).then_some(number);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).map(|(_, number)| *number)
}

/// A signal's name without `SIG` (`15` → `"TERM"`), for the common ones.
pub fn signal_name(number: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(_, n)| *n == number).map(|(name, _)| *name)
}
