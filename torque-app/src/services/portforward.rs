//! Twisted's `portforward`: each accepted connection is relayed to a target.
//!
//! Backpressure both ways: each side's transport is registered as the streaming
//! producer of the other's write buffer, so a slow reader on one side pauses
//! reading on the other. A half-close on either side is passed through
//! (`lose_write_connection` on the other), and either side closing closes the
//! other once its buffered bytes are sent.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use torque::net::{
    Address, ClientFactory, ConnectOptions, Connector, DisconnectReason, Factory, NetError, Protocol,
    Transport,
};
use torque::{Reactor, WeakReactor};

use super::PauseReading;

/// Where to forward to: a host name or address and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses `host:port` or `[v6addr]:port`.
    fn from_str(text: &str) -> Result<Target, String> {
        let (host, port) =
            text.rsplit_once(':').ok_or_else(|| format!("expected HOST:PORT, got {text:?}"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(format!("no host in {text:?}"));
        }
        let port = port.parse().map_err(|_| format!("bad port {port:?} in {text:?}"))?;
        Ok(Target { host: host.to_owned(), port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The two ends of one relayed connection.
#[derive(Default)]
struct Relay {
    inbound: Option<Transport>,
    outbound: Option<Transport>,
    connector: Option<Connector>,
    /// The inbound side closed before the outbound one connected.
    abandoned: bool,
    /// The inbound side sent its end of file before the outbound one connected.
    inbound_eof: bool,
}

type RelayRef = Rc<RefCell<Relay>>;

/// Accepts connections and relays each to the target.
pub struct PortForward {
    reactor: WeakReactor,
    target: Target,
    connect_timeout: Duration,
}

impl fmt::Debug for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortForward").field("target", &self.target.to_string()).finish()
    }
}

impl PortForward {
    /// Forwards to `target`, giving up on a connection attempt after `connect_timeout`.
    pub fn new(reactor: &Reactor, target: Target, connect_timeout: Duration) -> PortForward {
        PortForward { reactor: reactor.downgrade(), target, connect_timeout }
    }
}

impl Factory for PortForward {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        let reactor = self.reactor.upgrade()?;
        Some(Box::new(Inbound {
            reactor,
            target: self.target.clone(),
            timeout: self.connect_timeout,
            relay: Rc::new(RefCell::new(Relay::default())),
        }))
    }
}

/// The accepted side.
struct Inbound {
    reactor: Reactor,
    target: Target,
    timeout: Duration,
    relay: RelayRef,
}

impl Protocol for Inbound {
    fn connection_made(&mut self, transport: &Transport) {
        // Nothing is read until the other side is there to take it.
        transport.pause_producing();
        self.relay.borrow_mut().inbound = Some(transport.clone());
        let factory = OutboundFactory { relay: Rc::clone(&self.relay), target: self.target.clone() };
        let options = ConnectOptions { timeout: Some(self.timeout), ..ConnectOptions::default() };
        let connector = self.reactor.connect_tcp(&self.target.host, self.target.port, factory, options);
        self.relay.borrow_mut().connector = Some(connector);
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        let outbound = self.relay.borrow().outbound.clone();
        if let Some(outbound) = outbound {
            outbound.write(data);
        }
    }

    fn read_connection_lost(&mut self, _transport: &Transport) {
        let outbound = {
            let mut relay = self.relay.borrow_mut();
            relay.inbound_eof = true;
            relay.outbound.clone()
        };
        if let Some(outbound) = outbound {
            // The producer would hold the half-close back; the inbound side has
            // nothing more to send anyway.
            outbound.unregister_producer();
            outbound.lose_write_connection();
        }
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        let (outbound, connector) = {
            let mut relay = self.relay.borrow_mut();
            relay.inbound = None;
            relay.abandoned = true;
            (relay.outbound.clone(), relay.connector.take())
        };
        match outbound {
            Some(outbound) => {
                outbound.unregister_producer();
                outbound.lose_connection();
            }
            None => {
                if let Some(connector) = connector {
                    connector.stop_connecting();
                }
            }
        }
    }
}

struct OutboundFactory {
    relay: RelayRef,
    target: Target,
}

impl Factory for OutboundFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        if self.relay.borrow().abandoned {
            return None;
        }
        Some(Box::new(Outbound { relay: Rc::clone(&self.relay) }))
    }
}

impl ClientFactory for OutboundFactory {
    fn client_connection_failed(&mut self, _connector: &Connector, reason: NetError) {
        tracing::warn!(target = %self.target, error = %reason, "cannot reach the forwarding target");
        let inbound = self.relay.borrow_mut().inbound.take();
        if let Some(inbound) = inbound {
            inbound.abort_connection();
        }
    }
}

/// The side connected to the target.
struct Outbound {
    relay: RelayRef,
}

impl Protocol for Outbound {
    fn connection_made(&mut self, transport: &Transport) {
        let (inbound, inbound_eof) = {
            let mut relay = self.relay.borrow_mut();
            relay.outbound = Some(transport.clone());
            (relay.inbound.clone(), relay.inbound_eof)
        };
        let Some(inbound) = inbound else {
            transport.lose_connection();
            return;
        };
        // Each side pauses reading the other while its own buffer is full.
        inbound
            .register_producer(Rc::new(RefCell::new(PauseReading(transport.clone()))), true)
            .expect("the relay registers once, when the outbound side connects");
        if inbound_eof {
            // The client already half-closed: pass it on now.
            transport.lose_write_connection();
        } else {
            transport
                .register_producer(Rc::new(RefCell::new(PauseReading(inbound.clone()))), true)
                .expect("a new connection has no producer");
            inbound.resume_producing();
        }
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        let inbound = self.relay.borrow().inbound.clone();
        if let Some(inbound) = inbound {
            inbound.write(data);
        }
    }

    fn read_connection_lost(&mut self, _transport: &Transport) {
        let inbound = self.relay.borrow().inbound.clone();
        if let Some(inbound) = inbound {
            inbound.unregister_producer();
            inbound.lose_write_connection();
        }
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        let inbound = {
            let mut relay = self.relay.borrow_mut();
            relay.outbound = None;
            relay.inbound.clone()
        };
        if let Some(inbound) = inbound {
            inbound.unregister_producer();
            inbound.lose_connection();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("localhost:80".parse(), Ok(Target { host: "localhost".into(), port: 80 }));
        assert_eq!("[::1]:8080".parse(), Ok(Target { host: "::1".into(), port: 8080 }));
        assert!("nohost".parse::<Target>().is_err());
        assert!(":80".parse::<Target>().is_err());
        assert!("h:99999".parse::<Target>().is_err());
        assert_eq!(Target { host: "::1".into(), port: 1 }.to_string(), "[::1]:1");
    }
}
