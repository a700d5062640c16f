//! An echo server: everything a client sends comes back.
//!
//! ```text
//! cargo run --example echo_server                          # tcp:8000:interface=127.0.0.1
//! cargo run --example echo_server -- tcp:9000 unix:/tmp/echo.sock
//! TORQUE_REACTOR=poll cargo run --example echo_server      # another backend
//! nc 127.0.0.1 8000                                        # in another terminal, then type
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM to the server shuts it down gracefully.

use torque::net::{DisconnectReason, Protocol, Transport, factory_fn, server_from_string};
use torque::{Phase, Reactor, SystemEvent};

struct Echo {
    peer: String,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        println!("{} connected", self.peer);
        transport.write(b"hello from torque: type something\r\n");
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        println!("{} left: {reason}", self.peer);
    }
}

fn main() {
    if let Err(e) = serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let mut descriptions: Vec<String> = std::env::args().skip(1).collect();
    if descriptions.is_empty() {
        descriptions.push("tcp:8000:interface=127.0.0.1".to_owned());
    }
    let reactor = Reactor::new()?;
    for description in &descriptions {
        let endpoint = server_from_string(description)?;
        let port = endpoint.listen(&reactor, factory_fn(|peer| Echo { peer: peer.to_string() }))?;
        println!("echo server on {} ({} backend)", port.address(), reactor.backend().name);
    }
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, |_| println!("shutting down"));
    reactor.run()?;
    Ok(())
}
