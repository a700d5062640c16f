//! The public testing tools, tested by using them: memory transports and loopback.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torque::BackendKind;
use torque::net::{LineHandler, LineReceiver, Producer, Transport};
use torque::testing::{Loopback, MemoryTransport};

use crate::netkit::{Echo, Recorder};
use crate::support::reactor;

fn a_memory_transport_records_writes_and_plays_the_peer(kind: BackendKind) {
    let r = reactor(kind);
    let (mut proto, seen) = Recorder::new();
    proto.on_made = Some(Box::new(|t| t.write(b"greeting")));
    proto.on_data = Some(Box::new(|t, data| t.write_vectored(&[b"echo:", data])));
    let conn = MemoryTransport::connect(&r, proto);
    assert!(seen.made.get());
    assert_eq!(conn.take_written(), b"greeting");
    conn.receive(b"abc");
    assert_eq!(conn.take_written(), b"echo:abc");
    assert_eq!(conn.transport().peer().to_string(), "memory:peer");
    conn.transport().lose_connection();
    assert_eq!(seen.lost_count.get(), 0, "connection_lost waits for the end of the pass");
    conn.settle();
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
    conn.receive(b"ignored after close");
    conn.transport().write(b"dropped");
    assert!(conn.written().is_empty());
}

fn peer_close_and_reset_reach_the_protocol(kind: BackendKind) {
    let r = reactor(kind);
    let (mut proto, seen) = Recorder::new();
    proto.on_eof = Some(Box::new(|t| {
        t.write(b"last words");
        t.lose_connection();
    }));
    let conn = MemoryTransport::connect(&r, proto);
    conn.peer_closes();
    assert!(seen.eof.get());
    conn.settle();
    assert_eq!(conn.take_written(), b"last words", "half-close: writing still works after EOF");
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));

    let (proto, seen) = Recorder::new();
    let conn = MemoryTransport::connect(&r, proto);
    conn.peer_aborts();
    conn.settle();
    assert!(seen.lost_kind().unwrap().starts_with("lost: "));
}

fn a_paused_memory_transport_holds_data_until_resumed(kind: BackendKind) {
    let r = reactor(kind);
    let (proto, seen) = Recorder::new();
    let conn = MemoryTransport::connect(&r, proto);
    conn.transport().pause_producing();
    conn.receive(b"held");
    assert_eq!(seen.data_len(), 0);
    conn.transport().resume_producing();
    assert_eq!(&*seen.data.borrow(), b"held");
}

fn end_of_file_waits_behind_held_data(kind: BackendKind) {
    let r = reactor(kind);
    let (mut proto, seen) = Recorder::new();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    proto.on_data = Some(Box::new(move |_, d| o.borrow_mut().push(String::from_utf8_lossy(d).to_string())));
    let o = order.clone();
    proto.on_eof = Some(Box::new(move |t| {
        o.borrow_mut().push("eof".into());
        t.lose_connection();
    }));
    let conn = MemoryTransport::connect(&r, proto);
    conn.transport().pause_producing();
    conn.receive(b"req");
    conn.peer_closes();
    assert!(order.borrow().is_empty());
    conn.transport().resume_producing();
    assert_eq!(*order.borrow(), ["req", "eof"], "data first, then the end of file");
    conn.settle();
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
}

fn an_endless_pull_producer_gets_one_ask_per_pass(kind: BackendKind) {
    struct Endless(Transport, Rc<Cell<u32>>);
    impl Producer for Endless {
        fn resume_producing(&mut self) {
            self.1.set(self.1.get() + 1);
            self.0.write(b"more");
        }
    }
    let r = reactor(kind);
    let asks = Rc::new(Cell::new(0));
    let a = asks.clone();
    let (mut proto, _) = Recorder::new();
    proto.on_made = Some(Box::new(move |t| {
        t.register_producer(Rc::new(RefCell::new(Endless(t.clone(), a.clone()))), false).unwrap();
    }));
    let conn = MemoryTransport::connect(&r, proto);
    for _ in 0..5 {
        conn.settle(); // must return: one ask per pass at most
    }
    assert!((1..=6).contains(&asks.get()), "asks: {}", asks.get());
    conn.transport().abort_connection();
    conn.settle();
}

fn a_pull_producer_works_in_memory(kind: BackendKind) {
    struct Three {
        t: Transport,
        left: u32,
    }
    impl Producer for Three {
        fn resume_producing(&mut self) {
            if self.left == 0 {
                self.t.unregister_producer();
                self.t.lose_connection();
                return;
            }
            self.left -= 1;
            self.t.write(b"chunk;");
        }
    }
    let r = reactor(kind);
    let (mut proto, seen) = Recorder::new();
    proto.on_made = Some(Box::new(|t| {
        t.register_producer(Rc::new(RefCell::new(Three { t: t.clone(), left: 3 })), false).unwrap();
    }));
    let conn = MemoryTransport::connect(&r, proto);
    for _ in 0..10 {
        conn.settle();
    }
    assert_eq!(conn.written(), b"chunk;chunk;chunk;");
    assert_eq!(seen.lost_kind().as_deref(), Some("done"));
}

struct Chat {
    name: &'static str,
    heard: Rc<RefCell<Vec<String>>>,
    replies: Rc<Cell<u32>>,
}

impl LineHandler for Chat {
    fn connection_made(&mut self, t: &Transport) {
        if self.name == "client" {
            t.write(b"ping\r\n");
        }
    }
    fn line_received(&mut self, t: &Transport, line: &[u8]) {
        self.heard.borrow_mut().push(format!("{} heard {}", self.name, String::from_utf8_lossy(line)));
        if self.replies.get() < 3 {
            self.replies.set(self.replies.get() + 1);
            t.write(if self.name == "server" { b"pong\r\n" } else { b"ping\r\n" });
        } else {
            t.lose_connection();
        }
    }
}

fn a_loopback_joins_two_protocols_step_by_step(kind: BackendKind) {
    let r = reactor(kind);
    let heard = Rc::new(RefCell::new(Vec::new()));
    let replies = Rc::new(Cell::new(0));
    let client = LineReceiver::new(Chat { name: "client", heard: heard.clone(), replies: replies.clone() });
    let server = LineReceiver::new(Chat { name: "server", heard: heard.clone(), replies: replies.clone() });
    let pair = Loopback::connect(&r, client, server);
    assert!(heard.borrow().is_empty(), "nothing moves before pump");
    assert!(pair.pump());
    assert_eq!(
        *heard.borrow(),
        ["server heard ping", "client heard pong", "server heard ping", "client heard pong"]
    );
    assert!(pair.client().is_closed() && pair.server().is_closed());
    assert!(!pair.pump(), "nothing left to move");

    let (mut proto, seen) = Recorder::new();
    proto.on_made = Some(Box::new(|t| t.write(b"round trip")));
    let pair = Loopback::connect(&r, proto, torque::net::LineReceiver::new(NoLines).max_length(4));
    pair.pump();
    assert!(pair.server().is_closed(), "the server dropped an over-long line");
    assert_eq!(seen.lost_count.get(), 1);
    let (mut proto, seen) = Recorder::new();
    proto.on_made = Some(Box::new(|t| t.write(b"echo me")));
    let pair = Loopback::connect(&r, proto, Echo);
    pair.pump();
    assert_eq!(&*seen.data.borrow(), b"echo me");
}

struct NoLines;
impl LineHandler for NoLines {
    fn line_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn a_recording_reactor_captures_listens_and_connects(kind: BackendKind) {
    use torque::net::{ConnectOptions, FactoryRef, NetError, StreamReactor, factory_fn};
    use torque::testing::RecordingReactor;
    let recording = RecordingReactor::new(reactor(kind));
    // Code under test: a server and a client, written against the trait.
    fn start(r: &impl StreamReactor) -> Result<(), NetError> {
        r.listen_tcp_with(
            7000,
            FactoryRef::new(factory_fn(|_| Echo)),
            torque::net::ListenOptions::default(),
        )?;
        let (client, _) = Recorder::new();
        let (factory, _) = crate::netkit::Queue::one(client);
        r.connect_tcp_with("db.internal", 5432, FactoryRef::new(factory), ConnectOptions::default());
        Ok(())
    }
    start(&recording).unwrap();
    let servers = recording.tcp_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].port, 7000);
    let conn = servers[0].accept("203.0.113.9:5000").unwrap();
    conn.receive(b"echo through a recorded port");
    assert_eq!(conn.take_written(), b"echo through a recorded port");
    let clients = recording.tcp_clients();
    assert_eq!((clients[0].host.as_str(), clients[0].port), ("db.internal", 5432));
    assert_eq!(clients[0].connector().destination(), "db.internal:5432");
    clients[0].fail(NetError::ConnectionRefused { address: "db.internal:5432".into() });
    let server_side = clients[0].succeed().unwrap();
    server_side.peer_aborts();
    server_side.settle();
    assert!(server_side.is_closed());
}

fn recorded_connects_report_failure_and_loss_to_the_factory(kind: BackendKind) {
    use torque::net::{ConnectOptions, FactoryRef, NetError, StreamReactor};
    use torque::testing::RecordingReactor;
    let recording = RecordingReactor::new(reactor(kind));
    let (a, _) = Recorder::new();
    let (b, _) = Recorder::new();
    let (factory, outcomes) = crate::netkit::Queue::of(vec![Box::new(a), Box::new(b)]);
    let _c = recording.connect_tcp_with("svc", 1, FactoryRef::new(factory), ConnectOptions::default());
    let call = &recording.tcp_clients()[0];
    call.fail(NetError::ConnectionRefused { address: "svc:1".into() });
    assert_eq!(outcomes.snapshot()[1], "refused");
    let conn = call.succeed().unwrap();
    conn.peer_aborts();
    conn.settle();
    assert!(outcomes.snapshot().last().unwrap().starts_with("lost: lost:"), "{:?}", outcomes.snapshot());
}

crate::cases! {
    [] plain {
        a_recording_reactor_captures_listens_and_connects,
        recorded_connects_report_failure_and_loss_to_the_factory,
        a_memory_transport_records_writes_and_plays_the_peer,
        peer_close_and_reset_reach_the_protocol,
        a_paused_memory_transport_holds_data_until_resumed,
        a_pull_producer_works_in_memory,
        end_of_file_waits_behind_held_data,
        an_endless_pull_producer_gets_one_ask_per_pass,
        a_loopback_joins_two_protocols_step_by_step,
    }
}
