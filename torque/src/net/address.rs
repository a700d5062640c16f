//! Addresses of stream endpoints.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use socket2::SockAddr;

/// Where a connection or port is: an IP socket address or a UNIX socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address and port (TCP or UDP).
    Ip(SocketAddr),
    /// A UNIX socket bound to a path.
    Unix(PathBuf),
    /// A Linux abstract UNIX socket name (without the leading NUL).
    UnixAbstract(Vec<u8>),
    /// An unnamed UNIX socket (the usual client side).
    UnixUnnamed,
    /// An in-memory connection end (`testing`), with a label.
    Memory(String),
}

impl Address {
    pub(crate) fn from_sockaddr(addr: &SockAddr) -> Address {
        if let Some(ip) = addr.as_socket() {
            return Address::Ip(ip);
        }
        crate::sys::unix_socket::address_of(addr)
    }

    /// The IP socket address (TCP or UDP).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The port (TCP or UDP).
    pub fn port(&self) -> Option<u16> {
        self.socket_addr().map(|a| a.port())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixAbstract(name) => write!(f, "unix:@{}", String::from_utf8_lossy(name)),
            Address::UnixUnnamed => f.write_str("unix:(unnamed)"),
            Address::Memory(label) => write!(f, "memory:{label}"),
        }
    }
}
