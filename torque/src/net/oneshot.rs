//! Connecting once and getting the connection as a Deferred (Twisted's
//! `endpoint.connect`).

use std::cell::RefCell;
use std::rc::Rc;

use super::wrap::Wrapper;
use super::{Address, ClientEndpoint, ClientFactory, Connector, Factory, NetError, Protocol, Transport};
use crate::Reactor;
use crate::defer::{Deferred, Failure, Resolver};

type Slot = Rc<RefCell<Option<Resolver<Transport>>>>;

struct OneShot {
    protocol: Option<Box<dyn Protocol>>,
    resolver: Slot,
}

/// Wraps the protocol to fire the Deferred once `connection_made` has run.
struct Announce {
    inner: Box<dyn Protocol>,
    resolver: Slot,
}

impl Wrapper for Announce {
    fn inner(&mut self) -> &mut dyn Protocol {
        self.inner.as_mut()
    }
    fn connection_made(&mut self, transport: &Transport) {
        let made =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.connection_made(transport)));
        let resolver = self.resolver.borrow_mut().take();
        match (made, resolver) {
            (Ok(()), Some(resolver)) => {
                let _ = resolver.callback(transport.clone());
            }
            (Ok(()), None) => {}
            (Err(payload), resolver) => {
                if let Some(resolver) = resolver {
                    let message = crate::reactor::panic_message(&*payload);
                    let _ = resolver.errback(Failure::new(crate::defer::CallbackPanicked(message)));
                }
                std::panic::resume_unwind(payload);
            }
        }
    }
}

impl Factory for OneShot {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        let inner = self.protocol.take()?;
        Some(Box::new(Announce { inner, resolver: Rc::clone(&self.resolver) }))
    }
}

impl ClientFactory for OneShot {
    fn client_connection_failed(&mut self, _connector: &Connector, reason: NetError) {
        if let Some(resolver) = self.resolver.borrow_mut().take() {
            let _ = resolver.errback(Failure::new(reason));
        }
    }
}

impl ClientEndpoint {
    /// Connects once with `protocol` and fires with the connection's transport
    /// after `connection_made` has run, or fails with the [`NetError`] (Twisted's
    /// `endpoint.connect`). Cancelling the Deferred stops the attempt.
    ///
    /// ```no_run
    /// # async fn demo(reactor: torque::Reactor) -> Result<(), torque::defer::Failure> {
    /// use torque::net::{Protocol, Transport, client_from_string};
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    /// }
    /// let endpoint = client_from_string("tcp:127.0.0.1:8000")?;
    /// let transport = endpoint.connect_protocol(&reactor, Quiet).await?;
    /// transport.write(b"hello");
    /// # Ok(()) }
    /// ```
    pub fn connect_protocol(
        &self,
        reactor: &Reactor,
        protocol: impl Protocol + 'static,
    ) -> Deferred<Transport> {
        let connector: Rc<RefCell<Option<Connector>>> = Rc::default();
        let c = Rc::clone(&connector);
        let (deferred, resolver) = Deferred::with_canceller(move |_| {
            if let Some(connector) = c.borrow().as_ref() {
                connector.stop_connecting();
            }
        });
        let slot: Slot = Rc::new(RefCell::new(Some(resolver)));
        let factory = OneShot { protocol: Some(Box::new(protocol)), resolver: Rc::clone(&slot) };
        match self.connect(reactor, factory) {
            Ok(made) => *connector.borrow_mut() = Some(made),
            Err(e) => {
                if let Some(resolver) = slot.borrow_mut().take() {
                    let _ = resolver.errback(Failure::new(e));
                }
            }
        }
        deferred
    }
}
