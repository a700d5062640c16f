//! Datagram receive for Winsock: one at a time (no `recvmmsg`), reporting
//! truncation (`sys/one_datagram.rs`).

pub(crate) use crate::sys::one_datagram::{Received, recv_one as recv_batch};

/// Whether `error` is what a connected datagram socket reports after an ICMP
/// refusal: Windows says WSAECONNRESET for UDP; Wine passes Linux's refusal
/// on as WSAECONNREFUSED.
pub(crate) fn is_refusal(error: &std::io::Error) -> bool {
    use windows_sys::Win32::Networking::WinSock::{WSAECONNREFUSED, WSAECONNRESET};
    matches!(error.raw_os_error(), Some(WSAECONNRESET | WSAECONNREFUSED))
}

/// Most datagrams one batch holds.
pub(crate) const BATCH: usize = 32;

/// Most datagrams one [`recv_batch`] call reads: Winsock has no `recvmmsg`.
pub(crate) const MOST_PER_CALL: usize = 1;
