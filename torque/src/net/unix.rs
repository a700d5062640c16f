//! UNIX stream sockets: `listen_unix`, `connect_unix` (Twisted's `IReactorUNIX`).
//!
//! A name starting with `@` is a Linux abstract socket (no file). For a path, a
//! leftover socket file is removed only if nothing answers on it, so a live
//! server's socket is never stolen.

use std::io;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use super::tcp::{Target, listen_error};
use super::{ClientFactory, ConnectOptions, Connector, Factory, FactoryRef, ListeningPort, NetError};
use crate::Reactor;

/// Options for [`Reactor::listen_unix`].
#[derive(Clone, Debug)]
pub struct UnixListenOptions {
    /// File mode for the socket file (default: as the umask leaves it).
    pub mode: Option<u32>,
    /// The listen backlog (default: the system's maximum, as for TCP).
    pub backlog: i32,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions { mode: None, backlog: crate::sys::socket::max_backlog() }
    }
}

/// The socket address for `name`: `@name` is abstract (Linux), anything else a path.
pub(crate) fn unix_addr(name: &str) -> io::Result<(SockAddr, Option<PathBuf>)> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        return Ok((crate::sys::socket::abstract_unix_addr(abstract_name)?, None));
    }
    Ok((SockAddr::unix(name)?, Some(PathBuf::from(name))))
}

/// Removes `path` if it is a socket nobody listens on; refuses if someone does.
pub(crate) fn clear_stale_socket(path: &Path, addr: &SockAddr, kind: Type) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !crate::sys::unix_socket::is_socket_file(&meta) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket"));
    }
    // Non-blocking, so a live server with a full backlog (perhaps on this very
    // reactor) answers EAGAIN instead of blocking the loop.
    let probe = Socket::new(Domain::UNIX, kind, None)?;
    probe.set_nonblocking(true)?;
    let live = || io::Error::new(io::ErrorKind::AddrInUse, "a live server is listening on this socket");
    match probe.connect(addr) {
        Ok(()) => Err(live()),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(crate::sys::errno::EINPROGRESS) =>
        {
            Err(live())
        }
        Err(e) if e.raw_os_error() == Some(crate::sys::errno::ECONNREFUSED) => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

impl Reactor {
    /// Listens on a UNIX stream socket at `name` (a path, or `@name` for a Linux
    /// abstract socket). The socket file is removed when the port stops.
    pub fn listen_unix<F: Factory + 'static>(
        &self,
        name: &str,
        factory: impl Into<FactoryRef<F>>,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, NetError> {
        self.backend().require(crate::Capability::UnixSockets)?;
        let err = |e| listen_error(format!("unix:{name}"), e);
        let (addr, path) = unix_addr(name).map_err(err)?;
        let socket = bind_unix(&addr, path.as_deref(), &options).map_err(err)?;
        let rebind_path = path.clone();
        let rebind = Box::new(move || bind_unix(&addr, rebind_path.as_deref(), &options));
        Ok(ListeningPort::start(self, socket, factory.into().erase(), path, Some(rebind))?)
    }

    /// Connects to the UNIX stream socket at `name` (a path, or `@name`). Like
    /// `connect_tcp`, every outcome reaches the factory: a missing socket or one
    /// nobody listens on is `ConnectionRefused`, a name that cannot be a socket
    /// address is `Connect` with the reason. `bind_address` does not apply.
    pub fn connect_unix<F: ClientFactory + 'static>(
        &self,
        name: &str,
        factory: impl Into<FactoryRef<F>>,
        options: ConnectOptions,
    ) -> Connector {
        let target = match self.backend().require(crate::Capability::UnixSockets).map(|()| unix_addr(name)) {
            Ok(Ok((addr, _))) => Target::Unix(addr, name.to_owned()),
            Ok(Err(e)) => Target::Invalid(format!("unix:{name}"), e.kind(), e.to_string()),
            Err(e) => Target::Invalid(format!("unix:{name}"), std::io::ErrorKind::Unsupported, e.to_string()),
        };
        let options = ConnectOptions { bind_address: None, ..options };
        Connector::create(self, target, factory.into().erase_client(), options)
    }
}

/// A listening UNIX stream socket at `addr` (a stale socket file at `path`
/// replaced first, the mode applied to the new one).
fn bind_unix(
    addr: &SockAddr,
    path: Option<&std::path::Path>,
    options: &UnixListenOptions,
) -> io::Result<Socket> {
    if let Some(path) = path {
        clear_stale_socket(path, addr, Type::STREAM)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(addr)?;
    if let (Some(path), Some(mode)) = (path, options.mode) {
        crate::sys::unix_socket::set_socket_mode(path, mode)?;
    }
    socket.listen(options.backlog)?;
    Ok(socket)
}
