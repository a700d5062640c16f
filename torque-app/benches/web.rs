//! `cargo bench -p torque-app --bench web`: `torque web` against nginx and a
//! minimal tokio + hyper server, side by side in one run.
//!
//! Each single-threaded server is pinned to CPU 0 and wrk to CPU 1. For `wrk
//! -t1 -c64` and `-c1` over a 13-byte file it reports requests per second and
//! the server's CPU time per request (user + system from /proc/PID/stat, its
//! child processes included: wrk saturates its own core here, so throughput
//! alone cannot separate fast servers). Then `torque web --workers 2` on each
//! backend and nginx with 2 workers run on both CPUs (wrk shares CPU 1 with one
//! worker). Rounds alternate the servers; the median round is reported. Then a
//! 1 GiB download with curl from `torque web` and nginx.
//!
//! Needs wrk, nginx, curl and taskset (`scripts/install-system-packages.sh
//! bench`); builds `benches/hyper-hello` on first use. Settings:
//! `TORQUE_BENCH_SECONDS` (per measurement, default 5), `TORQUE_BENCH_ROUNDS`
//! (default 5), `TORQUE_BENCH_LARGE=0` to skip the large file,
//! `TORQUE_BENCH_SMALL=0` to skip the small one, `TORQUE_BENCH_WORKERS=0` to
//! skip the two-worker rows.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HYPER: &str = "hyper 1 + tokio (current thread)";
const NGINX: &str = "nginx 1 worker";
const NGINX_2: &str = "nginx 2 workers";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, child: &mut Child, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{name} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User + system CPU time of a process, all threads.
fn cpu_time(pid: u32) -> Duration {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU time of a server: the process, all threads
/// (/proc/PID/stat), and its child processes (nginx's workers).
fn cpu_split(pid: u32) -> (Duration, Duration) {
    let (mut user, mut system) = process_cpu_split(pid);
    for child in child_processes(pid) {
        let (u, s) = process_cpu_split(child);
        user += u;
        system += s;
    }
    (user, system)
}

/// The live processes whose parent is `pid` (a scan of /proc: the kernel's
/// `children` file is not always built in).
fn child_processes(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{candidate}/stat")) else { return false };
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

/// User and system CPU time of one process, all threads (/proc/PID/stat).
fn process_cpu_split(pid: u32) -> (Duration, Duration) {
    // A process that just exited counts as nothing.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Default::default() };
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let per_second = rustix::param::clock_ticks_per_second();
    let time = |field: &str| Duration::from_nanos(field.parse::<u64>().unwrap() * 1_000_000_000 / per_second);
    (time(fields[11]), time(fields[12]))
}

/// A server under test.
struct Peer {
    name: String,
    command: Vec<String>,
    /// The CPUs it runs on (`taskset -c`): CPU 0 for one thread or process,
    /// both for two workers (wrk then shares CPU 1 with one of them).
    cpus: &'static str,
}

struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master then stops its workers (a SIGKILL
        // would orphan them, still serving the port in later rounds).
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn start(&self, port: u16) -> Running {
        let args: Vec<String> = self.command.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(self.cpus)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        wait_listening(port, &mut child, &self.name);
        Running { child, port }
    }
}

struct Sample {
    requests_per_second: f64,
    cpu_per_request: Duration,
    /// The part of it spent in the kernel.
    system_per_request: Duration,
}

/// Runs wrk against `path` and measures the server's CPU meanwhile.
fn wrk(server: &Running, connections: u32, seconds: u64, path: &str) -> Sample {
    let before = cpu_split(server.child.id());
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg(format!("http://127.0.0.1:{}{path}", server.port))
        .output()
        .expect("run wrk");
    let after = cpu_split(server.child.id());
    let (user, system) = (after.0 - before.0, after.1 - before.1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "errors from the server:\n{text}");
    let total: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let total = total.max(1.0);
    Sample {
        requests_per_second: rps,
        cpu_per_request: (user + system).div_f64(total),
        system_per_request: system.div_f64(total),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn build_hyper(repo: &Path) -> PathBuf {
    let target = repo.join("target/hyper-hello");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(repo.join("benches/hyper-hello/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building benches/hyper-hello failed");
    target.join("release/hyper-hello")
}

/// nginx's configuration with `workers` worker processes (one: no master).
fn nginx_config(dir: &Path, root: &Path, workers: u32) -> PathBuf {
    let config = dir.join(format!("nginx-{workers}.conf"));
    let master = if workers > 1 { "on" } else { "off" };
    let text = format!(
        "daemon off;\nmaster_process {master};\nworker_processes {workers};\nerror_log {dir}/nginx-error.log;\npid {dir}/nginx-{workers}.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000000;\n\
         \x20 types {{ text/plain txt; application/octet-stream bin; }}\n\
         \x20 server {{ listen 127.0.0.1:{{port}}; root {root}; }}\n}}\n",
        dir = dir.display(),
        root = root.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn large_file(dir: &Path) -> PathBuf {
    let path = dir.join("big.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    // Real (not sparse) data, so both servers read the page cache.
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    for _ in 0..1024 {
        file.write_all(&block).unwrap();
    }
    // Written back before measuring, so no server competes with the flush.
    file.sync_all().unwrap();
    path
}

/// Downloads the large file with curl (pinned to CPU 1); bytes per second.
fn download(server: &Running) -> f64 {
    let out = Command::new("taskset")
        .args(["-c", "1", "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}"])
        .arg(format!("http://127.0.0.1:{}/big.bin", server.port))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let speed: f64 = parts.next().and_then(|s| s.parse().ok()).expect("curl's speed");
    let size: u64 = parts.next().and_then(|s| s.parse().ok()).expect("curl's size");
    assert_eq!(size, 1 << 30, "the whole file arrived");
    speed
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let missing: Vec<&str> = ["wrk", "nginx", "curl", "taskset"].into_iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        eprintln!(
            "web benchmark skipped: {} not installed (apt-get install wrk nginx-light curl)",
            missing.join(", ")
        );
        return;
    }
    let seconds = env_number("TORQUE_BENCH_SECONDS", 5);
    let rounds = env_number("TORQUE_BENCH_ROUNDS", 5).max(1);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let hyper = build_hyper(&repo);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello.txt"), b"Hello, world\n").unwrap();
    let torque = env!("CARGO_BIN_EXE_torque").to_owned();
    let torque_args = |workers: &str, extra: &[&str]| {
        let mut args = vec![torque.clone(), "web".into(), "--path".into(), root.display().to_string()];
        args.extend(["--listen".into(), "tcp:{port}:interface=127.0.0.1".into(), "--no-access-log".into()]);
        args.extend(["--workers".into(), workers.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let nginx_command = |config: PathBuf| {
        vec!["nginx".into(), "-c".into(), config.display().to_string(), "-e".into(), "stderr".into()]
    };
    // Every backend of this build but select (FD_SETSIZE), one reactor each on
    // CPU 0 like the single-threaded peers; the default one also without its
    // file cache.
    let default = torque::BackendKind::platform_default().name();
    let mut peers: Vec<Peer> = torque::BackendKind::all()
        .iter()
        .filter(|k| k.info().fd_limit.is_none())
        .map(|k| Peer {
            name: format!("torque web ({k})"),
            command: torque_args("1", &["-r", k.name()]),
            cpus: "0",
        })
        .collect();
    peers.insert(
        1,
        Peer {
            name: format!("torque web ({default}, --cache-ttl 0)"),
            command: torque_args("1", &["-r", default, "--cache-ttl", "0s"]),
            cpus: "0",
        },
    );
    peers.extend([
        Peer {
            name: HYPER.into(),
            command: vec![hyper.display().to_string(), "127.0.0.1:{port}".into()],
            cpus: "0",
        },
        Peer { name: NGINX.into(), command: nginx_command(nginx_config(dir.path(), &root, 1)), cpus: "0" },
    ]);
    // Two workers on both CPUs (wrk shares CPU 1 with one of them), unless
    // TORQUE_BENCH_WORKERS=0.
    if env_number("TORQUE_BENCH_WORKERS", 1) != 0 {
        for kind in torque::BackendKind::all().iter().filter(|k| k.info().fd_limit.is_none()) {
            peers.push(Peer {
                name: format!("torque web ({kind}, --workers 2)"),
                command: torque_args("2", &["-r", kind.name()]),
                cpus: "0,1",
            });
        }
        peers.push(Peer {
            name: NGINX_2.into(),
            command: nginx_command(nginx_config(dir.path(), &root, 2)),
            cpus: "0,1",
        });
    }
    // nginx reads its port from the config: one port per peer, fixed up front.
    let ports: Vec<u16> = peers.iter().map(|_| free_port()).collect();
    for (peer, port) in peers.iter().zip(&ports).filter(|(p, _)| p.name.starts_with("nginx")) {
        let config = PathBuf::from(&peer.command[2]);
        let text = std::fs::read_to_string(&config).unwrap().replace("{port}", &port.to_string());
        std::fs::write(&config, text).unwrap();
    }

    let small = env_number("TORQUE_BENCH_SMALL", 1) != 0;
    eprintln!(
        "web benchmark: {rounds} rounds × {seconds}s per measurement; server on CPU 0 (two workers: CPUs 0 and 1), wrk on CPU 1"
    );
    let mut results: Vec<[Vec<Sample>; 2]> = peers.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in (0..rounds).filter(|_| small) {
        // Each round starts with a different server, so drift in the machine's
        // speed does not always favour the same one.
        for offset in 0..peers.len() {
            let index = (round as usize + offset) % peers.len();
            let peer = &peers[index];
            let server = peer.start(ports[index]);
            wrk(&server, 64, 1, "/hello.txt"); // warm-up
            for (slot, connections) in [64, 1].into_iter().enumerate() {
                let sample = wrk(&server, connections, seconds, "/hello.txt");
                eprintln!(
                    "round {} {:<36} c{connections:<3} {:>9.0} req/s {:>6.2} µs CPU/req ({:.2} in the kernel)",
                    round + 1,
                    peer.name,
                    sample.requests_per_second,
                    sample.cpu_per_request.as_secs_f64() * 1e6,
                    sample.system_per_request.as_secs_f64() * 1e6
                );
                results[index][slot].push(sample);
            }
        }
    }
    let index_of = |name: &str| peers.iter().position(|p| p.name == name).expect("a peer");
    let (nginx_index, hyper_index) = (index_of(NGINX), index_of(HYPER));
    if small {
        small_table(&peers, &results, rounds, seconds, hyper_index, nginx_index);
    }
    if env_number("TORQUE_BENCH_LARGE", 1) == 0 {
        return;
    }
    large_table(&peers, &ports, &root, rounds, nginx_index);
}

fn small_table(
    peers: &[Peer],
    results: &[[Vec<Sample>; 2]],
    rounds: u64,
    seconds: u64,
    hyper_index: usize,
    nginx_index: usize,
) {
    let summary = |index: usize, slot: usize| {
        let rps = median(results[index][slot].iter().map(|s| s.requests_per_second).collect());
        let micros = |pick: fn(&Sample) -> Duration| {
            median(results[index][slot].iter().map(|s| pick(s).as_secs_f64() * 1e6).collect())
        };
        (rps, micros(|s| s.cpu_per_request), micros(|s| s.system_per_request))
    };
    println!(
        "\n13-byte file, wrk -t1 (median of {rounds} rounds of {seconds}s; ratios: this ÷ hyper, this ÷ nginx)\n"
    );
    println!(
        "| server | conns | req/s | CPU µs/req | of it kernel | req/s ÷ hyper | CPU ÷ hyper | req/s ÷ nginx | CPU ÷ nginx |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for slot in 0..2 {
        let (hyper_rps, hyper_cpu, _) = summary(hyper_index, slot);
        let (nginx_rps, nginx_cpu, _) = summary(nginx_index, slot);
        for (index, peer) in peers.iter().enumerate() {
            let (rps, cpu, kernel) = summary(index, slot);
            println!(
                "| {} | {} | {rps:.0} | {cpu:.2} | {kernel:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                peer.name,
                [64, 1][slot],
                rps / hyper_rps,
                cpu / hyper_cpu,
                rps / nginx_rps,
                cpu / nginx_cpu
            );
        }
    }
}

fn large_table(peers: &[Peer], ports: &[u16], root: &Path, rounds: u64, nginx_index: usize) {
    eprintln!("\nwriting a 1 GiB file…");
    large_file(root);
    let copying = Peer {
        name: format!("{} --no-sendfile", peers[0].name),
        command: peers[0].command.iter().cloned().chain(["--no-sendfile".to_owned()]).collect(),
        cpus: peers[0].cpus,
    };
    let mut large_peers = vec![(0, &peers[0]), (1, &copying)];
    // io_uring, where built: its file bodies go by sendfile too (a full
    // socket is polled for room through the ring).
    if let Some(index) = peers.iter().position(|p| p.name == "torque web (io_uring)") {
        large_peers.push((index, &peers[index]));
    }
    large_peers.push((nginx_index, &peers[nginx_index]));
    let mut speeds: Vec<Vec<f64>> = vec![Vec::new(); large_peers.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); large_peers.len()];
    for round in 0..rounds {
        for offset in 0..large_peers.len() {
            let slot = (round as usize + offset) % large_peers.len();
            let (index, peer) = large_peers[slot];
            let server = peer.start(ports[index]);
            let before = cpu_time(server.child.id());
            let speed = download(&server);
            let used = (cpu_time(server.child.id()) - before).as_secs_f64() * 1e3;
            eprintln!(
                "round {} {:<36} {:>6.0} MiB/s {used:>5.0} ms CPU",
                round + 1,
                peer.name,
                speed / (1 << 20) as f64
            );
            speeds[slot].push(speed);
            cpu[slot].push(used);
        }
    }
    println!("\n1 GiB download with curl (median of {rounds})\n");
    println!("| server | MiB/s | server CPU ms | MiB/s ÷ nginx |");
    println!("|---|---:|---:|---:|");
    let nginx_speed = median(speeds[large_peers.len() - 1].clone()); // nginx is last
    for (slot, (_, peer)) in large_peers.iter().enumerate() {
        let speed = median(speeds[slot].clone());
        println!(
            "| {} | {:.0} | {:.0} | {:.2} |",
            peer.name,
            speed / (1 << 20) as f64,
            median(cpu[slot].clone()),
            speed / nginx_speed
        );
    }
}
