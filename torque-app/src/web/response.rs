//! Status codes, response heads and the cached `Date` header.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The statuses the file server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200
    Ok,
    /// 206
    PartialContent,
    /// 301
    MovedPermanently,
    /// 304
    NotModified,
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 413
    PayloadTooLarge,
    /// 414
    UriTooLong,
    /// 416
    RangeNotSatisfiable,
    /// 431
    HeadersTooLarge,
    /// 500
    InternalError,
    /// 501
    NotImplemented,
    /// 503
    Unavailable,
    /// 505
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::NotImplemented => 501,
            Status::Unavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The status line, without the version: `"200 OK"`.
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::PartialContent => "206 Partial Content",
            Status::MovedPermanently => "301 Moved Permanently",
            Status::NotModified => "304 Not Modified",
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::PayloadTooLarge => "413 Content Too Large",
            Status::UriTooLong => "414 URI Too Long",
            Status::RangeNotSatisfiable => "416 Range Not Satisfiable",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::InternalError => "500 Internal Server Error",
            Status::NotImplemented => "501 Not Implemented",
            Status::Unavailable => "503 Service Unavailable",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }

    /// Whether the connection must close after this response: the request could
    /// not be framed, so what follows it on the connection cannot be trusted.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::PayloadTooLarge
                | Status::UriTooLong
                | Status::HeadersTooLarge
                | Status::NotImplemented
                | Status::Unavailable
                | Status::VersionNotSupported
        )
    }
}

/// The `Date` header value, formatted once per second (RFC 9110 wants it on every
/// response; formatting it per request would cost more than the rest of a small
/// response's head).
struct DateCache {
    second: u64,
    text: String,
}

thread_local! {
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache { second: u64::MAX, text: String::new() }) };
}

/// Appends `Date: <now>\r\n` to `out`.
pub fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    DATE.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.second != second {
            cache.second = second;
            cache.text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(cache.text.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// How the response ends the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: say nothing, keep the connection.
    KeepAlive11,
    /// HTTP/1.0 client that asked for keep-alive: say so.
    KeepAlive10,
    /// Close after this response.
    Close,
}

/// Writes a status line, `Date`, `Server` and the connection header into `out`
/// (cleared first). The caller adds its own headers and the blank line.
pub fn start_head(out: &mut Vec<u8>, status: Status, persistence: Persistence) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.line().as_bytes());
    out.extend_from_slice(b"\r\nServer: torque\r\n");
    write_date(out);
    match persistence {
        Persistence::KeepAlive11 => {}
        Persistence::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
}

/// Appends `Content-Length: n\r\n`.
pub fn content_length(out: &mut Vec<u8>, n: u64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "Content-Length: {n}\r\n");
}

/// The short plain-text body sent with an error status.
pub fn error_body(status: Status) -> String {
    format!("{}\n", status.line())
}
