//! Services (Twisted's `application.service`): things that start with the reactor
//! and stop, possibly slowly, when it shuts down.
//!
//! A [`Service`] starts synchronously (binding a port either works or is an error
//! the command reports) and stops with a [`Deferred`], so a shutdown can wait for
//! in-flight work. [`MultiService`] runs children: started in order, stopped in
//! reverse, all at once, its own stop firing when every child's has.
//! [`run_services`] ties a tree to a reactor's startup and shutdown.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;
use torque::fd::OwnedFd;

use torque::Reactor;
use torque::defer::{Deferred, Failure, all_settled};
use torque::net::{Factory, FactoryRef, ListeningPort, NetError, ServerEndpoint};
use torque::{Phase, SystemEvent};

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A listening port could not be opened.
    #[error("{service}: cannot listen on {endpoint}: {source}")]
    Listen {
        /// The service's name.
        service: String,
        /// The endpoint, as given.
        endpoint: String,
        /// What went wrong.
        source: NetError,
    },
    /// Anything else, described.
    #[error("{service}: {message}")]
    Other {
        /// The service's name.
        service: String,
        /// What went wrong.
        message: String,
    },
}

/// Something that runs while the reactor does (Twisted's `IService`).
pub trait Service {
    /// A short name for logs and errors.
    fn name(&self) -> &str;
    /// Starts: open ports, schedule work. Called once the reactor runs.
    fn start_service(&mut self, reactor: &Reactor) -> Result<(), ServiceError>;
    /// Stops: stop taking new work, finish what is in flight (within
    /// `grace`), then fire the Deferred.
    fn stop_service(&mut self, reactor: &Reactor, grace: Duration) -> Deferred<()>;
}

/// A service made of services (Twisted's `MultiService`).
#[derive(Default)]
pub struct MultiService {
    children: Vec<Box<dyn Service>>,
    started: usize,
}

impl fmt::Debug for MultiService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.children.iter().map(|c| c.name()).collect();
        f.debug_struct("MultiService").field("children", &names).field("started", &self.started).finish()
    }
}

impl MultiService {
    /// An empty service tree.
    pub fn new() -> MultiService {
        MultiService::default()
    }

    /// Adds a child, started after those added before it.
    pub fn add(&mut self, child: impl Service + 'static) {
        self.children.push(Box::new(child));
    }
}

impl Service for MultiService {
    fn name(&self) -> &str {
        "services"
    }

    /// Starts the children in order. If one fails, those already started are
    /// stopped again and the error is returned.
    fn start_service(&mut self, reactor: &Reactor) -> Result<(), ServiceError> {
        for index in self.started..self.children.len() {
            if let Err(e) = self.children[index].start_service(reactor) {
                for started in self.children[..index].iter_mut().rev() {
                    drop(started.stop_service(reactor, Duration::ZERO));
                }
                self.started = 0;
                return Err(e);
            }
            self.started = index + 1;
        }
        Ok(())
    }

    /// Stops the started children, last first, all at once; fires when every
    /// child's stop has (a failing child is logged, not fatal).
    fn stop_service(&mut self, reactor: &Reactor, grace: Duration) -> Deferred<()> {
        let started = std::mem::take(&mut self.started);
        let stops: Vec<Deferred<()>> =
            self.children[..started].iter_mut().rev().map(|c| c.stop_service(reactor, grace)).collect();
        all_settled(stops, true).map(|results| {
            for failure in results.into_iter().filter_map(Result::err) {
                tracing::warn!(error = %failure, "a service failed to stop cleanly");
            }
        })
    }
}

/// Something that can finish its connections gracefully when its service stops.
pub trait Drain {
    /// Stops taking new requests, finishes in-flight ones, closes the rest; fires
    /// when every connection has closed. Whatever is still open after `grace` is
    /// aborted.
    fn drain(&self, reactor: &Reactor, grace: Duration) -> Deferred<()>;
}

/// Opens one endpoint with the service's factory, or serves the socket given
/// for it (opened for that endpoint by another reactor).
type ListenFn = Box<dyn Fn(&Reactor, &ServerEndpoint, Option<OwnedFd>) -> Result<ListeningPort, NetError>>;

/// Listens on endpoints with a factory (Twisted's `StreamServerEndpointService`).
/// Stopping closes the ports, then drains the connections if a [`Drain`] is set.
pub struct StreamService {
    name: String,
    endpoints: Vec<(String, ServerEndpoint)>,
    listen: ListenFn,
    drain: Option<Rc<dyn Drain>>,
    ports: Rc<RefCell<Vec<ListeningPort>>>,
    scheme: Option<&'static str>,
    /// Sockets to serve instead of opening the endpoints, one per endpoint
    /// (a worker reactor's share of the ports); taken by the first start.
    adopted: Vec<OwnedFd>,
}

impl fmt::Debug for StreamService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<&str> = self.endpoints.iter().map(|(text, _)| text.as_str()).collect();
        f.debug_struct("StreamService").field("name", &self.name).field("endpoints", &endpoints).finish()
    }
}

impl StreamService {
    /// A service named `name` listening on `endpoints` (each with the text it
    /// was parsed from, for messages) with `factory`.
    pub fn new<F: Factory + 'static>(
        name: impl Into<String>,
        endpoints: Vec<(String, ServerEndpoint)>,
        factory: impl Into<FactoryRef<F>>,
    ) -> StreamService {
        let factory = factory.into();
        StreamService {
            name: name.into(),
            endpoints,
            listen: Box::new(move |reactor, endpoint, socket| match socket {
                Some(socket) => endpoint.adopt(reactor, socket, factory.clone()),
                None => endpoint.listen(reactor, factory.clone()),
            }),
            drain: None,
            ports: Rc::new(RefCell::new(Vec::new())),
            scheme: None,
            adopted: Vec::new(),
        }
    }

    /// Serves `sockets` (one per endpoint, in order: duplicates of the
    /// [`ports`](StreamService::ports) the same service opened on another
    /// reactor) instead of opening the endpoints.
    pub fn adopting(mut self, sockets: Vec<OwnedFd>) -> StreamService {
        self.adopted = sockets;
        self
    }

    /// Drains connections with `drain` when stopping.
    pub fn with_drain(mut self, drain: Rc<dyn Drain>) -> StreamService {
        self.drain = Some(drain);
        self
    }

    /// Logs each TCP port as a URL with this scheme (`http`; `https` on TLS
    /// endpoints) when it opens.
    pub fn with_url_scheme(mut self, scheme: &'static str) -> StreamService {
        self.scheme = Some(scheme);
        self
    }

    /// The ports opened so far (for their bound addresses).
    pub fn ports(&self) -> Rc<RefCell<Vec<ListeningPort>>> {
        Rc::clone(&self.ports)
    }
}

impl Service for StreamService {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_service(&mut self, reactor: &Reactor) -> Result<(), ServiceError> {
        let mut adopted = std::mem::take(&mut self.adopted).into_iter();
        let adopting = adopted.len() > 0;
        for (text, endpoint) in &self.endpoints {
            let socket = adopted.next();
            if adopting && socket.is_none() {
                return Err(ServiceError::Other {
                    service: self.name.clone(),
                    message: format!("no socket was handed over for {text}"),
                });
            }
            let port = (self.listen)(reactor, endpoint, socket).map_err(|source| ServiceError::Listen {
                service: self.name.clone(),
                endpoint: text.clone(),
                source,
            })?;
            match (self.scheme, port.address().socket_addr()) {
                // A worker serving a port the first reactor announced.
                _ if adopting => {}
                (Some(scheme), Some(address)) => {
                    // The secure form of the scheme over TLS (https).
                    let secure = if endpoint.is_tls() { "s" } else { "" };
                    tracing::info!(service = %self.name, address = %port.address(), "listening on {scheme}{secure}://{address}/")
                }
                _ => tracing::info!(service = %self.name, address = %port.address(), "listening"),
            }
            self.ports.borrow_mut().push(port);
        }
        Ok(())
    }

    fn stop_service(&mut self, reactor: &Reactor, grace: Duration) -> Deferred<()> {
        let ports = std::mem::take(&mut *self.ports.borrow_mut());
        let closing: Vec<Deferred<()>> = ports.iter().map(ListeningPort::stop_listening).collect();
        let closed = all_settled(closing, true);
        match self.drain.clone() {
            None => closed.map(|_| ()),
            Some(drain) => {
                let reactor = reactor.clone();
                closed.add_callback(move |_| drain.drain(&reactor, grace))
            }
        }
    }
}

/// How long past the grace period a shutdown waits for services that have not
/// finished stopping before it goes on without them.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// Starts `services` when `reactor` starts and stops them before it shuts
/// down, waiting for their Deferred — at most `grace` plus a few seconds, so a
/// service that never finishes cannot hang the shutdown. A service failing to
/// start stops the reactor; the error is returned through the slot.
pub fn run_services(
    reactor: &Reactor,
    services: Rc<RefCell<dyn Service>>,
    grace: Duration,
) -> Rc<RefCell<Option<ServiceError>>> {
    let failed = Rc::new(RefCell::new(None));
    let started = Rc::new(std::cell::Cell::new(false));
    {
        let services = Rc::clone(&services);
        let failed = Rc::clone(&failed);
        let started = Rc::clone(&started);
        reactor.call_when_running(move |r| {
            let result = services.borrow_mut().start_service(r);
            match result {
                Ok(()) => started.set(true),
                Err(e) => {
                    *failed.borrow_mut() = Some(e);
                    let _ = r.stop();
                }
            }
        });
    }
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move |r| {
        if !started.replace(false) {
            return Deferred::succeed(());
        }
        tracing::info!(grace = ?grace, "stopping services");
        let stopped = services.borrow_mut().stop_service(r, grace);
        stopped.add_timeout(r, grace + STOP_SLACK).add_errback(|failure| {
            tracing::warn!(error = %failure, "services did not finish stopping; shutting down anyway");
            Ok::<(), Failure>(())
        })
    });
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use torque::defer::Resolver;
    use torque::testing::FakeClock;

    /// Where a test finishes a service's stop.
    type StopSlot = Rc<RefCell<Option<Resolver<()>>>>;

    /// Records its starts and stops; its stop finishes when the test says.
    struct Recorded {
        name: &'static str,
        log: Rc<RefCell<Vec<String>>>,
        fail_start: bool,
        stop: StopSlot,
    }

    impl Service for Recorded {
        fn name(&self) -> &str {
            self.name
        }
        fn start_service(&mut self, _: &Reactor) -> Result<(), ServiceError> {
            self.log.borrow_mut().push(format!("start {}", self.name));
            if self.fail_start {
                return Err(ServiceError::Other { service: self.name.into(), message: "no".into() });
            }
            Ok(())
        }
        fn stop_service(&mut self, _: &Reactor, _: Duration) -> Deferred<()> {
            self.log.borrow_mut().push(format!("stop {}", self.name));
            let (done, resolver) = Deferred::pending();
            *self.stop.borrow_mut() = Some(resolver);
            done
        }
    }

    fn tree(log: &Rc<RefCell<Vec<String>>>, fail_second: bool) -> (MultiService, Vec<StopSlot>) {
        let mut tree = MultiService::new();
        let mut stops = Vec::new();
        for (name, fail_start) in [("a", false), ("b", fail_second)] {
            let stop = Rc::new(RefCell::new(None));
            stops.push(Rc::clone(&stop));
            tree.add(Recorded { name, log: Rc::clone(log), fail_start, stop });
        }
        (tree, stops)
    }

    #[test]
    fn shutdown_waits_for_every_stop_in_reverse_order() {
        let clock = FakeClock::new();
        let reactor = Reactor::builder().clock(clock.clone()).handle_signals(false).build().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (services, stops) = tree(&log, false);
        let failed = run_services(&reactor, Rc::new(RefCell::new(services)), Duration::from_secs(10));
        let after = Rc::new(std::cell::Cell::new(false));
        let flag = Rc::clone(&after);
        reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| flag.set(true));
        // Startup and shutdown fired by hand, so the test drives each pass.
        reactor.fire_system_event(SystemEvent::Startup);
        reactor.fire_system_event(SystemEvent::Shutdown);
        // Drive the loop by hand: the shutdown waits while stops are pending.
        for _ in 0..5 {
            reactor.iterate(Duration::ZERO).unwrap();
        }
        assert_eq!(*log.borrow(), ["start a", "start b", "stop b", "stop a"]);
        assert!(!after.get(), "shutdown waits for the services");
        stops[1].borrow_mut().take().unwrap().callback(()).unwrap();
        reactor.iterate(Duration::ZERO).unwrap();
        assert!(!after.get(), "one service is still stopping");
        stops[0].borrow_mut().take().unwrap().callback(()).unwrap();
        for _ in 0..3 {
            reactor.iterate(Duration::ZERO).unwrap();
        }
        assert!(after.get(), "both stopped: the shutdown finished");
        assert!(failed.borrow().is_none());
    }

    #[test]
    fn a_stop_that_never_finishes_cannot_hang_the_shutdown() {
        let clock = FakeClock::new();
        let reactor = Reactor::builder().clock(clock.clone()).handle_signals(false).build().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (services, _stops) = tree(&log, false);
        run_services(&reactor, Rc::new(RefCell::new(services)), Duration::from_secs(10));
        let after = Rc::new(std::cell::Cell::new(false));
        let flag = Rc::clone(&after);
        reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| flag.set(true));
        // Startup and shutdown fired by hand, so the test drives each pass.
        reactor.fire_system_event(SystemEvent::Startup);
        reactor.fire_system_event(SystemEvent::Shutdown);
        for _ in 0..3 {
            reactor.iterate(Duration::ZERO).unwrap();
        }
        assert!(!after.get());
        clock.advance(Duration::from_secs(10) + STOP_SLACK);
        for _ in 0..3 {
            reactor.iterate(Duration::ZERO).unwrap();
        }
        assert!(after.get(), "the shutdown went on after grace + slack");
    }

    #[test]
    fn a_failed_start_stops_those_started_and_reports() {
        let reactor = Reactor::builder().handle_signals(false).build().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (services, _stops) = tree(&log, true);
        let failed = run_services(&reactor, Rc::new(RefCell::new(services)), Duration::ZERO);
        reactor.run().unwrap();
        assert_eq!(*log.borrow(), ["start a", "start b", "stop a"]);
        assert!(failed.borrow().as_ref().unwrap().to_string().contains("b: no"));
    }
}
