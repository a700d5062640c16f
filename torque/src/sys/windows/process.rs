//! Child processes on Windows: the calls `process/windows.rs` needs that
//! `std::process` lacks — a socket pair for a child's stdio (the reactor
//! serves only sockets on Windows), a process's exit code, terminating it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::windows::io::{
    AsRawHandle, AsRawSocket, BorrowedHandle, FromRawSocket, OwnedHandle, OwnedSocket, RawHandle,
};

use windows_sys::Win32::Foundation::{STILL_ACTIVE, WAIT_OBJECT_0};
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, INVALID_SOCKET, IPPROTO_TCP, SOCK_STREAM, WSA_FLAG_NO_HANDLE_INHERIT, WSAGetLastError,
    WSASocketW,
};
use windows_sys::Win32::System::Threading::{GetExitCodeProcess, TerminateProcess, WaitForSingleObject};

use super::fd::{OwnedFd, RawFd};

/// The socket buffer each side of a child's stdio stream gets.
const STDIO_BUFFER: usize = 1 << 20;

/// A connected loopback pair for one child stdio stream: `(our end, the
/// child's end)`. Ours is an ordinary (overlapped, non-blocking) socket the
/// reactor serves; the child's is made without `WSA_FLAG_OVERLAPPED` and
/// left blocking, so the child's plain `ReadFile`/`WriteFile` on its stdio
/// handle work as on a pipe.
pub(crate) fn stdio_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    // SAFETY: plain arguments, no protocol info; flags without
    // WSA_FLAG_OVERLAPPED make a socket synchronous I/O works on.
    let raw = unsafe {
        WSASocketW(AF_INET as i32, SOCK_STREAM, IPPROTO_TCP, std::ptr::null(), 0, WSA_FLAG_NO_HANDLE_INHERIT)
    };
    if raw == INVALID_SOCKET {
        // SAFETY: reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    // SAFETY: a new socket nobody else owns.
    let theirs = socket2::Socket::from(unsafe { OwnedSocket::from_raw_socket(raw as _) });
    // Room for a burst of output without blocking the child (a pipe holds
    // 64 KiB on Linux; Windows' socket default is smaller).
    theirs.set_send_buffer_size(STDIO_BUFFER)?;
    theirs.connect(&listener.local_addr()?.into())?;
    let their_address = theirs.local_addr()?.as_socket();
    // Only our own connect is taken: another local program could race to
    // the listener's port.
    let ours = loop {
        let (ours, peer): (_, SocketAddr) = listener.accept()?;
        if Some(peer) == their_address {
            break ours;
        }
    };
    ours.set_nonblocking(true)?;
    ours.set_nodelay(true)?;
    socket2::SockRef::from(&ours).set_recv_buffer_size(STDIO_BUFFER)?;
    // An accepted socket may be inheritable: then every child started later
    // (this one too) would hold our end open, and no reader would ever see
    // the end of its stream.
    super::socket::no_inherit(ours.as_raw_socket())?;
    Ok((OwnedFd::from(ours), OwnedFd::from(theirs)))
}

/// The exit code of process `handle`, `None` while it runs.
pub(crate) fn exit_code(handle: &OwnedHandle) -> io::Result<Option<u32>> {
    let mut code = 0u32;
    // SAFETY: the handle is open; `code` is valid for the write.
    if unsafe { GetExitCodeProcess(handle.as_raw_handle(), &mut code) } == 0 {
        return Err(io::Error::last_os_error());
    }
    if code != STILL_ACTIVE as u32 {
        return Ok(Some(code));
    }
    // STILL_ACTIVE is also a code a program can exit with: ask the handle.
    // SAFETY: a zero-timeout wait on an open handle.
    let signalled = unsafe { WaitForSingleObject(handle.as_raw_handle(), 0) } == WAIT_OBJECT_0;
    Ok(signalled.then_some(code))
}

/// Ends process `handle` with exit code `code` (`TerminateProcess`).
pub(crate) fn terminate(handle: &OwnedHandle, code: u32) -> io::Result<()> {
    // SAFETY: the handle is open and has PROCESS_TERMINATE (std opens children
    // with all access).
    if unsafe { TerminateProcess(handle.as_raw_handle(), code) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `millis` for process `handle` to end.
pub(crate) fn wait(handle: &OwnedHandle, millis: u32) {
    // SAFETY: a bounded wait on an open handle.
    unsafe { WaitForSingleObject(handle.as_raw_handle(), millis) };
}

/// A duplicate of socket `source` as a handle, for a child's stdio (std
/// makes the child's inheritable copy of it). The caller keeps `source` open
/// through the call.
pub(crate) fn stdio_handle(source: RawFd) -> io::Result<OwnedHandle> {
    // SAFETY: `source` is an open socket (a socket is a handle) for the call.
    let handle = unsafe { BorrowedHandle::borrow_raw(source as RawHandle) };
    handle.try_clone_to_owned()
}
