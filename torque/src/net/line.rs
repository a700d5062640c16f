//! Line-oriented protocols (Twisted's `LineReceiver`).

use super::{DisconnectReason, Protocol, Transport};

/// What a line-based protocol implements; wrap it in a [`LineReceiver`].
pub trait LineHandler {
    /// The connection is up.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }
    /// One line arrived, without its delimiter.
    fn line_received(&mut self, transport: &Transport, line: &[u8]);
    /// A line grew past the maximum length without a delimiter. The default
    /// closes the connection at once, so a peer cannot make us buffer forever.
    fn line_length_exceeded(&mut self, transport: &Transport, partial: &[u8]) {
        let _ = partial;
        transport.abort_connection();
    }
    /// The connection is gone.
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }
}

/// Splits incoming bytes into lines for a [`LineHandler`].
///
/// The delimiter defaults to `\r\n` (Twisted's default); for clients that end
/// lines with `\n` alone (plain `nc`), set `.delimiter(b"\n")`. Lines longer than
/// `max_length` (default 16 KiB) are reported to `line_length_exceeded`. To send a
/// line, write it and the delimiter: `transport.write_vectored(&[line, b"\r\n"])`.
pub struct LineReceiver<H> {
    handler: H,
    buffer: Vec<u8>,
    delimiter: Vec<u8>,
    max_length: usize,
}

impl<H> std::fmt::Debug for LineReceiver<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReceiver")
            .field("buffered", &self.buffer.len())
            .field("delimiter", &self.delimiter)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl<H: LineHandler> LineReceiver<H> {
    /// A receiver with `\r\n` lines of at most 16 KiB.
    pub fn new(handler: H) -> LineReceiver<H> {
        LineReceiver { handler, buffer: Vec::new(), delimiter: b"\r\n".to_vec(), max_length: 16 * 1024 }
    }

    /// Uses `delimiter` to end lines (must not be empty).
    pub fn delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.delimiter = delimiter.to_vec();
        self
    }

    /// Sets the longest line accepted, delimiter excluded.
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// The wrapped handler (before the receiver is handed to a factory).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    fn find_delimiter(&self, from: usize) -> Option<usize> {
        let d = &self.delimiter;
        if self.buffer.len() < d.len() {
            return None;
        }
        (from..=self.buffer.len() - d.len()).find(|&i| self.buffer[i..].starts_with(d))
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: &Transport) {
        self.handler.connection_made(transport);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        // Resume the search just before the new bytes, in case a delimiter
        // straddles two reads.
        let resume = self.buffer.len().saturating_sub(self.delimiter.len() - 1);
        self.buffer.extend_from_slice(data);
        let mut start = 0;
        let mut search = resume;
        loop {
            if transport.is_disconnected() {
                self.buffer.clear();
                return;
            }
            let found = self.find_delimiter(search.max(start));
            let Some(end) = found else { break };
            if end - start > self.max_length {
                let partial = self.buffer[start..end].to_vec();
                self.buffer.clear();
                self.handler.line_length_exceeded(transport, &partial);
                return;
            }
            let line = self.buffer[start..end].to_vec();
            start = end + self.delimiter.len();
            search = start;
            self.handler.line_received(transport, &line);
        }
        self.buffer.drain(..start);
        if self.buffer.len() > self.max_length + self.delimiter.len() {
            let partial = std::mem::take(&mut self.buffer);
            self.handler.line_length_exceeded(transport, &partial);
        }
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.handler.connection_lost(reason);
    }
}
