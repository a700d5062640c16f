//! The small services from Twisted's `protocols.wire` (RFC 862, 863, 867, 864)
//! and a port forwarder: each shows one part of the framework.
//!
//! - [`Echo`]: backpressure, the sender's reading paused while its echo waits;
//! - [`Discard`]: reads and forgets;
//! - [`Daytime`]: writes once and closes;
//! - [`Chargen`]: an endless pull producer, so a slow reader costs no memory;
//! - [`portforward`]: two connections relaying both ways with backpressure and
//!   half-close;
//! - [`procmon`]: child processes kept running (Twisted's procmon).

pub mod portforward;
pub mod procmon;

use std::cell::RefCell;
use std::rc::Rc;

use torque::net::{Producer, Protocol, Transport};

/// Pauses and resumes reading from `0` (the other side of a relay, or the same
/// connection for echo) as the write buffer it feeds fills and drains.
pub struct PauseReading(pub Transport);

impl std::fmt::Debug for PauseReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PauseReading").field(&self.0.peer().to_string()).finish()
    }
}

impl Producer for PauseReading {
    fn pause_producing(&mut self) {
        self.0.pause_producing();
    }
    fn resume_producing(&mut self) {
        self.0.resume_producing();
    }
    fn stop_producing(&mut self) {}
}

/// RFC 862: sends back what it receives. When the client does not read its
/// echo, reading from it pauses, so memory stays bounded.
#[derive(Debug, Default)]
pub struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        transport
            .register_producer(Rc::new(RefCell::new(PauseReading(transport.clone()))), true)
            .expect("a new connection has no producer");
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.unregister_producer();
        transport.lose_connection();
    }
}

/// RFC 863: reads and discards everything.
#[derive(Debug, Default)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _transport: &Transport, _data: &[u8]) {}
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.lose_connection();
    }
}

/// RFC 867: sends the date and time, then closes.
#[derive(Debug, Default)]
pub struct Daytime;

impl Protocol for Daytime {
    fn connection_made(&mut self, transport: &Transport) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        transport.write(format!("{now}\r\n").as_bytes());
        transport.lose_connection();
    }
    fn data_received(&mut self, _transport: &Transport, _data: &[u8]) {}
}

/// RFC 864: an endless stream of 72-character lines, rotating through the 95
/// printable ASCII characters. A pull producer: one block is written each time
/// the socket drains, so a slow reader never grows the buffer.
#[derive(Debug, Default)]
pub struct Chargen;

/// Characters in one rotation.
const PRINTABLE: usize = 95;
/// Characters per line, before CRLF.
const LINE: usize = 72;

/// The chargen pattern from line `first` on: `lines` lines of 74 bytes.
pub fn chargen_block(first: usize, lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * (LINE + 2));
    for line in first..first + lines {
        let start = line % PRINTABLE;
        out.extend((0..LINE).map(|i| b' ' + ((start + i) % PRINTABLE) as u8));
        out.extend_from_slice(b"\r\n");
    }
    out
}

struct ChargenProducer {
    transport: Transport,
    /// One full rotation of lines (95 × 74 bytes), written over and over.
    block: Rc<[u8]>,
}

impl Producer for ChargenProducer {
    fn resume_producing(&mut self) {
        self.transport.write(&self.block);
    }
}

impl Protocol for Chargen {
    fn connection_made(&mut self, transport: &Transport) {
        let block: Rc<[u8]> = chargen_block(0, PRINTABLE).into();
        let producer = ChargenProducer { transport: transport.clone(), block };
        transport
            .register_producer(Rc::new(RefCell::new(producer)), false)
            .expect("a new connection has no producer");
    }
    fn data_received(&mut self, _transport: &Transport, _data: &[u8]) {}
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.unregister_producer();
        transport.lose_connection();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_lines_rotate() {
        let block = chargen_block(0, 96);
        let lines: Vec<&[u8]> = block.split(|&b| b == b'\n').collect();
        assert_eq!(&lines[0][..LINE], &(b' '..=b'~').take(LINE).collect::<Vec<u8>>()[..]);
        assert_eq!(lines[1][0], b'!');
        assert_eq!(lines[95], lines[0], "the pattern repeats after 95 lines");
        assert!(block.chunks(LINE + 2).all(|l| l.len() == LINE + 2 && l.ends_with(b"\r\n")));
    }
}
