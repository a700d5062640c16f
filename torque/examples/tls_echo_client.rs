//! A TLS echo client: connects, verifies the server, sends each argument as a
//! line and prints what comes back, then closes with close_notify.
//!
//! ```text
//! cargo run --example tls_echo_server &
//! cargo run --example tls_echo_client -- localhost 8443 target/tls-echo-cert.pem hello world
//! cargo run --example tls_echo_client -- example.org 443     # the system's trust store
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use torque::Reactor;
use torque::net::{ConnectOptions, DisconnectReason, Protocol, Transport, factory_fn};
use torque::tls::{TlsClientOptions, TrustRoots};

struct Client {
    lines: Vec<String>,
    expected: usize,
    received: Vec<u8>,
    outcome: Rc<RefCell<Option<String>>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: &Transport) {
        // Written before the handshake: sent, encrypted, as soon as it completes.
        for line in &self.lines {
            transport.write_vectored(&[line.as_bytes(), b"\n"]);
        }
    }

    fn handshake_completed(&mut self, transport: &Transport) {
        if let Some(info) = transport.tls_info() {
            let alpn = info.alpn_protocol.map(|p| String::from_utf8_lossy(&p).into_owned());
            println!(
                "verified {}: {}, ALPN {}, {} certificate(s)",
                info.server_name.unwrap_or_default(),
                info.version.map(|v| v.to_string()).unwrap_or_default(),
                alpn.as_deref().unwrap_or("none"),
                info.peer_certificates.len()
            );
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.received.extend_from_slice(data);
        if self.received.len() >= self.expected {
            print!("{}", String::from_utf8_lossy(&self.received));
            transport.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        *self.outcome.borrow_mut() = Some(reason.to_string());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "localhost".to_owned());
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(8443);
    let mut options = TlsClientOptions::new().alpn(&["echo"]);
    let mut lines: Vec<String> = Vec::new();
    for arg in args {
        if arg.ends_with(".pem") {
            options = options.trust_roots(TrustRoots::from_pem_file(&arg)?);
        } else {
            lines.push(arg);
        }
    }
    if lines.is_empty() {
        lines.push("hello over TLS".to_owned());
    }
    let config = options.build()?;
    let expected = lines.iter().map(|l| l.len() + 1).sum();
    let reactor = Reactor::new()?;
    let outcome = Rc::new(RefCell::new(None));
    let out = Rc::clone(&outcome);
    let mut protocol = Some(Client { lines, expected, received: Vec::new(), outcome: Rc::clone(&outcome) });
    let factory = factory_fn(move |_| protocol.take().expect("one connection"));
    let connector = reactor.connect_tls(&host, port, factory, ConnectOptions::default(), &config);
    // Run until the connection ends (or never started).
    while out.borrow().is_none() && (connector.is_connecting() || connector.transport().is_some()) {
        reactor.iterate(std::time::Duration::from_millis(100))?;
    }
    match outcome.borrow().as_deref() {
        Some(text) if text.contains("cleanly") => Ok(()),
        Some(text) => Err(text.into()),
        None => Err(format!("cannot connect to {host}:{port}").into()),
    }
}
