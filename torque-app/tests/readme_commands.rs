//! Every command the README shows is run here, as written as far as a test
//! can (servers bind loopback and port 0 instead of fixed public ports), or
//! listed with the reason it is not. A command added to the README without a
//! line here fails `every_readme_command_is_run_or_has_a_reason`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::process::Signal;
use support::*;

/// What each README command gets: run by the named test, or not, and why.
const COMMANDS: &[(&str, &str)] = &[
    ("cargo run --release -- web --path .", "run: the_main_job_serves_a_source_tree_without_its_repository"),
    ("scripts/test.sh", "not run: it is the test command, which runs this test"),
    ("cargo run --release -- reactors", "run: torque_reactors_prints_the_readmes_table"),
    (
        "cargo run --release -- -r poll web --path ./public --listen tcp:8080:interface=127.0.0.1",
        "run: choosing_a_reactor",
    ),
    ("TORQUE_REACTOR=select cargo run --release -- echo --listen tcp:8007", "run: choosing_a_reactor"),
    (
        "cargo run --release -- web --path ./public --listen ssl:8443:privateKey=key.pem:certKey=cert.pem:interface=127.0.0.1 --listen tcp:8080:interface=127.0.0.1",
        "run: https_with_the_readmes_quick_certificate",
    ),
    (
        "curl --cacert ca.pem https://localhost:8443/",
        "run: https_with_the_readmes_quick_certificate (with cert.pem, the quick certificate)",
    ),
    (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth -keyout key.pem -out cert.pem",
        "run: https_with_the_readmes_quick_certificate",
    ),
    (
        "cargo run --release --features glib -- -r glib web --path .",
        "run: the_glib_reactor_serves (where the test build has the feature, as scripts/test.sh builds it)",
    ),
    ("scripts/install-system-packages.sh", "not run: scripts/test.sh and .ci/run run it before the tests"),
    (
        "scripts/install-system-packages.sh bench",
        "not run: installs the benchmarks' tools (wrk, nginx); benchmarks are not tests",
    ),
    (
        "python3 -m venv venv && venv/bin/pip install ./torque-python",
        "run: by scripts/twisted-suite.sh (in scripts/test.sh), whose scripts/python-env.sh makes a venv and runs pip install ./torque-python the same way (into target/python, building in ./target)",
    ),
    (
        "venv/bin/twist --reactor=torque web --path .",
        "run: torque_twisted.test.test_programs.TwistWebTests, in scripts/twisted-suite.sh (with --listen on loopback port 0 instead of port 8080)",
    ),
    ("scripts/twisted-suite.sh", "run: the last step of scripts/test.sh"),
    (
        "scripts/python-env.sh uvloop",
        "not run: makes the benchmarks' venv; scripts/twisted-suite.sh runs scripts/python-env.sh",
    ),
    (
        "cargo bench -p torque --bench echo -- python-twisted-epoll python-twisted-torque python-asyncio python-uvloop --secs 3",
        "not run: a benchmark (minutes); its figures are in the README",
    ),
    (
        "cargo test --workspace --features torque-app/glib",
        "not run: what scripts/test.sh runs, this test among them",
    ),
    (
        "cargo install --path torque-app",
        "not run: installs into ~/.cargo/bin; the binary it builds is the one these tests run",
    ),
    (
        "cargo run --example echo_server",
        "not run: the examples are compiled by cargo test; they listen on fixed ports (8000), which a test must not take",
    ),
    ("TORQUE_REACTOR=poll cargo run --example echo_server", "not run: as cargo run --example echo_server"),
    ("cargo run --example udp_echo", "not run: as cargo run --example echo_server"),
    ("cargo run --example workers", "not run: as cargo run --example echo_server (tcp:8000)"),
    (
        "cargo run --example multicast -- listen",
        "not run: as cargo run --example echo_server (a fixed group and port)",
    ),
    (
        "cargo run -p torque-demos --bin gtk-chat",
        "not run here: needs a display; torque-demos/tests/self_test.rs runs it under Xvfb",
    ),
    (
        "cargo run -p torque-demos --bin winit-chat -- --backend poll",
        "not run here: needs a display; torque-demos/tests/self_test.rs runs it under Xvfb",
    ),
    (
        "cargo bench -p torque --bench interleave",
        "not run: a benchmark (minutes); its figures are in the README",
    ),
    (
        "cargo bench -p torque-glib --bench latency",
        "not run: a benchmark (minutes); its figures are in the README",
    ),
    ("cargo bench --bench reactor", "not run: a benchmark (minutes); its figures are in the README"),
    ("cargo bench --bench echo", "not run: a benchmark (minutes); its figures are in the README"),
    ("cargo bench --bench echo -- udp", "not run: a benchmark (minutes); its figures are in the README"),
    (
        "cargo bench -p torque --bench echo -- torque-epoll torque-io_uring tokio mio monoio --secs 3",
        "not run: a benchmark (minutes; builds benches/monoio-echo); its figures are in the README",
    ),
    (
        "cargo bench -p torque --bench echo -- --callgrind torque-epoll torque-io_uring tokio mio monoio",
        "not run: a benchmark (minutes under valgrind); its figures are in the README",
    ),
    (
        "cargo bench -p torque-app --bench web",
        "not run: a benchmark (minutes); its figures are in the README",
    ),
    ("cargo bench -p torque --bench tls", "not run: a benchmark (minutes); its figures are in the README"),
    (
        "cargo bench -p torque --bench process",
        "not run: a benchmark (minutes); its figures are in the README",
    ),
    ("scripts/check-platforms.sh", "not run here: a stage of .ci/run of its own"),
    ("scripts/windows.sh", "not run here: a stage of .ci/run of its own (Windows under Wine)"),
    ("scripts/check-platforms.sh aarch64-apple-darwin", "not run here: a stage of .ci/run of its own"),
    ("cargo check", "not run: a step named in prose, part of scripts/check-platforms.sh"),
    ("cargo clippy -D warnings", "not run: a step named in prose, part of scripts/check-platforms.sh"),
    ("cargo test --workspace", "not run: as cargo test --workspace --features torque-app/glib"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The commands the README shows: each line of its `sh` blocks (with `\`
/// continuations joined and trailing comments dropped), and each inline code
/// span that is a command line (not a bare name, an `…` pattern or a lone
/// variable).
fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut prose = String::new();
    let mut block: Option<String> = None;
    let mut pending = String::new();
    for line in readme.lines() {
        if let Some(kind) = line.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(kind.to_owned()),
            };
            prose.push('\n');
            continue;
        }
        match block.as_deref() {
            Some("sh") => {
                let code = match line.find(" #") {
                    Some(at) => &line[..at],
                    None => line,
                };
                pending.push_str(code.trim_end().trim_end_matches('\\'));
                pending.push(' ');
                if !code.trim_end().ends_with('\\') {
                    let command = normalize(&pending);
                    if !command.is_empty() {
                        commands.push(command);
                    }
                    pending.clear();
                }
            }
            Some(_) => prose.push('\n'),
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    let spans = prose.split('`').skip(1).step_by(2);
    for span in spans {
        let span = normalize(span);
        let starts = ["cargo ", "scripts/", "openssl ", "curl ", "TORQUE_REACTOR="];
        let script = span.starts_with("scripts/") && !span.ends_with('/') && !span.contains('…');
        let command_line =
            starts.iter().any(|s| span.starts_with(s)) && span.contains(' ') && !span.contains('…');
        if script || command_line {
            commands.push(span);
        }
    }
    commands.dedup();
    commands
}

#[test]
fn every_readme_command_is_run_or_has_a_reason() {
    let shown = readme_commands(&readme());
    let missing: Vec<&String> =
        shown.iter().filter(|c| !COMMANDS.iter().any(|(known, _)| known == c)).collect();
    assert!(missing.is_empty(), "README commands this file neither runs nor explains: {missing:#?}");
    let stale: Vec<&str> =
        COMMANDS.iter().map(|&(c, _)| c).filter(|c| !shown.iter().any(|s| s == c)).collect();
    assert!(stale.is_empty(), "listed here but no longer in the README: {stale:#?}");
}

/// `torque web --path .` in a source tree — the README's first command.
#[test]
fn the_main_job_serves_a_source_tree_without_its_repository() {
    let mut command = Command::new(binary());
    command.current_dir(repo()).args(["--log-format", "json", "web", "--path", "."]);
    command.args(["--listen", "tcp:0:interface=127.0.0.1"]);
    let server = Server::start_command(command, 1);
    let out = curl(&["-i", &server.url("/README.md")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200 OK\r\n"));
    let listing = String::from_utf8_lossy(&curl(&[&server.url("/")]).stdout).into_owned();
    assert!(listing.contains("README.md") && !listing.contains(".git"), "{listing}");
    for hidden in ["/.git/config", "/.gitignore", "/.ci/run"] {
        let out = String::from_utf8_lossy(&curl(&["-i", &server.url(hidden)]).stdout).into_owned();
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{hidden}: {out}");
    }
}

#[test]
fn torque_reactors_prints_the_readmes_table() {
    let out = Command::new(binary()).arg("reactors").env_remove("TORQUE_REACTOR").output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    if cfg!(target_os = "linux") {
        assert!(readme().contains(&format!("$ torque reactors\n{table}```")), "{table}");
    }
}

#[test]
fn choosing_a_reactor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "<p>public</p>").unwrap();
    let mut command = Command::new(binary());
    command.current_dir(dir.path()).args(["--log-format", "json", "-r", "poll", "web", "--path", "./public"]);
    command.args(["--listen", "tcp:0:interface=127.0.0.1"]);
    let server = Server::start_command(command, 1);
    assert_eq!(String::from_utf8_lossy(&curl(&[&server.url("/")]).stdout), "<p>public</p>");
    assert!(server.log().contains("\"reactor\":\"poll\""), "{}", server.log());
    let mut command = Command::new(binary());
    command.env("TORQUE_REACTOR", "select").args(["--log-format", "json", "echo"]);
    command.args(["--listen", "tcp:0:interface=127.0.0.1"]);
    let mut echo = Server::start_command(command, 1);
    assert!(echo.log().contains("\"reactor\":\"select\""), "{}", echo.log());
    let mut stream = echo.connect();
    std::io::Write::write_all(&mut stream, b"ping").unwrap();
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut got).unwrap();
    assert_eq!(&got, b"ping");
    echo.signal(Signal::TERM);
    assert_eq!(echo.wait().code(), Some(0));
}

/// The README's quick certificate is one clients accept: curl, and Torque's
/// own TLS client (which refuses a CA certificate as a server's:
/// `CaUsedAsEndEntity`, what the README's first command made).
#[test]
fn https_with_the_readmes_quick_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let readme = normalize(&readme());
    let openssl = COMMANDS.iter().map(|&(c, _)| c).find(|c| c.starts_with("openssl req")).unwrap();
    assert!(readme.contains(openssl));
    let status =
        Command::new("sh").current_dir(dir.path()).args(["-c", &format!("{openssl} 2>/dev/null")]).status();
    assert!(status.unwrap().success(), "the README's openssl command failed");
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "secure").unwrap();
    let mut command = Command::new(binary());
    command.current_dir(dir.path()).args(["--log-format", "json", "web", "--path", "./public"]);
    command.args(["--listen", "ssl:0:privateKey=key.pem:certKey=cert.pem:interface=127.0.0.1"]);
    command.args(["--listen", "tcp:0:interface=127.0.0.1"]);
    let server = Server::start_command(command, 2);
    let tls =
        server.log().lines().find(|l| l.contains("https://")).map(|l| json_field(l, "address").unwrap());
    let port: u16 = tls.expect("an https listener").rsplit(':').next().unwrap().parse().unwrap();
    let cert = dir.path().join("cert.pem");
    let out = curl(&["--cacert", cert.to_str().unwrap(), &format!("https://localhost:{port}/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secure", "{}", String::from_utf8_lossy(&out.stderr));
    // Torque's own client, trusting the same file.
    let reactor = torque::Reactor::builder().handle_signals(false).build().unwrap();
    let roots = torque::tls::TrustRoots::from_pem_file(&cert).unwrap();
    let config = torque::tls::TlsClientOptions::new().trust_roots(roots).build().unwrap();
    let made = std::rc::Rc::new(std::cell::RefCell::new(None));
    let m = made.clone();
    let factory = torque::net::factory_fn(move |_| Handshake(m.clone()));
    let connector =
        reactor.connect_tls("localhost", port, factory, torque::net::ConnectOptions::default(), &config);
    let deadline = std::time::Instant::now() + PATIENCE;
    while made.borrow().is_none() && (connector.is_connecting() || connector.transport().is_some()) {
        assert!(std::time::Instant::now() < deadline);
        reactor.iterate(std::time::Duration::from_millis(50)).unwrap();
    }
    assert_eq!(
        made.borrow().as_deref(),
        Some("handshake completed"),
        "Torque's client refused the certificate"
    );
}

struct Handshake(std::rc::Rc<std::cell::RefCell<Option<String>>>);

impl torque::net::Protocol for Handshake {
    fn data_received(&mut self, _: &torque::net::Transport, _: &[u8]) {}
    fn handshake_completed(&mut self, transport: &torque::net::Transport) {
        *self.0.borrow_mut() = Some("handshake completed".into());
        transport.lose_connection();
    }
    fn connection_lost(&mut self, reason: torque::net::DisconnectReason) {
        self.0.borrow_mut().get_or_insert(reason.to_string());
    }
}

#[test]
fn the_glib_reactor_serves() {
    if !cfg!(feature = "glib") {
        return; // built without it; services.rs checks the error it gives
    }
    let mut command = Command::new(binary());
    command.current_dir(repo()).args(["--log-format", "json", "-r", "glib", "web", "--path", "."]);
    command.args(["--listen", "tcp:0:interface=127.0.0.1"]);
    let mut server = Server::start_command(command, 1);
    let out = curl(&["-i", &server.url("/README.md")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200 OK\r\n"));
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
}
