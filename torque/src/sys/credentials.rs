//! The peer credentials a UNIX socket reports, one type on every platform
//! (`unix/unix_socket.rs` reads them; Windows has none to read yet).

/// The credentials of a UNIX socket's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id, where the platform reports it.
    pub pid: Option<i32>,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}
