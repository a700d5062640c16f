//! An echo client: sends each argument as a line and prints what comes back.
//!
//! ```text
//! cargo run --example echo_server &
//! cargo run --example echo_client -- tcp:127.0.0.1:8000 hello world
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use torque::Reactor;
use torque::net::{
    Address, ClientFactory, Connector, DisconnectReason, Factory, NetError, Protocol, Transport,
    client_from_string,
};

struct Client {
    lines: Vec<String>,
    expected: Vec<u8>,
    received: Vec<u8>,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: &Transport) {
        for line in &self.lines {
            transport.write_vectored(&[line.as_bytes(), b"\r\n"]);
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.received.extend_from_slice(data);
        // Done once everything we sent has come back (after any greeting).
        if self.received.ends_with(&self.expected) {
            print!("{}", String::from_utf8_lossy(&self.received));
            transport.lose_connection();
        }
    }
}

struct Once {
    protocol: Option<Client>,
    outcome: Rc<RefCell<Option<String>>>,
}

impl Factory for Once {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        self.protocol.take().map(|p| Box::new(p) as Box<dyn Protocol>)
    }
}

impl ClientFactory for Once {
    fn client_connection_failed(&mut self, connector: &Connector, reason: NetError) {
        *self.outcome.borrow_mut() = Some(format!("cannot connect: {reason}"));
        if let Some(r) = connector.reactor() {
            let _ = r.stop();
        }
    }
    fn client_connection_lost(&mut self, connector: &Connector, reason: &DisconnectReason) {
        if !reason.is_clean() {
            *self.outcome.borrow_mut() = Some(format!("connection lost: {reason}"));
        }
        if let Some(r) = connector.reactor() {
            let _ = r.stop();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let description = args.next().unwrap_or_else(|| "tcp:127.0.0.1:8000".to_owned());
    let mut lines: Vec<String> = args.collect();
    if lines.is_empty() {
        lines.push("hello, torque".to_owned());
    }
    let expected: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain(*b"\r\n")).collect();
    let outcome = Rc::new(RefCell::new(None));
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let reactor = Reactor::new()?;
        let factory = Once {
            protocol: Some(Client { lines, expected, received: Vec::new() }),
            outcome: outcome.clone(),
        };
        client_from_string(&description)?.connect(&reactor, factory)?;
        // A server that does not echo must not keep us waiting forever.
        let late = outcome.clone();
        reactor.call_later(std::time::Duration::from_secs(5), move |r| {
            *late.borrow_mut() = Some("no complete echo within 5 s".to_owned());
            let _ = r.stop();
        });
        reactor.run()?;
        Ok(())
    })();
    let failure = result.err().map(|e| e.to_string()).or_else(|| outcome.borrow_mut().take());
    if let Some(message) = failure {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
