//! Windows I/O completion ports, as Twisted's iocpreactor: one port per
//! reactor, and one `GetQueuedCompletionStatusEx` per pass takes every
//! packet that arrived — finished operations and the waker's posts
//! (`PostQueuedCompletionStatus`). No limit on sockets.
//!
//! **Readiness through the port.** What the reactor does not hand over as an
//! operation (connecting sockets, UDP ports, the fd-set API) is polled with
//! the Winsock driver's own poll request (`IOCTL_AFD_POLL`, [`afd`]), issued
//! asynchronously on one driver handle associated with the port, so its
//! answer is a packet like any other: no helper thread, no second wait. A
//! request asks once; after it answers, the reactor's handlers run and a new
//! request goes out before the next wait, which answers at once if the
//! socket is still ready: level-triggered, as the other backends. A change
//! that wants more than the request in flight asks for cancels it (its
//! packet still comes, and frees it).
//!
//! Every operation is boxed with its `OVERLAPPED` first and owned by the
//! kernel from its start until its packet is taken; dropping the selector
//! cancels what is in flight and collects the packets.

use super::{
    BackendInfo, BackendKind, ChildExit, Entry, Features, IoModel, SignalDelivery, Status, Support, Wake,
};

#[cfg(windows)]
mod afd;
#[cfg(windows)]
mod port;
#[cfg(windows)]
mod selector;

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Iocp,
    name: "iocp",
    summary: "Windows I/O completion ports: one port per reactor, socket readiness as AFD poll requests on it, no socket limit",
    status: Status::Experimental,
    platforms: "Windows",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(ready sockets)",
    reports_closed_fds: false,
    child_exit: ChildExit::Planned,
    wake: Wake::PortPacket,
    signals: SignalDelivery::ConsoleHandler,
    features: Features {
        unix_sockets: Support::Planned,
        processes: Support::Planned,
        // A port is not a handle another loop can wait on for readiness.
        watch_fd: Support::No,
        interleave: Support::Planned,
        ..super::BASE_FEATURES
    },
};

#[cfg(windows)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(selector::open) };
#[cfg(not(windows))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };
