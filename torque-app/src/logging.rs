//! Logging through `tracing`: text or JSON, to stderr or a file; `RUST_LOG`
//! overrides the level (`info` by default). Access lines use the
//! `torque::access` target.
//!
//! SIGHUP — and SIGUSR1, which Twisted's `twistd` uses — reopen the log
//! file, as daemons do for logrotate: the command goes on running and writes
//! to a fresh file at the same path. To stop it, send SIGTERM or SIGINT.

#[cfg(unix)]
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(unix)]
use torque::FdHandler;
use torque::Reactor;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the log goes: stderr, or a file that can be reopened.
#[derive(Clone, Debug)]
pub enum LogTarget {
    /// Standard error: nothing to reopen.
    Stderr,
    /// A file, appended to; [`reopen`](LogTarget::reopen) swaps in the file
    /// now at its path.
    File {
        /// The path given.
        path: PathBuf,
        /// The open file every log line goes to.
        file: Arc<Mutex<File>>,
    },
}

impl LogTarget {
    /// Opens the file at the path again (creating it, appending), so lines go
    /// there from now on: after logrotate moved the old one away. Stderr:
    /// nothing to do.
    pub fn reopen(&self) -> io::Result<()> {
        if let LogTarget::File { path, file } = self {
            let fresh = open_log(path)?;
            *lock(file) = fresh;
        }
        Ok(())
    }
}

fn lock(file: &Mutex<File>) -> MutexGuard<'_, File> {
    // A panic while writing a line leaves nothing inconsistent in a File.
    file.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open log file {}: {e}", path.display())))
}

/// Lines go to whichever file the target holds now.
struct SharedFile(Arc<Mutex<File>>);

/// One line's writer: the file, locked while the line is written.
struct LockedFile<'a>(MutexGuard<'a, File>);

impl Write for LockedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = LockedFile<'a>;
    fn make_writer(&'a self) -> LockedFile<'a> {
        LockedFile(lock(&self.0))
    }
}

/// Installs the global subscriber. `file` of `None` or `-` means stderr; a file
/// is appended to. Returns where the log goes, for reopening.
pub fn init(file: Option<&Path>, format: LogFormat) -> io::Result<LogTarget> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let (result, target) = match file {
        Some(path) if path != Path::new("-") => {
            let file = Arc::new(Mutex::new(open_log(path)?));
            let builder = builder.with_writer(SharedFile(Arc::clone(&file))).with_ansi(false);
            let result = match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            };
            (result, LogTarget::File { path: path.to_owned(), file })
        }
        _ => {
            let builder = builder.with_writer(io::stderr).with_ansi(io::stderr().is_terminal());
            let result = match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            };
            (result, LogTarget::Stderr)
        }
    };
    result.map_err(|e| io::Error::other(e.to_string()))?;
    Ok(target)
}

/// Reopens `target` on SIGHUP and SIGUSR1, from the reactor's loop: the
/// signal handler (signal-hook's) only writes a byte to a pipe the reactor
/// reads. Without this SIGHUP would kill the command at once, leaving its pid
/// file behind.
#[cfg(unix)]
pub fn reopen_on_signals(reactor: &Reactor, target: LogTarget) -> io::Result<()> {
    let (read, write) = torque::fd::pipe()?;
    for signal in [signal_hook::consts::SIGHUP, signal_hook::consts::SIGUSR1] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    let watcher = Rc::new(RefCell::new(ReopenWatcher { pipe: read, target }));
    reactor.add_reader(&watcher).map_err(io::Error::other)
}

/// Windows has no SIGHUP or SIGUSR1: the log file is reopened only by a
/// restart there.
#[cfg(windows)]
pub fn reopen_on_signals(_reactor: &Reactor, _target: LogTarget) -> io::Result<()> {
    Ok(())
}

/// Reads the signal pipe; each wake-up reopens the log once.
#[cfg(unix)]
struct ReopenWatcher {
    pipe: OwnedFd,
    target: LogTarget,
}

#[cfg(unix)]
impl AsFd for ReopenWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

#[cfg(unix)]
impl FdHandler for ReopenWatcher {
    fn readable(&mut self, _reactor: &Reactor) {
        let mut buf = [0u8; 64];
        while matches!(torque::fd::read(&self.pipe, &mut buf), Ok(n) if n > 0) {}
        match (&self.target, self.target.reopen()) {
            (LogTarget::Stderr, _) => {
                tracing::info!("SIGHUP or SIGUSR1: logging to stderr, nothing to reopen; still running")
            }
            (LogTarget::File { path, .. }, Ok(())) => {
                tracing::info!(path = %path.display(), "SIGHUP or SIGUSR1: reopened the log file")
            }
            (LogTarget::File { path, .. }, Err(e)) => {
                tracing::error!(path = %path.display(), error = %e, "cannot reopen the log file; still writing the old one")
            }
        }
    }
}
