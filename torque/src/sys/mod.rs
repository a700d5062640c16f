//! The platform layer: the only place (with `backend/`) that calls the OS
//! directly, one folder per platform family.
//!
//! Everything above it (`reactor/`, `net/`, `process/`, `tls/`) names no
//! `target_os`: what differs between Linux, the BSDs and macOS — pidfds,
//! eventfd, `recvmmsg`, `sendfile`, abstract UNIX names, peer credentials,
//! `MSG_NOSIGNAL`, PTYs, `posix_spawn` — is chosen here, each Linux mechanism
//! with its portable fallback beside it. `windows/` sits beside `unix/` and
//! offers the same names where Windows has the thing (sockets as `fd`s,
//! Winsock's error numbers as `errno`, an event object as the waker, the
//! console's control events as stop signals).

mod credentials;
mod one_datagram;
mod wake;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
