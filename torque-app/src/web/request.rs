//! Reading one HTTP/1.1 request head with `httparse`, and every way it can be
//! refused: each error carries the status to answer with.
//!
//! Framing is judged first, as RFC 9112 says: a malformed request line or
//! HTTP-version, a Transfer-Encoding whose last coding is not `chunked`, two
//! framings at once — each 400, whatever the method — before the target's
//! length (414), the head's size (431), `Host` (400) and the method (405,
//! 501).

use super::response::Status;

/// Size limits on what a client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// The longest request target, in bytes.
    pub max_uri: usize,
    /// The largest request body the server will read and discard.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head: 16 * 1024, max_uri: 8 * 1024, max_body: 1024 * 1024 }
    }
}

/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 64;

/// The methods a static file server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
}

/// How the request's body (ignored by a file server) is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head; strings borrow the connection's buffer.
#[derive(Debug)]
pub struct Request<'a> {
    /// GET or HEAD.
    pub method: Method,
    /// The request target as sent (`/a%20b?x`).
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// The body that follows the head.
    pub body: BodyFraming,
}

/// A request that cannot be served, with the status to answer and why (for the
/// log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status to send.
    pub status: Status,
    /// What was wrong.
    pub reason: &'static str,
}

fn refuse(status: Status, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

/// The outcome of looking at the start of a buffer.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole head, `usize` bytes long.
    Complete(Request<'a>, usize),
    /// Not all there yet.
    Partial,
    /// Malformed, too big or unsupported.
    Refused(Refusal),
}

/// Parses the request head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return match too_long(buf, limits) {
                Some(refusal) => Parsed::Refused(refusal),
                None => Parsed::Partial,
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(refuse(Status::HeadersTooLarge, "too many header fields"));
        }
        Err(httparse::Error::Version) => return Parsed::Refused(version_refusal(buf)),
        Err(_) => return Parsed::Refused(refuse(Status::BadRequest, "malformed request head")),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Parsed::Refused(refuse(Status::BadRequest, "incomplete request line"));
    };
    // Framing first: without it the connection cannot go on.
    let mut request = match read_framing(req.headers, minor_version, limits) {
        Ok(request) => request,
        Err(refusal) => return Parsed::Refused(refusal),
    };
    // A long target is 414 even when it also makes the head long.
    if target.len() > limits.max_uri {
        return Parsed::Refused(refuse(Status::UriTooLong, "request target too long"));
    }
    if len > limits.max_head {
        return Parsed::Refused(refuse(Status::HeadersTooLarge, "request head too large"));
    }
    if let Err(refusal) = check_host(req.headers, minor_version) {
        return Parsed::Refused(refusal);
    }
    request.method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "TRACE" | "CONNECT" => {
            return Parsed::Refused(refuse(Status::MethodNotAllowed, "method not allowed"));
        }
        _ => return Parsed::Refused(refuse(Status::NotImplemented, "unknown method")),
    };
    request.target = target;
    Parsed::Complete(request, len)
}

/// A request line httparse refused for its version: 505 for a well-formed
/// HTTP-version this server does not speak (`HTTP/2.0`), 400 for a malformed
/// one (`HTTP/1.x`, `http/1.1`; RFC 9112 §2.3: `HTTP/` DIGIT `.` DIGIT, the
/// name case-sensitive).
fn version_refusal(buf: &[u8]) -> Refusal {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            refuse(Status::VersionNotSupported, "an HTTP version other than 1.0 and 1.1")
        }
        _ => refuse(Status::BadRequest, "malformed HTTP version"),
    }
}

/// A partial head already past a limit: 414 while still in the request line,
/// 431 once in the headers.
fn too_long(buf: &[u8], limits: &Limits) -> Option<Refusal> {
    match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > limits.max_uri + 16 => {
            Some(refuse(Status::UriTooLong, "request target too long"))
        }
        Some(line_end) if line_end > limits.max_uri + 16 => {
            Some(refuse(Status::UriTooLong, "request target too long"))
        }
        _ if buf.len() > limits.max_head => Some(refuse(Status::HeadersTooLarge, "request head too large")),
        _ => None,
    }
}

/// For a head refused for its method alone (405, 501 for an unknown one): how
/// many bytes it and its Content-Length body take at the start of `buf`, and
/// whether the client wants the connection kept, so the connection can go on.
/// `None` when it cannot safely be skipped: the headers are refused by the same
/// rules as any request's, the body is chunked, or the body is not all here.
pub fn refused_head_extent(buf: &[u8], limits: &Limits) -> Option<(usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(buf) else { return None };
    let version = req.version?;
    let request = read_framing(req.headers, version, limits).ok()?;
    check_host(req.headers, version).ok()?;
    let body = match request.body {
        BodyFraming::None => 0,
        BodyFraming::Length(n) => n,
        BodyFraming::Chunked => return None,
    };
    let end = (len as u64).checked_add(body)?;
    (end <= buf.len() as u64).then_some((end as usize, request.keep_alive))
}

/// HTTP/1.1 requests carry exactly one `Host` (RFC 9112 §3.2).
fn check_host(headers: &[httparse::Header<'_>], minor_version: u8) -> Result<(), Refusal> {
    let hosts = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count();
    if minor_version >= 1 && hosts != 1 {
        return Err(refuse(Status::BadRequest, "HTTP/1.1 needs exactly one Host header"));
    }
    Ok(())
}

/// The headers a file server reads, and the body's framing (RFC 9112 §6).
fn read_framing<'a>(
    headers: &[httparse::Header<'a>],
    minor_version: u8,
    limits: &Limits,
) -> Result<Request<'a>, Refusal> {
    let mut request = Request {
        method: Method::Get,
        target: "",
        minor_version,
        keep_alive: minor_version >= 1,
        if_none_match: None,
        if_modified_since: None,
        range: None,
        if_range: None,
        body: BodyFraming::None,
    };
    let mut length: Option<u64> = None;
    // The transfer codings in order, across every Transfer-Encoding line.
    let mut codings: Vec<&[u8]> = Vec::new();
    for header in headers {
        let name = header.name;
        let value = trim(header.value);
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    request.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(value).ok_or(refuse(Status::BadRequest, "bad Content-Length"))?;
            if length.is_some_and(|old| old != n) {
                return Err(refuse(Status::BadRequest, "conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.extend(value.split(|&b| b == b',').map(trim).filter(|c| !c.is_empty()));
        } else if name.eq_ignore_ascii_case("if-none-match") {
            request.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            request.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case("range") {
            request.range = Some(value);
        } else if name.eq_ignore_ascii_case("if-range") {
            request.if_range = Some(value);
        }
    }
    let chunked = !codings.is_empty();
    if chunked {
        let is_chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
        if minor_version == 0 {
            // HTTP/1.0 has no transfer codings: the framing is faulty (§6.1).
            return Err(refuse(Status::BadRequest, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !codings.last().is_some_and(|c| is_chunked(c)) {
            // Without chunked last the body's end cannot be found (§6.3).
            return Err(refuse(Status::BadRequest, "Transfer-Encoding does not end in chunked"));
        }
        if codings.iter().filter(|c| is_chunked(c)).count() > 1 {
            return Err(refuse(Status::BadRequest, "chunked applied more than once"));
        }
        if codings.len() > 1 {
            // Framed, but the coding under chunked is one we cannot undo.
            return Err(refuse(Status::NotImplemented, "unsupported Transfer-Encoding"));
        }
    }
    request.body = match (chunked, length) {
        (true, Some(_)) => {
            // Both framings at once is how requests are smuggled past proxies.
            return Err(refuse(Status::BadRequest, "both Content-Length and Transfer-Encoding"));
        }
        (true, None) => BodyFraming::Chunked,
        (false, Some(n)) if n > limits.max_body => {
            return Err(refuse(Status::PayloadTooLarge, "request body too large"));
        }
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    Ok(request)
}

/// Strips ASCII spaces and tabs from both ends.
pub fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &value[start..end]
}

/// A non-negative decimal with no sign or spaces, that fits in a u64.
pub fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Progress through a chunked body being discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data; this many bytes left.
    Data(u64),
    /// After a chunk's data: this many bytes of its CRLF already seen.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// What skipping part of a chunked body found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkProgress {
    /// Consumed this many bytes; need more.
    NeedMore(usize),
    /// The body ended after this many bytes.
    Done(usize),
}

/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// A chunk-size line without its CRLF (RFC 9112 §7.1): hex digits, then
/// optional extensions after `;`. `None` if malformed or over 64 bits.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let rest = trim(&line[digits..]);
    if !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let value = (d as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(value))
    })
}

/// Skips chunked-body bytes at the start of `buf`, keeping count of the total in
/// `seen` against `max_body`. Strict where framing is at stake: chunk-size
/// lines and the line after each chunk's data end in CRLF (a bare LF there is
/// how bodies are smuggled past proxies), and a size that overflows is 400.
pub fn skip_chunked(
    buf: &[u8],
    state: &mut ChunkState,
    seen: &mut u64,
    max_body: u64,
) -> Result<ChunkProgress, Refusal> {
    let bad = |reason| Err(refuse(Status::BadRequest, reason));
    let mut at = 0;
    loop {
        match *state {
            ChunkState::Size => {
                let rest = &buf[at..];
                let Some(end) = rest.iter().take(MAX_CHUNK_LINE + 1).position(|&b| b == b'\n') else {
                    if rest.len() > MAX_CHUNK_LINE {
                        return bad("chunk size line too long");
                    }
                    return Ok(ChunkProgress::NeedMore(at));
                };
                let Some(line) = rest[..end].strip_suffix(b"\r") else {
                    return bad("chunk size line not ended by CRLF");
                };
                let Some(size) = chunk_size(line) else {
                    return bad("bad chunk size line");
                };
                at += end + 1;
                if size == 0 {
                    *state = ChunkState::Trailers;
                    continue;
                }
                *seen = seen.saturating_add(size);
                if *seen > max_body {
                    return Err(refuse(Status::PayloadTooLarge, "request body too large"));
                }
                *state = ChunkState::Data(size);
            }
            ChunkState::Data(left) => {
                let available = (buf.len() - at) as u64;
                if available < left {
                    *state = ChunkState::Data(left - available);
                    return Ok(ChunkProgress::NeedMore(buf.len()));
                }
                at += left as usize;
                *state = ChunkState::DataEnd(0);
            }
            ChunkState::DataEnd(matched) => {
                for (i, &expected) in b"\r\n".iter().enumerate().skip(usize::from(matched)) {
                    match buf.get(at) {
                        None => {
                            *state = ChunkState::DataEnd(i as u8);
                            return Ok(ChunkProgress::NeedMore(at));
                        }
                        Some(&b) if b == expected => at += 1,
                        Some(_) => return bad("chunk data not followed by CRLF"),
                    }
                }
                *state = ChunkState::Size;
            }
            ChunkState::Trailers => {
                let rest = &buf[at..];
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    if rest.len() > 8 * 1024 {
                        return Err(refuse(Status::HeadersTooLarge, "trailers too large"));
                    }
                    return Ok(ChunkProgress::NeedMore(at));
                };
                let line = &rest[..end];
                at += end + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(ChunkProgress::Done(at));
                }
                // Trailers count against the body's limit: there is no end
                // to how many lines a client could send.
                *seen = seen.saturating_add(end as u64 + 1);
                if *seen > max_body {
                    return Err(refuse(Status::PayloadTooLarge, "request trailers too large"));
                }
            }
        }
    }
}

/// Runs the parser over arbitrary bytes — a head, then whatever body framing
/// it declares, skipped in pieces whose size the body's first byte picks —
/// and panics if it consumes more than it was given. Used by the fuzz target
/// (`scripts/fuzz.sh`) and by the test that replays its findings.
#[doc(hidden)]
pub fn check_invariants(data: &[u8]) {
    let limits = Limits::default();
    let Parsed::Complete(head, len) = parse(data, &limits) else {
        if let Some((end, _)) = refused_head_extent(data, &limits) {
            assert!(end <= data.len());
        }
        return;
    };
    assert!(len <= data.len());
    let body = &data[len..];
    if head.body != BodyFraming::Chunked {
        return;
    }
    let piece = usize::from(body.first().copied().unwrap_or(1)).max(1);
    let (mut state, mut seen, mut at) = (ChunkState::Size, 0, 0);
    let mut end = piece.min(body.len());
    loop {
        match skip_chunked(&body[at..end], &mut state, &mut seen, limits.max_body) {
            Ok(ChunkProgress::Done(n)) => {
                assert!(at + n <= end);
                return;
            }
            Ok(ChunkProgress::NeedMore(n)) => {
                at += n;
                assert!(at <= end);
                if end == body.len() {
                    return;
                }
                end = (end + piece).min(body.len());
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> (Request<'_>, usize) {
        match parse(text.as_bytes(), &Limits::default()) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn refused(text: &[u8]) -> Status {
        match parse(text, &Limits::default()) {
            Parsed::Refused(r) => r.status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let (r, n) = parse_ok("GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest");
        assert_eq!((r.method, r.target, r.minor_version, r.keep_alive), (Method::Get, "/a?b", 1, true));
        assert_eq!(n, 30);
        assert_eq!(r.body, BodyFraming::None);
    }

    #[test]
    fn connection_tokens() {
        assert!(!parse_ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").0.keep_alive);
        assert!(!parse_ok("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn refusals() {
        assert_eq!(refused(b"GARBAGE\r\n\r\n"), Status::BadRequest);
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), Status::BadRequest, "no Host");
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Status::MethodNotAllowed);
        assert_eq!(refused(b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), Status::NotImplemented);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), Status::BadRequest);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
            Status::PayloadTooLarge
        );
        let long_uri = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(refused(long_uri.as_bytes()), Status::UriTooLong);
        let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(17000));
        assert_eq!(refused(big_head.as_bytes()), Status::HeadersTooLarge);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..70 {
            many.push_str(&format!("X{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(refused(many.as_bytes()), Status::HeadersTooLarge);
    }

    /// Request lines and framing from RFC 9112, and what each gets: `None`
    /// for a request that is served. Framing is judged before the method, so
    /// a POST with broken framing is 400, not 405.
    #[test]
    fn rfc_9112_request_lines_and_framing() {
        use Status::*;
        let table: &[(&str, &[u8], Option<Status>)] = &[
            ("a plain GET", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
            ("HTTP/1.0 needs no Host", b"GET / HTTP/1.0\r\n\r\n", None),
            ("bare LF line ends (§2.2 allows)", b"GET / HTTP/1.1\nHost: x\n\n", None),
            ("an empty line before the request line (§2.2)", b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
            ("§2.3: a malformed version", b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("§2.3: the name is case-sensitive", b"GET / http/1.1\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("§2.3: two digits", b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("§2.3: no version", b"GET /\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("a well-formed version not spoken", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Some(VersionNotSupported)),
            ("§3: two spaces", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("§3: a tab for a space", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", Some(BadRequest)),
            ("§3: methods are case-sensitive", b"get / HTTP/1.1\r\nHost: x\r\n\r\n", Some(NotImplemented)),
            ("§3.2: no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", Some(BadRequest)),
            ("§3.2: two Hosts", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", Some(BadRequest)),
            ("§5.1: space before the colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", Some(BadRequest)),
            ("§5.2: obsolete line folding", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", Some(BadRequest)),
            (
                "§6.1: Transfer-Encoding in HTTP/1.0",
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(BadRequest),
            ),
            (
                "§6.3: chunked not last, on a POST",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                Some(BadRequest),
            ),
            (
                "§6.3: chunked not last, on a GET",
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Some(BadRequest),
            ),
            (
                "§6.1: chunked twice, across lines",
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(BadRequest),
            ),
            (
                "§6.1: a coding under chunked we cannot undo",
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Some(NotImplemented),
            ),
            (
                "§6.3: both Content-Length and Transfer-Encoding, on a POST",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(BadRequest),
            ),
            (
                "§6.3: differing Content-Lengths",
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Some(BadRequest),
            ),
            ("§8.6: a signed Content-Length", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", Some(BadRequest)),
            (
                "framing before Host: a bad framing without Host is still 400",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
                Some(BadRequest),
            ),
            ("a chunked GET is framed and served", b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", None),
            ("a well-framed POST is 405", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", Some(MethodNotAllowed)),
        ];
        let mut wrong = Vec::new();
        for &(case, text, expected) in table {
            let got = match parse(text, &Limits::default()) {
                Parsed::Complete(..) => None,
                Parsed::Refused(r) => Some(r.status),
                Parsed::Partial => {
                    wrong.push(format!("{case}: incomplete"));
                    continue;
                }
            };
            if got != expected {
                wrong.push(format!("{case}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn refused_heads_are_skipped_only_when_framed() {
        let limits = Limits::default();
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET";
        assert_eq!(refused_head_extent(head, &limits), Some((head.len() - 3, true)));
        let close = b"POST / HTTP/1.0\r\n\r\n";
        assert_eq!(refused_head_extent(close, &limits), Some((close.len(), false)));
        let body_missing = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab";
        assert_eq!(refused_head_extent(body_missing, &limits), None);
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused_head_extent(chunked, &limits), None);
        let conflicting = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(refused_head_extent(conflicting, &limits), None);
    }

    #[test]
    fn partial_heads_wait() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHo", &Limits::default()), Parsed::Partial));
    }

    #[test]
    fn chunked_bodies_are_skipped_in_pieces() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 0..body.len() {
            let mut state = ChunkState::Size;
            let mut seen = 0;
            let mut pending = body[..split].to_vec();
            let mut fed = split;
            let done = loop {
                match skip_chunked(&pending, &mut state, &mut seen, 1 << 20).unwrap() {
                    ChunkProgress::Done(n) => break n + (fed - pending.len()),
                    ChunkProgress::NeedMore(n) => {
                        pending.drain(..n);
                        if fed == body.len() {
                            panic!("never finished at split {split}");
                        }
                        pending.push(body[fed]);
                        fed += 1;
                    }
                }
            };
            assert_eq!(&body[done..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        let cases: &[(&[u8], Status)] = &[
            (b"ffffffffffffffffff\r\n", Status::BadRequest),
            (b"10000000000000000\r\n", Status::BadRequest),
            (b"4\nWiki\r\n0\r\n\r\n", Status::BadRequest),
            (b"4\r\nWikiXX0\r\n\r\n", Status::BadRequest),
            (b"4\r\nWiki\n0\r\n\r\n", Status::BadRequest),
            (b"-4\r\n", Status::BadRequest),
            (b"4 x\r\n", Status::BadRequest),
            (b"fffffff\r\n", Status::PayloadTooLarge),
        ];
        for &(body, status) in cases {
            let (mut state, mut seen) = (ChunkState::Size, 0);
            let got = skip_chunked(body, &mut state, &mut seen, 1 << 20).map_err(|r| r.status);
            assert_eq!(got, Err(status), "{:?}", String::from_utf8_lossy(body));
        }
        let long_line = format!("4;{}\r\n", "x".repeat(2000));
        let (mut state, mut seen) = (ChunkState::Size, 0);
        assert!(skip_chunked(long_line.as_bytes(), &mut state, &mut seen, 1 << 20).is_err());
        let (mut state, mut seen) = (ChunkState::Size, 0);
        let ok = b"4 ;ext=\"v\"\r\nWiki\r\n0\r\n\r\n";
        assert_eq!(skip_chunked(ok, &mut state, &mut seen, 1 << 20), Ok(ChunkProgress::Done(ok.len())));
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), None, "20 digits refused");
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b""), None);
    }
}
