//! Listening sockets (TCP and UNIX): accepting with a fairness cap and surviving
//! fd exhaustion.

use crate::sys::fd::{AsRawFd, RawFd};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use socket2::Socket;

use super::{Address, Factory, FactoryRef, NetError, Transport};
use crate::backend::Interest;
use crate::defer::Deferred;
use crate::{FdHandler, LostReason, Reactor, WeakReactor};

/// Connections accepted per readiness event at most, so one busy port cannot
/// starve the rest of the loop.
const ACCEPT_BATCH: usize = 64;

/// Makes the listening socket again, for [`ListeningPort::start_listening`].
pub(crate) type Rebind = Box<dyn Fn() -> io::Result<Socket>>;

pub(crate) struct PortInner {
    reactor: WeakReactor,
    socket: RefCell<Option<Socket>>,
    fd: Cell<RawFd>,
    address: Address,
    factory: FactoryRef<dyn Factory>,
    /// A reserved fd released on EMFILE so pending connections can be accepted and
    /// closed instead of spinning the loop (libuv's trick).
    spare: RefCell<Option<File>>,
    /// A UNIX socket file this port created and removes when it stops.
    unix_path: Option<PathBuf>,
    listening: Cell<bool>,
    /// The backend accepts for this socket (io_uring's multishot accept):
    /// connections are taken from it instead of `accept(2)`.
    completions: Cell<bool>,
    /// How to listen again after a stop (none for an adopted socket).
    rebind: Option<Rebind>,
}

/// A listening port (Twisted's `IListeningPort`).
#[derive(Clone)]
pub struct ListeningPort {
    inner: Rc<PortInner>,
}

pub(crate) struct PortHandler {
    port: Rc<PortInner>,
}

fn reserve_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

impl ListeningPort {
    /// Starts accepting on a bound, listening, non-blocking socket.
    pub(crate) fn start(
        reactor: &Reactor,
        socket: Socket,
        factory: FactoryRef<dyn Factory>,
        unix_path: Option<PathBuf>,
        rebind: Option<Rebind>,
    ) -> Result<ListeningPort, crate::ReactorError> {
        let address = socket.local_addr().map(|a| Address::from_sockaddr(&a)).unwrap_or(Address::UnixUnnamed);
        let inner = Rc::new(PortInner {
            reactor: reactor.downgrade(),
            socket: RefCell::new(None),
            fd: Cell::new(crate::sys::NO_FD),
            address,
            factory,
            spare: RefCell::new(None),
            unix_path,
            listening: Cell::new(false),
            completions: Cell::new(false),
            rebind,
        });
        let port = ListeningPort { inner };
        port.accept_on(reactor, socket)?;
        Ok(port)
    }

    /// Watches `socket` and starts the factory: listening (again).
    fn accept_on(&self, reactor: &Reactor, socket: Socket) -> Result<(), crate::ReactorError> {
        let inner = &self.inner;
        let fd = socket.as_raw_fd();
        inner.fd.set(fd);
        *inner.socket.borrow_mut() = Some(socket);
        *inner.spare.borrow_mut() = reserve_spare();
        // Only the reactor's registry holds the handler (and through it the port):
        // no cycle, so a port dropped with its reactor frees its socket.
        let handler = Rc::new(RefCell::new(PortHandler { port: Rc::clone(inner) }));
        inner.completions.set(reactor.accept_completions(fd));
        if let Err(e) = reactor.watch(fd, handler, Interest::READ) {
            if inner.completions.get() {
                reactor.forget_completions(fd);
            }
            // Undo everything: the socket, the spare fd and a socket file we created.
            drop(inner.socket.borrow_mut().take());
            drop(inner.spare.borrow_mut().take());
            if let Some(path) = &inner.unix_path {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        inner.listening.set(true);
        inner.factory.do_start(Some(reactor));
        Ok(())
    }

    /// Listens again after [`stop_listening`](ListeningPort::stop_listening)
    /// (Twisted's `startListening`): binds the same address — the same port
    /// number, even if 0 was asked for at first, or the same UNIX path — with
    /// the same options, and starts the factory again. Does nothing while
    /// listening.
    ///
    /// # Errors
    ///
    /// [`NetError::CannotListen`] if the address cannot be bound again (taken
    /// meanwhile), or for an adopted socket, which cannot be made again;
    /// [`NetError::Reactor`] if the reactor is gone or refuses the socket.
    pub fn start_listening(&self) -> Result<(), NetError> {
        if self.is_listening() {
            return Ok(());
        }
        let address = self.inner.address.to_string();
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return Err(NetError::Reactor(crate::ReactorError::NotRunning));
        };
        let Some(rebind) = &self.inner.rebind else {
            let source = io::Error::new(io::ErrorKind::Unsupported, "an adopted socket cannot listen again");
            return Err(NetError::CannotListen { address, source });
        };
        let socket = rebind().map_err(|source| NetError::CannotListen { address, source })?;
        self.accept_on(&reactor, socket)?;
        Ok(())
    }

    /// The address the port is bound to (with the real port when 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// A duplicate of the listening socket, for another reactor (on another
    /// thread) to serve with [`Reactor::adopt_stream_port`] or
    /// [`ServerEndpoint::adopt`](super::ServerEndpoint::adopt): one socket
    /// served by a reactor per core. Fails once the port stopped listening.
    pub fn try_clone_socket(&self) -> io::Result<crate::sys::fd::OwnedFd> {
        match self.inner.socket.borrow().as_ref() {
            Some(socket) => Ok(socket.try_clone()?.into()),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "the port is not listening")),
        }
    }

    /// Whether the port is still accepting.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.get()
    }

    /// Stops accepting and closes the socket (Twisted's `stopListening`). The
    /// Deferred fires at the end of the pass, after the factory's `stop_factory`
    /// (if this was its last user); stopping a stopped port fires it too.
    pub fn stop_listening(&self) -> Deferred<()> {
        let (deferred, resolver) = Deferred::pending();
        let Some(reactor) = self.inner.reactor.upgrade() else {
            let _ = resolver.callback(());
            return deferred;
        };
        let factory = if self.inner.listening.replace(false) {
            reactor.unwatch(self.inner.fd.get(), Interest::READ);
            if self.inner.completions.get() {
                // Before the close: an armed accept holds the socket open.
                reactor.forget_completions(self.inner.fd.get());
            }
            drop(self.inner.socket.borrow_mut().take());
            drop(self.inner.spare.borrow_mut().take());
            if let Some(path) = &self.inner.unix_path {
                let _ = std::fs::remove_file(path);
            }
            Some(self.inner.factory.clone())
        } else {
            None
        };
        reactor.at_end_of_pass(move |r| {
            let done: Box<dyn FnOnce()> = Box::new(move || {
                let _ = resolver.callback(());
            });
            match factory {
                // The Deferred fires after stop_factory, even if it panicked.
                Some(factory) => factory.do_stop(Some(r), Some(done)),
                None => done(),
            }
        });
        deferred
    }
}

impl fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListeningPort")
            .field("address", &self.inner.address)
            .field("listening", &self.is_listening())
            .finish()
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            crate::sys::errno::ECONNABORTED
                | crate::sys::errno::EINTR
                | crate::sys::errno::EPROTO
                | crate::sys::errno::EPERM
                | crate::sys::errno::ENOBUFS
                | crate::sys::errno::ENOMEM
        )
    )
}

impl PortInner {
    fn accept_some(&self, reactor: &Reactor) {
        for _ in 0..ACCEPT_BATCH {
            if !self.listening.get() {
                return;
            }
            let accepted = match self.socket.borrow().as_ref() {
                // Accepted non-blocking by the backend; the peer's address
                // does not come with it.
                Some(socket) if self.completions.get() => match reactor.take_accepted(self.fd.get()) {
                    Some(Ok(connection)) => {
                        let socket = Socket::from(connection);
                        match socket.peer_addr() {
                            Ok(peer) => Ok((socket, peer, true)),
                            Err(e) => {
                                tracing::debug!(port = %self.address, error = %e, "a connection left before it was served");
                                continue;
                            }
                        }
                    }
                    Some(Err(e)) => Err(e),
                    None => socket.accept().map(|(s, peer)| (s, peer, false)),
                },
                Some(socket) => socket.accept().map(|(s, peer)| (s, peer, false)),
                None => return,
            };
            match accepted {
                Ok((socket, peer, nonblocking)) => {
                    self.serve(reactor, socket, Address::from_sockaddr(&peer), nonblocking);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(crate::sys::errno::EMFILE | crate::sys::errno::ENFILE)
                    ) =>
                {
                    self.shed_pending(&e);
                    return;
                }
                Err(e) if transient(&e) => {
                    tracing::debug!(port = %self.address, error = %e, "transient accept error");
                }
                Err(e) => {
                    tracing::error!(port = %self.address, error = %e, "accept failed; still listening");
                    return;
                }
            }
        }
    }

    /// Out of fds: free the spare, accept and close what is pending so the peers
    /// are told at once and the level-triggered port does not spin, re-reserve.
    fn shed_pending(&self, cause: &io::Error) {
        let spare = self.spare.borrow_mut().take();
        let mut shed = 0usize;
        if spare.is_some() {
            drop(spare);
            while let Some(Ok((socket, _))) = self.socket.borrow().as_ref().map(|s| s.accept()) {
                drop(socket);
                shed += 1;
            }
            *self.spare.borrow_mut() = reserve_spare();
        }
        tracing::warn!(port = %self.address, error = %cause, shed, "out of file descriptors; pending connections closed");
    }

    /// Serves an accepted connection (`nonblocking`: accepted so already).
    fn serve(&self, reactor: &Reactor, socket: Socket, peer: Address, nonblocking: bool) {
        if !nonblocking {
            if let Err(e) = socket.set_nonblocking(true) {
                tracing::warn!(error = %e, "cannot make an accepted socket non-blocking; closed");
                return;
            }
        }
        let Some(protocol) = self.factory.build(&peer) else {
            return; // the factory refused the connection: dropping closes it
        };
        if let Err(e) = Transport::start_accepted(reactor, socket, peer, protocol) {
            tracing::warn!(port = %self.address, error = %e, "cannot serve an accepted connection; closed");
        }
    }
}

impl FdHandler for PortHandler {
    fn readable(&mut self, reactor: &Reactor) {
        self.port.accept_some(reactor);
    }

    fn connection_lost(&mut self, reactor: &Reactor, reason: LostReason) {
        if matches!(reason, LostReason::FdClosed) {
            // Someone closed our fd; its number may be reused: do not close it again.
            if let Some(socket) = self.port.socket.borrow_mut().take() {
                let _ = crate::sys::fd::IntoRawFd::into_raw_fd(socket);
            }
        }
        if self.port.listening.get() {
            tracing::debug!(port = %self.port.address, %reason, "listening port dropped by the reactor");
            drop(ListeningPort { inner: Rc::clone(&self.port) }.stop_listening());
        }
        let _ = reactor;
    }
}
