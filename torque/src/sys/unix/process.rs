//! Starting child processes: pipes, a PTY, the child's fd map, signal
//! dispositions, and pidfds. Everything the child runs between `fork` and
//! `exec` is in the `pre_exec` closure here and is async-signal-safe (no
//! allocation, no locks).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::cvt;

/// A pipe whose ends are close-on-exec and blocking: `(read end, write end)`.
/// The caller makes its own end non-blocking; the child's end stays blocking,
/// as programs expect of their stdio.
pub(crate) fn blocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    super::cloexec_pipe()
}

/// A PTY pair, `(master, slave)`, both close-on-exec, the window set to
/// `rows` × `cols`.
pub(crate) fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    let mut size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: the out-pointers are valid; a null name buffer and termios are
    // allowed. (The BSDs declare the last two `*mut`, glibc `*const`: both
    // coerce from these raw pointers.)
    cvt(unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null_mut(), &raw mut size)
    })?;
    // SAFETY: openpty succeeded: both fds are open and ours.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: F_SETFD on an fd we own.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    Ok((master, slave))
}

/// Sets a PTY's window size (the child gets SIGWINCH).
pub(crate) fn set_window_size(master: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    cvt(unsafe { libc::ioctl(master, libc::TIOCSWINSZ as _, &size) })?;
    Ok(())
}

/// `pidfd_open(2)`: an fd that becomes readable when the process exits.
#[cfg(linux_like)]
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    cvt(fd)?;
    // SAFETY: the kernel returned a new close-on-exec fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// No pidfds here: children are watched with the backend's own mechanism
/// (kqueue's `EVFILT_PROC`) or SIGCHLD.
#[cfg(not(linux_like))]
pub(crate) fn pidfd_open(_pid: u32) -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Sends `signal` through a pidfd (no pid-reuse race) or, without one, by pid.
/// Sends `signal` to every process in group `pgid` (`killpg`).
pub(crate) fn send_group_signal(pgid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: killpg with integer arguments.
    cvt(unsafe { libc::killpg(pgid as libc::pid_t, signal) }).map(drop)
}

pub(crate) fn send_signal(pidfd: Option<RawFd>, pid: u32, signal: i32) -> io::Result<()> {
    #[cfg(linux_like)]
    if let Some(fd) = pidfd {
        // SAFETY: a plain syscall; a null siginfo means "as kill(2) would".
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd, signal, std::ptr::null::<libc::siginfo_t>(), 0)
        };
        return cvt(r).map(drop);
    }
    let _ = pidfd;
    // SAFETY: kill with integer arguments.
    cvt(unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// How the child's fds are made: each `(target, source)` puts the parent's
/// `source` at `target` in the child; every other fd is closed at `exec`.
pub(crate) struct ChildSetup {
    pub(crate) map: Vec<(RawFd, RawFd)>,
    /// Make the child a session leader with fd 0 (a PTY slave) as its terminal.
    pub(crate) controlling_tty: bool,
}

/// Spawns `command` with `setup` applied between fork and exec: the fd map,
/// every signal back to its default disposition and none blocked.
pub(crate) fn spawn(command: &mut Command, setup: ChildSetup) -> io::Result<Child> {
    let ChildSetup { map, controlling_tty } = setup;
    let highest = map.iter().map(|&(target, _)| target).max().unwrap_or(-1);
    // std reports a failed exec through a pipe it opens on the lowest free fds;
    // if those were targets, our dup2 would overwrite it and a failed exec would
    // look like success. Fill every free number up to the highest target first.
    let mut placeholders = Vec::new();
    loop {
        let null = std::fs::File::open("/dev/null")?;
        if null.as_raw_fd() > highest {
            break;
        }
        placeholders.push(null);
    }
    let mut scratch: Vec<RawFd> = vec![-1; map.len()];
    command.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let child_setup = move || -> io::Result<()> {
        // Runs in the child between fork and exec: only async-signal-safe calls,
        // no allocation (`scratch` was sized in the parent).
        // 1. Move every source above the highest target, so no dup2 below can
        //    overwrite a source still needed.
        for (slot, &(_, source)) in scratch.iter_mut().zip(&map) {
            // SAFETY: fcntl on an fd inherited from the parent.
            *slot = cvt(unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, highest + 1) })?;
        }
        // 2. Put each at its target (dup2 clears close-on-exec there).
        for (&moved, &(target, _)) in scratch.iter().zip(&map) {
            // SAFETY: both fds are valid numbers; dup2 replaces the target.
            cvt(unsafe { libc::dup2(moved, target) })?;
        }
        // 3. Everything else closes at exec.
        for fd in 0..=highest {
            if !map.iter().any(|&(target, _)| target == fd) {
                // SAFETY: F_SETFD on any number; EBADF for closed ones is ignored.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        close_above_on_exec(highest + 1);
        // 4. Signals: defaults (an ignored disposition survives exec) and an
        //    empty mask.
        for signal in 1..65 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                // SAFETY: resetting a disposition to SIG_DFL; invalid numbers fail harmlessly.
                unsafe { libc::signal(signal, libc::SIG_DFL) };
            }
        }
        // SAFETY: a zeroed sigset is then emptied; sigprocmask reads it.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        // 5. A PTY child leads its own session with the terminal as controller.
        if controlling_tty {
            // SAFETY: setsid and TIOCSCTTY take no pointers.
            unsafe {
                cvt(libc::setsid())?;
                cvt(libc::ioctl(0, libc::TIOCSCTTY as _, 0))?;
            }
        }
        Ok(())
    };
    // SAFETY: `child_setup` makes only async-signal-safe calls and does not
    // allocate, as `pre_exec` requires.
    unsafe { command.pre_exec(child_setup) };
    let child = command.spawn();
    drop(placeholders);
    child
}

/// Writing to a pipe whose reader has gone raises SIGPIPE, which kills a
/// process by default (sockets avoid it with MSG_NOSIGNAL; pipes cannot). Rust
/// programs ignore it already; for any other host, the first spawn sets it to
/// ignored if it is still the default, and the write reports EPIPE instead.
pub(crate) fn ignore_sigpipe_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: reading and (if default) replacing SIGPIPE's disposition.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
        }
    });
}

/// Finds `program` as `execvp` would, in `path` (the child's `PATH`; the
/// default search path when unset): a name with a `/` is used as it is.
pub(crate) fn find_program(program: &str, path: Option<&std::ffi::OsStr>) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    let c = |bytes: &[u8]| {
        std::ffi::CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    if program.contains('/') {
        return c(program.as_bytes());
    }
    let path = path.map(OsStrExt::as_bytes).unwrap_or(b"/bin:/usr/bin");
    let mut denied = false;
    for dir in path.split(|b| *b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut candidate = dir.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(program.as_bytes());
        let candidate = c(&candidate)?;
        let Ok(meta) = std::fs::metadata(std::ffi::OsStr::from_bytes(candidate.as_bytes())) else { continue };
        if !meta.is_file() {
            continue;
        }
        // SAFETY: access reads a valid NUL-terminated path.
        if unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } == 0 {
            return Ok(candidate);
        }
        denied = true;
    }
    Err(io::Error::from_raw_os_error(if denied { libc::EACCES } else { libc::ENOENT }))
}

/// Marks every fd from `first` up close-on-exec (in the child, before exec).
fn close_above_on_exec(first: RawFd) {
    #[cfg(linux_like)]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range with integer arguments; it only sets flags here.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if r == 0 {
            return;
        }
    }
    // Older kernels: one fcntl per possible fd, up to the fd limit (capped).
    // SAFETY: getrlimit fills a valid rlimit.
    let limit = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as RawFd
        } else {
            4096
        }
    };
    for fd in first..limit {
        // SAFETY: F_SETFD on any number; EBADF for closed ones is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// `waitpid(pid, WNOHANG)`: the status if this child has ended (and is now
/// reaped), `None` while it runs.
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status through a valid pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        match cvt(r) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(std::process::ExitStatus::from_raw(status))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Kills and reaps a child whose setup failed half way.
pub(crate) fn kill_and_reap(pid: u32) {
    let mut status = 0;
    // SAFETY: kill and a blocking waitpid on our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
        libc::waitpid(pid as libc::pid_t, &mut status, 0);
    }
}

/// What [`posix_spawn`] starts.
pub(crate) struct SpawnRequest<'a> {
    pub(crate) program: &'a std::ffi::CStr,
    pub(crate) args: &'a [std::ffi::CString],
    /// The child's whole environment, with `program` already a path; `None`:
    /// this process's environment, `program` searched in its `PATH`.
    pub(crate) env: Option<&'a [std::ffi::CString]>,
    pub(crate) cwd: Option<&'a std::ffi::CStr>,
    /// `(target, source)` pairs, as for [`ChildSetup`].
    pub(crate) map: &'a [(RawFd, RawFd)],
    /// Start the child in a new process group of its own.
    pub(crate) process_group: bool,
}

/// Whether [`posix_spawn`] is available: glibc's, a vfork-style clone that
/// reports exec failures and can close every other fd. Elsewhere children
/// start with `fork` + `exec` ([`spawn`]).
pub(crate) const HAS_POSIX_SPAWN: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Starts a child with `posix_spawn` (glibc: a vfork-style clone, much cheaper
/// than `fork` for a large parent): the fd map, every signal at its default and
/// none blocked, every other fd closed. Returns the pid; a program that cannot
/// be run is the error (glibc reports exec failures).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn posix_spawn(request: &SpawnRequest<'_>) -> io::Result<u32> {
    use std::mem::MaybeUninit;
    let highest = request.map.iter().map(|&(target, _)| target).max().unwrap_or(-1);
    // A source numbered at or below the highest target could be overwritten by
    // an earlier dup2 in the child: move it above every target first (in the
    // parent, close-on-exec). Fresh pipes are numbered above 2 and need no move.
    let mut moved: Vec<OwnedFd> = Vec::new();
    let mut pairs = Vec::with_capacity(request.map.len());
    for &(target, source) in request.map {
        if source > highest {
            pairs.push((target, source));
            continue;
        }
        // SAFETY: fcntl on an fd the caller owns or lent.
        let fd = cvt(unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, highest + 1) })?;
        // SAFETY: F_DUPFD returned a new fd that we own.
        moved.push(unsafe { OwnedFd::from_raw_fd(fd) });
        pairs.push((target, fd));
    }
    let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(r)) };
    // SAFETY: the attribute and file-action objects are initialised before use
    // and destroyed on every path below; every pointer passed lives until
    // posix_spawnp returns.
    unsafe {
        let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        if let Err(e) = check(libc::posix_spawnattr_init(attr.as_mut_ptr())) {
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            return Err(e);
        }
        let result = (|| -> io::Result<u32> {
            let actions = actions.as_mut_ptr();
            let attr = attr.as_mut_ptr();
            for &(target, source) in &pairs {
                check(libc::posix_spawn_file_actions_adddup2(actions, source, target))?;
            }
            for fd in 0..=highest {
                if !request.map.iter().any(|&(target, _)| target == fd) && super::fd_is_open(fd) {
                    check(libc::posix_spawn_file_actions_addclose(actions, fd))?;
                }
            }
            check(libc::posix_spawn_file_actions_addclosefrom_np(actions, highest + 1))?;
            if let Some(dir) = request.cwd {
                check(libc::posix_spawn_file_actions_addchdir_np(actions, dir.as_ptr()))?;
            }
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            check(libc::posix_spawnattr_setsigdefault(attr, &all))?;
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setsigmask(attr, &none))?;
            let mut flags = libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK;
            if request.process_group {
                check(libc::posix_spawnattr_setpgroup(attr, 0))?;
                flags |= libc::POSIX_SPAWN_SETPGROUP;
            }
            check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short))?;
            let mut argv: Vec<*mut libc::c_char> =
                request.args.iter().map(|a| a.as_ptr() as *mut libc::c_char).collect();
            argv.push(std::ptr::null_mut());
            let mut pid: libc::pid_t = 0;
            match request.env {
                Some(env) => {
                    let envp: Vec<*mut libc::c_char> = env
                        .iter()
                        .map(|e| e.as_ptr() as *mut libc::c_char)
                        .chain(std::iter::once(std::ptr::null_mut()))
                        .collect();
                    check(libc::posix_spawn(
                        &mut pid,
                        request.program.as_ptr(),
                        actions,
                        attr,
                        argv.as_ptr(),
                        envp.as_ptr(),
                    ))?;
                }
                None => {
                    // As std does for an unchanged environment. (Changing it
                    // while another thread reads it is `set_var`'s documented
                    // hazard: it is `unsafe` for that reason.)
                    unsafe extern "C" {
                        static environ: *const *mut libc::c_char;
                    }
                    check(libc::posix_spawnp(
                        &mut pid,
                        request.program.as_ptr(),
                        actions,
                        attr,
                        argv.as_ptr(),
                        environ,
                    ))?;
                }
            }
            Ok(pid as u32)
        })();
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        drop(moved);
        result
    }
}

/// Not available here ([`HAS_POSIX_SPAWN`] is false): children start through
/// [`spawn`].
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn posix_spawn(request: &SpawnRequest<'_>) -> io::Result<u32> {
    let SpawnRequest { program, args, env, cwd, map, process_group } = request;
    let _ = (program, args, env, cwd, map, process_group);
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
