//! TLS over every stream transport: handshakes, each failure reason, STARTTLS in
//! both directions, SNI, mutual TLS, ALPN, resumption, closing rules and a large
//! transfer. Certificates come from `tlskit`, made fresh per test.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use torque::net::{ConnectOptions, ListenOptions, ListeningPort, Producer, Protocol, Transport, factory_fn};
use torque::tls::{
    TlsClientConfig, TlsClientFactory, TlsClientOptions, TlsServerConfig, TlsServerFactory, TlsServerOptions,
    TlsVersion,
};
use torque::{BackendKind, Reactor};

use crate::netkit::{Echo, Queue, Recorder, Seen};
use crate::support::{fake_reactor, iterate_until, reactor};
use crate::tlskit::{Ca, Pki};

fn localhost() -> ListenOptions {
    ListenOptions::interface([127, 0, 0, 1].into())
}

fn client_options() -> ConnectOptions {
    ConnectOptions { timeout: Some(Duration::from_secs(10)), ..ConnectOptions::default() }
}

fn echo_tls_server(r: &Reactor, config: &TlsServerConfig) -> (ListeningPort, u16) {
    let port = r.listen_tls(0, factory_fn(|_| Echo), localhost(), config).expect("listen_tls");
    let number = port.address().port().unwrap();
    (port, number)
}

/// A TLS server whose one connection runs `protocol`.
fn tls_server_with(r: &Reactor, config: &TlsServerConfig, protocol: impl Protocol + 'static) -> u16 {
    let (factory, _) = Queue::one(protocol);
    let port = r.listen_tls(0, factory, localhost(), config).expect("listen_tls");
    let number = port.address().port().unwrap();
    std::mem::forget(port); // keep listening for the test's life
    number
}

/// Connects a recording client to `port` over TLS, expecting `name`.
fn tls_client(
    r: &Reactor,
    port: u16,
    config: &TlsClientConfig,
    name: &str,
) -> (Rc<Seen>, crate::support::Log) {
    let (client, seen) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    r.connect_tcp("127.0.0.1", port, TlsClientFactory::new(factory, config, name), client_options());
    (seen, outcomes)
}

fn handshake_echo_and_clean_close(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (_port, number) = echo_tls_server(&r, &pki.server_config());
    let (mut client, seen) = Recorder::new();
    // Written before the handshake: held, then sent encrypted.
    client.on_made = Some(Box::new(|t| t.write(b"hello, ")));
    client.on_data = Some(Box::new(|t, data| {
        if data.ends_with(b", ") {
            t.write_vectored(&[b"wor", b"ld"]);
        }
    }));
    let (factory, outcomes) = Queue::one(client);
    let connector = r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || seen.data_len() >= 12);
    assert_eq!(&*seen.data.borrow(), b"hello, world");
    assert!(seen.handshaken.get());
    let t = seen.transport();
    let info = t.tls_info().expect("a TLS connection");
    assert!(info.handshake_complete);
    assert_eq!(info.version, Some(TlsVersion::Tls13));
    assert_eq!(info.server_name.as_deref(), Some("127.0.0.1"));
    assert_eq!(info.peer_certificates.len(), 1, "the server's chain");
    assert!(info.cipher_suite.is_some());
    assert!(connector.transport().is_some_and(|c| c.same_connection(&t)));
    t.lose_connection();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(seen.lost_kind().as_deref(), Some("done"), "close_notify then a clean close");
    assert_eq!(outcomes.snapshot(), ["lost: done"]);
}

fn a_plain_connection_has_no_tls_info(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, number) = crate::netkit::echo_server(&r);
    let (client, seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || seen.made.get());
    assert!(seen.transport().tls_info().is_none());
}

/// Runs a handshake that must fail; returns what the client and server saw.
fn failing_handshake(
    kind: BackendKind,
    server: TlsServerConfig,
    client: TlsClientConfig,
    name: &str,
) -> (String, String, Vec<String>) {
    let r = reactor(kind);
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    let (seen, outcomes) = tls_client(&r, number, &client, name);
    iterate_until(&r, || seen.lost_kind().is_some() && server_seen.lost_kind().is_some());
    assert!(seen.data.borrow().is_empty());
    (seen.lost_kind().unwrap(), server_seen.lost_kind().unwrap(), outcomes.snapshot())
}

fn an_unknown_issuer_is_refused_by_default_and_named(kind: BackendKind) {
    let pki = Pki::new();
    let stranger = Ca::new("Someone Else");
    let client = TlsClientOptions::new().trust_roots(stranger.roots()).build().unwrap();
    let (client_saw, server_saw, outcomes) =
        failing_handshake(kind, pki.server_config(), client, "localhost");
    assert_eq!(client_saw, "tls: UnknownIssuer");
    assert_eq!(server_saw, "tls: AlertReceived(\"UnknownCA\")");
    assert_eq!(outcomes, ["lost: tls: UnknownIssuer"], "the client factory hears the same reason");
}

fn the_system_trust_store_does_not_trust_a_private_ca(kind: BackendKind) {
    // Verified by default: no roots given means the system's store.
    let pki = Pki::new();
    let client = match TlsClientOptions::new().build() {
        Ok(config) => config,
        Err(e) => panic!("the system trust store should load (ca-certificates): {e}"),
    };
    let (client_saw, _, _) = failing_handshake(kind, pki.server_config(), client, "localhost");
    assert_eq!(client_saw, "tls: UnknownIssuer");
}

fn a_name_mismatch_is_refused(kind: BackendKind) {
    let pki = Pki::new();
    let (client_saw, server_saw, _) =
        failing_handshake(kind, pki.server_config(), pki.client_config(), "wrong.example");
    assert_eq!(client_saw, "tls: NameMismatch { expected: \"wrong.example\" }");
    assert!(server_saw.starts_with("tls: AlertReceived"), "{server_saw}");
}

fn an_expired_certificate_is_refused(kind: BackendKind) {
    let pki = Pki::new();
    let expired = pki.ca.expired_leaf(&["localhost"]);
    let server = TlsServerOptions::new(expired.identity()).build().unwrap();
    let (client_saw, _, _) = failing_handshake(kind, server, pki.client_config(), "localhost");
    assert_eq!(client_saw, "tls: Expired");
}

fn no_shared_protocol_version_is_named(kind: BackendKind) {
    let pki = Pki::new();
    let server = pki.server_options().versions(&[TlsVersion::Tls13]).build().unwrap();
    let client = pki.client_options().versions(&[TlsVersion::Tls12]).build().unwrap();
    let (client_saw, server_saw, _) = failing_handshake(kind, server, client, "localhost");
    assert!(client_saw.starts_with("tls: NoSharedProtocol"), "{client_saw}");
    assert!(server_saw.starts_with("tls: NoSharedProtocol"), "{server_saw}");
}

fn no_shared_application_protocol_is_named(kind: BackendKind) {
    let pki = Pki::new();
    let server = pki.server_options().alpn(&["h2"]).build().unwrap();
    let client = pki.client_options().alpn(&["imap"]).build().unwrap();
    let (client_saw, server_saw, _) = failing_handshake(kind, server, client, "localhost");
    assert_eq!(client_saw, "tls: NoApplicationProtocol");
    assert_eq!(server_saw, "tls: NoApplicationProtocol");
}

fn alpn_picks_the_servers_preference(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let server = pki.server_options().alpn(&["h2", "http/1.1"]).build().unwrap();
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    let client = pki.client_options().alpn(&["http/1.1", "h2"]).build().unwrap();
    let (seen, _) = tls_client(&r, number, &client, "localhost");
    iterate_until(&r, || seen.handshaken.get() && server_seen.handshaken.get());
    assert_eq!(seen.transport().tls_info().unwrap().alpn_protocol.as_deref(), Some(&b"h2"[..]));
    assert_eq!(server_seen.transport().tls_info().unwrap().alpn_protocol.as_deref(), Some(&b"h2"[..]));
}

fn sni_selects_the_certificate(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let other = pki.ca.leaf(&["other.test"]);
    let server = pki.server_options().sni("other.test", other.identity()).build().unwrap();
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    // Verification for "other.test" passes only if the server chose that certificate.
    let (seen, _) = tls_client(&r, number, &pki.client_config(), "other.test");
    iterate_until(&r, || seen.handshaken.get() && server_seen.handshaken.get());
    let expected = other.identity().chain()[0].clone();
    assert_eq!(seen.transport().tls_info().unwrap().peer_certificates[0], expected);
    assert_eq!(server_seen.transport().tls_info().unwrap().server_name.as_deref(), Some("other.test"));
}

fn an_unknown_sni_name_without_a_default_is_refused(kind: BackendKind) {
    let pki = Pki::new();
    let server = TlsServerOptions::sni_only().sni("localhost", pki.server.identity()).build().unwrap();
    let (client_saw, server_saw, _) = failing_handshake(kind, server, pki.client_config(), "127.0.0.1");
    assert!(client_saw.starts_with("tls: "), "{client_saw}");
    assert!(server_saw.starts_with("tls: "), "{server_saw}");
}

fn mutual_tls_verifies_the_client(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let server = pki.server_options().require_client_certificate(pki.ca.roots()).build().unwrap();
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    let client_leaf = pki.ca.leaf(&["client.test"]);
    let client = pki.client_options().client_certificate(client_leaf.identity()).build().unwrap();
    let (seen, _) = tls_client(&r, number, &client, "localhost");
    iterate_until(&r, || seen.handshaken.get() && server_seen.handshaken.get());
    let info = server_seen.transport().tls_info().unwrap();
    assert_eq!(info.peer_certificates[0], client_leaf.identity().chain()[0]);
}

fn mutual_tls_refuses_a_client_without_a_certificate(kind: BackendKind) {
    let pki = Pki::new();
    let server = pki.server_options().require_client_certificate(pki.ca.roots()).build().unwrap();
    let (client_saw, server_saw, _) = failing_handshake(kind, server, pki.client_config(), "localhost");
    assert_eq!(server_saw, "tls: CertificateRequired");
    assert_eq!(client_saw, "tls: CertificateRequired");
}

fn mutual_tls_refuses_a_client_from_another_ca(kind: BackendKind) {
    let pki = Pki::new();
    let server = pki.server_options().require_client_certificate(pki.ca.roots()).build().unwrap();
    let stranger = Ca::new("Someone Else").leaf(&["client.test"]);
    let client = pki.client_options().client_certificate(stranger.identity()).build().unwrap();
    let (client_saw, server_saw, _) = failing_handshake(kind, server, client, "localhost");
    assert_eq!(server_saw, "tls: UnknownIssuer");
    assert!(client_saw.starts_with("tls: AlertReceived"), "{client_saw}");
}

fn a_silent_peer_hits_the_handshake_timeout(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let pki = Pki::new();
    let server = pki.server_options().handshake_timeout(Some(Duration::from_secs(5))).build().unwrap();
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    // A plain TCP client that never says hello.
    let (client, seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || seen.made.get() && server_seen.made.get());
    clock.advance(Duration::from_secs(4));
    r.iterate(Duration::ZERO).unwrap();
    assert!(server_seen.lost_kind().is_none(), "not before the timeout");
    clock.advance(Duration::from_secs(1));
    iterate_until(&r, || server_seen.lost_kind().is_some());
    assert_eq!(server_seen.lost_kind().as_deref(), Some("tls: HandshakeTimeout"));
    iterate_until(&r, || seen.lost_kind().is_some());
}

fn a_completed_handshake_cancels_the_timeout(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let pki = Pki::new();
    let server = pki.server_options().handshake_timeout(Some(Duration::from_secs(5))).build().unwrap();
    let (server_side, server_seen) = Recorder::new();
    let number = tls_server_with(&r, &server, server_side);
    let (seen, _) = tls_client(&r, number, &pki.client_config(), "localhost");
    iterate_until(&r, || seen.handshaken.get() && server_seen.handshaken.get());
    clock.advance(Duration::from_secs(60));
    for _ in 0..5 {
        r.iterate(Duration::from_millis(10)).unwrap();
    }
    assert!(server_seen.lost_kind().is_none() && seen.lost_kind().is_none());
}

fn closing_without_close_notify_is_a_truncation(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server_side, server_seen) = Recorder::new();
    let reactor_ = r.clone();
    server_side.on_data = Some(Box::new(move |t, _| {
        t.write(b"partial");
        shut_once_flushed(&reactor_, t.clone());
    }));
    let number = tls_server_with(&r, &pki.server_config(), server_side);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"go")));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(&*seen.data.borrow(), b"partial", "what arrived is delivered first");
    assert_eq!(seen.lost_kind().as_deref(), Some("tls: Truncated"));
    assert!(!seen.eof.get(), "a truncation is not a clean end of file");
    drop(server_seen);
}

/// Shuts the socket under TLS (end of file with no close_notify) once what was
/// written has left: at once where writes go out in the call, after the
/// completion where the backend sends them (io_uring).
fn shut_once_flushed(r: &Reactor, t: Transport) {
    if t.buffered() == 0 {
        let fd = t.fd().expect("a socket");
        // SAFETY (test): the fd is the connection's open socket.
        let socket = unsafe { torque::fd::BorrowedFd::borrow_raw(fd) };
        let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Write);
        return;
    }
    let again = r.clone();
    r.call_later(Duration::from_millis(1), move |_| shut_once_flushed(&again, t));
}

fn abort_sends_no_close_notify(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server_side, server_seen) = Recorder::new();
    server_side.on_data = Some(Box::new(|t, _| t.abort_connection()));
    let number = tls_server_with(&r, &pki.server_config(), server_side);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"go")));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || seen.lost_kind().is_some() && server_seen.lost_kind().is_some());
    assert_eq!(server_seen.lost_kind().as_deref(), Some("aborted"));
    let client_saw = seen.lost_kind().unwrap();
    assert!(client_saw == "tls: Truncated" || client_saw.starts_with("lost:"), "{client_saw}");
}

fn half_close_in_tls13(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server_side, server_seen) = Recorder::new();
    // The client's close_notify: keep writing, then close.
    server_side.on_eof = Some(Box::new(|t| {
        t.write(b"goodbye");
        t.lose_connection();
    }));
    let number = tls_server_with(&r, &pki.server_config(), server_side);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        t.write(b"request");
        t.lose_write_connection();
    }));
    client.on_eof = Some(Box::new(|_| {}));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || seen.lost_kind().is_some() && server_seen.lost_kind().is_some());
    assert_eq!(&*server_seen.data.borrow(), b"request");
    assert!(server_seen.eof.get());
    assert!(seen.write_closed.get());
    assert_eq!(&*seen.data.borrow(), b"goodbye");
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

fn sessions_are_resumed_with_the_same_client_config(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (_port, number) = echo_tls_server(&r, &pki.server_config());
    let client = pki.client_config();
    let mut resumed = Vec::new();
    for _ in 0..2 {
        let (mut c, seen) = Recorder::new();
        c.on_made = Some(Box::new(|t| t.write(b"ping")));
        let (factory, _) = Queue::one(c);
        r.connect_tls("127.0.0.1", number, factory, client_options(), &client);
        // The echo comes after the server's session tickets.
        iterate_until(&r, || seen.data_len() == 4);
        resumed.push(seen.transport().tls_info().unwrap().resumed);
        seen.transport().lose_connection();
        iterate_until(&r, || seen.lost_kind().is_some());
    }
    assert_eq!(resumed, [false, true]);
}

/// The STARTTLS exchange: "STARTTLS\n" and "GO\n" in clear, then TLS.
fn starttls(kind: BackendKind, acceptor_is_tls_server: bool) {
    let r = reactor(kind);
    let pki = Pki::new();
    let server_config = pki.server_config();
    let client_config = pki.client_config();
    let (mut acceptor, acceptor_seen) = Recorder::new();
    let (sc, cc) = (server_config.clone(), client_config.clone());
    acceptor.on_data = Some(Box::new(move |t, data| {
        if data == b"STARTTLS\n" {
            t.write(b"GO\n");
            if acceptor_is_tls_server {
                t.start_tls_server(&sc).unwrap();
            } else {
                t.start_tls_client(&cc, "localhost").unwrap();
            }
        } else {
            t.write(data); // echo, encrypted now
        }
    }));
    let (_port, number) = crate::netkit::server_with(&r, vec![Box::new(acceptor)]);
    let (mut connector_side, seen) = Recorder::new();
    connector_side.on_made = Some(Box::new(|t| t.write(b"STARTTLS\n")));
    connector_side.on_data = Some(Box::new(move |t, data| {
        if let Some(rest) = data.strip_prefix(b"GO\n") {
            if acceptor_is_tls_server {
                t.start_tls_client(&client_config, "localhost").unwrap();
            } else {
                t.start_tls_server(&server_config).unwrap();
            }
            // The acceptor's hello may have come in the same read.
            t.feed_tls(rest).unwrap();
            assert!(t.start_tls_server(&server_config).is_err(), "TLS cannot start twice");
            t.write(b"secret");
        }
    }));
    let (factory, _) = Queue::one(connector_side);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || seen.data.borrow().ends_with(b"secret"));
    assert!(seen.data.borrow().starts_with(b"GO\n"));
    assert!(seen.handshaken.get() && acceptor_seen.handshaken.get());
    assert_eq!(&*acceptor_seen.data.borrow(), b"STARTTLS\nsecret");
    // What went in clear was counted, and the rest was encrypted (bigger).
    let (sent, _) = seen.transport().byte_counts();
    assert!(sent > (b"STARTTLS\nsecret".len() + 100) as u64);
}

fn starttls_with_the_acceptor_as_tls_server(kind: BackendKind) {
    starttls(kind, true);
}

fn starttls_with_the_acceptor_as_tls_client(kind: BackendKind) {
    starttls(kind, false);
}

fn tls_over_unix_sockets(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.sock");
    let path = path.to_str().unwrap();
    let factory = TlsServerFactory::new(factory_fn(|_| Echo), &pki.server_config());
    let _port = r.listen_unix(path, factory, Default::default()).expect("listen_unix");
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"over unix")));
    let (factory, _) = Queue::one(client);
    r.connect_unix(path, TlsClientFactory::new(factory, &pki.client_config(), "localhost"), client_options());
    iterate_until(&r, || seen.data_len() >= 9);
    assert_eq!(&*seen.data.borrow(), b"over unix");
    assert!(seen.transport().tls_info().unwrap().handshake_complete);
}

/// Pushes `total` bytes of a known pattern, pausing when told.
struct Pattern {
    transport: Transport,
    sent: usize,
    total: usize,
    paused: bool,
    pauses: Rc<Cell<u32>>,
}

impl Pattern {
    fn pump(&mut self) {
        // A whole number of pattern periods, so every chunk starts the pattern.
        let chunk: Vec<u8> = (0..251 * 256).map(|i| (i % 251) as u8).collect();
        while !self.paused && self.sent < self.total {
            let n = chunk.len().min(self.total - self.sent);
            self.sent += n;
            self.transport.write(&chunk[..n]);
            if self.transport.writes_paused() {
                break;
            }
        }
        if self.sent >= self.total {
            self.transport.unregister_producer();
            self.transport.lose_connection();
        }
    }
}

impl Producer for Pattern {
    fn pause_producing(&mut self) {
        self.paused = true;
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&mut self) {
        self.paused = false;
        self.pump();
    }
}

/// Counts and checks the pattern.
struct Checker {
    received: Rc<Cell<usize>>,
    bad: Rc<Cell<bool>>,
    ended: Rc<RefCell<Option<String>>>,
}

impl Protocol for Checker {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        let base = self.received.get();
        if data.iter().enumerate().any(|(i, b)| *b != ((base + i) % 251) as u8) {
            self.bad.set(true);
        }
        self.received.set(base + data.len());
    }
    fn connection_lost(&mut self, reason: torque::net::DisconnectReason) {
        *self.ended.borrow_mut() = Some(crate::netkit::reason_kind(&reason));
    }
}

fn a_256_mib_transfer_arrives_intact_with_backpressure(kind: BackendKind) {
    const TOTAL: usize = 256 << 20;
    let r = reactor(kind);
    let pki = Pki::new();
    let pauses = Rc::new(Cell::new(0));
    let p = pauses.clone();
    let server_factory = factory_fn(move |_| Sender { pauses: p.clone() });
    let _port = r.listen_tls(0, server_factory, localhost(), &pki.server_config()).unwrap();
    let number = _port.address().port().unwrap();
    let (received, bad, ended) =
        (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)), Rc::new(RefCell::new(None)));
    let checker = Checker { received: received.clone(), bad: bad.clone(), ended: ended.clone() };
    let (factory, _) = Queue::one(checker);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    let start = std::time::Instant::now();
    while ended.borrow().is_none() {
        assert!(start.elapsed() < Duration::from_secs(50), "transfer stalled at {}", received.get());
        r.iterate(Duration::from_millis(50)).unwrap();
    }
    assert_eq!(received.get(), TOTAL);
    assert!(!bad.get(), "the bytes arrived in order, unchanged");
    assert_eq!(ended.borrow().as_deref(), Some("done"));
    assert!(pauses.get() > 0, "the producer was paused on the encrypted buffer");

    struct Sender {
        pauses: Rc<Cell<u32>>,
    }
    impl Protocol for Sender {
        fn connection_made(&mut self, t: &Transport) {
            let producer = Rc::new(RefCell::new(Pattern {
                transport: t.clone(),
                sent: 0,
                total: TOTAL,
                paused: false,
                pauses: self.pauses.clone(),
            }));
            t.register_producer(producer.clone(), true).unwrap();
            producer.borrow_mut().pump();
        }
        fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
    }
}

fn a_paused_tls_reader_gets_everything_after_resuming(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server_side, server_seen) = Recorder::new();
    server_side.on_made = Some(Box::new(|t| {
        // Paused from the start: the handshake must still complete.
        t.pause_producing();
    }));
    let number = tls_server_with(&r, &pki.server_config(), server_side);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        t.write(&vec![7u8; 300_000]);
        t.lose_connection();
    }));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || server_seen.handshaken.get());
    for _ in 0..10 {
        r.iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(server_seen.data_len(), 0, "nothing is delivered while paused");
    server_seen.transport().resume_producing();
    iterate_until(&r, || server_seen.lost_kind().is_some());
    assert_eq!(server_seen.data_len(), 300_000);
    assert!(server_seen.data.borrow().iter().all(|b| *b == 7));
    assert!(server_seen.eof.get(), "close_notify is a clean end of file");
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
    iterate_until(&r, || seen.lost_kind().is_some());
}

fn tls_runs_over_the_memory_transport(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (server_config, client_config) = (pki.server_config(), pki.client_config());
    let (mut server_side, server_seen) = Recorder::new();
    server_side.on_made = Some(Box::new(move |t| t.start_tls_server(&server_config).unwrap()));
    server_side.on_data = Some(Box::new(|t, data| t.write(data)));
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(move |t| {
        t.start_tls_client(&client_config, "localhost").unwrap();
        t.write(b"in memory");
    }));
    let pair = torque::testing::Loopback::connect(&r, client, server_side);
    pair.pump();
    assert!(seen.handshaken.get() && server_seen.handshaken.get());
    assert_eq!(&*seen.data.borrow(), b"in memory");
    pair.client().transport().lose_connection();
    pair.pump();
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
}

/// Aborts in `handshake_completed` (a failed policy check) and records any
/// data that still arrives.
struct AbortOnHandshake {
    data_after_abort: Rc<Cell<bool>>,
    aborted: Rc<Cell<bool>>,
}

impl Protocol for AbortOnHandshake {
    fn handshake_completed(&mut self, t: &Transport) {
        self.aborted.set(true);
        t.abort_connection();
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {
        if self.aborted.get() {
            self.data_after_abort.set(true);
        }
    }
    fn read_connection_lost(&mut self, _t: &Transport) {
        self.data_after_abort.set(true);
    }
}

fn nothing_is_delivered_after_an_abort_in_handshake_completed(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (late, aborted) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let server = AbortOnHandshake { data_after_abort: late.clone(), aborted: aborted.clone() };
    let number = tls_server_with(&r, &pki.server_config(), server);
    let (mut client, seen) = Recorder::new();
    // The request rides with the client's Finished.
    client.on_made = Some(Box::new(|t| t.write(b"request")));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || seen.lost_kind().is_some());
    assert!(aborted.get());
    assert!(!late.get(), "no callback after the protocol aborted");
}

fn a_paused_protocol_hears_a_bare_close_notify(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server_side, server_seen) = Recorder::new();
    server_side.on_made = Some(Box::new(|t| t.pause_producing()));
    server_side.on_eof = Some(Box::new(|_| {})); // keep the connection
    let number = tls_server_with(&r, &pki.server_config(), server_side);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.lose_write_connection()));
    client.on_eof = Some(Box::new(|_| {}));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    // As a paused socket notices end of file, a paused TLS transport notices
    // close_notify when no data waits before it.
    iterate_until(&r, || server_seen.eof.get());
    assert!(seen.write_closed.get());
    assert!(server_seen.lost_kind().is_none());
}

/// Pauses, resumes and runs a nested pass inside `data_received`.
struct Nested {
    reactor: Reactor,
    received: Rc<Cell<usize>>,
}

impl Protocol for Nested {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.received.set(self.received.get() + data.len());
        t.pause_producing();
        t.resume_producing();
        for _ in 0..3 {
            self.reactor.iterate(Duration::ZERO).unwrap();
        }
    }
}

fn a_nested_pass_inside_data_received_neither_hangs_nor_loses_data(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let received = Rc::new(Cell::new(0));
    let server = Nested { reactor: r.clone(), received: received.clone() };
    let number = tls_server_with(&r, &pki.server_config(), server);
    let (mut client, _seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        for _ in 0..64 {
            t.write(&[9u8; 16 * 1024]);
        }
    }));
    let (factory, _) = Queue::one(client);
    r.connect_tls("127.0.0.1", number, factory, client_options(), &pki.client_config());
    iterate_until(&r, || received.get() == 64 * 16 * 1024);
}

fn a_memory_client_may_write_and_close_before_the_handshake(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (server_config, client_config) = (pki.server_config(), pki.client_config());
    let (mut server_side, server_seen) = Recorder::new();
    server_side.on_made = Some(Box::new(move |t| t.start_tls_server(&server_config).unwrap()));
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(move |t| {
        t.start_tls_client(&client_config, "localhost").unwrap();
        t.write(b"then close");
        t.lose_connection();
    }));
    let pair = torque::testing::Loopback::connect(&r, client, server_side);
    pair.pump();
    assert_eq!(&*server_seen.data.borrow(), b"then close");
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
}

/// `tls:` client endpoints announce the connection through a wrapper
/// protocol, which must pass `handshake_completed` on like every other event.
fn a_tls_endpoint_client_hears_handshake_completed(kind: BackendKind) {
    let r = reactor(kind);
    let pki = Pki::new();
    let (_port, number) = echo_tls_server(&r, &pki.server_config());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca.pem).unwrap();
    let endpoint = torque::net::client_from_string(&format!(
        "tls:127.0.0.1:{number}:trustRoots={}",
        torque::net::quote_endpoint_argument(&ca.to_string_lossy())
    ))
    .unwrap();
    let (client, seen) = Recorder::new();
    let _connected = endpoint.connect_protocol(&r, client);
    iterate_until(&r, || seen.handshaken.get());
    let t = seen.transport();
    assert!(t.tls_info().is_some_and(|info| info.handshake_complete));
    t.lose_connection();
    iterate_until(&r, || seen.lost_kind().is_some());
}

/// A server with megabytes the client has not read yet gets a corrupt record:
/// its fatal alert, queued behind the unsent data, must still reach the
/// client (it used to be dropped with the buffer), and the server reports the
/// TLS failure.
fn a_fatal_alert_behind_unsent_data_still_reaches_the_peer(kind: BackendKind) {
    use std::io::{Read, Write};
    use tokio_rustls::rustls;

    const SENT: usize = 16 << 20;
    let r = reactor(kind);
    let pki = Pki::new();
    let (mut server, seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| t.write(&vec![b'x'; SENT])));
    let number = tls_server_with(&r, &pki.server_config(), server);
    let config = Arc::clone(pki.client_config().rustls());
    let client = std::thread::spawn(move || -> (usize, String) {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", number)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut session = rustls::ClientConnection::new(config, name).unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut socket).unwrap();
        }
        // An application-data record the server cannot authenticate.
        socket.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
        socket.write_all(&[0x5a; 0x20]).unwrap();
        let (mut total, mut buf) = (0, vec![0u8; 64 * 1024]);
        loop {
            let read = session.read_tls(&mut socket);
            let processed = session.process_new_packets();
            // Plaintext that came before the alert is still there to read.
            while let Ok(n) = session.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            match (read, processed) {
                (_, Err(e)) => return (total, format!("{e:?}")),
                (Ok(0), _) => return (total, "end of file".to_owned()),
                (Err(e), _) => return (total, e.to_string()),
                (Ok(_), Ok(_)) => {}
            }
        }
    });
    iterate_until(&r, || seen.lost_kind().is_some() || client.is_finished());
    iterate_until(&r, || seen.lost_kind().is_some());
    let (received, ended_with) = client.join().unwrap();
    assert!(seen.lost_kind().unwrap().starts_with("tls:"), "{:?}", seen.lost_kind());
    assert_eq!(received, SENT, "everything written before the failure arrived");
    assert!(ended_with.contains("BadRecordMac") || ended_with.contains("bad record"), "{ended_with}");
}

crate::cases! {
    [Tcp, Tls] plain {
        a_tls_endpoint_client_hears_handshake_completed,
        a_fatal_alert_behind_unsent_data_still_reaches_the_peer,
        handshake_echo_and_clean_close,
        a_plain_connection_has_no_tls_info,
        an_unknown_issuer_is_refused_by_default_and_named,
        the_system_trust_store_does_not_trust_a_private_ca,
        a_name_mismatch_is_refused,
        an_expired_certificate_is_refused,
        no_shared_protocol_version_is_named,
        no_shared_application_protocol_is_named,
        alpn_picks_the_servers_preference,
        sni_selects_the_certificate,
        an_unknown_sni_name_without_a_default_is_refused,
        mutual_tls_verifies_the_client,
        mutual_tls_refuses_a_client_without_a_certificate,
        mutual_tls_refuses_a_client_from_another_ca,
        a_silent_peer_hits_the_handshake_timeout,
        a_completed_handshake_cancels_the_timeout,
        closing_without_close_notify_is_a_truncation,
        abort_sends_no_close_notify,
        half_close_in_tls13,
        sessions_are_resumed_with_the_same_client_config,
        starttls_with_the_acceptor_as_tls_server,
        starttls_with_the_acceptor_as_tls_client,
        a_256_mib_transfer_arrives_intact_with_backpressure,
        a_paused_tls_reader_gets_everything_after_resuming,
        nothing_is_delivered_after_an_abort_in_handshake_completed,
        a_paused_protocol_hears_a_bare_close_notify,
        a_nested_pass_inside_data_received_neither_hangs_nor_loses_data,
        a_memory_client_may_write_and_close_before_the_handshake,
    }
    [UnixSockets, Tls] plain {
        tls_over_unix_sockets,
    }
    [Tls] plain {
        tls_runs_over_the_memory_transport,
    }
}
