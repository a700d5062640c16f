//! Windows: Winsock sockets, event objects and the console's control events.
//!
//! The Windows reactors watch sockets, so the crate's "fds" are sockets here
//! ([`fd`]). Every wrapper turns Winsock's convention (`SOCKET_ERROR` and
//! `WSAGetLastError`) into [`std::io::Result`].

pub(crate) mod datagram;
pub(crate) mod errno;
pub(crate) mod event_waiter;
pub(crate) mod fd;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod unix_socket;
pub(crate) mod waker;

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};

use windows_sys::Win32::Networking::WinSock;

use fd::{OwnedFd, RawFd};

/// A socket number no socket has (for handlers of what is not a socket).
pub(crate) const NO_FD: RawFd = WinSock::INVALID_SOCKET as RawFd;

/// Whether `fd` could name a socket (it is not `INVALID_SOCKET`).
pub(crate) fn is_valid_fd(fd: RawFd) -> bool {
    fd != NO_FD
}

/// Runs the thread's waiting window messages (translated and dispatched to
/// their window procedures); true if `WM_QUIT` was among them, which stops
/// the reactor as it ends a Win32 message loop.
pub(crate) fn pump_window_messages() -> bool {
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        DispatchMessageW, MSG, PM_REMOVE, PeekMessageW, TranslateMessage, WM_QUIT,
    };
    // SAFETY: an all-zero MSG is a valid value for PeekMessageW to overwrite.
    let mut message: MSG = unsafe { std::mem::zeroed() };
    // SAFETY: `message` is valid for writes; a null window means every
    // message of this thread.
    while unsafe { PeekMessageW(&mut message, std::ptr::null_mut(), 0, 0, PM_REMOVE) } != 0 {
        if message.message == WM_QUIT {
            return true;
        }
        // SAFETY: `message` was filled by PeekMessageW.
        unsafe {
            TranslateMessage(&message);
            DispatchMessageW(&message);
        }
    }
    false
}

/// Turns Winsock's `SOCKET_ERROR` (`-1`) into the thread's last error.
pub(crate) fn cvt(ret: i32) -> io::Result<i32> {
    if ret == WinSock::SOCKET_ERROR { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Whether `fd` is always ready (a regular file): never, since Windows
/// reactors watch sockets only.
pub(crate) fn is_always_ready(_fd: RawFd) -> io::Result<bool> {
    Ok(false)
}

/// Puts socket `fd` in non-blocking mode.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let mut on: u32 = 1;
    // SAFETY: FIONBIO reads one u32 from `on`, which lives for the call.
    cvt(unsafe { WinSock::ioctlsocket(fd as WinSock::SOCKET, WinSock::FIONBIO, &mut on) })?;
    Ok(())
}

/// A connected pair of non-blocking loopback TCP sockets, `(read end, write
/// end)`: Windows has no anonymous pipe a socket reactor can watch, so this
/// is what `torque::fd::pipe` gives there (as Python's `socketpair` does).
/// Either end may read and write.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let write = TcpStream::connect(listener.local_addr()?)?;
    let (read, _) = listener.accept()?;
    for end in [&read, &write] {
        end.set_nonblocking(true)?;
        end.set_nodelay(true)?;
        socket::no_inherit(std::os::windows::io::AsRawSocket::as_raw_socket(end))?;
    }
    Ok((OwnedFd::from(read), OwnedFd::from(write)))
}

/// Up to `buf.len()` bytes of `file` from `offset` (`ReadFile` at an offset;
/// unlike Unix's `pread`, this moves the file's position).
pub(crate) fn read_file_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// `recv` into `buf` (a socket's `read(2)`).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len().min(i32::MAX as usize) as i32;
    // SAFETY: `buf` is valid for writes of `len` bytes.
    let n = cvt(unsafe { WinSock::recv(fd as WinSock::SOCKET, buf.as_mut_ptr(), len, 0) })?;
    Ok(n as usize)
}

/// `send` from `buf` (a socket's `write(2)`).
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let len = buf.len().min(i32::MAX as usize) as i32;
    // SAFETY: `buf` is valid for reads of `len` bytes.
    let n = cvt(unsafe { WinSock::send(fd as WinSock::SOCKET, buf.as_ptr(), len, 0) })?;
    Ok(n as usize)
}

/// `WSASend` of `parts` (at most 16 at once).
pub(crate) fn write_vectored(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut buffers = [WinSock::WSABUF { len: 0, buf: std::ptr::null_mut() }; 16];
    let count = parts.len().min(buffers.len());
    for (slot, part) in buffers.iter_mut().zip(parts) {
        *slot =
            WinSock::WSABUF { len: part.len().min(u32::MAX as usize) as u32, buf: part.as_ptr().cast_mut() };
    }
    let mut sent: u32 = 0;
    // SAFETY: the first `count` WSABUFs point at live slices Winsock only
    // reads; no overlapped structure, so the call completes before returning.
    cvt(unsafe {
        WinSock::WSASend(
            fd as WinSock::SOCKET,
            buffers.as_ptr(),
            count as u32,
            &mut sent,
            0,
            std::ptr::null_mut(),
            None,
        )
    })?;
    Ok(sent as usize)
}

/// Converts a timeout to whole milliseconds for `WaitForMultipleObjects`,
/// rounding up so a sub-millisecond timer does not turn into a busy loop and
/// capping below `INFINITE`; `None` waits forever.
pub(crate) fn timeout_millis(timeout: Option<std::time::Duration>) -> u32 {
    const INFINITE: u32 = u32::MAX;
    match timeout {
        None => INFINITE,
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(u128::from(INFINITE - 1)) as u32,
    }
}
