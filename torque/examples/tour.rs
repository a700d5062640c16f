//! A tour of the reactor core: the backend table, timers, a pipe watched with
//! `add_reader`, work on the thread pool, a call from another thread, and a graceful
//! shutdown through system event triggers.
//!
//! ```text
//! cargo run --example tour                         # the platform's best backend
//! TORQUE_REACTOR=select cargo run --example tour   # or choose one
//! ```

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torque::{BackendKind, FdHandler, Phase, Reactor, SystemEvent};

/// Reads lines from a pipe and stops the reactor after the last one.
struct LineReader {
    pipe: OwnedFd,
    buffer: Vec<u8>,
    started: Instant,
}

/// The reactor asks the handler for its fd, as Twisted asks a reader for its
/// `fileno()`: the handler owns the pipe, so it stays open while registered.
impl AsFd for LineReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

impl FdHandler for LineReader {
    fn readable(&mut self, reactor: &Reactor) {
        let mut chunk = [0u8; 256];
        match torque::fd::read(&self.pipe, &mut chunk) {
            Ok(0) => {
                println!("[{:>6.1} ms] pipe closed by the writer; stopping", ms(self.started));
                reactor.remove_reader(&self.pipe);
                reactor.stop().expect("the reactor is running");
            }
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buffer.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line);
                    println!("[{:>6.1} ms] pipe says: {}", ms(self.started), text.trim_end());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("read failed: {e}"),
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn print_backend_table() {
    let header = ["reactor", "status", "wait cost", "timers", "threads", "platforms"];
    println!(
        "{:<8} {:<10} {:<22} {:<10} {:<10} {}",
        header[0], header[1], header[2], header[3], header[4], header[5]
    );
    for &kind in BackendKind::all() {
        let info = kind.info();
        println!(
            "{:<8} {:<10} {:<22} {:<10} {:<10} {}",
            info.name,
            info.status,
            info.wait_cost,
            info.features.scheduling,
            info.features.threads,
            info.platforms
        );
    }
    println!();
}

fn main() {
    if let Err(e) = tour() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn tour() -> Result<(), Box<dyn std::error::Error>> {
    print_backend_table();
    let reactor = Reactor::new()?;
    let started = Instant::now();
    println!("running on the {} backend (set TORQUE_REACTOR to choose another)", reactor.backend().name);

    // A pipe whose read end the reactor watches; a timer chain writes to it.
    // The handler owns the read end; the registration holds the handler until it is removed.
    let (read_end, write_end) = torque::fd::pipe()?;
    let reader = Rc::new(RefCell::new(LineReader { pipe: read_end, buffer: Vec::new(), started }));
    reactor.add_reader(&reader)?;

    let writer = Rc::new(RefCell::new(Some(write_end)));
    for (i, delay_ms) in [10u64, 20, 30].into_iter().enumerate() {
        let writer = writer.clone();
        reactor.call_later(Duration::from_millis(delay_ms), move |_| {
            if let Some(w) = writer.borrow().as_ref() {
                let line = format!("tick {} from a timer\n", i + 1);
                torque::fd::write(w, line.as_bytes()).expect("pipe write");
            }
        });
    }

    // Blocking work on the thread pool; the result comes back on the reactor thread.
    reactor.run_in_thread(
        || (1..=20u64).product::<u64>(),
        move |_, result| println!("[{:>6.1} ms] thread pool computed 20! = {}", ms(started), result.unwrap()),
    );

    // Another thread talks to the loop through a Send handle.
    let handle = reactor.handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(15));
        handle.call_from_thread(move |_| println!("[{:>6.1} ms] hello from another thread", ms(started)));
    });

    // Closing the write end makes the reader see EOF, which stops the reactor.
    reactor.call_later(Duration::from_millis(40), move |_| drop(writer.borrow_mut().take()));

    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        println!("[{:>6.1} ms] shutting down (running: {})", ms(started), r.is_running());
    });
    reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |r| {
        println!("[{:>6.1} ms] shut down (running: {})", ms(started), r.is_running());
    });
    reactor.call_when_running(move |_| println!("[{:>6.1} ms] reactor running", ms(started)));
    reactor.run()?;
    println!("run() returned after {:.1} ms", ms(started));
    Ok(())
}
