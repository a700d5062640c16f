//! Socket options and calls whose spelling differs between systems: Winsock's.

use std::io;
use std::os::windows::io::{AsRawSocket, RawSocket};

use socket2::{SockAddr, Socket};
use windows_sys::Win32::Foundation::{HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation};
use windows_sys::Win32::Networking::WinSock;

use super::cvt;
use super::fd::{AsRawFd, RawFd};

/// Flags for every stream `send`: Windows raises no SIGPIPE, so none.
pub(crate) const SEND_FLAGS: i32 = 0;

/// Whether a short send must be followed by another until the socket would
/// block: yes, since Winsock records `FD_WRITE` (room to send) only after a
/// send that failed with WSAEWOULDBLOCK. After a short send that did not,
/// no announcement would ever come.
pub(crate) const SEND_UNTIL_WOULD_BLOCK: bool = true;

/// The largest listen backlog: winsock2.h's `SOMAXCONN`, 0x7fffffff, which
/// asks for as many as the provider allows (windows-sys carries the old
/// winsock.h value, 5).
pub(crate) fn max_backlog() -> i32 {
    i32::MAX
}

/// Readies a new stream socket for the transport: not inherited by children.
pub(crate) fn prepare_stream(socket: &Socket) -> io::Result<()> {
    // An accepted socket may be inheritable: a child process started later
    // would then hold the connection open after the reactor closed it.
    no_inherit(socket.as_raw_socket())
}

/// Clears `socket`'s handle-inherit flag.
pub(crate) fn no_inherit(socket: RawSocket) -> io::Result<()> {
    // SAFETY: `socket` is an open socket (a socket is a handle) for the call.
    if unsafe { SetHandleInformation(socket as HANDLE, HANDLE_FLAG_INHERIT, 0) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Holds partial TCP segments back while set: Windows has no `TCP_CORK`, so
/// nothing happens (as on the BSDs).
pub(crate) fn set_tcp_cork(_socket: &Socket, _enabled: bool) -> io::Result<()> {
    Ok(())
}

/// Lets several sockets bind one address and port (multicast listeners):
/// Windows' `SO_REUSEADDR` is what `SO_REUSEPORT` is elsewhere.
pub(crate) fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)
}

/// Whether a stream socket is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listening(socket: &Socket) -> io::Result<bool> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: `value` and `len` are valid for writes for the call.
    cvt(unsafe {
        WinSock::getsockopt(
            socket.as_raw_fd() as WinSock::SOCKET,
            WinSock::SOL_SOCKET,
            WinSock::SO_ACCEPTCONN,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(value != 0)
}

/// Abstract UNIX socket names are Linux's alone.
pub(crate) fn abstract_unix_addr(_name: &str) -> io::Result<SockAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract UNIX socket names (@name) need Linux"))
}

/// Torque does not use `TransmitFile` (it blocks the thread): the caller
/// copies instead.
pub(crate) fn sendfile(_out: RawFd, _file: &std::fs::File, _offset: u64, _count: usize) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
