//! File descriptors: `std::os::fd`, under the names the crate uses on every
//! platform (Windows gives sockets these names, `sys/windows/fd.rs`).

pub use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
