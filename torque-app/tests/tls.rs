//! TLS against real peers: `curl` and `openssl s_client` talk to `torque web`
//! and `torque echo` on `ssl:` endpoints, and a Torque client talks to
//! `openssl s_server`. Certificates are generated per test (rcgen) into a
//! temporary directory. `.ci/run` installs curl, openssl and ca-certificates.

mod support;
#[path = "../../torque/tests/conformance/tlskit.rs"]
mod tlskit;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::{PATIENCE, Server, curl};
use tlskit::Pki;
use torque::net::{ConnectOptions, DisconnectReason, Protocol, Transport, factory_fn};
use torque::tls::TlsClientOptions;

/// Certificate files in a temporary directory.
struct Files {
    dir: tempfile::TempDir,
    pki: Pki,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca.pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &pki.server.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.server.key_pem).unwrap();
        Files { dir, pki }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ssl_endpoint(&self) -> String {
        format!(
            "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
            self.path("key.pem").display(),
            self.path("cert.pem").display()
        )
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn curl_serves_https_from_torque_web(backend: &str) {
    let files = Files::new();
    let site = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(site.path().join("big.bin"), &body).unwrap();
    std::fs::write(site.path().join("hello.txt"), b"hello over TLS\n").unwrap();
    let endpoint = files.ssl_endpoint();
    let server = Server::start(backend, &["web", "--path", path_str(site.path()), "--listen", &endpoint], 1);
    assert!(server.log().contains("listening on https://"), "{}", server.log());
    let base = format!("https://127.0.0.1:{}", server.addr().port());
    let ca = files.path("ca.pem");
    // Two requests on one connection, then a large body.
    let out = curl(&["--cacert", path_str(&ca), &format!("{base}/hello.txt"), &format!("{base}/hello.txt")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"hello over TLS\nhello over TLS\n");
    let out = curl(&["--cacert", path_str(&ca), &format!("{base}/big.bin")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == body, "the large body arrived intact");
    // Without the CA, curl refuses the server: verification is real.
    let out = curl(&[&format!("{base}/hello.txt")]);
    assert!(!out.status.success());
}

fn openssl_s_client_talks_to_torque_echo(backend: &str) {
    let files = Files::new();
    let endpoint = files.ssl_endpoint();
    let server = Server::start(backend, &["echo", "--listen", &endpoint], 1);
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr().to_string(), "-servername", "localhost"])
        .args(["-CAfile", path_str(&files.path("ca.pem")), "-verify_return_error", "-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (.ci/run installs it)");
    client.stdin.as_mut().unwrap().write_all(b"hello from openssl\n").unwrap();
    let output = read_until(&mut client, b"hello from openssl\n");
    assert!(output.ends_with(b"hello from openssl\n"), "{}", String::from_utf8_lossy(&output));
    drop(client.stdin.take()); // end of input: s_client closes
    let status = wait_bounded(&mut client);
    assert!(status.success(), "s_client failed");
}

/// Reads `child`'s stdout until it ends with `want` (bounded).
fn read_until(child: &mut Child, want: &[u8]) -> Vec<u8> {
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = want.to_vec();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.ends_with(&want) {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    rx.recv_timeout(PATIENCE).expect("no answer in time")
}

fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the child did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects what the server says and how the connection ended.
struct Collect {
    data: Rc<RefCell<Vec<u8>>>,
    ended: Rc<RefCell<Option<String>>>,
}

impl Protocol for Collect {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"GET / HTTP/1.0\r\n\r\n");
    }
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.data.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        *self.ended.borrow_mut() = Some(match reason {
            DisconnectReason::Tls(e) => format!("tls: {e:?}"),
            other => other.to_string(),
        });
    }
}

/// A port nobody listens on right now, for `s_server` to take.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn torque_client_talks_to_openssl_s_server(backend: &str) {
    let files = Files::new();
    let port = free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-www", "-naccept", "1"])
        .args(["-cert", path_str(&files.path("cert.pem")), "-key", path_str(&files.path("key.pem"))])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl must be installed (.ci/run installs it)");
    let reactor =
        torque::Reactor::builder().backend(backend.parse().unwrap()).handle_signals(false).build().unwrap();
    let config = TlsClientOptions::new().trust_roots(files.pki.ca.roots()).build().unwrap();
    let data = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(RefCell::new(None));
    // s_server needs a moment to listen: retry refused attempts.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (d, e) = (data.clone(), ended.clone());
        let factory = factory_fn(move |_| Collect { data: d.clone(), ended: e.clone() });
        let options = ConnectOptions { timeout: Some(PATIENCE), ..ConnectOptions::default() };
        let connector = reactor.connect_tls("127.0.0.1", port, factory, options, &config);
        while ended.borrow().is_none() && (connector.is_connecting() || connector.transport().is_some()) {
            reactor.iterate(Duration::from_millis(50)).unwrap();
        }
        if ended.borrow().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "could not reach s_server");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&data.borrow()).into_owned();
    assert!(text.starts_with("HTTP/1.0 200 ok"), "{text}");
    assert!(text.contains("s_server"), "{text}");
    assert!(text.contains("TLSv1.3"), "s_server reports the protocol: {text}");
    let ended = ended.borrow().clone().unwrap();
    assert_eq!(ended, "the connection was closed cleanly", "s_server sends close_notify");
}

fn a_bad_certificate_path_is_a_one_line_error(backend: &str) {
    let out = Command::new(support::binary())
        .args(["-r", backend, "web", "--listen", "ssl:0:privateKey=/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/key.pem"), "{err}");
}

app_main! {
    per_backend {
        [Tcp, Tls] {
            curl_serves_https_from_torque_web,
            openssl_s_client_talks_to_torque_echo,
            torque_client_talks_to_openssl_s_server,
            a_bad_certificate_path_is_a_one_line_error,
        }
    }
}
