//! The small services, the port forwarder and the command itself, through the
//! real binary on every backend.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;
use support::*;

fn service(backend: &str, name: &str) -> Server {
    Server::start(backend, &[name, "--listen", "tcp:0:interface=127.0.0.1"], 1)
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Writes `total` bytes from a thread while reading them back here, then
/// half-closes; checks every byte and that the far end closes after.
fn round_trip(stream: TcpStream, total: usize) {
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let block: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < total {
            let n = block.len().min(total - sent);
            writer.write_all(&block[..n]).unwrap();
            sent += n;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let mut received = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, ((received + i) % 65536 % 251) as u8, "byte {}", received + i);
        }
        received += n;
    }
    sender.join().unwrap();
    assert_eq!(received, total);
}

fn echo_round_trips_with_backpressure(backend: &str) {
    let server = service(backend, "echo");
    round_trip(connect(server.addr()), 64 << 20);
    let peak = server.peak_rss_kib();
    assert!(peak < 32 * 1024, "echo peak RSS {peak} KiB for 64 MiB echoed");
}

/// `--workers 2`: two reactors serve the one port; concurrent clients all
/// get their bytes back, and SIGTERM stops both.
fn echo_with_workers_serves_concurrent_clients(backend: &str) {
    let mut server =
        Server::start(backend, &["echo", "--workers", "2", "--listen", "tcp:0:interface=127.0.0.1"], 1);
    let addr = server.addr();
    let clients: Vec<_> =
        (0..8).map(|_| std::thread::spawn(move || round_trip(connect(addr), 1 << 20))).collect();
    for client in clients {
        client.join().unwrap();
    }
    server.signal(Signal::TERM);
    let status = server.wait();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
}

fn discard_and_daytime(backend: &str) {
    let server = service(backend, "discard");
    let mut stream = connect(server.addr());
    stream.write_all(&vec![7u8; 1 << 20]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "discard sends nothing");

    let server = service(backend, "daytime");
    let mut line = String::new();
    let mut reader = BufReader::new(connect(server.addr()));
    reader.read_line(&mut line).unwrap();
    assert!(line.ends_with(" GMT\r\n"), "{line:?}");
    assert!(closed_by_server(&mut reader));
}

fn chargen_streams_without_growing(backend: &str) {
    let server = service(backend, "chargen");
    let mut stream = connect(server.addr());
    let mut data = vec![0u8; 74 * 1000];
    stream.read_exact(&mut data).unwrap();
    for (i, line) in data.chunks(74).enumerate() {
        assert!(line.ends_with(b"\r\n"));
        assert_eq!(line[0], b' ' + (i % 95) as u8, "line {i}");
    }
    // A reader that stops reading: the server's memory does not grow.
    std::thread::sleep(Duration::from_millis(500));
    let peak = server.peak_rss_kib();
    assert!(peak < 16 * 1024, "chargen peak RSS {peak} KiB with a stalled reader");
}

fn portforward_relays_both_ways(backend: &str) {
    let echo = service(backend, "echo");
    let target = echo.addr().to_string();
    let forward =
        Server::start(backend, &["portforward", "--listen", "tcp:0:interface=127.0.0.1", "--to", &target], 1);
    // Backpressure both ways and half-close passed through: the echo server
    // closes when it sees our end of file, and that reaches us.
    round_trip(connect(forward.addr()), 32 << 20);
    let peak = forward.peak_rss_kib();
    assert!(peak < 32 * 1024, "portforward peak RSS {peak} KiB for 32 MiB relayed");
    // An unreachable target: the client's connection is closed.
    let dead = TcpStream::connect("127.0.0.1:0").err();
    drop(dead);
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let forward = Server::start(
        backend,
        &["portforward", "--listen", "tcp:0:interface=127.0.0.1", "--to", &format!("127.0.0.1:{port}")],
        1,
    );
    let mut stream = connect(forward.addr());
    assert!(closed_by_server(&mut stream));
}

fn sigterm_stops_cleanly_with_pid_file(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pid_path = dir.path().join("torque.pid");
    let log_path = dir.path().join("torque.log");
    let mut server = Server::start(
        backend,
        &["--pid-file", path_str(&pid_path), "echo", "--listen", "tcp:0:interface=127.0.0.1"],
        1,
    );
    let pid: u32 = std::fs::read_to_string(&pid_path).unwrap().trim().parse().unwrap();
    assert_eq!(pid, server.child.id());
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
    assert!(!pid_path.exists(), "pid file removed");
    // Logging to a file.
    let mut child = Command::new(binary())
        .args([
            "-r",
            backend,
            "--log-file",
            path_str(&log_path),
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("listening") {
        assert!(std::time::Instant::now() < deadline, "no log file written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::INT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains(&format!("reactor=\"{backend}\"")), "{log}");
}

/// SIGHUP (and SIGUSR1, twistd's) reopen the log file for logrotate; the
/// command keeps running and its pid file stays until it stops.
fn sighup_reopens_the_log_file_and_keeps_running(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (log_path, pid_path) = (dir.path().join("torque.log"), dir.path().join("torque.pid"));
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(binary())
        .args(["-r", backend, "--log-file", path_str(&log_path), "--pid-file", path_str(&pid_path)])
        .args(["echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let wait_for = |path: &std::path::Path, needle: &str| {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{needle:?} never logged in {}: {text}",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(&log_path, "listening");
    let rotated = dir.path().join("torque.log.1");
    std::fs::rename(&log_path, &rotated).unwrap();
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::HUP).unwrap();
    wait_for(&log_path, "reopened the log file");
    assert!(child.0.try_wait().unwrap().is_none(), "SIGHUP must not stop torque");
    assert!(pid_path.exists());
    rustix::process::kill_process(pid, Signal::USR1).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::fs::read_to_string(&log_path).unwrap().matches("reopened the log file").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "SIGUSR1 did not reopen the log");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    rustix::process::kill_process(pid, Signal::TERM).unwrap();
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    assert!(!pid_path.exists(), "the pid file is removed at exit");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("reopened"), "lines after the rotation went to the new file: {old}");
    assert!(std::fs::read_to_string(&log_path).unwrap().contains("stopped"));
}

app_main! {
    per_backend {
        [Tcp] {
            echo_round_trips_with_backpressure,
            echo_with_workers_serves_concurrent_clients,
            discard_and_daytime,
            chargen_streams_without_growing,
            portforward_relays_both_ways,
            sigterm_stops_cleanly_with_pid_file,
            sighup_reopens_the_log_file_and_keeps_running,
        }
    }
    once {
        reactors_table_lists_every_backend,
        the_readme_shows_the_reactor_table,
        errors_are_one_clear_line,
        io_uring_refused_by_the_kernel_is_one_line_at_start,
        help_reads_well,
        the_glib_reactor_runs_the_command_where_built_in,
    }
    children {
        child_runs_torque_under_seccomp,
    }
}

/// `-r glib` (Twisted's `twistd -r gi`): GLib's main loop drives the
/// command where the build has it (`--features glib`, as `scripts/test.sh`
/// builds); elsewhere a one-line error says how to get it.
fn the_glib_reactor_runs_the_command_where_built_in() {
    if !cfg!(feature = "glib") {
        let out = run(&["-r", "glib", "echo", "--listen", "tcp:0:interface=127.0.0.1"]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
        assert!(err.contains("--features glib"), "{err}");
        return;
    }
    let mut server = Server::start("glib", &["echo", "--listen", "tcp:0:interface=127.0.0.1"], 1);
    assert!(server.log().contains("\"driver\":\"glib\""), "{}", server.log());
    round_trip(connect(server.addresses[0]), 100_000);
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
    // The error for an unknown name lists glib among the choices.
    let err = String::from_utf8(run(&["-r", "gtk", "echo"]).stderr).unwrap();
    assert!(err.contains(", glib"), "{err}");
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(binary()).args(args).env_remove("TORQUE_REACTOR").output().unwrap()
}

fn reactors_table_lists_every_backend() {
    let out = run(&["reactors"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    for column in ["here", "status", "scheduling", "threads", "tcp", "tls", "udp", "processes", "fd-sets"] {
        assert!(header.contains(column), "{header}");
    }
    for &kind in torque::BackendKind::known() {
        let info = kind.info();
        let row = table.lines().find(|l| l.starts_with(kind.name())).unwrap();
        let here = if kind.is_available() { " yes " } else { " no " };
        assert!(row.contains(&info.status.to_string()) && row.contains(here), "{row}");
        let line = table.lines().rev().find(|l| l.starts_with(kind.name())).unwrap();
        assert!(line.contains(info.summary) && line.contains(info.platforms), "{line}");
    }
}

/// The README's reactor table is `torque reactors`, as run on Linux.
fn the_readme_shows_the_reactor_table() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let out = run(&["reactors"]);
    let table = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(&format!("$ torque reactors\n{table}```")),
        "the README's reactor table differs from `torque reactors`; replace it with:\n{table}"
    );
}

fn errors_are_one_clear_line() {
    let out = run(&["-r", "iocp-ish", "echo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let here: Vec<&str> = torque::BackendKind::all().iter().map(|k| k.name()).collect();
    assert!(err.contains("\"iocp-ish\"") && err.contains(&here.join(", ")), "{err}");

    // A backend Torque has, but not on this platform, says so.
    let elsewhere = torque::BackendKind::known().iter().find(|k| !k.is_available());
    if let Some(kind) = elsewhere {
        let out = run(&["-r", kind.name(), "echo"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(kind.name()) && err.contains("not available on this platform"), "{err}");
    }

    let out = run(&["gopher"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"gopher\"") && err.contains("web, echo"), "{err}");

    let out = run(&["echo", "--listen", "tcp:notaport"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("tcp:notaport"), "{err}");

    let out = run(&["web", "--path", "/does/not/exist", "--listen", "tcp:0:interface=127.0.0.1"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.code() == Some(1) && err.contains("/does/not/exist"), "{err}");

    // A port already taken: the service fails to start and says where.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp:{}:interface=127.0.0.1", taken.local_addr().unwrap().port());
    let out = run(&["echo", "--listen", &endpoint]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&endpoint), "{err}");
}

/// Where io_uring is forbidden (here: a seccomp filter on `io_uring_setup`,
/// inherited by the command), `-r io_uring` fails at start with one line that
/// names the cause; the default reactor still runs.
fn io_uring_refused_by_the_kernel_is_one_line_at_start() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runs_torque_under_seccomp", "--nocapture", "--include-ignored"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stdout
        .split("STDERR<")
        .nth(1)
        .and_then(|s| s.split(">STDERR").next())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(stdout.contains("CODE=Some(1)"), "{stdout}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("torque: the io_uring backend cannot start here: "), "{err}");
    assert!(err.contains("seccomp") && err.contains("EPERM"), "{err}");
}

/// In a child process (the filter stays with it): `torque -r io_uring` under a
/// seccomp filter that refuses `io_uring_setup` with EPERM.
#[cfg(target_os = "linux")]
fn child_runs_torque_under_seccomp() {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let filter: BpfProgram = SeccompFilter::new(
        [(libc::SYS_io_uring_setup, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    seccompiler::apply_filter(&filter).unwrap();
    let out = run(&["-r", "io_uring", "echo", "--listen", "tcp:0:interface=127.0.0.1"]);
    println!("CODE={:?}", out.status.code());
    println!("STDERR<{}>STDERR", String::from_utf8_lossy(&out.stderr));
}

#[cfg(not(target_os = "linux"))]
fn child_runs_torque_under_seccomp() {}

fn help_reads_well() {
    let out = run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in ["--reactor", "--log-file", "--log-format", "--pid-file", "web", "portforward", "reactors"]
    {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let out = run(&["web", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in ["--path", "--listen", "--max-connections", "--header-timeout", "--cache-ttl"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
