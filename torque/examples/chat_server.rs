//! A line-based chat server: every line a client sends goes to everyone else.
//! `/nick NAME` changes your name. Lines over 1 KiB get the sender disconnected.
//!
//! ```text
//! cargo run --example chat_server            # tcp:8001:interface=127.0.0.1
//! nc -C 127.0.0.1 8001                       # in two or more terminals
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use torque::Reactor;
use torque::net::{DisconnectReason, LineHandler, LineReceiver, Transport, factory_fn, server_from_string};

#[derive(Default)]
struct Room {
    members: BTreeMap<u64, (String, Transport)>,
    next_id: u64,
}

impl Room {
    fn broadcast(&self, from: u64, text: &str) {
        for (id, (_, transport)) in &self.members {
            if *id != from {
                transport.write_vectored(&[text.as_bytes(), b"\r\n"]);
            }
        }
    }
}

struct Member {
    id: u64,
    room: Rc<RefCell<Room>>,
}

impl Member {
    fn name(&self) -> String {
        self.room.borrow().members.get(&self.id).map(|(n, _)| n.clone()).unwrap_or_default()
    }
}

impl LineHandler for Member {
    fn connection_made(&mut self, transport: &Transport) {
        let name = format!("guest{}", self.id);
        transport.write(format!("welcome, {name}! /nick NAME to rename\r\n").as_bytes());
        let mut room = self.room.borrow_mut();
        room.broadcast(self.id, &format!("* {name} joined"));
        room.members.insert(self.id, (name, transport.clone()));
    }

    fn line_received(&mut self, _transport: &Transport, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if let Some(new_name) = text.strip_prefix("/nick ") {
            let old = self.name();
            let mut room = self.room.borrow_mut();
            if let Some(entry) = room.members.get_mut(&self.id) {
                entry.0 = new_name.trim().to_owned();
            }
            room.broadcast(self.id, &format!("* {old} is now {}", new_name.trim()));
        } else if !text.is_empty() {
            let message = format!("<{}> {text}", self.name());
            self.room.borrow().broadcast(self.id, &message);
        }
    }

    fn line_length_exceeded(&mut self, transport: &Transport, _partial: &[u8]) {
        transport.write(b"line too long; goodbye\r\n");
        transport.lose_connection();
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        let name = self.name();
        let mut room = self.room.borrow_mut();
        room.members.remove(&self.id);
        room.broadcast(self.id, &format!("* {name} left"));
    }
}

fn main() {
    if let Err(e) = serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let description = std::env::args().nth(1).unwrap_or_else(|| "tcp:8001:interface=127.0.0.1".to_owned());
    let reactor = Reactor::new()?;
    let room = Rc::new(RefCell::new(Room::default()));
    let factory = factory_fn(move |_| {
        let id = {
            let mut r = room.borrow_mut();
            r.next_id += 1;
            r.next_id
        };
        LineReceiver::new(Member { id, room: room.clone() }).delimiter(b"\n").max_length(1024)
    });
    let port = server_from_string(&description)?.listen(&reactor, factory)?;
    println!("chat server on {}", port.address());
    reactor.run()?;
    Ok(())
}
