//! Datagram receive that reports truncation.

use std::io;
use std::mem::MaybeUninit;

use socket2::{SockAddr, Socket};

/// One `recvfrom` into `buf`. On Linux it passes MSG_TRUNC, so a datagram longer
/// than `buf` returns its real length (the caller sees the truncation instead of
/// losing the rest silently).
pub(crate) fn recv_from_truncating(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: u8 and MaybeUninit<u8> have the same layout and the buffer is
    // initialised; the kernel only writes into it.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        socket.recv_from_with_flags(uninit, libc::MSG_TRUNC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        socket.recv_from(uninit)
    }
}
