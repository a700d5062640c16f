//! Protocols and factories for the stream tests: a recording protocol driven by
//! closures, an echo server, and a client factory that records outcomes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torque::Reactor;
use torque::net::{
    Address, ClientFactory, Connector, DisconnectReason, Factory, ListenOptions, ListeningPort, NetError,
    Protocol, Transport, factory_fn,
};

use crate::support::Log;

type DataFn = Box<dyn FnMut(&Transport, &[u8])>;
type TransportFn = Box<dyn FnMut(&Transport)>;

/// What a [`Recorder`] saw.
#[derive(Default)]
pub struct Seen {
    pub made: Cell<bool>,
    pub handshaken: Cell<bool>,
    pub data: RefCell<Vec<u8>>,
    pub eof: Cell<bool>,
    pub write_closed: Cell<bool>,
    pub lost: RefCell<Option<String>>,
    pub lost_count: Cell<u32>,
    pub transport: RefCell<Option<Transport>>,
    pub fds: RefCell<Vec<torque::fd::OwnedFd>>,
}

impl Seen {
    pub fn lost_kind(&self) -> Option<String> {
        self.lost.borrow().clone()
    }
    pub fn data_len(&self) -> usize {
        self.data.borrow().len()
    }
    pub fn transport(&self) -> Transport {
        self.transport.borrow().clone().expect("connected")
    }
}

/// A protocol that records everything and runs optional hooks.
#[derive(Default)]
pub struct Recorder {
    pub seen: Rc<Seen>,
    pub on_made: Option<TransportFn>,
    pub on_data: Option<DataFn>,
    pub on_eof: Option<TransportFn>,
    pub on_write_closed: Option<TransportFn>,
    pub keep_data: bool,
}

impl Recorder {
    pub fn new() -> (Recorder, Rc<Seen>) {
        let seen = Rc::new(Seen::default());
        (Recorder { seen: seen.clone(), keep_data: true, ..Recorder::default() }, seen)
    }
}

pub fn reason_kind(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Done => "done".into(),
        DisconnectReason::Aborted => "aborted".into(),
        DisconnectReason::Lost(e) => format!("lost: {e}"),
        DisconnectReason::Tls(e) => format!("tls: {e:?}"),
        DisconnectReason::Panicked(message) => format!("panicked: {message}"),
        DisconnectReason::DescriptorsNotSent(n) => format!("unsent descriptors: {n}"),
        other => format!("other: {other}"),
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        self.seen.made.set(true);
        *self.seen.transport.borrow_mut() = Some(t.clone());
        if let Some(f) = self.on_made.as_mut() {
            f(t);
        }
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if self.keep_data {
            self.seen.data.borrow_mut().extend_from_slice(data);
        }
        if let Some(f) = self.on_data.as_mut() {
            f(t, data);
        }
    }
    fn handshake_completed(&mut self, _t: &Transport) {
        self.seen.handshaken.set(true);
    }
    fn read_connection_lost(&mut self, t: &Transport) {
        self.seen.eof.set(true);
        match self.on_eof.as_mut() {
            Some(f) => f(t),
            None => t.lose_connection(),
        }
    }
    fn file_descriptor_received(&mut self, _t: &Transport, fd: torque::fd::OwnedFd) {
        self.seen.fds.borrow_mut().push(fd);
    }
    fn write_connection_lost(&mut self, t: &Transport) {
        self.seen.write_closed.set(true);
        if let Some(f) = self.on_write_closed.as_mut() {
            f(t);
        }
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.seen.lost_count.set(self.seen.lost_count.get() + 1);
        *self.seen.lost.borrow_mut() = Some(reason_kind(&reason));
        self.seen.transport.borrow_mut().take();
    }
}

/// Echoes everything back.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// A factory handing out one prepared protocol per connection, in order.
pub struct Queue {
    pub protocols: Vec<Box<dyn Protocol>>,
    pub outcomes: Log,
}

impl Queue {
    pub fn of(protocols: Vec<Box<dyn Protocol>>) -> (Queue, Log) {
        let outcomes = Log::default();
        (Queue { protocols, outcomes: outcomes.clone() }, outcomes)
    }
    pub fn one(protocol: impl Protocol + 'static) -> (Queue, Log) {
        Queue::of(vec![Box::new(protocol)])
    }
}

impl Factory for Queue {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        if self.protocols.is_empty() { None } else { Some(self.protocols.remove(0)) }
    }
}

impl ClientFactory for Queue {
    fn client_connection_failed(&mut self, _c: &Connector, reason: NetError) {
        self.outcomes.push(format!("failed: {reason}"));
        self.outcomes.push(match reason {
            NetError::ConnectionRefused { .. } => "refused".to_string(),
            NetError::Timeout { .. } => "timeout".to_string(),
            NetError::Cancelled => "cancelled".to_string(),
            NetError::DnsLookup { .. } => "dns".to_string(),
            NetError::Reactor(_) => "reactor".to_string(),
            _ => "other".to_string(),
        });
    }
    fn client_connection_lost(&mut self, _c: &Connector, reason: &DisconnectReason) {
        self.outcomes.push(format!("lost: {}", reason_kind(reason)));
    }
}

/// An echo server on 127.0.0.1 with an ephemeral port.
pub fn echo_server(r: &Reactor) -> (ListeningPort, u16) {
    // A deep backlog: some tests open a thousand connections at once.
    let options = || ListenOptions { backlog: 1024, ..ListenOptions::interface([127, 0, 0, 1].into()) };
    // A backend with an fd limit (select) refuses a socket numbered past it
    // while cases beside this one hold the low numbers: wait (bounded) for
    // room, as `support::reactor` does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        match r.listen_tcp(0, factory_fn(|_| Echo), options()) {
            Ok(port) => break port,
            Err(torque::net::NetError::Reactor(torque::ReactorError::Register { .. }))
                if r.backend().fd_limit.is_some() && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("listen: {e:?}"),
        }
    };
    let number = port.address().port().unwrap();
    (port, number)
}

/// A server on 127.0.0.1 whose connections get the given protocols in order.
pub fn server_with(r: &Reactor, protocols: Vec<Box<dyn Protocol>>) -> (ListeningPort, u16) {
    let (factory, _) = Queue::of(protocols);
    let port = r.listen_tcp(0, factory, ListenOptions::interface([127, 0, 0, 1].into())).expect("listen");
    let number = port.address().port().unwrap();
    (port, number)
}
