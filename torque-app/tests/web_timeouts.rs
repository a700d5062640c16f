//! `torque web`'s timeouts on a fake clock, in process: exact, whatever the
//! machine's load.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use torque::Reactor;
use torque::net::ListenOptions;
use torque::testing::FakeClock;
use torque_app::web::{WebConfig, WebServer};

struct Setup {
    reactor: Reactor,
    clock: FakeClock,
    client: TcpStream,
    _server: WebServer,
    _root: tempfile::TempDir,
}

fn setup(idle_timeout: Duration) -> Setup {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "Hello, world\n").unwrap();
    let clock = FakeClock::new();
    let reactor = Reactor::builder().handle_signals(false).clock(clock.clone()).build().unwrap();
    let mut config = WebConfig::new(root.path());
    config.idle_timeout = idle_timeout;
    config.access_log = false;
    let server = WebServer::new(&reactor, config).unwrap();
    let port =
        reactor.listen_tcp(0, server.factory(), ListenOptions::interface([127, 0, 0, 1].into())).unwrap();
    let client = TcpStream::connect(("127.0.0.1", port.address().port().unwrap())).unwrap();
    client.set_nonblocking(true).unwrap();
    std::mem::forget(port); // listening for the test's life
    Setup { reactor, clock, client, _server: server, _root: root }
}

impl Setup {
    /// Lets the server run a few passes (no time passes on the fake clock).
    fn settle(&self) {
        for _ in 0..20 {
            self.reactor.iterate(Duration::from_millis(5)).unwrap();
        }
    }

    /// Sends a request and reads its whole response.
    fn request(&mut self) {
        self.client.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = Vec::new();
        for _ in 0..2000 {
            self.reactor.iterate(Duration::from_millis(5)).unwrap();
            let mut buf = [0u8; 1024];
            match self.client.read(&mut buf) {
                Ok(0) => panic!("closed instead of answering"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if got.ends_with(b"Hello, world\n") {
                return;
            }
        }
        panic!("no response: {:?}", String::from_utf8_lossy(&got));
    }

    /// Whether the server closed the connection.
    fn closed(&mut self) -> bool {
        self.settle();
        let mut buf = [0u8; 64];
        match self.client.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => panic!("unexpected bytes"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
            Err(e) => panic!("{e}"),
        }
    }
}

/// An idle keep-alive connection closes `--idle-timeout` after its last
/// request, not up to twice that (the timer armed for the first request used
/// to start a whole new period when it found later activity).
#[test]
fn an_idle_connection_closes_exactly_one_timeout_after_its_last_request() {
    let mut s = setup(Duration::from_secs(60));
    s.request();
    s.clock.advance(Duration::from_secs(50));
    s.request(); // the last activity, at 50 s
    s.clock.advance(Duration::from_secs(10));
    assert!(!s.closed(), "60 s: idle for only 10 s");
    s.clock.advance(Duration::from_secs(49));
    assert!(!s.closed(), "109 s: idle for 59 s");
    s.clock.advance(Duration::from_secs(1));
    assert!(s.closed(), "110 s: idle for 60 s");
}

#[test]
fn an_untouched_connection_closes_after_one_timeout() {
    let mut s = setup(Duration::from_secs(5));
    s.settle();
    s.clock.advance(Duration::from_millis(4_999));
    assert!(!s.closed());
    s.clock.advance(Duration::from_millis(1));
    assert!(s.closed());
}
