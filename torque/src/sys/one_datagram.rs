//! One datagram per call, reporting truncation: the receive of systems
//! without `recvmmsg` (Windows, the BSDs, macOS), shared by both platform
//! folders.

use std::io;
use std::mem::MaybeUninit;

use socket2::{SockAddr, Socket};

/// One datagram of a batch: its length (the real one where the system
/// reports it, else one more than its slot if it was cut), where it starts in
/// the buffer, and its sender.
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) offset: usize,
    pub(crate) from: SockAddr,
}

/// One `recvfrom` into the first `slot` bytes of `buf`, appended to `out`.
/// The system only flags a cut datagram (Winsock fails it with WSAEMSGSIZE,
/// which socket2 turns into the same flag), so its length is reported as one
/// more than the slot: the caller still sees the truncation instead of losing
/// the rest silently. `_max` is there to match `recvmmsg`'s batch.
#[cfg_attr(linux_like, allow(dead_code))]
pub(crate) fn recv_one(
    socket: &Socket,
    buf: &mut [u8],
    slot: usize,
    _max: usize,
    out: &mut Vec<Received>,
) -> io::Result<usize> {
    let slot = slot.clamp(1, buf.len());
    let buf = &mut buf[..slot];
    // SAFETY: u8 and MaybeUninit<u8> have the same layout and the buffer is
    // initialised; the system only writes into it.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let mut slices = [socket2::MaybeUninitSlice::new(uninit)];
    let (n, flags, from) = socket.recv_from_vectored(&mut slices)?;
    out.push(Received { len: if flags.is_truncated() { slot + 1 } else { n }, offset: 0, from });
    Ok(1)
}
