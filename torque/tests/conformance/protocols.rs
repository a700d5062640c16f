//! Helpers on top of the stream transports: lines, reconnection, endpoint strings,
//! socket adoption.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;
use torque::fd::OwnedFd;

use torque::BackendKind;
use torque::net::{
    ConnectOptions, FactoryRef, LineHandler, LineReceiver, ListenOptions, ReconnectingClientFactory,
    Transport, client_from_string, factory_fn, server_from_string,
};

use crate::netkit::{Echo, Queue, Recorder, echo_server};
use crate::support::{fake_reactor, iterate_until, reactor};

struct Shout {
    lines: Rc<RefCell<Vec<String>>>,
}

impl LineHandler for Shout {
    fn line_received(&mut self, t: &Transport, line: &[u8]) {
        let text = String::from_utf8_lossy(line).to_string();
        t.write(format!("{}\r\n", text.to_uppercase()).as_bytes());
        self.lines.borrow_mut().push(text);
    }
}

/// A LineReceiver server (lines of at most 64 bytes) that shouts each line back
/// and records it.
fn shout_server(r: &torque::Reactor) -> (torque::net::ListeningPort, Rc<RefCell<Vec<String>>>) {
    let lines = Rc::new(RefCell::new(Vec::new()));
    let l = lines.clone();
    let factory = factory_fn(move |_| LineReceiver::new(Shout { lines: l.clone() }).max_length(64));
    let port = r.listen_tcp(0, factory, ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    (port, lines)
}

fn a_line_receiver_splits_lines_and_drops_abusers(kind: BackendKind) {
    let r = reactor(kind);
    let (port, lines) = shout_server(&r);
    let number = port.address().port().unwrap();
    let (client, seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, ConnectOptions::default());
    iterate_until(&r, || seen.made.get());
    // Pieces sent on separate passes, so they arrive in separate reads and the
    // delimiter straddles two of them.
    for (piece, lines_by_now) in [(&b"first\r\nsec"[..], 1), (b"ond\r", 1), (b"\nthird\r\n", 3)] {
        seen.transport().write(piece);
        iterate_until(&r, || lines.borrow().len() == lines_by_now);
        for _ in 0..3 {
            r.iterate(Duration::from_millis(5)).unwrap();
        }
    }
    assert_eq!(*lines.borrow(), ["first", "second", "third"]);
    iterate_until(&r, || seen.data_len() == 22);
    assert_eq!(&*seen.data.borrow(), b"FIRST\r\nSECOND\r\nTHIRD\r\n");
    // An over-long line with its delimiter in the same read: the line before it is
    // delivered, then the connection is dropped.
    let mut abuse = b"ok\r\n".to_vec();
    abuse.extend_from_slice(&[b'x'; 200]);
    abuse.extend_from_slice(b"\r\nnever\r\n");
    seen.transport().write(&abuse);
    iterate_until(&r, || seen.lost_count.get() == 1);
    assert_eq!(*lines.borrow(), ["first", "second", "third", "ok"]);
}

fn a_line_without_a_delimiter_cannot_grow_forever(kind: BackendKind) {
    let r = reactor(kind);
    let (port, lines) = shout_server(&r);
    let (client, seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", port.address().port().unwrap(), factory, ConnectOptions::default());
    iterate_until(&r, || seen.made.get());
    seen.transport().write(&[b'x'; 200]);
    iterate_until(&r, || seen.lost_count.get() == 1);
    assert!(lines.borrow().is_empty());
}

fn a_reconnecting_factory_backs_off_and_resets(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    // Reserve a port number, then close it so the first attempts are refused.
    let (port, number) = echo_server(&r);
    drop(port.stop_listening());
    iterate_until(&r, || !port.is_listening());
    r.iterate(Duration::ZERO).unwrap();
    let seen_all = Rc::new(RefCell::new(Vec::new()));
    let s = seen_all.clone();
    let mut factory = ReconnectingClientFactory::new(factory_fn(move |_| {
        let (client, seen) = Recorder::new();
        s.borrow_mut().push(seen);
        client
    }));
    factory.initial_delay = Duration::from_secs(1);
    factory.factor = 2.0;
    factory.jitter = 0.0;
    let factory = FactoryRef::new(factory);
    let state = factory.get().clone();
    let connector = r.connect_tcp("127.0.0.1", number, factory, ConnectOptions::default());
    iterate_until(&r, || state.borrow().retries() == 1);
    assert_eq!(state.borrow().current_delay(), Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    iterate_until(&r, || state.borrow().retries() == 2);
    assert_eq!(state.borrow().current_delay(), Duration::from_secs(2));
    // The server comes back; the next retry connects and resets the back-off.
    let Ok(_port) =
        r.listen_tcp(number, factory_fn(|_| Echo), ListenOptions::interface([127, 0, 0, 1].into()))
    else {
        eprintln!("port {number} was taken meanwhile; skipped");
        return;
    };
    clock.advance(Duration::from_secs(2));
    iterate_until(&r, || seen_all.borrow().len() == 1 && seen_all.borrow()[0].made.get());
    assert_eq!(state.borrow().retries(), 0);
    // Losing the connection schedules a reconnect, which connects again.
    seen_all.borrow()[0].transport().abort_connection();
    iterate_until(&r, || state.borrow().retries() == 1);
    clock.advance(Duration::from_secs(1));
    iterate_until(&r, || seen_all.borrow().len() == 2 && seen_all.borrow()[1].made.get());
    // stop_trying: a lost connection is not retried.
    state.borrow_mut().stop_trying();
    connector.disconnect();
    iterate_until(&r, || seen_all.borrow()[1].lost_count.get() == 1);
    clock.advance(Duration::from_secs(3600));
    for _ in 0..5 {
        r.iterate(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(seen_all.borrow().len(), 2);
}

fn endpoint_strings_listen_and_connect(kind: BackendKind) {
    let r = reactor(kind);
    let port =
        server_from_string("tcp:0:interface=127.0.0.1").unwrap().listen(&r, factory_fn(|_| Echo)).unwrap();
    let number = port.address().port().unwrap();
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"via endpoint")));
    let (factory, _) = Queue::one(client);
    client_from_string(&format!("tcp:host=127.0.0.1:port={number}:timeout=5"))
        .unwrap()
        .connect(&r, factory)
        .unwrap();
    iterate_until(&r, || seen.data_len() == 12);
}

fn adopted_ports_and_connections_are_served(kind: BackendKind) {
    let r = reactor(kind);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let port = r.adopt_stream_port(OwnedFd::from(listener), factory_fn(|_| Echo)).unwrap();
    assert_eq!(port.address().socket_addr(), Some(addr));
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"adopted port")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", addr.port(), factory, ConnectOptions::default());
    iterate_until(&r, || seen.data_len() == 12);

    let (ours, mut theirs) = crate::support::stream_pair();
    let transport = r.adopt_stream_connection(OwnedFd::from(ours), factory_fn(|_| Echo)).unwrap();
    assert!(transport.is_some());
    theirs.write_all(b"adopted connection").unwrap();
    theirs.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    iterate_until(&r, || {
        let mut buf = [0u8; 64];
        if let Ok(n) = theirs.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got == b"adopted connection"
    });
    // A socket that is not listening cannot be adopted as a port.
    let (not_listening, _other) = crate::support::stream_pair();
    let err = r.adopt_stream_port(OwnedFd::from(not_listening), factory_fn(|_| Echo)).unwrap_err();
    assert!(err.to_string().contains("not listening"), "{err}");
}

fn an_endpoint_connection_arrives_as_a_deferred_transport(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, number) = crate::netkit::echo_server(&r);
    let (client, seen) = Recorder::new();
    let endpoint = client_from_string(&format!("tcp:127.0.0.1:{number}")).unwrap();
    let r2 = r.clone();
    let outcome = Rc::new(RefCell::new(None));
    let o = outcome.clone();
    let _task = r.spawn(async move {
        let transport = endpoint.connect_protocol(&r2, client).await.unwrap();
        transport.write(b"awaited");
        // A refused connection arrives as the NetError inside the failure.
        let refused = client_from_string("unix:/nonexistent/torque.sock").unwrap();
        let failure = refused.connect_protocol(&r2, Recorder::new().0).await.unwrap_err();
        *o.borrow_mut() = Some(failure.is::<torque::net::NetError>());
    });
    iterate_until(&r, || seen.data_len() == 7 && outcome.borrow().is_some());
    assert_eq!(*outcome.borrow(), Some(true));
}

crate::cases! {
    [Tcp, UnixSockets] plain {
        an_endpoint_connection_arrives_as_a_deferred_transport,
        adopted_ports_and_connections_are_served,
    }
    [Tcp] plain {
        a_line_receiver_splits_lines_and_drops_abusers,
        a_line_without_a_delimiter_cannot_grow_forever,
        a_reconnecting_factory_backs_off_and_resets,
        endpoint_strings_listen_and_connect,
    }
}
