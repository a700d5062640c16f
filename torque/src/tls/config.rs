//! TLS settings: certificates and keys, trust roots, and the server and client
//! configurations built from them (rustls with the ring provider).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::TlsConfigError;

/// How long a handshake may take unless configured otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The ring crypto provider, made once.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read { path: path.display().to_string(), source })
}

fn certificates_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem { what: what.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem {
            what: what.to_owned(),
            reason: "no CERTIFICATE block found".to_owned(),
        });
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsConfigError::Pem {
        what: what.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".to_owned()
            }
            other => other.to_string(),
        },
    })
}

/// TLS protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }

    pub(crate) fn from_rustls(version: rustls::ProtocolVersion) -> Option<TlsVersion> {
        match version {
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// A certificate chain (end entity first) and its private key: what a server
/// presents, or a client presents for mutual TLS.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// From PEM text: the chain (one or more `CERTIFICATE` blocks, end entity
    /// first) and the key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsConfigError> {
        let chain = certificates_from_pem(chain_pem, "certificate chain")?;
        let key = key_from_pem(key_pem, "private key")?;
        Identity::checked(chain, key, "certificate and key")
    }

    /// From PEM files (Twisted's `certKey` and `privateKey`). One file may hold
    /// both: pass it twice.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, TlsConfigError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let certs =
            certificates_from_pem(&read_file(chain)?, &format!("certificate chain in {}", chain.display()))?;
        let private = key_from_pem(&read_file(key)?, &format!("private key in {}", key.display()))?;
        Identity::checked(certs, private, &format!("{} and {}", chain.display(), key.display()))
    }

    /// From DER values already parsed.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity, TlsConfigError> {
        Identity::checked(chain, key, "certificate and key")
    }

    /// Appends the intermediate certificates in a PEM file to the chain
    /// (Twisted's `extraCertChain`).
    pub fn with_extra_chain_file(mut self, path: impl AsRef<Path>) -> Result<Identity, TlsConfigError> {
        let path = path.as_ref();
        let extra =
            certificates_from_pem(&read_file(path)?, &format!("certificate chain in {}", path.display()))?;
        self.chain.extend(extra);
        Ok(self)
    }

    /// The chain, end entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn checked(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &str,
    ) -> Result<Identity, TlsConfigError> {
        if chain.is_empty() {
            return Err(TlsConfigError::Invalid(format!("{what}: the certificate chain is empty")));
        }
        // Fails now, with the files named, if the key is unusable or is not the
        // certificate's.
        let identity = Identity { chain, key };
        identity.certified_key(what)?;
        Ok(identity)
    }

    fn certified_key(&self, what: &str) -> Result<Arc<CertifiedKey>, TlsConfigError> {
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider())
            .map(Arc::new)
            .map_err(|source| TlsConfigError::Rustls { what: what.to_owned(), source })
    }
}

/// Certificate authorities to trust: the system's store or a set of your own.
#[derive(Clone, Debug)]
pub struct TrustRoots {
    store: Arc<RootCertStore>,
}

impl TrustRoots {
    /// The operating system's trust store (on Linux the certificates under
    /// `/etc/ssl/certs`, via `rustls-native-certs`; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override it). Loaded once per process.
    pub fn system() -> Result<TrustRoots, TlsConfigError> {
        static SYSTEM: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
        let loaded = SYSTEM.get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!(
                    "no trusted certificates found in the system store{why} (install ca-certificates, or set SSL_CERT_FILE)"
                ));
            }
            Ok(Arc::new(store))
        });
        match loaded {
            Ok(store) => Ok(TrustRoots { store: Arc::clone(store) }),
            Err(why) => Err(TlsConfigError::Invalid(why.clone())),
        }
    }

    /// Exactly the CA certificates in this PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<TrustRoots, TlsConfigError> {
        TrustRoots::from_der(certificates_from_pem(pem, "trust roots")?)
    }

    /// Exactly the CA certificates in this PEM file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<TrustRoots, TlsConfigError> {
        let path = path.as_ref();
        TrustRoots::from_der(certificates_from_pem(
            &read_file(path)?,
            &format!("trust roots in {}", path.display()),
        )?)
    }

    /// Exactly these CA certificates.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<TrustRoots, TlsConfigError> {
        let mut store = RootCertStore::empty();
        for cert in certs {
            store
                .add(cert)
                .map_err(|source| TlsConfigError::Rustls { what: "a trust root".to_owned(), source })?;
        }
        Ok(TrustRoots { store: Arc::new(store) })
    }

    /// How many roots there are.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

fn versions(list: &[TlsVersion]) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsConfigError> {
    if list.is_empty() {
        return Err(TlsConfigError::Invalid("no TLS protocol version enabled".to_owned()));
    }
    Ok(list.iter().map(|v| v.rustls()).collect())
}

fn alpn_list(protocols: &[&str]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// Whether and how a server asks for client certificates.
#[derive(Clone, Debug)]
enum ClientAuth {
    None,
    Optional(TrustRoots),
    Required(TrustRoots),
}

/// Settings for a TLS server, turned into a [`TlsServerConfig`] by
/// [`build`](TlsServerOptions::build).
///
/// ```
/// # fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), torque::tls::TlsConfigError> {
/// use torque::tls::{Identity, TlsServerOptions};
/// let config = TlsServerOptions::new(Identity::from_pem(cert_pem, key_pem)?)
///     .alpn(&["http/1.1"])
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsServerOptions {
    default: Option<Identity>,
    by_name: Vec<(String, Identity)>,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    versions: Vec<TlsVersion>,
    handshake_timeout: Option<Duration>,
}

impl TlsServerOptions {
    /// A server presenting `identity` (to every client, unless an SNI name
    /// added with [`sni`](TlsServerOptions::sni) matches).
    pub fn new(identity: Identity) -> TlsServerOptions {
        TlsServerOptions { default: Some(identity), ..TlsServerOptions::sni_only() }
    }

    /// A server with no default certificate: a client whose SNI name matches none
    /// added with [`sni`](TlsServerOptions::sni) is refused.
    pub fn sni_only() -> TlsServerOptions {
        TlsServerOptions {
            default: None,
            by_name: Vec::new(),
            client_auth: ClientAuth::None,
            alpn: Vec::new(),
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// Presents `identity` to clients asking for `name` (SNI; case-insensitive).
    pub fn sni(mut self, name: &str, identity: Identity) -> TlsServerOptions {
        self.by_name.push((name.to_ascii_lowercase(), identity));
        self
    }

    /// Asks clients for a certificate, verified against `roots` when given; a
    /// client without one is still accepted.
    pub fn request_client_certificate(mut self, roots: TrustRoots) -> TlsServerOptions {
        self.client_auth = ClientAuth::Optional(roots);
        self
    }

    /// Requires a client certificate issued by one of `roots` (mutual TLS).
    pub fn require_client_certificate(mut self, roots: TrustRoots) -> TlsServerOptions {
        self.client_auth = ClientAuth::Required(roots);
        self
    }

    /// The application protocols offered by ALPN, most preferred first. With a
    /// list set, a client offering none of them is refused.
    pub fn alpn(mut self, protocols: &[&str]) -> TlsServerOptions {
        self.alpn = alpn_list(protocols);
        self
    }

    /// The protocol versions accepted (default TLS 1.3 and 1.2).
    pub fn versions(mut self, versions: &[TlsVersion]) -> TlsServerOptions {
        self.versions = versions.to_vec();
        self
    }

    /// How long a handshake may take before the connection is closed with
    /// [`TlsError::HandshakeTimeout`](super::TlsError::HandshakeTimeout)
    /// (default 30 s; `None`: no limit).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsServerOptions {
        self.handshake_timeout = timeout;
        self
    }

    /// Checks everything and builds the configuration. Build once and share it:
    /// session tickets are keyed by it.
    pub fn build(self) -> Result<TlsServerConfig, TlsConfigError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions(&self.versions)?)
            .map_err(|source| TlsConfigError::Rustls { what: "protocol versions".to_owned(), source })?;
        let verifier = match self.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::Optional(roots) | ClientAuth::Required(roots) if roots.is_empty() => {
                return Err(TlsConfigError::Invalid(
                    "client certificates were asked for, but the trust roots are empty".to_owned(),
                ));
            }
            ClientAuth::Optional(roots) => {
                WebPkiClientVerifier::builder_with_provider(roots.store, Arc::clone(&provider))
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsConfigError::Invalid(format!("client verification: {e}")))?
            }
            ClientAuth::Required(roots) => {
                WebPkiClientVerifier::builder_with_provider(roots.store, Arc::clone(&provider))
                    .build()
                    .map_err(|e| TlsConfigError::Invalid(format!("client verification: {e}")))?
            }
        };
        let mut resolver = SniResolver { default: None, by_name: Vec::new() };
        if let Some(identity) = &self.default {
            resolver.default = Some(identity.certified_key("the server certificate")?);
        }
        for (name, identity) in &self.by_name {
            resolver
                .by_name
                .push((name.clone(), identity.certified_key(&format!("the certificate for {name}"))?));
        }
        if resolver.default.is_none() && resolver.by_name.is_empty() {
            return Err(TlsConfigError::Invalid("a TLS server needs at least one certificate".to_owned()));
        }
        let mut config = builder.with_client_cert_verifier(verifier).with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn;
        Ok(TlsServerConfig { rustls: Arc::new(config), handshake_timeout: self.handshake_timeout })
    }
}

/// Picks the certificate by the client's SNI name, else the default.
#[derive(Debug)]
struct SniResolver {
    default: Option<Arc<CertifiedKey>>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(asked) = hello.server_name() {
            let found = self.by_name.iter().find(|(name, _)| name.eq_ignore_ascii_case(asked));
            if let Some((_, key)) = found {
                return Some(Arc::clone(key));
            }
        }
        self.default.clone()
    }
}

/// A built server configuration: share it between ports (cheap to clone).
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    pub(crate) rustls: Arc<ServerConfig>,
    pub(crate) handshake_timeout: Option<Duration>,
}

impl TlsServerConfig {
    /// Uses a rustls configuration made elsewhere, for settings the options do
    /// not cover. Handshakes time out after the default 30 s.
    pub fn from_rustls(config: Arc<ServerConfig>) -> TlsServerConfig {
        TlsServerConfig { rustls: config, handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT) }
    }

    /// The same configuration with another handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> TlsServerConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration underneath.
    pub fn rustls(&self) -> &Arc<ServerConfig> {
        &self.rustls
    }
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug)]
enum Verification {
    System,
    Roots(TrustRoots),
    Insecure,
}

/// Settings for a TLS client, turned into a [`TlsClientConfig`] by
/// [`build`](TlsClientOptions::build). By default the server's chain is checked
/// against the system's trust store and its name against the one connected to.
#[derive(Clone, Debug)]
pub struct TlsClientOptions {
    verification: Verification,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    versions: Vec<TlsVersion>,
    handshake_timeout: Option<Duration>,
    resumption: bool,
}

impl Default for TlsClientOptions {
    fn default() -> Self {
        TlsClientOptions::new()
    }
}

impl TlsClientOptions {
    /// Verifying against the system's trust store, TLS 1.3 and 1.2, session
    /// resumption on, handshake timeout 30 s.
    pub fn new() -> TlsClientOptions {
        TlsClientOptions {
            verification: Verification::System,
            identity: None,
            alpn: Vec::new(),
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            resumption: true,
        }
    }

    /// Trusts exactly `roots` instead of the system's store.
    pub fn trust_roots(mut self, roots: TrustRoots) -> TlsClientOptions {
        self.verification = Verification::Roots(roots);
        self
    }

    /// **Insecure:** accepts any certificate for any name, so anyone on the path
    /// can read and change the traffic. Signatures are still checked. For tests
    /// and for talking to a device you cannot give a real certificate.
    pub fn dangerously_accept_any_certificate(mut self) -> TlsClientOptions {
        self.verification = Verification::Insecure;
        self
    }

    /// Presents `identity` when the server asks for a client certificate.
    pub fn client_certificate(mut self, identity: Identity) -> TlsClientOptions {
        self.identity = Some(identity);
        self
    }

    /// The application protocols to offer by ALPN, most preferred first.
    pub fn alpn(mut self, protocols: &[&str]) -> TlsClientOptions {
        self.alpn = alpn_list(protocols);
        self
    }

    /// The protocol versions offered (default TLS 1.3 and 1.2).
    pub fn versions(mut self, versions: &[TlsVersion]) -> TlsClientOptions {
        self.versions = versions.to_vec();
        self
    }

    /// How long a handshake may take (default 30 s; `None`: no limit).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsClientOptions {
        self.handshake_timeout = timeout;
        self
    }

    /// Whether to remember sessions and resume them on later connections made
    /// with the same built configuration (default on).
    pub fn session_resumption(mut self, enabled: bool) -> TlsClientOptions {
        self.resumption = enabled;
        self
    }

    /// Checks everything and builds the configuration. Build once and reuse it:
    /// resumable sessions live in it.
    pub fn build(self) -> Result<TlsClientConfig, TlsConfigError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions(&self.versions)?)
            .map_err(|source| TlsConfigError::Rustls { what: "protocol versions".to_owned(), source })?;
        let builder = match self.verification {
            Verification::System => builder.with_root_certificates(TrustRoots::system()?.store),
            Verification::Roots(roots) if roots.is_empty() => {
                return Err(TlsConfigError::Invalid("the trust roots are empty".to_owned()));
            }
            Verification::Roots(roots) => builder.with_root_certificates(roots.store),
            Verification::Insecure => {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            }
        };
        let mut config = match self.identity {
            Some(identity) => {
                builder.with_client_auth_cert(identity.chain, identity.key).map_err(|source| {
                    TlsConfigError::Rustls { what: "the client certificate".to_owned(), source }
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        if !self.resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(TlsClientConfig { rustls: Arc::new(config), handshake_timeout: self.handshake_timeout })
    }
}

/// A built client configuration: reuse it for every connection (cheap to clone)
/// so sessions are resumed.
#[derive(Clone, Debug)]
pub struct TlsClientConfig {
    pub(crate) rustls: Arc<ClientConfig>,
    pub(crate) handshake_timeout: Option<Duration>,
}

impl TlsClientConfig {
    /// Uses a rustls configuration made elsewhere. Handshakes time out after the
    /// default 30 s.
    pub fn from_rustls(config: Arc<ClientConfig>) -> TlsClientConfig {
        TlsClientConfig { rustls: config, handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT) }
    }

    /// The same configuration with another handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> TlsClientConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration underneath.
    pub fn rustls(&self) -> &Arc<ClientConfig> {
        &self.rustls
    }
}

/// The verifier behind [`TlsClientOptions::dangerously_accept_any_certificate`]:
/// any chain and name pass; handshake signatures are still verified.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
