//! One reactor per core (`--workers N`).
//!
//! The first reactor — this thread's, which hears the stop signals — opens the
//! ports. Each further worker is a thread with its own reactor on the same
//! backend, serving duplicates of those listening sockets with its own copy of
//! the service, so every connection is accepted, read and answered on one
//! thread, by whichever reactor took it (nothing is shared between them but
//! the sockets, the log and, for `torque web`, the connection count). The
//! first reactor's shutdown stops every worker — each stops listening and
//! drains its connections with the same grace — and waits for them.

use std::cell::RefCell;
use std::error::Error;
use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use torque::fd::OwnedFd;

use torque::defer::Deferred;
use torque::net::ListeningPort;
use torque::{Phase, Reactor, ReactorHandle, SystemEvent};

use crate::service::{StreamService, run_services};

/// Builds the service on a worker's reactor: the same service as the first
/// reactor's (its ports are handed over separately).
pub type BuildService = Arc<dyn Fn(&Reactor) -> Result<StreamService, Box<dyn Error>> + Send + Sync>;

/// The first error a worker met, reported when the command ends.
pub type WorkerError = Arc<Mutex<Option<String>>>;

/// The running workers, on the first reactor's thread.
#[derive(Default)]
struct Running {
    handles: Vec<ReactorHandle>,
    threads: Vec<JoinHandle<()>>,
}

/// How many workers to run when none is asked for: one per core.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Once `reactor` runs and its service has opened `ports`, starts `extra`
/// more reactors serving them with services from `build`; stops and waits for
/// them before `reactor` shuts down. A worker that fails stops the whole
/// command; its error is put in the returned slot.
pub fn start(
    reactor: &Reactor,
    extra: usize,
    ports: Rc<RefCell<Vec<ListeningPort>>>,
    build: BuildService,
    grace: Duration,
) -> WorkerError {
    let error: WorkerError = Arc::default();
    let running = Rc::new(RefCell::new(Running::default()));
    {
        let (running, error) = (Rc::clone(&running), Arc::clone(&error));
        // Registered after `run_services`, so it runs once the ports are open.
        reactor.call_when_running(move |r| {
            if ports.borrow().is_empty() {
                return; // the service did not start; the reactor is stopping
            }
            for index in 1..=extra {
                match spawn_worker(r, index, &ports.borrow(), Arc::clone(&build), grace, Arc::clone(&error)) {
                    Ok((handle, thread)) => {
                        let mut running = running.borrow_mut();
                        running.handles.push(handle);
                        running.threads.push(thread);
                    }
                    Err(e) => {
                        fail(&error, format!("worker {index} could not start: {e}"));
                        let _ = r.stop();
                        return;
                    }
                }
            }
            tracing::info!(workers = extra + 1, "one reactor per worker thread");
        });
    }
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        let Running { handles, threads } = std::mem::take(&mut *running.borrow_mut());
        if threads.is_empty() {
            return Deferred::succeed(());
        }
        for handle in &handles {
            handle.call_from_thread(|worker| {
                let _ = worker.stop();
            });
        }
        // Each worker's own stop is bounded by the grace period (and its
        // services' slack), so this join ends.
        r.defer_to_thread(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
    });
    error
}

fn fail(slot: &WorkerError, message: String) {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(message);
    }
}

/// Starts worker `index` on the first reactor's backend; returns once its
/// reactor is built (its handle) or failed.
fn spawn_worker(
    first: &Reactor,
    index: usize,
    ports: &[ListeningPort],
    build: BuildService,
    grace: Duration,
    error: WorkerError,
) -> Result<(ReactorHandle, JoinHandle<()>), Box<dyn Error>> {
    let sockets: Vec<OwnedFd> =
        ports.iter().map(ListeningPort::try_clone_socket).collect::<Result<_, _>>()?;
    let backend = first.backend().kind;
    let first = first.handle();
    let (ready, built) = mpsc::channel::<Result<ReactorHandle, String>>();
    let thread = std::thread::Builder::new().name(format!("torque-worker-{index}")).spawn(move || {
        let reactor = match Reactor::builder().backend(backend).handle_signals(false).build() {
            Ok(reactor) => reactor,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let service = match build(&reactor) {
            Ok(service) => service.adopting(sockets),
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let failed = run_services(&reactor, Rc::new(RefCell::new(service)), grace);
        let _ = ready.send(Ok(reactor.handle()));
        let outcome = reactor.run().map_err(|e| e.to_string());
        let failure = failed.borrow_mut().take().map(|e| e.to_string()).or(outcome.err());
        if let Some(message) = failure {
            tracing::error!(worker = index, error = %message, "worker failed; stopping");
            fail(&error, format!("worker {index}: {message}"));
            first.call_from_thread(|r| {
                let _ = r.stop();
            });
        }
    })?;
    match built.recv() {
        Ok(Ok(handle)) => Ok((handle, thread)),
        Ok(Err(message)) => {
            let _ = thread.join();
            Err(message.into())
        }
        Err(_) => {
            let _ = thread.join();
            Err("the worker thread ended before its reactor was built".into())
        }
    }
}
