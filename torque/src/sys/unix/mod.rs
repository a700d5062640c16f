//! Linux, the BSDs and macOS: file descriptors and the calls on them.
//!
//! Every wrapper turns the C convention (`-1` and `errno`) into [`std::io::Result`], so
//! the layers above never see a raw return code. Where one system has a better
//! mechanism, the `cfg` choosing it stays in this folder.

pub(crate) mod datagram;
pub(crate) mod errno;
pub(crate) mod fd;
#[cfg(kqueue)]
pub(crate) mod kqueue;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod unix_socket;
pub(crate) mod waker;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An fd number no descriptor has (for handlers of what is not an fd).
pub(crate) const NO_FD: RawFd = -1;

/// Whether `fd` could name a descriptor (it is not negative).
pub(crate) fn is_valid_fd(fd: RawFd) -> bool {
    fd >= 0
}

/// Runs the thread's waiting window messages: Unix threads have none (no
/// backend here reports them), so there is nothing to run and no `WM_QUIT`.
pub(crate) fn pump_window_messages() -> bool {
    false
}

/// Turns a C return value of `-1` into the thread's `errno` as an [`io::Error`].
pub(crate) fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Whether `fd` names an open file descriptor of this process.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; an invalid fd yields EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Whether `fd` is a file `poll(2)` calls always ready — a regular file, a
/// directory or a block device — and that epoll refuses (EPERM).
pub(crate) fn is_always_ready(fd: RawFd) -> io::Result<bool> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `stat` for an open fd or returns -1 and touches nothing.
    cvt(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it initialized `stat`.
    let kind = unsafe { stat.assume_init() }.st_mode & libc::S_IFMT;
    Ok(kind == libc::S_IFREG || kind == libc::S_IFDIR || kind == libc::S_IFBLK)
}

/// Puts `fd` in non-blocking mode.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a caller-provided fd; errors come back as -1.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        if flags & libc::O_NONBLOCK == 0 {
            cvt(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        }
    }
    Ok(())
}

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = cloexec_pipe()?;
    set_nonblocking(read.as_raw_fd())?;
    set_nonblocking(write.as_raw_fd())?;
    Ok((read, write))
}

/// A close-on-exec pipe whose ends block: `(read end, write end)`.
pub(crate) fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(has_pipe2)]
    {
        // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    }
    #[cfg(not(has_pipe2))]
    {
        // SAFETY: `fds` is a valid two-element array for pipe to fill.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    }
    // SAFETY: the pipe call succeeded, so both fds are open and owned by nobody else.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Without pipe2 a fork on another thread may copy the fds before this
    // runs; children started by Torque close every fd they were not given.
    #[cfg(not(has_pipe2))]
    for fd in [&ends.0, &ends.1] {
        // SAFETY: F_SETFD on an fd we own.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    Ok(ends)
}

/// `pread(2)`: up to `buf.len()` bytes of `file` from `offset`, leaving its position alone.
pub(crate) fn read_file_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// `read(2)` into `buf`, retrying on EINTR.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt(n) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `writev(2)` of `parts` (at most 16 are passed at once), retrying on EINTR.
pub(crate) fn write_vectored(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let count = parts.len().min(slices.len());
    for (slot, part) in slices.iter_mut().zip(parts) {
        *slot = std::io::IoSlice::new(part);
    }
    loop {
        // SAFETY: IoSlice has iovec's layout; the first `count` slices are valid.
        let n = unsafe { libc::writev(fd, slices.as_ptr().cast(), count as libc::c_int) };
        match cvt(n) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `write(2)` from `buf`, retrying on EINTR.
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match cvt(n) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Converts a timeout to whole milliseconds for `poll`/`epoll_wait`, rounding up so a
/// sub-millisecond timer does not turn into a busy loop, and capping at `i32::MAX`
/// so a call scheduled absurdly far in the future cannot overflow the argument.
/// `None` means wait forever (`-1`).
pub(crate) fn timeout_millis(timeout: Option<std::time::Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        }
    }
}
