//! TLS benchmark: Torque's TLS echo server against tokio + tokio-rustls, both
//! built from the very same `rustls::ServerConfig` (ring provider), in one run.
//! Run with `cargo bench -p torque --bench tls` (`-- --secs 5 --rounds 5`).
//!
//! Each server runs in a child process pinned to CPU 0; this process is the load
//! generator (tokio + tokio-rustls clients, the same for both servers) pinned to
//! CPU 1. Two workloads:
//!
//! - **handshakes**: 16 clients in a loop connect, complete a full TLS 1.3
//!   handshake (no resumption), exchange one byte, send close_notify and close;
//! - **bulk**: 64 connections each echo 16 KiB messages back and forth.
//!
//! For each it reports operations per second and the server's CPU time per
//! operation (user + system, from `/proc/PID/schedstat`), median over rounds in
//! which the servers take turns. The generator is usually the bottleneck on two
//! cores, so CPU per operation is the figure that separates the servers.

#[path = "common/cpu.rs"]
mod cpu;
use cpu::pin_to_cpu;

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Torque on this platform's default backend, and tokio-rustls.
fn servers() -> [String; 2] {
    [format!("torque-{}", torque::BackendKind::platform_default()), "tokio-rustls".to_owned()]
}
const HANDSHAKE_CLIENTS: usize = 16;
const BULK_CONNECTIONS: usize = 64;
const MESSAGE: usize = 16 * 1024;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

// ----- servers (child process) -----

fn server_config(cert: &str, key: &str) -> torque::tls::TlsServerConfig {
    let identity = torque::tls::Identity::from_pem_files(cert, key).expect("identity");
    torque::tls::TlsServerOptions::new(identity).build().expect("server config")
}

fn run_server(kind: &str, cert: &str, key: &str) -> io::Result<()> {
    pin_to_cpu(0);
    let config = server_config(cert, key);
    let announce = |addr: SocketAddr| {
        println!("PORT {}", addr.port());
        let _ = io::stdout().flush();
    };
    match kind {
        "tokio-rustls" => tokio_server(Arc::clone(config.rustls()), announce),
        other => torque_server(other.strip_prefix("torque-").unwrap_or(other), &config, announce),
    }
}

fn torque_server(
    backend: &str,
    config: &torque::tls::TlsServerConfig,
    announce: impl Fn(SocketAddr),
) -> io::Result<()> {
    use torque::net::{ListenOptions, Protocol, Transport, factory_fn};
    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            t.write(data);
        }
    }
    let kind: torque::BackendKind = backend.parse().map_err(io::Error::other)?;
    let reactor = torque::Reactor::builder().backend(kind).build().map_err(io::Error::other)?;
    let options = ListenOptions { backlog: 4096, ..ListenOptions::interface([127, 0, 0, 1].into()) };
    let port = reactor.listen_tls(0, factory_fn(|_| Echo), options, config).map_err(io::Error::other)?;
    announce(port.address().socket_addr().expect("tcp"));
    reactor.run().map_err(io::Error::other)
}

fn tokio_server(config: Arc<rustls::ServerConfig>, announce: impl Fn(SocketAddr)) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(4096)?;
        announce(listener.local_addr()?);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        loop {
            let (stream, _) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::task::spawn_local(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    })
}

// ----- measurements of the server process -----

fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str, cert: &PathBuf, key: &PathBuf) -> io::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--role", "server", "--kind", kind])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the load generator -----

/// Operations done and the server's CPU time over one measured window.
#[derive(Clone, Copy)]
struct Sample {
    ops_per_sec: f64,
    cpu_us_per_op: f64,
}

/// Runs `workers` copies of `work` (each counting operations into the shared
/// counter) for a 300 ms warm-up plus `secs`, measuring the middle part.
fn measure<F, Fut>(server: &Server, workers: usize, secs: f64, work: F) -> Sample
where
    F: Fn(Rc<std::cell::Cell<u64>>) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    let count = Rc::new(std::cell::Cell::new(0u64));
    let pid = server.child.id();
    local.block_on(&runtime, async {
        for _ in 0..workers {
            let job = work(Rc::clone(&count));
            tokio::task::spawn_local(async move {
                if let Err(e) = job.await {
                    eprintln!("client: {e}");
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ops0, cpu0, t0) = (count.get(), cpu_ns(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let (ops, cpu, elapsed) = (count.get() - ops0, cpu_ns(pid) - cpu0, t0.elapsed());
        Sample {
            ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
            cpu_us_per_op: cpu as f64 / 1000.0 / ops.max(1) as f64,
        }
    })
}

fn handshakes(server: &Server, client: &Arc<rustls::ClientConfig>, secs: f64) -> Sample {
    let addr = server.addr;
    measure(server, HANDSHAKE_CLIENTS, secs, |count| {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(client));
        async move {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            loop {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut tls = connector.connect(name.clone(), stream).await?;
                tls.write_all(b"x").await?;
                let mut one = [0u8; 1];
                tls.read_exact(&mut one).await?;
                tls.shutdown().await?;
                count.set(count.get() + 1);
            }
        }
    })
}

fn bulk(server: &Server, client: &Arc<rustls::ClientConfig>, secs: f64) -> Sample {
    let addr = server.addr;
    measure(server, BULK_CONNECTIONS, secs, |count| {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(client));
        async move {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut tls = connector.connect(name, stream).await?;
            let message = vec![b'x'; MESSAGE];
            let mut back = vec![0u8; MESSAGE];
            loop {
                tls.write_all(&message).await?;
                tls.read_exact(&mut back).await?;
                count.set(count.get() + 1);
            }
        }
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if arg(&args, "--role").as_deref() == Some("server") {
        let kind = arg(&args, "--kind").unwrap_or_default();
        let (cert, key) = (arg(&args, "--cert").unwrap(), arg(&args, "--key").unwrap());
        if let Err(e) = run_server(&kind, &cert, &key) {
            eprintln!("server {kind}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let secs: f64 = arg(&args, "--secs").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rounds: usize = arg(&args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(3);
    pin_to_cpu(1);

    // One certificate for every server, made now (rcgen), trusted by the clients.
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let roots = torque::tls::TrustRoots::from_pem(cert.pem().as_bytes()).unwrap();
    // Full handshakes every time: no resumption.
    let client =
        torque::tls::TlsClientOptions::new().trust_roots(roots).session_resumption(false).build().unwrap();
    let client = Arc::clone(client.rustls());

    println!(
        "TLS 1.3, rustls 0.23 (ring), same ServerConfig for every server; {rounds} rounds × {secs} s, median"
    );
    let servers = servers();
    let mut results: Vec<(&str, &str, Vec<Sample>)> = Vec::new();
    for workload in ["handshakes", "bulk 64 × 16 KiB"] {
        for server in &servers {
            results.push((workload, server, Vec::new()));
        }
    }
    for _ in 0..rounds {
        for entry in results.iter_mut() {
            let server = Server::start(entry.1, &cert_path, &key_path).expect("start server");
            std::thread::sleep(Duration::from_millis(100));
            let sample = if entry.0 == "handshakes" {
                handshakes(&server, &client, secs)
            } else {
                bulk(&server, &client, secs)
            };
            entry.2.push(sample);
        }
    }
    println!(
        "\n| workload | server | ops/s | server CPU µs/op | ops/s ÷ tokio-rustls | CPU ÷ tokio-rustls |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for workload in ["handshakes", "bulk 64 × 16 KiB"] {
        let row = |server: &str| {
            let samples = &results.iter().find(|(w, s, _)| *w == workload && *s == server).unwrap().2;
            (
                median(samples.iter().map(|s| s.ops_per_sec).collect()),
                median(samples.iter().map(|s| s.cpu_us_per_op).collect()),
            )
        };
        let (base_ops, base_cpu) = row("tokio-rustls");
        for server in &servers {
            let (ops, cpu) = row(server);
            println!(
                "| {workload} | {server} | {ops:.0} | {cpu:.2} | {:.2} | {:.2} |",
                ops / base_ops,
                cpu / base_cpu
            );
        }
    }
}
