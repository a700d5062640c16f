//! UNIX-socket extras. Torque serves no UNIX sockets on Windows yet (the
//! backends declare `Capability::UnixSockets` as planned there), so these
//! only say so.

use std::io;

use super::fd::{OwnedFd, RawFd};

/// The most descriptors accepted in one message.
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 16;

pub use crate::sys::credentials::PeerCredentials;

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "UNIX sockets are not supported by Torque on Windows yet")
}

/// A non-IP socket address: Torque makes none on Windows, so unnamed.
pub(crate) fn address_of(_addr: &socket2::SockAddr) -> crate::net::Address {
    crate::net::Address::UnixUnnamed
}

/// Whether `meta` is a socket file: never, while Torque serves none here.
pub(crate) fn is_socket_file(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Permission bits for a socket file: not on Windows.
pub(crate) fn set_socket_mode(_path: &std::path::Path, _mode: u32) -> io::Result<()> {
    Err(unsupported())
}

/// Peer credentials: not on Windows.
pub(crate) fn peer_credentials(_fd: RawFd) -> io::Result<PeerCredentials> {
    Err(unsupported())
}

/// Passing descriptors: not on Windows.
pub(crate) fn send_with_fds(_socket: RawFd, _data: &[u8], _fds: &[RawFd]) -> io::Result<usize> {
    Err(unsupported())
}

/// Receiving descriptors: not on Windows.
pub(crate) fn recv_with_fds(_socket: RawFd, _buf: &mut [u8], _fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    Err(unsupported())
}
