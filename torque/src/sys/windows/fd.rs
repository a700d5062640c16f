//! Windows' descriptors under the names the rest of the crate uses.
//!
//! Above `sys/`, Torque speaks of fds (`RawFd`, `OwnedFd`, `AsFd`, …), as
//! Twisted speaks of `fileno()` on every platform. The Windows reactors watch
//! sockets, so here those names are Winsock sockets: `RawFd` is a `SOCKET`
//! (`RawSocket`), `OwnedFd` an `OwnedSocket`, and the traits forward to
//! `std::os::windows::io`'s socket traits, so a `TcpStream`, `UdpSocket` or
//! `socket2::Socket` is an `AsFd` here as it is on Unix.

use std::os::windows::io::{AsRawSocket, AsSocket, FromRawSocket, IntoRawSocket};
pub use std::os::windows::io::{BorrowedSocket as BorrowedFd, OwnedSocket as OwnedFd, RawSocket as RawFd};

/// Borrows the socket (`AsSocket` under its Unix name).
pub trait AsFd {
    /// The socket, borrowed.
    fn as_fd(&self) -> BorrowedFd<'_>;
}

impl<T: AsSocket + ?Sized> AsFd for T {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.as_socket()
    }
}

/// The raw socket (`AsRawSocket` under its Unix name).
pub trait AsRawFd {
    /// The raw socket handle.
    fn as_raw_fd(&self) -> RawFd;
}

impl<T: AsRawSocket + ?Sized> AsRawFd for T {
    fn as_raw_fd(&self) -> RawFd {
        self.as_raw_socket()
    }
}

/// Takes ownership of a raw socket (`FromRawSocket` under its Unix name).
pub trait FromRawFd {
    /// Wraps `fd`.
    ///
    /// # Safety
    ///
    /// `fd` must be an open socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> Self;
}

impl<T: FromRawSocket> FromRawFd for T {
    unsafe fn from_raw_fd(fd: RawFd) -> T {
        // SAFETY: the caller promises `fd` is an open socket owned by nothing else.
        unsafe { T::from_raw_socket(fd) }
    }
}

/// Gives up ownership of a socket (`IntoRawSocket` under its Unix name).
pub trait IntoRawFd {
    /// The raw socket, no longer owned.
    fn into_raw_fd(self) -> RawFd;
}

impl<T: IntoRawSocket> IntoRawFd for T {
    fn into_raw_fd(self) -> RawFd {
        self.into_raw_socket()
    }
}
