//! The TLS stage of a connection (Twisted's memory-BIO TLS protocol, built into
//! the transport): rustls sits between the protocol and the write buffer, so the
//! same protocol runs over TCP, UNIX sockets and the in-memory transport.
//!
//! Reading: bytes from the socket are fed to rustls, decrypted, and delivered as
//! one `data_received` per socket read (up to a read buffer of plaintext).
//! Writing: plaintext is encrypted at once and the records go through
//! [`Transport::raw_send`], so the write buffer and producers see the encrypted
//! stream. The `tls` cell is never borrowed while user code runs.

use std::io::{self, Read, Write};
use std::rc::{Rc, Weak};

use rustls::pki_types::{CertificateDer, ServerName};

use super::deliver::Held;
use super::{Connection, DisconnectReason, Transport};
use crate::backend::Interest;
use crate::tls::{TlsClientConfig, TlsError, TlsInfo, TlsServerConfig, TlsVersion};
use crate::{DelayedCall, Reactor};

/// How long a closed TLS connection waits for the peer to close too.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Ciphertext kept for a protocol that is busy further up the stack before the
/// socket is left unread.
const MAX_HELD_CIPHERTEXT: usize = 256 * 1024;

pub(crate) struct TlsStage {
    session: rustls::Connection,
    /// What a client asked for, for the name-mismatch reason.
    server_name: Option<String>,
    handshake_reported: bool,
    timer: Option<DelayedCall>,
    close_notify_sent: bool,
    /// Our close_notify is sent and our side shut: waiting for the peer's close.
    lingering: bool,
    close_notify_received: bool,
    raw_eof: bool,
    /// Encrypted bytes not yet given to rustls: its plaintext buffer is full
    /// because the protocol paused reading.
    pending_cipher: Vec<u8>,
    /// Decrypted bytes rustls holds that the protocol has not had.
    plaintext_waiting: bool,
    /// A retry for a busy protocol is scheduled.
    retry_scheduled: bool,
    /// The reader was removed while the protocol was busy; the retry restores it.
    reader_held: bool,
    /// Plaintext written before the handshake finished (rustls holds it).
    unsent_plaintext: usize,
}

/// Feeds encrypted records to [`Transport::raw_send`], remembering a failure for
/// the caller to act on once the `tls` cell is released.
struct RawSink<'a> {
    transport: &'a Transport,
    error: Option<io::Error>,
}

impl Write for RawSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(data)])
    }

    fn write_vectored(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut slices = [&[][..]; 16];
        let count = parts.len().min(slices.len());
        for (slot, part) in slices.iter_mut().zip(parts) {
            *slot = part;
        }
        let total = slices[..count].iter().map(|s| s.len()).sum();
        if self.error.is_none() {
            if let Err(e) = self.transport.raw_send(&slices[..count]) {
                self.error = Some(e);
            }
        }
        // Everything is taken: what the socket refused waits in the write buffer.
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Role<'a> {
    Server(&'a TlsServerConfig),
    Client(&'a TlsClientConfig, &'a str),
}

impl Transport {
    /// Starts TLS as the server on this connection (Twisted's `startTLS`; also
    /// how [`listen_tls`](Reactor::listen_tls) begins). Bytes already written go
    /// out in clear; everything written from now on is encrypted, and bytes read
    /// from now on are decrypted. The protocol's `handshake_completed` runs when
    /// the handshake finishes; a failure closes the connection with
    /// [`DisconnectReason::Tls`].
    pub fn start_tls_server(&self, config: &TlsServerConfig) -> io::Result<()> {
        self.start_tls(Role::Server(config))
    }

    /// Starts TLS as the client, verifying the server's certificate for
    /// `server_name` (a DNS name or an IP address) as `config` says. See
    /// [`start_tls_server`](Transport::start_tls_server).
    pub fn start_tls_client(&self, config: &TlsClientConfig, server_name: &str) -> io::Result<()> {
        self.start_tls(Role::Client(config, server_name))
    }

    fn start_tls(&self, role: Role<'_>) -> io::Result<()> {
        if self.conn.tls_on.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS is already started on this connection",
            ));
        }
        {
            let state = self.conn.state.borrow();
            if state.disconnected || state.disconnecting || state.write_shut || state.write_closing {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "the connection is closing"));
            }
        }
        let (session, server_name, timeout) = match role {
            Role::Server(config) => {
                let session =
                    rustls::ServerConnection::new(config.rustls.clone()).map_err(io::Error::other)?;
                (rustls::Connection::Server(session), None, config.handshake_timeout)
            }
            Role::Client(config, name) => {
                let server = ServerName::try_from(name.to_owned()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("bad TLS server name {name:?}: {e}"))
                })?;
                let session =
                    rustls::ClientConnection::new(config.rustls.clone(), server).map_err(io::Error::other)?;
                (rustls::Connection::Client(session), Some(name.to_owned()), config.handshake_timeout)
            }
        };
        let mut session = session;
        // Our write buffer and producers bound what waits; rustls need not.
        session.set_buffer_limit(None);
        let reactor = self.reactor().ok_or_else(|| io::Error::other("the reactor is gone"))?;
        let timer = timeout.map(|after| {
            let weak: Weak<Connection> = Rc::downgrade(&self.conn);
            reactor.call_later(after, move |_| {
                if let Some(conn) = weak.upgrade() {
                    let transport = Transport { conn };
                    if transport.tls_handshaking() {
                        transport.close_now(DisconnectReason::Tls(TlsError::HandshakeTimeout));
                    }
                }
            })
        });
        *self.conn.tls.borrow_mut() = Some(Box::new(TlsStage {
            session,
            server_name,
            handshake_reported: false,
            timer,
            close_notify_sent: false,
            lingering: false,
            close_notify_received: false,
            raw_eof: false,
            pending_cipher: Vec::new(),
            plaintext_waiting: false,
            retry_scheduled: false,
            reader_held: false,
            unsent_plaintext: 0,
        }));
        self.conn.tls_on.set(true);
        // A client speaks first: its hello goes out now.
        self.tls_flush_output();
        Ok(())
    }

    /// What TLS negotiated, once [`start_tls_server`](Transport::start_tls_server)
    /// or [`start_tls_client`](Transport::start_tls_client) (or a TLS port or
    /// connector) started it; `None` on a plain connection.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        let tls = self.conn.tls.borrow();
        let stage = tls.as_ref()?;
        let session = &stage.session;
        let server_name = match session {
            rustls::Connection::Server(server) => server.server_name().map(str::to_owned),
            rustls::Connection::Client(_) => stage.server_name.clone(),
        };
        Some(TlsInfo {
            handshake_complete: stage.handshake_reported,
            version: session.protocol_version().and_then(TlsVersion::from_rustls),
            alpn_protocol: session.alpn_protocol().map(<[u8]>::to_vec),
            cipher_suite: session.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
            peer_certificates: session
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| CertificateDer::clone(c).into_owned()).collect())
                .unwrap_or_default(),
            server_name,
            resumed: matches!(session.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
        })
    }

    /// Whether a TLS handshake is under way (started and not yet finished).
    pub(super) fn tls_handshaking(&self) -> bool {
        self.conn.tls_on.get()
            && self.conn.tls.borrow().as_ref().is_some_and(|stage| !stage.handshake_reported)
    }

    pub(super) fn tls_unsent_plaintext(&self) -> usize {
        if !self.conn.tls_on.get() {
            return 0;
        }
        self.conn.tls.borrow().as_ref().map_or(0, |stage| stage.unsent_plaintext)
    }

    /// While reading is paused, the socket is still read as long as nothing
    /// decrypted waits, so a handshake can finish.
    pub(super) fn tls_can_read_while_paused(&self) -> bool {
        self.conn
            .tls
            .borrow()
            .as_ref()
            .is_some_and(|stage| !stage.plaintext_waiting && stage.pending_cipher.is_empty())
    }

    /// The connection is closing: stop the handshake timer.
    pub(super) fn tls_closed(&self) {
        if !self.conn.tls_on.get() {
            return;
        }
        // `try_`: never panic if a close happens while the stage is borrowed.
        let timer = match self.conn.tls.try_borrow_mut() {
            Ok(mut tls) => tls.as_mut().and_then(|stage| stage.timer.take()),
            Err(_) => None,
        };
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
    }

    /// Encrypts and sends plaintext (before the handshake finishes rustls holds it).
    pub(super) fn tls_write(&self, parts: &[&[u8]]) {
        {
            let state = self.conn.state.borrow();
            if state.disconnected || state.write_shut {
                return;
            }
        }
        {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return };
            if stage.close_notify_sent {
                return;
            }
            let handshaking = stage.session.is_handshaking();
            for part in parts {
                // With no buffer limit rustls takes everything.
                let _ = stage.session.writer().write_all(part);
                if handshaking {
                    stage.unsent_plaintext += part.len();
                }
            }
        }
        self.tls_flush_output();
    }

    /// Moves every record rustls has ready into the write path.
    fn tls_flush_output(&self) {
        let mut sink = RawSink { transport: self, error: None };
        loop {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return };
            if !stage.session.wants_write() || sink.error.is_some() {
                break;
            }
            if stage.session.write_tls(&mut sink).is_err() {
                break;
            }
        }
        if let Some(e) = sink.error {
            self.close_now(DisconnectReason::Lost(e));
        }
    }

    /// Queues close_notify (once the handshake is done) and reports whether it
    /// has left the write buffer, so the caller may close or shut down now.
    pub(super) fn tls_close_notify_flushed(&self) -> bool {
        let queued = {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return true };
            if !stage.close_notify_sent {
                if !stage.handshake_reported {
                    return false; // the handshake's end comes back to the close
                }
                stage.session.send_close_notify();
                stage.close_notify_sent = true;
                true
            } else {
                false
            }
        };
        if queued {
            self.tls_flush_output();
        }
        let state = self.conn.state.borrow();
        state.disconnected || state.buffer.is_empty()
    }

    /// After our close_notify has left the write buffer: shut our side down and
    /// keep reading (discarding) until the peer closes too, or [`CLOSE_LINGER`]
    /// passes. Closing at once would make the kernel answer the peer's late
    /// records (TLS 1.3 session tickets, say) with a reset that can destroy
    /// data we sent and the peer has not read yet. Returns whether it lingers.
    pub(super) fn tls_linger(&self) -> bool {
        let Some(reactor) = self.reactor() else { return false };
        if self.conn.state.borrow().disconnected {
            return false;
        }
        {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return false };
            if stage.lingering {
                return true;
            }
            if stage.close_notify_received || stage.raw_eof {
                return false; // the peer is done already
            }
            stage.lingering = true;
            let weak: Weak<Connection> = Rc::downgrade(&self.conn);
            let timer = reactor.call_later(CLOSE_LINGER, move |_| {
                if let Some(conn) = weak.upgrade() {
                    Transport { conn }.close_now(DisconnectReason::Done);
                }
            });
            if let Some(old) = stage.timer.replace(timer) {
                let _ = old.cancel();
            }
        }
        {
            let mut state = self.conn.state.borrow_mut();
            state.write_shut = true;
            state.reading_paused = false;
            state.reader_parked = false;
        }
        if let Some(socket) = self.conn.socket.borrow().as_ref() {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
        if let Some(pipe) = self.conn.io.memory() {
            pipe.write_shut.set(true);
        }
        if let Some(handler) = self.handler() {
            if reactor.watch(self.conn.fd, handler, Interest::READ).is_err() {
                return false;
            }
        }
        true
    }

    /// Gives TLS bytes that arrived in the same read as the switch to TLS: a
    /// protocol that calls `start_tls_*` in `data_received` passes the rest of
    /// `data` here (the peer may have sent its first TLS record right behind the
    /// clear-text command).
    pub fn feed_tls(&self, data: &[u8]) -> io::Result<()> {
        if !self.conn.tls_on.get() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "TLS is not started on this connection"));
        }
        if let Some(reactor) = self.reactor() {
            self.tls_receive(&reactor, data);
        }
        Ok(())
    }

    /// Encrypted bytes arrived (`input`, possibly empty to deliver what waits):
    /// decrypt, answer the handshake, deliver plaintext while reading is not
    /// paused, and act on close_notify, errors and an earlier end of file.
    pub(super) fn tls_receive(&self, reactor: &Reactor, input: &[u8]) {
        if self.conn.protocol.try_borrow_mut().is_err() {
            self.tls_hold_for_busy_protocol(reactor, input);
            return;
        }
        let mut plain = reactor.take_read_buffer();
        let mut input = input;
        while let Some((delivering, discarding)) = self.tls_delivery_state() {
            let step = {
                let mut tls = self.conn.tls.borrow_mut();
                let Some(stage) = tls.as_mut() else { break };
                stage.advance(&mut input, &mut plain, delivering || discarding)
            };
            self.tls_flush_output();
            if step.handshake_done && step.failure.is_none() {
                self.tls_handshake_done(reactor);
            }
            // Callbacks may have closed the connection: look again before each.
            if step.filled > 0 && self.tls_delivery_state().is_some_and(|(_, discard)| !discard) {
                self.call_protocol(|p, t| p.data_received(t, &plain[..step.filled]));
            }
            if let Some(error) = step.failure {
                // What was authenticated before the bad record still counts;
                // the alert rustls queued goes out behind what is buffered.
                self.tls_deliver_remaining(&mut plain);
                self.close_after_flush(DisconnectReason::Tls(error));
                break;
            }
            if step.close_notify {
                if !self.conn.state.borrow().disconnected {
                    self.end_of_input(reactor);
                }
                break;
            }
            if !step.more {
                break;
            }
        }
        reactor.return_read_buffer(plain);
        self.tls_check_raw_eof();
    }

    /// `(delivering, discarding)` for the next step, or `None` once closed:
    /// plaintext is delivered while reading is not paused, and taken but dropped
    /// once the connection is closing or the peer's close_notify was seen.
    fn tls_delivery_state(&self) -> Option<(bool, bool)> {
        let state = self.conn.state.borrow();
        if state.disconnected {
            return None;
        }
        Some((!state.reading_paused, state.disconnecting || state.read_shut))
    }

    /// After a TLS error: hands the protocol the plaintext rustls decrypted
    /// before it.
    fn tls_deliver_remaining(&self, plain: &mut [u8]) {
        loop {
            if !self.tls_delivery_state().is_some_and(|(deliver, discard)| deliver && !discard) {
                return;
            }
            let filled = {
                let mut tls = self.conn.tls.borrow_mut();
                let Some(stage) = tls.as_mut() else { return };
                stage.session.reader().read(plain).unwrap_or(0)
            };
            if filled == 0 {
                return;
            }
            self.call_protocol(|p, t| p.data_received(t, &plain[..filled]));
        }
    }

    /// The protocol is running further up the stack (a nested `iterate`): keep
    /// the bytes and try again on a later timer step (not at this pass's end,
    /// which a nested pass would run while the protocol is still busy). Past
    /// [`MAX_HELD_CIPHERTEXT`] the socket is left unread meanwhile.
    fn tls_hold_for_busy_protocol(&self, reactor: &Reactor, input: &[u8]) {
        let (schedule, hold_reader) = {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return };
            stage.pending_cipher.extend_from_slice(input);
            let hold = stage.pending_cipher.len() > MAX_HELD_CIPHERTEXT && !stage.reader_held;
            stage.reader_held |= hold;
            (!std::mem::replace(&mut stage.retry_scheduled, true), hold)
        };
        if hold_reader {
            reactor.unwatch(self.conn.fd, Interest::READ);
        }
        if schedule {
            let this = self.clone();
            reactor.call_later(std::time::Duration::ZERO, move |r| {
                let held = match this.conn.tls.borrow_mut().as_mut() {
                    Some(stage) => {
                        stage.retry_scheduled = false;
                        std::mem::take(&mut stage.reader_held)
                    }
                    None => false,
                };
                this.tls_receive(r, &[]);
                let watch = {
                    let state = this.conn.state.borrow();
                    held && !state.disconnected && !state.read_shut && !state.reader_parked
                };
                if watch {
                    if let Some(handler) = this.handler() {
                        let _ = r.watch(this.conn.fd, handler, Interest::READ);
                    }
                }
            });
        }
    }

    /// Whether a closing connection must still read: to finish the handshake,
    /// or to see the peer's close while lingering.
    pub(super) fn tls_reads_while_closing(&self) -> bool {
        self.conn.tls.borrow().as_ref().is_some_and(|stage| !stage.handshake_reported || stage.lingering)
    }

    /// The handshake finished: tell the protocol, then finish a close or
    /// half-close that waited for it.
    fn tls_handshake_done(&self, reactor: &Reactor) {
        self.deliver(Held::Handshake);
        let empty = {
            let state = self.conn.state.borrow();
            !state.disconnected && state.buffer.is_empty()
        };
        if empty {
            self.buffer_drained(reactor);
        }
    }

    /// The socket reached end of file: deliver what is decrypted, then report a
    /// truncation unless the peer sent close_notify first.
    pub(super) fn tls_raw_eof(&self, reactor: &Reactor) {
        reactor.unwatch(self.conn.fd, Interest::READ);
        let (already_ended, lingering) = {
            let mut tls = self.conn.tls.borrow_mut();
            let Some(stage) = tls.as_mut() else { return };
            stage.raw_eof = true;
            (stage.close_notify_received, stage.lingering)
        };
        if lingering {
            // We closed first and the peer has now closed too.
            self.close_now(DisconnectReason::Done);
            return;
        }
        if already_ended {
            // close_notify came first; the socket's end adds nothing, unless
            // our side is finished too.
            let write_shut = self.conn.state.borrow().write_shut;
            if write_shut {
                self.close_now(DisconnectReason::Done);
            }
            return;
        }
        self.tls_receive(reactor, &[]);
    }

    /// After delivering: an end of file with nothing left to deliver and no
    /// close_notify is a truncation (or a close during the handshake).
    fn tls_check_raw_eof(&self) {
        let verdict = {
            let tls = self.conn.tls.borrow();
            let Some(stage) = tls.as_ref() else { return };
            if !stage.raw_eof || stage.close_notify_received || stage.plaintext_waiting {
                return;
            }
            if !stage.pending_cipher.is_empty() {
                return;
            }
            if stage.handshake_reported { TlsError::Truncated } else { TlsError::ClosedDuringHandshake }
        };
        self.close_now(DisconnectReason::Tls(verdict));
    }
}

/// What one [`TlsStage::advance`] did.
struct Step {
    /// Plaintext bytes placed in the buffer.
    filled: usize,
    handshake_done: bool,
    close_notify: bool,
    failure: Option<TlsError>,
    /// Call again: the buffer filled before everything was decrypted.
    more: bool,
}

impl TlsStage {
    /// Feeds `input` (after any held ciphertext) to rustls and, when `take` is
    /// set, moves plaintext into `plain` until it is full. Ciphertext rustls
    /// cannot take yet is kept in `pending_cipher`.
    fn advance(&mut self, input: &mut &[u8], plain: &mut [u8], take: bool) -> Step {
        let mut step =
            Step { filled: 0, handshake_done: false, close_notify: false, failure: None, more: false };
        let mut waiting = self.plaintext_waiting;
        loop {
            if take {
                while step.filled < plain.len() {
                    match self.session.reader().read(&mut plain[step.filled..]) {
                        Ok(0) => {
                            if !self.close_notify_received {
                                self.close_notify_received = true;
                                step.close_notify = true;
                            }
                            break;
                        }
                        Ok(n) => step.filled += n,
                        // WouldBlock: nothing more decrypted; UnexpectedEof: the
                        // caller judges the end of file.
                        Err(_) => break,
                    }
                }
                if step.filled == plain.len() {
                    step.more = true;
                    break;
                }
                if step.close_notify {
                    break;
                }
            }
            // Feed held ciphertext first, then the new input.
            let fed = if !self.pending_cipher.is_empty() {
                let mut held = &self.pending_cipher[..];
                let before = held.len();
                let result = self.session.read_tls(&mut held);
                let used = before - held.len();
                self.pending_cipher.drain(..used);
                result
            } else if !input.is_empty() {
                self.session.read_tls(input)
            } else {
                break;
            };
            match fed {
                // Nothing taken: close_notify came, after which bytes mean nothing.
                Ok(0) => {
                    self.pending_cipher.clear();
                    *input = &[];
                    break;
                }
                Ok(_) => {}
                // The plaintext buffer is full (reading is paused): stop feeding.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => {
                    step.failure = Some(TlsError::Protocol(e.to_string()));
                    break;
                }
            }
            match self.session.process_new_packets() {
                Ok(io_state) => {
                    waiting = io_state.plaintext_bytes_to_read() > 0;
                    if !take && !waiting && io_state.peer_has_closed() && !self.close_notify_received {
                        // Nothing left to read: the peer's end is news even
                        // while paused, as a socket's end of file is.
                        self.close_notify_received = true;
                        step.close_notify = true;
                    }
                    if !self.handshake_reported && !self.session.is_handshaking() {
                        self.handshake_reported = true;
                        self.unsent_plaintext = 0;
                        step.handshake_done = true;
                        if let Some(timer) = self.timer.take() {
                            let _ = timer.cancel();
                        }
                    }
                }
                Err(e) => {
                    step.failure = Some(TlsError::from_rustls(&e, self.server_name.as_deref()));
                    break;
                }
            }
        }
        if !input.is_empty() {
            // rustls is full: hold the rest until the protocol reads again.
            self.pending_cipher.extend_from_slice(input);
            *input = &[];
        }
        self.plaintext_waiting = if take { step.more } else { waiting && !self.close_notify_received };
        step
    }
}
