//! Why a TLS connection failed, as distinct variants to match on.

use rustls::{AlertDescription, CertificateError, PeerIncompatible};

/// Why a TLS connection ended badly. Reaches `Protocol::connection_lost` and
/// `ClientFactory::client_connection_lost` as
/// [`DisconnectReason::Tls`](crate::net::DisconnectReason::Tls).
///
/// Variants that name a certificate problem (`UnknownIssuer`, `NameMismatch`,
/// `Expired`, …) are what *this* side found wrong with the peer's certificate.
/// When the peer is the one that refused, the reason is
/// [`AlertReceived`](TlsError::AlertReceived) with the alert it sent, except
/// for the alerts that mean the same on both sides (no shared protocol
/// version, no shared application protocol, a missing client certificate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate chain does not lead to a trusted root.
    #[error("the peer's certificate was issued by an unknown authority")]
    UnknownIssuer,
    /// The certificate is valid, but not for the name that was asked for.
    #[error("the peer's certificate is not valid for the name {expected:?}")]
    NameMismatch {
        /// The server name the client asked for (empty when unknown).
        expected: String,
    },
    /// The certificate (or one in its chain) has expired.
    #[error("the peer's certificate has expired")]
    Expired,
    /// The certificate is not valid yet.
    #[error("the peer's certificate is not valid yet")]
    NotYetValid,
    /// The certificate was revoked.
    #[error("the peer's certificate was revoked")]
    Revoked,
    /// Any other problem with the peer's certificate.
    #[error("the peer's certificate is invalid: {0}")]
    BadCertificate(String),
    /// The server requires a client certificate and none was presented.
    #[error("the server requires a client certificate and none was presented")]
    CertificateRequired,
    /// Neither side supports a protocol version, cipher suite, key exchange or
    /// signature scheme the other offers.
    #[error("no protocol version or cipher suite in common with the peer: {0}")]
    NoSharedProtocol(String),
    /// ALPN: the server supports none of the application protocols the client
    /// offered.
    #[error("no application protocol (ALPN) in common with the peer")]
    NoApplicationProtocol,
    /// The peer ended the handshake with this alert (for example `UnknownCA`
    /// when it does not trust our certificate).
    #[error("the peer refused the connection with the TLS alert {0}")]
    AlertReceived(String),
    /// The handshake did not finish within the configured timeout.
    #[error("the TLS handshake did not finish in time")]
    HandshakeTimeout,
    /// The peer closed the connection before the handshake finished.
    #[error("the peer closed the connection during the TLS handshake")]
    ClosedDuringHandshake,
    /// The peer closed the connection without a TLS `close_notify`: the data
    /// received may have been cut short by an attacker or a crash.
    #[error("the peer closed the connection without a TLS close_notify (the data may be truncated)")]
    Truncated,
    /// The peer sent something that is not valid TLS, or misbehaved.
    #[error("TLS protocol error: {0}")]
    Protocol(String),
}

impl TlsError {
    /// Whether the reason is about the peer's certificate as this side checked it.
    pub fn is_certificate_error(&self) -> bool {
        matches!(
            self,
            TlsError::UnknownIssuer
                | TlsError::NameMismatch { .. }
                | TlsError::Expired
                | TlsError::NotYetValid
                | TlsError::Revoked
                | TlsError::BadCertificate(_)
        )
    }

    /// The reason for a rustls error; `server_name` is what a client asked for.
    pub(crate) fn from_rustls(error: &rustls::Error, server_name: Option<&str>) -> TlsError {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    TlsError::NameMismatch { expected: server_name.unwrap_or_default().to_owned() }
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsError::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsError::NotYetValid
                }
                CertificateError::Revoked => TlsError::Revoked,
                other => TlsError::BadCertificate(format!("{other:?}")),
            },
            // A client checking a server that sent no certificate, or a server
            // requiring one from the client.
            E::NoCertificatesPresented if server_name.is_some() => {
                TlsError::BadCertificate("the server presented no certificate".to_owned())
            }
            E::NoCertificatesPresented => TlsError::CertificateRequired,
            E::NoApplicationProtocol => TlsError::NoApplicationProtocol,
            E::PeerIncompatible(why) => TlsError::NoSharedProtocol(incompatible(why)),
            E::AlertReceived(alert) => match alert {
                AlertDescription::NoApplicationProtocol => TlsError::NoApplicationProtocol,
                AlertDescription::CertificateRequired => TlsError::CertificateRequired,
                // (HandshakeFailure is sent for many reasons, so it stays an alert.)
                AlertDescription::ProtocolVersion => {
                    TlsError::NoSharedProtocol(format!("the peer sent the alert {alert:?}"))
                }
                other => TlsError::AlertReceived(format!("{other:?}")),
            },
            other => TlsError::Protocol(other.to_string()),
        }
    }
}

fn incompatible(why: &PeerIncompatible) -> String {
    format!("{why:?}")
}

/// A TLS configuration that cannot be built: unreadable or malformed PEM, a key
/// that does not match its certificate, an empty root set, …
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// PEM text held nothing usable of the kind wanted.
    #[error("{what}: {reason}")]
    Pem {
        /// What was being loaded ("certificate chain in cert.pem", …).
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration (a key that does not match its
    /// certificate, an unusable key type, …).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// Anything else, with the reason.
    #[error("{0}")]
    Invalid(String),
}
