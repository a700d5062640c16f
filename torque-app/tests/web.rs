//! `torque web`, the real binary, on every backend, against curl and raw sockets.

mod support;

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::*;

fn web(backend: &str, root: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["web", "--path", path_str(root), "--listen", "tcp:0:interface=127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start(backend, &args, 1)
}

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn get_and_head(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    let out = stdout(&curl(&["-i", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 13\r\n"), "{out}");
    assert!(out.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{out}");
    assert!(out.contains("Last-Modified: ") && out.contains("ETag: \""), "{out}");
    assert!(out.ends_with("\r\n\r\nHello, world\n"), "{out}");
    let out = stdout(&curl(&["-I", &server.url("/hello.txt")]));
    assert!(out.contains("Content-Length: 13\r\n") && out.ends_with("\r\n\r\n"), "HEAD has no body: {out}");
    let out = stdout(&curl(&["-i", &server.url("/page.html")]));
    assert!(out.contains("Content-Type: text/html; charset=utf-8\r\n"), "{out}");
    let out = stdout(&curl(&["-i", &server.url("/data.bin123")]));
    assert!(out.contains("Content-Type: application/octet-stream\r\n"), "{out}");
    let out = stdout(&curl(&["-i", &server.url("/missing.txt")]));
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    // HEAD answers carry no body, errors, redirects and listings included, so
    // the next response on the connection is read right.
    let mut stream = server.connect();
    stream
        .write_all(
            b"HEAD /missing.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /docs HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /list/ HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream);
    for status in [404, 301, 200] {
        let response = read_response(&mut reader, true).unwrap();
        assert_eq!(response.status, status);
        assert_ne!(response.header("content-length"), Some("0"), "HEAD gives the GET length");
    }
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"Hello, world\n");
    // The access log has a line per request.
    let deadline = Instant::now() + PATIENCE;
    while !server.log().contains("GET /missing.txt HTTP/1.1\\\" 404") {
        assert!(Instant::now() < deadline, "no access log line: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keep_alive_and_pipelining(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    // curl reuses one connection for several URLs.
    let out = curl(&[
        "-v",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &server.url("/hello.txt"),
        &server.url("/page.html"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Re-using existing connection"), "{err}");
    // Three requests in one write come back in order on one connection.
    let mut stream = server.connect();
    stream
        .write_all(
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /page.html HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream);
    let first = read_response(&mut reader, false).unwrap();
    assert_eq!((first.status, &first.body[..]), (200, &b"Hello, world\n"[..]));
    let second = read_response(&mut reader, true).unwrap();
    assert_eq!((second.status, second.header("content-length")), (200, Some("9")));
    assert_eq!(read_response(&mut reader, false).unwrap().status, 404);
    let last = read_response(&mut reader, false).unwrap();
    assert_eq!((last.status, last.header("connection")), (200, Some("close")));
    assert_eq!(last.body, b"<p>hi</p>");
    assert!(closed_by_server(&mut reader));
    // A head written a byte at a time is answered once it is complete.
    let mut stream = server.connect();
    stream.set_nodelay(true).unwrap();
    for byte in b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" {
        stream.write_all(&[*byte]).unwrap();
    }
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"Hello, world\n");
    // HTTP/1.0 closes unless asked not to.
    let (response, mut reader) = raw_request(&server, b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 200);
    assert!(closed_by_server(&mut reader));
    let (response, mut reader) =
        raw_request(&server, b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(response.header("connection"), Some("keep-alive"));
    reader.get_mut().write_all(b"GET /page.html HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"<p>hi</p>");
}

fn conditional_requests(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    let (first, _) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    let out =
        stdout(&curl(&["-i", "-H", &format!("If-None-Match: \"other\", {etag}"), &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
    assert!(out.contains(&format!("ETag: {etag}\r\n")) && !out.contains("Hello"), "{out}");
    let out =
        stdout(&curl(&["-i", "-H", &format!("If-Modified-Since: {modified}"), &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
    let out = stdout(&curl(&["-i", "-H", "If-None-Match: \"stale\"", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let out = stdout(&curl(&[
        "-i",
        "-H",
        "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
        &server.url("/hello.txt"),
    ]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

fn byte_ranges(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    let out = stdout(&curl(&["-i", "-r", "0-4", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
    assert!(out.contains("Content-Range: bytes 0-4/13\r\n") && out.ends_with("\r\n\r\nHello"), "{out}");
    let out = stdout(&curl(&["-i", "-r", "-6", &server.url("/hello.txt")]));
    assert!(out.ends_with("\r\n\r\nworld\n"), "{out}");
    let out = stdout(&curl(&["-i", "-r", "7-", &server.url("/hello.txt")]));
    assert!(out.contains("Content-Range: bytes 7-12/13\r\n"), "{out}");
    let out = stdout(&curl(&["-i", "-r", "100-200", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"), "{out}");
    assert!(out.contains("Content-Range: bytes */13\r\n"), "{out}");
    // Several ranges: the whole file (allowed), not a multipart body.
    let out = stdout(&curl(&["-i", "-r", "0-1,3-4", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    // Positions past u64: the first is past the end (416), the last clamps (206).
    let (response, _) = raw_request(
        &server,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=999999999999999999999-\r\n\r\n",
    );
    assert_eq!(response.status, 416);
    let (response, _) = raw_request(
        &server,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-18446744073709551615\r\n\r\n",
    );
    assert_eq!((response.status, response.header("content-range")), (206, Some("bytes 0-12/13")));
    // If-Range with a stale validator: the whole file.
    let out = stdout(&curl(&["-i", "-r", "0-4", "-H", "If-Range: \"stale\"", &server.url("/hello.txt")]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

fn directories(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    let out = stdout(&curl(&["-i", &server.url("/docs")]));
    assert!(
        out.starts_with("HTTP/1.1 301 Moved Permanently\r\n") && out.contains("Location: /docs/\r\n"),
        "{out}"
    );
    let out = stdout(&curl(&["-i", "--path-as-is", &server.url("//docs")]));
    assert!(out.contains("Location: /docs/\r\n"), "never a protocol-relative //host: {out}");
    let out = stdout(&curl(&["-L", &server.url("/docs")]));
    assert_eq!(out, "<h1>docs</h1>", "index.html served");
    let out = stdout(&curl(&["-i", &server.url("/list/")]));
    assert!(out.contains("Content-Type: text/html; charset=utf-8"), "{out}");
    assert!(out.contains("&lt;b&gt;&amp;amp;.txt") && !out.contains("<b>"), "names escaped: {out}");
    assert!(out.contains("href=\"./plain.txt\""), "{out}");
    let listed_href = "/list/%3Cb%3E&amp;.txt";
    let out = stdout(&curl(&["-i", &server.url(listed_href)]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "the listed file can be fetched: {out}");
    let server = web(backend, dir.path(), &["--no-listings"]);
    let out = stdout(&curl(&["-i", &server.url("/list/")]));
    assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
}

fn no_escape_from_root(backend: &str) {
    let dir = site();
    let (_outside, secret) = outside_file();
    std::os::unix::fs::symlink(&secret, dir.path().join("link-out")).unwrap();
    std::os::unix::fs::symlink(secret.parent().unwrap(), dir.path().join("dir-out")).unwrap();
    std::os::unix::fs::symlink("hello.txt", dir.path().join("link-in")).unwrap();
    let server = web(backend, dir.path(), &[]);
    for path in
        ["/../etc/passwd", "/%2e%2e/etc/passwd", "/docs/%2E%2E/%2e%2e/etc/passwd", "/docs/..%2f..%2fetc"]
    {
        let out = stdout(&curl(&["-i", "--path-as-is", &server.url(path)]));
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{path}: {out}");
    }
    for path in ["/link-out", "/dir-out/secret.txt"] {
        let out = stdout(&curl(&["-i", &server.url(path)]));
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{path}: {out}");
        assert!(!out.contains("secret\n") && !out.ends_with("secret"), "{out}");
    }
    let out = stdout(&curl(&[&server.url("/link-in")]));
    assert_eq!(out, "Hello, world\n", "a symlink inside the root is fine");
    let (response, _) = raw_request(&server, b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 400);
    let allowed = web(backend, dir.path(), &["--follow-symlinks"]);
    assert_eq!(stdout(&curl(&[&allowed.url("/link-out")])), "secret");
}

/// Names starting with `.` (`.git/`, `.env`) are 404 and unlisted unless
/// `--serve-hidden` asks for them: `torque web --path .` in a source tree
/// must not publish its repository.
fn hidden_files_are_not_served(backend: &str) {
    let dir = site();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/config"), "[core]\n").unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET=1\n").unwrap();
    std::fs::write(dir.path().join("docs/.hidden"), "x").unwrap();
    let server = web(backend, dir.path(), &[]);
    for path in ["/.env", "/.git/config", "/.git/", "/.git", "/docs/.hidden", "/%2egit/config"] {
        let out = stdout(&curl(&["-i", "--path-as-is", &server.url(path)]));
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {out}");
    }
    let listing = stdout(&curl(&[&server.url("/")]));
    assert!(!listing.contains(".env") && !listing.contains(".git"), "{listing}");
    assert!(listing.contains("hello.txt"), "{listing}");
    let shown = web(backend, dir.path(), &["--serve-hidden"]);
    assert_eq!(stdout(&curl(&[&shown.url("/.env")])), "SECRET=1\n");
    assert!(stdout(&curl(&[&shown.url("/")])).contains(".git/"));
}

fn malformed_requests(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &[]);
    let cases: [(&[u8], u16); 14] = [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        // RFC 9112: framing first. No chunked last: 400, whatever the method.
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400),
        // A malformed chunked body gets one answer, 400, not the file's 200 first.
        (
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            400,
        ),
        (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
        (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n", 413),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    ];
    for (request, status) in cases {
        let (response, mut reader) = raw_request(&server, request);
        assert_eq!(response.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(response.header("connection"), Some("close"));
        // One response, then the close: nothing else comes first.
        let mut rest = Vec::new();
        match reader.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(rest.is_empty(), "a second response: {:?}", String::from_utf8_lossy(&rest));
    }
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    assert_eq!(raw_request(&server, long_uri.as_bytes()).0.status, 414);
    let big_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000));
    assert_eq!(raw_request(&server, big_header.as_bytes()).0.status, 431);
    let out = stdout(&curl(&["-i", "-H", "Transfer-Encoding: gzip", &server.url("/")]));
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    // HTTP/1.0 asked for nothing more: a 405 closes.
    let (response, mut reader) = raw_request(&server, b"POST / HTTP/1.0\r\n\r\n");
    assert_eq!((response.status, response.header("connection")), (405, Some("close")));
    assert!(closed_by_server(&mut reader));
    // A target with UTF-8 in it is just a path.
    let (response, _) = raw_request(&server, "GET /aaaaaé HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes());
    assert_eq!(response.status, 404);
    let (response, _) =
        raw_request(&server, "GET http://hé/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes());
    assert_eq!(response.status, 200);
    let out = stdout(&curl(&["-i", &server.url("/%zz")]));
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    // A 405 keeps the connection usable; so does a GET with a body.
    let (response, mut reader) =
        raw_request(&server, b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!((response.status, response.header("allow")), (405, Some("GET, HEAD")));
    reader.get_mut().write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nxy").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    reader
        .get_mut()
        .write_all(
            b"GET /page.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
    reader.get_mut().write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"<p>hi</p>");
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"Hello, world\n");
}

fn slow_and_idle_clients_are_cut_off(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &["--header-timeout", "1s", "--idle-timeout", "2s"]);
    // Slowloris: a header byte now and then never completes a request.
    let mut stream = server.connect();
    stream.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if stream.write_all(b"X-Slow: y\r\n").is_err() {
            break;
        }
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        stream.set_nonblocking(false).unwrap();
        assert!(started.elapsed() < PATIENCE, "a slow client held the connection");
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text}");
    // An idle connection is closed.
    let mut idle = server.connect();
    assert!(closed_by_server(&mut idle));
    // And a keep-alive connection after its response.
    let (response, mut reader) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert!(closed_by_server(&mut reader));
}

fn connection_cap(backend: &str) {
    let dir = site();
    let server = web(backend, dir.path(), &["--max-connections", "2"]);
    let (first, _keep1) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let (second, _keep2) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((first.status, second.status), (200, 200));
    let mut third = BufReader::new(server.connect());
    let refused = read_response(&mut third, false).unwrap();
    assert_eq!(refused.status, 503);
    assert!(closed_by_server(&mut third));
    // By default the limit is one the reactor can reach with room for 503s:
    // on select, about half of FD_SETSIZE.
    let default = web(backend, dir.path(), &[]);
    let deadline = Instant::now() + PATIENCE;
    let limit = loop {
        let log = default.log();
        if let Some(at) = log.find("\"max_connections\":") {
            let digits: String = log[at + 18..].chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<usize>().unwrap();
        }
        assert!(Instant::now() < deadline, "no max_connections in the log: {log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    if backend == "select" {
        assert!((100..=480).contains(&limit), "select's default limit: {limit}");
    } else {
        assert!(limit >= 100, "{limit}");
    }
}

/// A sparse 128 MiB file with marks at known places.
fn big_file(root: &std::path::Path) -> u64 {
    let len = 128 << 20;
    let file = std::fs::File::create(root.join("big.bin")).unwrap();
    file.set_len(len).unwrap();
    use std::os::unix::fs::FileExt;
    for mark in [0, 1 << 20, 77 << 20, len - 5] {
        file.write_all_at(b"MARK!", mark).unwrap();
    }
    len
}

fn check_big_body(body: &[u8], len: u64) {
    assert_eq!(body.len() as u64, len);
    for mark in [0, 1 << 20, 77 << 20, len - 5] {
        assert_eq!(&body[mark as usize..mark as usize + 5], b"MARK!", "at {mark}");
    }
    assert!(body[10..1000].iter().all(|&b| b == 0));
}

fn large_files_stream(backend: &str) {
    let dir = site();
    let len = big_file(dir.path());
    let server = web(backend, dir.path(), &[]);
    let out = curl(&["-o", "-", &server.url("/big.bin")]);
    assert!(out.status.success());
    check_big_body(&out.stdout, len);
    // Ranged, and pipelined behind a big body.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1048576-1048580\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"MARK!");
    check_big_body(&read_response(&mut reader, false).unwrap().body, len);
    assert_eq!(read_response(&mut reader, false).unwrap().body, b"Hello, world\n");
    // The file was never held in memory whole.
    let peak = server.peak_rss_kib();
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB serving a {} MiB file", len >> 20);
    // Copying instead of sendfile: the same bytes, still streamed.
    let copying = web(backend, dir.path(), &["--no-sendfile"]);
    let out = curl(&["-o", "-", "-r", "1048576-", &copying.url("/big.bin")]);
    assert!(out.status.success());
    assert_eq!(out.stdout.len() as u64, len - (1 << 20));
    assert_eq!(&out.stdout[..5], b"MARK!");
    assert_eq!(&out.stdout[(76 << 20)..(76 << 20) + 5], b"MARK!");
    let peak = copying.peak_rss_kib();
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB copying a {} MiB file", len >> 20);
}

/// Downloads that end the connection (HTTP/1.0, `Connection: close`) arrive
/// whole and give their connection back.
fn closing_downloads_complete_and_free_their_slot(backend: &str) {
    let dir = site();
    let len = big_file(dir.path());
    let server = web(backend, dir.path(), &["--max-connections", "1"]);
    for _ in 0..3 {
        let out = curl(&["--http1.0", "-o", "-", &server.url("/big.bin")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        check_big_body(&out.stdout, len);
        let (response, mut reader) =
            raw_request(&server, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(response.status, 200);
        check_big_body(&response.body, len);
        assert!(closed_by_server(&mut reader));
    }
    let (response, _) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200, "the only slot is free again");
}

/// A client that pipelines requests and never reads neither grows the server's
/// memory nor keeps its connection past the idle timeout.
fn pipelining_without_reading_is_bounded(backend: &str) {
    let dir = site();
    std::fs::write(dir.path().join("48k.bin"), vec![b'x'; 48 * 1024]).unwrap();
    let server = web(backend, dir.path(), &["--max-connections", "1", "--idle-timeout", "1s"]);
    let flood = server.connect();
    let requests = b"GET /48k.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let writer = {
        let mut stream = flood.try_clone().unwrap();
        std::thread::spawn(move || {
            // Blocks once the server stops reading; fails once it gives up.
            let _ = stream.write_all(&requests);
        })
    };
    // The flooding connection is cut (idle timeout, nothing read), freeing
    // the only slot.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (response, _) = raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(Instant::now() < deadline, "a client that never reads kept its connection");
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak = server.peak_rss_kib();
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB for ~94 MiB of unread responses");
    let _ = flood.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
}

fn sigterm_finishes_in_flight_requests(backend: &str) {
    let dir = site();
    let len = big_file(dir.path());
    let server = web(backend, dir.path(), &["--shutdown-timeout", "60s", "--workers", "1"]);
    finish_in_flight_then_stop(server, len);
}

/// `--workers 3`: three reactor threads serve the one port (every request
/// answered, whichever takes it), and SIGTERM stops all of them gracefully.
fn workers_serve_one_port_and_stop_gracefully(backend: &str) {
    let dir = site();
    let len = big_file(dir.path());
    let server = web(backend, dir.path(), &["--shutdown-timeout", "60s", "--workers", "3"]);
    wait_for_log(&server, "\"workers\":3");
    wait_for_log(&server, "one reactor per worker thread");
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap();
    let names: Vec<String> = threads
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    for worker in ["torque-worker-1", "torque-worker-2"] {
        assert!(names.iter().any(|n| n == worker), "{names:?}");
    }
    for _ in 0..24 {
        let (response, _) =
            raw_request(&server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(response.status, 200);
    }
    finish_in_flight_then_stop(server, len);
}

/// Waits (bounded) until the server's log contains `text`.
fn wait_for_log(server: &Server, text: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !server.log().contains(text) {
        assert!(Instant::now() < deadline, "no {text} in the log: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A download in flight and an idle connection, then SIGTERM: the idle one is
/// closed at once, new connections are refused, the download completes and
/// the server exits 0.
fn finish_in_flight_then_stop(mut server: Server, len: u64) {
    let addr = server.addr();
    let mut stream = server.connect();
    stream.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut idle = server.connect();
    let mut reader = BufReader::new(stream);
    // Read a little, so the response is in flight, then ask the server to stop.
    let mut first = [0u8; 4096];
    reader.read_exact(&mut first).unwrap();
    server.signal(Signal::TERM);
    // The idle keep-alive connection is closed at once; new ones are refused.
    assert!(closed_by_server(&mut idle));
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The in-flight body still arrives whole, slowly read.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(all.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // (read_to_end returning means the server closed the connection after it.)
    check_big_body(&all[head_end..], len);
    let status = server.wait();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
}

fn second_signal_exits_at_once(backend: &str) {
    let dir = site();
    big_file(dir.path());
    let mut server = web(backend, dir.path(), &["--shutdown-timeout", "10m"]);
    // A response the client never reads keeps the first shutdown waiting.
    let mut stuck = server.connect();
    stuck.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 64];
    stuck.read_exact(&mut head).unwrap();
    server.signal(Signal::TERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.child.try_wait().unwrap().is_none(), "still finishing the response");
    server.signal(Signal::INT);
    let status = server.wait();
    assert_eq!(status.code(), Some(128 + 2), "log:\n{}", server.log());
}

fn serves_over_a_unix_socket(backend: &str) {
    let dir = site();
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("web.sock");
    let endpoint = format!("unix:{}", socket.display());
    let mut child = std::process::Command::new(binary())
        .args(["-r", backend, "web", "--path", path_str(dir.path()), "--listen", &endpoint])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the socket is bound and listening, curl fails; retry (bounded).
    let deadline = Instant::now() + PATIENCE;
    let out = loop {
        let out = curl(&["--unix-socket", path_str(&socket), "http://localhost/hello.txt"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(stdout(&out), "Hello, world\n");
}

app_main! {
    per_backend {
        [UnixSockets] {
            serves_over_a_unix_socket,
        }
        [Tcp] {
            get_and_head,
            keep_alive_and_pipelining,
            conditional_requests,
            byte_ranges,
            directories,
            no_escape_from_root,
            hidden_files_are_not_served,
            malformed_requests,
            slow_and_idle_clients_are_cut_off,
            connection_cap,
            large_files_stream,
            closing_downloads_complete_and_free_their_slot,
            pipelining_without_reading_is_bounded,
            sigterm_finishes_in_flight_requests,
            workers_serve_one_port_and_stop_gracefully,
            second_signal_exits_at_once,
        }
    }
}
