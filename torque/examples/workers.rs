//! One reactor per core: an echo server whose port is served by N reactor
//! threads. The main thread's reactor opens the port and hears Ctrl-C; each
//! worker thread runs its own reactor on a duplicate of the listening socket,
//! so every connection lives on the one thread that accepted it (no locks, no
//! `Send` protocols). `torque web --workers N` and `torque echo --workers N`
//! work this way.
//!
//! ```text
//! cargo run --release --example workers                 # one reactor per core, tcp:8000
//! cargo run --release --example workers -- 4 tcp:9000   # four reactors
//! nc 127.0.0.1 8000
//! ```

use std::thread::JoinHandle;

use torque::net::{Protocol, Transport, factory_fn, server_from_string};
use torque::{Phase, Reactor, ReactorHandle, SystemEvent};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() {
    if let Err(e) = serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(cores).max(1);
    let endpoint = server_from_string(&args.next().unwrap_or_else(|| "tcp:8000:interface=127.0.0.1".into()))?;

    let reactor = Reactor::new()?;
    let port = endpoint.listen(&reactor, factory_fn(|_| Echo))?;
    println!("echo on {} with {count} reactors ({} backend)", port.address(), reactor.backend().name);

    // Each worker: its own reactor, same backend, serving a duplicate of the socket.
    let mut workers: Vec<(ReactorHandle, JoinHandle<()>)> = Vec::new();
    for index in 1..count {
        let socket = port.try_clone_socket()?;
        let (endpoint, backend) = (endpoint.clone(), reactor.backend().kind);
        let (ready, handle) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let run = || -> Result<(), Box<dyn std::error::Error>> {
                let reactor = Reactor::builder().backend(backend).handle_signals(false).build()?;
                endpoint.adopt(&reactor, socket, factory_fn(|_| Echo))?;
                let _ = ready.send(reactor.handle());
                reactor.run()?;
                Ok(())
            };
            if let Err(e) = run() {
                eprintln!("worker {index}: {e}");
            }
        });
        workers.push((handle.recv()?, thread));
    }

    // Stopping the main reactor stops the workers, and waits for them.
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        let workers = std::mem::take(&mut workers);
        for (handle, _) in &workers {
            handle.call_from_thread(|worker| {
                let _ = worker.stop();
            });
        }
        r.defer_to_thread(move || {
            for (_, thread) in workers {
                let _ = thread.join();
            }
        })
    });
    reactor.run()?;
    Ok(())
}
