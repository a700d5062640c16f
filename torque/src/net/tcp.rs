//! TCP: `listen_tcp`, `connect_tcp` and the [`Connector`] (Twisted's `IReactorTCP`).

use crate::sys::fd::{AsRawFd, RawFd};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::stream::OnClosed;
use super::{Address, ClientFactory, Factory, FactoryRef, ListeningPort, NetError, Transport};
use crate::FdHandlerRef;
use crate::backend::Interest;
use crate::defer::{Deferred, Failure};
use crate::{DelayedCall, FdHandler, LostReason, Reactor, WeakReactor};

/// Options for [`Reactor::listen_tcp`].
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// The interface to bind (default: every IPv4 interface, as in Twisted). Use
    /// `::` for IPv6, and `ipv6_only: Some(false)` for dual-stack.
    pub interface: IpAddr,
    /// The listen backlog (default: the system's maximum, `SOMAXCONN` or
    /// Linux's `net.core.somaxconn`, as Go and nginx-class servers use;
    /// Twisted's 50 overflows under bursts of connections). Lower it here.
    pub backlog: i32,
    /// For IPv6 interfaces: `Some(true)` IPv6 only, `Some(false)` dual-stack,
    /// `None` the system default.
    pub ipv6_only: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            backlog: crate::sys::socket::max_backlog(),
            ipv6_only: None,
        }
    }
}

impl ListenOptions {
    /// Options binding `interface`.
    pub fn interface(interface: IpAddr) -> ListenOptions {
        ListenOptions { interface, ..ListenOptions::default() }
    }
}

/// Options for [`Reactor::connect_tcp`] and [`Reactor::connect_unix`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Give up after this long (default 30 s, as in Twisted); `None` waits forever.
    pub timeout: Option<Duration>,
    /// Bind the local end to this address first.
    pub bind_address: Option<SocketAddr>,
    /// Give up resolving a host name after this long, failing with
    /// [`NetError::DnsLookup`] that says so; `None` (the default): only
    /// `timeout` bounds it. (The lookup itself, `getaddrinfo` on the thread
    /// pool, cannot be interrupted; its late answer is ignored.)
    pub resolve_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { timeout: Some(Duration::from_secs(30)), bind_address: None, resolve_timeout: None }
    }
}

pub(crate) fn listen_error(address: impl fmt::Display, source: io::Error) -> NetError {
    NetError::CannotListen { address: address.to_string(), source }
}

impl Reactor {
    /// Listens for TCP connections on `port` (0: an ephemeral port; ask the
    /// returned port for its address), building a protocol per connection.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use torque::net::{ListenOptions, Protocol, Transport, factory_fn};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
    ///         t.write(data);
    ///     }
    /// }
    /// let reactor = torque::Reactor::new()?;
    /// let options = ListenOptions::interface(Ipv4Addr::LOCALHOST.into());
    /// let port = reactor.listen_tcp(0, factory_fn(|_| Echo), options)?;
    /// assert_ne!(port.address().port(), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tcp<F: Factory + 'static>(
        &self,
        port: u16,
        factory: impl Into<FactoryRef<F>>,
        options: ListenOptions,
    ) -> Result<ListeningPort, NetError> {
        self.backend().require(crate::Capability::Tcp)?;
        let address = SocketAddr::new(options.interface, port);
        let socket = bind_tcp(address, &options).map_err(|e| listen_error(address, e))?;
        // Listening again binds the port number it got, even when 0 was asked for.
        let bound = socket.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(address);
        let rebind = Box::new(move || bind_tcp(bound, &options));
        Ok(ListeningPort::start(self, socket, factory.into().erase(), None, Some(rebind))?)
    }

    /// Resolves a host name to its addresses on the thread pool (Twisted's
    /// `reactor.resolve`, which gives the first IPv4 one). An IP address
    /// answers at once. Fails with [`NetError::DnsLookup`] when the name has
    /// no address, or none came within `timeout` (the lookup itself cannot be
    /// interrupted; its late answer is ignored).
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = torque::Reactor::new()?;
    /// let addresses = reactor.resolve("localhost", Duration::from_secs(10));
    /// let found = std::rc::Rc::new(std::cell::RefCell::new(None));
    /// let f = found.clone();
    /// drop(addresses.add_both(move |result| {
    ///     *f.borrow_mut() = Some(result.map_err(|e| e.to_string()));
    ///     Ok::<(), torque::defer::Failure>(())
    /// }));
    /// while found.borrow().is_none() {
    ///     reactor.iterate(Duration::from_millis(50))?;
    /// }
    /// assert!(found.borrow().as_ref().unwrap().as_ref().unwrap().iter().any(|ip| ip.is_loopback()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve(&self, host: &str, timeout: Duration) -> Deferred<Vec<IpAddr>> {
        let (deferred, resolver) = Deferred::pending();
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            let _ = resolver.callback(vec![ip]);
            return deferred;
        }
        let resolver = Rc::new(RefCell::new(Some(resolver)));
        let (late, name) = (Rc::clone(&resolver), host.to_owned());
        let timer = self.call_later(timeout, move |_| {
            if let Some(resolver) = late.borrow_mut().take() {
                let reason = format!("no answer within {timeout:?}");
                let _ = resolver.errback(Failure::new(NetError::DnsLookup { host: name, reason }));
            }
        });
        let lookup = host.to_owned();
        self.run_in_thread(
            move || (lookup.as_str(), 0).to_socket_addrs().map(|a| a.map(|a| a.ip()).collect::<Vec<_>>()),
            {
                let host = host.to_owned();
                move |_, result: Result<io::Result<Vec<IpAddr>>, crate::ThreadPanic>| {
                    let _ = timer.cancel();
                    let Some(resolver) = resolver.borrow_mut().take() else { return };
                    let reason = match result {
                        Ok(Ok(mut ips)) if !ips.is_empty() => {
                            ips.dedup();
                            let _ = resolver.callback(ips);
                            return;
                        }
                        Ok(Ok(_)) => "no addresses".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(panic) => panic.to_string(),
                    };
                    let _ = resolver.errback(Failure::new(NetError::DnsLookup { host, reason }));
                }
            },
        );
        deferred
    }

    /// Connects to `host:port` over TCP. Host names are resolved on the thread
    /// pool; each resolved address is tried in turn. The factory hears the outcome
    /// (`client_connection_failed` or a protocol's `connection_made`), never inside
    /// this call. The returned [`Connector`] can stop, disconnect and reconnect.
    pub fn connect_tcp<F: ClientFactory + 'static>(
        &self,
        host: &str,
        port: u16,
        factory: impl Into<FactoryRef<F>>,
        options: ConnectOptions,
    ) -> Connector {
        let target = Target::Tcp { host: host.to_owned(), port };
        Connector::create(self, target, factory.into().erase_client(), options)
    }
}

fn bind_tcp(address: SocketAddr, options: &ListenOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    if let (SocketAddr::V6(_), Some(only)) = (address, options.ipv6_only) {
        socket.set_only_v6(only)?;
    }
    socket.bind(&address.into())?;
    socket.listen(options.backlog)?;
    Ok(socket)
}

// ----- connecting -----

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Tcp {
        host: String,
        port: u16,
    },
    Unix(SockAddr, String),
    /// A name that cannot be a socket address; every attempt fails with this.
    Invalid(String, io::ErrorKind, String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(_, name) => write!(f, "unix:{name}"),
            Target::Invalid(name, _, _) => f.write_str(name),
        }
    }
}

enum ConnectorState {
    Disconnected,
    Resolving,
    Connecting { socket: Socket, handler: Rc<RefCell<ConnectHandler>>, rest: Vec<SockAddr> },
    Connected(Transport),
}

struct ConnectorInner {
    reactor: WeakReactor,
    target: Target,
    options: ConnectOptions,
    factory: FactoryRef<dyn ClientFactory>,
    state: RefCell<ConnectorState>,
    timeout: RefCell<Option<DelayedCall>>,
    /// Bumped per attempt, so results of an abandoned attempt are ignored.
    attempt: Cell<u64>,
    /// This connector counts as one of the factory's users (Twisted's
    /// `factoryStarted`): from `connect` until an attempt or connection ends
    /// without the factory connecting again.
    factory_started: Cell<bool>,
}

/// An outgoing connection attempt and its connection (Twisted's `IConnector`).
/// Clones share one connector.
#[derive(Clone)]
pub struct Connector {
    inner: Rc<ConnectorInner>,
}

pub(crate) struct ConnectHandler {
    connector: Connector,
    attempt: u64,
}

impl FdHandler for ConnectHandler {
    fn writable(&mut self, reactor: &Reactor) {
        self.connector.socket_ready(reactor, self.attempt);
    }
    fn connection_lost(&mut self, reactor: &Reactor, reason: LostReason) {
        let error = match reason {
            LostReason::Error(e) => e,
            other => io::Error::other(other.to_string()),
        };
        self.connector.attempt_failed(reactor, self.attempt, error);
    }
}

impl Connector {
    pub(crate) fn create(
        reactor: &Reactor,
        target: Target,
        factory: FactoryRef<dyn ClientFactory>,
        options: ConnectOptions,
    ) -> Connector {
        let connector = Connector::detached(reactor, target, factory, options);
        connector.connect();
        connector
    }

    /// A connector that has not started connecting (the recording reactor's).
    pub(crate) fn detached(
        reactor: &Reactor,
        target: Target,
        factory: FactoryRef<dyn ClientFactory>,
        options: ConnectOptions,
    ) -> Connector {
        Connector {
            inner: Rc::new(ConnectorInner {
                reactor: reactor.downgrade(),
                target,
                options,
                factory,
                state: RefCell::new(ConnectorState::Disconnected),
                timeout: RefCell::new(None),
                attempt: Cell::new(0),
                factory_started: Cell::new(false),
            }),
        }
    }

    pub(crate) fn factory(&self) -> &FactoryRef<dyn ClientFactory> {
        &self.inner.factory
    }

    /// The reactor this connector runs on, if it still exists.
    pub fn reactor(&self) -> Option<Reactor> {
        self.inner.reactor.upgrade()
    }

    /// Where this connector connects to (`host:port` or `unix:path`).
    pub fn destination(&self) -> String {
        self.inner.target.to_string()
    }

    /// The connection, while connected.
    pub fn transport(&self) -> Option<Transport> {
        match &*self.inner.state.borrow() {
            ConnectorState::Connected(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// Whether an attempt is under way.
    pub fn is_connecting(&self) -> bool {
        matches!(&*self.inner.state.borrow(), ConnectorState::Resolving | ConnectorState::Connecting { .. })
    }

    /// Starts a new attempt (after a failure or a lost connection). Does nothing
    /// while connecting or connected.
    pub fn connect(&self) {
        if !matches!(&*self.inner.state.borrow(), ConnectorState::Disconnected) {
            return;
        }
        let Some(reactor) = self.inner.reactor.upgrade() else { return };
        let attempt = self.inner.attempt.get() + 1;
        self.inner.attempt.set(attempt);
        *self.inner.state.borrow_mut() = ConnectorState::Resolving;
        if !self.inner.factory_started.replace(true) {
            self.inner.factory.do_start(Some(&reactor));
        }
        // connect() is often called from the factory's own failure or loss
        // callback; then it is told it started connecting once that returns.
        self.with_factory(&reactor, |f, c| f.started_connecting(c));
        if let Some(timeout) = self.inner.options.timeout {
            let this = self.clone();
            let call = reactor.call_later(timeout, move |r| {
                let address = this.destination();
                this.fail(r, attempt, NetError::Timeout { address });
            });
            *self.inner.timeout.borrow_mut() = Some(call);
        }
        match self.inner.target.clone() {
            Target::Invalid(address, kind, message) => {
                let this = self.clone();
                reactor.at_end_of_pass(move |r| {
                    let source = io::Error::new(kind, message);
                    this.fail(r, attempt, NetError::Connect { address, source });
                });
            }
            Target::Unix(addr, _) => {
                let this = self.clone();
                reactor.at_end_of_pass(move |r| this.try_addresses(r, attempt, vec![addr]));
            }
            Target::Tcp { host, port } => {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    let this = self.clone();
                    let addr = SockAddr::from(SocketAddr::new(ip, port));
                    reactor.at_end_of_pass(move |r| this.try_addresses(r, attempt, vec![addr]));
                } else {
                    if let Some(limit) = self.inner.options.resolve_timeout {
                        let (this, host) = (self.clone(), host.clone());
                        reactor.call_later(limit, move |r| {
                            if this.current(attempt)
                                && matches!(&*this.inner.state.borrow(), ConnectorState::Resolving)
                            {
                                let reason = format!("no answer within {limit:?}");
                                this.fail(r, attempt, NetError::DnsLookup { host, reason });
                            }
                        });
                    }
                    let this = self.clone();
                    let lookup_host = host.clone();
                    reactor.run_in_thread(
                        move || (lookup_host.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()),
                        move |r, result| {
                            let reason = match result {
                                Ok(Ok(addrs)) if !addrs.is_empty() => {
                                    let addrs = addrs.into_iter().map(SockAddr::from).collect();
                                    return this.try_addresses(r, attempt, addrs);
                                }
                                Ok(Ok(_)) => "no addresses".to_owned(),
                                Ok(Err(e)) => e.to_string(),
                                Err(panic) => panic.to_string(),
                            };
                            this.fail(r, attempt, NetError::DnsLookup { host, reason });
                        },
                    );
                }
            }
        }
    }

    /// Runs `f` on the factory now, or — while it runs further up the stack —
    /// on a later pass (never skipped). A panic is logged.
    fn with_factory(&self, reactor: &Reactor, f: impl FnOnce(&mut dyn ClientFactory, &Connector) + 'static) {
        let Ok(mut factory) = self.inner.factory.factory.try_borrow_mut() else {
            let this = self.clone();
            reactor.call_later(std::time::Duration::ZERO, move |r| this.with_factory(r, f));
            return;
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *factory, self)));
        drop(factory);
        if let Err(payload) = result {
            tracing::error!(panic = %crate::reactor::panic_message(&*payload), "a client factory callback panicked");
        }
    }

    /// After the factory heard an attempt or connection end: unless it
    /// connected again meanwhile, this connector stops being its user (the
    /// last user stops it) — outside the factory's borrow, so the stop is
    /// never skipped.
    fn stop_factory_unless_reconnecting(&self, reactor: &Reactor) {
        let idle = matches!(&*self.inner.state.borrow(), ConnectorState::Disconnected);
        if idle && self.inner.factory_started.replace(false) {
            self.inner.factory.do_stop(Some(reactor), None);
        }
    }

    fn current(&self, attempt: u64) -> bool {
        self.inner.attempt.get() == attempt
            && matches!(
                &*self.inner.state.borrow(),
                ConnectorState::Resolving | ConnectorState::Connecting { .. }
            )
    }

    /// Tries `addrs` in order; the first that connects wins.
    fn try_addresses(&self, reactor: &Reactor, attempt: u64, mut addrs: Vec<SockAddr>) {
        if !self.current(attempt) {
            return;
        }
        let mut last_error = None;
        addrs.reverse();
        while let Some(addr) = addrs.pop() {
            match self.start_socket(reactor, &addr) {
                Ok((socket, true)) => {
                    addrs.clear();
                    *self.inner.state.borrow_mut() = ConnectorState::Resolving;
                    self.established(reactor, socket);
                    return;
                }
                Ok((socket, false)) => {
                    let handler = Rc::new(RefCell::new(ConnectHandler { connector: self.clone(), attempt }));
                    let fd = socket.as_raw_fd();
                    if let Err(e) = reactor.watch(fd, Rc::clone(&handler) as FdHandlerRef, Interest::WRITE) {
                        reactor.forget_completions(fd);
                        last_error = Some(NetError::Reactor(e));
                        continue;
                    }
                    addrs.reverse();
                    *self.inner.state.borrow_mut() =
                        ConnectorState::Connecting { socket, handler, rest: addrs };
                    return;
                }
                Err(e) => last_error = Some(self.connect_error(e)),
            }
        }
        let reason = last_error.unwrap_or(NetError::Connect {
            address: self.destination(),
            source: io::Error::from(io::ErrorKind::AddrNotAvailable),
        });
        self.fail(reactor, attempt, reason);
    }

    /// A non-blocking socket with `connect` started; `true` if already connected.
    fn start_socket(&self, reactor: &Reactor, addr: &SockAddr) -> io::Result<(Socket, bool)> {
        let socket = Socket::new(addr.domain(), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        if let Some(bind) = self.inner.options.bind_address {
            socket.bind(&bind.into())?;
        }
        // A completion backend connects it itself (IOCP's ConnectEx); its
        // end comes as the same writable event.
        if let Some(started) = reactor.start_connect(socket.as_raw_fd(), addr) {
            return match started {
                Ok(()) => Ok((socket, false)),
                Err(e) => {
                    reactor.forget_completions(socket.as_raw_fd());
                    Err(e)
                }
            };
        }
        match socket.connect(addr) {
            Ok(()) => Ok((socket, true)),
            // Only EINPROGRESS means "under way". A UNIX socket whose server's
            // backlog is full answers EAGAIN instead: that attempt failed.
            Err(e) if e.raw_os_error() == Some(crate::sys::errno::EINPROGRESS) => Ok((socket, false)),
            Err(e) => Err(e),
        }
    }

    fn connect_error(&self, e: io::Error) -> NetError {
        let address = self.destination();
        match e.raw_os_error() {
            Some(crate::sys::errno::ECONNREFUSED) | Some(crate::sys::errno::ENOENT) => {
                NetError::ConnectionRefused { address }
            }
            Some(crate::sys::errno::ETIMEDOUT) => NetError::Timeout { address },
            _ => NetError::Connect { address, source: e },
        }
    }

    fn socket_ready(&self, reactor: &Reactor, attempt: u64) {
        if !self.current(attempt) {
            return;
        }
        let state = std::mem::replace(&mut *self.inner.state.borrow_mut(), ConnectorState::Resolving);
        let ConnectorState::Connecting { socket, handler, rest } = state else { return };
        let fd = socket.as_raw_fd();
        reactor.unwatch(fd, Interest::WRITE);
        drop(handler);
        let failure = match reactor.take_connect_result(fd) {
            Some(result) => result.err(),
            None => socket.take_error().unwrap_or_else(Some),
        };
        match failure {
            None => self.established(reactor, socket),
            Some(e) => {
                reactor.forget_completions(fd);
                drop(socket);
                if rest.is_empty() {
                    let reason = self.connect_error(e);
                    self.fail(reactor, attempt, reason);
                } else {
                    self.try_addresses(reactor, attempt, rest);
                }
            }
        }
    }

    fn attempt_failed(&self, reactor: &Reactor, attempt: u64, e: io::Error) {
        let reason = self.connect_error(e);
        self.fail(reactor, attempt, reason);
    }

    fn cancel_timeout(&self) {
        let timeout = self.inner.timeout.borrow_mut().take();
        if let Some(call) = timeout {
            let _ = call.cancel();
        }
    }

    fn established(&self, reactor: &Reactor, socket: Socket) {
        self.cancel_timeout();
        let peer = socket.peer_addr().map(|a| Address::from_sockaddr(&a)).unwrap_or(Address::UnixUnnamed);
        let attempt = self.inner.attempt.get();
        let protocol = self.inner.factory.build(&peer);
        if self.inner.attempt.get() != attempt
            || !matches!(&*self.inner.state.borrow(), ConnectorState::Resolving)
        {
            // build_protocol itself stopped this attempt (stop_connecting).
            reactor.forget_completions(socket.as_raw_fd());
            return;
        }
        let Some(protocol) = protocol else {
            reactor.forget_completions(socket.as_raw_fd());
            drop(socket);
            let source = io::Error::other("the client factory built no protocol for the connection");
            self.fail(reactor, attempt, NetError::Connect { address: self.destination(), source });
            return;
        };
        let this = self.clone();
        let on_closed: OnClosed = Box::new(move |r, reason| {
            *this.inner.state.borrow_mut() = ConnectorState::Disconnected;
            let reason = super::stream::clone_reason(reason);
            this.with_factory(r, move |f, c| {
                f.client_connection_lost(c, &reason);
                if let Some(r) = c.reactor() {
                    let c = c.clone();
                    r.at_end_of_pass(move |r| c.stop_factory_unless_reconnecting(r));
                }
            });
        });
        // Connected before connection_made runs, so the protocol may disconnect.
        if let Err(e) = Transport::start_with(reactor, socket, None, protocol, Some(on_closed), |t| {
            *self.inner.state.borrow_mut() = ConnectorState::Connected(t.clone());
        }) {
            *self.inner.state.borrow_mut() = ConnectorState::Resolving;
            self.fail(reactor, attempt, NetError::Reactor(e));
        }
    }

    /// Ends the attempt with `reason`, telling the factory at the end of the pass.
    fn fail(&self, reactor: &Reactor, attempt: u64, reason: NetError) {
        if !self.current(attempt) {
            return;
        }
        self.cancel_timeout();
        let state = std::mem::replace(&mut *self.inner.state.borrow_mut(), ConnectorState::Disconnected);
        if let ConnectorState::Connecting { socket, handler, .. } = state {
            reactor.unwatch(socket.as_raw_fd(), Interest::WRITE);
            reactor.forget_completions(socket.as_raw_fd());
            drop(handler);
            drop(socket);
        }
        let this = self.clone();
        reactor.at_end_of_pass(move |r| {
            this.with_factory(r, move |f, c| {
                f.client_connection_failed(c, reason);
                if let Some(r) = c.reactor() {
                    let c = c.clone();
                    r.at_end_of_pass(move |r| c.stop_factory_unless_reconnecting(r));
                }
            });
        });
    }

    /// Abandons an attempt under way; the factory hears `Cancelled`.
    pub fn stop_connecting(&self) {
        let Some(reactor) = self.inner.reactor.upgrade() else { return };
        let attempt = self.inner.attempt.get();
        self.fail(&reactor, attempt, NetError::Cancelled);
    }

    /// Closes the connection if connected (`lose_connection`), or stops
    /// connecting if an attempt is under way.
    pub fn disconnect(&self) {
        let transport = self.transport();
        match transport {
            Some(t) => t.lose_connection(),
            None => self.stop_connecting(),
        }
    }

    /// The fd of the socket being connected, while connecting.
    pub fn connecting_fd(&self) -> Option<RawFd> {
        match &*self.inner.state.borrow() {
            ConnectorState::Connecting { socket, .. } => Some(socket.as_raw_fd()),
            _ => None,
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("destination", &self.destination()).finish()
    }
}
