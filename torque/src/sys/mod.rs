//! The platform layer: the only place (with `backend/`) that calls the OS
//! directly, one folder per platform family.
//!
//! Everything above it (`reactor/`, `net/`, `process/`, `tls/`) names no
//! `target_os`: what differs between Linux, the BSDs and macOS — pidfds,
//! eventfd, `recvmmsg`, `sendfile`, abstract UNIX names, peer credentials,
//! `MSG_NOSIGNAL`, PTYs, `posix_spawn` — is chosen here, each Linux mechanism
//! with its portable fallback beside it. A Windows folder will sit beside
//! `unix/` and offer the same names.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
