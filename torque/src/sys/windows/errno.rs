//! The error numbers the layers above match on, as Winsock reports them.
//!
//! Unix spells them `libc::E…`; Winsock has its own `WSAE…` numbers. Where
//! Winsock has no such error, the constant is a value no call returns, so
//! the match arm simply never fires.

use windows_sys::Win32::Networking::WinSock;

/// Numbers no Windows call returns, one per Unix error Winsock lacks (each
/// distinct, so no match arm shadows another).
const NEVER: i32 = i32::MIN;

pub(crate) const EAGAIN: i32 = WinSock::WSAEWOULDBLOCK;
/// A non-blocking `connect` under way: Winsock says WSAEWOULDBLOCK.
pub(crate) const EINPROGRESS: i32 = WinSock::WSAEWOULDBLOCK;
pub(crate) const EINTR: i32 = WinSock::WSAEINTR;
pub(crate) const EBADF: i32 = WinSock::WSAENOTSOCK;
pub(crate) const EINVAL: i32 = WinSock::WSAEINVAL;
pub(crate) const EMFILE: i32 = WinSock::WSAEMFILE;
pub(crate) const ENFILE: i32 = NEVER;
pub(crate) const ENOBUFS: i32 = WinSock::WSAENOBUFS;
pub(crate) const ENOMEM: i32 = NEVER + 2;
pub(crate) const EMSGSIZE: i32 = WinSock::WSAEMSGSIZE;
pub(crate) const ECONNREFUSED: i32 = WinSock::WSAECONNREFUSED;
pub(crate) const ECONNRESET: i32 = WinSock::WSAECONNRESET;
pub(crate) const ECONNABORTED: i32 = WinSock::WSAECONNABORTED;
pub(crate) const ENOTCONN: i32 = WinSock::WSAENOTCONN;
pub(crate) const ETIMEDOUT: i32 = WinSock::WSAETIMEDOUT;
/// A send after the socket's sending side was shut down.
pub(crate) const EPIPE: i32 = WinSock::WSAESHUTDOWN;
pub(crate) const EOPNOTSUPP: i32 = WinSock::WSAEOPNOTSUPP;
pub(crate) const ENOSYS: i32 = NEVER + 3;
pub(crate) const EPERM: i32 = NEVER + 4;
pub(crate) const EPROTO: i32 = NEVER + 5;
pub(crate) const ENOENT: i32 = NEVER + 6;
pub(crate) const EIO: i32 = NEVER + 7;
