//! What a multishot receive delivered for one fd and the transport has not
//! read yet: buffers of the shared ring (in order), then possibly the end of
//! file or an error. The transport takes bytes out with [`ReceiveQueue::take`]
//! as it would `read(2)` them; each buffer goes back to the ring once copied.

use std::collections::VecDeque;
use std::io;

use super::buffers::BufferRing;

/// One completion's result.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// `len` bytes in ring buffer `bid`, of which `read` were taken already.
    Data { bid: u16, len: u32, read: u32 },
    /// Bytes copied out of the ring (the connection stopped reading), of
    /// which `read` were taken already.
    Owned { bytes: Box<[u8]>, read: usize },
    /// The peer closed its side: every read from now on is 0.
    Eof,
    /// The receive failed (reset, …): reported once, in order.
    Error(i32),
}

/// One fd's received, unread completions.
#[derive(Debug, Default)]
pub(super) struct ReceiveQueue {
    chunks: VecDeque<Chunk>,
}

impl ReceiveQueue {
    /// Whether nothing waits (no data, no end of file, no error).
    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// How many completions wait (each data chunk holds one ring buffer).
    pub(super) fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Appends `len` bytes that arrived in buffer `bid`.
    pub(super) fn push_data(&mut self, bid: u16, len: u32) {
        self.chunks.push_back(Chunk::Data { bid, len, read: 0 });
    }

    /// Appends the end of file.
    pub(super) fn push_eof(&mut self) {
        self.chunks.push_back(Chunk::Eof);
    }

    /// Appends a receive error (an errno).
    pub(super) fn push_error(&mut self, errno: i32) {
        self.chunks.push_back(Chunk::Error(errno));
    }

    /// As `read(2)` into `out`: bytes (as many as fit, across buffers), else
    /// 0 at end of file, else the error, else `WouldBlock`.
    pub(super) fn take(&mut self, out: &mut [u8], ring: &mut BufferRing) -> io::Result<usize> {
        let mut copied = 0;
        while copied < out.len() {
            match self.chunks.front_mut() {
                Some(Chunk::Data { bid, len, read }) => {
                    let bytes = &ring.bytes(*bid, *len as usize)[*read as usize..];
                    let n = bytes.len().min(out.len() - copied);
                    out[copied..copied + n].copy_from_slice(&bytes[..n]);
                    copied += n;
                    *read += n as u32;
                    if *read == *len {
                        ring.give_back(*bid);
                        self.chunks.pop_front();
                    }
                }
                Some(Chunk::Owned { bytes, read }) => {
                    let rest = &bytes[*read..];
                    let n = rest.len().min(out.len() - copied);
                    out[copied..copied + n].copy_from_slice(&rest[..n]);
                    copied += n;
                    *read += n;
                    if *read == bytes.len() {
                        self.chunks.pop_front();
                    }
                }
                // The end of file stays: every later read sees it too.
                Some(Chunk::Eof) => return Ok(copied),
                Some(Chunk::Error(errno)) if copied == 0 => {
                    let errno = *errno;
                    self.chunks.pop_front();
                    return Err(io::Error::from_raw_os_error(errno));
                }
                Some(Chunk::Error(_)) => return Ok(copied),
                None if copied == 0 => return Err(io::ErrorKind::WouldBlock.into()),
                None => return Ok(copied),
            }
        }
        Ok(copied)
    }

    /// As a one-byte `MSG_PEEK`: 1 if data waits, 0 at end of file, the error,
    /// or `WouldBlock`.
    pub(super) fn peek(&self) -> io::Result<usize> {
        match self.chunks.front() {
            Some(Chunk::Data { .. } | Chunk::Owned { .. }) => Ok(1),
            Some(Chunk::Eof) => Ok(0),
            Some(Chunk::Error(errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Takes the only thing queued if it is data in a ring buffer: its buffer
    /// number and the unread part's offset and end, for the caller to lend
    /// out and give back.
    pub(super) fn take_only_buffer(&mut self) -> Option<(u16, usize, usize)> {
        match self.chunks.front() {
            Some(&Chunk::Data { bid, len, read }) if self.chunks.len() == 1 => {
                self.chunks.pop_front();
                Some((bid, read as usize, len as usize))
            }
            _ => None,
        }
    }

    /// Copies what waits in ring buffers out of the ring and gives them back:
    /// a connection that stopped reading must not hold the shared ring.
    /// Whether any buffer went back.
    pub(super) fn detach(&mut self, ring: &mut BufferRing) -> bool {
        let mut released = false;
        for chunk in &mut self.chunks {
            if let Chunk::Data { bid, len, read } = *chunk {
                let bytes = ring.bytes(bid, len as usize)[read as usize..].into();
                ring.give_back(bid);
                *chunk = Chunk::Owned { bytes, read: 0 };
                released = true;
            }
        }
        released
    }

    /// Drops everything (the connection closed), giving the buffers back.
    pub(super) fn clear(&mut self, ring: &mut BufferRing) {
        for chunk in self.chunks.drain(..) {
            if let Chunk::Data { bid, .. } = chunk {
                ring.give_back(bid);
            }
        }
        // An idle connection keeps no allocation.
        self.chunks = VecDeque::new();
    }
}
