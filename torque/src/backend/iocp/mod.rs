//! Windows I/O completion ports, as Twisted's iocpreactor: one port per
//! reactor, and one `GetQueuedCompletionStatusEx` per pass takes every
//! packet that arrived — finished operations and the waker's posts
//! (`PostQueuedCompletionStatus`). No limit on sockets.
//!
//! **TCP is served by completions.** A connection's transport asks for them
//! (`Reactor::stream_completions`); its socket joins the port, and one
//! `WSARecv` at a time receives into a buffer the operation owns (4 KiB for
//! an idle connection, growing fourfold after each receive that filled it,
//! up to 64 KiB). What arrives waits in the connection's queue ([`stream`])
//! and is announced as readable on each pass while some is left
//! (level-triggered, as readiness is); the transport copies it out as it
//! would `recv` it. Receives stop while 256 KiB wait unread or reading is
//! not wanted (the one in flight may still complete and is kept). Writes
//! are `WSASend`s of the transport's own buffer, lent to the operation until
//! its packet (no copy), announced as writable events. Listening sockets
//! keep four `AcceptEx`es in flight (up to 64 connections accepted and not
//! taken), and connecting sockets use `ConnectEx`.
//!
//! **Readiness through the port for the rest.** UDP ports, sockets a port
//! shares with another reactor and the fd-set API are polled with the
//! Winsock driver's own poll request (`IOCTL_AFD_POLL`, [`afd`]), issued
//! asynchronously on one driver handle associated with the port, so its
//! answer is a packet like any other: no helper thread, no second wait. A
//! request asks once; after it answers, the reactor's handlers run and a new
//! request goes out before the next wait, which answers at once if the
//! socket is still ready: level-triggered, as the other backends. A change
//! that wants more than the request in flight asks for cancels it.
//!
//! Every operation is boxed with its `OVERLAPPED` first ([`ops`]) and owned
//! by the kernel from its start until its packet is taken; a cancelled or
//! orphaned one (its socket closed) frees what it holds — a send's buffer, an
//! accept's socket — when its packet comes. Dropping the selector cancels
//! what is in flight and collects the packets.

use super::{BackendInfo, BackendKind, ChildExit, Entry, IoModel, SignalDelivery, Status, Wake};

#[cfg(windows)]
mod afd;
#[cfg(windows)]
mod ops;
#[cfg(windows)]
mod port;
#[cfg(windows)]
mod selector;
#[cfg(windows)]
mod stream;

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Iocp,
    name: "iocp",
    summary: "Windows I/O completion ports: TCP accepts, connects, receives and sends as overlapped operations, other sockets' readiness as AFD polls on the same port; no socket limit",
    status: Status::Experimental,
    platforms: "Windows",
    io_model: IoModel::Completion,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(ready sockets)",
    reports_closed_fds: false,
    child_exit: ChildExit::ProcessHandle,
    wake: Wake::PortPacket,
    signals: SignalDelivery::ConsoleHandler,
    features: super::WINDOWS_FEATURES,
};

#[cfg(windows)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(selector::open) };
#[cfg(not(windows))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };
