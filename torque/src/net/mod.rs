//! Stream transports built on the reactor core: the protocol model, TCP and UNIX
//! stream sockets (Twisted's `IProtocol`, `IFactory`, `ITransport`, `IReactorTCP`,
//! `IReactorUNIX`).
//!
//! A [`Factory`] builds one [`Protocol`] per connection. The protocol is told about
//! its connection through a [`Transport`], a cheap clonable handle it may keep and use
//! later (from timers, thread calls or other connections' callbacks). Incoming bytes
//! arrive as `&[u8]` borrowed from a buffer the reactor owns. `connection_lost` runs
//! exactly once, at the end of the pass, never inside the call that closed the
//! connection.

mod address;
mod adopt;
mod api;
mod datagram;
mod endpoint;
mod line;
mod listener;
mod oneshot;
mod reconnect;
mod services;
pub(crate) mod stream;
mod tcp;
mod udp;
mod unix;
pub(crate) mod wrap;

pub use crate::sys::unix_socket::PeerCredentials;
pub use address::Address;
pub use api::StreamReactor;
pub use datagram::{
    ANY_INTERFACE_V4, ANY_INTERFACE_V6, DEFAULT_MAX_PACKET_SIZE, DatagramError, DatagramPort,
    DatagramProtocol, READS_PER_EVENT,
};
pub use endpoint::{
    ClientEndpoint, EndpointError, ServerEndpoint, client_from_string, quote_endpoint_argument,
    server_from_string,
};
pub use line::{LineHandler, LineReceiver};
pub use listener::ListeningPort;
pub use reconnect::ReconnectingClientFactory;
pub use stream::{Producer, ProducerError, Transport};
pub(crate) use tcp::Target;
pub use tcp::{ConnectOptions, Connector, ListenOptions};
pub use udp::{DatagramEndpoint, UdpOptions, UnixDatagramOptions, datagram_from_string};
pub use unix::UnixListenOptions;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;

/// Why a connection ended (Twisted's `ConnectionDone`, `ConnectionLost`,
/// `ConnectionAborted`).
#[non_exhaustive]
#[derive(Debug)]
pub enum DisconnectReason {
    /// Closed cleanly: `lose_connection` finished flushing, or the peer closed and
    /// the protocol let the connection go.
    Done,
    /// Lost through an error, with the OS's reason (reset, broken pipe, …).
    Lost(io::Error),
    /// Closed at once by `abort_connection`; unsent data was dropped.
    Aborted,
    /// A TLS connection failed: the handshake was refused or timed out, or the
    /// peer closed without `close_notify` ([`TlsError::Truncated`](crate::tls::TlsError::Truncated)).
    Tls(crate::tls::TlsError),
    /// One of the protocol's callbacks panicked (the message is the panic's);
    /// the connection was closed at once. This wins over any other reason the
    /// same callback caused, such as its own `abort_connection`.
    Panicked(String),
    /// Closed with this many descriptors queued by
    /// [`send_file_descriptor`](Transport::send_file_descriptor) that no
    /// written byte carried; they were closed unsent. Reported instead of
    /// [`Done`](DisconnectReason::Done).
    DescriptorsNotSent(usize),
}

impl DisconnectReason {
    /// Whether this was a clean close.
    pub fn is_clean(&self) -> bool {
        matches!(self, DisconnectReason::Done)
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Done => f.write_str("the connection was closed cleanly"),
            DisconnectReason::Lost(e) => write!(f, "the connection was lost: {e}"),
            DisconnectReason::Aborted => f.write_str("the connection was aborted"),
            DisconnectReason::Tls(e) => write!(f, "the TLS connection failed: {e}"),
            DisconnectReason::Panicked(message) => write!(f, "a protocol callback panicked: {message}"),
            DisconnectReason::DescriptorsNotSent(n) => {
                write!(
                    f,
                    "the connection closed with {n} file descriptor(s) unsent: no byte was written after them"
                )
            }
        }
    }
}

/// Errors from listening and connecting, each a distinct variant to match on.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Binding or listening failed (Twisted's `CannotListenError`).
    #[error("cannot listen on {address}: {source}")]
    CannotListen {
        /// What was asked for.
        address: String,
        /// The OS's reason.
        #[source]
        source: io::Error,
    },
    /// The peer refused the connection.
    #[error("connection to {address} refused")]
    ConnectionRefused {
        /// The address tried.
        address: String,
    },
    /// The connection attempt did not finish in time.
    #[error("connecting to {address} timed out")]
    Timeout {
        /// The address or host tried.
        address: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve {host:?}: {reason}")]
    DnsLookup {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// `stop_connecting` was called before the connection was made.
    #[error("connecting was cancelled")]
    Cancelled,
    /// Any other failure to connect, with the OS's reason.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// The OS's reason.
        #[source]
        source: io::Error,
    },
    /// The reactor refused to watch the socket (select: fd too large).
    #[error(transparent)]
    Reactor(#[from] crate::ReactorError),
    /// A TLS endpoint's certificates, key or trust roots could not be loaded.
    #[error("TLS configuration: {0}")]
    TlsConfig(Box<crate::tls::TlsConfigError>),
}

/// One connection's application logic (Twisted's `IProtocol`).
///
/// Every callback receives the connection's [`Transport`]; clone it to keep it.
pub trait Protocol {
    /// The connection is up.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }
    /// Bytes arrived. `data` is borrowed from the reactor's read buffer.
    fn data_received(&mut self, transport: &Transport, data: &[u8]);
    /// The peer closed its writing side (end of file). Writing is still possible;
    /// the default closes the connection after flushing (`lose_connection`).
    /// Override to keep writing (Twisted's `IHalfCloseableProtocol`).
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.lose_connection();
    }
    /// The TLS handshake finished (connections with TLS only; Twisted's
    /// `IHandshakeListener`). The peer's certificate and the negotiated protocol
    /// are now in [`Transport::tls_info`].
    fn handshake_completed(&mut self, transport: &Transport) {
        let _ = transport;
    }
    /// Our writing side was closed by `lose_write_connection` once flushed.
    fn write_connection_lost(&mut self, transport: &Transport) {
        let _ = transport;
    }
    /// A file descriptor arrived (UNIX sockets; Twisted's
    /// `fileDescriptorReceived`), before the bytes it was sent with. The default
    /// closes it.
    fn file_descriptor_received(&mut self, transport: &Transport, fd: crate::sys::fd::OwnedFd) {
        let _ = (transport, fd);
    }
    /// The connection is gone; runs exactly once, at the end of a pass.
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }
}

/// Builds protocols for connections (Twisted's `IProtocolFactory`).
pub trait Factory {
    /// A protocol for a new connection from or to `peer`; `None` refuses it
    /// (the connection is closed).
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>>;
    /// Called when the first port or connector starts using this factory.
    fn start_factory(&mut self) {}
    /// Called when the last port or connector stops using it.
    fn stop_factory(&mut self) {}
}

/// A factory for outgoing connections (Twisted's `ClientFactory`).
pub trait ClientFactory: Factory {
    /// A connection attempt started.
    fn started_connecting(&mut self, connector: &Connector) {
        let _ = connector;
    }
    /// A connection attempt failed. The connector may `connect()` again.
    fn client_connection_failed(&mut self, connector: &Connector, reason: NetError) {
        let _ = (connector, reason);
    }
    /// An established connection ended. The connector may `connect()` again.
    fn client_connection_lost(&mut self, connector: &Connector, reason: &DisconnectReason) {
        let _ = (connector, reason);
    }
}

/// A factory shared by ports or connectors, counting its users so that
/// `start_factory` and `stop_factory` run once each way (Twisted's `doStart` and
/// `doStop`).
pub struct FactoryRef<F: ?Sized> {
    users: Rc<Cell<usize>>,
    factory: Rc<RefCell<F>>,
}

impl<F: ?Sized> fmt::Debug for FactoryRef<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactoryRef").field("users", &self.users.get()).finish()
    }
}

impl<F: ?Sized> Clone for FactoryRef<F> {
    fn clone(&self) -> Self {
        FactoryRef { users: Rc::clone(&self.users), factory: Rc::clone(&self.factory) }
    }
}

impl<F: Factory + 'static> FactoryRef<F> {
    /// Wraps a factory so it can be shared.
    pub fn new(factory: F) -> FactoryRef<F> {
        FactoryRef { users: Rc::new(Cell::new(0)), factory: Rc::new(RefCell::new(factory)) }
    }

    /// The factory, to inspect or change it.
    pub fn get(&self) -> &Rc<RefCell<F>> {
        &self.factory
    }

    pub(crate) fn erase(self) -> FactoryRef<dyn Factory> {
        FactoryRef { users: self.users, factory: self.factory }
    }

    pub(crate) fn erase_client(self) -> FactoryRef<dyn ClientFactory>
    where
        F: ClientFactory,
    {
        FactoryRef { users: self.users, factory: self.factory }
    }
}

impl<F: Factory + 'static> From<F> for FactoryRef<F> {
    fn from(factory: F) -> Self {
        FactoryRef::new(factory)
    }
}

impl<F: ?Sized + Factory> FactoryRef<F> {
    /// Builds a protocol for `peer` (as a port or connector would).
    pub fn build_protocol(&self, peer: &Address) -> Option<Box<dyn Protocol>> {
        self.build(peer)
    }

    /// The shared factory, whatever its type.
    pub fn get_dyn(&self) -> &Rc<RefCell<F>> {
        &self.factory
    }

    /// Counts a new user; the first one starts the factory (Twisted's
    /// `doStart`). A factory running further up the stack is started once it
    /// has returned, on a later pass of `reactor`.
    pub(crate) fn do_start(&self, reactor: Option<&crate::Reactor>)
    where
        F: 'static,
    {
        self.users.set(self.users.get() + 1);
        if self.users.get() == 1 {
            self.call_when_free(reactor, "start_factory", |f| f.start_factory(), None);
        }
    }

    /// Counts a user leaving; the last one stops the factory (Twisted's
    /// `doStop`), then `then` runs — even if `stop_factory` panicked.
    pub(crate) fn do_stop(&self, reactor: Option<&crate::Reactor>, then: Option<Box<dyn FnOnce()>>)
    where
        F: 'static,
    {
        let users = self.users.get().saturating_sub(1);
        self.users.set(users);
        if users == 0 {
            self.call_when_free(reactor, "stop_factory", |f| f.stop_factory(), then);
        } else if let Some(then) = then {
            then();
        }
    }

    /// Runs `f` on the factory now, or — while it runs further up the stack —
    /// on a later pass; a panic is logged. Then runs `then`.
    fn call_when_free(
        &self,
        reactor: Option<&crate::Reactor>,
        what: &'static str,
        f: fn(&mut F),
        then: Option<Box<dyn FnOnce()>>,
    ) where
        F: 'static,
    {
        let Ok(mut factory) = self.factory.try_borrow_mut() else {
            match reactor {
                Some(reactor) => {
                    let this = self.clone();
                    reactor.call_later(std::time::Duration::ZERO, move |r| {
                        this.call_when_free(Some(r), what, f, then)
                    });
                }
                None => {
                    tracing::warn!("{what} skipped: the factory is running and no reactor can retry it");
                    if let Some(then) = then {
                        then();
                    }
                }
            }
            return;
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut factory)));
        drop(factory);
        if let Err(payload) = result {
            tracing::error!(panic = %crate::reactor::panic_message(&*payload), "{what} panicked");
        }
        if let Some(then) = then {
            then();
        }
    }

    pub(crate) fn build(&self, peer: &Address) -> Option<Box<dyn Protocol>> {
        match self.factory.try_borrow_mut() {
            Ok(mut f) => f.build_protocol(peer),
            Err(_) => None,
        }
    }
}

/// A [`Factory`] from a closure that builds each protocol.
///
/// ```
/// use torque::net::{Protocol, Transport, factory_fn};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
///         t.write(data);
///     }
/// }
/// let factory = factory_fn(|_peer| Echo);
/// ```
pub fn factory_fn<P, F>(build: F) -> FnFactory<F>
where
    P: Protocol + 'static,
    F: FnMut(&Address) -> P,
{
    FnFactory { build }
}

/// The factory [`factory_fn`] returns.
pub struct FnFactory<F> {
    build: F,
}

impl<F> fmt::Debug for FnFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnFactory")
    }
}

impl<P, F> Factory for FnFactory<F>
where
    P: Protocol + 'static,
    F: FnMut(&Address) -> P,
{
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new((self.build)(peer)))
    }
}

impl<P, F> ClientFactory for FnFactory<F>
where
    P: Protocol + 'static,
    F: FnMut(&Address) -> P,
{
}
