//! Accepting when the process is out of file descriptors. Lowering RLIMIT_NOFILE
//! affects the whole process, so this lives in its own binary and runs one backend
//! at a time.

#[path = "conformance/support.rs"]
mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use torque::BackendKind;
use torque::net::{ListenOptions, Protocol, Transport, factory_fn};

use support::{iterate_until, reactor};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

fn set_soft_limit(limit: libc::rlim_t) -> libc::rlim_t {
    // SAFETY (test): get/setrlimit on a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let old = lim.rlim_cur;
        lim.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

fn accepting_survives_fd_exhaustion(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    // Clients' sockets, made while fds remain.
    let clients: Vec<socket2::Socket> = (0..5)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    // Cap the limit just above what is open. Before the port is made: a
    // backend that accepts ahead of the port (io_uring) reads the limit when
    // its accept is armed.
    let probe = File::open("/dev/null").unwrap();
    let highest = std::os::fd::AsRawFd::as_raw_fd(&probe) as libc::rlim_t;
    drop(probe);
    let old_limit = set_soft_limit(highest + 8);
    let options = ListenOptions { backlog: 64, ..ListenOptions::interface([127, 0, 0, 1].into()) };
    let port = r.listen_tcp(0, factory_fn(|_| Echo), options).unwrap();
    let addr = port.address().socket_addr().unwrap();
    r.iterate(Duration::ZERO).unwrap();
    // Exhaust the table: fill the holes.
    let mut fillers = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        fillers.push(f);
    }
    // Connections arrive while no fd is left (a backend that accepts ahead of
    // the port, io_uring, meets EMFILE in its accept).
    let mut pending: Vec<TcpStream> = clients
        .into_iter()
        .map(|socket| {
            socket.connect(&addr.into()).unwrap();
            TcpStream::from(socket)
        })
        .collect();
    // The port hits EMFILE: it must shed the pending connections, not spin.
    for _ in 0..10 {
        r.iterate(Duration::from_millis(10)).unwrap();
    }
    pending.iter_mut().for_each(support::assert_closed_unserved);
    let start = Instant::now();
    r.iterate(Duration::from_millis(100)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(90), "the loop slept instead of spinning");
    // Descriptors come back: the port serves again.
    drop(fillers);
    set_soft_limit(old_limit);
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"alive").unwrap();
    client.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    iterate_until(&r, || {
        let mut buf = [0u8; 16];
        if let Ok(n) = client.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got == b"alive"
    });
    assert!(port.is_listening());
}

cases! {
    [Tcp] plain {
        accepting_survives_fd_exhaustion,
    }
}

fn main() {
    support::main(cases(), &[support::PLAIN]);
}
