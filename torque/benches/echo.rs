//! Echo benchmark: Torque (each backend), tokio's current-thread runtime, a
//! minimal raw mio loop and monoio (io_uring) serve identical ping-pong load, one
//! after another, in one invocation. Run with `cargo bench --bench echo`
//! (`-- --secs 3` for longer rows; name servers, e.g. `-- torque-io_uring monoio`,
//! to run only those). The Python servers run only when named: `python-twisted-epoll`,
//! `python-twisted-torque` (Torque's reactor for Twisted), `python-asyncio`,
//! `python-uvloop` (`torque-python/bench/echo_server.py`, in the venv
//! `scripts/python-env.sh uvloop` makes).
//!
//! The server runs in a child process pinned to CPU 0; this process is the load
//! generator (a raw mio loop) pinned to CPU 1. For each row it reports round trips
//! per second and the server's CPU time per round trip, read from the kernel's
//! accounting of the server process (`/proc/PID/schedstat`: user + system time in
//! ns). On 2 cores the generator saturates its core around 64 connections, so
//! throughput alone cannot separate fast servers; CPU per round trip can. Last, the
//! server's resident memory growth with 10,000 idle connections. `-- udp` runs only
//! the UDP table: 64-byte request-response datagrams against Torque's UDP ports and
//! tokio's `UdpSocket`, with the server's CPU time per round trip.
//!
//! `-- --callgrind` prints instead the server's user-space instructions per
//! round trip, counted by `valgrind --tool=callgrind` (identical from run to
//! run, so differences smaller than this machine's timing noise show): each
//! server runs under callgrind twice per row, with N and 2N round trips on
//! the same connections (`--rounds N`, default 5000), and the difference ÷ N
//! excludes start-up and connection set-up. Kernel work (system calls, the
//! network stack, io_uring's task work) is not counted: that is what the
//! CPU-time table adds.

#[path = "common/cpu.rs"]
mod cpu;
use cpu::pin_to_cpu;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROWS: [(usize, usize); 6] = [(1, 64), (1, 4096), (64, 64), (64, 4096), (1000, 64), (1000, 4096)];
const IDLE_CONNECTIONS: usize = 10_000;
/// The servers compared: Torque on every backend of this build, tokio, a raw
/// mio loop, and monoio on io_uring (`benches/monoio-echo`, built on first use
/// with its own lock file; Linux only).
fn servers() -> Vec<String> {
    let torque = torque::BackendKind::all().iter().map(|k| format!("torque-{k}"));
    let monoio = cfg!(target_os = "linux").then(|| "monoio".to_owned());
    torque.chain(["tokio".to_owned(), "mio".to_owned()]).chain(monoio).collect()
}

/// Builds the monoio peer once (its own workspace, its own target directory);
/// the binary's path, or why not.
fn monoio_binary() -> io::Result<std::path::PathBuf> {
    static BUILT: std::sync::OnceLock<Result<std::path::PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
        let target = repo.join("target/monoio-echo");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(repo.join("benches/monoio-echo/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("building benches/monoio-echo failed".into());
        }
        Ok(target.join("release/monoio-echo"))
    });
    built.clone().map_err(io::Error::other)
}

/// The Python servers (`torque-python/bench/echo_server.py`), run only when
/// named: Twisted's echo protocol on its epollreactor and on Torque's reactor,
/// and the same as an asyncio protocol on asyncio's loop and on uvloop.
const PYTHON_SERVERS: [&str; 4] =
    ["python-twisted-epoll", "python-twisted-torque", "python-asyncio", "python-uvloop"];

/// The interpreter that runs the Python servers: `TORQUE_BENCH_PYTHON`, else
/// the venv `scripts/python-env.sh uvloop` makes.
fn python_for_bench() -> io::Result<std::path::PathBuf> {
    if let Some(python) = std::env::var_os("TORQUE_BENCH_PYTHON") {
        return Ok(python.into());
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    let python = repo.join("target/python/bin/python");
    if python.exists() {
        Ok(python)
    } else {
        Err(io::Error::other("no target/python: run scripts/python-env.sh uvloop first"))
    }
}

// ----- servers (child process) -----

/// The fd limit of a `torque-BACKEND` server's backend.
fn fd_limit(kind: &str) -> Option<usize> {
    let backend: torque::BackendKind = kind.strip_prefix("torque-")?.parse().ok()?;
    backend.info().fd_limit
}

/// Makes a Torque echo server exit once it echoed this many bytes.
const EXIT_AFTER_VAR: &str = "TORQUE_ECHO_EXIT_AFTER_BYTES";

fn run_server(kind: &str) -> io::Result<()> {
    pin_to_cpu(0);
    let announce = |addr: SocketAddr| {
        println!("PORT {}", addr.port());
        let _ = io::stdout().flush();
    };
    match kind {
        "tokio" => tokio_server(announce),
        "mio" => mio_server(announce),
        "udp-tokio" => tokio_udp_server(announce),
        other if other.starts_with("udp-torque-") => {
            torque_udp_server(&other["udp-torque-".len()..], announce)
        }
        other => {
            let backend = other.strip_prefix("torque-").unwrap_or(other);
            torque_server(backend, announce)
        }
    }
}

fn torque_server(backend: &str, announce: impl Fn(SocketAddr)) -> io::Result<()> {
    use torque::net::{ListenOptions, Protocol, Transport, factory_fn};
    struct Echo;
    thread_local! { static ECHOED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) }; }
    // Set for instruction counts (see `Server::start_under`).
    static EXIT_AFTER: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    EXIT_AFTER
        .get_or_init(|| std::env::var(EXIT_AFTER_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX));
    impl Protocol for Echo {
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            t.write(data);
            let echoed = ECHOED.with(|e| {
                e.set(e.get() + data.len() as u64);
                e.get()
            });
            if echoed >= EXIT_AFTER.get().copied().unwrap_or(u64::MAX) {
                std::process::exit(0);
            }
        }
    }
    let kind: torque::BackendKind = backend.parse().map_err(io::Error::other)?;
    let reactor = torque::Reactor::builder().backend(kind).build().map_err(io::Error::other)?;
    let options = ListenOptions { backlog: 4096, ..ListenOptions::interface([127, 0, 0, 1].into()) };
    let port = reactor.listen_tcp(0, factory_fn(|_| Echo), options).map_err(io::Error::other)?;
    announce(port.address().socket_addr().expect("tcp"));
    reactor.run().map_err(io::Error::other)
}

fn torque_udp_server(backend: &str, announce: impl Fn(SocketAddr)) -> io::Result<()> {
    use torque::net::{Address, DatagramPort, DatagramProtocol, UdpOptions};
    struct Echo;
    impl DatagramProtocol for Echo {
        fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
            if let Some(to) = from.socket_addr() {
                let _ = port.write(data, to);
            }
        }
    }
    let kind: torque::BackendKind = backend.parse().map_err(io::Error::other)?;
    let reactor = torque::Reactor::builder().backend(kind).build().map_err(io::Error::other)?;
    let port = reactor
        .listen_udp(0, Echo, UdpOptions::interface([127, 0, 0, 1].into()))
        .map_err(io::Error::other)?;
    announce(port.address().socket_addr().expect("udp"));
    reactor.run().map_err(io::Error::other)
}

fn tokio_udp_server(announce: impl Fn(SocketAddr)) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        announce(socket.local_addr()?);
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            let _ = socket.send_to(&buf[..n], from).await;
        }
    })
}

/// `sockets` UDP clients each keeping one 64-byte request in flight for `secs`.
/// Each request carries a sequence number; only the reply to a client's current
/// request counts, and a client whose request or reply was lost resends the same
/// request after 50 ms of its own silence (so losses neither stall nor inflate).
fn udp_ping_pong(server: &Server, sockets: usize, secs: f64) -> io::Result<Row> {
    use mio::net::UdpSocket;
    use mio::{Events, Interest, Poll, Token};
    struct Client {
        socket: UdpSocket,
        seq: u64,
        sent_at: Instant,
    }
    let request = |seq: u64| {
        let mut message = [b'u'; 64];
        message[..8].copy_from_slice(&seq.to_be_bytes());
        message
    };
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let mut socket = UdpSocket::bind("127.0.0.1:0".parse().expect("addr"))?;
        socket.connect(server.addr)?;
        poll.registry().register(&mut socket, Token(i), Interest::READABLE)?;
        socket.send(&request(0))?;
        clients.push(Client { socket, seq: 0, sent_at: Instant::now() });
    }
    let mut buf = [0u8; 2048];
    let mut events = Events::with_capacity(1024);
    let mut window = Window::new(secs);
    let mut round_trips = 0u64;
    while window.running(server, round_trips) {
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for event in &events {
            let client = &mut clients[event.token().0];
            while let Ok(n) = client.socket.recv(&mut buf) {
                if n == 64 && buf[..8] == client.seq.to_be_bytes() {
                    round_trips += 1;
                    client.seq += 1;
                    client.sent_at = Instant::now();
                    client.socket.send(&request(client.seq))?;
                }
            }
        }
        for client in &mut clients {
            if client.sent_at.elapsed() > Duration::from_millis(50) {
                let _ = client.socket.send(&request(client.seq));
                client.sent_at = Instant::now();
            }
        }
    }
    Ok(window.finish(server, round_trips))
}

fn tokio_server(announce: impl Fn(SocketAddr)) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                // One buffer per connection, as in tokio's own echo example (the
                // size matches the read buffer Torque's reactor shares).
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

/// The practical limit of an epoll loop: mio, edge-triggered, one buffer per
/// connection only while a write is pending.
fn mio_server(announce: impl Fn(SocketAddr)) -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().expect("addr"))?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?);
    let mut conns: HashMap<usize, (TcpStream, Vec<u8>)> = HashMap::new();
    let mut next = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let token = Token(next);
                    next += 1;
                    poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                    conns.insert(token.0, (stream, Vec::new()));
                }
                continue;
            }
            let id = event.token().0;
            let mut closed = false;
            if let Some((stream, pending)) = conns.get_mut(&id) {
                // Flush what is pending, then read and echo until WouldBlock.
                'io: loop {
                    while !pending.is_empty() {
                        match stream.write(pending) {
                            Ok(n) => {
                                pending.drain(..n);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 'io,
                            Err(_) => {
                                closed = true;
                                break 'io;
                            }
                        }
                    }
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => match stream.write(&buf[..n]) {
                            Ok(w) if w == n => {}
                            Ok(w) => pending.extend_from_slice(&buf[w..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                pending.extend_from_slice(&buf[..n])
                            }
                            Err(_) => {
                                closed = true;
                                break;
                            }
                        },
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            if closed {
                conns.remove(&id);
            }
        }
    }
}

// ----- measurements of the server process -----

fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str) -> io::Result<Server> {
        Server::start_under(kind, None, 0)
    }

    /// Starts the server, under callgrind writing to `callgrind_out` if given.
    /// There Torque's and monoio's servers exit by themselves once they echoed
    /// `echo_bytes`: valgrind (3.19) holds signals, and other threads, while
    /// a thread sleeps in io_uring_enter.
    fn start_under(
        kind: &str,
        callgrind_out: Option<&std::path::Path>,
        echo_bytes: u64,
    ) -> io::Result<Server> {
        let mut command = match callgrind_out {
            Some(out) => {
                let mut command = Command::new("valgrind");
                command.args(["--tool=callgrind", "--quiet"]);
                command.arg(format!("--callgrind-out-file={}", out.display()));
                command
            }
            // monoio's own binary is pinned here; ours pin themselves.
            None if kind == "monoio" => {
                let mut command = Command::new("taskset");
                command.args(["-c", "0"]);
                command
            }
            None if kind.starts_with("python-") => Command::new(python_for_bench()?),
            None => Command::new(std::env::current_exe()?),
        };
        if let Some(python_kind) = kind.strip_prefix("python-") {
            let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
            command.arg(repo.join("torque-python/bench/echo_server.py")).arg(python_kind);
        } else if kind == "monoio" {
            command.arg(monoio_binary()?);
            if callgrind_out.is_some() {
                command.args(["--exit-after-bytes", &echo_bytes.to_string()]);
            }
        } else {
            if callgrind_out.is_some() {
                command.arg(std::env::current_exe()?).env(EXIT_AFTER_VAR, echo_bytes.to_string());
            }
            command.args(["--role", "server", "--kind", kind]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| io::Error::other(format!("server {kind} did not start: {line:?}")))?;
        Ok(Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the load generator -----

struct Row {
    round_trips: u64,
    elapsed: Duration,
    server_cpu_ns: u64,
}

/// A measurement window: a 300 ms warm-up, then `secs` during which round trips
/// and the server's CPU time are counted.
struct Window {
    start: Instant,
    total: Duration,
    measured_from: Option<Instant>,
    cpu_from: u64,
    count_from: u64,
}

impl Window {
    fn new(secs: f64) -> Window {
        let warmup = Duration::from_millis(300);
        Window {
            start: Instant::now(),
            total: warmup + Duration::from_secs_f64(secs),
            measured_from: None,
            cpu_from: 0,
            count_from: 0,
        }
    }

    /// Whether to keep going; starts the measured part once the warm-up is over.
    fn running(&mut self, server: &Server, round_trips: u64) -> bool {
        if self.measured_from.is_none() && self.start.elapsed() >= Duration::from_millis(300) {
            self.measured_from = Some(Instant::now());
            self.cpu_from = cpu_ns(server.pid());
            self.count_from = round_trips;
        }
        self.start.elapsed() < self.total
    }

    fn finish(self, server: &Server, round_trips: u64) -> Row {
        let from = self.measured_from.unwrap_or(self.start);
        Row {
            round_trips: round_trips - self.count_from,
            elapsed: from.elapsed(),
            server_cpu_ns: cpu_ns(server.pid()).saturating_sub(self.cpu_from),
        }
    }
}

/// `conns` connections each doing ping-pong with `size`-byte messages for `secs`.
fn ping_pong(server: &Server, conns: usize, size: usize, secs: f64) -> io::Result<Row> {
    let mut window = Window::new(secs);
    let round_trips = ping_pong_while(server, conns, size, |done| window.running(server, done))?;
    Ok(window.finish(server, round_trips))
}

/// Ping-pong on `conns` connections while `keep_going(round trips so far)`.
fn ping_pong_while(
    server: &Server,
    conns: usize,
    size: usize,
    mut keep_going: impl FnMut(u64) -> bool,
) -> io::Result<u64> {
    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    let message = vec![b'x'; size];
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let std_stream = std::net::TcpStream::connect(server.addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE)?;
        streams.push((stream, 0usize));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    for (stream, _) in &mut streams {
        stream.write_all(&message)?;
    }
    let mut round_trips = 0u64;
    while keep_going(round_trips) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in &events {
            let (stream, got) = &mut streams[event.token().0];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "server closed a connection",
                        ));
                    }
                    Ok(n) => {
                        *got += n;
                        if *got >= size {
                            *got -= size;
                            round_trips += 1;
                            stream.write_all(&message)?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(round_trips)
}

/// The instructions callgrind counted in `kind`'s server for `round_trips`
/// round trips on `conns` connections (start-up and set-up included).
fn callgrind_count(kind: &str, conns: usize, size: usize, round_trips: u64) -> io::Result<u64> {
    let out = std::env::temp_dir().join(format!("torque-echo-callgrind-{}-{kind}", std::process::id()));
    let mut server = Server::start_under(kind, Some(&out), round_trips * size as u64)?;
    // Every connection gets its first message at once; stop once the total is reached.
    let result = ping_pong_while(&server, conns, size, |done| done < round_trips);
    // Torque's and monoio's servers exit by themselves after the last echo
    // (see `start_under`): a connection reset on the way out is no failure.
    if !(kind.starts_with("torque-") || kind == "monoio") {
        result?;
    }
    // The others end on SIGTERM; callgrind writes its counts as the program
    // ends. A connection wakes a server until the signal gets through
    // (bounded).
    let _ = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status();
    for _ in 0..100 {
        if server.child.try_wait()?.is_some() {
            break;
        }
        let _ = std::net::TcpStream::connect(server.addr);
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.child.wait();
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no instruction total in callgrind's output for {kind}")))
}

/// Prints user-space instructions per round trip for each server and row.
fn callgrind_table(kinds: &[&str], rounds: u64) {
    const CALLGRIND_ROWS: [(usize, usize); 4] = [(64, 64), (64, 4096), (1000, 64), (1000, 4096)];
    println!("Server user-space instructions per round trip (valgrind --tool=callgrind:");
    println!("(count at {} − count at {rounds} round trips) ÷ {rounds}; lower is better)\n", 2 * rounds);
    print!("| server |");
    for (conns, size) in CALLGRIND_ROWS {
        print!(" {conns} conn × {size} B |");
    }
    println!("\n|---|{}", "---:|".repeat(CALLGRIND_ROWS.len()));
    for kind in kinds {
        let mut cells = Vec::new();
        for (conns, size) in CALLGRIND_ROWS {
            let counts = callgrind_count(kind, conns, size, rounds)
                .and_then(|one| Ok((one, callgrind_count(kind, conns, size, 2 * rounds)?)));
            let cell = match counts {
                Ok((one, two)) => format!("{:.0}", two.saturating_sub(one) as f64 / rounds as f64),
                Err(e) => format!("n/a ({e})"),
            };
            eprintln!("{kind} {conns}×{size}: {cell} instructions");
            cells.push(cell);
        }
        println!("| {kind} | {} |", cells.join(" | "));
    }
}

/// KiB of server RSS per idle connection, with `n` connections open.
fn idle_memory(server: &Server, n: usize) -> io::Result<f64> {
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(server.pid());
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(std::net::TcpStream::connect(server.addr)?);
    }
    // Wait until the server has accepted everything (its RSS stops growing).
    let mut last = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(server.pid());
        if now == last {
            break;
        }
        last = now;
    }
    // Prove the connections are live: one round trip on the last one.
    let probe = conns.last_mut().expect("n > 0");
    probe.write_all(b"?")?;
    probe.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut one = [0u8; 1];
    probe.read_exact(&mut one)?;
    let after = rss_kib(server.pid());
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        if args.get(i + 1).map(String::as_str) == Some("server") {
            let kind = args
                .iter()
                .position(|a| a == "--kind")
                .and_then(|k| args.get(k + 1))
                .cloned()
                .unwrap_or_default();
            if let Err(e) = run_server(&kind) {
                eprintln!("server {kind}: {e}");
                std::process::exit(1);
            }
            return;
        }
    }
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut servers = servers();
    let only: Vec<&String> =
        args.iter().skip(1).filter(|a| servers.contains(a) || PYTHON_SERVERS.contains(&a.as_str())).collect();
    // The Python servers run when named (they need scripts/python-env.sh's venv).
    servers.extend(PYTHON_SERVERS.iter().filter(|k| only.iter().any(|o| o == *k)).map(|k| k.to_string()));
    if args.iter().any(|a| a == "--callgrind") {
        let rounds = args
            .iter()
            .position(|a| a == "--rounds")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(5000);
        let kinds: Vec<&str> = servers
            .iter()
            .map(String::as_str)
            .filter(|k| only.is_empty() || only.iter().any(|o| o.as_str() == *k))
            .collect();
        callgrind_table(&kinds, rounds);
        return;
    }
    pin_to_cpu(1);
    println!("Echo benchmark: server pinned to CPU 0, load generator (mio) on CPU 1; {secs} s per row.");
    println!(
        "Per row: round trips per second, and the server's CPU time per round trip (lower is better).\n"
    );
    let udp_only = args.iter().any(|a| a == "udp");
    let mut table: Vec<(String, Vec<String>, String)> = Vec::new();
    for kind in servers.iter().map(String::as_str) {
        if udp_only {
            break;
        }
        if !only.is_empty() && !only.iter().any(|o| o.as_str() == kind) {
            continue;
        }
        let mut cells = Vec::new();
        for (conns, size) in ROWS {
            let cell = match Server::start(kind).and_then(|server| ping_pong(&server, conns, size, secs)) {
                Ok(row) => {
                    let rate = row.round_trips as f64 / row.elapsed.as_secs_f64();
                    let cpu = row.server_cpu_ns as f64 / row.round_trips.max(1) as f64 / 1000.0;
                    format!("{:.0}/s, {:.2} µs", rate, cpu)
                }
                Err(e) => format!("n/a ({e})"),
            };
            eprintln!("{kind} {conns}×{size}: {cell}");
            cells.push(cell);
        }
        let memory = match Server::start(kind).and_then(|server| idle_memory(&server, IDLE_CONNECTIONS)) {
            Ok(kib) => format!("{:.2} KiB", kib),
            // The server closes connections it cannot watch; say why plainly.
            Err(_) if fd_limit(kind).is_some() => {
                format!("n/a: {kind} watches fds below {} only", fd_limit(kind).unwrap_or_default())
            }
            Err(e) => format!("n/a ({e})"),
        };
        eprintln!("{kind} idle memory: {memory}");
        table.push((kind.to_owned(), cells, memory));
    }
    if only.is_empty() || udp_only {
        println!("UDP request-response, 64-byte datagrams, 16 client sockets, one request each in flight;");
        println!("servers run round-robin, 5 rounds, median per server:\n");
        println!("| server | datagrams/s (round trips) | server CPU per round trip |");
        println!("|---|---:|---:|");
        let kinds: Vec<String> = torque::BackendKind::all()
            .iter()
            .map(|k| format!("udp-torque-{k}"))
            .chain(["udp-tokio".to_owned()])
            .collect();
        let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); kinds.len()];
        let mut failures: Vec<Option<String>> = vec![None; kinds.len()];
        for _round in 0..5 {
            for (i, kind) in kinds.iter().enumerate() {
                match Server::start(kind).and_then(|server| udp_ping_pong(&server, 16, secs)) {
                    Ok(row) => {
                        let rate = row.round_trips as f64 / row.elapsed.as_secs_f64();
                        let cpu = row.server_cpu_ns as f64 / row.round_trips.max(1) as f64 / 1000.0;
                        samples[i].push((rate, cpu));
                    }
                    Err(e) => failures[i] = Some(e.to_string()),
                }
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            let rows = samples[i].clone();
            if rows.is_empty() {
                println!("| {kind} | n/a ({}) | – |", failures[i].clone().unwrap_or_default());
                continue;
            }
            let mut rates: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let mut cpus: Vec<f64> = rows.iter().map(|r| r.1).collect();
            rates.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            let (rate, cpu) = (rates[rates.len() / 2], cpus[cpus.len() / 2]);
            println!("| {kind} | {rate:.0} | {cpu:.2} µs |");
        }
        println!();
        if udp_only {
            return;
        }
    }
    print!("| server |");
    for (conns, size) in ROWS {
        print!(" {conns} conn × {size} B |");
    }
    println!(" RSS per idle conn (10k) |");
    println!("|---|{}---|", "---|".repeat(ROWS.len()));
    for (kind, cells, memory) in &table {
        println!("| {kind} | {} | {memory} |", cells.join(" | "));
    }
}
