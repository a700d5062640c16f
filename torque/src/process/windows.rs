//! Windows children (Twisted's `_dumbwin32proc`, without its polling
//! threads): `CreateProcess` through `std::process::Command`, each stdio
//! stream a loopback socket pair whose child end is a plain synchronous
//! socket (the reactor serves sockets only on Windows, through the same
//! stream transports as on Unix), and the exit heard through the process
//! handle with [`Reactor::add_event`]. Windows has no signals: INT, TERM
//! and KILL end the child with `TerminateProcess` (exit code 1), as
//! Twisted does; PTYs, uid/gid and child fds past stderr are refused with
//! a clear error.

use std::io;
use std::os::windows::io::{AsHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::process::Stdio;

use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;

use super::transport::{Inner, ProcessTransport};
use super::{ProcessExit, ProcessOptions, Reaping, SpawnError, WindowSize};
use crate::net::stream::PipeEnd;
use crate::sys::fd::{OwnedFd, RawFd};
use crate::sys::process as sys;
use crate::{EventId, Reactor};

/// The child's process handle (signalled once it exits).
pub(super) struct Child(OwnedHandle);

/// The reactor's wait on the process handle, until the child is reaped.
pub(super) type ExitWatch = Option<EventId>;

/// A socket pair for a child stdio stream: `(our end, the child's end)`.
pub(super) fn child_pipe(_end: PipeEnd) -> io::Result<(OwnedFd, OwnedFd)> {
    sys::stdio_pair()
}

/// No PTYs here: ConPTY is not built.
pub(super) fn open_pty(program: &str, _size: WindowSize) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    Err(SpawnError::BadOptions {
        program: program.to_owned(),
        reason: "PTYs are not available on Windows (ConPTY is not built); use pipes".to_owned(),
    })
}

/// Nothing to set up once (Windows has no SIGPIPE).
pub(super) fn before_spawn() {}

/// Starts the child with `map`'s sockets as its stdin, stdout and stderr
/// (an unmapped one reads or writes nothing); returns its pid and handle.
pub(super) fn start_child(
    program: &str,
    args: &[&str],
    options: &ProcessOptions,
    map: Vec<(i32, RawFd)>,
) -> Result<(u32, Child), SpawnError> {
    let bad = |reason: String| SpawnError::BadOptions { program: program.to_owned(), reason };
    if options.uid.is_some() || options.gid.is_some() {
        return Err(bad("Windows has no uid or gid to run a child as".to_owned()));
    }
    if let Some((fd, _)) = map.iter().find(|(fd, _)| *fd > 2) {
        return Err(bad(format!(
            "a Windows child has stdin, stdout and stderr only (fds 0-2); child fd {fd} cannot be given"
        )));
    }
    let exec_error = |source| SpawnError::Exec { program: program.to_owned(), source };
    let mut command = options.command(program, args);
    if options.process_group {
        command.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    let stdio = |fd: i32| -> io::Result<Stdio> {
        match map.iter().find(|(n, _)| *n == fd) {
            Some(&(_, source)) => Ok(Stdio::from(sys::stdio_handle(source)?)),
            None => Ok(Stdio::null()),
        }
    };
    command.stdin(stdio(0).map_err(exec_error)?);
    command.stdout(stdio(1).map_err(exec_error)?);
    command.stderr(stdio(2).map_err(exec_error)?);
    let child = spawn_retrying(&mut command).map_err(exec_error)?;
    let pid = child.id();
    Ok((pid, Child(OwnedHandle::from(child))))
}

/// `CreateProcess`, tried again (up to three times in all) when it fails
/// with `ERROR_INTERNAL_ERROR`: seen from Wine 8 now and then while other
/// threads create and close sockets (the conformance suite under load), and
/// never a statement about the program, which a retry then starts.
fn spawn_retrying(command: &mut std::process::Command) -> io::Result<std::process::Child> {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 1;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && tries < 3 => {
                tracing::debug!(error = %e, "CreateProcess failed with an internal error; trying again");
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Watches the process handle: once it is signalled the child has exited.
pub(super) fn watch_exit(
    process: &ProcessTransport,
    reactor: &Reactor,
    _reaping: Reaping,
) -> Result<(), crate::ReactorError> {
    let watched = process.clone();
    let id = reactor.add_event(&process.inner.child.0.as_handle(), move |r, _| watched.try_reap(r))?;
    process.inner.state.borrow_mut().watch = Some(id);
    Ok(())
}

/// Stops waiting on the process handle once the child is reaped.
pub(super) fn stop_watch(reactor: &Reactor, watch: ExitWatch) {
    if let Some(id) = watch {
        reactor.remove_event(id);
    }
}

/// How the child ended, or `None` while it runs.
pub(super) fn take_exit(inner: &Inner) -> Option<ProcessExit> {
    match sys::exit_code(&inner.child.0) {
        Ok(None) => None,
        Ok(Some(0)) => Some(ProcessExit::Done),
        Ok(Some(code)) => Some(ProcessExit::Exited(code as i32)),
        Err(_) => Some(ProcessExit::Unknown),
    }
}

/// Ends a child whose setup failed half way.
pub(super) fn kill(inner: &Inner) {
    let _ = sys::terminate(&inner.child.0, 1);
    sys::wait(&inner.child.0, 5000);
}

/// INT, TERM and KILL end the child (`TerminateProcess`, exit code 1, as
/// Twisted's Windows processes do); Windows has no other signals.
pub(super) fn signal(inner: &Inner, _watch: &ExitWatch, signal: i32) -> io::Result<()> {
    match signal {
        // Exited but not yet reaped (its handle's report not yet run): done
        // already, as a Unix zombie takes a signal without complaint.
        2 | 9 | 15 if matches!(sys::exit_code(&inner.child.0), Ok(Some(_))) => Ok(()),
        2 | 9 | 15 => sys::terminate(&inner.child.0, 1),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("Windows has no signal {signal}: INT, TERM and KILL end the child (TerminateProcess)"),
        )),
    }
}

/// Windows process groups take console control events, not signals.
pub(super) fn signal_group(_pgid: u32, _signal: i32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows process groups take console control events, not signals (not built)",
    ))
}

/// No PTYs here.
pub(super) fn set_window_size(_master: RawFd, _size: WindowSize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "PTYs are not available on Windows"))
}
