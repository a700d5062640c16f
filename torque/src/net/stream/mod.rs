//! A connected stream socket (TCP or UNIX) and its [`Transport`] handle.
//!
//! Three `RefCell`s, never borrowed across user code except the protocol's own:
//! `state` (buffers and flags; no user code runs while it is borrowed), `protocol`
//! (borrowed while a protocol callback runs), and the registered `StreamHandler`
//! (borrowed by the reactor during dispatch). Closing marks the connection
//! disconnected at once, so later writes are dropped, and queues `connection_lost`
//! for the end of the pass.
//!
//! A connection may carry a TLS stage ([`tls`]): then writes are encrypted on
//! their way into the write buffer and reads decrypted on their way out, so the
//! buffer, producers and closing rules below apply to the encrypted stream.

mod deliver;
mod tls;

use crate::sys::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Read};
use std::net::Shutdown;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use socket2::Socket;

use super::{Address, DisconnectReason, Protocol};
use crate::backend::Interest;
use crate::sys::socket::{SEND_FLAGS, SEND_UNTIL_WOULD_BLOCK};
use crate::sys::unix_socket::{self, MAX_FDS_PER_MESSAGE, PeerCredentials};
use crate::{FdHandler, LostReason, Reactor, WeakReactor};
use deliver::{Delivery, Held};

/// Write-buffer size above which a streaming producer is paused.
const DEFAULT_HIGH_WATER: usize = 512 * 1024;
/// Size at or below which a paused streaming producer is resumed.
const DEFAULT_LOW_WATER: usize = 128 * 1024;
/// Queued descriptors above which a streaming producer is paused (Twisted's
/// `_fileDescriptorBufferSize`).
const FD_HIGH_WATER: usize = 64;
/// Queued descriptors at or below which it may resume.
const FD_LOW_WATER: usize = MAX_FDS_PER_MESSAGE;

/// Something that produces data for a transport (Twisted's `IPushProducer` /
/// `IPullProducer`).
pub trait Producer {
    /// Streaming producers: the transport's buffer is over its high-water mark.
    fn pause_producing(&mut self) {}
    /// Streaming: the buffer drained below the low-water mark. Pull producers:
    /// the buffer is empty; produce some more now.
    fn resume_producing(&mut self);
    /// The connection is closing; stop for good.
    fn stop_producing(&mut self) {}
}

type ProducerRef = Rc<RefCell<dyn Producer>>;

/// Why [`Transport::register_producer`] refused a producer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// A producer is registered already; unregister it first (Twisted raises
    /// `RuntimeError` here rather than replacing it silently).
    #[error("a producer is already registered; call unregister_producer first")]
    AlreadyRegistered,
}

/// Told once, after `connection_lost`, with the same reason (client factories).
pub(crate) type OnClosed = Box<dyn FnOnce(&Reactor, &DisconnectReason)>;

/// Buffered outgoing bytes: a vector and the offset of the first unsent byte.
#[derive(Default)]
struct WriteBuffer {
    bytes: Vec<u8>,
    sent: usize,
    /// On a completion-served socket: how many bytes (at `lent_from` in their
    /// own `Vec`, which moved to the backend) a send in flight holds. They
    /// come before `bytes[sent..]`, written since.
    lent: usize,
    lent_from: usize,
    /// The other buffer of a completion connection, empty: taken as `bytes`
    /// when `bytes` is lent, so writes made while a send is in flight
    /// allocate nothing.
    spare: Vec<u8>,
}

/// The largest spare buffer a connection keeps (larger ones are freed).
const SPARE_CAPACITY: usize = 64 * 1024;

impl WriteBuffer {
    fn len(&self) -> usize {
        self.lent + self.bytes.len() - self.sent
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes not lent to a send.
    fn pending(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }
    /// Moves the unsent bytes out to lend them to the backend's send: the
    /// `Vec` and the offset its bytes start at. None if a send holds some
    /// already, or nothing waits.
    fn lend(&mut self) -> Option<(Vec<u8>, usize)> {
        if self.lent > 0 || self.pending().is_empty() {
            return None;
        }
        self.lent = self.bytes.len() - self.sent;
        self.lent_from = self.sent;
        self.sent = 0;
        let spare = std::mem::take(&mut self.spare);
        Some((std::mem::replace(&mut self.bytes, spare), self.lent_from))
    }
    /// The lent `buffer` is back, `n` of its bytes sent: the rest goes
    /// first, then what was written meanwhile. Its allocation is kept, so a
    /// connection alternates two buffers and allocates nothing per send.
    fn returned(&mut self, n: usize, mut buffer: Vec<u8>) {
        let n = n.min(self.lent);
        if n == self.lent {
            buffer.clear();
            if self.bytes.is_empty() {
                // The empty one becomes the spare again.
                self.spare = std::mem::replace(&mut self.bytes, buffer);
                self.sent = 0;
            } else {
                self.spare = buffer;
            }
            if self.spare.capacity() > SPARE_CAPACITY {
                self.spare = Vec::new();
            }
        } else {
            // Partly sent: the unsent tail stays where it is; what was
            // written meanwhile moves behind it.
            buffer.extend_from_slice(&self.bytes[self.sent..]);
            let mut written = std::mem::replace(&mut self.bytes, buffer);
            written.clear();
            if written.capacity() <= SPARE_CAPACITY {
                self.spare = written;
            }
            self.sent = self.lent_from + n;
        }
        self.lent = 0;
        self.lent_from = 0;
        self.consume(0);
    }
    fn consume(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.bytes.len() {
            self.bytes.clear();
            self.sent = 0;
        } else if self.sent > 1 << 20 && self.sent * 2 > self.bytes.len() {
            // Reclaim the sent prefix once it dominates, so a long transfer does
            // not keep every byte it ever buffered.
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
    }
    fn clear(&mut self) {
        self.bytes = Vec::new();
        self.sent = 0;
        // A lent buffer stays with the backend until its send completes.
        self.lent = 0;
        self.lent_from = 0;
        self.spare = Vec::new();
    }
}

#[derive(Default)]
struct State {
    buffer: WriteBuffer,
    /// `lose_connection` was called: flush, then close.
    disconnecting: bool,
    /// Gone: the socket is closed or about to be; writes are dropped.
    disconnected: bool,
    /// `lose_write_connection` was called: flush, then shut down our side.
    write_closing: bool,
    /// Our writing side is shut down.
    write_shut: bool,
    /// The peer's writing side ended (EOF seen).
    read_shut: bool,
    /// `pause_producing` on the transport: data is left unread.
    reading_paused: bool,
    /// Paused with unread data waiting: the fd is not watched until resumed
    /// (level-triggered readiness would otherwise spin).
    reader_parked: bool,
    /// Descriptors to send with the next bytes written (UNIX sockets), in
    /// order; unbounded, with a streaming producer paused past
    /// [`FD_HIGH_WATER`].
    pending_fds: VecDeque<OwnedFd>,
    writer_registered: bool,
    producer: Option<(ProducerRef, bool)>,
    producer_paused: bool,
    high_water: usize,
    low_water: usize,
    bytes_sent: u64,
    bytes_received: u64,
    /// Closing with this reason once the buffer has gone (a TLS alert after a
    /// failure must reach the peer): nothing more is written or read.
    failing: Option<DisconnectReason>,
}

/// How long a failing connection waits for the peer to take what is
/// buffered (a TLS alert behind unsent data) before it closes anyway.
const FAILURE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// The far side of an in-memory connection (testing): what the protocol wrote,
/// whether our write side was shut, and data held back while reading is paused.
#[derive(Default)]
pub(crate) struct MemoryPipe {
    pub(crate) written: RefCell<Vec<u8>>,
    pub(crate) write_shut: std::cell::Cell<bool>,
    pub(crate) held: RefCell<Vec<u8>>,
    /// The peer's end of file, waiting behind held data.
    pub(crate) eof_pending: std::cell::Cell<bool>,
}

pub(crate) struct Connection {
    reactor: WeakReactor,
    /// Owns the fd (a pipe's too); taken when the connection closes. None
    /// for an in-memory transport.
    socket: RefCell<Option<Socket>>,
    fd: RawFd,
    /// How its bytes move, fixed when it starts.
    io: Io,
    local: Address,
    peer: Address,
    state: RefCell<State>,
    protocol: RefCell<Option<Box<dyn Protocol>>>,
    handler: RefCell<Option<Rc<RefCell<StreamHandler>>>>,
    /// The TLS stage, once `start_tls_*` installed it; `tls_on` mirrors it so the
    /// plain path pays one flag test.
    tls: RefCell<Option<Box<tls::TlsStage>>>,
    tls_on: Cell<bool>,
    /// Called once with the reason after `connection_lost` (client factories,
    /// ports' connection counts).
    on_closed: RefCell<Option<OnClosed>>,
    lost_delivered: Cell<bool>,
    /// Events waiting for a busy protocol, and a panic's reason.
    delivery: RefCell<Delivery>,
}

/// What a connection talks through: the fd's owner (none in memory), the fd,
/// and how its bytes move.
struct Endpoint {
    socket: Option<Socket>,
    fd: RawFd,
    io: Io,
}

/// How a connection's bytes move: one kind per connection, chosen when it
/// starts.
enum Io {
    /// A TCP socket on a readiness backend: `recv`/`send`, `sendfile`.
    Socket,
    /// A UNIX stream socket: `recvmsg`/`sendmsg`, which carry passed fds.
    UnixSocket,
    /// A TCP socket the backend serves by completions (io_uring): reads taken
    /// from the backend, writes lent to it — the bytes stay counted in the
    /// write buffer until the send completes, so everything that waits for the
    /// buffer to drain (closes, half-closes, producers) waits for them.
    Completion,
    /// A pipe or PTY end of a child process: `read(2)`/`write(2)`.
    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    Pipe(PipeEnd),
    /// In memory (`testing`): writes are recorded in the pipe, never sent.
    Memory(Rc<MemoryPipe>),
}

impl Io {
    fn is_unix(&self) -> bool {
        matches!(self, Io::UnixSocket)
    }
    fn completions(&self) -> bool {
        matches!(self, Io::Completion)
    }
    fn pipe(&self) -> Option<PipeEnd> {
        match self {
            Io::Pipe(end) => Some(*end),
            _ => None,
        }
    }
    fn memory(&self) -> Option<&Rc<MemoryPipe>> {
        match self {
            Io::Memory(pipe) => Some(pipe),
            _ => None,
        }
    }
}

/// Which way a pipe transport's fd goes (child processes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
pub(crate) enum PipeEnd {
    /// We read what the child writes.
    Read,
    /// We write what the child reads; readiness to read means the child closed
    /// its end.
    Write,
    /// A PTY master: both ways; EIO on read is the end of the terminal.
    Pty,
}

impl Connection {
    fn new(
        reactor: &Reactor,
        endpoint: Endpoint,
        local: Address,
        peer: Address,
        protocol: Box<dyn Protocol>,
        on_closed: Option<OnClosed>,
    ) -> Rc<Connection> {
        Rc::new(Connection {
            reactor: reactor.downgrade(),
            socket: RefCell::new(endpoint.socket),
            fd: endpoint.fd,
            io: endpoint.io,
            local,
            peer,
            state: RefCell::new(State {
                high_water: DEFAULT_HIGH_WATER,
                low_water: DEFAULT_LOW_WATER,
                ..State::default()
            }),
            protocol: RefCell::new(Some(protocol)),
            handler: RefCell::new(None),
            tls: RefCell::new(None),
            tls_on: Cell::new(false),
            on_closed: RefCell::new(on_closed),
            lost_delivered: Cell::new(false),
            delivery: RefCell::new(Delivery::default()),
        })
    }
}

/// The handle a protocol uses to talk to its connection (Twisted's `ITransport`,
/// `ITCPTransport`, `IProducer` and `IConsumer`). Clones share one connection.
#[derive(Clone)]
pub struct Transport {
    conn: Rc<Connection>,
}

pub(crate) struct StreamHandler {
    conn: Rc<Connection>,
}

impl FdHandler for StreamHandler {
    fn readable(&mut self, reactor: &Reactor) {
        Transport { conn: Rc::clone(&self.conn) }.do_read(reactor);
    }
    fn writable(&mut self, reactor: &Reactor) {
        Transport { conn: Rc::clone(&self.conn) }.do_write(reactor);
    }
    fn connection_lost(&mut self, _reactor: &Reactor, reason: LostReason) {
        if matches!(reason, LostReason::FdClosed) {
            // Someone closed our fd; its number may be reused: do not close it again.
            if let Some(socket) = self.conn.socket.borrow_mut().take() {
                let _ = crate::sys::fd::IntoRawFd::into_raw_fd(socket);
            }
        }
        let why = match reason {
            // As in Twisted's disconnectAll: connections cut by shutdown are lost.
            LostReason::Shutdown => DisconnectReason::Lost(io::Error::other("the reactor shut down")),
            LostReason::FdClosed => {
                DisconnectReason::Lost(io::Error::from_raw_os_error(crate::sys::errno::EBADF))
            }
            LostReason::Panicked(msg) => DisconnectReason::Panicked(msg),
            LostReason::Error(e) => DisconnectReason::Lost(e),
        };
        Transport { conn: Rc::clone(&self.conn) }.close_now(why);
    }
}

/// One `send`/`sendmsg` for all of `parts`, without allocating for up to 16.
fn send_parts(socket: &Socket, parts: &[&[u8]]) -> io::Result<usize> {
    if let [one] = parts {
        return socket.send_with_flags(one, SEND_FLAGS);
    }
    let mut slices = [IoSlice::new(&[]); 16];
    if parts.len() <= slices.len() {
        for (slot, part) in slices.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
        }
        socket.send_vectored_with_flags(&slices[..parts.len()], SEND_FLAGS)
    } else {
        let many: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        socket.send_vectored_with_flags(&many, SEND_FLAGS)
    }
}

/// As [`send_parts`], and where the platform announces room only after a
/// send that would block (Winsock's `FD_WRITE`, `SEND_UNTIL_WOULD_BLOCK`),
/// sends again after a short send until the socket would block or takes it
/// all, so the announcement is owed. Returns what was sent; an error after
/// some bytes went is left for the next send to meet.
fn send_until_full(socket: &Socket, parts: &[&[u8]], total: usize) -> io::Result<usize> {
    let mut sent = send_parts(socket, parts)?;
    while SEND_UNTIL_WOULD_BLOCK && sent > 0 && sent < total {
        let mut rest = [&[][..]; 16];
        let mut count = 0;
        let mut skip = sent;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
            } else if count < rest.len() {
                rest[count] = &part[skip..];
                skip = 0;
                count += 1;
            }
        }
        match send_parts(socket, &rest[..count]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    Ok(sent)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Whether a `sendfile` error came from the connection rather than the file.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            crate::sys::errno::EPIPE
                | crate::sys::errno::ECONNRESET
                | crate::sys::errno::ENOTCONN
                | crate::sys::errno::ECONNABORTED
                | crate::sys::errno::ETIMEDOUT
        )
    )
}

impl Transport {
    /// Wraps a connected, non-blocking socket, registers it for reading and runs
    /// the protocol's `connection_made`.
    pub(crate) fn start(
        reactor: &Reactor,
        socket: Socket,
        protocol: Box<dyn Protocol>,
        on_closed: Option<OnClosed>,
    ) -> Result<Transport, crate::ReactorError> {
        Transport::start_with(reactor, socket, None, protocol, on_closed, |_| {})
    }

    /// Like [`start`](Transport::start) for a connection a port accepted from
    /// `peer` (known already: no `getpeername`).
    pub(crate) fn start_accepted(
        reactor: &Reactor,
        socket: Socket,
        peer: Address,
        protocol: Box<dyn Protocol>,
    ) -> Result<Transport, crate::ReactorError> {
        Transport::start_with(reactor, socket, Some(peer), protocol, None, |_| {})
    }

    /// Like [`start`](Transport::start), running `before_made` just before
    /// `connection_made` (a connector records its transport there).
    pub(crate) fn start_with(
        reactor: &Reactor,
        socket: Socket,
        peer: Option<Address>,
        protocol: Box<dyn Protocol>,
        on_closed: Option<OnClosed>,
        before_made: impl FnOnce(&Transport),
    ) -> Result<Transport, crate::ReactorError> {
        let local = socket.local_addr().map(|a| Address::from_sockaddr(&a)).unwrap_or(Address::UnixUnnamed);
        let peer = peer.unwrap_or_else(|| {
            socket.peer_addr().map(|a| Address::from_sockaddr(&a)).unwrap_or(Address::UnixUnnamed)
        });
        let fd = socket.as_raw_fd();
        let is_unix = !matches!(local, Address::Ip(_));
        if let Err(e) = crate::sys::socket::prepare_stream(&socket) {
            tracing::debug!(error = %e, "cannot set the socket's options");
        }
        // UNIX sockets keep recvmsg/sendmsg (passed fds); TCP may use completions.
        let io = if is_unix {
            Io::UnixSocket
        } else if reactor.stream_completions(fd) {
            Io::Completion
        } else {
            Io::Socket
        };
        let endpoint = Endpoint { socket: Some(socket), fd, io };
        let conn = Connection::new(reactor, endpoint, local, peer, protocol, on_closed);
        let transport = Transport::register(reactor, conn)?;
        before_made(&transport);
        transport.call_protocol(|p, t| p.connection_made(t));
        Ok(transport)
    }

    /// An in-memory transport (testing): no socket, writes collect in the pipe,
    /// and the test injects data and closes. `connection_made` runs now.
    pub(crate) fn start_memory(
        reactor: &Reactor,
        protocol: Box<dyn Protocol>,
        local: Address,
        peer: Address,
        on_closed: Option<OnClosed>,
    ) -> (Transport, Rc<MemoryPipe>) {
        let pipe = Rc::new(MemoryPipe::default());
        let endpoint = Endpoint { socket: None, fd: crate::sys::NO_FD, io: Io::Memory(Rc::clone(&pipe)) };
        let conn = Connection::new(reactor, endpoint, local, peer, protocol, on_closed);
        let transport = Transport { conn };
        transport.call_protocol(|p, t| p.connection_made(t));
        (transport, pipe)
    }

    /// Wraps one end of a pipe or a PTY master (a child process's fd), registers
    /// it and runs `connection_made`. The fd must be non-blocking.
    #[cfg_attr(not(unix), allow(dead_code))] // child processes are Unix-only so far
    pub(crate) fn start_pipe(
        reactor: &Reactor,
        fd: OwnedFd,
        end: PipeEnd,
        protocol: Box<dyn Protocol>,
        on_closed: Option<OnClosed>,
    ) -> Result<Transport, crate::ReactorError> {
        let raw = fd.as_raw_fd();
        // socket2's `Socket` is only an owner of the fd here: pipe transports
        // never make socket calls on it.
        let endpoint = Endpoint { socket: Some(Socket::from(fd)), fd: raw, io: Io::Pipe(end) };
        let conn = Connection::new(
            reactor,
            endpoint,
            Address::UnixUnnamed,
            Address::UnixUnnamed,
            protocol,
            on_closed,
        );
        let transport = Transport::register(reactor, conn)?;
        transport.call_protocol(|p, t| p.connection_made(t));
        Ok(transport)
    }

    /// Gives a new connection its handler and watches its fd for reading; on
    /// failure the fd is closed and nothing stays registered.
    fn register(reactor: &Reactor, conn: Rc<Connection>) -> Result<Transport, crate::ReactorError> {
        let handler = Rc::new(RefCell::new(StreamHandler { conn: Rc::clone(&conn) }));
        *conn.handler.borrow_mut() = Some(Rc::clone(&handler));
        let fd = conn.fd;
        let transport = Transport { conn };
        // A completion connection's write interest stays for its life: its
        // sends' completions come as writable events (see `do_write`).
        let interest = if transport.conn.io.completions() { Interest::BOTH } else { Interest::READ };
        if let Err(e) = reactor.watch(fd, handler, interest) {
            if transport.conn.io.completions() {
                reactor.forget_completions(fd);
            }
            transport.conn.handler.borrow_mut().take();
            transport.conn.socket.borrow_mut().take();
            return Err(e);
        }
        Ok(transport)
    }

    /// In memory: the peer sent `data`. Held (in order) while reading is paused
    /// or the protocol is busy further up the stack.
    pub(crate) fn receive_memory(&self, data: &[u8]) {
        let Some(pipe) = self.conn.io.memory() else { return };
        // A closing TLS connection still reads: to finish its handshake, or
        // (lingering) to see the peer's close.
        let tls_reads = self.conn.tls_on.get() && self.tls_reads_while_closing();
        let (paused, gone) = {
            let state = self.conn.state.borrow();
            (
                state.reading_paused,
                state.disconnected || (state.disconnecting && !tls_reads) || state.read_shut,
            )
        };
        if gone || data.is_empty() {
            return;
        }
        pipe.held.borrow_mut().extend_from_slice(data);
        // TLS takes data while paused (the handshake goes on; plaintext waits).
        if !paused || self.conn.tls_on.get() {
            self.flush_memory();
        }
    }

    /// In memory: delivers held data, then a pending end of file.
    fn flush_memory(&self) {
        let Some(pipe) = self.conn.io.memory() else { return };
        if self.conn.state.borrow().reading_paused && !self.conn.tls_on.get() {
            return;
        }
        if !self.protocol_free() {
            // The protocol is running further up the stack: on a later pass.
            if let Some(reactor) = self.reactor() {
                self.wait_for_protocol(&reactor);
            }
            return;
        }
        let held = std::mem::take(&mut *pipe.held.borrow_mut());
        if !held.is_empty() {
            self.conn.state.borrow_mut().bytes_received += held.len() as u64;
            if self.conn.tls_on.get() {
                if let Some(reactor) = self.reactor() {
                    self.tls_receive(&reactor, &held);
                }
            } else {
                self.call_protocol(|p, t| p.data_received(t, &held));
            }
        }
        if pipe.held.borrow().is_empty() && pipe.eof_pending.replace(false) {
            self.peer_eof_memory();
        }
    }

    /// In memory: the peer closed its writing side (after any held data).
    pub(crate) fn peer_eof_memory(&self) {
        let Some(pipe) = self.conn.io.memory() else { return };
        let paused = self.conn.state.borrow().reading_paused;
        if paused || !pipe.held.borrow().is_empty() {
            pipe.eof_pending.set(true);
            if !paused {
                self.flush_memory();
            }
            return;
        }
        if let Some(reactor) = self.reactor() {
            let done = {
                let state = self.conn.state.borrow();
                state.read_shut || state.disconnected
            };
            if !done {
                self.read_eof(&reactor);
            }
        }
    }

    /// In memory: the connection was reset.
    pub(crate) fn peer_reset_memory(&self) {
        self.close_now(DisconnectReason::Lost(io::Error::from(io::ErrorKind::ConnectionReset)));
    }

    /// Whether the connection is fully closed (not just closing).
    pub(crate) fn is_closed(&self) -> bool {
        self.conn.state.borrow().disconnected
    }

    /// Whether the peer's end of file has been seen (or the connection is gone).
    pub(crate) fn conn_read_shut(&self) -> bool {
        let state = self.conn.state.borrow();
        state.read_shut || state.disconnected
    }

    fn reactor(&self) -> Option<Reactor> {
        self.conn.reactor.upgrade()
    }

    fn handler(&self) -> Option<Rc<RefCell<StreamHandler>>> {
        self.conn.handler.borrow().clone()
    }

    // ----- reading -----

    fn do_read(&self, reactor: &Reactor) {
        let paused = {
            let state = self.conn.state.borrow();
            if state.disconnected {
                return;
            }
            state.reading_paused
        };
        if paused && !(self.conn.tls_on.get() && self.tls_can_read_while_paused()) {
            self.peek_while_paused(reactor);
            return;
        }
        if !self.protocol_free() {
            // Running further up the stack (a nested pass): read nothing now,
            // so nothing read is lost or reordered.
            self.wait_for_protocol(reactor);
            return;
        }
        if self.conn.io.completions() && !self.conn.tls_on.get() {
            // One receive's bytes, straight from the backend's buffer.
            if let Some(bytes) = reactor.lend_received(self.conn.fd) {
                self.conn.state.borrow_mut().bytes_received += bytes.len() as u64;
                self.call_protocol(|p, t| p.data_received(t, &bytes));
                reactor.give_back_received(bytes);
                return;
            }
        }
        let mut buffer = reactor.take_read_buffer();
        let mut fds = Vec::new();
        let result = match (&self.conn.io, self.conn.socket.borrow().as_ref()) {
            // Closed, or in memory (the test injects data instead).
            (_, None) => Ok(0),
            // A write end is readable (in error) only once the reader is gone.
            (Io::Pipe(PipeEnd::Write), _) => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            (Io::Pipe(_), _) => match crate::sys::read(self.conn.fd, &mut buffer) {
                // A PTY master reads EIO once the terminal's last user closed it.
                Err(e) if e.raw_os_error() == Some(crate::sys::errno::EIO) => Ok(0),
                other => other,
            },
            (Io::UnixSocket, _) => unix_socket::recv_with_fds(self.conn.fd, &mut buffer, &mut fds),
            (Io::Completion, _) => reactor.take_received(self.conn.fd, &mut buffer),
            (Io::Socket | Io::Memory(_), Some(socket)) => (&*socket).read(&mut buffer),
        };
        for fd in fds {
            if self.conn.state.borrow().disconnected {
                break; // the protocol closed the connection; the rest just close
            }
            self.deliver(Held::Fd(fd));
        }
        if self.conn.state.borrow().disconnected {
            reactor.return_read_buffer(buffer);
            return;
        }
        match result {
            Ok(0) => {
                reactor.return_read_buffer(buffer);
                self.read_eof(reactor);
            }
            Ok(n) => {
                self.conn.state.borrow_mut().bytes_received += n as u64;
                if self.conn.tls_on.get() {
                    self.tls_receive(reactor, &buffer[..n]);
                } else {
                    self.call_protocol(|p, t| p.data_received(t, &buffer[..n]));
                }
                reactor.return_read_buffer(buffer);
            }
            Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {
                reactor.return_read_buffer(buffer);
            }
            Err(e) => {
                reactor.return_read_buffer(buffer);
                self.close_now(DisconnectReason::Lost(e));
            }
        }
    }

    /// Readable while paused: look without consuming. End of file or an error is
    /// handled now, so a paused transport still notices the peer going away; unread
    /// data parks the reader until `resume_producing`.
    fn peek_while_paused(&self, reactor: &Reactor) {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let peeked = match (&self.conn.io, self.conn.socket.borrow().as_ref()) {
            (_, None) => return,
            // A pipe cannot be peeked: park until resumed.
            (Io::Pipe(_), _) => Ok(1),
            (Io::Completion, _) => reactor.peek_received(self.conn.fd),
            (Io::Socket | Io::UnixSocket | Io::Memory(_), Some(socket)) => socket.peek(&mut byte),
        };
        match peeked {
            Ok(0) => self.read_eof(reactor),
            Ok(_) => {
                self.conn.state.borrow_mut().reader_parked = true;
                reactor.unwatch(self.conn.fd, Interest::READ);
            }
            Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.close_now(DisconnectReason::Lost(e)),
        }
    }

    /// The peer's end of file on the socket (or memory pipe).
    fn read_eof(&self, reactor: &Reactor) {
        if self.conn.tls_on.get() {
            self.tls_raw_eof(reactor);
        } else {
            self.end_of_input(reactor);
        }
    }

    /// No more data will arrive: the socket's end of file, or TLS close_notify.
    fn end_of_input(&self, reactor: &Reactor) {
        let write_shut = {
            let mut state = self.conn.state.borrow_mut();
            state.read_shut = true;
            state.write_shut
        };
        reactor.unwatch(self.conn.fd, Interest::READ);
        if write_shut {
            // Both directions are finished: the connection is done.
            self.close_now(DisconnectReason::Done);
        } else {
            self.deliver(Held::ReadLost);
        }
    }

    // ----- writing -----

    /// Sends `data`: as much as the kernel takes now, the rest buffered and sent as
    /// the socket allows. As in Twisted, data written while a `lose_connection` is
    /// still flushing is sent before the close; writes once the connection is gone
    /// (closed, aborted, lost, or our writing side shut down) are dropped silently.
    pub fn write(&self, data: &[u8]) {
        self.write_vectored(&[data]);
    }

    /// Sends several buffers in order, with one system call where possible.
    pub fn write_vectored(&self, parts: &[&[u8]]) {
        if self.conn.tls_on.get() {
            self.tls_write(parts);
        } else if let Err(e) = self.raw_send(parts) {
            self.close_now(DisconnectReason::Lost(e));
            return;
        }
        self.maybe_pause_producer();
    }

    /// Sends `parts` on the socket (or pipe) as they are, buffering what the
    /// kernel does not take. Runs no user code; an error is returned for the
    /// caller to close with, outside any borrow it holds.
    fn raw_send(&self, parts: &[&[u8]]) -> io::Result<()> {
        if self.conn.io.completions() {
            return self.raw_send_lent(parts);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let mut failure = None;
        let mut need_writer = false;
        {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || state.write_shut || state.failing.is_some() {
                return Ok(());
            }
            let mut sent = 0;
            if state.buffer.is_empty() && state.pending_fds.is_empty() {
                let result = match (&self.conn.io, self.conn.socket.borrow().as_ref()) {
                    (Io::Memory(pipe), _) => {
                        let mut written = pipe.written.borrow_mut();
                        parts.iter().for_each(|p| written.extend_from_slice(p));
                        Ok(total)
                    }
                    // Completion connections write in `raw_send_lent`.
                    (_, None) | (Io::Completion, _) => Ok(0),
                    (Io::Pipe(_), _) => crate::sys::write_vectored(self.conn.fd, parts),
                    (Io::Socket | Io::UnixSocket, Some(socket)) => send_until_full(socket, parts, total),
                };
                match result {
                    Ok(n) => sent = n,
                    Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => failure = Some(e),
                }
            }
            if failure.is_none() {
                state.bytes_sent += sent as u64;
                let mut skip = sent;
                for part in parts {
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    state.buffer.bytes.extend_from_slice(&part[skip..]);
                    skip = 0;
                }
                // Watch for writability while bytes wait, and also when a pull
                // producer is registered: its next writable event asks it for more.
                let pull_producer = matches!(state.producer, Some((_, false)));
                if (!state.buffer.is_empty() || pull_producer) && !state.writer_registered {
                    state.writer_registered = true;
                    need_writer = true;
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if need_writer {
            self.try_register_writer()?;
        }
        Ok(())
    }

    /// [`raw_send`](Transport::raw_send) on a completion connection: settles
    /// a send that finished unannounced, buffers `parts`, and lends the
    /// buffer to a send — or, with one in flight, asks to hear its end.
    fn raw_send_lent(&self, parts: &[&[u8]]) -> io::Result<()> {
        if parts.iter().all(|p| p.is_empty()) {
            return Ok(());
        }
        let Some(reactor) = self.reactor() else { return Ok(()) };
        let mut need_writer = false;
        let failure = {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || state.write_shut || state.failing.is_some() {
                return Ok(());
            }
            let mut failure = self.settle_send(&reactor, &mut state);
            if failure.is_none() {
                let in_flight = state.buffer.lent > 0;
                parts.iter().for_each(|p| state.buffer.bytes.extend_from_slice(p));
                if in_flight {
                    // These wait behind a send: its end must be heard.
                    reactor.notify_writable(self.conn.fd);
                } else {
                    failure = self.start_send(&reactor, &mut state);
                }
                // A pull producer's next writable event asks it for more.
                if matches!(state.producer, Some((_, false))) && !state.writer_registered {
                    state.writer_registered = true;
                    need_writer = true;
                }
            }
            failure
        };
        if let Some(e) = failure {
            return Err(e);
        }
        if need_writer {
            self.try_register_writer()?;
        }
        Ok(())
    }

    /// On a completion-served socket with no send in flight, lends what
    /// waits in `buffer` to the backend's send; the error that ends the
    /// connection, if any. Runs no user code.
    ///
    /// The send's end is announced (a writable event) only if something
    /// waits for the buffer to drain — a producer, a close or half-close, a
    /// failure's alert, TLS — or it left bytes behind; otherwise its result
    /// is settled when the transport next writes or looks at its buffer
    /// ([`settle_send`](Transport::settle_send)), which saves an event per
    /// message.
    fn start_send(&self, reactor: &Reactor, state: &mut State) -> Option<io::Error> {
        let (lent, offset) = state.buffer.lend()?;
        match reactor.send_lent(self.conn.fd, lent, offset) {
            Ok(()) => {
                if self.drain_awaited(state) {
                    reactor.notify_writable(self.conn.fd);
                }
                None
            }
            Err((e, lent)) => {
                state.buffer.returned(0, lent);
                (!would_block(&e)).then_some(e)
            }
        }
    }

    /// Whether something waits for the write buffer to drain.
    fn drain_awaited(&self, state: &State) -> bool {
        state.producer.is_some()
            || state.disconnecting
            || state.write_closing
            || state.failing.is_some()
            || self.conn.tls_on.get()
    }

    /// Completion connections: takes a finished send's result that was not
    /// announced, and sends what is left. The error that ends the
    /// connection, if any. Runs no user code.
    fn settle_send(&self, reactor: &Reactor, state: &mut State) -> Option<io::Error> {
        if state.buffer.lent == 0 {
            return None;
        }
        match reactor.take_send_result(self.conn.fd)? {
            (Ok(n), lent) => {
                state.buffer.returned(n, lent);
                state.bytes_sent += n as u64;
                self.start_send(reactor, state)
            }
            (Err(e), lent) => {
                state.buffer.returned(0, lent);
                Some(e)
            }
        }
    }

    /// Before the transport decides on its buffer (closing, producers,
    /// `buffered`): settles a finished send, closing on its error.
    fn settle(&self) {
        if !self.conn.io.completions() {
            return;
        }
        let Some(reactor) = self.reactor() else { return };
        let failure = {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected {
                return;
            }
            self.settle_send(&reactor, &mut state)
        };
        if let Some(e) = failure {
            self.close_now(DisconnectReason::Lost(e));
        }
    }

    /// Something now waits for the buffer to drain: a send in flight must be
    /// heard when it ends.
    fn await_drain(&self) {
        if !self.conn.io.completions() || self.conn.state.borrow().buffer.lent == 0 {
            return;
        }
        if let Some(reactor) = self.reactor() {
            reactor.notify_writable(self.conn.fd);
        }
    }

    fn register_writer(&self) {
        if let Err(e) = self.try_register_writer() {
            self.close_now(DisconnectReason::Lost(e));
        }
    }

    /// Watches for writability; runs no user code, so callers holding a borrow
    /// may use it and close on the error afterwards.
    fn try_register_writer(&self) -> io::Result<()> {
        if self.conn.io.memory().is_some() {
            // In memory everything is "sent" at once; a pull producer is asked
            // for more at the end of the pass, as a writable event would.
            // A zero-delay call: at most one ask per pass, as with a socket's
            // writable event, so an endless producer cannot hold a pass forever.
            if let Some(reactor) = self.reactor() {
                let this = self.clone();
                reactor.call_later(std::time::Duration::ZERO, move |r| {
                    this.conn.state.borrow_mut().writer_registered = false;
                    this.buffer_drained(r);
                });
            }
            return Ok(());
        }
        if self.conn.io.completions() {
            if let Some(reactor) = self.reactor() {
                reactor.notify_writable(self.conn.fd);
            }
            return Ok(());
        }
        if let (Some(reactor), Some(handler)) = (self.reactor(), self.handler()) {
            reactor
                .watch(self.conn.fd, handler, Interest::WRITE)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(())
    }

    fn do_write(&self, reactor: &Reactor) {
        let mut failure = None;
        let drained;
        {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected {
                return;
            }
            if self.conn.io.completions() {
                // The backend's send finished (this event says so): its bytes
                // leave the buffer; the next part goes.
                match reactor.send_done(self.conn.fd) {
                    Some((Ok(n), buffer)) => {
                        state.buffer.returned(n, buffer);
                        state.bytes_sent += n as u64;
                    }
                    Some((Err(e), buffer)) => {
                        state.buffer.returned(0, buffer);
                        failure = Some(e);
                    }
                    None => {}
                }
                if failure.is_none() {
                    failure = self.start_send(reactor, &mut state);
                }
            }
            while !state.buffer.is_empty() && !self.conn.io.completions() {
                // Descriptors go at most MAX_FDS_PER_MESSAGE to a message; while
                // more wait than one carries, a message carries one byte, so
                // bytes are left for the rest.
                let fds_sent = state.pending_fds.len().min(MAX_FDS_PER_MESSAGE);
                let result = match (&self.conn.io, self.conn.socket.borrow().as_ref()) {
                    (_, None) => Ok(0),
                    (_, Some(_)) if fds_sent > 0 => {
                        let fds: Vec<RawFd> =
                            state.pending_fds.iter().take(fds_sent).map(AsRawFd::as_raw_fd).collect();
                        let data = state.buffer.pending();
                        let data = if state.pending_fds.len() > fds_sent { &data[..1] } else { data };
                        unix_socket::send_with_fds(self.conn.fd, data, &fds)
                    }
                    (Io::Pipe(_), _) => crate::sys::write(self.conn.fd, state.buffer.pending()),
                    (_, Some(socket)) => socket.send_with_flags(state.buffer.pending(), SEND_FLAGS),
                };
                match result {
                    Ok(0) => break,
                    Ok(n) => {
                        // The descriptors went with these bytes; our copies close.
                        state.pending_fds.drain(..fds_sent);
                        state.buffer.consume(n);
                        state.bytes_sent += n as u64;
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drained = state.buffer.is_empty();
            if drained && failure.is_none() {
                state.writer_registered = false;
            }
        }
        if let Some(e) = failure {
            self.close_now(DisconnectReason::Lost(e));
            return;
        }
        if !drained {
            self.maybe_resume_producer();
            return;
        }
        if !self.conn.io.completions() {
            reactor.unwatch(self.conn.fd, Interest::WRITE);
        }
        self.buffer_drained(reactor);
    }

    /// The write buffer just became empty: wake producers, finish closes.
    fn buffer_drained(&self, reactor: &Reactor) {
        let failing = self.conn.state.borrow_mut().failing.take();
        if let Some(reason) = failing {
            self.close_now(reason);
            return;
        }
        self.maybe_resume_producer();
        let (disconnecting, write_closing, has_producer, empty) = {
            let state = self.conn.state.borrow();
            (state.disconnecting, state.write_closing, state.producer.is_some(), state.buffer.is_empty())
        };
        if !empty {
            return; // a producer wrote more
        }
        if disconnecting && !has_producer {
            self.finish_close();
        } else if write_closing && !has_producer {
            self.shut_write(reactor);
        }
    }

    /// Everything is flushed and no producer is left: close cleanly, after
    /// sending TLS close_notify on a TLS connection.
    fn finish_close(&self) {
        if self.conn.state.borrow().disconnected {
            return;
        }
        if self.conn.tls_on.get() && (!self.tls_close_notify_flushed() || self.tls_linger()) {
            // Flushing the close_notify (or the handshake) comes back here; a
            // lingering close ends when the peer closes too.
            return;
        }
        self.close_now(DisconnectReason::Done);
    }

    fn shut_write(&self, reactor: &Reactor) {
        if self.conn.tls_on.get() && !self.tls_close_notify_flushed() {
            return; // comes back here once the close_notify is on its way
        }
        if self.conn.io.pipe().is_some() {
            // A pipe has no half-close: its reader sees end of file only when
            // the fd closes.
            self.close_now(DisconnectReason::Done);
            return;
        }
        let read_shut = {
            let mut state = self.conn.state.borrow_mut();
            if state.write_shut || state.disconnected {
                return;
            }
            state.write_shut = true;
            state.write_closing = false;
            state.read_shut
        };
        if let Some(socket) = self.conn.socket.borrow().as_ref() {
            let _ = socket.shutdown(Shutdown::Write);
        }
        if let Some(pipe) = self.conn.io.memory() {
            pipe.write_shut.set(true);
        }
        if read_shut {
            self.close_now(DisconnectReason::Done);
            return;
        }
        let this = self.clone();
        reactor.at_end_of_pass(move |_| this.deliver(Held::WriteLost));
    }

    // ----- closing -----

    /// Closes the connection once everything buffered has been sent (and, with a
    /// producer registered, once it unregisters). `connection_lost(Done)` follows
    /// at the end of the pass, never inside this call.
    pub fn lose_connection(&self) {
        self.settle();
        let (flush_now, has_producer) = {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || state.disconnecting {
                return;
            }
            state.disconnecting = true;
            (state.buffer.is_empty(), state.producer.is_some())
        };
        // A TLS handshake in progress must go on reading to finish.
        if !self.tls_handshaking() {
            if let Some(reactor) = self.reactor() {
                reactor.unwatch(self.conn.fd, Interest::READ);
            }
        }
        // With a producer registered, the close waits for it to unregister.
        if flush_now && !has_producer {
            self.finish_close();
        } else {
            self.await_drain();
        }
    }

    /// Closes the connection now, dropping anything unsent. `connection_lost(Aborted)`
    /// follows at the end of the pass.
    pub fn abort_connection(&self) {
        self.close_now(DisconnectReason::Aborted);
    }

    /// Half-closes: sends what is buffered, then shuts down our writing side (the
    /// peer sees end of file). Reading goes on; `write_connection_lost` follows.
    pub fn lose_write_connection(&self) {
        self.settle();
        let flush_now = {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || state.disconnecting || state.write_closing || state.write_shut {
                return;
            }
            state.write_closing = true;
            state.buffer.is_empty() && state.producer.is_none()
        };
        if flush_now {
            if let Some(reactor) = self.reactor() {
                self.shut_write(&reactor);
            }
        } else {
            self.await_drain();
        }
    }

    /// Closes with `reason` once what is buffered has been sent — a TLS alert
    /// queued behind unsent data must still reach the peer — or after
    /// [`FAILURE_LINGER`] if the peer does not take it. Nothing more is read,
    /// and later writes are dropped.
    pub(super) fn close_after_flush(&self, reason: DisconnectReason) {
        self.settle();
        let flushed = {
            let state = self.conn.state.borrow();
            if state.disconnected || state.failing.is_some() {
                return;
            }
            state.buffer.is_empty()
        };
        if flushed || self.conn.io.memory().is_some() {
            self.close_now(reason);
            return;
        }
        let producer = {
            let mut state = self.conn.state.borrow_mut();
            state.failing = Some(reason);
            state.disconnecting = true;
            state.producer.take()
        };
        let Some(reactor) = self.reactor() else { return };
        reactor.unwatch(self.conn.fd, Interest::READ);
        self.await_drain();
        if let Some((producer, _)) = producer {
            stop_producer(&reactor, producer);
        }
        let this = self.clone();
        reactor.call_later(FAILURE_LINGER, move |_| {
            let failing = this.conn.state.borrow_mut().failing.take();
            if let Some(reason) = failing {
                this.close_now(reason);
            }
        });
    }

    /// Tears the connection down and queues `connection_lost(reason)` for the end of
    /// the pass. Idempotent: only the first reason counts.
    fn close_now(&self, mut reason: DisconnectReason) {
        let producer = {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected {
                return;
            }
            state.disconnected = true;
            state.buffer.clear();
            // Descriptors no byte carried close unsent; a clean close says so.
            let unsent = std::mem::take(&mut state.pending_fds).len();
            if unsent > 0 && reason.is_clean() {
                reason = DisconnectReason::DescriptorsNotSent(unsent);
            }
            state.producer.take()
        };
        let reactor = self.reactor();
        if let Some(reactor) = &reactor {
            reactor.unwatch(self.conn.fd, Interest::BOTH);
            if self.conn.io.completions() {
                reactor.forget_completions(self.conn.fd);
            }
        }
        // The fd is deregistered above, so closing it cannot leave a stale
        // registration; the handler's Rc cycle is broken here too.
        let socket = self.conn.socket.borrow_mut().take();
        drop(socket);
        let handler = self.conn.handler.borrow_mut().take();
        drop(handler);
        self.tls_closed();
        if let Some(reactor) = reactor {
            if let Some((producer, _)) = producer {
                stop_producer(&reactor, producer);
            }
            let this = self.clone();
            reactor.at_end_of_pass(move |r| this.deliver_lost(r, reason));
        }
    }

    fn deliver_lost(&self, reactor: &Reactor, reason: DisconnectReason) {
        if self.conn.lost_delivered.get() {
            return;
        }
        if self.conn.protocol.try_borrow_mut().is_err() {
            // The protocol is still running further up the stack (a nested
            // iterate); tell it once it has returned.
            let this = self.clone();
            reactor.call_later(std::time::Duration::ZERO, move |r| this.deliver_lost(r, reason));
            return;
        }
        // Events that waited for the protocol happened before the close: they
        // go first (a passed fd is handed over, not dropped).
        self.deliver_held_before_lost();
        let Ok(mut slot) = self.conn.protocol.try_borrow_mut() else {
            let this = self.clone();
            reactor.call_later(std::time::Duration::ZERO, move |r| this.deliver_lost(r, reason));
            return;
        };
        self.conn.lost_delivered.set(true);
        let protocol = slot.take();
        drop(slot);
        let reason = self.final_reason(reason);
        let Some(mut protocol) = protocol else { return };
        let on_closed = self.conn.on_closed.borrow_mut().take();
        let told = |protocol: &mut Box<dyn Protocol>, reason| {
            let result = catch_unwind(AssertUnwindSafe(|| protocol.connection_lost(reason)));
            if let Err(payload) = result {
                let message = crate::reactor::panic_message(&*payload);
                tracing::error!(panic = %message, "connection_lost panicked");
            }
        };
        if let Some(on_closed) = on_closed {
            // The factory hears after the protocol, with the same reason.
            told(&mut protocol, clone_reason(&reason));
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| on_closed(reactor, &reason))) {
                let message = crate::reactor::panic_message(&*payload);
                tracing::error!(panic = %message, "a client factory's connection-lost callback panicked");
            }
        } else {
            told(&mut protocol, reason);
        }
    }

    /// Sends up to `len` bytes of `file` from `offset` and returns how many were
    /// taken (sent now or buffered). On Linux, a plain (not TLS) socket transport
    /// with nothing buffered sends them with `sendfile(2)`, never copying them
    /// through user space; otherwise up to 64 KiB are read and written as by
    /// [`write`](Transport::write).
    ///
    /// Taking fewer than `len` bytes (even none) means the socket is full. Call it
    /// from a registered *pull* producer's `resume_producing`: the producer is
    /// asked again once the socket drains, so a file of any size streams with at
    /// most one chunk in memory. The file ending before `offset + len` is
    /// [`io::ErrorKind::UnexpectedEof`]; a connection already closed (or shut
    /// for writing) is [`io::ErrorKind::BrokenPipe`]; other errors reading the
    /// file are returned, while the connection failing during the call ends it
    /// with `connection_lost`, as for `write`.
    pub fn write_file(&self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        self.settle();
        let direct = {
            let state = self.conn.state.borrow();
            if state.disconnected || state.write_shut {
                // Not "full": nothing will ever drain, so a producer must stop.
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the connection is closed for writing",
                ));
            }
            // TLS must encrypt the bytes, so they cannot bypass user space.
            // On a completion-served socket an empty buffer means no send is
            // in flight, so sendfile cannot overtake one.
            state.buffer.is_empty()
                && state.pending_fds.is_empty()
                && self.conn.socket.borrow().is_some()
                && !self.conn.tls_on.get()
        };
        if direct {
            loop {
                match crate::sys::socket::sendfile(self.conn.fd, file, offset, len) {
                    Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                    Ok(n) => {
                        self.conn.state.borrow_mut().bytes_sent += n as u64;
                        // As after `write`: the next writable event asks a pull
                        // producer for more.
                        self.want_writable();
                        return Ok(n);
                    }
                    Err(e) if would_block(&e) => {
                        if self.conn.io.completions() {
                            // Its writable events come from sends; this one
                            // must wait for the socket's room instead.
                            if let Some(reactor) = self.reactor() {
                                reactor.await_room(self.conn.fd);
                            }
                        }
                        self.want_writable();
                        return Ok(0);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // This file or socket cannot be spliced, or the platform's
                    // sendfile is not used: copy instead.
                    Err(e)
                        if e.kind() == io::ErrorKind::Unsupported
                            || matches!(
                                e.raw_os_error(),
                                Some(
                                    crate::sys::errno::EINVAL
                                        | crate::sys::errno::ENOSYS
                                        | crate::sys::errno::EOPNOTSUPP
                                )
                            ) =>
                    {
                        break;
                    }
                    Err(e) if is_connection_error(&e) => {
                        self.close_now(DisconnectReason::Lost(e));
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let mut chunk = vec![0; len.min(64 * 1024)];
        let n = crate::sys::read_file_at(file, &mut chunk, offset)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.write(&chunk[..n]);
        Ok(n)
    }

    /// Watches for writability (the socket is full): the writable event then asks
    /// a pull producer for more.
    fn want_writable(&self) {
        let register = {
            let mut state = self.conn.state.borrow_mut();
            !std::mem::replace(&mut state.writer_registered, true)
        };
        if register {
            self.register_writer();
        }
    }

    // ----- producers -----

    /// Registers a producer (Twisted's `registerProducer`). A streaming (push)
    /// producer is paused when the write buffer passes the high-water mark and
    /// resumed when it drains to the low-water mark; a pull producer is asked for
    /// more each time the buffer empties.
    ///
    /// On a closed transport the producer is told `stop_producing` and `Ok` is
    /// returned, as in Twisted.
    ///
    /// # Errors
    ///
    /// [`ProducerError::AlreadyRegistered`] if a producer is registered already;
    /// the registered one stays and the new one is not called.
    pub fn register_producer(
        &self,
        producer: Rc<RefCell<dyn Producer>>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.settle();
        let ask_now = {
            let mut state = self.conn.state.borrow_mut();
            if state.producer.is_some() {
                return Err(ProducerError::AlreadyRegistered);
            }
            if state.disconnected {
                drop(state);
                if let Some(reactor) = self.reactor() {
                    stop_producer(&reactor, producer);
                }
                return Ok(());
            }
            state.producer = Some((Rc::clone(&producer), streaming));
            state.producer_paused = false;
            !streaming && state.buffer.is_empty()
        };
        if ask_now {
            if let Some(reactor) = self.reactor() {
                let this = self.clone();
                reactor.at_end_of_pass(move |_| this.resume_pull_producer());
            }
        } else {
            self.await_drain();
        }
        self.maybe_pause_producer();
        Ok(())
    }

    /// Unregisters the producer; a pending `lose_connection` or
    /// `lose_write_connection` then completes.
    pub fn unregister_producer(&self) {
        self.settle();
        let (disconnecting, write_closing, empty, old) = {
            let mut state = self.conn.state.borrow_mut();
            let Some(old) = state.producer.take() else { return };
            (state.disconnecting, state.write_closing, state.buffer.is_empty(), old)
        };
        // Dropped outside the borrow: the producer's Drop may use the transport.
        drop(old);
        if empty {
            if disconnecting {
                self.finish_close();
            } else if write_closing {
                if let Some(reactor) = self.reactor() {
                    self.shut_write(&reactor);
                }
            }
        }
    }

    fn maybe_pause_producer(&self) {
        let producer = {
            let mut state = self.conn.state.borrow_mut();
            match &state.producer {
                Some((p, true))
                    if !state.producer_paused
                        && (state.buffer.len() + self.tls_unsent_plaintext() > state.high_water
                            || state.pending_fds.len() > FD_HIGH_WATER) =>
                {
                    let p = Rc::clone(p);
                    state.producer_paused = true;
                    p
                }
                _ => return,
            }
        };
        self.notify_producer(producer, true);
    }

    /// Calls `pause_producing` (`pause`) or `resume_producing`. A producer that is
    /// running right now (it called `write` from its own method) cannot be entered
    /// again: it is told at the end of the pass, if the state still holds, and
    /// meanwhile can poll [`writes_paused`](Transport::writes_paused).
    fn notify_producer(&self, producer: ProducerRef, pause: bool) {
        let busy = match producer.try_borrow_mut() {
            Ok(mut p) => {
                if pause {
                    p.pause_producing();
                } else {
                    p.resume_producing();
                }
                false
            }
            Err(_) => true,
        };
        match busy {
            false => {}
            true => {
                let Some(reactor) = self.reactor() else { return };
                let this = self.clone();
                reactor.at_end_of_pass(move |_| {
                    let still = {
                        let state = this.conn.state.borrow();
                        let same = state.producer.as_ref().is_some_and(|(p, _)| Rc::ptr_eq(p, &producer));
                        same && state.producer_paused == pause
                    };
                    if still {
                        this.notify_producer(producer, pause);
                    }
                });
            }
        }
    }

    /// Whether a streaming producer should hold off: the write buffer went over
    /// the high-water mark and has not yet drained to the low-water mark.
    pub fn writes_paused(&self) -> bool {
        let state = self.conn.state.borrow();
        // A gone connection takes no more: a producer polling this stops.
        state.producer_paused || state.disconnected || state.write_shut
    }

    fn maybe_resume_producer(&self) {
        let producer = {
            let mut state = self.conn.state.borrow_mut();
            match &state.producer {
                Some((p, true))
                    if state.producer_paused
                        && state.buffer.len() + self.tls_unsent_plaintext() <= state.low_water
                        && state.pending_fds.len() <= FD_LOW_WATER =>
                {
                    let p = Rc::clone(p);
                    state.producer_paused = false;
                    p
                }
                Some((_, false)) if state.buffer.is_empty() => {
                    drop(state);
                    self.resume_pull_producer();
                    return;
                }
                _ => return,
            }
        };
        self.notify_producer(producer, false);
    }

    fn resume_pull_producer(&self) {
        let producer = match &self.conn.state.borrow().producer {
            Some((p, false)) => Rc::clone(p),
            _ => return,
        };
        if let Ok(mut p) = producer.try_borrow_mut() {
            p.resume_producing();
        }
    }

    /// Sets the write buffer's high- and low-water marks for streaming producers.
    pub fn set_water_marks(&self, high: usize, low: usize) {
        let mut state = self.conn.state.borrow_mut();
        state.high_water = high.max(1);
        state.low_water = low.min(state.high_water);
    }

    // ----- the transport as a producer (flow control of reading) -----

    /// Stops delivering data until `resume_producing`. The peer closing (or
    /// resetting) the connection is still noticed while no unread data is waiting;
    /// once data waits, it is noticed after resuming.
    pub fn pause_producing(&self) {
        let mut state = self.conn.state.borrow_mut();
        if state.disconnected || state.reading_paused || state.read_shut {
            return;
        }
        state.reading_paused = true;
    }

    /// Resumes reading after `pause_producing`.
    pub fn resume_producing(&self) {
        {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || !state.reading_paused || state.read_shut || state.disconnecting {
                return;
            }
            state.reading_paused = false;
            if self.conn.tls_on.get() {
                // Decrypted data may be waiting with nothing left to read on the
                // socket: deliver it at the end of the pass.
                if let Some(reactor) = self.reactor() {
                    let this = self.clone();
                    reactor.at_end_of_pass(move |r| this.tls_receive(r, &[]));
                }
            }
            if self.conn.io.memory().is_some() {
                drop(state);
                self.flush_memory();
                return;
            }
            if !std::mem::take(&mut state.reader_parked) {
                return; // still registered
            }
        }
        if let (Some(reactor), Some(handler)) = (self.reactor(), self.handler()) {
            if let Err(e) = reactor.watch(self.conn.fd, handler, Interest::READ) {
                self.close_now(DisconnectReason::Lost(io::Error::other(e.to_string())));
            }
        }
    }

    /// Stops for good: closes the connection (Twisted's `stopProducing`).
    pub fn stop_producing(&self) {
        self.lose_connection();
    }

    // ----- information and options -----

    /// Our end's address.
    pub fn host(&self) -> &Address {
        &self.conn.local
    }

    /// The peer's address.
    pub fn peer(&self) -> &Address {
        &self.conn.peer
    }

    /// Bytes waiting in the write buffer.
    pub fn buffered(&self) -> usize {
        self.settle();
        self.conn.state.borrow().buffer.len() + self.tls_unsent_plaintext()
    }

    /// Whether the connection is closed or closing.
    pub fn is_disconnected(&self) -> bool {
        let state = self.conn.state.borrow();
        state.disconnected || state.disconnecting
    }

    /// Bytes handed to the kernel and received so far.
    pub fn byte_counts(&self) -> (u64, u64) {
        let state = self.conn.state.borrow();
        (state.bytes_sent, state.bytes_received)
    }

    /// Sends a duplicate of `fd` to the peer with the next bytes written (Twisted's
    /// `sendFileDescriptor`; UNIX sockets only). At least one byte must follow
    /// for it to travel; the peer's protocol gets it in `file_descriptor_received`.
    ///
    /// Descriptors queue without limit and go in order, up to 16 to a message.
    /// A registered streaming producer is paused while more than 64 wait (as
    /// in Twisted) and resumed once the queue is short again. Any still queued
    /// when the connection closes are closed unsent; a close that was
    /// otherwise clean then reports
    /// [`DisconnectReason::DescriptorsNotSent`].
    ///
    /// # Errors
    ///
    /// `Unsupported` on a transport other than a UNIX socket, `NotConnected`
    /// once it is closing or shut for writing, or the error duplicating `fd`.
    pub fn send_file_descriptor(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if !self.conn.io.is_unix() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only UNIX sockets carry file descriptors",
            ));
        }
        {
            let mut state = self.conn.state.borrow_mut();
            if state.disconnected || state.disconnecting || state.write_shut || state.write_closing {
                return Err(io::Error::from(io::ErrorKind::NotConnected));
            }
            state.pending_fds.push_back(fd.try_clone_to_owned()?);
        }
        self.maybe_pause_producer();
        Ok(())
    }

    /// The credentials of the peer process (UNIX sockets only).
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        if !self.conn.io.is_unix() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "peer credentials exist for UNIX sockets only",
            ));
        }
        if self.conn.socket.borrow().is_none() {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        }
        unix_socket::peer_credentials(self.conn.fd)
    }

    /// Holds partial TCP segments back while set (Linux `TCP_CORK`; nginx's
    /// `tcp_nopush`): a response head and the start of a file body then leave in
    /// full segments. Clearing it sends what is held. Not TCP (or not Linux):
    /// nothing to do, `Ok`.
    pub fn set_tcp_cork(&self, enabled: bool) -> io::Result<()> {
        match (self.conn.socket.borrow().as_ref(), &self.conn.local) {
            (Some(socket), Address::Ip(_)) => crate::sys::socket::set_tcp_cork(socket, enabled),
            (Some(_), _) => Ok(()),
            (None, _) if self.conn.io.memory().is_some() && !self.is_disconnected() => Ok(()),
            (None, _) => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Sets TCP_NODELAY (no effect on UNIX sockets).
    pub fn set_tcp_nodelay(&self, enabled: bool) -> io::Result<()> {
        match (self.conn.socket.borrow().as_ref(), &self.conn.local) {
            (Some(socket), Address::Ip(_)) => socket.set_tcp_nodelay(enabled),
            (Some(_), _) => Ok(()),
            (None, _) if self.conn.io.memory().is_some() && !self.is_disconnected() => Ok(()),
            (None, _) => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Sets SO_KEEPALIVE (no effect in memory).
    pub fn set_tcp_keepalive(&self, enabled: bool) -> io::Result<()> {
        match self.conn.socket.borrow().as_ref() {
            Some(socket) => socket.set_keepalive(enabled),
            None if self.conn.io.memory().is_some() && !self.is_disconnected() => Ok(()),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// The socket's fd while connected.
    pub fn fd(&self) -> Option<RawFd> {
        self.conn.socket.borrow().as_ref().map(|s| s.as_raw_fd())
    }

    /// Whether two handles name the same connection.
    pub fn same_connection(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.conn, &other.conn)
    }
}

/// Tells a producer to stop for good; if it is running right now (its own write
/// failed), it is told at the end of the pass instead.
fn stop_producer(reactor: &Reactor, producer: ProducerRef) {
    let busy = match producer.try_borrow_mut() {
        Ok(mut p) => {
            p.stop_producing();
            false
        }
        Err(_) => true,
    };
    if busy {
        reactor.at_end_of_pass(move |_| {
            if let Ok(mut p) = producer.try_borrow_mut() {
                p.stop_producing();
            }
        });
    }
}

pub(crate) fn clone_reason(reason: &DisconnectReason) -> DisconnectReason {
    match reason {
        DisconnectReason::Done => DisconnectReason::Done,
        DisconnectReason::Aborted => DisconnectReason::Aborted,
        DisconnectReason::Tls(e) => DisconnectReason::Tls(e.clone()),
        DisconnectReason::Panicked(message) => DisconnectReason::Panicked(message.clone()),
        DisconnectReason::DescriptorsNotSent(n) => DisconnectReason::DescriptorsNotSent(*n),
        DisconnectReason::Lost(e) => DisconnectReason::Lost(match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        }),
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("host", &self.conn.local)
            .field("peer", &self.conn.peer)
            .field("disconnected", &self.is_disconnected())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::WriteBuffer;

    fn written(buffer: &mut WriteBuffer, bytes: &[u8]) {
        buffer.bytes.extend_from_slice(bytes);
    }

    #[test]
    fn a_lent_buffer_counts_until_it_comes_back() {
        let mut buffer = WriteBuffer::default();
        written(&mut buffer, b"hello");
        let (lent, offset) = buffer.lend().unwrap();
        assert_eq!(&lent[offset..], b"hello");
        assert_eq!(buffer.len(), 5, "lent bytes are still buffered");
        assert!(buffer.lend().is_none(), "one send at a time");
        written(&mut buffer, b" world");
        assert_eq!(buffer.len(), 11);
        buffer.returned(5, lent);
        assert_eq!(buffer.pending(), b" world");
        assert_eq!(buffer.len(), 6);
    }

    #[test]
    fn a_partly_sent_buffer_keeps_its_tail_first() {
        let mut buffer = WriteBuffer::default();
        written(&mut buffer, b"abcdef");
        buffer.consume(1);
        let (lent, offset) = buffer.lend().unwrap();
        assert_eq!(offset, 1);
        written(&mut buffer, b"XY");
        buffer.returned(2, lent);
        assert_eq!(buffer.pending(), b"defXY");
        assert_eq!(buffer.len(), 5);
    }

    #[test]
    fn a_fully_sent_buffer_is_reused() {
        let mut buffer = WriteBuffer::default();
        written(&mut buffer, &[7; 4096]);
        let (lent, _) = buffer.lend().unwrap();
        let capacity = lent.capacity();
        buffer.returned(4096, lent);
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes.capacity(), capacity, "no allocation for the next send");
    }

    #[test]
    fn writes_during_a_send_go_to_the_spare() {
        let mut buffer = WriteBuffer::default();
        written(&mut buffer, b"one");
        let (first, _) = buffer.lend().unwrap();
        written(&mut buffer, b"two"); // while "one" is in flight
        buffer.returned(3, first);
        assert_eq!(buffer.pending(), b"two");
        assert!(buffer.spare.capacity() >= 3, "the sent buffer is kept as the spare");
        let (second, _) = buffer.lend().unwrap();
        assert!(buffer.bytes.capacity() >= 3, "the spare takes the writes from now on");
        written(&mut buffer, b"six");
        buffer.returned(3, second);
        assert_eq!(buffer.pending(), b"six");
        assert!(buffer.spare.capacity() >= 3);
    }
}
