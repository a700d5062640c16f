//! Child-process benchmark: Torque's `spawn_process` against `tokio::process`
//! (current-thread runtime), in one run. `cargo bench -p torque --bench process`
//! (`-- --rounds 5`).
//!
//! - **spawn and reap**: start `true` with three pipes (stdin, stdout, stderr:
//!   `spawn_process`'s default; tokio's `output()` with stdin piped), read to
//!   the end and reap it, 16 children in flight, 2,000 in all; children per
//!   second.
//! - **1 GiB through `cat`**: write 1 GiB to `cat`'s stdin while reading it back
//!   from its stdout; MiB/s.
//!
//! Each row also gives this process's CPU time (user + system, children not
//! included) per operation. Rounds alternate between the two; medians.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torque::net::Producer;
use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport};

const SPAWNS: usize = 2000;
const IN_FLIGHT: usize = 16;
const BULK: usize = 1 << 30;
const CHUNK: usize = 64 * 1024;

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall time and CPU time of `f`.
fn measure(f: impl FnOnce()) -> (Duration, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    f();
    (wall.elapsed(), cpu_time() - cpu)
}

struct Count {
    ended: Rc<Cell<usize>>,
    bytes: Rc<Cell<usize>>,
}

impl ProcessProtocol for Count {
    fn child_data_received(&mut self, _p: &ProcessTransport, _fd: i32, data: &[u8]) {
        self.bytes.set(self.bytes.get() + data.len());
    }
    fn process_ended(&mut self, exit: ProcessExit) {
        assert!(exit.success(), "{exit}");
        self.ended.set(self.ended.get() + 1);
    }
}

fn torque_spawns() {
    let reactor = torque::Reactor::builder().handle_signals(false).build().unwrap();
    let ended = Rc::new(Cell::new(0));
    let mut started = 0;
    while ended.get() < SPAWNS {
        while started < SPAWNS && started - ended.get() < IN_FLIGHT {
            let count = Count { ended: ended.clone(), bytes: Rc::new(Cell::new(0)) };
            reactor.spawn_process(count, "true", &[], ProcessOptions::default()).unwrap();
            started += 1;
        }
        reactor.iterate(Duration::from_millis(100)).unwrap();
    }
}

fn tokio_spawns() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = Vec::with_capacity(SPAWNS);
        for _ in 0..SPAWNS {
            let permit = semaphore.clone().acquire_owned().await.unwrap();
            tasks.push(tokio::task::spawn_local(async move {
                // Three pipes, as spawn_process's default: stdin, stdout, stderr.
                let output = tokio::process::Command::new("true")
                    .stdin(std::process::Stdio::piped())
                    .output()
                    .await
                    .unwrap();
                assert!(output.status.success());
                drop(permit);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Writes `BULK` bytes to the child's stdin as a pull producer: one chunk each
/// time the stdin buffer is empty, so the kernel takes it without a copy into
/// the transport's buffer.
struct Feed {
    process: ProcessTransport,
    sent: usize,
}

impl Feed {
    fn pump(&mut self) {
        if self.sent < BULK {
            self.sent += CHUNK;
            self.process.write(&[7u8; CHUNK]);
        } else {
            self.process.unregister_producer();
            self.process.close_stdin();
        }
    }
}

impl Producer for Feed {
    fn resume_producing(&mut self) {
        self.pump();
    }
}

fn torque_cat() {
    let reactor = torque::Reactor::builder().handle_signals(false).build().unwrap();
    let (ended, bytes) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let count = Count { ended: ended.clone(), bytes: bytes.clone() };
    let process = reactor.spawn_process(count, "cat", &[], ProcessOptions::default()).unwrap();
    let feed = Rc::new(RefCell::new(Feed { process: process.clone(), sent: 0 }));
    process.register_producer(feed, false).unwrap();
    while ended.get() == 0 {
        reactor.iterate(Duration::from_millis(100)).unwrap();
    }
    assert_eq!(bytes.get(), BULK);
}

fn tokio_cat() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut child = tokio::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let writer = async move {
            let chunk = [7u8; CHUNK];
            for _ in 0..BULK / CHUNK {
                stdin.write_all(&chunk).await.unwrap();
            }
            drop(stdin);
        };
        let reader = async move {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                let n = stdout.read(&mut buf).await.unwrap();
                if n == 0 {
                    break total;
                }
                total += n;
            }
        };
        let ((), total) = tokio::join!(writer, reader);
        assert_eq!(total, BULK);
        assert!(child.wait().await.unwrap().success());
    });
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    type Row = (&'static str, &'static str, fn(), f64);
    let rows: [Row; 4] = [
        ("spawn and reap `true` (16 in flight)", "torque", torque_spawns, SPAWNS as f64),
        ("spawn and reap `true` (16 in flight)", "tokio::process", tokio_spawns, SPAWNS as f64),
        ("1 GiB through `cat`", "torque", torque_cat, (BULK >> 20) as f64),
        ("1 GiB through `cat`", "tokio::process", tokio_cat, (BULK >> 20) as f64),
    ];
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); rows.len()];
    for _ in 0..rounds {
        for (i, (workload, runtime, run, ops)) in rows.iter().enumerate() {
            eprint!("{workload} / {runtime} … ");
            let (wall, cpu) = measure(run);
            eprintln!("{:.2} s", wall.as_secs_f64());
            samples[i].0.push(ops / wall.as_secs_f64());
            samples[i].1.push(cpu.as_secs_f64() * 1e6 / ops);
        }
    }
    println!("{rounds} rounds, median; CPU is this process's (children excluded)\n");
    println!("| workload | runtime | per second | CPU µs per op | rate ÷ tokio | CPU ÷ tokio |");
    println!("|---|---|---:|---:|---:|---:|");
    for pair in 0..2 {
        let (t_rate, t_cpu) = (median(samples[2 * pair].0.clone()), median(samples[2 * pair].1.clone()));
        let (k_rate, k_cpu) =
            (median(samples[2 * pair + 1].0.clone()), median(samples[2 * pair + 1].1.clone()));
        let unit = if pair == 0 { "children" } else { "MiB" };
        for (name, rate, cpu) in [(rows[2 * pair].1, t_rate, t_cpu), (rows[2 * pair + 1].1, k_rate, k_cpu)] {
            println!(
                "| {} | {name} | {rate:.0} {unit}/s | {cpu:.1} | {:.2} | {:.2} |",
                rows[2 * pair].0,
                rate / k_rate,
                cpu / k_cpu
            );
        }
    }
}
