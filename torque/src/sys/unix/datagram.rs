//! Datagram receive that reports truncation: batches with `recvmmsg` on
//! Linux, else one at a time (`sys/one_datagram.rs`).

#[cfg(linux_like)]
use std::io;

#[cfg(linux_like)]
use socket2::{SockAddr, Socket};

/// Whether `error` is what a connected datagram socket reports after an ICMP
/// refusal (ECONNREFUSED).
pub(crate) fn is_refusal(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ECONNREFUSED)
}

pub(crate) use crate::sys::one_datagram::Received;

/// Most datagrams one `recvmmsg` may return.
pub(crate) const BATCH: usize = 32;

/// Most datagrams one [`recv_batch`] call reads: a batch where the system has
/// `recvmmsg`, else one.
pub(crate) const MOST_PER_CALL: usize = if cfg!(linux_like) { BATCH } else { 1 };

/// Reads up to `max` datagrams (and at most as many `slot`-byte slots as fit in
/// `buf`) with one `recvmmsg`, appending them to `out`. Fewer than asked means the
/// queue is empty, so no extra call is needed to learn that. Errors as `recv`.
#[cfg(linux_like)]
pub(crate) fn recv_batch(
    socket: &Socket,
    buf: &mut [u8],
    slot: usize,
    max: usize,
    out: &mut Vec<Received>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let slot = slot.clamp(1, buf.len());
    let count = (buf.len() / slot).min(max).clamp(1, BATCH);
    // Only the `count` entries in use are initialised: zeroing all 32 (about 6 KiB)
    // on every call costs more than the batching saves.
    let mut iovs = [const { std::mem::MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut names = [const { std::mem::MaybeUninit::<libc::sockaddr_storage>::uninit() }; BATCH];
    let mut msgs = [const { std::mem::MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    for i in 0..count {
        let iov = iovs[i].write(libc::iovec { iov_base: buf[i * slot..].as_mut_ptr().cast(), iov_len: slot });
        // SAFETY: an all-zero mmsghdr is valid; the fields set below make it
        // describe one iovec and one name buffer, both live for the call.
        let mut msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        msg.msg_hdr.msg_name = names[i].as_mut_ptr().cast();
        msg.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msgs[i].write(msg);
    }
    let received = loop {
        // SAFETY: `msgs[..count]` point at live iovecs over disjoint slots of `buf`
        // and at live sockaddr_storage values; the kernel writes within them.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr().cast::<libc::mmsghdr>(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        match super::cvt(n) {
            Ok(n) => break n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    for (i, msg) in msgs.iter().enumerate().take(received) {
        // SAFETY: entries below `count` were initialised above, and `received`
        // is at most `count`.
        let msg = unsafe { msg.assume_init_ref() };
        let name_len = (msg.msg_hdr.msg_namelen as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is one of the platform's sockaddr types; the
        // kernel wrote `name_len` bytes of `names[i]`, and only those are copied.
        let from = unsafe {
            std::ptr::copy_nonoverlapping(
                names[i].as_ptr().cast::<u8>(),
                (storage.view_as::<libc::sockaddr_storage>() as *mut libc::sockaddr_storage).cast::<u8>(),
                name_len,
            );
            SockAddr::new(storage, name_len as libc::socklen_t)
        };
        out.push(Received { len: msg.msg_len as usize, offset: i * slot, from });
    }
    Ok(received)
}

/// The portable fallback: one `recvfrom`.
#[cfg(not(linux_like))]
pub(crate) use crate::sys::one_datagram::recv_one as recv_batch;
