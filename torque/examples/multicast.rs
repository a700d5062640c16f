//! Multicast announce and listen: several listeners on one machine share a group.
//!
//! ```text
//! cargo run --example multicast -- listen                  # in one or more terminals
//! cargo run --example multicast -- announce "hello group"  # sends three announcements
//! ```
//!
//! The group is 239.255.42.99:9999 on the loopback interface, so nothing leaves
//! the machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use torque::Reactor;
use torque::defer::LoopingCall;
use torque::net::{Address, DatagramPort, DatagramProtocol, UdpOptions};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 42, 99);
const PORT: u16 = 9999;

struct Listener;

impl DatagramProtocol for Listener {
    fn start_protocol(&mut self, port: &DatagramPort) {
        match port.join_group(GROUP.into(), Ipv4Addr::LOCALHOST.into()) {
            Ok(()) => println!("listening to {GROUP}:{PORT}"),
            Err(e) => eprintln!("cannot join {GROUP}: {e}"),
        }
    }

    fn datagram_received(&mut self, _port: &DatagramPort, data: &[u8], from: &Address) {
        println!("{from} announces: {}", String::from_utf8_lossy(data));
    }
}

struct Quiet;

impl DatagramProtocol for Quiet {
    fn datagram_received(&mut self, _: &DatagramPort, _: &[u8], _: &Address) {}
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
        Some("announce") => {
            let message = args.get(1).cloned().unwrap_or_else(|| "hello from torque".to_owned());
            let port = reactor.listen_udp(0, Quiet, UdpOptions::interface(Ipv4Addr::LOCALHOST.into()))?;
            port.set_outgoing_interface(Ipv4Addr::LOCALHOST)?;
            port.set_loopback_mode(true)?;
            port.set_ttl(1)?;
            let mut sent = 0;
            let announcer = LoopingCall::new(move |r: &Reactor| {
                match port.write(message.as_bytes(), SocketAddr::from((GROUP, PORT))) {
                    Ok(_) => println!("announced {message:?}"),
                    Err(e) => eprintln!("cannot announce: {e}"),
                }
                sent += 1;
                if sent == 3 {
                    let _ = r.stop();
                }
            });
            let _running = announcer.start(&reactor, Duration::from_secs(1), true)?;
        }
        _ => {
            let options = UdpOptions::interface(Ipv4Addr::UNSPECIFIED.into());
            reactor.listen_multicast(PORT, Listener, options)?;
        }
    }
    reactor.run()?;
    Ok(())
}
