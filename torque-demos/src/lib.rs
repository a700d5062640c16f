//! What the two GUI demos share: a line-based chat room (server and client
//! protocols on Torque) and the self-test's bookkeeping. The demos themselves
//! are `src/bin/gtk-chat.rs` (GTK 4 on the GLib-driven reactor) and
//! `src/bin/winit-chat.rs` (winit on `Reactor::interleave`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use torque::Reactor;
use torque::net::{
    Address, Connector, DisconnectReason, Factory, LineHandler, LineReceiver, ListeningPort, NetError,
    Protocol, Transport, client_from_string, factory_fn, server_from_string,
};

/// The line a self-test sends, and must then see in its window.
pub const SELF_TEST_LINE: &str = "hello over Torque";

/// How long a self-test may take before it fails.
pub const SELF_TEST_LIMIT: Duration = Duration::from_secs(60);

/// The chat room: every line a member sends goes to every member, the sender
/// included, as `<name> line`.
#[derive(Default)]
struct Room {
    members: BTreeMap<u64, Transport>,
    next_id: u64,
}

struct Member {
    id: u64,
    room: Rc<RefCell<Room>>,
}

impl LineHandler for Member {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(format!("* welcome, guest{}\n", self.id).as_bytes());
        self.room.borrow_mut().members.insert(self.id, transport.clone());
    }

    fn line_received(&mut self, _transport: &Transport, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let message = format!("<guest{}> {}\n", self.id, text.trim_end());
        for member in self.room.borrow().members.values() {
            member.write(message.as_bytes());
        }
    }

    fn line_length_exceeded(&mut self, transport: &Transport, _partial: &[u8]) {
        transport.write(b"* line too long; goodbye\n");
        transport.lose_connection();
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        self.room.borrow_mut().members.remove(&self.id);
    }
}

/// Starts a chat room on `description` (e.g. `tcp:0:interface=127.0.0.1`).
pub fn serve(reactor: &Reactor, description: &str) -> Result<ListeningPort, Box<dyn std::error::Error>> {
    let room = Rc::new(RefCell::new(Room::default()));
    let factory = factory_fn(move |_| {
        let id = {
            let mut room = room.borrow_mut();
            room.next_id += 1;
            room.next_id
        };
        LineReceiver::new(Member { id, room: room.clone() }).delimiter(b"\n").max_length(4096)
    });
    Ok(server_from_string(description)?.listen(reactor, factory)?)
}

/// The room a demo joins: `connect` (a client endpoint) if given, else a
/// room started here on a free local port (the port lives as long as the
/// reactor's listening set), as a client endpoint string.
pub fn room_or_serve(reactor: &Reactor, connect: Option<&str>) -> Result<String, Box<dyn std::error::Error>> {
    match connect {
        Some(description) => Ok(description.to_owned()),
        None => {
            let port = serve(reactor, "tcp:0:interface=127.0.0.1")?;
            Ok(format!("tcp:127.0.0.1:{}", port.address().port().unwrap_or(0)))
        }
    }
}

/// What the chat client tells its window.
pub enum ChatEvent {
    /// Connected; write lines to the transport to send them.
    Connected(Transport),
    /// A line from the room.
    Line(String),
    /// The connection ended or failed, with why.
    Closed(String),
}

struct Client {
    on_event: Rc<RefCell<dyn FnMut(ChatEvent)>>,
}

impl LineHandler for Client {
    fn connection_made(&mut self, transport: &Transport) {
        (self.on_event.borrow_mut())(ChatEvent::Connected(transport.clone()));
    }

    fn line_received(&mut self, _transport: &Transport, line: &[u8]) {
        (self.on_event.borrow_mut())(ChatEvent::Line(String::from_utf8_lossy(line).trim_end().to_owned()));
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        (self.on_event.borrow_mut())(ChatEvent::Closed(reason.to_string()));
    }
}

/// The client side's factory: one protocol per connection, and connection
/// failures reported to the window too.
struct ClientFactory {
    on_event: Rc<RefCell<dyn FnMut(ChatEvent)>>,
}

impl Factory for ClientFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        let client = Client { on_event: Rc::clone(&self.on_event) };
        Some(Box::new(LineReceiver::new(client).delimiter(b"\n").max_length(65536)))
    }
}

impl torque::net::ClientFactory for ClientFactory {
    fn client_connection_failed(&mut self, _connector: &Connector, reason: NetError) {
        (self.on_event.borrow_mut())(ChatEvent::Closed(format!("cannot connect: {reason}")));
    }
}

/// Connects to the room at `description` (e.g. `tcp:127.0.0.1:8001`);
/// `on_event` runs on the reactor's thread for every [`ChatEvent`].
pub fn connect(
    reactor: &Reactor,
    description: &str,
    on_event: impl FnMut(ChatEvent) + 'static,
) -> Result<Connector, Box<dyn std::error::Error>> {
    let factory = ClientFactory { on_event: Rc::new(RefCell::new(on_event)) };
    Ok(client_from_string(description)?.connect(reactor, factory)?)
}

/// Where a self-test writes its screenshot: `target/screenshots/NAME.png`
/// under the workspace (kept out of the repository by `.gitignore`).
pub fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots").join(format!("{name}.png"))
}
