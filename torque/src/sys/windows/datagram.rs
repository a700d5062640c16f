//! Datagram receive for Winsock: one at a time (no `recvmmsg`), reporting
//! truncation (`sys/one_datagram.rs`).

pub(crate) use crate::sys::one_datagram::{Received, recv_one as recv_batch};

/// The error a connected datagram socket reports after an ICMP refusal:
/// Winsock says WSAECONNRESET for UDP.
pub(crate) const REFUSED: i32 = windows_sys::Win32::Networking::WinSock::WSAECONNRESET;

/// Most datagrams one batch holds.
pub(crate) const BATCH: usize = 32;

/// Most datagrams one [`recv_batch`] call reads: Winsock has no `recvmmsg`.
pub(crate) const MOST_PER_CALL: usize = 1;
