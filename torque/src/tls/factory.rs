//! Factories that start TLS on every connection they build, and the reactor's
//! `listen_tls` / `connect_tls`.

use std::fmt;

use super::{TlsClientConfig, TlsServerConfig};
use crate::Reactor;
use crate::net::wrap::Wrapper;
use crate::net::{
    Address, ClientFactory, ConnectOptions, Connector, DisconnectReason, Factory, FactoryRef, ListenOptions,
    ListeningPort, NetError, Protocol, Transport,
};

/// Which side of TLS a connection starts.
#[derive(Clone)]
enum Start {
    Server(TlsServerConfig),
    Client(TlsClientConfig, String),
}

/// Starts TLS in `connection_made`, then passes every event to the protocol.
struct TlsStarter {
    start: Start,
    inner: Box<dyn Protocol>,
}

impl Wrapper for TlsStarter {
    fn inner(&mut self) -> &mut dyn Protocol {
        self.inner.as_mut()
    }
    fn connection_made(&mut self, transport: &Transport) {
        let started = match &self.start {
            Start::Server(config) => transport.start_tls_server(config),
            Start::Client(config, name) => transport.start_tls_client(config, name),
        };
        if let Err(e) = started {
            // Never talk in clear on a connection meant to be private.
            tracing::warn!(error = %e, "cannot start TLS; closing the connection");
            transport.abort_connection();
        }
        self.inner.connection_made(transport);
    }
}

/// Wraps a factory so every connection it serves speaks TLS as the server
/// (Twisted's `TLSMemoryBIOFactory`). Use it with any listener: `listen_unix`,
/// adopted sockets, or `MemoryTransport` in tests.
pub struct TlsServerFactory {
    inner: FactoryRef<dyn Factory>,
    config: TlsServerConfig,
}

impl fmt::Debug for TlsServerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerFactory").finish_non_exhaustive()
    }
}

impl TlsServerFactory {
    /// Serves `factory`'s protocols over TLS with `config`.
    pub fn new<F: Factory + 'static>(factory: impl Into<FactoryRef<F>>, config: &TlsServerConfig) -> Self {
        TlsServerFactory { inner: factory.into().erase(), config: config.clone() }
    }
}

impl Factory for TlsServerFactory {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let inner = self.inner.build(peer)?;
        Some(Box::new(TlsStarter { start: Start::Server(self.config.clone()), inner }))
    }
    fn start_factory(&mut self) {
        self.inner.do_start(None);
    }
    fn stop_factory(&mut self) {
        self.inner.do_stop(None, None);
    }
}

/// Wraps a client factory so every connection it makes speaks TLS as the client,
/// verifying the server for `server_name`.
pub struct TlsClientFactory {
    inner: FactoryRef<dyn ClientFactory>,
    config: TlsClientConfig,
    server_name: String,
}

impl fmt::Debug for TlsClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientFactory").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl TlsClientFactory {
    /// Connects `factory`'s protocols over TLS with `config`, expecting the
    /// server to prove it is `server_name`.
    pub fn new<F: ClientFactory + 'static>(
        factory: impl Into<FactoryRef<F>>,
        config: &TlsClientConfig,
        server_name: &str,
    ) -> Self {
        TlsClientFactory {
            inner: factory.into().erase_client(),
            config: config.clone(),
            server_name: server_name.to_owned(),
        }
    }
}

impl Factory for TlsClientFactory {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let inner = self.inner.build(peer)?;
        let start = Start::Client(self.config.clone(), self.server_name.clone());
        Some(Box::new(TlsStarter { start, inner }))
    }
    fn start_factory(&mut self) {
        self.inner.do_start(None);
    }
    fn stop_factory(&mut self) {
        self.inner.do_stop(None, None);
    }
}

impl ClientFactory for TlsClientFactory {
    fn started_connecting(&mut self, connector: &Connector) {
        if let Ok(mut inner) = self.inner.get_dyn().try_borrow_mut() {
            inner.started_connecting(connector);
        }
    }
    fn client_connection_failed(&mut self, connector: &Connector, reason: NetError) {
        if let Ok(mut inner) = self.inner.get_dyn().try_borrow_mut() {
            inner.client_connection_failed(connector, reason);
        }
    }
    fn client_connection_lost(&mut self, connector: &Connector, reason: &DisconnectReason) {
        if let Ok(mut inner) = self.inner.get_dyn().try_borrow_mut() {
            inner.client_connection_lost(connector, reason);
        }
    }
}

impl Reactor {
    /// Listens for TLS connections over TCP on `port` (Twisted's `listenSSL`):
    /// each connection runs a protocol from `factory` over TLS with `config`.
    pub fn listen_tls<F: Factory + 'static>(
        &self,
        port: u16,
        factory: impl Into<FactoryRef<F>>,
        options: ListenOptions,
        config: &TlsServerConfig,
    ) -> Result<ListeningPort, NetError> {
        self.listen_tcp(port, TlsServerFactory::new(factory, config), options)
    }

    /// Connects to `host:port` over TCP and starts TLS as the client, verifying
    /// the server's certificate for `host` (Twisted's `connectSSL`). A failed
    /// handshake reaches the protocol's `connection_lost` and the factory's
    /// `client_connection_lost` as [`DisconnectReason::Tls`].
    pub fn connect_tls<F: ClientFactory + 'static>(
        &self,
        host: &str,
        port: u16,
        factory: impl Into<FactoryRef<F>>,
        options: ConnectOptions,
        config: &TlsClientConfig,
    ) -> Connector {
        self.connect_tcp(host, port, TlsClientFactory::new(factory, config, host), options)
    }
}
