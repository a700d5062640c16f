//! Linux `io_uring(7)`.
//!
//! **One enter per pass.** Registration changes, re-arms and the wait go to the
//! kernel in one `io_uring_enter`; a removal is submitted at once, because an
//! armed operation holds a reference to its file and the owner may close the fd
//! next. An operation the OS refuses fails as the kernel takes it, so changes
//! applied outside a pass reap the ring at once and report refusals then;
//! anything else reaped that way waits for the next wait.
//!
//! **Stream sockets and listening ports are served by completions.** A TCP
//! transport asks for them (`Reactor::stream_completions`); its fd then has
//! one multishot receive armed while reading is wanted, drawing from one ring
//! of provided buffers shared by every connection ([`buffers`]; nothing per
//! idle connection). What arrives waits in the fd's queue ([`receive`]) and is
//! announced as readable, again on each pass while some is left
//! (level-triggered, as readiness is); the transport borrows a lone buffer for
//! `data_received` or copies out, and the buffer goes back to the ring at once.
//! A receive that ran out of buffers (`ENOBUFS`) is armed again once one comes
//! back: an exhausted ring is backpressure, not a dead connection. Pausing
//! cancels the receive (what it already took is kept); closing forgets the
//! queue and drops whatever a cancelled receive still delivers. Writes are
//! sends of the transport's own buffer, lent to the selector until the kernel
//! reports them (`send_lent`), announced as writable events. Listening ports
//! get a multishot accept (`accept_completions`).
//!
//! **Everything else is readiness through the ring.** UNIX sockets, pipes,
//! pidfds and user fds get one-shot `POLL_ADD`s, re-armed after their
//! readiness was delivered, so an fd that is still ready is reported again
//! (re-armed polls check readiness when the kernel takes them, at the next
//! enter, after the handlers ran).
//!
//! The ring's fd is readable whenever completions wait, so other loops watch it
//! (`embed`, `torque-glib`); `interleave`'s helper thread waits on it and lets
//! the reactor's thread reap ([`ForeignWait::Reap`]). While reaped work waits
//! for a pass, a no-op's completion keeps the fd readable.
//!
//! Opening refuses cleanly where io_uring is missing or forbidden (ENOSYS, EPERM
//! from seccomp or `kernel.io_uring_disabled`, ENOMEM from `RLIMIT_MEMLOCK` on
//! old kernels) with [`ReactorError::BackendRefused`] naming the cause. Before
//! Linux 6.0 (no multishot receive) stream sockets and ports use readiness too.
//!
//! [`ReactorError::BackendRefused`]: crate::ReactorError::BackendRefused
//! [`ForeignWait::Reap`]: super::ForeignWait::Reap

use super::{BackendInfo, BackendKind, Entry, IoModel, SignalDelivery, Status, Wake};

#[cfg(linux_like)]
mod buffers;
#[cfg(linux_like)]
mod receive;
#[cfg(linux_like)]
mod selector;

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::IoUring,
    name: "io_uring",
    summary: "Linux io_uring(7): one ring enter per pass; TCP accepts, reads and writes as completions (multishot receives into shared buffers), the rest through ring polls",
    status: Status::Experimental,
    platforms: "Linux 5.11+ (receives: 6.0+)",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: None,
    wait_cost: "O(ready fds)",
    reports_closed_fds: false,
    child_exit: super::ChildExit::Pidfd,
    wake: Wake::EventFd,
    signals: SignalDelivery::Handler,
    features: super::BASE_FEATURES,
};

#[cfg(linux_like)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(selector::open) };
#[cfg(not(linux_like))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };
