//! UDP, multicast and UNIX datagram ports on every backend.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use torque::BackendKind;
use torque::net::{
    Address, DatagramError, DatagramPort, DatagramProtocol, NetError, READS_PER_EVENT, UdpOptions,
    UnixDatagramOptions, datagram_from_string,
};

use crate::support::{iterate_until, reactor, spin};

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

type Received = Rc<RefCell<Vec<(Vec<u8>, Address)>>>;
type StartHook = Box<dyn FnMut(&DatagramPort)>;

/// Records what arrives; optionally echoes, or runs a hook.
#[derive(Default, Clone)]
struct Seen {
    datagrams: Received,
    truncated: Rc<RefCell<Vec<(usize, usize)>>>,
    refused: Rc<Cell<u32>>,
    started: Rc<Cell<u32>>,
    stopped: Rc<Cell<u32>>,
}

type Hook = Box<dyn FnMut(&DatagramPort, &[u8], &Address)>;

struct Recorder {
    seen: Seen,
    echo: bool,
    on_start: Option<StartHook>,
    on_datagram: Option<Hook>,
}

impl Recorder {
    fn new() -> (Recorder, Seen) {
        let seen = Seen::default();
        (Recorder { seen: seen.clone(), echo: false, on_start: None, on_datagram: None }, seen)
    }
    fn echo() -> (Recorder, Seen) {
        let (mut r, seen) = Recorder::new();
        r.echo = true;
        (r, seen)
    }
}

impl DatagramProtocol for Recorder {
    fn start_protocol(&mut self, port: &DatagramPort) {
        self.seen.started.set(self.seen.started.get() + 1);
        if let Some(f) = self.on_start.as_mut() {
            f(port);
        }
    }
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
        self.seen.datagrams.borrow_mut().push((data.to_vec(), from.clone()));
        if self.echo {
            if let Some(to) = from.socket_addr() {
                port.write(data, to).unwrap();
            }
        }
        if let Some(f) = self.on_datagram.as_mut() {
            f(port, data, from);
        }
    }
    fn datagram_truncated(&mut self, _: &DatagramPort, data: &[u8], length: usize, _: &Address) {
        self.seen.truncated.borrow_mut().push((data.len(), length));
    }
    fn connection_refused(&mut self, _: &DatagramPort) {
        self.seen.refused.set(self.seen.refused.get() + 1);
    }
    fn stop_protocol(&mut self) {
        self.seen.stopped.set(self.seen.stopped.get() + 1);
    }
}

fn local() -> UdpOptions {
    UdpOptions::interface(LOCALHOST.into())
}

fn addr_of(port: &DatagramPort) -> SocketAddr {
    port.address().socket_addr().unwrap()
}

fn a_client_writes_from_its_start_hook_and_the_server_echoes(kind: BackendKind) {
    let r = reactor(kind);
    let (server, server_seen) = Recorder::echo();
    let server = r.listen_udp(0, server, local()).unwrap();
    let target = addr_of(&server);
    assert_ne!(target.port(), 0);
    let (mut client, client_seen) = Recorder::new();
    client.on_start = Some(Box::new(move |port| {
        port.write(b"ping from start_protocol", target).unwrap();
    }));
    let client = r.listen_udp(0, client, local()).unwrap();
    iterate_until(&r, || client_seen.datagrams.borrow().len() == 1);
    assert_eq!(client_seen.datagrams.borrow()[0].0, b"ping from start_protocol");
    assert_eq!(server_seen.datagrams.borrow()[0].1.socket_addr(), Some(addr_of(&client)));
    assert_eq!(client_seen.started.get(), 1);
}

fn ipv6_datagrams_work(kind: BackendKind) {
    let r = reactor(kind);
    let v6 = UdpOptions::interface(std::net::Ipv6Addr::LOCALHOST.into());
    let (server, _) = Recorder::echo();
    let Ok(server) = r.listen_udp(0, server, v6.clone()) else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    let (client, seen) = Recorder::new();
    let client = r.listen_udp(0, client, v6).unwrap();
    client.write(b"over v6", addr_of(&server)).unwrap();
    iterate_until(&r, || seen.datagrams.borrow().len() == 1);
    assert!(seen.datagrams.borrow()[0].1.socket_addr().unwrap().is_ipv6());
}

fn connected_ports_write_only_to_their_peer(kind: BackendKind) {
    let r = reactor(kind);
    let (server, _) = Recorder::echo();
    let server = r.listen_udp(0, server, local()).unwrap();
    let (client, seen) = Recorder::new();
    let client = r.listen_udp(0, client, local()).unwrap();
    assert!(matches!(client.write_connected(b"x"), Err(DatagramError::NotConnected)));
    client.connect(addr_of(&server)).unwrap();
    assert_eq!(client.peer().unwrap().socket_addr(), Some(addr_of(&server)));
    client.write_connected(b"hello").unwrap();
    let elsewhere = SocketAddr::from((LOCALHOST, 9));
    let err = client.write(b"nope", elsewhere).unwrap_err();
    assert!(matches!(err, DatagramError::WrongDestination { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    client.write(b"to the peer by address", addr_of(&server)).unwrap();
    iterate_until(&r, || seen.datagrams.borrow().len() == 2);
    // A port connects once, as in Twisted; the first peer stays.
    let again = client.connect(SocketAddr::from((LOCALHOST, 9))).unwrap_err();
    assert!(matches!(again, DatagramError::AlreadyConnected(_)), "{again}");
    assert_eq!(client.peer().unwrap().socket_addr(), Some(addr_of(&server)));
}

fn an_icmp_refusal_reaches_a_connected_port(kind: BackendKind) {
    let r = reactor(kind);
    // A port nobody listens on.
    let closed = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap().local_addr().unwrap();
    let (client, seen) = Recorder::new();
    let client = r.listen_udp(0, client, local()).unwrap();
    client.connect(closed).unwrap();
    client.write_connected(b"anyone?").unwrap();
    iterate_until(&r, || seen.refused.get() >= 1);
}

fn a_protocol_may_stop_its_own_port_from_datagram_received(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, seen) = Recorder::new();
    let stopped_inside = Rc::new(Cell::new(None));
    let late_write = Rc::new(RefCell::new(None));
    let (s, st, lw) = (stopped_inside.clone(), seen.stopped.clone(), late_write.clone());
    server.on_datagram = Some(Box::new(move |port, _, _| {
        drop(port.stop_listening());
        s.set(Some(st.get()));
        *lw.borrow_mut() = Some(port.write(b"late", SocketAddr::from((LOCALHOST, 9))));
    }));
    let server = r.listen_udp(0, server, local()).unwrap();
    let sender = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    sender.send_to(b"one", addr_of(&server)).unwrap();
    sender.send_to(b"two", addr_of(&server)).unwrap();
    iterate_until(&r, || seen.stopped.get() == 1);
    assert_eq!(stopped_inside.get(), Some(0), "stop_protocol is not called inside stop_listening");
    assert!(
        matches!(late_write.borrow().as_ref(), Some(Err(DatagramError::Closed))),
        "writes after stopping fail clearly"
    );
    spin(&r, 3);
    assert_eq!(seen.stopped.get(), 1, "exactly once");
    assert_eq!(seen.datagrams.borrow().len(), 1, "nothing is delivered after stopping");
    assert!(!server.is_listening());
}

fn a_64_kib_datagram_arrives_whole_and_oversized_ones_are_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (big, big_seen) = Recorder::new();
    let big = r.listen_udp(0, big, UdpOptions { max_packet_size: 65_536, ..local() }).unwrap();
    let (small, small_seen) = Recorder::new();
    let small = r.listen_udp(0, small, UdpOptions { max_packet_size: 100, ..local() }).unwrap();
    let sender = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let payload: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    sender.send_to(&payload, addr_of(&big)).unwrap();
    sender.send_to(&[7u8; 200], addr_of(&small)).unwrap();
    iterate_until(&r, || big_seen.datagrams.borrow().len() == 1 && small_seen.truncated.borrow().len() == 1);
    assert!(big_seen.datagrams.borrow()[0].0 == payload, "the 64 KiB datagram is intact");
    let (shown, length) = small_seen.truncated.borrow()[0];
    assert_eq!(shown, 100);
    if cfg!(target_os = "linux") {
        assert_eq!(length, 200, "the real length is reported");
    }
    assert!(small_seen.datagrams.borrow().is_empty());
}

fn one_busy_port_is_read_in_bounded_batches(kind: BackendKind) {
    let r = reactor(kind);
    let (port, seen) = Recorder::new();
    let port = r.listen_udp(0, port, local()).unwrap();
    let sender = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    for i in 0..100u8 {
        sender.send_to(&[i], addr_of(&port)).unwrap();
    }
    iterate_until(&r, || !seen.datagrams.borrow().is_empty());
    let first_pass = seen.datagrams.borrow().len();
    assert!(first_pass <= READS_PER_EVENT, "one pass reads at most {READS_PER_EVENT}");
    assert!(first_pass > 1, "one readable event reads more than one datagram");
    iterate_until(&r, || seen.datagrams.borrow().len() == 100);
}

fn broadcast_can_be_switched(kind: BackendKind) {
    let r = reactor(kind);
    let (p, _) = Recorder::new();
    let port = r.listen_udp(0, p, local()).unwrap();
    port.set_broadcast_allowed(true).unwrap();
    assert!(port.broadcast_allowed().unwrap());
    port.set_broadcast_allowed(false).unwrap();
    assert!(!port.broadcast_allowed().unwrap());
}

fn two_multicast_listeners_on_one_group_both_receive(kind: BackendKind) {
    let r = reactor(kind);
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let any = UdpOptions::interface(Ipv4Addr::UNSPECIFIED.into());
    let (a, a_seen) = Recorder::new();
    let a = r.listen_multicast(0, a, any.clone()).unwrap();
    let port = a.address().port().unwrap();
    let (b, b_seen) = Recorder::new();
    let b = r.listen_multicast(port, b, any).unwrap();
    for listener in [&a, &b] {
        if let Err(e) = listener.join_group(group.into(), LOCALHOST.into()) {
            eprintln!("cannot join a multicast group on loopback here ({e}); skipped");
            return;
        }
    }
    let (sender, _) = Recorder::new();
    let sender = r.listen_udp(0, sender, local()).unwrap();
    assert_eq!(sender.outgoing_interface().unwrap(), Ipv4Addr::UNSPECIFIED, "the system's choice at first");
    sender.set_outgoing_interface(LOCALHOST).unwrap();
    assert_eq!(sender.outgoing_interface().unwrap(), LOCALHOST);
    sender.set_loopback_mode(false).unwrap();
    assert!(!sender.loopback_mode().unwrap());
    sender.set_loopback_mode(true).unwrap();
    assert!(sender.loopback_mode().unwrap());
    sender.set_ttl(3).unwrap();
    assert_eq!(sender.ttl().unwrap(), 3);
    sender.set_ttl(1).unwrap();
    assert_eq!(sender.ttl().unwrap(), 1);
    sender.write(b"to the group", SocketAddr::from((group, port))).unwrap();
    iterate_until(&r, || a_seen.datagrams.borrow().len() == 1 && b_seen.datagrams.borrow().len() == 1);
    a.leave_group(group.into(), LOCALHOST.into()).unwrap();
    assert!(b.leave_group(std::net::Ipv6Addr::UNSPECIFIED.into(), LOCALHOST.into()).is_err());
}

#[cfg(unix)]
fn unix_datagram_sockets_talk_both_ways(kind: BackendKind) {
    let r = reactor(kind);
    let dir = std::env::temp_dir().join(format!("torque-dgram-{}-{kind}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server_path = dir.join("server.sock");
    let client_path = dir.join("client.sock");
    // A stale client socket file (from an earlier crashed run) is replaced too.
    drop(std::os::unix::net::UnixDatagram::bind(&client_path).unwrap());
    // A stale socket file is replaced.
    drop(std::os::unix::net::UnixDatagram::bind(&server_path).unwrap());
    let (mut server, server_seen) = Recorder::new();
    server.on_datagram = Some(Box::new(|port, data, from| {
        if let Address::Unix(path) = from {
            port.write_unix(&data.to_ascii_uppercase(), path.to_str().unwrap()).unwrap();
        }
    }));
    let name = server_path.to_str().unwrap().to_owned();
    let server = r
        .listen_unix_datagram(&name, server, UnixDatagramOptions { mode: Some(0o600), ..Default::default() })
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&server_path).unwrap().permissions().mode() & 0o777, 0o600);
    // A live one is not stolen.
    let (other, _) = Recorder::new();
    let err = r.listen_unix_datagram(&name, other, UnixDatagramOptions::default()).unwrap_err();
    assert!(matches!(err, NetError::CannotListen { .. }), "{err}");
    let (client, client_seen) = Recorder::new();
    let client = r.connect_unix_datagram(&name, client, Some(client_path.to_str().unwrap()), 4096).unwrap();
    client.write_connected(b"quiet").unwrap();
    iterate_until(&r, || client_seen.datagrams.borrow().len() == 1);
    assert_eq!(client_seen.datagrams.borrow()[0].0, b"QUIET");
    assert_eq!(server_seen.datagrams.borrow().len(), 1);
    drop(server.stop_listening());
    drop(client.stop_listening());
    iterate_until(&r, || !server_path.exists() && !client_path.exists());
    // Connecting to a socket nobody serves is refused.
    let (c, _) = Recorder::new();
    let err = r.connect_unix_datagram(&name, c, None, 4096).unwrap_err();
    assert!(matches!(err, NetError::ConnectionRefused { .. }), "{err}");
}

#[cfg(target_os = "linux")]
fn abstract_unix_datagram_names_work(kind: BackendKind) {
    let r = reactor(kind);
    let name = format!("@torque-dgram-{}-{kind}", std::process::id());
    let (server, seen) = Recorder::new();
    let _server = r.listen_unix_datagram(&name, server, UnixDatagramOptions::default()).unwrap();
    let (client, _) = Recorder::new();
    let client = r.connect_unix_datagram(&name, client, None, 4096).unwrap();
    client.write_connected(b"abstract").unwrap();
    iterate_until(&r, || seen.datagrams.borrow().len() == 1);
}

#[cfg(not(target_os = "linux"))]
fn abstract_unix_datagram_names_work(_kind: BackendKind) {}

fn adopted_datagram_sockets_and_endpoint_strings(kind: BackendKind) {
    let r = reactor(kind);
    let std_socket = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let adopted_addr = std_socket.local_addr().unwrap();
    let (adopted, adopted_seen) = Recorder::new();
    let adopted = r.adopt_datagram_port(torque::fd::OwnedFd::from(std_socket), adopted, 2048).unwrap();
    assert_eq!(addr_of(&adopted), adopted_addr);
    let endpoint = datagram_from_string("udp:0:interface=127.0.0.1:maxPacketSize=512").unwrap();
    let (via_endpoint, endpoint_seen) = Recorder::new();
    let via_endpoint = endpoint.listen(&r, via_endpoint).unwrap();
    assert_eq!(via_endpoint.max_packet_size(), 512);
    via_endpoint.write(b"hi adopted", adopted_addr).unwrap();
    adopted.write(b"hi endpoint", addr_of(&via_endpoint)).unwrap();
    iterate_until(&r, || {
        adopted_seen.datagrams.borrow().len() == 1 && endpoint_seen.datagrams.borrow().len() == 1
    });
    for (bad, expected) in [
        ("udp", "missing port"),
        ("udp:x", "bad port"),
        ("udp:1:interface=nowhere", "bad interface"),
        ("udp:1:colour=red", "unknown option"),
        ("sctp:1", "unknown endpoint type"),
    ] {
        let err = datagram_from_string(bad).unwrap_err().to_string();
        assert!(err.contains(expected), "{bad}: {err}");
    }
    let (stream, _) = crate::support::stream_pair();
    let (p, _) = Recorder::new();
    assert!(r.adopt_datagram_port(torque::fd::OwnedFd::from(stream), p, 512).is_err());
}

crate::cases! {
    [Udp] driven {
        a_client_writes_from_its_start_hook_and_the_server_echoes,
        connected_ports_write_only_to_their_peer,
        ipv6_datagrams_work,
        an_icmp_refusal_reaches_a_connected_port,
        a_protocol_may_stop_its_own_port_from_datagram_received,
        a_64_kib_datagram_arrives_whole_and_oversized_ones_are_reported,
        one_busy_port_is_read_in_bounded_batches,
        broadcast_can_be_switched,
        two_multicast_listeners_on_one_group_both_receive,
    }
    [UnixSockets] driven {
        #[cfg(unix)] unix_datagram_sockets_talk_both_ways,
        abstract_unix_datagram_names_work,
    }
    [Udp, UnixSockets] driven {
        adopted_datagram_sockets_and_endpoint_strings,
    }
}
