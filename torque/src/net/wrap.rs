//! The one way a protocol wraps another inside Torque (TLS factories, one-shot
//! endpoints): a wrapper implements [`Wrapper`], overriding only what it
//! changes, and the blanket [`Protocol`] impl below passes every other event
//! to the inner protocol. A wrapper cannot forget a method: there is no
//! `Protocol` impl of its own to forget it in, and a test calls every method
//! through a wrapper.

use crate::sys::fd::OwnedFd;

use super::{DisconnectReason, Protocol, Transport};

/// A protocol around another one. Each method defaults to passing the event
/// on to [`inner`](Wrapper::inner).
pub(crate) trait Wrapper {
    /// The wrapped protocol.
    fn inner(&mut self) -> &mut dyn Protocol;

    fn connection_made(&mut self, transport: &Transport) {
        self.inner().connection_made(transport);
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.inner().data_received(transport, data);
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        self.inner().read_connection_lost(transport);
    }
    fn handshake_completed(&mut self, transport: &Transport) {
        self.inner().handshake_completed(transport);
    }
    fn write_connection_lost(&mut self, transport: &Transport) {
        self.inner().write_connection_lost(transport);
    }
    fn file_descriptor_received(&mut self, transport: &Transport, fd: OwnedFd) {
        self.inner().file_descriptor_received(transport, fd);
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.inner().connection_lost(reason);
    }
}

impl<W: Wrapper> Protocol for W {
    fn connection_made(&mut self, transport: &Transport) {
        Wrapper::connection_made(self, transport);
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        Wrapper::data_received(self, transport, data);
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        Wrapper::read_connection_lost(self, transport);
    }
    fn handshake_completed(&mut self, transport: &Transport) {
        Wrapper::handshake_completed(self, transport);
    }
    fn write_connection_lost(&mut self, transport: &Transport) {
        Wrapper::write_connection_lost(self, transport);
    }
    fn file_descriptor_received(&mut self, transport: &Transport, fd: OwnedFd) {
        Wrapper::file_descriptor_received(self, transport, fd);
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        Wrapper::connection_lost(self, reason);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::net::Address;

    /// Records which methods reached it.
    struct Inner(Rc<RefCell<Vec<&'static str>>>);

    impl Protocol for Inner {
        fn connection_made(&mut self, _: &Transport) {
            self.0.borrow_mut().push("connection_made");
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {
            self.0.borrow_mut().push("data_received");
        }
        fn read_connection_lost(&mut self, _: &Transport) {
            self.0.borrow_mut().push("read_connection_lost");
        }
        fn handshake_completed(&mut self, _: &Transport) {
            self.0.borrow_mut().push("handshake_completed");
        }
        fn write_connection_lost(&mut self, _: &Transport) {
            self.0.borrow_mut().push("write_connection_lost");
        }
        fn file_descriptor_received(&mut self, _: &Transport, _: OwnedFd) {
            self.0.borrow_mut().push("file_descriptor_received");
        }
        fn connection_lost(&mut self, _: DisconnectReason) {
            self.0.borrow_mut().push("connection_lost");
        }
    }

    /// A wrapper that overrides nothing.
    struct Plain(Inner);

    impl Wrapper for Plain {
        fn inner(&mut self) -> &mut dyn Protocol {
            &mut self.0
        }
    }

    /// Every `Protocol` method reaches the inner protocol through a wrapper.
    /// A method added to `Protocol` must be added here and to `Wrapper`.
    #[test]
    fn every_protocol_method_is_passed_on() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let reactor = crate::Reactor::builder().handle_signals(false).build().unwrap();
        let wrapped: Box<dyn Protocol> = Box::new(Plain(Inner(seen.clone())));
        let (transport, _pipe) = crate::net::stream::Transport::start_memory(
            &reactor,
            Box::new(Inner(Rc::new(RefCell::new(Vec::new())))),
            Address::UnixUnnamed,
            Address::UnixUnnamed,
            None,
        );
        let mut p = wrapped;
        p.connection_made(&transport);
        p.data_received(&transport, b"x");
        p.read_connection_lost(&transport);
        p.handshake_completed(&transport);
        p.write_connection_lost(&transport);
        let (fd, _other) = crate::fd::pipe().unwrap();
        p.file_descriptor_received(&transport, fd);
        p.connection_lost(DisconnectReason::Done);
        assert_eq!(
            *seen.borrow(),
            [
                "connection_made",
                "data_received",
                "read_connection_lost",
                "handshake_completed",
                "write_connection_lost",
                "file_descriptor_received",
                "connection_lost"
            ]
        );
    }
}
