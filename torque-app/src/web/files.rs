//! From a request target to an open file under the root: decoding, refusing
//! escapes, opening without following symlinks out of the root, describing the
//! file (type, validators), and the small-file cache.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::response::Status;

/// A request path, percent-decoded and checked.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodedPath {
    /// Relative to the root: no leading `/`, no `.` or `..` segments.
    pub relative: PathBuf,
    /// The target's path ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
}

/// The path part of a request target: before any `?`, with an absolute-form
/// target's scheme and authority removed.
pub fn path_of(target: &str) -> &str {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    for scheme in ["http://", "https://"] {
        // Compared as bytes: a target may hold UTF-8, and slicing a str inside
        // a character would panic. After an ASCII prefix, slicing is safe.
        if path.as_bytes().get(..scheme.len()).is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes())) {
            let rest = &path[scheme.len()..];
            return rest.find('/').map_or("/", |slash| &rest[slash..]);
        }
    }
    path
}

/// Decodes and checks a target's path. `..` in any form (including `%2e%2e`) is
/// refused with 403 rather than resolved, so no request can name a file above
/// the root; malformed escapes and NUL bytes are 400.
pub fn decode_path(target: &str) -> Result<DecodedPath, Status> {
    let path = path_of(target);
    if !path.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let bytes = percent_decode(path.as_bytes()).ok_or(Status::BadRequest)?;
    if bytes.contains(&0) {
        return Err(Status::BadRequest);
    }
    let mut relative = PathBuf::new();
    for segment in bytes.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Status::Forbidden),
            _ => relative.push(crate::platform::path_segment(segment).ok_or(Status::Forbidden)?),
        }
    }
    Ok(DecodedPath { relative, trailing_slash: bytes.ends_with(b"/") })
}

/// Strict percent-decoding: `%` must be followed by two hex digits.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'%') {
        return Some(input.to_vec());
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether a path has a component starting with `.` (a hidden file or
/// directory: `.git/config`, `.env`).
pub fn is_hidden(relative: &Path) -> bool {
    relative.components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
}

/// How an open attempt failed, as a status.
pub fn status_for(error: &io::Error) -> Status {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            return Status::NotFound;
        }
        io::ErrorKind::PermissionDenied => return Status::Forbidden,
        io::ErrorKind::OutOfMemory => return Status::Unavailable,
        _ => {}
    }
    #[cfg(unix)]
    match error.raw_os_error() {
        Some(libc_errno::ENOENT | libc_errno::ENOTDIR | libc_errno::ENAMETOOLONG) => return Status::NotFound,
        // EXDEV: the path left the root (a symlink out of it); ELOOP: a symlink loop.
        Some(libc_errno::EACCES | libc_errno::EPERM | libc_errno::EXDEV | libc_errno::ELOOP) => {
            return Status::Forbidden;
        }
        // Out of descriptors or memory: the server is overloaded, not broken.
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOMEM) => return Status::Unavailable,
        _ => {}
    }
    // The root check's refusal where the system cannot open beneath a
    // directory (`open_checked`), on every platform.
    if error.kind() == io::ErrorKind::CrossesDevices {
        return Status::Forbidden;
    }
    Status::InternalError
}

#[cfg(unix)]
use libc as libc_errno;

/// The served directory, opened once.
#[derive(Debug)]
pub struct Root {
    dir: File,
    path: PathBuf,
    follow_symlinks_out: bool,
}

impl Root {
    /// Opens `path` as the root. `follow_symlinks_out` allows symlinks that
    /// point outside it.
    pub fn open(path: &Path, follow_symlinks_out: bool) -> io::Result<Root> {
        let path = path.canonicalize()?;
        let dir = crate::platform::open_for_serving(&path)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(Root { dir, path, follow_symlinks_out })
    }

    /// The root's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` (already checked by [`decode_path`]) without leaving the
    /// root: on Linux `openat2(RESOLVE_BENEATH)` makes the kernel refuse any
    /// symlink or path that resolves outside it (EXDEV); elsewhere the opened
    /// path is canonicalized and compared. Non-blocking, so a FIFO cannot hang
    /// the server.
    pub fn open_file(&self, relative: &Path) -> io::Result<File> {
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        if let Some(file) = crate::platform::open_beneath(&self.dir, relative, self.follow_symlinks_out)? {
            return Ok(file);
        }
        self.open_checked(relative)
    }

    fn open_checked(&self, relative: &Path) -> io::Result<File> {
        let full = self.path.join(relative);
        if !self.follow_symlinks_out && !full.canonicalize()?.starts_with(&self.path) {
            return Err(io::Error::new(
                io::ErrorKind::CrossesDevices,
                "the path leaves the served directory",
            ));
        }
        crate::platform::open_for_serving(&full)
    }
}

/// What the server says about a file: validators, type, size.
#[derive(Debug)]
pub struct FileInfo {
    /// Size in bytes.
    pub len: u64,
    /// Last modification, whole seconds since the epoch (HTTP dates have no finer).
    pub modified_secs: u64,
    /// The entity tag, with its quotes: `"inode-size-mtime"` in hex.
    pub etag: String,
    /// The `Last-Modified` value.
    pub last_modified: String,
    /// Pre-rendered `Content-Type`, `Last-Modified`, `ETag` and `Accept-Ranges`
    /// lines, so a response head is a few copies.
    pub headers: Vec<u8>,
}

impl FileInfo {
    /// Describes an open regular file named `name` (for its content type).
    pub fn new(name: &Path, meta: &std::fs::Metadata) -> FileInfo {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let modified_secs = modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (inode, nanos) = crate::platform::file_identity(meta);
        let etag = format!("\"{:x}-{:x}-{:x}{:09x}\"", inode, meta.len(), modified_secs, nanos);
        let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified_secs));
        let content_type = content_type(name);
        let headers = format!(
            "Content-Type: {content_type}\r\nLast-Modified: {last_modified}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n"
        )
        .into_bytes();
        FileInfo { len: meta.len(), modified_secs, etag, last_modified, headers }
    }
}

/// The content type for a file name, from its extension; text types say UTF-8.
pub fn content_type(name: &Path) -> String {
    match mime_guess::from_path(name).first_raw() {
        Some(mime) if mime.starts_with("text/") => format!("{mime}; charset=utf-8"),
        Some(mime) => mime.to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// A resolved regular file: its description and, if small, its bytes.
#[derive(Debug)]
pub struct FileEntry {
    /// Validators, type and size.
    pub info: FileInfo,
    /// The whole content, for files up to the cache's size limit.
    pub body: Option<Vec<u8>>,
    /// When it was loaded (reactor time), for the cache's freshness check.
    pub loaded_at: Duration,
}

impl FileEntry {
    /// Describes `file` (with its metadata `meta`) and, if it is at most
    /// `small` bytes, reads it whole.
    pub fn load(
        file: &mut File,
        name: &Path,
        meta: &std::fs::Metadata,
        small: u64,
        now: Duration,
    ) -> io::Result<FileEntry> {
        let info = FileInfo::new(name, meta);
        let body = if info.len <= small {
            let mut body = Vec::with_capacity(info.len as usize);
            file.read_to_end(&mut body)?;
            if body.len() as u64 != info.len {
                // Changed while we read it: describe what we actually have.
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file changed while being read"));
            }
            Some(body)
        } else {
            None
        };
        Ok(FileEntry { info, body, loaded_at: now })
    }
}

/// Small files by request path, each trusted for `ttl` after loading (like
/// nginx's `open_file_cache_valid`): a hit costs no system call at all. Bounded
/// in entries and bytes; when full it starts over.
#[derive(Debug)]
pub struct FileCache {
    entries: HashMap<Box<str>, Rc<FileEntry>>,
    bytes: usize,
    ttl: Duration,
}

/// Most entries the cache holds.
const CACHE_ENTRIES: usize = 4096;
/// Most bytes of content the cache holds.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl FileCache {
    /// A cache trusting entries for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> FileCache {
        FileCache { entries: HashMap::new(), bytes: 0, ttl }
    }

    /// The entry for `path`, if loaded less than `ttl` ago.
    pub fn get(&mut self, path: &str, now: Duration) -> Option<Rc<FileEntry>> {
        let entry = self.entries.get(path)?;
        if now.saturating_sub(entry.loaded_at) < self.ttl {
            return Some(Rc::clone(entry));
        }
        let stale = self.entries.remove(path)?;
        self.bytes -= stale.body.as_ref().map_or(0, Vec::len);
        None
    }

    /// Remembers a small file's entry under `path`.
    pub fn insert(&mut self, path: &str, entry: Rc<FileEntry>) {
        let Some(body) = &entry.body else { return };
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= CACHE_ENTRIES || self.bytes + body.len() > CACHE_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += body.len();
        if let Some(old) = self.entries.insert(path.into(), entry) {
            self.bytes -= old.body.as_ref().map_or(0, Vec::len);
        }
    }
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks for
/// this header) or is `*`.
pub fn etag_matches(header: &[u8], etag: &str) -> bool {
    let ours = etag.as_bytes();
    header.split(|&b| b == b',').map(super::request::trim).any(|tag| {
        let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
        tag == b"*" || tag == ours
    })
}

/// Whether the file was not modified after the `If-Modified-Since` date. An
/// unparsable date is ignored (the full response is sent).
pub fn not_modified_since(header: &[u8], modified_secs: u64) -> bool {
    let Ok(text) = std::str::from_utf8(header) else { return false };
    match httpdate::parse_http_date(text) {
        Ok(date) => date.duration_since(UNIX_EPOCH).is_ok_and(|since| modified_secs <= since.as_secs()),
        Err(_) => false,
    }
}

/// Whether an `If-Range` value still names this file: a strong ETag match or
/// the exact Last-Modified date.
pub fn if_range_matches(header: &[u8], info: &FileInfo) -> bool {
    if header.starts_with(b"\"") {
        return header == info.etag.as_bytes();
    }
    if header.starts_with(b"W/") {
        return false;
    }
    let Ok(text) = std::str::from_utf8(header) else { return false };
    httpdate::parse_http_date(text).is_ok_and(|date: SystemTime| {
        date.duration_since(UNIX_EPOCH).is_ok_and(|d| d.as_secs() == info.modified_secs)
    })
}

/// A single byte range, resolved against the file's length: inclusive `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range` (absent, malformed or several ranges): send it all.
    Whole,
    /// Send `start..=end`.
    Part(u64, u64),
    /// The range lies beyond the end: 416.
    Unsatisfiable,
}

/// Reads a `Range` header for a file of `len` bytes. Only one `bytes` range is
/// served; several ranges get the whole file (which RFC 9110 allows).
pub fn parse_range(header: &[u8], len: u64) -> RangeRequest {
    let Ok(text) = std::str::from_utf8(header) else { return RangeRequest::Whole };
    let Some((unit, spec)) = text.split_once('=') else { return RangeRequest::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Whole };
    // Positions are digits of any length: one past u64 is simply past any
    // file's end (RFC 9110 §14.1.1), so it saturates rather than failing.
    let number = |s: &str| {
        let digits = s.trim().as_bytes();
        (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then(|| {
            digits.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0')))
        })
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(len.saturating_sub(n), len - 1),
            None => RangeRequest::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a >= len => RangeRequest::Unsatisfiable,
            Some(a) => RangeRequest::Part(a, len - 1),
            None => RangeRequest::Whole,
        },
        // `a-b`
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => RangeRequest::Whole,
            (Some(a), Some(_)) if a >= len => RangeRequest::Unsatisfiable,
            (Some(a), Some(b)) => RangeRequest::Part(a, b.min(len - 1)),
            _ => RangeRequest::Whole,
        },
        (true, true) => RangeRequest::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_and_refuse_escapes() {
        let ok = |t: &str| decode_path(t).unwrap();
        assert_eq!(ok("/a/b.txt").relative, PathBuf::from("a/b.txt"));
        assert_eq!(ok("/a%20b/./c?x=1").relative, PathBuf::from("a b/c"));
        assert!(ok("/dir/").trailing_slash);
        assert_eq!(ok("http://host:80/x").relative, PathBuf::from("x"));
        assert_eq!(ok("/aaaaaé/ü").relative, PathBuf::from("aaaaaé/ü"), "non-ASCII never panics");
        assert_eq!(path_of("HTTPS://h"), "/");
        assert_eq!(ok("/").relative, PathBuf::new());
        assert_eq!(decode_path("/../etc/passwd"), Err(Status::Forbidden));
        assert_eq!(decode_path("/a/%2e%2e/%2E%2E/etc"), Err(Status::Forbidden));
        assert_eq!(decode_path("/a/..%2f..%2fetc"), Err(Status::Forbidden));
        assert_eq!(decode_path("/a%00b"), Err(Status::BadRequest));
        assert_eq!(decode_path("/a%zz"), Err(Status::BadRequest));
        assert_eq!(decode_path("/a%2"), Err(Status::BadRequest));
        assert_eq!(decode_path("a"), Err(Status::BadRequest));
    }

    #[test]
    fn out_of_descriptors_is_unavailable() {
        for errno in [libc::EMFILE, libc::ENFILE] {
            assert_eq!(status_for(&io::Error::from_raw_os_error(errno)), Status::Unavailable);
        }
        assert_eq!(status_for(&io::Error::from_raw_os_error(libc::EIO)), Status::InternalError);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-4", 10), RangeRequest::Part(0, 4));
        assert_eq!(parse_range(b"bytes=5-", 10), RangeRequest::Part(5, 9));
        assert_eq!(parse_range(b"bytes=-3", 10), RangeRequest::Part(7, 9));
        assert_eq!(parse_range(b"bytes=-30", 10), RangeRequest::Part(0, 9));
        assert_eq!(parse_range(b"bytes=2-100", 10), RangeRequest::Part(2, 9));
        assert_eq!(parse_range(b"bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-0", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=5-2", 10), RangeRequest::Whole);
        assert_eq!(parse_range(b"bytes=0-1,3-4", 10), RangeRequest::Whole);
        assert_eq!(parse_range(b"items=0-1", 10), RangeRequest::Whole);
        assert_eq!(parse_range(b"bytes=x-1", 10), RangeRequest::Whole);
        // Positions past u64: the first is past the end (416), the last clamps.
        assert_eq!(parse_range(b"bytes=999999999999999999999-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-18446744073709551615", 10), RangeRequest::Part(0, 9));
        assert_eq!(parse_range(b"bytes=0-99999999999999999999999", 10), RangeRequest::Part(0, 9));
        assert_eq!(parse_range(b"bytes=-99999999999999999999999", 10), RangeRequest::Part(0, 9));
        assert_eq!(parse_range(b"bytes=+1-2", 10), RangeRequest::Whole);
    }

    #[test]
    fn validators() {
        assert!(etag_matches(b"\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches(b"*", "\"b\""));
        assert!(!etag_matches(b"\"a\"", "\"b\""));
        assert!(not_modified_since(b"Sun, 06 Nov 1994 08:49:37 GMT", 784111777));
        assert!(!not_modified_since(b"Sun, 06 Nov 1994 08:49:37 GMT", 784111778));
        assert!(!not_modified_since(b"yesterday", 0));
    }
}
