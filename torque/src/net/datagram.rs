//! Datagram sockets: UDP, multicast and UNIX datagrams (Twisted's `IReactorUDP`,
//! `IReactorMulticast`, `IReactorUNIXDatagram`).
//!
//! A [`DatagramPort`] owns a non-blocking datagram socket registered for reading.
//! Each readable event reads up to [`READS_PER_EVENT`] datagrams into the reactor's
//! buffer, so one busy socket cannot starve the others; each reaches the protocol
//! as `&[u8]` with no allocation. On Linux one `recvmmsg` reads a batch (as many
//! `max_packet_size` slots as fit in the 64 KiB buffer), and a short batch shows
//! the queue is empty without a further call. Writes go straight to the socket: a full socket
//! buffer is an error the caller sees, never a hidden retry.

use crate::sys::fd::{AsRawFd, RawFd};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use socket2::{SockAddr, Socket};

use super::Address;
use crate::backend::Interest;
use crate::defer::Deferred;
use crate::{FdHandler, LostReason, Reactor, WeakReactor};

/// Datagrams read per readable event at most (fairness between sockets).
pub const READS_PER_EVENT: usize = 32;

/// The largest datagram a port accepts by default (Twisted's default is 8 KiB;
/// the UDP maximum is 65,507 bytes of payload).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// One datagram socket's application logic (Twisted's `DatagramProtocol`).
pub trait DatagramProtocol {
    /// The port is listening; writes are possible from here on.
    fn start_protocol(&mut self, port: &DatagramPort) {
        let _ = port;
    }
    /// A datagram arrived; `data` is borrowed from the reactor's buffer.
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address);
    /// A datagram longer than the port's maximum arrived; `data` holds its first
    /// `max_packet_size` bytes and `length` its real size. The default logs it.
    fn datagram_truncated(&mut self, port: &DatagramPort, data: &[u8], length: usize, from: &Address) {
        let _ = (port, data);
        tracing::warn!(%from, length, "a datagram over the port's maximum size was truncated");
    }
    /// A connected port's peer refused a datagram (ICMP port unreachable).
    fn connection_refused(&mut self, port: &DatagramPort) {
        let _ = port;
    }
    /// The port stopped; runs once, at the end of a pass.
    fn stop_protocol(&mut self) {}
}

/// Errors from writing datagrams.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DatagramError {
    /// The socket's send buffer is full (EAGAIN/ENOBUFS): try again later.
    #[error("the socket's send buffer is full; the datagram was not sent")]
    BufferFull,
    /// The datagram is larger than the socket can send (EMSGSIZE).
    #[error("the datagram is too large to send ({0} bytes)")]
    TooLarge(usize),
    /// The port is connected and may only write to its peer.
    #[error("this port is connected to {connected}; it cannot write to {requested}")]
    WrongDestination {
        /// The connected peer.
        connected: String,
        /// The destination asked for.
        requested: String,
    },
    /// `write_connected` on a port that is not connected.
    #[error("the port is not connected")]
    NotConnected,
    /// The port has stopped listening.
    #[error("the port is closed")]
    Closed,
    /// A connected peer refused the datagram (an earlier ICMP port unreachable).
    #[error("the peer refused the datagram")]
    ConnectionRefused,
    /// `connect` on a port that is already connected (Twisted: "already
    /// connected, reconnecting is not currently supported").
    #[error("the port is already connected to {0}; reconnecting is not supported")]
    AlreadyConnected(String),
    /// Any other OS error.
    #[error("cannot send the datagram: {0}")]
    Io(#[source] io::Error),
}

/// Whether two addresses name the same destination: IP addresses compare after
/// unmapping IPv4-mapped IPv6 (ignoring flow info), others byte for byte.
fn same_destination(a: &SockAddr, b: &SockAddr) -> bool {
    match (a.as_socket(), b.as_socket()) {
        (Some(x), Some(y)) => x.ip().to_canonical() == y.ip().to_canonical() && x.port() == y.port(),
        _ => a == b,
    }
}

fn send_error(e: io::Error, len: usize) -> DatagramError {
    match e.raw_os_error() {
        Some(crate::sys::errno::EAGAIN | crate::sys::errno::ENOBUFS) => DatagramError::BufferFull,
        Some(crate::sys::errno::EMSGSIZE) => DatagramError::TooLarge(len),
        _ if crate::sys::datagram::is_refusal(&e) => DatagramError::ConnectionRefused,
        _ if e.kind() == io::ErrorKind::WouldBlock => DatagramError::BufferFull,
        _ => DatagramError::Io(e),
    }
}

pub(crate) struct PortInner {
    reactor: WeakReactor,
    socket: RefCell<Option<Socket>>,
    fd: RawFd,
    address: Address,
    max_packet_size: usize,
    connected: RefCell<Option<SockAddr>>,
    protocol: RefCell<Option<Box<dyn DatagramProtocol>>>,
    listening: Cell<bool>,
    /// A UNIX socket file this port created and removes when it stops.
    unix_path: Option<std::path::PathBuf>,
    /// Reused descriptions of the last batch of datagrams (no allocation per read).
    batch: RefCell<Vec<crate::sys::datagram::Received>>,
    /// Not read while the protocol runs further up the stack (a nested pass):
    /// the datagrams wait in the kernel until it has returned.
    parked: Cell<bool>,
}

/// A listening datagram socket (Twisted's `IUDPTransport` / `IListeningPort`).
/// Clones share one port.
#[derive(Clone)]
pub struct DatagramPort {
    inner: Rc<PortInner>,
}

pub(crate) struct DatagramHandler {
    port: Rc<PortInner>,
}

impl FdHandler for DatagramHandler {
    fn readable(&mut self, reactor: &Reactor) {
        DatagramPort { inner: Rc::clone(&self.port) }.read_some(reactor);
    }
    fn connection_lost(&mut self, _reactor: &Reactor, reason: LostReason) {
        tracing::debug!(port = %self.port.address, %reason, "datagram port dropped by the reactor");
        if matches!(reason, LostReason::FdClosed) {
            // Someone closed our fd: its number may already be reused, so give
            // the socket up without closing that number again.
            if let Some(socket) = self.port.socket.borrow_mut().take() {
                let _ = crate::sys::fd::IntoRawFd::into_raw_fd(socket);
            }
        }
        drop(DatagramPort { inner: Rc::clone(&self.port) }.stop_listening());
    }
}

impl DatagramPort {
    /// Starts a port on a bound, non-blocking socket and runs `start_protocol`.
    pub(crate) fn start(
        reactor: &Reactor,
        socket: Socket,
        protocol: Box<dyn DatagramProtocol>,
        max_packet_size: usize,
        unix_path: Option<std::path::PathBuf>,
        connected: Option<SockAddr>,
    ) -> Result<DatagramPort, crate::ReactorError> {
        let address = socket.local_addr().map(|a| Address::from_sockaddr(&a)).unwrap_or(Address::UnixUnnamed);
        let fd = socket.as_raw_fd();
        let connected = connected.or_else(|| socket.peer_addr().ok());
        let inner = Rc::new(PortInner {
            reactor: reactor.downgrade(),
            socket: RefCell::new(Some(socket)),
            fd,
            address,
            max_packet_size: max_packet_size.clamp(1, 65_536),
            connected: RefCell::new(connected),
            protocol: RefCell::new(Some(protocol)),
            listening: Cell::new(true),
            unix_path,
            batch: RefCell::new(Vec::with_capacity(crate::sys::datagram::BATCH)),
            parked: Cell::new(false),
        });
        // Only the reactor's registry holds the handler (and through it the port):
        // no cycle, so a port dropped with its reactor frees its socket.
        let handler = Rc::new(RefCell::new(DatagramHandler { port: Rc::clone(&inner) }));
        if let Err(e) = reactor.watch(fd, handler, Interest::READ) {
            drop(inner.socket.borrow_mut().take());
            if let Some(path) = &inner.unix_path {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        let port = DatagramPort { inner };
        port.call_protocol("start_protocol", |p, port| p.start_protocol(port));
        Ok(port)
    }

    /// Runs `f` on the protocol; `false` if it is running further up the
    /// stack. A panic is logged and the port keeps serving: one bad datagram
    /// cannot take a server down (the datagram that caused it is dropped).
    fn call_protocol(&self, what: &str, f: impl FnOnce(&mut dyn DatagramProtocol, &DatagramPort)) -> bool {
        let Ok(mut slot) = self.inner.protocol.try_borrow_mut() else { return false };
        let Some(protocol) = slot.as_mut() else { return true };
        let result = catch_unwind(AssertUnwindSafe(|| f(protocol.as_mut(), self)));
        drop(slot);
        if let Err(payload) = result {
            let message = crate::reactor::panic_message(&*payload);
            tracing::error!(port = %self.inner.address, panic = %message, "{what} panicked; the port keeps serving");
        }
        true
    }

    /// The protocol runs further up the stack: stop watching the socket (its
    /// datagrams wait in the kernel) and look again on a later pass.
    fn wait_for_protocol(&self, reactor: &Reactor) {
        if !self.inner.parked.replace(true) {
            reactor.unwatch(self.inner.fd, Interest::READ);
        }
        let port = self.clone();
        reactor.call_later(std::time::Duration::ZERO, move |r| {
            if port.inner.protocol.try_borrow_mut().is_err() {
                port.wait_for_protocol(r);
                return;
            }
            port.inner.parked.set(false);
            if port.inner.listening.get() {
                let handler = Rc::new(RefCell::new(DatagramHandler { port: Rc::clone(&port.inner) }));
                if let Err(e) = r.watch(port.inner.fd, handler, Interest::READ) {
                    tracing::warn!(port = %port.inner.address, error = %e, "cannot watch the port again");
                }
            }
        });
    }

    fn read_some(&self, reactor: &Reactor) {
        if self.inner.protocol.try_borrow_mut().is_err() {
            self.wait_for_protocol(reactor);
            return;
        }
        let mut buffer = reactor.take_read_buffer();
        let mut batch = std::mem::take(&mut *self.inner.batch.borrow_mut());
        let slot = self.inner.max_packet_size.min(buffer.len());
        let mut budget = READS_PER_EVENT;
        while budget > 0 && self.inner.listening.get() {
            batch.clear();
            // As many as fit (one recvmmsg on Linux; one datagram per call
            // where the system reads one at a time).
            let asked = (buffer.len() / slot).clamp(1, budget).min(crate::sys::datagram::MOST_PER_CALL);
            let received = match self.inner.socket.borrow().as_ref() {
                Some(socket) => {
                    crate::sys::datagram::recv_batch(socket, &mut buffer, slot, asked, &mut batch)
                }
                None => break,
            };
            match received {
                Ok(n) => {
                    for datagram in &batch {
                        if !self.inner.listening.get() {
                            break; // the protocol stopped its own port
                        }
                        let from = Address::from_sockaddr(&datagram.from);
                        let shown = datagram.len.min(slot);
                        let data = &buffer[datagram.offset..datagram.offset + shown];
                        if datagram.len > slot {
                            self.call_protocol("datagram_truncated", |p, port| {
                                p.datagram_truncated(port, data, datagram.len, &from)
                            });
                        } else {
                            self.call_protocol("datagram_received", |p, port| {
                                p.datagram_received(port, data, &from)
                            });
                        }
                    }
                    budget = budget.saturating_sub(n.max(1));
                    if n < asked {
                        break; // the queue is empty: no extra call needed to learn it
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if crate::sys::datagram::is_refusal(&e) => {
                    self.call_protocol("connection_refused", |p, port| p.connection_refused(port));
                    budget -= 1;
                }
                Err(e) => {
                    tracing::warn!(port = %self.inner.address, error = %e, "datagram receive failed");
                    break;
                }
            }
        }
        batch.clear();
        *self.inner.batch.borrow_mut() = batch;
        reactor.return_read_buffer(buffer);
    }

    /// Sends `data` to `to` at once. A full send buffer is
    /// [`DatagramError::BufferFull`]: nothing is queued or retried.
    pub fn write(&self, data: &[u8], to: SocketAddr) -> Result<usize, DatagramError> {
        self.write_to_sockaddr(data, &SockAddr::from(to), || to.to_string())
    }

    /// Sends `data` to a UNIX datagram socket at `path` (or `@name`).
    pub fn write_unix(&self, data: &[u8], path: &str) -> Result<usize, DatagramError> {
        let addr = super::unix::unix_addr(path).map_err(DatagramError::Io)?.0;
        self.write_to_sockaddr(data, &addr, || path.to_owned())
    }

    fn write_to_sockaddr(
        &self,
        data: &[u8],
        to: &SockAddr,
        shown: impl FnOnce() -> String,
    ) -> Result<usize, DatagramError> {
        let connected = self.inner.connected.borrow().is_some();
        if let Some(peer) = self.inner.connected.borrow().as_ref() {
            if !same_destination(peer, to) {
                return Err(DatagramError::WrongDestination {
                    connected: Address::from_sockaddr(peer).to_string(),
                    requested: shown(),
                });
            }
        }
        let socket = self.inner.socket.borrow();
        let socket = socket.as_ref().ok_or(DatagramError::Closed)?;
        let sent = if connected { socket.send(data) } else { socket.send_to(data, to) };
        sent.map_err(|e| send_error(e, data.len()))
    }

    /// Sends `data` to the connected peer.
    pub fn write_connected(&self, data: &[u8]) -> Result<usize, DatagramError> {
        if self.inner.connected.borrow().is_none() {
            return Err(DatagramError::NotConnected);
        }
        let socket = self.inner.socket.borrow();
        let socket = socket.as_ref().ok_or(DatagramError::Closed)?;
        socket.send(data).map_err(|e| send_error(e, data.len()))
    }

    /// Connects the port to one peer: it then receives only from it, may write
    /// only to it, and hears `connection_refused` when the peer is not there.
    /// A port connects once: a second `connect` is
    /// [`DatagramError::AlreadyConnected`], as in Twisted.
    pub fn connect(&self, peer: SocketAddr) -> Result<(), DatagramError> {
        self.connect_sockaddr(SockAddr::from(peer))
    }

    pub(crate) fn connect_sockaddr(&self, peer: SockAddr) -> Result<(), DatagramError> {
        if let Some(connected) = self.peer() {
            return Err(DatagramError::AlreadyConnected(connected.to_string()));
        }
        let socket = self.inner.socket.borrow();
        let socket = socket.as_ref().ok_or(DatagramError::Closed)?;
        socket.connect(&peer).map_err(DatagramError::Io)?;
        *self.inner.connected.borrow_mut() = Some(peer);
        Ok(())
    }

    /// The connected peer, if any.
    pub fn peer(&self) -> Option<Address> {
        self.inner.connected.borrow().as_ref().map(Address::from_sockaddr)
    }

    /// The address the port is bound to (with the real port if 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// The largest datagram delivered whole.
    pub fn max_packet_size(&self) -> usize {
        self.inner.max_packet_size
    }

    fn socket_op<T>(&self, op: impl FnOnce(&Socket) -> io::Result<T>) -> io::Result<T> {
        match self.inner.socket.borrow().as_ref() {
            Some(socket) => op(socket),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Allows or forbids sending to broadcast addresses (SO_BROADCAST).
    pub fn set_broadcast_allowed(&self, allowed: bool) -> io::Result<()> {
        self.socket_op(|s| s.set_broadcast(allowed))
    }

    /// Whether sending to broadcast addresses is allowed.
    pub fn broadcast_allowed(&self) -> io::Result<bool> {
        self.socket_op(|s| s.broadcast())
    }

    /// Joins a multicast group on `interface`: for IPv4 an interface address
    /// (unspecified: the default); for IPv6 `::` (the default interface; use
    /// [`join_group_v6`](DatagramPort::join_group_v6) to pick one by index).
    pub fn join_group(&self, group: IpAddr, interface: IpAddr) -> io::Result<()> {
        self.socket_op(|s| match (group, interface) {
            (IpAddr::V4(g), IpAddr::V4(i)) => s.join_multicast_v4(&g, &i),
            (IpAddr::V6(g), IpAddr::V6(i)) if i.is_unspecified() => s.join_multicast_v6(&g, 0),
            _ => Err(mismatched_interface()),
        })
    }

    /// Joins an IPv6 multicast group on the interface with this index (0: default).
    pub fn join_group_v6(&self, group: Ipv6Addr, interface_index: u32) -> io::Result<()> {
        self.socket_op(|s| s.join_multicast_v6(&group, interface_index))
    }

    /// Leaves a multicast group joined with [`join_group`](DatagramPort::join_group).
    pub fn leave_group(&self, group: IpAddr, interface: IpAddr) -> io::Result<()> {
        self.socket_op(|s| match (group, interface) {
            (IpAddr::V4(g), IpAddr::V4(i)) => s.leave_multicast_v4(&g, &i),
            (IpAddr::V6(g), IpAddr::V6(i)) if i.is_unspecified() => s.leave_multicast_v6(&g, 0),
            _ => Err(mismatched_interface()),
        })
    }

    /// Sets the multicast time-to-live (hop limit for IPv6).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket_op(|s| match self.inner.address.socket_addr() {
            Some(SocketAddr::V6(_)) => s.set_multicast_hops_v6(ttl),
            _ => s.set_multicast_ttl_v4(ttl),
        })
    }

    /// The multicast time-to-live (hop limit for IPv6; Twisted's `getTTL`).
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket_op(|s| match self.inner.address.socket_addr() {
            Some(SocketAddr::V6(_)) => s.multicast_hops_v6(),
            _ => s.multicast_ttl_v4(),
        })
    }

    /// Whether our own multicast datagrams come back to us (Twisted's
    /// `getLoopbackMode`).
    pub fn loopback_mode(&self) -> io::Result<bool> {
        self.socket_op(|s| match self.inner.address.socket_addr() {
            Some(SocketAddr::V6(_)) => s.multicast_loop_v6(),
            _ => s.multicast_loop_v4(),
        })
    }

    /// The IPv4 address of the interface multicast datagrams go out of
    /// (`0.0.0.0`: the system's choice; Twisted's `getOutgoingInterface`).
    pub fn outgoing_interface(&self) -> io::Result<Ipv4Addr> {
        self.socket_op(|s| s.multicast_if_v4())
    }

    /// The index of the interface IPv6 multicast datagrams go out of (0: the
    /// system's choice).
    pub fn outgoing_interface_v6(&self) -> io::Result<u32> {
        self.socket_op(|s| s.multicast_if_v6())
    }

    /// Whether our own multicast datagrams come back to us.
    pub fn set_loopback_mode(&self, enabled: bool) -> io::Result<()> {
        self.socket_op(|s| match self.inner.address.socket_addr() {
            Some(SocketAddr::V6(_)) => s.set_multicast_loop_v6(enabled),
            _ => s.set_multicast_loop_v4(enabled),
        })
    }

    /// Sends multicast datagrams out of the interface with this IPv4 address.
    pub fn set_outgoing_interface(&self, interface: Ipv4Addr) -> io::Result<()> {
        self.socket_op(|s| s.set_multicast_if_v4(&interface))
    }

    /// Sends IPv6 multicast datagrams out of the interface with this index.
    pub fn set_outgoing_interface_v6(&self, index: u32) -> io::Result<()> {
        self.socket_op(|s| s.set_multicast_if_v6(index))
    }

    /// Whether the port is still open.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.get()
    }

    /// Stops listening and closes the socket. `stop_protocol` runs once, at the end
    /// of the pass (never inside this call), then the Deferred fires.
    pub fn stop_listening(&self) -> Deferred<()> {
        let (deferred, resolver) = Deferred::pending();
        let was_listening = self.inner.listening.replace(false);
        let reactor = self.inner.reactor.upgrade();
        if was_listening {
            if let Some(reactor) = &reactor {
                reactor.unwatch(self.inner.fd, Interest::READ);
            }
            drop(self.inner.socket.borrow_mut().take());
            if let Some(path) = &self.inner.unix_path {
                let _ = std::fs::remove_file(path);
            }
        }
        match reactor {
            Some(reactor) => {
                let this = self.clone();
                reactor.at_end_of_pass(move |_| this.deliver_stop(was_listening, resolver));
            }
            None => {
                let _ = resolver.callback(());
            }
        }
        deferred
    }

    /// Runs `stop_protocol` (once) and then fires the stop Deferred.
    fn deliver_stop(&self, was_listening: bool, resolver: crate::defer::Resolver<()>) {
        if was_listening {
            let Ok(mut slot) = self.inner.protocol.try_borrow_mut() else {
                // Still running further up the stack: tell it when it has returned.
                if let Some(reactor) = self.inner.reactor.upgrade() {
                    let this = self.clone();
                    reactor.call_later(std::time::Duration::ZERO, move |_| this.deliver_stop(true, resolver));
                }
                return;
            };
            let protocol = slot.take();
            drop(slot);
            if let Some(mut protocol) = protocol {
                protocol.stop_protocol();
            }
        }
        let _ = resolver.callback(());
    }
}

impl fmt::Debug for DatagramPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramPort")
            .field("address", &self.inner.address)
            .field("listening", &self.is_listening())
            .finish()
    }
}

fn mismatched_interface() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an IPv4 group needs an IPv4 interface address; an IPv6 group takes :: here, or an index with join_group_v6",
    )
}

/// Unspecified IPv4, for `join_group`'s default interface.
pub const ANY_INTERFACE_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Unspecified IPv6, for `join_group`'s default interface.
pub const ANY_INTERFACE_V6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
