//! Serving sockets opened elsewhere (Twisted's `IReactorSocket`): a listening
//! socket inherited from a parent or a service manager, or a connected one.

use crate::sys::fd::OwnedFd;

use socket2::Socket;

use super::{Address, Factory, FactoryRef, ListeningPort, NetError, Transport};
use crate::Reactor;

fn adopt_error(what: &str, source: std::io::Error) -> NetError {
    NetError::CannotListen { address: format!("adopted {what}"), source }
}

impl Reactor {
    /// Serves an already-listening stream socket (TCP or UNIX), taking ownership
    /// of it. It is made non-blocking; the port closes it when it stops.
    pub fn adopt_stream_port<F: Factory + 'static>(
        &self,
        socket: OwnedFd,
        factory: impl Into<FactoryRef<F>>,
    ) -> Result<ListeningPort, NetError> {
        let socket = Socket::from(socket);
        let listening = crate::sys::socket::is_listening(&socket).map_err(|e| adopt_error("socket", e))?;
        if !listening {
            return Err(adopt_error(
                "socket",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "the socket is not listening"),
            ));
        }
        socket.set_nonblocking(true).map_err(|e| adopt_error("socket", e))?;
        Ok(ListeningPort::start(self, socket, factory.into().erase(), None, None)?)
    }

    /// Serves an already-connected stream socket with a protocol from `factory`,
    /// taking ownership of it.
    pub fn adopt_stream_connection<F: Factory + 'static>(
        &self,
        socket: OwnedFd,
        factory: impl Into<FactoryRef<F>>,
    ) -> Result<Option<Transport>, NetError> {
        let socket = Socket::from(socket);
        socket.set_nonblocking(true).map_err(|e| adopt_error("connection", e))?;
        let peer = socket
            .peer_addr()
            .map(|a| Address::from_sockaddr(&a))
            .map_err(|e| adopt_error("connection", e))?;
        let factory = factory.into().erase();
        let Some(protocol) = factory.build(&peer) else { return Ok(None) };
        Ok(Some(Transport::start(self, socket, protocol, None)?))
    }
}
