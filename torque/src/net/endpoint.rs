//! Endpoint description strings, Twisted's `serverFromString` / `clientFromString`:
//! `tcp:8080:interface=127.0.0.1`, `unix:/run/x.sock:mode=660`,
//! `tcp:host=example.org:port=80:timeout=5`, `unix:path=/run/x.sock`, and TLS:
//! `ssl:8443:privateKey=key.pem:certKey=cert.pem` to serve,
//! `tls:example.org:443` to connect.
//!
//! Fields are separated by `:`; a backslash escapes the next character (`\:`), so
//! IPv6 addresses can be written `interface=\:\:1`. Positional fields come first,
//! then `key=value` fields.
//!
//! A port may be a service name (`tcp:http`, `tls:example.org:https`),
//! looked up in `/etc/services`, then in a built-in table of common ones.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    ClientFactory, ConnectOptions, Connector, Factory, FactoryRef, ListenOptions, ListeningPort, NetError,
    UnixListenOptions,
};
use crate::Reactor;
use crate::tls::{
    Identity, TlsClientFactory, TlsClientOptions, TlsConfigError, TlsServerFactory, TlsServerOptions,
    TrustRoots,
};

/// A malformed endpoint description.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Nothing was given.
    #[error("empty endpoint description")]
    Empty,
    /// The first field names no known endpoint type.
    #[error("unknown endpoint type {kind:?} in {description:?}; known: {known}")]
    UnknownType {
        /// The type given.
        kind: String,
        /// The whole description.
        description: String,
        /// The types that would work.
        known: &'static str,
    },
    /// A field the endpoint type does not take.
    #[error("unknown option {option:?} for a {kind} endpoint in {description:?}")]
    UnknownOption {
        /// The option name.
        option: String,
        /// The endpoint type.
        kind: &'static str,
        /// The whole description.
        description: String,
    },
    /// A required field is missing.
    #[error("missing {field} in {description:?}")]
    Missing {
        /// The field's name.
        field: &'static str,
        /// The whole description.
        description: String,
    },
    /// A field's value does not parse.
    #[error("bad {field} {value:?} in {description:?}: {reason}")]
    BadValue {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The whole description.
        description: String,
        /// What was expected.
        reason: String,
    },
    /// More positional fields than the type takes.
    #[error("too many positional fields in {description:?}")]
    TooManyFields {
        /// The whole description.
        description: String,
    },
}

/// Where to listen, parsed from a description.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEndpoint {
    /// `tcp:PORT[:interface=IP][:backlog=N]`
    Tcp {
        /// The port (0: ephemeral).
        port: u16,
        /// The interface to bind.
        interface: IpAddr,
        /// The listen backlog (default: the system maximum, `SOMAXCONN`).
        backlog: i32,
    },
    /// `unix:PATH[:mode=OCTAL][:backlog=N]` (`@name` for an abstract socket)
    Unix {
        /// The socket path or `@name`.
        path: String,
        /// The file mode, in octal.
        mode: Option<u32>,
        /// The listen backlog (default: the system maximum, `SOMAXCONN`).
        backlog: i32,
    },
    /// `ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:extraCertChain=CHAIN.pem]`
    /// `[:interface=IP][:backlog=N]` (Twisted's names). TLS over TCP; `certKey`
    /// defaults to the `privateKey` file, which then holds both.
    Ssl {
        /// The port (0: ephemeral).
        port: u16,
        /// The interface to bind.
        interface: IpAddr,
        /// The listen backlog (default: the system maximum, `SOMAXCONN`).
        backlog: i32,
        /// PEM file with the private key.
        private_key: PathBuf,
        /// PEM file with the certificate (and maybe its chain).
        cert_key: PathBuf,
        /// PEM file with intermediate certificates to send after it.
        extra_cert_chain: Option<PathBuf>,
    },
}

/// What to connect to, parsed from a description.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEndpoint {
    /// `tcp:HOST:PORT` or `tcp:host=HOST:port=PORT[:timeout=SECONDS][:bindAddress=IP]`
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout.
        timeout: Option<Duration>,
        /// Local address to bind.
        bind_address: Option<IpAddr>,
    },
    /// `unix:PATH` or `unix:path=PATH[:timeout=SECONDS]`
    Unix {
        /// The socket path or `@name`.
        path: String,
        /// Connect timeout.
        timeout: Option<Duration>,
    },
    /// `tls:HOST:PORT[:timeout=SECONDS][:bindAddress=IP][:trustRoots=CA.pem]`
    /// `[:certificate=CERT.pem:privateKey=KEY.pem]`: TLS over TCP, verifying the
    /// server for `HOST` against the system's trust store, or exactly the CAs in
    /// `trustRoots`; `certificate` and `privateKey` give a client certificate.
    Tls {
        /// Host name or address, also the name verified.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout.
        timeout: Option<Duration>,
        /// Local address to bind.
        bind_address: Option<IpAddr>,
        /// PEM file of the CAs to trust instead of the system's.
        trust_roots: Option<PathBuf>,
        /// PEM files of a client certificate and its key.
        client_certificate: Option<(PathBuf, PathBuf)>,
    },
}

/// Splits on unescaped `sep` (at most `limit` pieces), keeping escapes for
/// [`unescape`] to resolve later.
fn split_raw(text: &str, sep: char, limit: usize) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let field = fields.last_mut().expect("never empty");
            field.push(c);
            field.extend(chars.next());
        } else if c == sep && fields.len() < limit {
            fields.push(String::new());
        } else {
            fields.last_mut().expect("never empty").push(c);
        }
    }
    fields
}

/// Quotes `value` for use as one field or option value of an endpoint
/// string: backslashes, colons and `=` are escaped, so a Windows path
/// (`C:\certs\ca.pem`) or an IPv6 address survives the parse whole
/// (Twisted's `quoteStringArgument`).
///
/// ```
/// use torque::net::{client_from_string, quote_endpoint_argument};
///
/// let ca = quote_endpoint_argument(r"C:\certs\ca.pem");
/// assert_eq!(ca, r"C\:\\certs\\ca.pem");
/// assert!(client_from_string(&format!("tls:example.com:443:trustRoots={ca}")).is_ok());
/// ```
pub fn quote_endpoint_argument(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if matches!(c, '\\' | ':' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Resolves `\x` escapes to `x`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    out
}

pub(crate) struct Parsed {
    pub(crate) kind: String,
    pub(crate) positional: Vec<String>,
    pub(crate) options: Vec<(String, String)>,
}

/// The generic field split, for other endpoint families (datagrams).
pub(crate) fn parse_public(description: &str) -> Result<Parsed, EndpointError> {
    parse(description)
}

fn parse(description: &str) -> Result<Parsed, EndpointError> {
    if description.trim().is_empty() {
        return Err(EndpointError::Empty);
    }
    let mut fields = split_raw(description.trim(), ':', usize::MAX).into_iter();
    let kind = unescape(&fields.next().unwrap_or_default()).to_ascii_lowercase();
    let mut positional = Vec::new();
    let mut options = Vec::new();
    for field in fields {
        // An escaped `=` does not make a field an option.
        match split_raw(&field, '=', 2).as_slice() {
            [key, value] => options.push((unescape(key), unescape(value))),
            _ => positional.push(unescape(&field)),
        }
    }
    Ok(Parsed { kind, positional, options })
}

/// A port number or a service name (`http`, from `/etc/services`).
pub(crate) fn port_number(value: &str, protocol: &str, description: &str) -> Result<u16, EndpointError> {
    if let Ok(port) = value.parse() {
        return Ok(port);
    }
    super::services::service_port(value, protocol).ok_or_else(|| EndpointError::BadValue {
        field: "port",
        value: value.to_owned(),
        description: description.to_owned(),
        reason: format!("not a port number (0 to 65535) or a known {protocol} service name"),
    })
}

fn number<T: std::str::FromStr>(
    field: &'static str,
    value: &str,
    description: &str,
) -> Result<T, EndpointError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| EndpointError::BadValue {
        field,
        value: value.to_owned(),
        description: description.to_owned(),
        reason: e.to_string(),
    })
}

fn seconds(value: &str, description: &str) -> Result<Duration, EndpointError> {
    let secs: f64 = number("timeout", value, description)?;
    Duration::try_from_secs_f64(secs).map_err(|_| EndpointError::BadValue {
        field: "timeout",
        value: value.to_owned(),
        description: description.to_owned(),
        reason: "expected a non-negative number of seconds within range".into(),
    })
}

fn unknown(kind: String, description: &str) -> EndpointError {
    EndpointError::UnknownType { kind, description: description.to_owned(), known: "tcp, unix, ssl, tls" }
}

impl std::str::FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(description: &str) -> Result<ServerEndpoint, EndpointError> {
        server_from_string(description)
    }
}

impl std::str::FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(description: &str) -> Result<ClientEndpoint, EndpointError> {
        client_from_string(description)
    }
}

/// Parses a server description (`tcp:8080:interface=127.0.0.1`, `unix:/x.sock`).
pub fn server_from_string(description: &str) -> Result<ServerEndpoint, EndpointError> {
    let Parsed { kind, positional, options } = parse(description)?;
    let d = description;
    let missing = |field| EndpointError::Missing { field, description: d.to_owned() };
    let bad_option =
        |option: String, kind| EndpointError::UnknownOption { option, kind, description: d.to_owned() };
    match kind.as_str() {
        "tcp" | "ssl" => {
            let mut port = None;
            let mut interface: IpAddr = [0, 0, 0, 0].into();
            let mut backlog = crate::sys::socket::max_backlog();
            let (mut private_key, mut cert_key, mut extra_cert_chain) = (None, None, None);
            let mut rest = positional.into_iter();
            if let Some(p) = rest.next() {
                port = Some(port_number(&p, "tcp", d)?);
            }
            if rest.next().is_some() {
                return Err(EndpointError::TooManyFields { description: d.to_owned() });
            }
            let is_ssl = kind == "ssl";
            for (k, v) in options {
                match k.as_str() {
                    "port" => port = Some(port_number(&v, "tcp", d)?),
                    "interface" => interface = number("interface", &v, d)?,
                    "backlog" => backlog = number("backlog", &v, d)?,
                    "privateKey" if is_ssl => private_key = Some(PathBuf::from(v)),
                    "certKey" if is_ssl => cert_key = Some(PathBuf::from(v)),
                    "extraCertChain" if is_ssl => extra_cert_chain = Some(PathBuf::from(v)),
                    _ => return Err(bad_option(k, if is_ssl { "ssl" } else { "tcp" })),
                }
            }
            let port = port.ok_or_else(|| missing("port"))?;
            if !is_ssl {
                return Ok(ServerEndpoint::Tcp { port, interface, backlog });
            }
            let private_key = private_key.ok_or_else(|| missing("privateKey"))?;
            let cert_key = cert_key.unwrap_or_else(|| private_key.clone());
            Ok(ServerEndpoint::Ssl { port, interface, backlog, private_key, cert_key, extra_cert_chain })
        }
        "unix" => {
            let mut mode = None;
            let mut backlog = crate::sys::socket::max_backlog();
            let mut rest = positional.into_iter();
            let mut path = rest.next();
            if rest.next().is_some() {
                return Err(EndpointError::TooManyFields { description: d.to_owned() });
            }
            for (k, v) in options {
                match k.as_str() {
                    "address" | "path" => path = Some(v),
                    "mode" => {
                        mode = Some(u32::from_str_radix(&v, 8).map_err(|e| EndpointError::BadValue {
                            field: "mode",
                            value: v.clone(),
                            description: d.to_owned(),
                            reason: format!("expected octal: {e}"),
                        })?)
                    }
                    "backlog" => backlog = number("backlog", &v, d)?,
                    "lockfile" | "wantPID" => {} // Twisted's lock-file flag: stale sockets are probed instead.
                    _ => return Err(bad_option(k, "unix")),
                }
            }
            let path = path.filter(|p| !p.is_empty()).ok_or_else(|| missing("path"))?;
            Ok(ServerEndpoint::Unix { path, mode, backlog })
        }
        _ => Err(unknown(kind, d)),
    }
}

/// Parses a client description (`tcp:example.org:80`, `tcp:host=h:port=80:timeout=5`,
/// `unix:/x.sock`).
pub fn client_from_string(description: &str) -> Result<ClientEndpoint, EndpointError> {
    let Parsed { kind, positional, options } = parse(description)?;
    let d = description;
    let missing = |field| EndpointError::Missing { field, description: d.to_owned() };
    let bad_option =
        |option: String, kind| EndpointError::UnknownOption { option, kind, description: d.to_owned() };
    let mut timeout = Some(Duration::from_secs(30));
    match kind.as_str() {
        "tcp" | "tls" => {
            let is_tls = kind == "tls";
            let mut rest = positional.into_iter();
            let mut host = rest.next();
            let mut port = rest.next().map(|p| port_number(&p, "tcp", d)).transpose()?;
            if rest.next().is_some() {
                return Err(EndpointError::TooManyFields { description: d.to_owned() });
            }
            let mut bind_address = None;
            let (mut trust_roots, mut certificate, mut private_key) = (None, None, None);
            for (k, v) in options {
                match k.as_str() {
                    "host" => host = Some(v),
                    "port" => port = Some(port_number(&v, "tcp", d)?),
                    "timeout" => timeout = Some(seconds(&v, d)?),
                    "bindAddress" | "bind" => bind_address = Some(number("bindAddress", &v, d)?),
                    "trustRoots" if is_tls => trust_roots = Some(PathBuf::from(v)),
                    "certificate" if is_tls => certificate = Some(PathBuf::from(v)),
                    "privateKey" if is_tls => private_key = Some(PathBuf::from(v)),
                    _ => return Err(bad_option(k, if is_tls { "tls" } else { "tcp" })),
                }
            }
            let host = host.filter(|h| !h.is_empty()).ok_or_else(|| missing("host"))?;
            let port = port.ok_or_else(|| missing("port"))?;
            if !is_tls {
                return Ok(ClientEndpoint::Tcp { host, port, timeout, bind_address });
            }
            let client_certificate = match (certificate, private_key) {
                (Some(cert), key) => Some((cert.clone(), key.unwrap_or(cert))),
                (None, Some(_)) => return Err(missing("certificate")),
                (None, None) => None,
            };
            Ok(ClientEndpoint::Tls { host, port, timeout, bind_address, trust_roots, client_certificate })
        }
        "unix" => {
            let mut rest = positional.into_iter();
            let mut path = rest.next();
            if rest.next().is_some() {
                return Err(EndpointError::TooManyFields { description: d.to_owned() });
            }
            for (k, v) in options {
                match k.as_str() {
                    "path" | "address" => path = Some(v),
                    "timeout" => timeout = Some(seconds(&v, d)?),
                    "checkPID" => {}
                    _ => return Err(bad_option(k, "unix")),
                }
            }
            let path = path.filter(|p| !p.is_empty()).ok_or_else(|| missing("path"))?;
            Ok(ClientEndpoint::Unix { path, timeout })
        }
        _ => Err(unknown(kind, d)),
    }
}

/// An `ssl:` endpoint's TLS configuration, from its PEM files.
fn tls_server_config(
    private_key: &std::path::Path,
    cert_key: &std::path::Path,
    extra_cert_chain: Option<&std::path::Path>,
) -> Result<crate::tls::TlsServerConfig, NetError> {
    let mut identity = Identity::from_pem_files(cert_key, private_key)?;
    if let Some(chain) = extra_cert_chain {
        identity = identity.with_extra_chain_file(chain)?;
    }
    Ok(TlsServerOptions::new(identity).build()?)
}

impl ServerEndpoint {
    /// Listens here with `factory`.
    pub fn listen<F: Factory + 'static>(
        &self,
        reactor: &Reactor,
        factory: impl Into<FactoryRef<F>>,
    ) -> Result<ListeningPort, NetError> {
        match self {
            ServerEndpoint::Tcp { port, interface, backlog } => reactor.listen_tcp(
                *port,
                factory,
                ListenOptions { interface: *interface, backlog: *backlog, ipv6_only: None },
            ),
            ServerEndpoint::Unix { path, mode, backlog } => {
                reactor.listen_unix(path, factory, UnixListenOptions { mode: *mode, backlog: *backlog })
            }
            ServerEndpoint::Ssl { port, interface, backlog, private_key, cert_key, extra_cert_chain } => {
                let config = tls_server_config(private_key, cert_key, extra_cert_chain.as_deref())?;
                let options = ListenOptions { interface: *interface, backlog: *backlog, ipv6_only: None };
                reactor.listen_tcp(*port, TlsServerFactory::new(factory, &config), options)
            }
        }
    }

    /// Serves `socket`, a listening socket opened for this endpoint elsewhere
    /// (usually [`ListeningPort::try_clone_socket`] of a port another reactor
    /// opened with [`listen`](ServerEndpoint::listen)), wrapped as `listen`
    /// wraps it (TLS for `ssl:`). This is how several reactors, one per core,
    /// serve one port: see the `workers` example.
    ///
    /// [`ListeningPort::try_clone_socket`]: super::ListeningPort::try_clone_socket
    pub fn adopt<F: Factory + 'static>(
        &self,
        reactor: &Reactor,
        socket: crate::sys::fd::OwnedFd,
        factory: impl Into<FactoryRef<F>>,
    ) -> Result<ListeningPort, NetError> {
        match self {
            ServerEndpoint::Tcp { .. } | ServerEndpoint::Unix { .. } => {
                reactor.adopt_stream_port(socket, factory)
            }
            ServerEndpoint::Ssl { private_key, cert_key, extra_cert_chain, .. } => {
                let config = tls_server_config(private_key, cert_key, extra_cert_chain.as_deref())?;
                reactor.adopt_stream_port(socket, TlsServerFactory::new(factory, &config))
            }
        }
    }

    /// Whether connections here speak TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ServerEndpoint::Ssl { .. })
    }
}

impl ClientEndpoint {
    /// Connects here with `factory`.
    pub fn connect<F: ClientFactory + 'static>(
        &self,
        reactor: &Reactor,
        factory: impl Into<FactoryRef<F>>,
    ) -> Result<Connector, NetError> {
        match self {
            ClientEndpoint::Tcp { host, port, timeout, bind_address } => {
                let options = ConnectOptions {
                    timeout: *timeout,
                    bind_address: bind_address.map(|ip| std::net::SocketAddr::new(ip, 0)),
                    ..ConnectOptions::default()
                };
                Ok(reactor.connect_tcp(host, *port, factory, options))
            }
            ClientEndpoint::Unix { path, timeout } => Ok(reactor.connect_unix(
                path,
                factory,
                ConnectOptions { timeout: *timeout, ..ConnectOptions::default() },
            )),
            ClientEndpoint::Tls { host, port, timeout, bind_address, trust_roots, client_certificate } => {
                let mut options = TlsClientOptions::new();
                if let Some(roots) = trust_roots {
                    options = options.trust_roots(TrustRoots::from_pem_file(roots)?);
                }
                if let Some((cert, key)) = client_certificate {
                    options = options.client_certificate(Identity::from_pem_files(cert, key)?);
                }
                let config = options.build()?;
                let connect = ConnectOptions {
                    timeout: *timeout,
                    bind_address: bind_address.map(|ip| std::net::SocketAddr::new(ip, 0)),
                    ..ConnectOptions::default()
                };
                Ok(reactor.connect_tcp(host, *port, TlsClientFactory::new(factory, &config, host), connect))
            }
        }
    }
}

impl From<TlsConfigError> for NetError {
    fn from(error: TlsConfigError) -> NetError {
        NetError::TlsConfig(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn ports_may_be_service_names() {
        assert_eq!(
            server_from_string("tcp:http:interface=127.0.0.1").unwrap(),
            ServerEndpoint::Tcp {
                port: 80,
                interface: [127, 0, 0, 1].into(),
                backlog: crate::sys::socket::max_backlog()
            }
        );
        assert!(matches!(
            client_from_string("tcp:host=example.com:port=https").unwrap(),
            ClientEndpoint::Tcp { port: 443, .. }
        ));
        let err = server_from_string("tcp:no-such-service").unwrap_err().to_string();
        assert!(err.contains("not a port number") && err.contains("tcp service name"), "{err}");
        assert!(server_from_string("tcp:99999").is_err());
    }

    #[test]
    fn tcp_servers_parse_positionally_and_by_name() {
        assert_eq!(
            server_from_string("tcp:8080:interface=127.0.0.1").unwrap(),
            ServerEndpoint::Tcp {
                port: 8080,
                interface: [127, 0, 0, 1].into(),
                backlog: crate::sys::socket::max_backlog()
            }
        );
        assert_eq!(
            server_from_string("tcp:port=0:backlog=5").unwrap(),
            ServerEndpoint::Tcp { port: 0, interface: [0, 0, 0, 0].into(), backlog: 5 }
        );
        assert_eq!(
            "tcp:443:interface=\\:\\:1".parse::<ServerEndpoint>().unwrap(),
            ServerEndpoint::Tcp {
                port: 443,
                interface: "::1".parse().unwrap(),
                backlog: crate::sys::socket::max_backlog()
            }
        );
    }

    #[test]
    fn unix_servers_take_a_path_and_an_octal_mode() {
        assert_eq!(
            server_from_string("unix:/run/x.sock:mode=660").unwrap(),
            ServerEndpoint::Unix {
                path: "/run/x.sock".into(),
                mode: Some(0o660),
                backlog: crate::sys::socket::max_backlog()
            }
        );
        assert_eq!(
            server_from_string("unix:address=@abstract").unwrap(),
            ServerEndpoint::Unix {
                path: "@abstract".into(),
                mode: None,
                backlog: crate::sys::socket::max_backlog()
            }
        );
    }

    #[test]
    fn clients_parse_both_styles() {
        assert_eq!(
            client_from_string("tcp:host=example.org:port=80:timeout=5").unwrap(),
            ClientEndpoint::Tcp {
                host: "example.org".into(),
                port: 80,
                timeout: Some(Duration::from_secs(5)),
                bind_address: None
            }
        );
        assert_eq!(
            client_from_string("tcp:localhost:8080").unwrap(),
            ClientEndpoint::Tcp {
                host: "localhost".into(),
                port: 8080,
                timeout: Some(Duration::from_secs(30)),
                bind_address: None
            }
        );
        assert_eq!(
            client_from_string("unix:path=/x.sock:timeout=1.5").unwrap(),
            ClientEndpoint::Unix { path: "/x.sock".into(), timeout: Some(Duration::from_millis(1500)) }
        );
    }

    #[test]
    fn malformed_descriptions_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "empty endpoint description"),
            ("udp:53", "unknown endpoint type \"udp\""),
            ("tcp", "missing port"),
            ("tcp:gopherish", "bad port \"gopherish\""),
            ("tcp:99999", "bad port \"99999\""),
            ("tcp:80:interface=localhost", "bad interface \"localhost\""),
            ("tcp:80:colour=blue", "unknown option \"colour\" for a tcp endpoint"),
            ("tcp:80:90", "too many positional fields"),
            ("unix:/x:mode=999", "bad mode \"999\""),
            ("unix:", "missing path"),
        ];
        for (description, expected) in cases {
            let err = server_from_string(description).unwrap_err().to_string();
            assert!(err.contains(expected), "{description:?}: {err}");
        }
        let err = client_from_string("tcp:port=80").unwrap_err().to_string();
        assert!(err.contains("missing host"), "{err}");
        let err = client_from_string("tcp:h:80:timeout=-1").unwrap_err().to_string();
        assert!(err.contains("bad timeout"), "{err}");
        let err = client_from_string("tcp:h:80:timeout=1e20").unwrap_err().to_string();
        assert!(err.contains("bad timeout"), "{err}");
    }

    #[test]
    fn tls_endpoints_use_twisteds_names() {
        assert_eq!(
            server_from_string("ssl:8443:privateKey=key.pem:certKey=cert.pem:interface=127.0.0.1").unwrap(),
            ServerEndpoint::Ssl {
                port: 8443,
                interface: [127, 0, 0, 1].into(),
                backlog: crate::sys::socket::max_backlog(),
                private_key: "key.pem".into(),
                cert_key: "cert.pem".into(),
                extra_cert_chain: None,
            }
        );
        let both = server_from_string("ssl:443:privateKey=both.pem:extraCertChain=chain.pem").unwrap();
        assert!(both.is_tls());
        assert!(
            matches!(both, ServerEndpoint::Ssl { cert_key, extra_cert_chain: Some(_), .. } if cert_key == Path::new("both.pem"))
        );
        assert_eq!(
            client_from_string("tls:example.org:443:trustRoots=ca.pem").unwrap(),
            ClientEndpoint::Tls {
                host: "example.org".into(),
                port: 443,
                timeout: Some(Duration::from_secs(30)),
                bind_address: None,
                trust_roots: Some("ca.pem".into()),
                client_certificate: None,
            }
        );
        let err = server_from_string("ssl:443").unwrap_err().to_string();
        assert!(err.contains("missing privateKey"), "{err}");
        let err = server_from_string("tcp:80:privateKey=k.pem").unwrap_err().to_string();
        assert!(err.contains("unknown option \"privateKey\" for a tcp endpoint"), "{err}");
        let err = client_from_string("tls:h:443:privateKey=k.pem").unwrap_err().to_string();
        assert!(err.contains("missing certificate"), "{err}");
    }

    #[test]
    fn escaped_separators_stay_in_values() {
        assert_eq!(
            server_from_string(r"unix:/tmp/a\=b\:c.sock").unwrap(),
            ServerEndpoint::Unix {
                path: "/tmp/a=b:c.sock".into(),
                mode: None,
                backlog: crate::sys::socket::max_backlog()
            }
        );
    }
}
