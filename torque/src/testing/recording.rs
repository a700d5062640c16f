//! A reactor stand-in that records listen and connect calls (Twisted's
//! `MemoryReactor`).

use std::cell::RefCell;
use std::fmt;

use super::MemoryTransport;
use crate::Reactor;
use crate::net::{
    Address, ClientFactory, ConnectOptions, Connector, Factory, FactoryRef, ListenOptions, NetError,
    StreamReactor, Target,
};

/// A recorded `listen_tcp` call.
pub struct RecordedListen {
    /// The port asked for.
    pub port: u16,
    /// The options given.
    pub options: ListenOptions,
    factory: FactoryRef<dyn Factory>,
    reactor: Reactor,
}

impl fmt::Debug for RecordedListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedListen").field("port", &self.port).field("options", &self.options).finish()
    }
}

impl RecordedListen {
    /// Simulates a client connecting from `peer`: the factory builds a protocol,
    /// which is connected to a [`MemoryTransport`]. `None` if the factory refused.
    pub fn accept(&self, peer: &str) -> Option<MemoryTransport> {
        let protocol = self.factory.build_protocol(&Address::Memory(peer.to_owned()))?;
        Some(MemoryTransport::connect_boxed(&self.reactor, protocol, "server", peer))
    }
}

/// A recorded `connect_tcp` call.
pub struct RecordedConnect {
    /// The host asked for.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// The options given.
    pub options: ConnectOptions,
    connector: Connector,
    reactor: Reactor,
}

impl fmt::Debug for RecordedConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedConnect").field("host", &self.host).field("port", &self.port).finish()
    }
}

impl RecordedConnect {
    /// The connector handed to the code under test.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Simulates the connection succeeding: the factory builds a protocol,
    /// connected to a [`MemoryTransport`] the test plays the server through.
    pub fn succeed(&self) -> Option<MemoryTransport> {
        let peer = Address::Memory(format!("{}:{}", self.host, self.port));
        let protocol = self.connector.factory().build_protocol(&peer)?;
        // When the connection ends, the factory hears it, as from a real connector.
        let connector = self.connector.clone();
        let on_closed: crate::net::stream::OnClosed = Box::new(move |_, reason| {
            if let Ok(mut factory) = connector.factory().get_dyn().try_borrow_mut() {
                factory.client_connection_lost(&connector, reason);
            }
        });
        Some(MemoryTransport::connect_with_notice(
            &self.reactor,
            protocol,
            "client",
            &peer.to_string(),
            Some(on_closed),
        ))
    }

    /// Simulates the connection failing with `reason`: the factory's
    /// `client_connection_failed` runs now.
    pub fn fail(&self, reason: NetError) {
        if let Ok(mut factory) = self.connector.factory().get_dyn().try_borrow_mut() {
            factory.client_connection_failed(&self.connector, reason);
        }
    }
}

/// Records `listen_tcp` and `connect_tcp` calls instead of opening sockets, so a
/// test can inspect them and play the other side with memory transports. Timers
/// and everything else run on the real reactor it wraps.
///
/// ```
/// use torque::net::{ConnectOptions, Protocol, StreamReactor, Transport, factory_fn, FactoryRef};
/// use torque::testing::RecordingReactor;
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &Transport) {
///         t.write(b"HELLO\r\n");
///     }
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
///
/// // The code under test, written against the trait.
/// fn greet(r: &impl StreamReactor) {
///     r.connect_tcp_with("example.org", 25, FactoryRef::new(factory_fn(|_| Hello)), ConnectOptions::default());
/// }
///
/// let recording = RecordingReactor::new(torque::Reactor::new()?);
/// greet(&recording);
/// let call = &recording.tcp_clients()[0];
/// assert_eq!((call.host.as_str(), call.port), ("example.org", 25));
/// let server_side = call.succeed().unwrap();
/// assert_eq!(server_side.take_written(), b"HELLO\r\n");
/// # Ok::<(), torque::ReactorError>(())
/// ```
pub struct RecordingReactor {
    reactor: Reactor,
    listens: RefCell<Vec<std::rc::Rc<RecordedListen>>>,
    connects: RefCell<Vec<std::rc::Rc<RecordedConnect>>>,
}

impl fmt::Debug for RecordingReactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingReactor")
            .field("listens", &self.listens.borrow().len())
            .field("connects", &self.connects.borrow().len())
            .finish()
    }
}

impl RecordingReactor {
    /// Records calls; `reactor` runs timers and memory transports.
    pub fn new(reactor: Reactor) -> RecordingReactor {
        RecordingReactor { reactor, listens: RefCell::default(), connects: RefCell::default() }
    }

    /// The wrapped reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// The `listen_tcp` calls so far.
    pub fn tcp_servers(&self) -> Vec<std::rc::Rc<RecordedListen>> {
        self.listens.borrow().clone()
    }

    /// The `connect_tcp` calls so far.
    pub fn tcp_clients(&self) -> Vec<std::rc::Rc<RecordedConnect>> {
        self.connects.borrow().clone()
    }
}

impl StreamReactor for RecordingReactor {
    type Port = std::rc::Rc<RecordedListen>;

    fn listen_tcp_with<F: Factory + 'static>(
        &self,
        port: u16,
        factory: FactoryRef<F>,
        options: ListenOptions,
    ) -> Result<Self::Port, NetError> {
        let record = std::rc::Rc::new(RecordedListen {
            port,
            options,
            factory: factory.erase(),
            reactor: self.reactor.clone(),
        });
        self.listens.borrow_mut().push(std::rc::Rc::clone(&record));
        Ok(record)
    }

    fn connect_tcp_with<F: ClientFactory + 'static>(
        &self,
        host: &str,
        port: u16,
        factory: FactoryRef<F>,
        options: ConnectOptions,
    ) -> Connector {
        let target = Target::Tcp { host: host.to_owned(), port };
        let connector = Connector::detached(&self.reactor, target, factory.erase_client(), options.clone());
        self.connects.borrow_mut().push(std::rc::Rc::new(RecordedConnect {
            host: host.to_owned(),
            port,
            options,
            connector: connector.clone(),
            reactor: self.reactor.clone(),
        }));
        connector
    }
}
