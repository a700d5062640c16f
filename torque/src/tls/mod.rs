//! TLS for every stream transport (Twisted's `listenSSL`, `connectSSL` and
//! `startTLS`), with rustls and its ring provider.
//!
//! TLS is a stage inside the connection, so any [`Protocol`] runs unchanged over
//! TCP, UNIX sockets or the in-memory testing transport:
//!
//! - [`Reactor::listen_tls`] and [`Reactor::connect_tls`] for TCP;
//! - [`TlsServerFactory`] and [`TlsClientFactory`] wrap any factory, for UNIX
//!   sockets, adopted sockets or memory;
//! - [`Transport::start_tls_server`] and [`Transport::start_tls_client`] switch a
//!   connection that is already talking (STARTTLS).
//!
//! Clients verify the server's certificate against the system's trust store and
//! the name connected to unless told otherwise ([`TlsClientOptions`]). A failed
//! handshake closes the connection with [`DisconnectReason::Tls`] and a
//! [`TlsError`] saying why; so does a peer that closes without `close_notify`
//! ([`TlsError::Truncated`]). `connection_made` runs at once, as in Twisted;
//! writes made before the handshake finishes are sent when it does, and
//! [`Protocol::handshake_completed`] marks that moment.
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use torque::net::{ListenOptions, Protocol, Transport, factory_fn};
//! use torque::tls::{Identity, TlsServerOptions};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         t.write(data);
//!     }
//! }
//!
//! let reactor = torque::Reactor::new()?;
//! let identity = Identity::from_pem_files("cert.pem", "key.pem")?;
//! let config = TlsServerOptions::new(identity).build()?;
//! let options = ListenOptions::interface(Ipv4Addr::LOCALHOST.into());
//! reactor.listen_tls(8443, factory_fn(|_| Echo), options, &config)?;
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Protocol`]: crate::net::Protocol
//! [`Reactor::listen_tls`]: crate::Reactor::listen_tls
//! [`Reactor::connect_tls`]: crate::Reactor::connect_tls
//! [`Protocol::handshake_completed`]: crate::net::Protocol::handshake_completed
//! [`DisconnectReason::Tls`]: crate::net::DisconnectReason::Tls
//! [`Transport::start_tls_server`]: crate::net::Transport::start_tls_server
//! [`Transport::start_tls_client`]: crate::net::Transport::start_tls_client

mod config;
mod error;
mod factory;

pub use config::{
    DEFAULT_HANDSHAKE_TIMEOUT, Identity, TlsClientConfig, TlsClientOptions, TlsServerConfig,
    TlsServerOptions, TlsVersion, TrustRoots,
};
pub use error::{TlsConfigError, TlsError};
pub use factory::{TlsClientFactory, TlsServerFactory};
/// Certificate and key types, re-exported from rustls.
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What a TLS connection negotiated ([`Transport::tls_info`](crate::net::Transport::tls_info)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// Whether the handshake has finished; the other fields are final only then.
    pub handshake_complete: bool,
    /// The protocol version.
    pub version: Option<TlsVersion>,
    /// The application protocol chosen by ALPN.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The cipher suite's name.
    pub cipher_suite: Option<String>,
    /// The peer's certificate chain, end entity first (empty when it sent none).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The server name: what the client asked for by SNI (on a server), or the
    /// name verified (on a client).
    pub server_name: Option<String>,
    /// Whether an earlier session was resumed (no full handshake).
    pub resumed: bool,
}
