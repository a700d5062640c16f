//! One HTTP/1.1 connection: reading pipelined requests, answering them in order,
//! streaming large files through a pull producer, and the timeouts that keep
//! slow clients from holding it forever.
//!
//! State lives in `Core` behind one `RefCell`, borrowed by the protocol's
//! callbacks, the connection's timer and the file producer, each of which runs
//! from the reactor, never from inside another. The transport never calls back
//! into us synchronously except `stop_producing`, which touches only the
//! producer's own state.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::time::Duration;

use torque::net::{DisconnectReason, Producer, Protocol, Transport};
use torque::{DelayedCall, Reactor, WeakReactor};

use super::Site;
use super::files::{self, FileEntry, RangeRequest};
use super::listing;
use super::request::{self, BodyFraming, ChunkProgress, ChunkState, Method, Parsed, Request};
use super::response::{self, Persistence, Status};

/// Most bytes handed to one `sendfile` call: large enough to fill any socket
/// buffer, small enough that one connection cannot monopolize a pass.
const FILE_CHUNK: u64 = 1 << 20;

/// Bytes read and written per writable event when sendfile is off.
const COPY_CHUNK: usize = 256 * 1024;

/// Most `sendfile` calls per writable event.
const CHUNKS_PER_EVENT: u32 = 8;

/// The content type of generated text bodies.
const TEXT: &str = "text/plain; charset=utf-8";

/// Unsent response bytes above which pipelined requests wait for the client to
/// read (so a client that never reads cannot grow the server's memory).
const PIPELINE_BUFFER_LIMIT: usize = 256 * 1024;

/// How long input is discarded after an error response before the connection
/// is cut.
const LINGER: Duration = Duration::from_secs(2);

/// Bodies up to this size are copied behind the head and sent in one piece.
const FLATTEN_LIMIT: usize = 4096;

/// What the connection is waiting for, and so which timeout applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Between requests: the idle timeout.
    Idle,
    /// Inside a request head or body: the header timeout, from its first byte.
    Request,
    /// Streaming a response: the idle timeout, from the last progress.
    Send,
}

/// A request whose head is here and whose body (read and thrown away) is
/// not yet whole. The request is answered only once its body is: a malformed
/// body then gets one 400, not the answer and then a 400. The body is
/// scanned as it arrives, never again from its start, and the head is parsed
/// again only once the body is whole, so a trickled body costs linear time.
#[derive(Clone, Copy, Debug)]
struct BodyWait {
    /// The head's length; the body starts after it.
    head_len: usize,
    framing: BodyFraming,
    /// Chunked: the scanner's state, the body bytes seen, and how far into
    /// the body it has read.
    chunks: ChunkState,
    seen: u64,
    scanned: usize,
    /// The body's length, once whole.
    done: Option<usize>,
    /// Why the body was refused, once it was (the scan does not resume).
    failed: Option<request::Refusal>,
}

pub(super) struct Core {
    site: Rc<Site>,
    me: Weak<RefCell<Core>>,
    id: u64,
    transport: Option<Transport>,
    /// Received bytes not yet consumed (a partial or pipelined request).
    inbuf: Vec<u8>,
    /// The response head being built; reused.
    head: Vec<u8>,
    body_wait: Option<BodyWait>,
    /// A file producer is sending a body; further requests wait.
    streaming: bool,
    /// Close once the current response is sent.
    close_after: bool,
    /// `lose_connection` or `abort_connection` was called.
    closed: bool,
    /// Bytes of an unfinished request have arrived.
    in_request: bool,
    /// The peer shut its writing side: close once everything is answered.
    peer_done: bool,
    /// Closed after an error: input is discarded until the linger time ends.
    lingering: bool,
    /// The request being answered is HEAD: responses carry no body.
    answering_head: bool,
    /// Bytes sent when the closing timer was armed (progress check).
    sent_at_arm: u64,
    waiting: Waiting,
    /// When a request head must be complete (reactor time).
    deadline: Duration,
    /// When the last idle or send wait began (reactor time): the idle
    /// timeout runs from there.
    idle_since: Duration,
    timer: Option<DelayedCall>,
}

impl Core {
    fn reactor(&self) -> Option<Reactor> {
        self.site.reactor.upgrade()
    }

    /// Sets what we wait for. Waiting for a request head has an exact deadline
    /// (one clock read, only when a head arrives in pieces). An idle or send
    /// wait notes when it began (one clock read, vDSO-cheap) and leaves an
    /// armed timer alone: when it fires early it re-arms for what is left, so
    /// an idle connection closes `idle_timeout` after its last activity with
    /// one timer per connection, not one per request.
    fn wait_for(&mut self, waiting: Waiting) {
        self.waiting = waiting;
        match waiting {
            Waiting::Request => {
                let Some(reactor) = self.reactor() else { return };
                let timeout = self.site.config.header_timeout;
                self.deadline = reactor.now() + timeout;
                let early_enough =
                    self.timer.as_ref().is_some_and(|t| t.active() && t.time() <= self.deadline);
                if !early_enough {
                    self.schedule_timer(&reactor, timeout);
                }
            }
            Waiting::Idle | Waiting::Send => {
                let Some(reactor) = self.reactor() else { return };
                self.idle_since = reactor.now();
                if !self.timer.as_ref().is_some_and(DelayedCall::active) {
                    self.schedule_timer(&reactor, self.site.config.idle_timeout);
                }
            }
        }
    }

    fn schedule_timer(&mut self, reactor: &Reactor, after: Duration) {
        if let Some(old) = self.timer.take() {
            let _ = old.cancel();
        }
        let me = self.me.clone();
        self.timer = Some(reactor.call_later(after, move |r| {
            if let Some(core) = me.upgrade() {
                if let Ok(mut core) = core.try_borrow_mut() {
                    core.on_timer(r);
                }
            }
        }));
    }

    fn on_timer(&mut self, reactor: &Reactor) {
        self.timer = None;
        let Some(transport) = self.transport.clone() else { return };
        if self.closed {
            // Closing: flushing the last response, or lingering after an error.
            // A peer that takes nothing (or a linger that ran out) ends it.
            let sent = transport.byte_counts().0;
            if !self.lingering && sent != self.sent_at_arm {
                self.sent_at_arm = sent;
                self.schedule_timer(reactor, self.site.config.idle_timeout);
            } else {
                tracing::debug!(peer = %self.peer(), "a closing connection made no progress; aborting");
                transport.abort_connection();
            }
            return;
        }
        match self.waiting {
            Waiting::Request => {
                let now = reactor.now();
                if now < self.deadline {
                    self.schedule_timer(reactor, self.deadline - now);
                    return;
                }
            }
            Waiting::Idle | Waiting::Send => {
                let due = self.idle_since + self.site.config.idle_timeout;
                let now = reactor.now();
                if now < due {
                    self.schedule_timer(reactor, due - now);
                    return;
                }
            }
        }
        match self.waiting {
            Waiting::Idle => {
                tracing::debug!(peer = %self.peer(), "closing an idle connection");
                self.close();
            }
            Waiting::Request => {
                tracing::info!(peer = %self.peer(), "request not received in time; closing");
                self.send_error(Status::RequestTimeout, Persistence::Close);
                self.close_lingering();
            }
            Waiting::Send => {
                tracing::info!(peer = %self.peer(), "client stopped reading; aborting");
                self.closed = true;
                if let Some(t) = &self.transport {
                    t.abort_connection();
                }
            }
        }
    }

    fn peer(&self) -> String {
        self.transport.as_ref().map_or_else(String::new, |t| t.peer().to_string())
    }

    /// Closes once everything written is sent; a peer that stops taking data
    /// is aborted after the idle timeout.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(t) = self.transport.clone() {
            t.lose_connection();
            self.arm_closing_timer(&t, self.site.config.idle_timeout);
        }
    }

    /// Closes after an error, when unread input may remain: shuts our side down
    /// (after the error response) and discards input for a moment, so the
    /// kernel does not answer the unread bytes with a reset that could destroy
    /// the response before the client reads it (a lingering close).
    fn close_lingering(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.lingering = true;
        if let Some(t) = self.transport.clone() {
            t.lose_write_connection();
            self.arm_closing_timer(&t, LINGER.min(self.site.config.idle_timeout));
        }
    }

    fn arm_closing_timer(&mut self, transport: &Transport, after: Duration) {
        self.sent_at_arm = transport.byte_counts().0;
        if let Some(reactor) = self.reactor() {
            self.schedule_timer(&reactor, after);
        }
    }

    /// New bytes from the peer.
    fn on_data(&mut self, data: &[u8]) {
        if self.closed {
            return;
        }
        if self.inbuf.is_empty() {
            // The common case: a whole request in one read, parsed in place.
            let used = self.process(data);
            if used < data.len() && !self.closed {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.inbuf);
            let scan_from = buf.len().saturating_sub(2);
            buf.extend_from_slice(data);
            // A head arriving in pieces is parsed again only once its end may
            // be here (or it is over the limit): re-parsing on every trickled
            // byte would cost a slow client's server quadratic time.
            let head_pending = self.body_wait.is_none()
                && !may_end_head(&buf[scan_from..])
                && buf.len() <= self.site.config.limits.max_head;
            let body_pending = self.body_wait.is_some() && matches!(self.scan_body(&buf), Ok(None));
            if head_pending || body_pending {
                self.inbuf = buf;
            } else {
                self.process_buffered(buf);
            }
        }
        self.after_input();
    }

    fn process_buffered(&mut self, mut buf: Vec<u8>) {
        let used = self.process(&buf);
        if !self.closed {
            buf.drain(..used);
            self.inbuf = buf;
        }
    }

    /// Chooses the timeout for what is left once input has been handled.
    fn after_input(&mut self) {
        if self.closed || self.streaming {
            return;
        }
        let partial = !self.inbuf.is_empty();
        if partial {
            if !self.in_request {
                // The header timeout runs from a request's first byte; more
                // bytes trickling in do not extend it (slowloris).
                self.in_request = true;
                self.wait_for(Waiting::Request);
            }
        } else {
            self.in_request = false;
            self.wait_for(Waiting::Idle);
        }
    }

    /// Handles every complete request at the start of `data`; returns the bytes
    /// consumed.
    fn process(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while !self.closed && !self.streaming {
            if self.transport.as_ref().is_some_and(|t| t.buffered() > PIPELINE_BUFFER_LIMIT) {
                // A client pipelining requests without reading the answers:
                // stop here until it has taken what is already written.
                self.wait_for_drain();
                break;
            }
            if self.closed || at == data.len() {
                break;
            }
            match request::parse(&data[at..], &self.site.config.limits) {
                Parsed::Partial => break,
                Parsed::Refused(refusal) => {
                    if self.site.config.access_log {
                        tracing::info!(target: "torque::access", "{} \"-\" {} ({})", self.peer(), refusal.status.code(), refusal.reason);
                    }
                    // A method we do not serve, with a well-framed head (and any
                    // body already here) is skipped and the connection goes on;
                    // anything else closes it.
                    let skip = match refusal.status.closes_connection() {
                        true => None,
                        false => request::refused_head_extent(&data[at..], &self.site.config.limits),
                    };
                    let Some((len, keep_alive)) = skip else {
                        self.send_error(refusal.status, Persistence::Close);
                        self.close_lingering();
                        return data.len();
                    };
                    at += len;
                    self.in_request = false;
                    let persistence = if keep_alive && !self.site.draining.get() {
                        Persistence::KeepAlive11
                    } else {
                        Persistence::Close
                    };
                    self.send_error(refusal.status, persistence);
                    if persistence == Persistence::Close {
                        self.close();
                    }
                }
                Parsed::Complete(req, len) => {
                    if req.body != BodyFraming::None && self.body_wait.is_none() {
                        self.body_wait = Some(BodyWait {
                            head_len: len,
                            framing: req.body,
                            chunks: ChunkState::Size,
                            seen: 0,
                            scanned: 0,
                            done: None,
                            failed: None,
                        });
                    }
                    let body_len = match self.scan_body(&data[at..]) {
                        Ok(Some(body_len)) => body_len,
                        Ok(None) => break, // the rest of the body has yet to come
                        Err(refusal) => {
                            self.send_error(refusal.status, Persistence::Close);
                            self.close_lingering();
                            return data.len();
                        }
                    };
                    self.body_wait = None;
                    at += len + body_len;
                    self.in_request = false;
                    self.handle(&req);
                }
            }
        }
        at
    }

    /// How long the body of the request at the start of `request` is, once it
    /// is all here (`None`: not yet); a malformed body is refused. Continues
    /// from where the last call stopped.
    fn scan_body(&mut self, request: &[u8]) -> Result<Option<usize>, request::Refusal> {
        let Some(wait) = self.body_wait.as_mut() else { return Ok(Some(0)) };
        if let Some(done) = wait.done {
            return Ok(Some(done));
        }
        if let Some(refusal) = wait.failed {
            return Err(refusal);
        }
        let body = &request[wait.head_len.min(request.len())..];
        match wait.framing {
            BodyFraming::None => wait.done = Some(0),
            BodyFraming::Length(n) => {
                if body.len() as u64 >= n {
                    wait.done = Some(n as usize);
                }
            }
            BodyFraming::Chunked => {
                let max_body = self.site.config.limits.max_body;
                let scanned =
                    request::skip_chunked(&body[wait.scanned..], &mut wait.chunks, &mut wait.seen, max_body);
                match scanned {
                    Ok(ChunkProgress::Done(n)) => wait.done = Some(wait.scanned + n),
                    Ok(ChunkProgress::NeedMore(n)) => wait.scanned += n,
                    Err(refusal) => {
                        wait.failed = Some(refusal);
                        return Err(refusal);
                    }
                }
            }
        }
        Ok(wait.done)
    }

    fn persistence(&mut self, req: &Request<'_>) -> Persistence {
        if !req.keep_alive || self.site.draining.get() || self.close_after {
            self.close_after = true;
            Persistence::Close
        } else if req.minor_version == 0 {
            Persistence::KeepAlive10
        } else {
            Persistence::KeepAlive11
        }
    }

    fn handle(&mut self, req: &Request<'_>) {
        let persistence = self.persistence(req);
        self.answering_head = req.method == Method::Head;
        let (status, bytes) = self.serve(req, persistence);
        self.answering_head = false;
        if self.site.config.access_log {
            let method = if req.method == Method::Head { "HEAD" } else { "GET" };
            tracing::info!(
                target: "torque::access",
                "{} \"{method} {} HTTP/1.{}\" {} {bytes}",
                self.peer(),
                req.target,
                req.minor_version,
                status.code()
            );
        }
        if self.close_after {
            // Waits for a streaming body's producer to finish, if there is one.
            self.close();
        }
    }

    /// Answers one request; returns the status and the body bytes planned.
    fn serve(&mut self, req: &Request<'_>, persistence: Persistence) -> (Status, u64) {
        let path = files::path_of(req.target);
        let now = self.reactor().map_or(Duration::ZERO, |r| r.now());
        let cached = self.site.cache.borrow_mut().get(path, now);
        if let Some(entry) = cached {
            return self.serve_entry(req, &entry, None, persistence);
        }
        let decoded = match files::decode_path(req.target) {
            Ok(decoded) => decoded,
            Err(status) => return self.send_error(status, persistence),
        };
        if !self.site.config.serve_hidden && files::is_hidden(&decoded.relative) {
            return self.send_error(Status::NotFound, persistence);
        }
        let root = &self.site.root;
        let mut file = match root.open_file(&decoded.relative) {
            Ok(file) => file,
            Err(e) => return self.send_error(files::status_for(&e), persistence),
        };
        let mut meta = match file.metadata() {
            Ok(meta) => meta,
            Err(_) => return self.send_error(Status::InternalError, persistence),
        };
        let mut name = decoded.relative.clone();
        if meta.is_dir() {
            if !decoded.trailing_slash {
                return self.redirect_to_directory(req, persistence);
            }
            let index = decoded.relative.join("index.html");
            match root.open_file(&index).and_then(|f| f.metadata().map(|m| (f, m))) {
                Ok((index_file, index_meta)) if index_meta.is_file() => {
                    file = index_file;
                    meta = index_meta;
                    name = index;
                }
                Ok(_) => return self.send_listing(&file, &decoded.relative, persistence),
                Err(e) if files::status_for(&e) == Status::NotFound => {
                    return self.send_listing(&file, &decoded.relative, persistence);
                }
                Err(e) => return self.send_error(files::status_for(&e), persistence),
            }
        }
        if !meta.is_file() {
            return self.send_error(Status::Forbidden, persistence);
        }
        let entry = match FileEntry::load(&mut file, &name, &meta, self.site.config.small_file, now) {
            Ok(entry) => Rc::new(entry),
            Err(e) => {
                tracing::warn!(path = %name.display(), error = %e, "cannot read a file");
                return self.send_error(files::status_for(&e), persistence);
            }
        };
        self.site.cache.borrow_mut().insert(path, Rc::clone(&entry));
        self.serve_entry(req, &entry, Some(file), persistence)
    }

    fn serve_entry(
        &mut self,
        req: &Request<'_>,
        entry: &FileEntry,
        file: Option<File>,
        persistence: Persistence,
    ) -> (Status, u64) {
        let info = &entry.info;
        let not_modified = match req.if_none_match {
            Some(tags) => files::etag_matches(tags, &info.etag),
            None => {
                req.if_modified_since.is_some_and(|date| files::not_modified_since(date, info.modified_secs))
            }
        };
        if not_modified {
            let mut head = std::mem::take(&mut self.head);
            response::start_head(&mut head, Status::NotModified, persistence);
            let _ = write!(head, "ETag: {}\r\nLast-Modified: {}\r\n\r\n", info.etag, info.last_modified);
            self.write(&[&head]);
            self.head = head;
            return (Status::NotModified, 0);
        }
        let range = match req.range {
            Some(range) if req.if_range.is_none_or(|v| files::if_range_matches(v, info)) => {
                files::parse_range(range, info.len)
            }
            _ => RangeRequest::Whole,
        };
        let mut head = std::mem::take(&mut self.head);
        let (status, start, end) = match range {
            RangeRequest::Unsatisfiable => {
                response::start_head(&mut head, Status::RangeNotSatisfiable, persistence);
                let _ = write!(head, "Content-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n", info.len);
                self.write(&[&head]);
                self.head = head;
                return (Status::RangeNotSatisfiable, 0);
            }
            RangeRequest::Part(start, end) => {
                response::start_head(&mut head, Status::PartialContent, persistence);
                let _ = write!(head, "Content-Range: bytes {start}-{end}/{}\r\n", info.len);
                (Status::PartialContent, start, end + 1)
            }
            RangeRequest::Whole => {
                response::start_head(&mut head, Status::Ok, persistence);
                (Status::Ok, 0, info.len)
            }
        };
        response::content_length(&mut head, end - start);
        head.extend_from_slice(&info.headers);
        head.extend_from_slice(b"\r\n");
        let planned = end - start;
        if req.method == Method::Head {
            self.write(&[&head]);
        } else if let Some(body) = &entry.body {
            let body = &body[start as usize..end as usize];
            if body.len() <= FLATTEN_LIMIT {
                // One plain send beats a two-part sendmsg for small bodies.
                head.extend_from_slice(body);
                self.write(&[&head]);
            } else {
                self.write(&[&head, body]);
            }
        } else if let Some(file) = file {
            // Corked until the body is done: the head goes out with the first
            // file bytes, in full segments.
            if let Some(t) = &self.transport {
                let _ = t.set_tcp_cork(true);
            }
            self.write(&[&head]);
            self.stream_file(file, start, end);
        } else {
            // Only cached entries come without a file, and they all have a body.
            self.head = head;
            return self.send_error(Status::InternalError, persistence);
        }
        self.head = head;
        (status, planned)
    }

    fn write(&self, parts: &[&[u8]]) {
        if let Some(t) = &self.transport {
            t.write_vectored(parts);
        }
    }

    fn stream_file(&mut self, file: File, start: u64, end: u64) {
        let Some(transport) = self.transport.clone() else { return };
        if start == end {
            let _ = transport.set_tcp_cork(false);
            return;
        }
        self.streaming = true;
        // Pipelined requests wait (unread) until this body is sent.
        transport.pause_producing();
        let producer = FileProducer {
            copy_buffer: (!self.site.config.sendfile).then(|| vec![0; COPY_CHUNK]),
            file,
            offset: start,
            end,
            transport: transport.clone(),
            core: self.me.clone(),
            reactor: self.site.reactor.clone(),
        };
        transport
            .register_producer(Rc::new(RefCell::new(producer)), false)
            .expect("one response streams at a time: the last one unregistered its producer");
        self.wait_for(Waiting::Send);
    }

    /// Waits, with reading paused, until the write buffer is empty; then
    /// `response_done` carries on with buffered requests.
    fn wait_for_drain(&mut self) {
        let Some(transport) = self.transport.clone() else { return };
        self.streaming = true;
        transport.pause_producing();
        let waiter = DrainWaiter {
            transport: transport.clone(),
            core: self.me.clone(),
            reactor: self.site.reactor.clone(),
        };
        transport
            .register_producer(Rc::new(RefCell::new(waiter)), false)
            .expect("one response streams at a time: the last one unregistered its producer");
        self.wait_for(Waiting::Send);
    }

    /// The streamed body is sent, or the buffer drained. Returns whether the
    /// caller should resume reading (done outside this borrow: resuming an
    /// in-memory transport delivers held data at once).
    fn response_done(&mut self) -> bool {
        self.streaming = false;
        if self.closed {
            return false;
        }
        // Requests pipelined behind the body are answered now, in order.
        let buf = std::mem::take(&mut self.inbuf);
        if !buf.is_empty() {
            self.process_buffered(buf);
        }
        if !self.streaming && (self.close_after || self.peer_done) {
            self.close();
            return false;
        }
        self.after_input();
        !self.streaming && !self.closed
    }

    fn redirect_to_directory(&mut self, req: &Request<'_>, persistence: Persistence) -> (Status, u64) {
        let (path, query) = match req.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (req.target, None),
        };
        // Leading slashes collapse to one: `//host` would be another site.
        let path = files::path_of(path).trim_start_matches('/');
        let location = match query {
            Some(query) => format!("/{path}/?{query}"),
            None => format!("/{path}/"),
        };
        let body = response::error_body(Status::MovedPermanently);
        let location = format!("Location: {location}\r\n");
        self.send_small(Status::MovedPermanently, persistence, &location, TEXT, body.as_bytes())
    }

    fn send_listing(&mut self, dir: &File, relative: &Path, persistence: Persistence) -> (Status, u64) {
        if !self.site.config.listings {
            return self.send_error(Status::Forbidden, persistence);
        }
        let shown = if relative.as_os_str().is_empty() {
            "/".to_owned()
        } else {
            format!("/{}/", relative.to_string_lossy())
        };
        let path = self.site.root.path().join(relative);
        let page = match listing::render(dir, &path, &shown, self.site.config.serve_hidden) {
            Ok(page) => page,
            Err(e) => return self.send_error(files::status_for(&e), persistence),
        };
        self.send_small(Status::Ok, persistence, "", "text/html; charset=utf-8", page.as_bytes())
    }

    /// Sends an error status with a short text body; returns it for the log.
    fn send_error(&mut self, status: Status, persistence: Persistence) -> (Status, u64) {
        let persistence = if status.closes_connection() { Persistence::Close } else { persistence };
        if persistence == Persistence::Close {
            self.close_after = true;
        }
        let body = response::error_body(status);
        let allow = if status == Status::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
        self.send_small(status, persistence, allow, TEXT, body.as_bytes())
    }

    /// Sends a response with a body in memory: `extra` header lines (each
    /// ending in CRLF), the content type and length, and the body unless the
    /// request was HEAD. Returns the status and body length for the log.
    fn send_small(
        &mut self,
        status: Status,
        persistence: Persistence,
        extra: &str,
        content_type: &str,
        body: &[u8],
    ) -> (Status, u64) {
        let mut head = std::mem::take(&mut self.head);
        response::start_head(&mut head, status, persistence);
        let _ = write!(head, "{extra}Content-Type: {content_type}\r\n");
        response::content_length(&mut head, body.len() as u64);
        head.extend_from_slice(b"\r\n");
        // A response to HEAD never has a body: on a kept connection, one would
        // be read as the start of the next response.
        let body_part: &[u8] = if self.answering_head { b"" } else { body };
        self.write(&[&head, body_part]);
        self.head = head;
        (status, body.len() as u64)
    }

    /// Shutdown: finish what is in flight, close what is idle.
    pub(super) fn begin_drain(&mut self) {
        self.close_after = true;
        let idle = !self.streaming && !self.in_request && self.inbuf.is_empty();
        if idle {
            self.close();
        }
    }

    /// Shutdown's grace period is over.
    pub(super) fn abort(&mut self) {
        self.closed = true;
        if let Some(t) = &self.transport {
            t.abort_connection();
        }
    }
}

/// Whether `bytes` hold the blank line that ends a request head.
fn may_end_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Reads up to `want` bytes (at most a buffer) of `file` at `offset` and
/// writes them: the copying alternative to `write_file`.
fn copy_chunk(
    transport: &Transport,
    file: &File,
    offset: u64,
    want: usize,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    if transport.is_disconnected() && transport.buffered() == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    }
    let n = want.min(buffer.len());
    let read = crate::platform::read_at(file, &mut buffer[..n], offset)?;
    if read == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    transport.write(&buffer[..read]);
    Ok(read)
}

/// Carries on once a response body is done or the write buffer has drained:
/// answers buffered requests, then resumes reading.
fn continue_connection(core: &Weak<RefCell<Core>>, transport: &Transport, reactor: &WeakReactor) {
    let Some(core) = core.upgrade() else { return };
    let resume = match core.try_borrow_mut() {
        Ok(mut core) => core.response_done(),
        Err(_) => {
            // Not expected (we are called from the reactor), but never panic:
            // carry on next pass.
            if let Some(reactor) = reactor.upgrade() {
                let (weak, transport, again) = (Rc::downgrade(&core), transport.clone(), reactor.downgrade());
                reactor.call_later(Duration::ZERO, move |_| continue_connection(&weak, &transport, &again));
            }
            return;
        }
    };
    if resume {
        transport.resume_producing();
    }
}

/// A pull producer that only waits for the write buffer to empty.
struct DrainWaiter {
    transport: Transport,
    core: Weak<RefCell<Core>>,
    reactor: WeakReactor,
}

impl Producer for DrainWaiter {
    fn resume_producing(&mut self) {
        self.transport.unregister_producer();
        continue_connection(&self.core, &self.transport, &self.reactor);
    }
}

/// Sends `offset..end` of a file, one chunk each time the socket drains.
struct FileProducer {
    /// `Some` when sendfile is off (`--no-sendfile`): bodies are read into it
    /// and written, for comparison.
    copy_buffer: Option<Vec<u8>>,
    file: File,
    offset: u64,
    end: u64,
    transport: Transport,
    core: Weak<RefCell<Core>>,
    reactor: WeakReactor,
}

impl FileProducer {
    fn finish(&mut self) {
        self.offset = self.end;
        // Uncorking sends the body's last partial segment now.
        let _ = self.transport.set_tcp_cork(false);
        // Unregistering lets a pending `lose_connection` complete.
        self.transport.unregister_producer();
        continue_connection(&self.core, &self.transport, &self.reactor);
    }

    fn failed(&mut self, e: std::io::Error) {
        match e.kind() {
            // The connection is gone; `stop_producing` has been or will be called.
            std::io::ErrorKind::BrokenPipe => self.offset = self.end,
            _ => {
                // The file shrank or failed under us: the promised length cannot
                // be kept, so the connection must end without a clean close.
                tracing::warn!(error = %e, "reading a file being served failed; aborting the response");
                self.offset = self.end;
                self.transport.abort_connection();
            }
        }
    }
}

impl Producer for FileProducer {
    fn resume_producing(&mut self) {
        let mut calls = 0;
        while self.offset < self.end {
            let want = (self.end - self.offset).min(FILE_CHUNK) as usize;
            let result = match self.copy_buffer.as_mut() {
                None => self.transport.write_file(&self.file, self.offset, want),
                Some(buffer) => copy_chunk(&self.transport, &self.file, self.offset, want, buffer),
            };
            let sent = match result {
                Ok(sent) => sent,
                Err(e) => return self.failed(e),
            };
            self.offset += sent as u64;
            calls += 1;
            if sent > 0 {
                if let Some(core) = self.core.upgrade() {
                    if let Ok(mut core) = core.try_borrow_mut() {
                        core.wait_for(Waiting::Send);
                    }
                }
            }
            if self.offset >= self.end {
                self.finish();
                return;
            }
            // A short send means the socket is full: the next writable event
            // asks again. A cap keeps one fast reader from holding the pass.
            // (Copying: one chunk per event, as the write buffer holds it.)
            if sent < want || calls == CHUNKS_PER_EVENT || self.copy_buffer.is_some() {
                return;
            }
        }
    }

    fn stop_producing(&mut self) {
        // Only our own state: this can run inside the transport's close.
        self.offset = self.end;
    }
}

/// The protocol the web factory builds for each connection.
pub(super) struct HttpConnection {
    core: Rc<RefCell<Core>>,
}

impl HttpConnection {
    pub(super) fn new(site: Rc<Site>) -> HttpConnection {
        let id = site.next_id.get();
        site.next_id.set(id + 1);
        let core = Rc::new_cyclic(|me| {
            RefCell::new(Core {
                site,
                me: me.clone(),
                id,
                transport: None,
                inbuf: Vec::new(),
                head: Vec::with_capacity(512),
                body_wait: None,
                streaming: false,
                close_after: false,
                closed: false,
                in_request: false,
                peer_done: false,
                lingering: false,
                answering_head: false,
                sent_at_arm: 0,
                waiting: Waiting::Idle,
                deadline: Duration::ZERO,
                idle_since: Duration::ZERO,
                timer: None,
            })
        });
        HttpConnection { core }
    }
}

impl Protocol for HttpConnection {
    fn connection_made(&mut self, transport: &Transport) {
        let mut core = self.core.borrow_mut();
        core.transport = Some(transport.clone());
        let _ = transport.set_tcp_nodelay(true);
        core.site.connections.borrow_mut().insert(core.id, Rc::downgrade(&self.core));
        core.site.active.set(core.site.active.get() + 1);
        core.site.config.open_connections.add(1);
        if core.site.draining.get() {
            core.begin_drain();
        } else {
            core.wait_for(Waiting::Idle);
        }
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.core.borrow_mut().on_data(data);
    }

    fn read_connection_lost(&mut self, _transport: &Transport) {
        // The client sent all it will: answer what is complete, then close.
        let mut core = self.core.borrow_mut();
        core.peer_done = true;
        if !core.streaming {
            core.close();
        }
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        let site = {
            let mut core = self.core.borrow_mut();
            core.transport = None;
            core.closed = true;
            if let Some(timer) = core.timer.take() {
                let _ = timer.cancel();
            }
            core.site.connections.borrow_mut().remove(&core.id);
            Rc::clone(&core.site)
        };
        site.connection_closed();
    }
}

/// Answers 503 and closes (lingering, as after other errors): the server is at
/// its connection limit.
pub(super) struct Refuse503 {
    pub(super) reactor: WeakReactor,
}

impl Protocol for Refuse503 {
    fn connection_made(&mut self, transport: &Transport) {
        let mut head = Vec::new();
        let body = response::error_body(Status::Unavailable);
        response::start_head(&mut head, Status::Unavailable, Persistence::Close);
        head.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n");
        response::content_length(&mut head, body.len() as u64);
        head.extend_from_slice(b"\r\n");
        transport.write_vectored(&[&head, body.as_bytes()]);
        transport.lose_write_connection();
        if let Some(reactor) = self.reactor.upgrade() {
            let transport = transport.clone();
            reactor.call_later(LINGER, move |_| transport.abort_connection());
        }
    }

    fn data_received(&mut self, _transport: &Transport, _data: &[u8]) {}
}
