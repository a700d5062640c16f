//! What a backend without a capability answers: the check a per-backend
//! suite runs where a case cannot.

use crate::sys::fd::{AsFd, BorrowedFd, OwnedFd};
use std::cell::RefCell;
use std::rc::Rc;

use crate::net::{NetError, Protocol, UnixListenOptions, factory_fn};
use crate::process::{ProcessOptions, ProcessProtocol, ProcessTransport, SpawnError};
use crate::{BackendKind, Capability, FdHandler, Reactor, ReactorError};

/// Checks that backend `kind` refuses `capability` with
/// [`ReactorError::Unsupported`] naming it, as it must when its description
/// says it lacks it: what a test written for every backend asserts on one that
/// cannot run it. `Err` says what happened instead.
///
/// ```
/// use torque::{BackendKind, Capability};
///
/// for &kind in BackendKind::all() {
///     if !kind.info().supports(Capability::WatchFd) {
///         torque::testing::check_unsupported(kind, Capability::WatchFd).unwrap();
///     }
/// }
/// ```
pub fn check_unsupported(kind: BackendKind, capability: Capability) -> Result<(), String> {
    let info = kind.info();
    if info.supports(capability) {
        return Err(format!("{kind} says it supports {capability}"));
    }
    let reactor = Reactor::builder()
        .backend(kind)
        .handle_signals(false)
        .build()
        .map_err(|e| format!("cannot build a {kind} reactor: {e}"))?;
    let refused = |result: Result<(), ReactorError>| match result {
        Err(ReactorError::Unsupported { backend, capability: said })
            if backend == info.name && said == capability =>
        {
            Ok(())
        }
        Err(other) => Err(format!("{kind} refused {capability} with another error: {other}")),
        Ok(()) => Err(format!("{kind} accepted {capability}, which it says it lacks")),
    };
    match capability {
        Capability::WatchFd => refused(reactor.watch_fd().map(drop)),
        Capability::Interleave => refused(reactor.interleave(|_| {})),
        Capability::FdSets => {
            struct Reader(OwnedFd);
            impl FdHandler for Reader {}
            impl AsFd for Reader {
                fn as_fd(&self) -> BorrowedFd<'_> {
                    self.0.as_fd()
                }
            }
            let (read, _write) = crate::fd::pipe().map_err(|e| e.to_string())?;
            refused(reactor.add_reader(&Rc::new(RefCell::new(Reader(read)))))
        }
        Capability::Processes => {
            struct Quiet;
            impl ProcessProtocol for Quiet {
                fn child_data_received(&mut self, _: &ProcessTransport, _: i32, _: &[u8]) {}
            }
            // Refused before the program is looked for.
            match reactor.spawn_process(Quiet, "torque-refused-anyway", &[], ProcessOptions::default()) {
                Err(SpawnError::Reactor(e)) => refused(Err(e)),
                Err(other) => Err(format!("{kind} refused processes with another error: {other}")),
                Ok(_) => refused(Ok(())),
            }
        }
        Capability::UnixSockets | Capability::Tcp | Capability::Udp => {
            struct Silent;
            impl Protocol for Silent {
                fn data_received(&mut self, _: &crate::net::Transport, _: &[u8]) {}
            }
            let factory = factory_fn(|_| Silent);
            let result = match capability {
                Capability::UnixSockets => {
                    let name =
                        std::env::temp_dir().join(format!("torque-unsupported-{}", std::process::id()));
                    reactor
                        .listen_unix(&name.to_string_lossy(), factory, UnixListenOptions::default())
                        .map(drop)
                }
                Capability::Udp => {
                    struct Deaf;
                    impl crate::net::DatagramProtocol for Deaf {
                        fn datagram_received(
                            &mut self,
                            _: &crate::net::DatagramPort,
                            _: &[u8],
                            _: &crate::net::Address,
                        ) {
                        }
                    }
                    reactor.listen_udp(0, Deaf, crate::net::UdpOptions::default()).map(drop)
                }
                _ => reactor.listen_tcp(0, factory, crate::net::ListenOptions::default()).map(drop),
            };
            match result {
                Err(NetError::Reactor(e)) => refused(Err(e)),
                Err(other) => Err(format!("{kind} refused {capability} with another error: {other}")),
                Ok(()) => refused(Ok(())),
            }
        }
        _ => Err(format!("no backend lacks {capability} yet: teach check_unsupported how it refuses")),
    }
}
