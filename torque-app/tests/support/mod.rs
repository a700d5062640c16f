//! Running the real `torque` binary and talking to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One test of the `torque` command, run once per backend compiled in (with
/// `-r NAME`, passed as the argument) as `name::BACKEND`; on a backend that
/// lacks one of `needs` the instance asserts its "unsupported" error instead.
#[derive(Clone, Copy)]
pub struct AppCase {
    pub name: &'static str,
    pub run: fn(&str),
    pub needs: &'static [torque::Capability],
}

/// This test binary's `main` (it has `harness = false`): the per-backend
/// cases in groups by what they need, then tests that run once.
///
/// ```ignore
/// app_main! {
///     per_backend {
///         [UnixSockets] { serves_over_a_unix_socket }
///         [] { get_and_head, byte_ranges }
///     }
///     once { help_reads_well }
/// }
/// ```
#[macro_export]
macro_rules! app_main {
    (per_backend { $( [$($need:ident),* $(,)?] { $($name:ident),* $(,)? } )* }
     $(once { $($single:ident),* $(,)? })?
     $(children { $($child:ident),* $(,)? })?) => {
        fn main() {
            let mut cases = Vec::new();
            $({
                let needs: &'static [torque::Capability] = &[$(torque::Capability::$need),*];
                $( cases.push($crate::support::AppCase { name: stringify!($name), run: $name, needs }); )*
            })*
            let once: Vec<(&'static str, fn())> = vec![$($( (stringify!($single), $single as fn()) ),*)?];
            let children: Vec<(&'static str, fn())> = vec![$($( (stringify!($child), $child as fn()) ),*)?];
            $crate::support::main(cases, once, children);
        }
    };
}

/// Runs the cases on every backend, and the `once` tests, with libtest's
/// command line (filters, `--list`, `--exact`, `--test-threads`). The
/// `children` are ignored: a test runs one in a child process of this binary
/// (`--exact NAME --include-ignored`) when it must change the whole process.
pub fn main(cases: Vec<AppCase>, once: Vec<(&'static str, fn())>, children: Vec<(&'static str, fn())>) {
    let mut trials = Vec::new();
    for case in cases {
        for &kind in torque::BackendKind::all() {
            let name = format!("{}::{kind}", case.name);
            let missing = case.needs.iter().copied().find(|&n| !kind.info().supports(n));
            trials.push(match missing {
                Some(need) => libtest_mimic::Trial::test(name, move || {
                    torque::testing::check_unsupported(kind, need).map_err(Into::into)
                }),
                None => libtest_mimic::Trial::test(name, move || outcome(|| (case.run)(kind.name()))),
            });
        }
    }
    for (name, test) in once {
        trials.push(libtest_mimic::Trial::test(name, move || outcome(test)));
    }
    for (name, test) in children {
        trials.push(libtest_mimic::Trial::test(name, move || outcome(test)).with_ignored_flag(true));
    }
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit();
}

fn outcome(f: impl FnOnce()) -> Result<(), libtest_mimic::Failed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the test panicked".to_owned())
            .into()
    })
}

/// A running `torque` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addresses: Vec<SocketAddr>,
    pub log: Arc<Mutex<String>>,
    /// Sends once the log reader reached the end of torque's stderr.
    log_done: mpsc::Receiver<()>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_torque")
}

impl Server {
    /// Starts `torque -r BACKEND ARGS…` with JSON logs on stderr and waits for
    /// `listeners` ports to be listening.
    pub fn start(backend: &str, args: &[&str], listeners: usize) -> Server {
        let mut command = Command::new(binary());
        command.args(["-r", backend, "--log-format", "json"]).args(args);
        Server::start_command(command, listeners)
    }

    /// Starts `command` (a `torque` command line, logging JSON to stderr)
    /// and waits for `listeners` ports to be listening.
    pub fn start_command(mut command: Command, listeners: usize) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn torque");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (done_tx, log_done) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let _done = DropSends(done_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Logged before it is announced, so a test sees the line.
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    if line.contains("\"message\":\"listening") {
                        if let Some(address) = json_field(&line, "address") {
                            let _ = tx.send(address);
                        }
                    }
                }
            });
        }
        let mut addresses = Vec::new();
        while addresses.len() < listeners {
            match rx.recv_timeout(PATIENCE) {
                Ok(address) => addresses.push(address.parse().expect("an IP address")),
                Err(_) => {
                    let _ = child.kill();
                    panic!("torque did not start listening; log:\n{}", log.lock().unwrap());
                }
            }
        }
        Server { child, addresses, log, log_done }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addresses[0]
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The last lines may still be in the pipe: the log is whole
                // once its reader saw the end (bounded, as a grandchild may
                // hold stderr open).
                let _ = self.log_done.recv_timeout(Duration::from_secs(5));
                return status;
            }
            assert!(Instant::now() < deadline, "torque did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's peak resident memory, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// Sends on drop: the log reader's end, however it ends.
struct DropSends(mpsc::Sender<()>);

impl Drop for DropSends {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A string field of a one-line JSON object (enough for our own log lines).
pub fn json_field(line: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_owned())
}

/// Runs curl with `args`; returns its output.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl must be installed (.ci/run installs it)")
}

/// A response as read from a raw socket.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `reader` (`head_only`: a HEAD response, no body).
pub fn read_response(reader: &mut impl BufRead, head_only: bool) -> Option<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut response = Response { status, headers, body: Vec::new() };
    let length: usize = response.header("content-length").map_or(0, |v| v.parse().unwrap());
    if !head_only && status != 304 {
        response.body = vec![0; length];
        reader.read_exact(&mut response.body).ok()?;
    }
    Some(response)
}

/// Sends raw bytes on a new connection and reads one response.
pub fn raw_request(server: &Server, request: &[u8]) -> (Response, BufReader<TcpStream>) {
    let mut stream = server.connect();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, false).expect("a response");
    (response, reader)
}

/// Whether the server closed the connection: reading gives end of file (or a
/// reset) within the patience bound.
pub fn closed_by_server(reader: &mut impl Read) -> bool {
    let mut byte = [0u8; 1024];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A directory of files to serve.
pub fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("hello.txt"), b"Hello, world\n").unwrap();
    std::fs::write(root.join("page.html"), b"<p>hi</p>").unwrap();
    std::fs::write(root.join("data.bin123"), b"\x00\x01").unwrap();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/index.html"), b"<h1>docs</h1>").unwrap();
    std::fs::create_dir(root.join("list")).unwrap();
    std::fs::write(root.join("list/<b>&amp;.txt"), b"x").unwrap();
    std::fs::write(root.join("list/plain.txt"), b"x").unwrap();
    dir
}

/// A path outside any served directory, for symlink tests.
pub fn outside_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, b"secret").unwrap();
    (dir, path)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
