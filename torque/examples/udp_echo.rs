//! A UDP echo server and a ping client.
//!
//! ```text
//! cargo run --example udp_echo                                # server on 127.0.0.1:9000
//! cargo run --example udp_echo -- ping 127.0.0.1:9000 5       # five pings, with round-trip times
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torque::net::{Address, DatagramPort, DatagramProtocol, UdpOptions};
use torque::{Reactor, WeakReactor};

struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
        if let Some(to) = from.socket_addr() {
            if let Err(e) = port.write(data, to) {
                eprintln!("cannot answer {from}: {e}");
            }
        }
    }
}

struct Pinger {
    server: SocketAddr,
    count: u32,
    sent: Rc<RefCell<HashMap<u32, Instant>>>,
    answered: u32,
    reactor: WeakReactor,
}

impl DatagramProtocol for Pinger {
    fn start_protocol(&mut self, port: &DatagramPort) {
        // Writing from the start hook is allowed: the port is already open.
        if let Err(e) = port.connect(self.server) {
            eprintln!("cannot connect to {}: {e}", self.server);
            return;
        }
        for seq in 0..self.count {
            self.sent.borrow_mut().insert(seq, Instant::now());
            let _ = port.write_connected(&seq.to_be_bytes());
        }
    }

    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], _from: &Address) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else { return };
        let seq = u32::from_be_bytes(bytes);
        if let Some(at) = self.sent.borrow_mut().remove(&seq) {
            println!("pong {seq}: {:.3} ms", at.elapsed().as_secs_f64() * 1e3);
            self.answered += 1;
        }
        if self.answered == self.count {
            drop(port.stop_listening());
        }
    }

    fn connection_refused(&mut self, port: &DatagramPort) {
        eprintln!("{} refused the ping (nothing listens there)", self.server);
        drop(port.stop_listening());
    }

    fn stop_protocol(&mut self) {
        println!("{} of {} pings answered", self.answered, self.count);
        if let Some(r) = self.reactor.upgrade() {
            let _ = r.stop();
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reactor = Reactor::new()?;
    match args.first().map(String::as_str) {
        Some("ping") => {
            let server: SocketAddr = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:9000").parse()?;
            let count = args.get(2).map(|n| n.parse()).transpose()?.unwrap_or(3);
            let pinger =
                Pinger { server, count, sent: Rc::default(), answered: 0, reactor: reactor.downgrade() };
            reactor.listen_udp(0, pinger, UdpOptions::interface([127, 0, 0, 1].into()))?;
            reactor.call_later(Duration::from_secs(3), |r| {
                eprintln!("giving up after 3 s");
                let _ = r.stop();
            });
        }
        _ => {
            let port = reactor.listen_udp(9000, Echo, UdpOptions::interface([127, 0, 0, 1].into()))?;
            println!("UDP echo server on {} ({} backend)", port.address(), reactor.backend().name);
        }
    }
    reactor.run()?;
    Ok(())
}
