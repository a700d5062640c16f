//! Datagram receive that reports truncation, for Winsock.

use std::io;
use std::mem::MaybeUninit;

use socket2::{SockAddr, Socket};

/// The error a connected datagram socket reports after an ICMP refusal:
/// Winsock says WSAECONNRESET for UDP.
pub(crate) const REFUSED: i32 = windows_sys::Win32::Networking::WinSock::WSAECONNRESET;

/// One datagram of a batch: its length (one more than its slot if it was
/// cut), where it starts in the buffer, and its sender.
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) offset: usize,
    pub(crate) from: SockAddr,
}

/// Most datagrams one batch holds.
pub(crate) const BATCH: usize = 32;

/// Most datagrams one [`recv_batch`] call reads: Winsock has no `recvmmsg`.
pub(crate) const MOST_PER_CALL: usize = 1;

/// One `recvfrom` into the first `slot` bytes of `buf`, appended to `out`.
/// Winsock fills the buffer and fails a longer datagram with WSAEMSGSIZE
/// (socket2 turns that into the truncated flag); it is reported as a length
/// one more than the slot, so the caller sees the truncation.
pub(crate) fn recv_batch(
    socket: &Socket,
    buf: &mut [u8],
    slot: usize,
    _max: usize,
    out: &mut Vec<Received>,
) -> io::Result<usize> {
    let slot = slot.clamp(1, buf.len());
    let buf = &mut buf[..slot];
    // SAFETY: u8 and MaybeUninit<u8> have the same layout and the buffer is
    // initialised; Winsock only writes into it.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let len = uninit.len();
    let mut slices = [socket2::MaybeUninitSlice::new(uninit)];
    let (n, flags, from) = socket.recv_from_vectored(&mut slices)?;
    out.push(Received { len: if flags.is_truncated() { len + 1 } else { n }, offset: 0, from });
    Ok(1)
}
