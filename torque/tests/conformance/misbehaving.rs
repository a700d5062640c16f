//! Callbacks that panic or run nested passes: a panicking callback closes its
//! connection with the panic as the reason (whatever else it did first), and
//! nothing the kernel handed over is lost because its receiver was busy.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use torque::net::{
    Address, ClientFactory, ConnectOptions, Connector, DatagramPort, DatagramProtocol, DisconnectReason,
    Factory, ListenOptions, NetError, Protocol, Transport, UdpOptions,
};
#[cfg(unix)]
use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport, Reaping};
use torque::{BackendKind, Reactor};

use crate::netkit::{Recorder, server_with};
use crate::support::{iterate_until, reactor};

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Reads until the server closes; returns what arrived.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

/// It used to leave the connection open forever, with no `connection_lost`.
fn a_panic_in_read_connection_lost_closes_with_the_panic(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, seen) = Recorder::new();
    server.on_eof = Some(Box::new(|_| panic!("read_connection_lost on purpose")));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let mut client = connect(number);
    client.shutdown(Shutdown::Write).unwrap();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(seen.lost_kind().unwrap(), "panicked: read_connection_lost on purpose");
    assert_eq!(seen.lost_count.get(), 1);
    assert!(read_to_close(&mut client).is_empty(), "the client sees the close");
}

/// Half-closes after its first data, and panics when told the write side is shut.
struct PanicsOnWriteLost;

impl Protocol for PanicsOnWriteLost {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
        transport.lose_write_connection();
    }
    fn read_connection_lost(&mut self, _transport: &Transport) {}
    fn write_connection_lost(&mut self, _transport: &Transport) {
        panic!("write_connection_lost on purpose");
    }
}

fn a_panic_in_write_connection_lost_closes_with_the_panic(kind: BackendKind) {
    let r = reactor(kind);
    let (recorder, seen) = Recorder::new();
    let (_port, number) =
        server_with(&r, vec![Box::new(Panicking { inner: PanicsOnWriteLost, seen: recorder })]);
    let mut client = connect(number);
    client.write_all(b"ping").unwrap();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(seen.lost_kind().unwrap(), "panicked: write_connection_lost on purpose");
    assert_eq!(read_to_close(&mut client), b"ping", "written before the half-close, then closed");
}

/// A panic after `abort_connection` in the same callback: the reason is the
/// panic, not `Aborted` (which would hide the bug).
fn a_panic_after_abort_in_the_same_callback_is_the_reason(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, seen) = Recorder::new();
    server.on_data = Some(Box::new(|t, _| {
        t.abort_connection();
        panic!("after abort on purpose");
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let mut client = connect(number);
    client.write_all(b"x").unwrap();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(seen.lost_kind().unwrap(), "panicked: after abort on purpose");
    let _ = read_to_close(&mut client);
}

/// A protocol runs a nested pass from `connection_made` while the client's
/// bytes are already waiting: the nested pass must not read them for a
/// protocol that cannot take them (they used to be dropped), and they arrive
/// whole and in order once `connection_made` has returned.
fn bytes_waiting_during_a_nested_pass_in_connection_made_arrive_in_order(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, seen) = Recorder::new();
    let nested = r.clone();
    server.on_made = Some(Box::new(move |_| {
        for _ in 0..10 {
            nested.iterate(Duration::from_millis(2)).unwrap();
        }
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let mut client = connect(number);
    client.write_all(b"hello, ").unwrap();
    client.write_all(b"world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(&*seen.data.borrow(), b"hello, world");
    assert!(seen.eof.get(), "the end of file came after the data");
    assert_eq!(seen.lost_kind().unwrap(), "done");
}

/// Wraps a protocol and records its `connection_lost` through a [`Recorder`].
struct Panicking<P> {
    inner: P,
    seen: Recorder,
}

impl<P: Protocol> Protocol for Panicking<P> {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        self.inner.read_connection_lost(transport);
    }
    fn write_connection_lost(&mut self, transport: &Transport) {
        self.inner.write_connection_lost(transport);
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.seen.connection_lost(reason);
    }
}

/// Panics where the process protocol says so; records what it saw.
#[cfg(unix)]
#[derive(Default)]
struct PanickyChild {
    panic_in: &'static str,
    seen: Rc<RefCell<Vec<String>>>,
}

#[cfg(unix)]
impl ProcessProtocol for PanickyChild {
    fn child_data_received(&mut self, _p: &ProcessTransport, fd: i32, data: &[u8]) {
        self.seen.borrow_mut().push(format!("data {fd}: {}", String::from_utf8_lossy(data).trim()));
        if self.panic_in == "child_data_received" {
            panic!("child_data_received on purpose");
        }
    }
    fn child_connection_lost(&mut self, _p: &ProcessTransport, fd: i32) {
        self.seen.borrow_mut().push(format!("closed {fd}"));
    }
    fn process_exited(&mut self, exit: ProcessExit) {
        self.seen.borrow_mut().push(format!("exited {}", exit.code().unwrap_or(-1)));
        if self.panic_in == "process_exited" {
            panic!("process_exited on purpose");
        }
    }
    fn process_ended(&mut self, _exit: ProcessExit) {
        self.seen.borrow_mut().push("ended".to_owned());
        if self.panic_in == "process_ended" {
            panic!("process_ended on purpose");
        }
    }
}

/// A process protocol that panics in `process_exited` or `process_ended`,
/// with the child reaped either way (pidfd or the backend's watch, and
/// SIGCHLD): the panic is logged, never escapes `run()`/`iterate()`, and the
/// child still leaves the reap table (it used to escape on the SIGCHLD path).
#[cfg(unix)]
fn a_panicking_process_protocol_never_escapes_the_loop(kind: BackendKind) {
    for reaping in [Reaping::Auto, Reaping::Sigchld] {
        for panic_in in ["process_exited", "process_ended"] {
            let r = reactor(kind);
            let seen = Rc::new(RefCell::new(Vec::new()));
            let protocol = PanickyChild { panic_in, seen: seen.clone() };
            let options = ProcessOptions { reaping, ..ProcessOptions::default() };
            let child = r.spawn_process(protocol, "true", &[], options).unwrap();
            iterate_until(&r, || seen.borrow().iter().any(|e| e == "ended"));
            assert_eq!(child.exit_status(), Some(ProcessExit::Done), "{reaping:?} {panic_in}");
            let events = seen.borrow().clone();
            assert!(events.contains(&"exited 0".to_owned()), "{events:?}");
            assert_eq!(events.last().map(String::as_str), Some("ended"), "{events:?}");
            // Nothing is watched for it any more: the loop waits quietly.
            crate::support::spin(&r, 3);
            assert_eq!(r.registered_fds(), 0, "{reaping:?} {panic_in}");
        }
    }
}

/// A panic in `child_data_received` closes that pipe (as an exception in
/// Twisted's `childDataReceived` does); the child is still reaped and ended.
#[cfg(unix)]
fn a_panic_in_child_data_received_closes_that_pipe(kind: BackendKind) {
    let r = reactor(kind);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let protocol = PanickyChild { panic_in: "child_data_received", seen: seen.clone() };
    let child = r.spawn_process(protocol, "echo", &["hello"], ProcessOptions::default()).unwrap();
    iterate_until(&r, || seen.borrow().iter().any(|e| e == "ended"));
    let events = seen.borrow().clone();
    assert_eq!(events.iter().filter(|e| e.starts_with("data 1")).count(), 1, "{events:?}");
    assert!(events.contains(&"closed 1".to_owned()), "{events:?}");
    assert_eq!(child.exit_status().and_then(|e| e.code()), Some(0));
}

/// Panics on the first datagram, records the others.
struct PanicsOnFirst {
    got: Rc<RefCell<Vec<Vec<u8>>>>,
    nested: Option<Reactor>,
}

impl DatagramProtocol for PanicsOnFirst {
    fn datagram_received(&mut self, _port: &DatagramPort, data: &[u8], _from: &Address) {
        if data == b"bad" {
            panic!("datagram_received on purpose");
        }
        if let Some(r) = self.nested.take() {
            // A nested pass while the next datagram waits: it must not be read
            // for this busy protocol (it used to be dropped).
            for _ in 0..5 {
                r.iterate(Duration::from_millis(2)).unwrap();
            }
        }
        self.got.borrow_mut().push(data.to_vec());
    }
}

/// One bad datagram (its handler panics) must not take a UDP server down, and
/// datagrams that arrive during a nested pass run by the handler are kept, in
/// order.
fn a_udp_port_survives_a_panic_and_keeps_datagrams_across_a_nested_pass(kind: BackendKind) {
    let r = reactor(kind);
    let got = Rc::new(RefCell::new(Vec::new()));
    let protocol = PanicsOnFirst { got: got.clone(), nested: Some(r.clone()) };
    let options = UdpOptions { interface: [127, 0, 0, 1].into(), ..UdpOptions::default() };
    let port = r.listen_udp(0, protocol, options).unwrap();
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port.address().port().unwrap()));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"bad", to).unwrap();
    // The bad datagram is handled (and its panic caught) before the others.
    crate::support::spin(&r, 3);
    for message in [&b"one"[..], b"two", b"three"] {
        client.send_to(message, to).unwrap();
    }
    iterate_until(&r, || got.borrow().len() >= 3);
    assert_eq!(*got.borrow(), [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    assert!(port.is_listening());
}

/// A client factory that counts its starts and stops, and connects again
/// from its failure callback `retries` times.
struct Counting {
    starts: Rc<Cell<u32>>,
    stops: Rc<Cell<u32>>,
    retries: u32,
    failures: Rc<Cell<u32>>,
}

impl Factory for Counting {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        None
    }
    fn start_factory(&mut self) {
        self.starts.set(self.starts.get() + 1);
    }
    fn stop_factory(&mut self) {
        self.stops.set(self.stops.get() + 1);
    }
}

impl ClientFactory for Counting {
    fn client_connection_failed(&mut self, connector: &Connector, _reason: NetError) {
        self.failures.set(self.failures.get() + 1);
        if self.retries > 0 {
            self.retries -= 1;
            connector.connect();
        }
    }
}

/// A refused port: bound, never listening (held so no one else takes it).
fn refused_port() -> (torque::fd::OwnedFd, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (torque::fd::OwnedFd::from(socket), port)
}

/// A client factory is started once and stopped once per connector, however
/// often it connects again from its own failure callback (its stop used to be
/// skipped, the factory being borrowed, and starts counted twice).
fn a_client_factory_is_started_and_stopped_once_across_reconnections(kind: BackendKind) {
    for retries in [0, 3] {
        let r = reactor(kind);
        let (_held, port) = refused_port();
        let (starts, stops, failures) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let factory =
            Counting { starts: starts.clone(), stops: stops.clone(), retries, failures: failures.clone() };
        r.connect_tcp("127.0.0.1", port, factory, ConnectOptions::default());
        iterate_until(&r, || failures.get() == retries + 1 && stops.get() > 0);
        crate::support::spin(&r, 3);
        assert_eq!((starts.get(), stops.get()), (1, 1), "with {retries} reconnections");
    }
}

/// A server factory whose stop_factory panics.
struct StopPanics;

impl Factory for StopPanics {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        None
    }
    fn stop_factory(&mut self) {
        panic!("stop_factory on purpose");
    }
}

/// `stop_listening`'s Deferred fires even when `stop_factory` panics.
fn stop_listening_fires_even_if_stop_factory_panics(kind: BackendKind) {
    let r = reactor(kind);
    let port = r.listen_tcp(0, StopPanics, ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    let _done = port.stop_listening().map(move |()| s.set(true));
    iterate_until(&r, || stopped.get());
}

crate::cases! {
    [Tcp] driven {
        a_client_factory_is_started_and_stopped_once_across_reconnections,
        stop_listening_fires_even_if_stop_factory_panics,
    }
    [Processes] driven {
        #[cfg(unix)] a_panicking_process_protocol_never_escapes_the_loop,
        #[cfg(unix)] a_panic_in_child_data_received_closes_that_pipe,
    }
    [Udp] driven {
        a_udp_port_survives_a_panic_and_keeps_datagrams_across_a_nested_pass,
    }
    [Tcp] driven {
        a_panic_in_read_connection_lost_closes_with_the_panic,
        a_panic_in_write_connection_lost_closes_with_the_panic,
        a_panic_after_abort_in_the_same_callback_is_the_reason,
        bytes_waiting_during_a_nested_pass_in_connection_made_arrive_in_order,
    }
}
