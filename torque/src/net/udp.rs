//! Opening datagram ports: UDP, multicast, UNIX datagrams, adoption, and `udp:`
//! endpoint strings.

use crate::sys::fd::OwnedFd;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

use super::datagram::{DEFAULT_MAX_PACKET_SIZE, DatagramPort, DatagramProtocol};
use super::tcp::listen_error;
use super::unix::{clear_stale_socket, unix_addr};
use super::{EndpointError, NetError};
use crate::Reactor;

/// Options for [`Reactor::listen_udp`] and [`Reactor::listen_multicast`].
#[derive(Clone, Debug)]
pub struct UdpOptions {
    /// The interface to bind (default: every IPv4 interface).
    pub interface: IpAddr,
    /// Datagrams longer than this are reported as truncated (default 8 KiB).
    pub max_packet_size: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions { interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED), max_packet_size: DEFAULT_MAX_PACKET_SIZE }
    }
}

impl UdpOptions {
    /// Options binding `interface`.
    pub fn interface(interface: IpAddr) -> UdpOptions {
        UdpOptions { interface, ..UdpOptions::default() }
    }
}

/// Options for [`Reactor::listen_unix_datagram`].
#[derive(Clone, Debug)]
pub struct UnixDatagramOptions {
    /// File mode for the socket file.
    pub mode: Option<u32>,
    /// Datagrams longer than this are reported as truncated (default 8 KiB).
    pub max_packet_size: usize,
}

impl Default for UnixDatagramOptions {
    fn default() -> Self {
        UnixDatagramOptions { mode: None, max_packet_size: DEFAULT_MAX_PACKET_SIZE }
    }
}

fn udp_socket(address: SocketAddr, reuse: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, None)?;
    socket.set_nonblocking(true)?;
    if reuse {
        // Several listeners may share a multicast group's port.
        socket.set_reuse_address(true)?;
        crate::sys::socket::set_reuse_port(&socket)?;
    }
    socket.bind(&address.into())?;
    Ok(socket)
}

impl Reactor {
    /// Listens for UDP datagrams on `port` (0: ephemeral) — Twisted's `listenUDP`.
    /// `start_protocol` runs before this returns, so the protocol may write at once.
    pub fn listen_udp(
        &self,
        port: u16,
        protocol: impl DatagramProtocol + 'static,
        options: UdpOptions,
    ) -> Result<DatagramPort, NetError> {
        self.listen_udp_port(port, Box::new(protocol), options, false)
    }

    /// Like [`listen_udp`](Reactor::listen_udp) with address and port reuse, so
    /// several listeners on one machine can share a multicast group's port
    /// (Twisted's `listenMulticast`). Join groups with `join_group`.
    pub fn listen_multicast(
        &self,
        port: u16,
        protocol: impl DatagramProtocol + 'static,
        options: UdpOptions,
    ) -> Result<DatagramPort, NetError> {
        self.listen_udp_port(port, Box::new(protocol), options, true)
    }

    fn listen_udp_port(
        &self,
        port: u16,
        protocol: Box<dyn DatagramProtocol>,
        options: UdpOptions,
        reuse: bool,
    ) -> Result<DatagramPort, NetError> {
        self.backend().require(crate::Capability::Udp)?;
        let address = SocketAddr::new(options.interface, port);
        let socket = udp_socket(address, reuse).map_err(|e| listen_error(format!("udp:{address}"), e))?;
        Ok(DatagramPort::start(self, socket, protocol, options.max_packet_size, None, None)?)
    }

    /// Listens on a UNIX datagram socket at `name` (a path, or `@name` for a Linux
    /// abstract socket); a stale socket file is replaced, a live one refused.
    pub fn listen_unix_datagram(
        &self,
        name: &str,
        protocol: impl DatagramProtocol + 'static,
        options: UnixDatagramOptions,
    ) -> Result<DatagramPort, NetError> {
        self.backend().require(crate::Capability::UnixSockets)?;
        let err = |e| listen_error(format!("unixgram:{name}"), e);
        let (addr, path) = unix_addr(name).map_err(err)?;
        if let Some(path) = &path {
            clear_stale_socket(path, &addr, Type::DGRAM).map_err(err)?;
        }
        if name.is_empty() {
            return Err(err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty socket name")));
        }
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None).map_err(err)?;
        socket.set_nonblocking(true).map_err(err)?;
        socket.bind(&addr).map_err(err)?;
        if let (Some(path), Some(mode)) = (&path, options.mode) {
            if let Err(e) = crate::sys::unix_socket::set_socket_mode(path, mode) {
                let _ = std::fs::remove_file(path);
                return Err(err(e));
            }
        }
        Ok(DatagramPort::start(self, socket, Box::new(protocol), options.max_packet_size, path, None)?)
    }

    /// A UNIX datagram socket connected to `name`, optionally bound to `bind` (a
    /// path or `@name`) so the peer can answer (Twisted's `connectUNIXDatagram`).
    pub fn connect_unix_datagram(
        &self,
        name: &str,
        protocol: impl DatagramProtocol + 'static,
        bind: Option<&str>,
        max_packet_size: usize,
    ) -> Result<DatagramPort, NetError> {
        self.backend().require(crate::Capability::UnixSockets)?;
        let err = |e| NetError::Connect { address: format!("unixgram:{name}"), source: e };
        let (peer, _) = unix_addr(name).map_err(err)?;
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None).map_err(err)?;
        socket.set_nonblocking(true).map_err(err)?;
        let mut created = None;
        if let Some(bind) = bind {
            let (local, path) = unix_addr(bind).map_err(err)?;
            if let Some(path) = &path {
                clear_stale_socket(path, &local, Type::DGRAM).map_err(err)?;
            }
            socket.bind(&local).map_err(err)?;
            created = path;
        }
        if let Err(e) = socket.connect(&peer) {
            if let Some(path) = &created {
                let _ = std::fs::remove_file(path);
            }
            return Err(match e.raw_os_error() {
                Some(crate::sys::errno::ECONNREFUSED | crate::sys::errno::ENOENT) => {
                    NetError::ConnectionRefused { address: format!("unixgram:{name}") }
                }
                _ => err(e),
            });
        }
        // Writes are checked against the address given here, not the one the
        // kernel reports back (which may be spelled differently).
        let port =
            DatagramPort::start(self, socket, Box::new(protocol), max_packet_size, created, Some(peer));
        Ok(port?)
    }

    /// Serves an already-open datagram socket (UDP or UNIX), taking ownership
    /// (Twisted's `adoptDatagramPort`).
    pub fn adopt_datagram_port(
        &self,
        socket: OwnedFd,
        protocol: impl DatagramProtocol + 'static,
        max_packet_size: usize,
    ) -> Result<DatagramPort, NetError> {
        let socket = Socket::from(socket);
        let err = |e| listen_error("adopted datagram socket", e);
        if socket.r#type().map_err(err)? != Type::DGRAM {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the socket is not a datagram socket",
            )));
        }
        socket.set_nonblocking(true).map_err(err)?;
        Ok(DatagramPort::start(self, socket, Box::new(protocol), max_packet_size, None, None)?)
    }
}

/// A datagram listener parsed from `udp:PORT[:interface=IP][:maxPacketSize=N]`
/// or `unixgram:PATH[:mode=OCTAL]`.
#[derive(Clone, Debug, PartialEq)]
pub enum DatagramEndpoint {
    /// A UDP port.
    Udp {
        /// The port (0: ephemeral).
        port: u16,
        /// The interface.
        interface: IpAddr,
        /// The largest datagram delivered whole.
        max_packet_size: usize,
    },
    /// A UNIX datagram socket.
    UnixDatagram {
        /// The path or `@name`.
        path: String,
        /// The file mode.
        mode: Option<u32>,
    },
}

/// Parses a datagram listener description (`udp:5353:interface=127.0.0.1`).
pub fn datagram_from_string(description: &str) -> Result<DatagramEndpoint, EndpointError> {
    let parsed = super::endpoint::parse_public(description)?;
    let d = description;
    let bad = |field: &'static str, value: &str, reason: String| EndpointError::BadValue {
        field,
        value: value.to_owned(),
        description: d.to_owned(),
        reason,
    };
    let too_many = || EndpointError::TooManyFields { description: d.to_owned() };
    match parsed.kind.as_str() {
        "udp" => {
            let mut positional = parsed.positional.into_iter();
            let mut port = positional.next();
            if positional.next().is_some() {
                return Err(too_many());
            }
            let mut interface: IpAddr = Ipv4Addr::UNSPECIFIED.into();
            let mut max_packet_size = DEFAULT_MAX_PACKET_SIZE;
            for (k, v) in parsed.options {
                match k.as_str() {
                    "port" => port = Some(v),
                    "interface" => {
                        interface = v
                            .parse()
                            .map_err(|e: std::net::AddrParseError| bad("interface", &v, e.to_string()))?
                    }
                    "maxPacketSize" => {
                        max_packet_size = v
                            .parse()
                            .map_err(|e: std::num::ParseIntError| bad("maxPacketSize", &v, e.to_string()))?;
                        if !(1..=65_536).contains(&max_packet_size) {
                            return Err(bad("maxPacketSize", &v, "expected 1 to 65536".into()));
                        }
                    }
                    _ => {
                        return Err(EndpointError::UnknownOption {
                            option: k,
                            kind: "udp",
                            description: d.to_owned(),
                        });
                    }
                }
            }
            let port = port.ok_or(EndpointError::Missing { field: "port", description: d.to_owned() })?;
            let port = super::endpoint::port_number(&port, "udp", d)?;
            Ok(DatagramEndpoint::Udp { port, interface, max_packet_size })
        }
        "unixgram" => {
            let mut positional = parsed.positional.into_iter();
            let mut path = positional.next();
            if positional.next().is_some() {
                return Err(too_many());
            }
            let mut mode = None;
            for (k, v) in parsed.options {
                match k.as_str() {
                    "path" | "address" => path = Some(v),
                    "mode" => {
                        mode = Some(
                            u32::from_str_radix(&v, 8)
                                .map_err(|e| bad("mode", &v, format!("expected octal: {e}")))?,
                        )
                    }
                    _ => {
                        return Err(EndpointError::UnknownOption {
                            option: k,
                            kind: "unixgram",
                            description: d.to_owned(),
                        });
                    }
                }
            }
            let path = path
                .filter(|p| !p.is_empty())
                .ok_or(EndpointError::Missing { field: "path", description: d.to_owned() })?;
            Ok(DatagramEndpoint::UnixDatagram { path, mode })
        }
        _ => Err(EndpointError::UnknownType {
            kind: parsed.kind,
            description: d.to_owned(),
            known: "udp, unixgram",
        }),
    }
}

impl DatagramEndpoint {
    /// Listens here with `protocol`.
    pub fn listen(
        &self,
        reactor: &Reactor,
        protocol: impl DatagramProtocol + 'static,
    ) -> Result<DatagramPort, NetError> {
        match self {
            DatagramEndpoint::Udp { port, interface, max_packet_size } => reactor.listen_udp(
                *port,
                protocol,
                UdpOptions { interface: *interface, max_packet_size: *max_packet_size },
            ),
            DatagramEndpoint::UnixDatagram { path, mode } => reactor.listen_unix_datagram(
                path,
                protocol,
                UnixDatagramOptions { mode: *mode, ..UnixDatagramOptions::default() },
            ),
        }
    }
}
