//! The syscall layer: the only place (with `backend/`) that calls the OS directly.
//!
//! Every wrapper turns the C convention (`-1` and `errno`) into [`std::io::Result`], so
//! the layers above never see a raw return code.

pub(crate) mod datagram;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod unix_socket;
pub(crate) mod waker;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Turns a C return value of `-1` into the thread's `errno` as an [`io::Error`].
pub(crate) fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Whether `fd` names an open file descriptor of this process.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; an invalid fd yields EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Puts `fd` in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
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
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a valid two-element array for pipe to fill.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        for fd in fds {
            set_nonblocking(fd)?;
            // SAFETY: fd was just returned by pipe and is open.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
    }
    // SAFETY: pipe succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `read(2)` into `buf`, retrying on EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
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
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
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

/// `sendfile(2)`: up to `count` bytes of `file` from `offset` to the socket `out`,
/// without copying them through user space. Returns the bytes sent; 0 means the
/// file ended at `offset`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sendfile(out: RawFd, file: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // Linux sends at most 0x7ffff000 bytes per call anyway.
    let count = count.min(0x7fff_f000);
    // SAFETY: both fds are borrowed from live owners for the call; `off` is a valid,
    // writable off_t the kernel advances (the file's own position is untouched).
    let n = unsafe { libc::sendfile(out, file, &mut off, count) };
    cvt(n).map(|n| n as usize)
}
