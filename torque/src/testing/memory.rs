//! In-memory transports: one end driven by the test, or two protocols joined.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::Reactor;
use crate::net::stream::MemoryPipe;
use crate::net::{Address, Protocol, Transport};

/// A protocol connected to the test instead of a socket (Twisted's
/// `StringTransport`): what it writes is recorded, and the test plays the peer:
/// sends data, closes or resets. Its transport behaves as a real one (buffering,
/// half-close, producers, `connection_lost` at the end of the pass).
pub struct MemoryTransport {
    reactor: Reactor,
    transport: Transport,
    pipe: Rc<MemoryPipe>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("written", &self.pipe.written.borrow().len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl MemoryTransport {
    /// Connects `protocol` (its `connection_made` runs now).
    pub fn connect(reactor: &Reactor, protocol: impl Protocol + 'static) -> MemoryTransport {
        MemoryTransport::connect_as(reactor, protocol, "local", "peer")
    }

    /// Like [`connect`](MemoryTransport::connect), naming the two ends.
    pub fn connect_as(
        reactor: &Reactor,
        protocol: impl Protocol + 'static,
        local: &str,
        peer: &str,
    ) -> MemoryTransport {
        MemoryTransport::connect_boxed(reactor, Box::new(protocol), local, peer)
    }

    /// Like [`connect_as`](MemoryTransport::connect_as), for a protocol a factory
    /// built.
    pub fn connect_boxed(
        reactor: &Reactor,
        protocol: Box<dyn Protocol>,
        local: &str,
        peer: &str,
    ) -> MemoryTransport {
        MemoryTransport::connect_with_notice(reactor, protocol, local, peer, None)
    }

    pub(crate) fn connect_with_notice(
        reactor: &Reactor,
        protocol: Box<dyn Protocol>,
        local: &str,
        peer: &str,
        on_closed: Option<crate::net::stream::OnClosed>,
    ) -> MemoryTransport {
        let (transport, pipe) = Transport::start_memory(
            reactor,
            protocol,
            Address::Memory(local.to_owned()),
            Address::Memory(peer.to_owned()),
            on_closed,
        );
        MemoryTransport { reactor: reactor.clone(), transport, pipe }
    }

    /// The protocol's transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The peer sends `data`: the protocol's `data_received` runs now (or when it
    /// resumes reading, if paused).
    pub fn receive(&self, data: &[u8]) {
        self.transport.receive_memory(data);
    }

    /// Everything the protocol wrote so far (kept).
    pub fn written(&self) -> Vec<u8> {
        self.pipe.written.borrow().clone()
    }

    /// Everything the protocol wrote since the last take, removed.
    pub fn take_written(&self) -> Vec<u8> {
        std::mem::take(&mut *self.pipe.written.borrow_mut())
    }

    /// The peer closes its writing side (end of file).
    pub fn peer_closes(&self) {
        self.transport.peer_eof_memory();
    }

    /// The peer resets the connection: `connection_lost` with a `Lost` reason.
    pub fn peer_aborts(&self) {
        self.transport.peer_reset_memory();
    }

    /// Whether the protocol shut down its writing side (`lose_write_connection`).
    pub fn write_shut(&self) -> bool {
        self.pipe.write_shut.get()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    /// Runs one reactor pass without waiting, so close notices and other
    /// end-of-pass work (and due timers) run.
    pub fn settle(&self) {
        let _ = self.reactor.iterate(Duration::ZERO);
    }
}

/// Two protocols joined in memory (Twisted's `iosim.connect`): nothing moves
/// until [`pump`](Loopback::pump), so tests control every step.
#[derive(Debug)]
pub struct Loopback {
    client: MemoryTransport,
    server: MemoryTransport,
}

impl Loopback {
    /// Connects `client` and `server`; both `connection_made`s run now.
    pub fn connect(
        reactor: &Reactor,
        client: impl Protocol + 'static,
        server: impl Protocol + 'static,
    ) -> Loopback {
        let server = MemoryTransport::connect_as(reactor, server, "server", "client");
        let client = MemoryTransport::connect_as(reactor, client, "client", "server");
        Loopback { client, server }
    }

    /// The client's end.
    pub fn client(&self) -> &MemoryTransport {
        &self.client
    }

    /// The server's end.
    pub fn server(&self) -> &MemoryTransport {
        &self.server
    }

    /// Moves written bytes across, and closes (a closed end reads as end of file
    /// to the other), until nothing changes; returns whether anything moved.
    pub fn pump(&self) -> bool {
        let mut moved_any = false;
        loop {
            let mut moved = false;
            for (from, to) in [(&self.client, &self.server), (&self.server, &self.client)] {
                let data = from.take_written();
                if !data.is_empty() {
                    to.receive(&data);
                    moved = true;
                }
                if (from.write_shut() || from.is_closed()) && !to.transport.conn_read_shut() {
                    to.peer_closes();
                    moved = true;
                }
            }
            // Close notices and other end-of-pass work happen between rounds.
            self.client.settle();
            if !moved {
                return moved_any;
            }
            moved_any = true;
        }
    }
}
