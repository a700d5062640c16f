//! TCP transports: the protocol model, closing rules, half-close, flow control.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use torque::BackendKind;
use torque::net::{ConnectOptions, ListenOptions, NetError, Producer, ProducerError, Transport, factory_fn};

use crate::netkit::{Echo, Queue, Recorder, echo_server, server_with};
use crate::support::{fake_reactor, iterate_until, reactor, run, spin, step};

fn client_options() -> ConnectOptions {
    ConnectOptions { timeout: Some(Duration::from_secs(10)), ..ConnectOptions::default() }
}

fn echo_round_trip_and_clean_close(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, number) = echo_server(&r);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"hello, ")));
    client.on_data = Some(Box::new(|t, _| {
        t.write_vectored(&[b"wor", b"ld"]);
    }));
    let (factory, outcomes) = Queue::one(client);
    let connector = r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || seen.data_len() >= 12);
    assert_eq!(&*seen.data.borrow(), b"hello, world");
    let t = seen.transport();
    assert_eq!(t.peer().port(), Some(number));
    assert!(connector.transport().is_some_and(|c| c.same_connection(&t)));
    t.set_tcp_nodelay(true).unwrap();
    t.set_tcp_keepalive(true).unwrap();
    t.lose_connection();
    iterate_until(&r, || seen.lost_kind().is_some());
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(outcomes.snapshot(), ["lost: done"]);
    assert!(connector.transport().is_none());
}

fn a_refused_connection_reaches_the_client_factory(kind: BackendKind) {
    let r = reactor(kind);
    let (port, number) = echo_server(&r);
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    drop(port.stop_listening().map(move |_| s.set(true)));
    assert!(!stopped.get(), "completion is reported later, not inside stop_listening");
    iterate_until(&r, || stopped.get());
    assert!(!port.is_listening());
    let (client, seen) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    assert!(outcomes.snapshot().is_empty(), "never reported inside connect_tcp");
    iterate_until(&r, || outcomes.len() == 2);
    assert_eq!(outcomes.snapshot()[1], "refused", "{:?}", outcomes.snapshot());
    assert!(!seen.made.get());
}

fn connection_lost_never_runs_inside_lose_or_abort(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    let checked = Rc::new(Cell::new(0));
    let (c, s2) = (checked.clone(), server_seen.clone());
    server.on_data = Some(Box::new(move |t, _| {
        t.lose_connection();
        t.abort_connection();
        t.write(b"dropped silently");
        // Still inside data_received: connection_lost has not run.
        c.set(if s2.lost_count.get() == 0 { 1 } else { 2 });
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, client_seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"x")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || server_seen.lost_count.get() == 1 && client_seen.lost_count.get() == 1);
    assert_eq!(checked.get(), 1);
    spin(&r, 3);
    assert_eq!(server_seen.lost_count.get(), 1, "connection_lost runs exactly once");
    // lose_connection came first and the buffer was empty: a clean close.
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

fn abort_from_data_received_drops_the_buffer(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    server.on_data = Some(Box::new(|t, _| {
        // More than any loopback buffers hold (Winsock's sends take until
        // the socket would block, several MiB under Wine).
        t.write(&vec![7u8; 32 << 20]);
        t.abort_connection();
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, client_seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"go")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || server_seen.lost_count.get() == 1 && client_seen.lost_count.get() == 1);
    assert_eq!(server_seen.lost_kind().as_deref(), Some("aborted"));
    assert!(client_seen.data_len() < 32 << 20, "an abort does not flush the buffer");
}

fn lose_connection_flushes_a_pending_buffer_first(kind: BackendKind) {
    let r = reactor(kind);
    const SIZE: usize = 8 << 20;
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| {
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        t.write(&data);
        assert!(t.buffered() > 0, "8 MiB cannot all fit in the kernel at once");
        t.lose_connection();
        // Still flushing: as in Twisted, this goes out before the close.
        t.write(b"written while closing");
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (client, client_seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || client_seen.lost_count.get() == 1 && server_seen.lost_count.get() == 1);
    let data = client_seen.data.borrow();
    assert_eq!(data.len(), SIZE + 21);
    assert!(data[..SIZE].iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(&data[SIZE..], b"written while closing");
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(client_seen.lost_kind().as_deref(), Some("done"));
}

fn half_close_keeps_the_other_direction_open(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    // The server answers only after the client's end of file, then closes.
    server.on_eof = Some(Box::new(|t| {
        t.write(b"pong after your EOF");
        t.lose_connection();
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, client_seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        t.write(b"ping");
        t.lose_write_connection();
    }));
    // Once the write side is shut, writes are dropped.
    client.on_write_closed = Some(Box::new(|t| t.write(b"dropped: the write side is shut")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || client_seen.lost_count.get() == 1 && server_seen.lost_count.get() == 1);
    assert_eq!(&*server_seen.data.borrow(), b"ping");
    assert!(server_seen.eof.get());
    assert!(client_seen.write_closed.get());
    assert_eq!(&*client_seen.data.borrow(), b"pong after your EOF");
    assert_eq!(client_seen.lost_kind().as_deref(), Some("done"));
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

fn both_sides_half_close_at_once(kind: BackendKind) {
    let r = reactor(kind);
    let keep_open = |t: &Transport| {
        // Keep writing possible after EOF: do nothing here.
        let _ = t;
    };
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| {
        t.write(b"from server");
        t.lose_write_connection();
    }));
    server.on_eof = Some(Box::new(keep_open));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, client_seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        t.write(b"from client");
        t.lose_write_connection();
    }));
    client.on_eof = Some(Box::new(keep_open));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || client_seen.lost_count.get() == 1 && server_seen.lost_count.get() == 1);
    assert_eq!(&*server_seen.data.borrow(), b"from client");
    assert_eq!(&*client_seen.data.borrow(), b"from server");
    assert_eq!(client_seen.lost_kind().as_deref(), Some("done"), "both directions ended: done");
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

fn a_peer_reset_mid_write_is_a_lost_connection(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| t.write(&vec![1u8; 16 << 20])));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, client_seen) = Recorder::new();
    client.keep_data = false;
    client.on_data = Some(Box::new(|t, _| {
        // Close with SO_LINGER 0: the kernel sends a reset.
        let fd = t.fd().unwrap();
        // SAFETY (test): the connection's socket stays open for the call.
        let socket = unsafe { torque::fd::BorrowedFd::borrow_raw(fd) };
        socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO)).unwrap();
        t.abort_connection();
    }));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || server_seen.lost_count.get() == 1 && client_seen.lost_count.get() == 1);
    let kind = server_seen.lost_kind().unwrap();
    assert!(kind.starts_with("lost: "), "{kind}");
}

fn a_callback_may_close_another_connection(kind: BackendKind) {
    let r = reactor(kind);
    let (victim, victim_seen) = Recorder::new();
    let (mut killer, killer_seen) = Recorder::new();
    let target = victim_seen.clone();
    killer.on_data = Some(Box::new(move |_, _| target.transport().abort_connection()));
    let (_port, number) = server_with(&r, vec![Box::new(victim), Box::new(killer)]);
    let (first, first_seen) = Recorder::new();
    let (factory, _) = Queue::one(first);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || victim_seen.made.get() && first_seen.made.get());
    let (mut second, _) = Recorder::new();
    second.on_made = Some(Box::new(|t| t.write(b"kill")));
    let (factory, _) = Queue::one(second);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || victim_seen.lost_count.get() == 1 && first_seen.lost_count.get() == 1);
    assert_eq!(victim_seen.lost_kind().as_deref(), Some("aborted"));
    assert!(!killer_seen.lost.borrow().is_some());
}

/// 256 MiB through a streaming producer, checked byte for byte as it arrives.
fn a_large_transfer_arrives_intact_with_backpressure(kind: BackendKind) {
    const TOTAL: usize = 256 << 20;
    const CHUNK: usize = 256 << 10;
    struct Source {
        transport: Transport,
        sent: usize,
        paused: bool,
        pauses: Rc<Cell<u32>>,
    }
    impl Source {
        fn pump(&mut self) {
            // Every chunk starts the pattern afresh; the reader checks offsets
            // within a chunk. Writing from our own method means the transport
            // cannot call pause_producing on us right now, so we also poll it.
            let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 253) as u8).collect();
            while !self.paused && !self.transport.writes_paused() && self.sent < TOTAL {
                self.transport.write(&chunk);
                self.sent += CHUNK;
            }
            if self.sent >= TOTAL {
                self.transport.unregister_producer();
                self.transport.lose_connection();
            }
        }
    }
    impl Producer for Source {
        fn pause_producing(&mut self) {
            self.paused = true;
            self.pauses.set(self.pauses.get() + 1);
        }
        fn resume_producing(&mut self) {
            self.paused = false;
            self.pump();
        }
    }
    let r = reactor(kind);
    let pauses = Rc::new(Cell::new(0));
    let (mut server, server_seen) = Recorder::new();
    let p = pauses.clone();
    server.on_made = Some(Box::new(move |t| {
        let source =
            Rc::new(RefCell::new(Source { transport: t.clone(), sent: 0, paused: false, pauses: p.clone() }));
        t.register_producer(source.clone(), true).unwrap();
        source.borrow_mut().pump();
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let received = Rc::new(Cell::new(0usize));
    let corrupt = Rc::new(Cell::new(false));
    let (mut client, client_seen) = Recorder::new();
    client.keep_data = false;
    let (rc, bad) = (received.clone(), corrupt.clone());
    let expected: Vec<u8> = (0..CHUNK).map(|i| (i % 253) as u8).collect();
    client.on_data = Some(Box::new(move |_, mut data| {
        // Byte for byte, as slices (memcmp), against the pattern each chunk restarts.
        let mut at = rc.get();
        rc.set(at + data.len());
        while !data.is_empty() {
            let offset = at % CHUNK;
            let n = data.len().min(CHUNK - offset);
            if data[..n] != expected[offset..offset + n] {
                bad.set(true);
            }
            data = &data[n..];
            at += n;
        }
    }));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    let start = std::time::Instant::now();
    while client_seen.lost_count.get() == 0 {
        assert!(start.elapsed() < Duration::from_secs(50), "transfer stalled at {} bytes", received.get());
        step(&r, Duration::from_millis(50)).unwrap();
    }
    assert_eq!(received.get(), TOTAL);
    assert!(!corrupt.get(), "every byte matches");
    assert!(pauses.get() > 0, "the producer was paused at the high-water mark");
    assert_eq!(client_seen.lost_kind().as_deref(), Some("done"));
    iterate_until(&r, || server_seen.lost_count.get() == 1);
}

fn a_paused_transport_stops_reading_until_resumed(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| t.pause_producing()));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, _) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"queued while paused")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || server_seen.made.get());
    spin(&r, 5);
    step(&r, Duration::from_millis(20)).unwrap();
    assert_eq!(server_seen.data_len(), 0, "nothing is read while paused");
    server_seen.transport().resume_producing();
    iterate_until(&r, || server_seen.data_len() == 19);
}

fn a_paused_transport_still_notices_the_peer_closing(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| t.pause_producing()));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, _) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.lose_connection()));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    // Never resumed: the end of file must still reach the protocol.
    iterate_until(&r, || server_seen.lost_count.get() == 1);
    assert!(server_seen.eof.get());
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

fn data_waiting_while_paused_arrives_after_resume_then_the_close(kind: BackendKind) {
    let r = reactor(kind);
    let (mut server, server_seen) = Recorder::new();
    server.on_made = Some(Box::new(|t| t.pause_producing()));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (mut client, _) = Recorder::new();
    client.on_made = Some(Box::new(|t| {
        t.write(b"abc");
        t.lose_connection();
    }));
    let (factory, outcomes) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || outcomes.len() == 1);
    for _ in 0..5 {
        step(&r, Duration::from_millis(5)).unwrap();
    }
    assert_eq!(server_seen.data_len(), 0);
    assert_eq!(server_seen.lost_count.get(), 0);
    server_seen.transport().resume_producing();
    iterate_until(&r, || server_seen.lost_count.get() == 1);
    assert_eq!(&*server_seen.data.borrow(), b"abc");
}

fn a_factory_shared_by_ports_starts_and_stops_once(kind: BackendKind) {
    use torque::net::{Address, Factory, FactoryRef, Protocol};
    #[derive(Default)]
    struct Counting {
        starts: u32,
        stops: u32,
    }
    impl Factory for Counting {
        fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
            Some(Box::new(Echo))
        }
        fn start_factory(&mut self) {
            self.starts += 1;
        }
        fn stop_factory(&mut self) {
            self.stops += 1;
        }
    }
    let r = reactor(kind);
    let shared = FactoryRef::new(Counting::default());
    let options = || ListenOptions::interface([127, 0, 0, 1].into());
    let a = r.listen_tcp(0, shared.clone(), options()).unwrap();
    let b = r.listen_tcp(0, shared.clone(), options()).unwrap();
    assert_eq!((shared.get().borrow().starts, shared.get().borrow().stops), (1, 0));
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    drop(a.stop_listening().map(move |_| d.set(d.get() + 1)));
    iterate_until(&r, || done.get() == 1);
    assert_eq!(shared.get().borrow().stops, 0, "one port still uses it");
    let d = done.clone();
    drop(b.stop_listening().map(move |_| d.set(d.get() + 1)));
    iterate_until(&r, || done.get() == 2);
    assert_eq!((shared.get().borrow().starts, shared.get().borrow().stops), (1, 1));
}

/// A client connected to an echo server on `r`: what the client saw, and
/// the server's port (kept for the case's life).
fn connected_to_echo(r: &torque::Reactor) -> (torque::net::ListeningPort, Rc<crate::netkit::Seen>) {
    let (port, number) = echo_server(r);
    let (client, seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(r, || seen.made.get());
    (port, seen)
}

fn tcp_transports_refuse_unix_only_features(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, seen) = connected_to_echo(&r);
    let t = seen.transport();
    let pipe = crate::support::Pipe::new();
    use torque::fd::AsFd;
    let err = t.send_file_descriptor(pipe.r.as_fd()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert_eq!(t.peer_credentials().unwrap_err().kind(), std::io::ErrorKind::Unsupported);
}

/// A pull producer is asked for more each time the buffer empties; with a
/// producer registered, lose_connection waits until it unregisters.
fn a_pull_producer_feeds_on_demand_and_delays_the_close(kind: BackendKind) {
    struct Pages {
        transport: Transport,
        left: u32,
        asked: Rc<Cell<u32>>,
    }
    impl Producer for Pages {
        fn resume_producing(&mut self) {
            self.asked.set(self.asked.get() + 1);
            if self.left == 0 {
                self.transport.unregister_producer();
                return;
            }
            self.left -= 1;
            self.transport.write(&[b'p'; 1000]);
        }
    }
    let r = reactor(kind);
    let asked = Rc::new(Cell::new(0));
    let (mut server, server_seen) = Recorder::new();
    let a = asked.clone();
    server.on_made = Some(Box::new(move |t| {
        let pages = Rc::new(RefCell::new(Pages { transport: t.clone(), left: 5, asked: a.clone() }));
        t.register_producer(pages, false).unwrap();
        // Asked to close at once: must wait for the producer to finish.
        t.lose_connection();
    }));
    let (_port, number) = server_with(&r, vec![Box::new(server)]);
    let (client, client_seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    iterate_until(&r, || client_seen.lost_count.get() == 1);
    assert_eq!(client_seen.data_len(), 5000, "every page was sent before the close");
    assert_eq!(asked.get(), 6, "five pages, then one more ask that unregistered");
    iterate_until(&r, || server_seen.lost_count.get() == 1);
    assert_eq!(server_seen.lost_kind().as_deref(), Some("done"));
}

/// `write_file` streams a file from a pull producer: zero-copy while nothing is
/// buffered, copied behind buffered bytes, every byte in order; a file shorter
/// than promised is an UnexpectedEof error.
fn write_file_streams_a_file_through_a_pull_producer(kind: BackendKind) {
    use std::io::Write as _;
    struct FileSender {
        transport: Transport,
        file: std::fs::File,
        offset: u64,
        end: u64,
        error: Rc<RefCell<Option<std::io::ErrorKind>>>,
    }
    impl Producer for FileSender {
        fn resume_producing(&mut self) {
            if self.offset >= self.end {
                return;
            }
            let want = (self.end - self.offset).min(1 << 20) as usize;
            match self.transport.write_file(&self.file, self.offset, want) {
                Ok(n) => {
                    self.offset += n as u64;
                    if self.offset >= self.end {
                        self.transport.unregister_producer();
                    }
                }
                Err(e) => {
                    *self.error.borrow_mut() = Some(e.kind());
                    self.offset = self.end;
                    self.transport.unregister_producer();
                }
            }
        }
    }
    let len: u64 = 6 << 20;
    let mut file = tempfile::tempfile().unwrap();
    let content: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    file.write_all(&content).unwrap();
    let r = reactor(kind);
    let error = Rc::new(RefCell::new(None));
    // A connection whose server writes `prefix`, then `offset..end` of the file
    // from a pull producer, then closes; returns what the client saw.
    let send = |prefix: &'static [u8], offset: u64, end: u64| {
        let (mut server, _) = Recorder::new();
        let (f, e) = (file.try_clone().unwrap(), error.clone());
        server.on_made = Some(Box::new(move |t| {
            t.write(prefix);
            let sender = FileSender {
                transport: t.clone(),
                file: f.try_clone().unwrap(),
                offset,
                end,
                error: e.clone(),
            };
            t.register_producer(Rc::new(RefCell::new(sender)), false).unwrap();
            t.lose_connection();
        }));
        let (_port, number) = server_with(&r, vec![Box::new(server)]);
        let (client, client_seen) = Recorder::new();
        let (factory, _) = Queue::one(client);
        r.connect_tcp("127.0.0.1", number, factory, client_options());
        iterate_until(&r, || client_seen.lost_count.get() == 1);
        client_seen
    };
    // Bytes written before the file go first.
    let seen = send(b"HEAD", 0, len);
    let data = seen.data.borrow();
    assert_eq!(&data[..4], b"HEAD");
    assert!(data[4..] == content[..], "the file arrived whole and in order");
    assert!(error.borrow().is_none());
    drop(data);

    // A file that ends early.
    let seen = send(b"", len - 10, len + 10);
    assert_eq!(seen.data_len(), 10);
    assert_eq!(*error.borrow(), Some(std::io::ErrorKind::UnexpectedEof));

    // No socket (the in-memory transport): the bytes are copied instead.
    struct Quiet;
    impl torque::net::Protocol for Quiet {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    let memory = torque::testing::MemoryTransport::connect(&r, Quiet);
    assert_eq!(memory.transport().write_file(&file, 5, 20).unwrap(), 20);
    assert_eq!(memory.written(), content[5..25].to_vec());
    let err = memory.transport().write_file(&file, len, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

fn dual_stack_ports_and_bound_clients(kind: BackendKind) {
    let r = reactor(kind);
    let options = ListenOptions { ipv6_only: Some(false), ..ListenOptions::interface("::".parse().unwrap()) };
    let Ok(port) = r.listen_tcp(0, factory_fn(|_| Echo), options) else {
        eprintln!("no IPv6 on this machine; skipped");
        return;
    };
    let number = port.address().port().unwrap();
    // An IPv4 client reaches the dual-stack port, from a chosen local address.
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"v4 to v6")));
    let (factory, _) = Queue::one(client);
    let bind = "127.0.0.1:0".parse().unwrap();
    r.connect_tcp(
        "127.0.0.1",
        number,
        factory,
        ConnectOptions { timeout: None, bind_address: Some(bind), ..ConnectOptions::default() },
    );
    iterate_until(&r, || seen.data_len() == 8);
    assert_eq!(seen.transport().host().socket_addr().unwrap().ip(), std::net::Ipv4Addr::LOCALHOST);
}

/// Shutdown cuts open connections: every protocol, client factory and port
/// hears of it before run() returns.
fn shutdown_closes_connections_and_ports_with_notice(kind: BackendKind) {
    use torque::net::{Address, Factory, FactoryRef, Protocol};
    struct Counted {
        protocols: Vec<Box<dyn Protocol>>,
        stops: Rc<Cell<u32>>,
    }
    impl Factory for Counted {
        fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
            self.protocols.pop()
        }
        fn stop_factory(&mut self) {
            self.stops.set(self.stops.get() + 1);
        }
    }
    let r = reactor(kind);
    let stops = Rc::new(Cell::new(0));
    let (server, server_seen) = Recorder::new();
    let factory = FactoryRef::new(Counted { protocols: vec![Box::new(server)], stops: stops.clone() });
    let port = r.listen_tcp(0, factory, ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let number = port.address().port().unwrap();
    let (client, client_seen) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    r.connect_tcp("127.0.0.1", number, factory, client_options());
    let (s, c) = (server_seen.clone(), client_seen.clone());
    fn stop_when_up(r: &torque::Reactor, s: Rc<crate::netkit::Seen>, c: Rc<crate::netkit::Seen>) {
        if s.made.get() && c.made.get() {
            r.stop().unwrap();
        } else {
            r.call_later(Duration::from_millis(1), move |r| stop_when_up(r, s, c));
        }
    }
    r.call_when_running(move |r| stop_when_up(r, s, c));
    run(&r).unwrap();
    assert_eq!(server_seen.lost_count.get(), 1);
    assert_eq!(client_seen.lost_count.get(), 1);
    assert!(server_seen.lost_kind().unwrap().contains("reactor shut down"));
    assert_eq!(outcomes.len(), 1, "the client factory heard of the loss: {:?}", outcomes.snapshot());
    assert_eq!(stops.get(), 1, "the port stopped and its factory with it");
    assert!(!port.is_listening());
}

fn ports_report_their_address_and_stop_with_completion(kind: BackendKind) {
    let r = reactor(kind);
    let (port, number) = echo_server(&r);
    assert_ne!(number, 0);
    assert_eq!(port.address().socket_addr().unwrap().ip(), std::net::Ipv4Addr::LOCALHOST);
    let err = r
        .listen_tcp(number, factory_fn(|_| Echo), ListenOptions::interface([127, 0, 0, 1].into()))
        .expect_err("the port is taken");
    assert!(matches!(err, NetError::CannotListen { .. }));
    assert!(err.to_string().contains(&number.to_string()), "{err}");
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    drop(port.stop_listening().map(move |_| d.set(d.get() + 1)));
    let d = done.clone();
    drop(port.stop_listening().map(move |_| d.set(d.get() + 1)));
    iterate_until(&r, || done.get() == 2);
}

/// A stopped port listens again (Twisted's `startListening`): the same
/// port number and options, the factory started again; the default backlog
/// is the system's maximum, not Twisted's 50.
fn a_stopped_port_listens_again_on_the_same_address(kind: BackendKind) {
    struct Counting(Rc<Cell<(u32, u32)>>);
    impl torque::net::Factory for Counting {
        fn build_protocol(&mut self, _: &torque::net::Address) -> Option<Box<dyn torque::net::Protocol>> {
            Some(Box::new(Echo))
        }
        fn start_factory(&mut self) {
            self.0.set((self.0.get().0 + 1, self.0.get().1));
        }
        fn stop_factory(&mut self) {
            self.0.set((self.0.get().0, self.0.get().1 + 1));
        }
    }
    assert!(ListenOptions::default().backlog > 50, "{}", ListenOptions::default().backlog);
    let r = reactor(kind);
    let counts = Rc::new(Cell::new((0, 0)));
    let port =
        r.listen_tcp(0, Counting(counts.clone()), ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let number = port.address().port().unwrap();
    let echo_once = |text: &'static [u8]| {
        let (mut client, seen) = Recorder::new();
        client.on_made = Some(Box::new(move |t| t.write(text)));
        let (factory, outcomes) = Queue::one(client);
        r.connect_tcp("127.0.0.1", number, factory, client_options());
        iterate_until(&r, || seen.data_len() == text.len() || outcomes.len() == 2);
        seen.data_len() == text.len()
    };
    assert!(echo_once(b"first"));
    port.start_listening().expect("listening already: nothing to do");
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    drop(port.stop_listening().map(move |_| s.set(true)));
    iterate_until(&r, || stopped.get());
    assert!(!port.is_listening());
    assert_eq!(counts.get(), (1, 1));
    assert!(!echo_once(b"refused"), "a stopped port refuses");
    port.start_listening().expect("listen again");
    assert!(port.is_listening());
    assert_eq!(port.address().port(), Some(number), "the same port number");
    assert_eq!(counts.get(), (2, 1), "the factory started again");
    assert!(echo_once(b"again"));
    // An adopted socket cannot be made again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let adopted = r.adopt_stream_port(listener.into(), factory_fn(|_| Echo)).unwrap();
    drop(adopted.stop_listening());
    spin(&r, 1);
    let err = adopted.start_listening().expect_err("an adopted socket cannot listen again");
    assert!(matches!(err, NetError::CannotListen { .. }) && err.to_string().contains("adopted"), "{err}");
}

fn ipv6_loopback_works(kind: BackendKind) {
    let r = reactor(kind);
    let Ok(port) = r.listen_tcp(0, factory_fn(|_| Echo), ListenOptions::interface("::1".parse().unwrap()))
    else {
        eprintln!("no IPv6 loopback on this machine; skipped");
        return;
    };
    let number = port.address().port().unwrap();
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"v6")));
    let (factory, _) = Queue::one(client);
    r.connect_tcp("::1", number, factory, client_options());
    iterate_until(&r, || seen.data_len() == 2);
    assert!(seen.transport().peer().socket_addr().unwrap().is_ipv6());
}

fn host_names_are_resolved_off_the_loop(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, number) = echo_server(&r);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"by name")));
    let (factory, outcomes) = Queue::one(client);
    r.connect_tcp("localhost", number, factory, client_options());
    iterate_until(&r, || seen.data_len() == 7 || outcomes.len() >= 2);
    assert_eq!(&*seen.data.borrow(), b"by name", "{:?}", outcomes.snapshot());
}

fn a_connect_timeout_fires_on_the_reactor_clock(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let (_port, number) = echo_server(&r);
    let (client, seen) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    let options = ConnectOptions { timeout: Some(Duration::from_secs(5)), ..ConnectOptions::default() };
    // A host name makes the attempt wait for the resolver thread, so the timeout
    // (on the fake clock) wins deterministically.
    let connector = r.connect_tcp("localhost", number, factory, options);
    assert!(connector.is_connecting());
    clock.advance(Duration::from_secs(5));
    iterate_until(&r, || outcomes.len() == 2);
    assert_eq!(outcomes.snapshot()[1], "timeout");
    // Whenever the resolver answers, the abandoned attempt must not connect.
    for _ in 0..10 {
        step(&r, Duration::from_millis(20)).unwrap();
    }
    assert!(!seen.made.get(), "a late resolver result is ignored");
}

/// Name resolution has its own limit (`resolve_timeout`, and
/// `Reactor::resolve`'s): past it the attempt fails as a DNS failure that says
/// it timed out, and a late answer is ignored. The fake clock makes the limit
/// pass before the resolver thread's answer can be handled.
fn name_resolution_gives_up_after_its_timeout(kind: BackendKind) {
    let (r, clock) = fake_reactor(kind);
    let (_port, number) = echo_server(&r);
    let (client, seen) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    let options = ConnectOptions { resolve_timeout: Some(Duration::from_secs(1)), ..client_options() };
    r.connect_tcp("localhost", number, factory, options);
    let resolved = r.resolve("localhost", Duration::from_secs(1));
    let failure = Rc::new(RefCell::new(None));
    let f = failure.clone();
    drop(resolved.add_both(move |result| {
        *f.borrow_mut() = Some(result.map(|_| ()).map_err(|e| e.to_string()));
        Ok::<(), torque::defer::Failure>(())
    }));
    clock.advance(Duration::from_secs(1));
    iterate_until(&r, || outcomes.len() == 2 && failure.borrow().is_some());
    assert_eq!(outcomes.snapshot()[1], "dns");
    let text = failure.borrow().clone().unwrap().unwrap_err();
    assert!(text.contains("localhost") && text.contains("no answer within 1s"), "{text}");
    for _ in 0..10 {
        step(&r, Duration::from_millis(20)).unwrap();
    }
    assert!(!seen.made.get(), "a late resolver result is ignored");
    // Without the limit, the same lookup answers; an address answers at once.
    let found = Rc::new(RefCell::new(Vec::new()));
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        let found = found.clone();
        drop(r.resolve(name, Duration::from_secs(30)).add_callback(move |ips| {
            found.borrow_mut().extend(ips);
            Ok::<(), torque::defer::Failure>(())
        }));
    }
    iterate_until(&r, || found.borrow().len() >= 3);
    assert!(found.borrow().iter().all(|ip| ip.is_loopback()), "{:?}", found.borrow());
}

fn a_connector_can_stop_and_connect_again(kind: BackendKind) {
    let r = reactor(kind);
    let (_port, number) = echo_server(&r);
    // If the cancelled attempt connected anyway, it would take `first`.
    let (first, first_seen) = Recorder::new();
    let (second, second_seen) = Recorder::new();
    let (factory, outcomes) = Queue::of(vec![Box::new(first), Box::new(second)]);
    let connector = r.connect_tcp("localhost", number, factory, client_options());
    connector.stop_connecting();
    iterate_until(&r, || outcomes.len() == 2);
    assert_eq!(outcomes.snapshot()[1], "cancelled");
    for _ in 0..5 {
        step(&r, Duration::from_millis(10)).unwrap();
    }
    assert!(!first_seen.made.get(), "the cancelled attempt never connects");
    // The next attempt gets `first` (the factory hands protocols out in order).
    let second_seen = {
        let _ = second_seen;
        first_seen
    };
    connector.connect();
    iterate_until(&r, || second_seen.made.get());
    connector.disconnect();
    iterate_until(&r, || second_seen.lost_count.get() == 1);
    assert_eq!(outcomes.snapshot()[2], "lost: done");
}

/// Many connections at once. select cannot watch fds at or above FD_SETSIZE, so on
/// select the overflow must fail clearly rather than corrupt anything.
/// Many peers sending large amounts at once, faster than the server reads:
/// every byte arrives, in order, on every connection (on io_uring this runs
/// the shared receive buffers dry, which must only slow reading down).
fn many_simultaneous_bulk_senders_lose_nothing(kind: BackendKind) {
    const PEERS: usize = 24;
    const EACH: usize = 1 << 20;
    struct Check {
        received: usize,
        wrong: Rc<Cell<usize>>,
        done: Rc<Cell<usize>>,
    }
    impl torque::net::Protocol for Check {
        fn data_received(&mut self, _: &Transport, data: &[u8]) {
            for (i, &b) in data.iter().enumerate() {
                if b != ((self.received + i) % 251) as u8 {
                    self.wrong.set(self.wrong.get() + 1);
                }
            }
            self.received += data.len();
        }
        fn connection_lost(&mut self, _: torque::net::DisconnectReason) {
            if self.received == EACH {
                self.done.set(self.done.get() + 1);
            }
        }
    }
    let r = reactor(kind);
    let (wrong, done) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (w, d) = (wrong.clone(), done.clone());
    let factory = factory_fn(move |_| Check { received: 0, wrong: w.clone(), done: d.clone() });
    let port = r.listen_tcp(0, factory, ListenOptions::default()).unwrap();
    let addr = port.address().socket_addr().unwrap();
    let senders: Vec<_> = (0..PEERS)
        .map(|_| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..EACH).map(|i| (i % 251) as u8).collect();
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                std::io::Write::write_all(&mut stream, &data).unwrap();
            })
        })
        .collect();
    iterate_until(&r, || done.get() == PEERS);
    for sender in senders {
        sender.join().unwrap();
    }
    assert_eq!(wrong.get(), 0, "bytes out of order or changed");
}

/// A connection whose protocol stopped reading while its peer floods it holds
/// nothing the others need: another connection's traffic still flows (on
/// io_uring the receive buffers are shared, and a paused reader must not keep
/// them).
fn a_flooded_paused_reader_does_not_starve_others(kind: BackendKind) {
    const ECHOED: usize = 1 << 20;
    let r = reactor(kind);
    // A server whose protocol stops reading at once, flooded by a peer
    // (another thread) that writes until the kernel's buffers are full.
    let (mut paused, paused_seen) = Recorder::new();
    paused.keep_data = false;
    paused.on_made = Some(Box::new(|t| t.pause_producing()));
    let (_paused_port, paused_number) = server_with(&r, vec![Box::new(paused)]);
    let flooder = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", paused_number)).unwrap();
        // Once the kernel's buffers are full a write blocks; this bounds it.
        stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let block = vec![7u8; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match std::io::Write::write(&mut stream, &block) {
                Ok(n) => sent += n,
                Err(_) => break, // the buffers are full: the flood is in place
            }
        }
        (stream, sent)
    });
    iterate_until(&r, || flooder.is_finished());
    let (_flood_stream, flooded) = flooder.join().unwrap();
    assert!(flooded > 0);
    // Meanwhile another client echoes 1 MiB through a server on the same reactor.
    let (_port, number) = echo_server(&r);
    let other = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", number)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data: Vec<u8> = (0..ECHOED).map(|i| (i % 251) as u8).collect();
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &data));
        let mut back = vec![0u8; ECHOED];
        let result = std::io::Read::read_exact(&mut stream, &mut back);
        let _ = sender.join();
        result.is_ok() && back.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)
    });
    iterate_until(&r, || other.is_finished());
    assert!(other.join().unwrap(), "the other connection's echo did not come back whole");
    assert!(paused_seen.data.borrow().is_empty(), "the paused protocol was given nothing");
}

fn a_thousand_simultaneous_connections(kind: BackendKind) {
    const N: usize = 1000;
    crate::support::fd_heavy(kind);
    // Both ends live in this process, and three backends may run at once.
    crate::support::raise_fd_limit(8192);
    if crate::support::fd_limit() < 8192 {
        eprintln!("the fd limit is below 8192; a thousand connections per backend cannot fit; skipped");
        return;
    }
    let r = reactor(kind);
    let (_port, number) = echo_server(&r);
    let echoed = Rc::new(Cell::new(0usize));
    let failures = crate::support::Log::default();
    let mut seens = Vec::new();
    for _ in 0..N {
        let (mut client, seen) = Recorder::new();
        let e = echoed.clone();
        client.on_made = Some(Box::new(|t| t.write(b"ping")));
        client.on_data = Some(Box::new(move |t, _| {
            e.set(e.get() + 1);
            t.lose_connection();
        }));
        let (factory, outcomes) = Queue::one(client);
        let _ = outcomes.clone();
        let f = failures.clone();
        r.connect_tcp("127.0.0.1", number, factory, client_options());
        seens.push((seen, outcomes, f));
    }
    let settled = |seens: &Vec<(Rc<crate::netkit::Seen>, crate::support::Log, crate::support::Log)>| {
        seens
            .iter()
            .all(|(s, o, _)| s.lost_count.get() == 1 || o.snapshot().iter().any(|x| x.starts_with("failed")))
    };
    iterate_until(&r, || settled(&seens));
    let failed: Vec<String> = seens
        .iter()
        .flat_map(|(_, o, _)| {
            o.snapshot().into_iter().filter(|x| x.starts_with("failed")).collect::<Vec<_>>()
        })
        .collect();
    // select takes fds below FD_SETSIZE, wfmo 62 sockets: each says so.
    let limit = match (r.backend().fd_limit, r.backend().most_registrations) {
        (Some(_), _) => Some("FD_SETSIZE"),
        (None, Some(_)) => Some("at most"),
        (None, None) => None,
    };
    match limit {
        None => {
            assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(3)]);
            assert_eq!(echoed.get(), N);
        }
        Some(limit) => {
            // Client sockets past the limit fail to connect with a clear error;
            // accepted sockets past it are closed by the server (and logged), which
            // the client sees as a connection closed before any echo.
            let closed_early =
                seens.iter().filter(|(s, _, _)| s.lost_count.get() == 1 && s.data_len() == 0).count();
            assert!(!failed.is_empty() || closed_early > 0, "2,000 sockets cannot all fit under {limit}");
            assert!(failed.iter().all(|f| f.contains(limit)), "{:?}", &failed[..failed.len().min(3)]);
            assert_eq!(echoed.get() + failed.len() + closed_early, N, "every connection settled one way");
        }
    }
}

/// Twisted's `registerProducer`: a second producer is refused while one is
/// registered; on a closed transport a new producer is told to stop.
fn a_second_producer_is_refused_and_a_closed_transport_stops_a_new_one(kind: BackendKind) {
    struct Counting(Rc<Cell<u32>>);
    impl Producer for Counting {
        fn resume_producing(&mut self) {}
        fn stop_producing(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let counting = || {
        let stops = Rc::new(Cell::new(0));
        (Rc::new(RefCell::new(Counting(stops.clone()))), stops)
    };
    let r = reactor(kind);
    let (_port, seen) = connected_to_echo(&r);
    let t = seen.transport.borrow().clone().unwrap();
    let ((first, first_stops), (second, second_stops)) = (counting(), counting());
    t.register_producer(first, true).unwrap();
    assert_eq!(t.register_producer(second.clone(), true), Err(ProducerError::AlreadyRegistered));
    t.unregister_producer();
    t.register_producer(second, true).expect("allowed once the first is unregistered");
    t.abort_connection();
    iterate_until(&r, || seen.lost.borrow().is_some());
    assert_eq!((first_stops.get(), second_stops.get()), (0, 1), "only the registered producer is stopped");
    let (third, third_stops) = counting();
    t.register_producer(third, true).expect("a closed transport accepts and stops it");
    step(&r, Duration::ZERO).unwrap();
    assert_eq!(third_stops.get(), 1);
}

/// Dropping the reactor without shutting it down closes its connections and
/// ports (their protocols hear `connection_lost`): a connection, its protocol
/// and its producer hold each other, and used to leak their fds.
fn dropping_the_reactor_closes_its_connections(kind: BackendKind) {
    use std::io::Read;
    let r = reactor(kind);
    let (mut server, seen) = Recorder::new();
    let source = Rc::new(RefCell::new(Idle));
    server.on_made = Some(Box::new(move |t| t.register_producer(source.clone(), true).unwrap()));
    let (port, number) = server_with(&r, vec![Box::new(server)]);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", number)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    iterate_until(&r, || seen.made.get());
    drop(port);
    drop(r);
    assert!(seen.lost.borrow().is_some(), "the protocol heard connection_lost");
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).unwrap(), 0, "the server's end closed with the reactor");
    assert!(std::net::TcpStream::connect(("127.0.0.1", number)).is_err(), "the port closed too");
}

struct Idle;
impl Producer for Idle {
    fn resume_producing(&mut self) {}
}

/// Connections the kernel completed (or a completion backend accepted ahead
/// of the port) but the port never served are closed when it stops
/// listening: never served later, never leaked open.
fn connections_not_served_when_a_port_stops_are_closed(kind: BackendKind) {
    let r = reactor(kind);
    let served = Rc::new(Cell::new(0));
    let counted = served.clone();
    let factory = factory_fn(move |_| {
        counted.set(counted.get() + 1);
        Echo
    });
    let port = r.listen_tcp(0, factory, ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let addr = port.address().socket_addr().unwrap();
    // The port is watched (io_uring arms its accept), then clients arrive
    // while no pass runs.
    step(&r, Duration::ZERO).unwrap();
    let mut clients: Vec<std::net::TcpStream> =
        (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    drop(port.stop_listening());
    for _ in 0..5 {
        step(&r, Duration::from_millis(10)).unwrap();
    }
    assert_eq!(served.get(), 0, "a stopped port serves nothing");
    clients.iter_mut().for_each(crate::support::assert_closed_unserved);
}

crate::cases! {
    [Tcp] driven {
        echo_round_trip_and_clean_close,
        connections_not_served_when_a_port_stops_are_closed,
        a_refused_connection_reaches_the_client_factory,
        connection_lost_never_runs_inside_lose_or_abort,
        abort_from_data_received_drops_the_buffer,
        lose_connection_flushes_a_pending_buffer_first,
        half_close_keeps_the_other_direction_open,
        both_sides_half_close_at_once,
        a_peer_reset_mid_write_is_a_lost_connection,
        a_callback_may_close_another_connection,
        a_large_transfer_arrives_intact_with_backpressure,
        many_simultaneous_bulk_senders_lose_nothing,
        a_flooded_paused_reader_does_not_starve_others,
        a_paused_transport_stops_reading_until_resumed,
        a_paused_transport_still_notices_the_peer_closing,
        data_waiting_while_paused_arrives_after_resume_then_the_close,
        a_factory_shared_by_ports_starts_and_stops_once,
        tcp_transports_refuse_unix_only_features,
        a_pull_producer_feeds_on_demand_and_delays_the_close,
        a_second_producer_is_refused_and_a_closed_transport_stops_a_new_one,
        write_file_streams_a_file_through_a_pull_producer,
        shutdown_closes_connections_and_ports_with_notice,
        dual_stack_ports_and_bound_clients,
        ports_report_their_address_and_stop_with_completion,
        a_stopped_port_listens_again_on_the_same_address,
        ipv6_loopback_works,
        host_names_are_resolved_off_the_loop,
        a_connect_timeout_fires_on_the_reactor_clock,
        name_resolution_gives_up_after_its_timeout,
        a_connector_can_stop_and_connect_again,
        a_thousand_simultaneous_connections,
    }
    // The reactor's last handle is the test's own only without a driver.
    [Tcp] plain {
        dropping_the_reactor_closes_its_connections,
    }
}
