//! The listen and connect calls as a trait (Twisted's `IReactorTCP` and
//! `IReactorUNIX`), so code that opens connections can be tested with
//! [`RecordingReactor`](crate::testing::RecordingReactor) instead of sockets.

use super::{ClientFactory, ConnectOptions, Connector, Factory, FactoryRef, ListenOptions, NetError};
use crate::Reactor;

/// Something that listens and connects: the real [`Reactor`], or a
/// [`RecordingReactor`](crate::testing::RecordingReactor) in tests. Write code
/// that opens connections against `impl StreamReactor` to test it without sockets.
pub trait StreamReactor {
    /// What a listen call returns.
    type Port;

    /// Listens for TCP connections (see [`Reactor::listen_tcp`]).
    fn listen_tcp_with<F: Factory + 'static>(
        &self,
        port: u16,
        factory: FactoryRef<F>,
        options: ListenOptions,
    ) -> Result<Self::Port, NetError>;

    /// Connects over TCP (see [`Reactor::connect_tcp`]).
    fn connect_tcp_with<F: ClientFactory + 'static>(
        &self,
        host: &str,
        port: u16,
        factory: FactoryRef<F>,
        options: ConnectOptions,
    ) -> Connector;
}

impl StreamReactor for Reactor {
    type Port = super::ListeningPort;

    fn listen_tcp_with<F: Factory + 'static>(
        &self,
        port: u16,
        factory: FactoryRef<F>,
        options: ListenOptions,
    ) -> Result<Self::Port, NetError> {
        self.listen_tcp(port, factory, options)
    }

    fn connect_tcp_with<F: ClientFactory + 'static>(
        &self,
        host: &str,
        port: u16,
        factory: FactoryRef<F>,
        options: ConnectOptions,
    ) -> Connector {
        self.connect_tcp(host, port, factory, options)
    }
}
