//! What the iocp backend keeps for a socket it serves by completions: a
//! connection's received bytes and its send (`Stream`), or a listening
//! socket's accepted connections (`Listener`).

use std::collections::VecDeque;
use std::io;
use std::os::windows::io::OwnedSocket;

use super::ops::Operation;

/// The smallest receive buffer: what an idle connection's receive holds.
pub(super) const RECEIVE_MIN: usize = 4 * 1024;
/// The largest: a receive that filled its buffer asks for four times as
/// much next time, up to this.
const RECEIVE_MAX: usize = 64 * 1024;
/// Received bytes a connection holds unread before its receives stop
/// (until the transport reads some).
const UNREAD_LIMIT: usize = 256 * 1024;
/// The most one send hands the kernel.
pub(super) const SEND_MAX: usize = 1 << 30;

/// One receive's result.
enum Chunk {
    /// Bytes, of which `read` were taken already.
    Data { bytes: Vec<u8>, read: usize },
    /// The peer closed its side: every read from now on is 0.
    Eof,
    /// The receive failed (a reset, …): reported once, in order.
    Error(i32),
}

/// A connection served by completions.
pub(super) struct Stream {
    /// The receive in flight.
    pub(super) receive: Option<*mut Operation>,
    /// The size of the next receive's buffer.
    receive_size: usize,
    /// A receive found the end of file or an error: no more are started.
    pub(super) ended: bool,
    chunks: VecDeque<Chunk>,
    unread: usize,
    /// A buffer the transport emptied, for the next receive.
    spare: Option<Vec<u8>>,
    /// Listed for the readable announcement.
    pub(super) listed_unread: bool,
    /// The send in flight.
    pub(super) send: Option<*mut Operation>,
    /// How many bytes the last send was given.
    pub(super) send_len: usize,
    /// The finished send's result and its buffer, until the transport takes them.
    pub(super) sent: Option<(Result<usize, i32>, Vec<u8>)>,
    /// The transport asked to hear once it can write.
    pub(super) wants_writable: bool,
    /// A direct write found the socket full: a poll for room announces the
    /// writer, not a send's completion.
    pub(super) await_room: bool,
    /// Listed for the writable announcement.
    pub(super) listed_writable: bool,
}

impl Stream {
    pub(super) fn new() -> Stream {
        Stream {
            receive: None,
            receive_size: RECEIVE_MIN,
            ended: false,
            chunks: VecDeque::new(),
            unread: 0,
            spare: None,
            listed_unread: false,
            send: None,
            send_len: 0,
            sent: None,
            wants_writable: false,
            await_room: false,
            listed_writable: false,
        }
    }

    /// Whether another receive may start (none in flight, no end seen, not
    /// too much unread).
    pub(super) fn may_receive(&self) -> bool {
        self.receive.is_none() && !self.ended && self.unread < UNREAD_LIMIT
    }

    /// The buffer for the next receive.
    pub(super) fn receive_buffer(&mut self) -> Vec<u8> {
        match self.spare.take() {
            Some(mut buffer) if buffer.capacity() >= self.receive_size => {
                buffer.clear();
                buffer
            }
            _ => Vec::with_capacity(self.receive_size),
        }
    }

    /// Records a finished receive: `Ok(0)` is the end of file.
    pub(super) fn received(&mut self, result: io::Result<usize>, buffer: Vec<u8>) {
        match result {
            Ok(0) => {
                self.ended = true;
                self.chunks.push_back(Chunk::Eof);
            }
            Ok(n) => {
                let asked = buffer.capacity();
                self.receive_size = if n >= asked {
                    (asked * 4).min(RECEIVE_MAX)
                } else if n <= RECEIVE_MIN {
                    RECEIVE_MIN
                } else {
                    asked
                };
                self.unread += n;
                self.chunks.push_back(Chunk::Data { bytes: buffer, read: 0 });
            }
            Err(e) => {
                self.ended = true;
                self.chunks.push_back(Chunk::Error(e.raw_os_error().unwrap_or(0)));
            }
        }
    }

    /// A receive that could not start: its error is read like a failed one's.
    pub(super) fn receive_failed(&mut self, error: io::Error) {
        self.received(Err(error), Vec::new());
    }

    /// Whether something waits to be read (bytes, the end, an error).
    pub(super) fn has_unread(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// As `recv` into `out`: bytes (as many as fit, across receives), else
    /// 0 at the end of file, else the error, else `WouldBlock`.
    pub(super) fn take(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut copied = 0;
        while copied < out.len() {
            match self.chunks.front_mut() {
                Some(Chunk::Data { bytes, read }) => {
                    let n = (bytes.len() - *read).min(out.len() - copied);
                    out[copied..copied + n].copy_from_slice(&bytes[*read..*read + n]);
                    *read += n;
                    copied += n;
                    self.unread -= n;
                    if *read < bytes.len() {
                        continue;
                    }
                    if let Some(Chunk::Data { bytes, .. }) = self.chunks.pop_front()
                        && bytes.capacity() <= RECEIVE_MAX
                    {
                        self.spare = Some(bytes);
                    }
                }
                Some(Chunk::Eof) => return Ok(copied),
                Some(Chunk::Error(code)) => {
                    if copied > 0 {
                        return Ok(copied);
                    }
                    let code = *code;
                    self.chunks.pop_front();
                    return Err(io::Error::from_raw_os_error(code));
                }
                None if copied > 0 => return Ok(copied),
                None => return Err(io::ErrorKind::WouldBlock.into()),
            }
        }
        Ok(copied)
    }

    /// As a one-byte `MSG_PEEK`.
    pub(super) fn peek(&self) -> io::Result<usize> {
        match self.chunks.front() {
            Some(Chunk::Data { .. }) => Ok(1),
            Some(Chunk::Eof) => Ok(0),
            Some(Chunk::Error(code)) => Err(io::Error::from_raw_os_error(*code)),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Whether the finished send left work for the transport: bytes it did
    /// not take, or an error. One that took everything waits quietly until
    /// the transport next writes (or asks).
    pub(super) fn send_needs_writer(&self) -> bool {
        self.sent.as_ref().is_some_and(|(result, _)| result.is_err() || *result != Ok(self.send_len))
    }

    /// Whether to keep the stream listed for the writable announcement.
    pub(super) fn send_pending(&self) -> bool {
        self.wants_writable || self.send_needs_writer()
    }

    /// Whether to announce it writable now (`write`: the reactor wants writes).
    pub(super) fn can_send(&self, write: bool) -> bool {
        write && self.send.is_none() && !self.await_room && self.send_pending()
    }
}

/// Connections one listening socket holds accepted and not taken at most;
/// past it no accept starts until the port takes some.
const ACCEPTED_LIMIT: usize = 64;
/// Accepts in flight at once on one listening socket.
const ACCEPTS_IN_FLIGHT: usize = 4;

/// A listening socket served by `AcceptEx`.
pub(super) struct Listener {
    /// Its address family (for the sockets the accepts go into).
    pub(super) family: u16,
    /// The accepts in flight.
    pub(super) accepts: Vec<*mut Operation>,
    /// Accepted connections (or an error), not taken yet.
    pub(super) queue: VecDeque<Result<OwnedSocket, i32>>,
}

impl Listener {
    pub(super) fn new(family: u16) -> Listener {
        Listener { family, accepts: Vec::new(), queue: VecDeque::new() }
    }

    /// Whether another accept may start.
    pub(super) fn may_accept(&self) -> bool {
        self.accepts.len() < ACCEPTS_IN_FLIGHT && self.accepts.len() + self.queue.len() < ACCEPTED_LIMIT
    }
}
